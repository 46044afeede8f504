using System.CommandLine;
using Molecule.Host;

// Entry point. In stdio-server mode (no subcommand) nothing but JSON-RPC may reach stdout.

var root = new RootCommand("molecule-mcp: MCP stdio server that lets a coding agent join a Molecule agent team.\n" +
                           "Run without arguments from an MCP client; configuration comes from the environment.");
root.SetAction((_, ct) => ServerCommand.RunAsync(ct));

var parsed = root.Parse(args);
// Usage errors (and the help shown with them) go to stderr: an MCP client started with a wrong argument must not
// receive text on stdout.
var invocation = parsed.Errors.Count > 0 ? new InvocationConfiguration { Output = Console.Error } : new InvocationConfiguration();
var code = await parsed.InvokeAsync(invocation, CancellationToken.None);
// Usage errors (unknown command/option, missing argument) exit 2, like a configuration error in server mode.
return parsed.Errors.Count > 0 ? ServerCommand.UsageExitCode : code;
