using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Molecule.PlatformHost.Cli;

/// <summary>What an MCP client needs to start molecule-mcp for one workspace.</summary>
public sealed record Connection(string Name, string WorkspaceId, string PlatformUrl, string Token, string Binary)
{
    /// <summary>The environment of the server process, in a stable order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Env
    {
        get
        {
            var env = new List<KeyValuePair<string, string>>
            {
                new("WORKSPACE_ID", WorkspaceId),
                new("PLATFORM_URL", PlatformUrl),
                new("MOLECULE_WORKSPACE_TOKEN", Token),
            };
            if (!string.IsNullOrWhiteSpace(Name)) env.Add(new("MOLECULE_AGENT_NAME", Name));
            return env;
        }
    }
}

/// <summary>Ready-to-paste connection lines (Claude Code command line and JSON config), shell-quoted and JSON-escaped.</summary>
public static class ConnectionLines
{
    /// <summary>Environment variable naming the molecule-mcp executable to print and start (tests, custom installs).</summary>
    public const string BinaryVariable = "MOLECULE_MCP_BIN";

    /// <summary>
    /// The molecule-mcp executable the printed lines start: <c>$MOLECULE_MCP_BIN</c>, else a <c>molecule-mcp</c> beside
    /// this executable or in a sibling <c>molecule-mcp/</c> folder (a build's artifacts), else the first one on PATH
    /// (an installed .NET tool), as an absolute path; else the bare command name.
    /// </summary>
    public static string BinaryPath()
    {
        var exe = OperatingSystem.IsWindows() ? "molecule-mcp.exe" : "molecule-mcp";
        if (Environment.GetEnvironmentVariable(BinaryVariable) is { Length: > 0 } configured) return Path.GetFullPath(configured);
        var here = AppContext.BaseDirectory;
        var candidates = new List<string> { Path.Combine(here, exe), Path.Combine(here, "..", "molecule-mcp", exe) };
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            candidates.Add(Path.Combine(dir, exe));
        foreach (var c in candidates)
            if (File.Exists(c)) return Path.GetFullPath(c);
        return "molecule-mcp";
    }

    /// <summary>Server name for the MCP config: lower-case letters, digits and '-', never empty.</summary>
    public static string Slug(string name)
    {
        var sb = new StringBuilder();
        foreach (var ch in (name ?? "").Trim().ToLowerInvariant())
        {
            if (ch is >= 'a' and <= 'z' or >= '0' and <= '9') sb.Append(ch);
            else if (sb.Length > 0 && sb[^1] != '-') sb.Append('-');
        }
        var slug = sb.ToString().Trim('-');
        if (slug.Length > 48) slug = slug[..48].TrimEnd('-');
        return slug.Length == 0 ? "molecule" : slug;
    }

    private static bool IsSafe(char c) =>
        c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_' or '-' or '.' or '/' or ':' or '=' or '@' or '%' or '+' or ',';

    /// <summary>POSIX shell quoting: the word unchanged when it is plain, else single-quoted ('\'' for quotes).</summary>
    public static string ShellQuote(string word)
    {
        if (word.Length > 0 && word.All(IsSafe)) return word;
        return "'" + word.Replace("'", "'\\''") + "'";
    }

    /// <summary><c>claude mcp add &lt;slug&gt; -s user -- env K=V … /abs/molecule-mcp</c></summary>
    public static string ClaudeCommand(Connection c)
    {
        var words = new List<string> { "claude", "mcp", "add", ShellQuote(Slug(c.Name)), "-s", "user", "--", "env" };
        words.AddRange(c.Env.Select(kv => ShellQuote($"{kv.Key}={kv.Value}")));
        words.Add(ShellQuote(c.Binary));
        return string.Join(' ', words);
    }

    /// <summary>The config node <c>{"mcpServers": {"&lt;slug&gt;": {"command": …, "env": {…}}}}</c>.</summary>
    public static JsonObject JsonConfigNode(Connection c)
    {
        var env = new JsonObject();
        foreach (var kv in c.Env) env[kv.Key] = kv.Value;
        return new JsonObject
        {
            ["mcpServers"] = new JsonObject
            {
                [Slug(c.Name)] = new JsonObject { ["command"] = c.Binary, ["env"] = env },
            },
        };
    }

    /// <summary>Pretty JSON without needless \u escapes (still valid, properly escaped JSON).</summary>
    public static string ToJson(JsonNode node, bool indented = true)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = indented, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            node.WriteTo(w);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public static string JsonConfig(Connection c) => ToJson(JsonConfigNode(c));

    /// <summary>The block printed by `workspace create` and `token mint`.</summary>
    public static string Block(Connection c)
    {
        var sb = new StringBuilder();
        sb.AppendLine("Claude Code (run once):");
        sb.AppendLine("  " + ClaudeCommand(c));
        sb.AppendLine();
        sb.AppendLine("Other MCP clients (JSON config):");
        sb.AppendLine(JsonConfig(c));
        return sb.ToString();
    }
}
