using System.Runtime.InteropServices;

namespace Molecule.Agents.Effects;

/// <summary>What a path names, after following symbolic links.</summary>
internal enum UserFileKind
{
    Missing,
    Regular,
    Directory,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,
    /// <summary>The path could not be examined (a folder on the way is not searchable).</summary>
    Unknown,
}

/// <summary>What <see cref="UserFile.Read"/> found.</summary>
internal abstract record UserFileRead
{
    private UserFileRead() { }

    /// <summary>Nothing at the path.</summary>
    public sealed record Missing : UserFileRead;

    /// <summary>The whole file, at most the limit.</summary>
    public sealed record Bytes(byte[] Content) : UserFileRead;

    /// <summary>Not a regular file (a named pipe, a device, a directory, a socket): never opened.</summary>
    public sealed record NotRegular(UserFileKind Kind) : UserFileRead;

    /// <summary>Larger than the limit: not read past it.</summary>
    public sealed record TooLarge(long Limit) : UserFileRead;

    /// <summary>Permission denied.</summary>
    public sealed record Denied(string Message) : UserFileRead;

    /// <summary>Another IO failure.</summary>
    public sealed record Failed(string Message) : UserFileRead;
}

/// <summary>
/// Files the user owns (MCP client configs, token files): what kind of file a path names, and its bytes read without
/// ever blocking on a named pipe, reading a device or holding more than a limit in memory. Never throws.
/// </summary>
internal static class UserFile
{
    /// <summary>The kind of file at <paramref name="path"/>, links followed.</summary>
    public static UserFileKind KindOf(string path)
    {
        if (OperatingSystem.IsWindows())
            return Directory.Exists(path) ? UserFileKind.Directory : File.Exists(path) ? UserFileKind.Regular : UserFileKind.Missing;
        var (kind, _) = Stat(path);
        return kind;
    }

    /// <summary>How a kind is named in an error (after "is ").</summary>
    public static string Describe(UserFileKind kind) => kind switch
    {
        UserFileKind.Missing => "missing",
        UserFileKind.Regular => "a regular file",
        UserFileKind.Directory => "a directory",
        UserFileKind.Fifo => "a named pipe (FIFO), not a regular file",
        UserFileKind.CharacterDevice => "a character device, not a regular file",
        UserFileKind.BlockDevice => "a block device, not a regular file",
        UserFileKind.Socket => "a socket, not a regular file",
        _ => "not a file that can be examined",
    };

    /// <summary>The bytes of the regular file at <paramref name="path"/>, when it holds at most <paramref name="limit"/> bytes.</summary>
    public static UserFileRead Read(string path, long limit)
    {
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                var (kind, size) = Stat(path);
                if (kind == UserFileKind.Missing) return new UserFileRead.Missing();
                if (kind == UserFileKind.Unknown) return new UserFileRead.Denied("permission denied (a folder on its path cannot be searched)");
                if (kind != UserFileKind.Regular) return new UserFileRead.NotRegular(kind);
                if (size > limit) return new UserFileRead.TooLarge(limit);
            }
            else if (Directory.Exists(path)) return new UserFileRead.NotRegular(UserFileKind.Directory);
            else if (!File.Exists(path)) return new UserFileRead.Missing();

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
            // Read one byte past the limit at most: a file that grew since stat is still refused, never held whole.
            var buffer = new byte[Math.Min(limit + 1, Math.Max(stream.Length + 1, 4096))];
            var total = 0;
            while (true)
            {
                if (total == buffer.Length)
                {
                    if (total > limit) return new UserFileRead.TooLarge(limit);
                    Array.Resize(ref buffer, (int)Math.Min(limit + 1, (long)buffer.Length * 2));
                }
                var n = stream.Read(buffer, total, buffer.Length - total);
                if (n == 0) break;
                total += n;
                if (total > limit) return new UserFileRead.TooLarge(limit);
            }
            return new UserFileRead.Bytes(buffer.AsSpan(0, total).ToArray());
        }
        catch (FileNotFoundException) { return new UserFileRead.Missing(); }
        catch (DirectoryNotFoundException) { return new UserFileRead.Missing(); }
        catch (UnauthorizedAccessException ex) { return new UserFileRead.Denied(ex.Message); }
        catch (IOException ex) { return new UserFileRead.Failed(ex.Message); }
    }

    // stat(2) through the .NET runtime's own native shim (System.Native, linked into every .NET app and the NativeAOT
    // executable): its FileStatus starts {int Flags; int Mode; uint Uid; uint Gid; long Size; …} on every Unix, with
    // portable S_IF* bits. The buffer is larger than the struct.
    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
    private static extern int SystemNativeStat(byte[] path, [Out] byte[] status);

    private const int TypeMask = 0xF000;

    private static (UserFileKind Kind, long Size) Stat(string path)
    {
        var bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(path) + 1];
        System.Text.Encoding.UTF8.GetBytes(path, 0, path.Length, bytes, 0);
        var status = new byte[512];
        int result;
        try
        {
            result = SystemNativeStat(bytes, status);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // Without the shim: no type check beyond what .NET shows (a directory, or a file of some kind).
            return Directory.Exists(path) ? (UserFileKind.Directory, 0)
                : File.Exists(path) ? (UserFileKind.Regular, new FileInfo(path).Length) : (UserFileKind.Missing, 0);
        }
        if (result != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno is 2 or 20 ? (UserFileKind.Missing, 0) : (UserFileKind.Unknown, 0); // ENOENT, ENOTDIR
        }
        var mode = BitConverter.ToInt32(status, 4);
        var size = BitConverter.ToInt64(status, 16);
        var kind = (mode & TypeMask) switch
        {
            0x8000 => UserFileKind.Regular,
            0x4000 => UserFileKind.Directory,
            0x1000 => UserFileKind.Fifo,
            0x2000 => UserFileKind.CharacterDevice,
            0x6000 => UserFileKind.BlockDevice,
            0xC000 => UserFileKind.Socket,
            _ => UserFileKind.Unknown,
        };
        return (kind, size);
    }
}
