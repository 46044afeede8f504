// A Molecule agent in C#: answers every message — the user's in their canvas chat, a peer's to the peer.
//
//   WORKSPACE_ID=… PLATFORM_URL=… MOLECULE_WORKSPACE_TOKEN=… dotnet run --project samples/CSharp
//
// Messages come oldest first, and each counts as handled once its loop body completes. A reply that fails ends the
// loop with its exception and leaves the message in the inbox: it comes again at the next start, and so does one a
// crash interrupted — never lost, never handled twice. Ctrl+C (or SIGTERM) stops the reading; the message in hand is
// answered first (its reply is not given the stop token), so a clean stop never leaves a reply sent but unhandled.
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Molecule.Agents;

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
using var loggerFactory = LoggerFactory.Create(logging => logging.AddSimpleConsole(o => o.SingleLine = true));
var log = loggerFactory.CreateLogger("sample");
try
{
    await using var agent = await MoleculeAgent.ConnectAsync(MoleculeOptions.FromEnvironment(), loggerFactory, stop.Token);
    log.LogInformation("Listening as workspace {Workspace}", agent.WorkspaceId);
    await foreach (var message in agent.ReadMessagesAsync(stop.Token))
    {
        log.LogInformation("Handling {Message}", message);
        if (message.CanReply) await message.ReplyAsync($"Done: {message.Text}");
    }
    return 0;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested) { return 0; }
catch (MoleculeOptionsException invalid) { Console.Error.WriteLine(invalid.Message); return 2; }
catch (MoleculeAgentStoppedException stopped) { return stopped.ExitCode; }
