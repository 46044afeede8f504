namespace Molecule.PlatformHost.Cli;

/// <summary>
/// The molecule-mcp binary the printed connection lines start, and the lines themselves — whose wording lives in one
/// place, the platform's <c>Molecule.Platform.Connection</c> module, shared with the canvas (Tokens tab).
/// </summary>
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

    /// <summary>POSIX shell quoting (the platform's rule).</summary>
    public static string ShellQuote(string word) => Molecule.Platform.Connection.shellQuote(word);

    /// <summary>The block printed by `workspace create` and `token mint`: one snippet per MCP client.</summary>
    public static string Block(string name, string workspaceId, string platformUrl, string token) =>
        Molecule.Platform.Connection.block(
            new Molecule.Platform.Connection.Connection(name, workspaceId, platformUrl, token, BinaryPath()));
}
