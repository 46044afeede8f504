// A Molecule agent as a worker service: the generic host runs it, and a handler answers every message — the user's
// in their canvas chat, a peer's to the peer.
//
//   Molecule__WorkspaceId=… Molecule__PlatformUrl=… Molecule__Token=… dotnet run --project samples/Hosted
//
// (or a "Molecule" section in appsettings.json; any variable of molecule-mcp works as a key: Molecule__CONFIGS_DIR=…).
// The host owns the life cycle: bad options stop the start with every problem listed; Ctrl+C or SIGTERM lets the
// message in hand finish, then stops. A handler that throws leaves its message in the inbox, and it is handed over
// again after a pause — at least once into the handler, exactly once handled.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Molecule.Agents;
using Molecule.Agents.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddMoleculeAgent<ReplyHandler>(builder.Configuration.GetSection("Molecule"));
using var host = builder.Build();
try
{
    await host.RunAsync();
    return Environment.ExitCode; // the platform's refusal sets it (3), as molecule-mcp exits
}
catch (MoleculeOptionsException invalid)
{
    Console.Error.WriteLine(invalid.Message);
    return 2;
}

/// <summary>Answers each message; one instance per message (scoped), so it may take scoped services.</summary>
internal sealed class ReplyHandler(ILogger<ReplyHandler> log) : IMoleculeMessageHandler
{
    public async Task HandleAsync(MoleculeMessage message, MoleculeAgent agent, CancellationToken cancellationToken)
    {
        log.LogInformation("Handling {Message}", message);
        if (message.CanReply) await message.ReplyAsync($"Done: {message.Text}", cancellationToken);
    }
}
