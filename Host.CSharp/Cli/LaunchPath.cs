using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Protocol;

namespace Molecule.Launching;

/// <summary>
/// The facts <see cref="ClientConfig.launchCommand"/> decides on, read from this machine: the executable with every
/// link resolved, each <c>molecule-mcp</c> on PATH, and the .NET tool command (shim) of a tool install. One file,
/// compiled into both molecule-mcp (doctor, config) and molecule-platform (workspace create, the canvas, the demo).
/// </summary>
public static class LaunchPath
{
    /// <summary>The command's file name on this system.</summary>
    public static string Exe => OperatingSystem.IsWindows() ? "molecule-mcp.exe" : "molecule-mcp";

    /// <summary>The path an MCP client should start for the molecule-mcp executable at <paramref name="binary"/>.</summary>
    public static string For(string binary) => ClientConfig.launchCommand(Facts(binary));

    /// <summary>What the rule needs to know about <paramref name="binary"/>.</summary>
    public static ClientConfig.Launch Facts(string binary)
    {
        var full = Path.GetFullPath(binary);
        var real = Real(full);
        var onPath = OnPath().Select(p => Tuple.Create(p, Real(p)));
        var root = ClientConfig.toolStoreRoot(real) ?? ClientConfig.toolStoreRoot(full);
        var shim = root is null ? null : Path.GetFullPath(Path.Combine(root.Value, Exe));
        return new ClientConfig.Launch(full, real, ListModule.OfSeq(onPath),
            shim is not null && File.Exists(shim) ? FSharpOption<string>.Some(shim) : FSharpOption<string>.None);
    }

    /// <summary>Every <c>molecule-mcp</c> file on PATH, in PATH order, as absolute paths.</summary>
    public static IEnumerable<string> OnPath()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate;
            try
            {
                candidate = Path.GetFullPath(Path.Combine(dir, Exe));
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException)
            {
                continue;
            }
            if (File.Exists(candidate)) yield return candidate;
        }
    }

    /// <summary>The path with every symbolic link on the way resolved (the file itself and the folders above it).</summary>
    public static string Real(string path)
    {
        var current = Path.GetFullPath(path);
        if (OperatingSystem.IsWindows()) return current;
        for (var hops = 0; hops < 40; hops++)
        {
            var parts = current.Split('/', StringSplitOptions.RemoveEmptyEntries);
            var prefix = "/";
            string? next = null;
            for (var i = 0; i < parts.Length && next is null; i++)
            {
                var here = Path.Combine(prefix, parts[i]);
                string? link;
                try
                {
                    link = new FileInfo(here).LinkTarget;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    link = null;
                }
                if (link is not null)
                {
                    var resolved = Path.GetFullPath(Path.IsPathRooted(link) ? link : Path.Combine(prefix, link));
                    next = Path.Combine([resolved, .. parts[(i + 1)..]]);
                }
                prefix = here;
            }
            if (next is null) return current;
            current = next;
        }
        return current;
    }
}
