using System.CommandLine;
using Molecule.Host;
using Molecule.Host.Cli;

// Entry point. In stdio-server mode (no subcommand) nothing but JSON-RPC may reach stdout.

var root = new RootCommand(HelpText.Root);
root.SetAction((_, ct) => ServerCommand.RunAsync(ct));

var json = new Option<bool>("--json") { Description = "Print the checks as JSON." };
var doctor = new Command("doctor", "Check the setup: environment, state directory, platform, token, workspace, PATH, Claude Code push.") { json };
doctor.SetAction((r, ct) => DoctorCommand.RunAsync(r.GetValue(json), ct));
root.Add(doctor);

var client = new Argument<string>("client") { Description = "claude-code, codex, gemini, cursor, cline, opencode, hermes or json." };
var name = new Option<string?>("--name") { Description = "Server name in the client's config (default: molecule, or MOLECULE_AGENT_NAME's slug)." };
var write = new Option<bool>("--write") { Description = "Merge the entry into the client's config file (the old one kept as .bak)." };
var showToken = new Option<bool>("--show-token") { Description = "Print the token in the entry (it is replaced by a placeholder otherwise)." };
var noRelay = new Option<bool>("--no-permission-relay") { Description = "Switch the permission relay off in the entry (MOLECULE_MCP_PERMISSION_RELAY=0): Claude Code's permission prompts stay in the terminal only." };
var config = new Command("config", "Print (or --write) the MCP config entry that starts this binary for a client, from this environment.") { client, name, write, showToken, noRelay };
config.SetAction(r => ConfigCommand.Run(r.GetValue(client)!, r.GetValue(name), r.GetValue(write), r.GetValue(showToken), r.GetValue(noRelay)));
root.Add(config);

var parsed = root.Parse(args);
// Usage errors (and the help shown with them) go to stderr: an MCP client started with a wrong argument must not
// receive text on stdout.
var invocation = parsed.Errors.Count > 0 ? new InvocationConfiguration { Output = Console.Error } : new InvocationConfiguration();
var code = await parsed.InvokeAsync(invocation, CancellationToken.None);
// Usage errors (unknown command/option, missing argument) exit 2, like a configuration error in server mode.
return parsed.Errors.Count > 0 ? ServerCommand.UsageExitCode : code;
