using Microsoft.FSharp.Collections;

namespace Molecule.Host.Cli.ConfigFiles;

/// <summary>What <c>molecule-mcp config --write</c> puts into a client's config: a server name, the command and its environment.</summary>
public sealed record ServerEntry(string Name, string Command, FSharpList<Tuple<string, string>> Env);

/// <summary>The merged text of a config file, or why the file is left as it is.</summary>
public readonly record struct Edit(string? Text, string? Error)
{
    public static Edit Ok(string text) => new(text, null);
    public static Edit Refuse(string reason) => new(null, reason);
}

/// <summary>
/// Which keys of a server entry <c>config --write</c> owns, per format: they are set (or removed, when they name
/// another transport or argument list); every other key the user put in the entry is kept.
/// </summary>
public static class OwnedKeys
{
    /// <summary>Claude Code, Cursor, Cline, Gemini CLI: <c>{"command", "args", "env"}</c> and the remote-server keys.</summary>
    public static readonly string[] McpServers = ["type", "command", "args", "env", "url", "httpUrl", "serverUrl", "headers", "transport"];

    /// <summary>OpenCode: <c>{"type": "local", "command": [...], "environment", "enabled"}</c>.</summary>
    public static readonly string[] OpenCode = ["type", "command", "environment", "enabled", "url", "headers"];

    /// <summary>Codex (<c>[mcp_servers.name]</c>).</summary>
    public static readonly string[] Codex = ["command", "args", "env", "url", "bearer_token", "bearer_token_env_var", "http_headers", "env_http_headers"];

    /// <summary>hermes (<c>mcp_servers: name:</c>).</summary>
    public static readonly string[] Hermes = ["command", "args", "env", "url", "headers", "enabled"];
}
