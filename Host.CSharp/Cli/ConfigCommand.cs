using System.Text.Json.Nodes;
using Molecule.Core;
using Molecule.Host.Cli.ConfigFiles;
using Molecule.Protocol;
using Molecule.Agents;
using Molecule.Agents.Effects;

namespace Molecule.Host.Cli;

/// <summary>
/// <c>molecule-mcp config &lt;client&gt; [--name N] [--write] [--show-token] [--no-permission-relay]</c>: the entry that starts this binary
/// (the stable path, see <see cref="Launching.LaunchPath"/>) with this environment's workspace settings, for one MCP
/// client — printed, or merged into the client's own config file by a real parser of its format
/// (<see cref="ConfigFileWriter"/>; a backup <c>.bak</c> kept). The token is printed only with <c>--show-token</c>.
/// </summary>
public static class ConfigCommand
{
    private static readonly string[] Carried =
    [
        "MOLECULE_AGENT_NAME", "MOLECULE_AGENT_DESCRIPTION", "MOLECULE_AGENT_SKILLS", "CONFIGS_DIR", "MOLECULE_MCP_POLL_TIMEOUT_SECS",
        "MOLECULE_MCP_REPLAY_SECS", "MOLECULE_MCP_RENOTIFY_SECS", "MOLECULE_MCP_DISABLE_STREAM",
        "MOLECULE_MCP_PERMISSION_TIMEOUT_SECS", "MOLECULE_MCP_LOOP_MAX_EXCHANGES", "MOLECULE_MCP_LOOP_MAX_PER_MINUTE",
        "MOLECULE_MCP_LOOP_MAX_REPEATS",
    ];

    public const string TokenPlaceholder = "<your-token>";

    public static int Run(string clientName, string? name, bool write, bool showToken, bool noPermissionRelay = false)
    {
        if (ClientConfig.parseClient(clientName) is not { } found)
        {
            Console.Error.WriteLine($"error: unknown client '{clientName}'; one of: {string.Join(", ", ClientConfig.clients.Select(ClientConfig.clientName))}");
            return ServerCommand.UsageExitCode;
        }
        var client = found.Value;
        var environment = AgentBoot.ProcessEnvironment();
        var log = StderrLog.CreateForStderr(Severity.Warning);
        var parsed = AgentBoot.Parse(environment, log);
        if (parsed.IsError)
        {
            Console.Error.Write(Connections.helpText(parsed.ErrorValue) + "\n");
            Console.Error.WriteLine("Set the variables (as in your MCP config) and run `molecule-mcp config` again.");
            return ServerCommand.UsageExitCode;
        }
        var configs = parsed.ResultValue.ToList();
        var server = ClientConfig.serverName(name ?? (configs.Count == 1 && environment.ContainsKey("MOLECULE_AGENT_NAME") ? configs[0].AgentCard.Name : "molecule"));
        var command = Launching.LaunchPath.For(Environment.ProcessPath ?? Launching.LaunchPath.Exe);
        var env = EnvFor(environment, configs, reveal: write || showToken, relayOff: noPermissionRelay || !configs[0].PermissionRelay);

        if (!write)
        {
            Console.Out.WriteLine(ClientConfig.snippet(client, server, command, env));
            if (client.IsClaudeCode)
                Console.Out.WriteLine($"\n# For push (channels), start Claude Code with: claude {ClientConfig.channelFlag(server)}");
            if (!showToken && env.Any(kv => kv.Item2 == TokenPlaceholder))
                Console.Error.WriteLine("note: the token is shown as " + TokenPlaceholder + "; --show-token prints it, --write puts it in the client's file");
            return 0;
        }

        var home = AgentBoot.Home(environment);
        if (ClientConfig.configPath(client, home) is not { } pathOption)
        {
            Console.Error.WriteLine("error: plain JSON has no config file; run without --write and paste the entry");
            return ServerCommand.UsageExitCode;
        }
        var path = pathOption.Value;
        var entry = new ServerEntry(server, command, env);
        var error = ConfigFileWriter.Write(path, text => Merge(client, text, entry), out var report, out var changed);
        if (error is not null)
        {
            Console.Error.WriteLine("error: " + error);
            return 1;
        }
        Console.Out.WriteLine(changed ? $"Wrote server '{server}' to {report}" : $"{report} already has server '{server}' exactly so; nothing changed");
        if (client.IsClaudeCode) Console.Out.WriteLine($"For push (channels), start Claude Code with: claude {ClientConfig.channelFlag(server)}");
        return 0;
    }

    /// <summary>The client's config text with the entry set, by the parser and writer of its format.</summary>
    public static Edit Merge(ClientConfig.Client client, string text, ServerEntry entry)
    {
        if (client.IsCodex) return TomlConfigEdit.Merge(text, entry);
        if (client.IsHermes) return YamlConfigEdit.Merge(text, entry);
        if (client.IsOpenCode) return JsonConfigEdit.Merge(text, "mcp", entry.Name, old => Entry(old, OwnedKeys.OpenCode, ClientConfig.openCodeEntry(entry.Command, entry.Env)));
        return JsonConfigEdit.Merge(text, "mcpServers", entry.Name, old => Entry(old, OwnedKeys.McpServers, ClientConfig.entry(entry.Command, entry.Env)));
    }

    /// <summary>The old entry's own keys (those molecule-mcp does not own), then ours.</summary>
    private static JsonObject Entry(JsonNode? old, string[] owned, JsonObject ours)
    {
        var result = old is JsonObject o ? (JsonObject)o.DeepClone() : new JsonObject();
        foreach (var key in owned)
            if (!ours.ContainsKey(key)) result.Remove(key);
        foreach (var (key, value) in ours) result[key] = value?.DeepClone();
        return result;
    }

    /// <summary>The variables the server needs, in a stable order; secrets replaced unless revealed.</summary>
    private static Microsoft.FSharp.Collections.FSharpList<Tuple<string, string>> EnvFor(
        IReadOnlyDictionary<string, string> environment, List<Config> configs, bool reveal, bool relayOff)
    {
        var env = new List<Tuple<string, string>>();
        void Add(string key, string value) => env.Add(Tuple.Create(key, value));
        string Secret(string value) => reveal ? value : TokenPlaceholder;
        var first = configs[0];
        if (first.TokenSource.IsFromWorkspaces)
        {
            var entries = configs.Select(c => $"{{\"id\":\"{c.WorkspaceId.Value}\",\"token\":\"{Secret(c.Token)}\"}}");
            Add("MOLECULE_WORKSPACES", "[" + string.Join(",", entries) + "]");
        }
        else
        {
            Add("WORKSPACE_ID", first.WorkspaceId.Value);
        }
        Add("PLATFORM_URL", first.PlatformUrl);
        if (first.TokenSource.IsFromEnv) Add("MOLECULE_WORKSPACE_TOKEN", Secret(first.Token));
        if (first.TokenSource is TokenSource.FromTokenFile file) Add("MOLECULE_WORKSPACE_TOKEN_FILE", file.path);
        foreach (var key in Carried)
            if (environment.TryGetValue(key, out var value) && value.Trim().Length > 0)
                Add(key, value.Trim());
        if (relayOff) Add(Molecule.Core.ConfigModule.permissionRelayVar, "0");
        return Microsoft.FSharp.Collections.ListModule.OfSeq(env);
    }
}
