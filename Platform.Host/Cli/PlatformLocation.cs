using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Molecule.PlatformHost.Cli;

/// <summary>Exit codes of the interactive commands.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int PlatformError = 1;
    public const int Usage = 2;
}

/// <summary>A problem the user has to fix; printed as "error: …" on stderr with its exit code.</summary>
public sealed class CliException(string message, int exitCode = ExitCodes.PlatformError) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>
/// Where a local platform keeps its data, and the small <c>platform.json</c> file ({url, pid}) that the running
/// <c>molecule-platform platform</c> writes so the admin commands can find it.
/// </summary>
public static class PlatformLocation
{
    public const string DataDirVariable = "MOLECULE_PLATFORM_DIR";
    public const string DatabaseVariable = "MOLECULE_PLATFORM_DATABASE";
    public const string InfoFileName = "platform.json";
    public const string AdminTokenFileName = "admin_token";

    /// <summary>--data-dir, else $MOLECULE_PLATFORM_DIR, else ~/.molecule-platform (absolute).</summary>
    public static string DataDir(string? option)
    {
        if (!string.IsNullOrWhiteSpace(option)) return Path.GetFullPath(ExpandHome(option.Trim()));
        var env = Environment.GetEnvironmentVariable(DataDirVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(ExpandHome(env.Trim()));
        return Path.Combine(Home(), ".molecule-platform");
    }

    /// <summary>--database, else $MOLECULE_PLATFORM_DATABASE, else null (SQLite in the data directory).</summary>
    public static string? Database(string? option)
    {
        if (!string.IsNullOrWhiteSpace(option)) return option.Trim();
        var env = Environment.GetEnvironmentVariable(DatabaseVariable);
        return string.IsNullOrWhiteSpace(env) ? null : env.Trim();
    }

    public static string Home() =>
        Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } h
            ? h
            : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    private static string ExpandHome(string path) =>
        path == "~" ? Home() : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(Home(), path[2..]) : path;

    public static string InfoFile(string dataDir) => Path.Combine(dataDir, InfoFileName);
    public static string AdminTokenFile(string dataDir) => Path.Combine(dataDir, AdminTokenFileName);

    /// <summary>Writes {url, pid} atomically (temp file + rename).</summary>
    public static void WriteInfo(string dataDir, string url, int pid)
    {
        var o = new JsonObject { ["url"] = url, ["pid"] = pid };
        var path = InfoFile(dataDir);
        var tmp = path + ".tmp";
        var bytes = new UTF8Encoding(false).GetBytes(o.ToJsonString() + "\n");
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(tmp, options)) fs.Write(bytes);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Removes platform.json when it still names this process.</summary>
    public static void RemoveInfo(string dataDir, int pid)
    {
        try
        {
            if (ReadInfo(dataDir) is { } info && info.Pid == pid) File.Delete(InfoFile(dataDir));
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public sealed record Info(string Url, int Pid);

    public static Info? ReadInfo(string dataDir)
    {
        try
        {
            var path = InfoFile(dataDir);
            if (!File.Exists(path)) return null;
            if (JsonNode.Parse(File.ReadAllText(path)) is not JsonObject o) return null;
            var url = o["url"] is JsonValue u && u.TryGetValue<string>(out var s) ? s : null;
            var pid = o["pid"] is JsonValue p && p.TryGetValue<int>(out var n) ? n : 0;
            return string.IsNullOrWhiteSpace(url) ? null : new Info(url.TrimEnd('/'), pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    public static bool IsAlive(int pid)
    {
        if (pid <= 0) return false;
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public static string StartHint(string dataDir) =>
        dataDir == DataDir(null)
            ? "start it with `molecule-platform platform` (in another terminal), or pass --platform-url"
            : $"start it with `molecule-platform platform --data-dir {ConnectionLines.ShellQuote(dataDir)}` (in another terminal), or pass --platform-url";

    /// <summary>The platform URL: --platform-url, else platform.json of a live platform process.</summary>
    public static string ResolveUrl(string? option, string dataDir)
    {
        if (!string.IsNullOrWhiteSpace(option))
        {
            var u = option.Trim().TrimEnd('/');
            if (!Uri.TryCreate(u, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                throw new CliException($"--platform-url must be an http(s) URL, got '{option}'", ExitCodes.Usage);
            return u;
        }
        var info = ReadInfo(dataDir);
        if (info is null || !IsAlive(info.Pid))
            throw new CliException($"no local platform is running for {dataDir}: {StartHint(dataDir)}.");
        return info.Url;
    }

    /// <summary>The admin token: --admin-token, else &lt;data-dir&gt;/admin_token.</summary>
    public static string ResolveAdminToken(string? option, string dataDir)
    {
        if (!string.IsNullOrWhiteSpace(option)) return option.Trim();
        var path = AdminTokenFile(dataDir);
        try
        {
            var t = File.Exists(path) ? File.ReadAllText(path).Trim() : "";
            if (t.Length > 0) return t;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read the admin token from {path}: {e.Message}");
        }
        throw new CliException($"no admin token found in {path}: pass --admin-token, or {StartHint(dataDir)}.");
    }
}
