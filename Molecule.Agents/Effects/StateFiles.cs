using System.Text;

namespace Molecule.Agents.Effects;

/// <summary>
/// Files in the state directory. Writes are atomic (<c>&lt;name&gt;.tmp</c> in the same directory, mode 0600,
/// flushed to disk, renamed over the target). File names must be plain names (no directory parts).
/// All operations report failures as an error text instead of throwing.
/// </summary>
internal static class StateFiles
{
    private const UnixFileMode FileMode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirMode0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private static readonly UTF8Encoding Utf8 = new(false);

    /// <summary>Creates <paramref name="dir"/> (and parents) with mode 0700 when missing. Existing directories are left alone.</summary>
    public static string? EnsureDir(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) return null;
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
            else Directory.CreateDirectory(dir, DirMode0700);
            return null;
        }
        catch (Exception ex) when (IsIo(ex))
        {
            return $"cannot create state directory {dir}: {ex.Message}";
        }
    }

    /// <summary>Writes <paramref name="contents"/> to <c>dir/name</c> atomically with mode 0600. Returns null or an error text.</summary>
    public static string? WriteAtomic(string dir, string name, string contents)
    {
        if (!IsPlainName(name)) return $"refusing to write state file with invalid name '{name}'";
        var dirError = EnsureDir(dir);
        if (dirError is not null) return dirError;
        var target = Path.Combine(dir, name);
        var tmp = target + ".tmp";
        try
        {
            // A leftover temp file would keep its old mode: remove it so the new one is created 0600.
            if (File.Exists(tmp)) File.Delete(tmp);
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
            };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = FileMode0600;
            using (var stream = new FileStream(tmp, options))
            {
                var bytes = Utf8.GetBytes(contents ?? "");
                stream.Write(bytes, 0, bytes.Length);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, target, overwrite: true);
            return null;
        }
        catch (Exception ex) when (IsIo(ex))
        {
            try { if (File.Exists(tmp)) File.Delete(tmp); } catch (Exception e) when (IsIo(e)) { }
            return $"cannot write state file {target}: {ex.Message}";
        }
    }

    /// <summary>Deletes <c>dir/name</c>; a missing file is not an error.</summary>
    public static string? Delete(string dir, string name)
    {
        if (!IsPlainName(name)) return $"refusing to delete state file with invalid name '{name}'";
        var target = Path.Combine(dir, name);
        try
        {
            File.Delete(target); // no-op when missing
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (IsIo(ex))
        {
            return $"cannot delete state file {target}: {ex.Message}";
        }
    }

    /// <summary>Contents of <c>dir/name</c>, or null when it is missing (or unreadable: then <paramref name="error"/> says why).</summary>
    public static string? Read(string dir, string name, out string? error)
    {
        error = null;
        if (!IsPlainName(name))
        {
            error = $"invalid state file name '{name}'";
            return null;
        }
        return ReadPath(Path.Combine(dir, name), out error);
    }

    /// <summary>Contents of <paramref name="path"/> (a regular file), or null when missing/unreadable.</summary>
    public static string? ReadPath(string path, out string? error)
    {
        error = null;
        try
        {
            if (!File.Exists(path)) return null;
            return File.ReadAllText(path, Utf8);
        }
        catch (Exception ex) when (IsIo(ex))
        {
            error = $"cannot read {path}: {ex.Message}";
            return null;
        }
    }

    /// <summary>True when <paramref name="dir"/> exists and a file can be created in it.</summary>
    public static bool IsWritableDir(string dir)
    {
        try
        {
            if (!Directory.Exists(dir)) return false;
            var probe = Path.Combine(dir, $".molecule-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
            return true;
        }
        catch (Exception ex) when (IsIo(ex))
        {
            return false;
        }
    }

    private static bool IsPlainName(string name) =>
        !string.IsNullOrWhiteSpace(name) && name != "." && name != ".."
        && name.IndexOfAny(['/', '\\', '\0']) < 0;

    private static bool IsIo(Exception ex) =>
        ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException
            or System.Security.SecurityException;
}
