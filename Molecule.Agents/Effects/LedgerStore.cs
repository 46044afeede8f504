using System.Text;
using Molecule.Core;

namespace Molecule.Agents.Effects;

/// <summary>What another process changed in a ledger file since this one last read it.</summary>
internal abstract record LedgerChange
{
    private LedgerChange() { }

    /// <summary>Complete lines appended after what this process has read.</summary>
    public sealed record Appended(IReadOnlyList<string> Lines) : LedgerChange;

    /// <summary>The file was rewritten (compacted): its whole text.</summary>
    public sealed record Rewritten(string Text) : LedgerChange;
}

/// <summary>
/// The files of one workspace's inbox ledger in the state directory: the journal (<c>inbox-&lt;id&gt;.jsonl</c>), a
/// write lock held around every change (so processes of one machine never interleave a decision and its write), and
/// a poller lock held for life by the one process that polls the platform. Locks are <c>flock</c> locks taken by
/// opening with <see cref="FileShare.None"/>, released by the kernel when a process dies (kill -9 included).
/// Appends are flushed to disk before they return; a rewrite is atomic (temp + rename). Failures are returned as
/// error texts, never thrown.
/// </summary>
internal sealed class LedgerStore : IDisposable
{
    private static readonly UTF8Encoding Utf8 = new(false);
    private static readonly TimeSpan WriteLockPatience = TimeSpan.FromSeconds(10);

    private readonly string _dir;
    private readonly string _writeLockPath;
    private readonly string _pollerLockPath;
    private FileStream? _poller;
    private long _offset;
    private string? _header;
    private (long Length, DateTime Written) _seen = (-1, default);

    public LedgerStore(string dir, Molecule.Protocol.WorkspaceId workspaceId)
    {
        _dir = dir;
        FileName = Journal.fileName(workspaceId);
        FilePath = Path.Combine(dir, FileName);
        var lockName = Journal.lockFileName(workspaceId);
        _writeLockPath = Path.Combine(dir, lockName);
        _pollerLockPath = Path.Combine(dir, Path.GetFileNameWithoutExtension(lockName) + ".poller.lock");
    }

    public string FileName { get; }
    public string FilePath { get; }

    /// <summary>True while this process holds the poller lock.</summary>
    public bool IsPoller => _poller is not null;

    /// <summary>Takes the poller lock if no other process holds it. Returns whether this process holds it now.</summary>
    public bool TryClaimPoller()
    {
        if (_poller is not null) return true;
        try
        {
            StateFiles.EnsureDir(_dir);
            _poller = Open(_pollerLockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The whole ledger file, or null when there is none (or it cannot be read: then <paramref name="error"/>).</summary>
    public string? ReadAll(out string? error)
    {
        var text = StateFiles.ReadPath(FilePath, out error);
        Remember(text);
        return text;
    }

    /// <summary>Moves an unusable ledger file aside (<c>.rejected</c>) so a fresh one can be written.</summary>
    public string? SetAside()
    {
        try
        {
            File.Move(FilePath, FilePath + ".rejected", overwrite: true);
            _header = null;
            _offset = 0;
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot move {FilePath} aside: {ex.Message}";
        }
    }

    /// <summary>
    /// Takes the write lock (waiting for another process to finish its change); dispose the result to release it.
    /// Null when the lock could not be taken in time (then <paramref name="error"/> says why; the caller goes on).
    /// </summary>
    public IDisposable? LockForWrite(out string? error)
    {
        error = null;
        var deadline = DateTime.UtcNow + WriteLockPatience;
        while (true)
        {
            try
            {
                StateFiles.EnsureDir(_dir);
                return Open(_writeLockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException ex) when (DateTime.UtcNow < deadline && File.Exists(_writeLockPath))
            {
                _ = ex;
                Thread.Sleep(2);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error = $"cannot lock {_writeLockPath}: {ex.Message}";
                return null;
            }
        }
    }

    /// <summary>What another process wrote since this one last read or wrote the file (null: nothing).</summary>
    public LedgerChange? CatchUp()
    {
        try
        {
            var info = new FileInfo(FilePath);
            if (!info.Exists) return null;
            if (info.Length == _seen.Length && info.LastWriteTimeUtc == _seen.Written) return null;
            using var fs = Open(FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var length = fs.Length;
            _seen = (info.Length, info.LastWriteTimeUtc);
            // The header line is short: read it alone, and the rest only from where this process stopped.
            var head = new byte[(int)Math.Min(length, 1024)];
            fs.ReadExactly(head);
            var firstNewline = Array.IndexOf(head, (byte)'\n');
            var header = firstNewline < 0 ? Utf8.GetString(head) : Utf8.GetString(head, 0, firstNewline);
            if (header != _header)
            {
                fs.Seek(0, SeekOrigin.Begin);
                var all = new byte[length];
                fs.ReadExactly(all);
                var text = Utf8.GetString(all);
                _header = header;
                _offset = all.Length;
                return new LedgerChange.Rewritten(text);
            }
            if (length <= _offset) return null;
            fs.Seek(_offset, SeekOrigin.Begin);
            var rest = new byte[length - _offset];
            fs.ReadExactly(rest);
            var lastNewline = Array.LastIndexOf(rest, (byte)'\n');
            if (lastNewline < 0) return null; // only a partial line so far
            var tail = Utf8.GetString(rest, 0, lastNewline + 1);
            _offset += lastNewline + 1;
            var lines = tail.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return lines.Length == 0 ? null : new LedgerChange.Appended(lines);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Applies a ledger write durably (appended and flushed to disk, or rewritten atomically).</summary>
    public string? Write(LedgerWrite write) =>
        write switch
        {
            LedgerWrite.Append append => Append(append.lines),
            LedgerWrite.Rewrite rewrite => Rewrite(rewrite.text),
            _ => "unknown ledger write",
        };

    private string? Append(IEnumerable<string> lines)
    {
        try
        {
            using var fs = Open(FilePath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            var sb = new StringBuilder();
            // A line torn by a crash mid-write stays a line of its own (the reader skips it).
            if (fs.Length > 0)
            {
                fs.Seek(-1, SeekOrigin.End);
                if (fs.ReadByte() != '\n') sb.Append('\n');
            }
            foreach (var line in lines) sb.Append(line).Append('\n');
            fs.Seek(0, SeekOrigin.End);
            var bytes = Utf8.GetBytes(sb.ToString());
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
            _offset = fs.Length;
            Refresh();
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot append to {FilePath}: {ex.Message}";
        }
    }

    private string? Rewrite(string text)
    {
        var error = StateFiles.WriteAtomic(_dir, FileName, text);
        if (error is not null) return error;
        Remember(text);
        return null;
    }

    private void Remember(string? text)
    {
        if (text is null) return;
        var newline = text.IndexOf('\n');
        _header = newline < 0 ? text : text[..newline];
        _offset = Utf8.GetByteCount(text);
        Refresh();
    }

    private void Refresh()
    {
        try
        {
            var info = new FileInfo(FilePath);
            _seen = info.Exists ? (info.Length, info.LastWriteTimeUtc) : (-1, default);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _seen = (-1, default);
        }
    }

    private static FileStream Open(string path, FileMode mode, FileAccess access, FileShare share)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = share };
        if (!OperatingSystem.IsWindows() && mode != FileMode.Open)
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        return new FileStream(path, options);
    }

    public void Dispose()
    {
        _poller?.Dispose();
        _poller = null;
    }
}
