using System.Text;
using Molecule.Agents.Effects;

namespace Molecule.Host.Cli.ConfigFiles;

/// <summary>
/// Writes a merged client config without ever losing the old one: a file that cannot be read, is not a regular file,
/// is larger than <see cref="MaxBytes"/> or is not UTF-8 is left alone with a clear error; a symbolic link is written
/// through (the link stays, its target gets the new text); the old text is kept as <c>&lt;file&gt;.bak</c>, written
/// beside the path the user named and never through a link of that name; every write is a new file renamed over the
/// old one (atomic), with the old file's permissions.
/// </summary>
public static class ConfigFileWriter
{
    /// <summary>The largest config read (real ones are kilobytes; ~/.claude.json with a long history a few megabytes).</summary>
    public const long MaxBytes = 32L * 1024 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The outcome: null when done (then <paramref name="report"/> names the file written, or the file that already
    /// held the entry when <paramref name="changed"/> is false), else the error.
    /// </summary>
    public static string? Write(string path, Func<string, Edit> merge, out string report, out bool changed)
    {
        report = "";
        changed = false;
        var target = path;
        var viaLink = false;
        try
        {
            if (new FileInfo(path).LinkTarget is not null)
            {
                var final = File.ResolveLinkTarget(path, returnFinalTarget: true);
                if (final is null || !final.Exists && !Directory.Exists(final.FullName))
                    return $"{path} is a symbolic link to {final?.FullName ?? "nothing"}, which does not exist; it is left alone (create the file it points to, or remove the link)";
                target = final.FullName;
                viaLink = true;
            }
        }
        catch (IOException ex)
        {
            return $"{path} is a symbolic link that cannot be followed ({ex.Message}); it is left alone";
        }

        string? existing = null;
        byte[]? oldBytes = null;
        switch (UserFile.Read(target, MaxBytes))
        {
            case UserFileRead.Missing:
                break;
            case UserFileRead.Bytes bytes:
                oldBytes = bytes.Content;
                try
                {
                    existing = StrictUtf8.GetString(bytes.Content);
                }
                catch (DecoderFallbackException)
                {
                    return $"{Shown(path, target)} is not valid UTF-8 text; it is left alone";
                }
                break;
            case UserFileRead.NotRegular notRegular:
                return $"{Shown(path, target)} is {UserFile.Describe(notRegular.Kind)}; it is left alone";
            case UserFileRead.TooLarge:
                return $"{Shown(path, target)} is larger than {MaxBytes / (1024 * 1024)} MiB, more than any client config; it is left alone";
            case UserFileRead.Denied denied:
                return $"cannot read {Shown(path, target)} ({denied.Message}); it is left alone. If another user owns it (`sudo claude` leaves "
                       + $"~/.claude.json owned by root), give it back first: sudo chown \"$USER\" {target}";
            case UserFileRead.Failed failed:
                return $"cannot read {Shown(path, target)} ({failed.Message}); it is left alone";
        }

        var edit = merge(existing ?? "");
        if (edit.Error is { } reason) return $"cannot update {Shown(path, target)}: {reason}; it is left as it was";
        var merged = edit.Text!;
        if (existing == merged)
        {
            report = path;
            return null;
        }

        var mode = existing is null ? UnixFileMode.UserRead | UnixFileMode.UserWrite : ModeOf(target);
        if (oldBytes is not null)
        {
            var backupError = WriteAtomic(path + ".bak", oldBytes, mode);
            if (backupError is not null) return $"cannot keep the old file as {path}.bak ({backupError}); {path} is left as it was";
        }
        else
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(target))!;
            try
            {
                if (!Directory.Exists(dir))
                {
                    if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
                    else Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return $"cannot create {dir} ({ex.Message})";
            }
        }
        var writeError = WriteAtomic(target, StrictUtf8.GetBytes(merged), mode);
        if (writeError is not null) return $"cannot write {Shown(path, target)} ({writeError}); it is left as it was";
        changed = true;
        report = $"{path}" + (viaLink ? $" (the file it links to, {target})" : "")
                 + (oldBytes is null ? " (a new file)" : $"; the previous file is {path}.bak");
        return null;
    }

    private static string Shown(string path, string target) => path == target ? path : $"{path} (a link to {target})";

    private static UnixFileMode ModeOf(string path)
    {
        if (OperatingSystem.IsWindows()) return default;
        try
        {
            return File.GetUnixFileMode(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
    }

    /// <summary>
    /// The bytes as a new file beside <paramref name="path"/> (created exclusively: never through an existing name),
    /// flushed, then renamed over it — which replaces a link of that name instead of following it.
    /// </summary>
    private static string? WriteAtomic(string path, byte[] bytes, UnixFileMode mode)
    {
        var full = Path.GetFullPath(path);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = mode == default ? UnixFileMode.UserRead | UnixFileMode.UserWrite : mode;
            using (var stream = new FileStream(tmp, options))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            return ex.Message;
        }
    }
}
