using System.CommandLine;
using Molecule.PlatformHost.Cli;

// molecule-platform: the local, single-machine Molecule platform and its admin commands.

var root = new RootCommand("molecule-platform: a local Molecule platform (SQLite, canvas) and the commands to administer it.");
CliCommands.AddTo(root);

var parsed = root.Parse(args);
var invocation = parsed.Errors.Count > 0 ? new InvocationConfiguration { Output = Console.Error } : new InvocationConfiguration();
var code = await parsed.InvokeAsync(invocation, CancellationToken.None);
return parsed.Errors.Count > 0 ? ExitCodes.Usage : code;
