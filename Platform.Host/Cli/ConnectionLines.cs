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
    /// The molecule-mcp executable: <c>$MOLECULE_MCP_BIN</c> when set, else a <c>molecule-mcp</c> beside this executable
    /// or in a sibling <c>molecule-mcp/</c> folder (a build's artifacts), else the first on PATH (an installed tool);
    /// and every place looked at, in order.
    /// </summary>
    public static (string? Found, IReadOnlyList<string> Searched) Locate()
    {
        var exe = Molecule.Launching.LaunchPath.Exe;
        var searched = new List<string>();
        if (Environment.GetEnvironmentVariable(BinaryVariable) is { Length: > 0 } configured)
        {
            var path = Path.GetFullPath(configured);
            searched.Add($"{path} (${BinaryVariable})");
            return (File.Exists(path) ? path : null, searched);
        }
        var here = AppContext.BaseDirectory;
        var candidates = new List<string> { Path.GetFullPath(Path.Combine(here, exe)), Path.GetFullPath(Path.Combine(here, "..", "molecule-mcp", exe)) };
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            candidates.Add(Path.Combine(dir, exe));
        foreach (var c in candidates.Distinct())
        {
            searched.Add(c);
            if (File.Exists(c)) return (Path.GetFullPath(c), searched);
        }
        return (null, searched);
    }

    /// <summary>
    /// The command the printed lines (and the canvas) start: the path that starts the molecule-mcp <see cref="Locate"/>
    /// finds, by the one rule (<see cref="Molecule.Launching.LaunchPath"/>: the stable command on PATH, never a
    /// versioned tool store path); the bare command name when none is found.
    /// </summary>
    public static string BinaryPath() => Locate().Found is { } found ? Molecule.Launching.LaunchPath.For(found) : "molecule-mcp";

    /// <summary>What to say when molecule-mcp is not found: every place looked at, and how to get one.</summary>
    public static string NotFound(IReadOnlyList<string> searched) =>
        "molecule-mcp was not found. Looked at:\n" + string.Concat(searched.Select(s => $"  - {s}\n"))
        + $"Build it (dotnet fsi build.fsx publish puts it in artifacts/molecule-mcp/), install it (dotnet tool install -g molecule-mcp --add-source ./artifacts/packages), or set {BinaryVariable} to its path.";

    /// <summary>POSIX shell quoting (the platform's rule).</summary>
    public static string ShellQuote(string word) => Molecule.Platform.Connection.shellQuote(word);

    /// <summary>The block printed by `workspace create` and `token mint`: one snippet per MCP client.</summary>
    public static string Block(string name, string workspaceId, string platformUrl, string token) =>
        Molecule.Platform.Connection.block(
            new Molecule.Platform.Connection.Connection(name, workspaceId, platformUrl, token, BinaryPath()));
}
