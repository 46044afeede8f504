using System.CommandLine;
using Molecule.Host.Logging;
using Molecule.Host.Runtime;

// Entry point. In stdio-server mode (no subcommand) nothing but JSON-RPC may reach stdout.

var root = new RootCommand("molecule-mcp: MCP stdio server that lets a coding agent join a Molecule agent team.\n" +
                           "Run without arguments from an MCP client; configuration comes from the environment.");
root.SetAction((_, ct) => AgentRuntime.RunServerAsync(ct));

root.Add(Placeholder("platform", "Run a local Molecule platform (not implemented yet)."));
root.Add(Placeholder("demo", "Run an end-to-end demo against a local platform (not implemented yet)."));

var parsed = root.Parse(args);
// Usage errors (and the help shown with them) go to stderr: an MCP client started with a wrong argument must not
// receive text on stdout.
var invocation = parsed.Errors.Count > 0 ? new InvocationConfiguration { Output = Console.Error } : new InvocationConfiguration();
return await parsed.InvokeAsync(invocation, CancellationToken.None);

static Command Placeholder(string name, string description)
{
    var command = new Command(name, description) { TreatUnmatchedTokensAsErrors = false };
    command.SetAction(_ =>
    {
        Console.Error.WriteLine($"{StderrLog.Prefix}'{name}' is not implemented yet");
        return 2;
    });
    return command;
}
