using System.Diagnostics;
using Molecule.Core;
using Molecule.Protocol;

namespace Molecule.Agents.Effects;

/// <summary>
/// MOLECULE_WORKSPACE_TOKEN_FILE of one workspace, watched by content: a look reads the file again when its size or
/// time stamp changed, and at least once a second whatever they say — a rotation that keeps both (<c>cp -p</c>,
/// <c>rsync -t</c>: tokens all have one length) or swaps the folder a link points through (a Kubernetes secret's
/// <c>..data</c> link) is seen too. Reports what the file holds when that differs from the last report; the core
/// judges it by the rules of the start (<see cref="ConfigModule.readTokenFile"/>).
/// </summary>
internal sealed class TokenFileWatch(WorkspaceId workspace, string path)
{
    private static readonly TimeSpan ReadEvery = TimeSpan.FromSeconds(1);
    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private (long Length, DateTime Written) _stamp = Stamp(path);
    private long _lastRead = Stopwatch.GetTimestamp();
    private ConfigModule.FileRead? _reported;

    public WorkspaceId Workspace { get; } = workspace;

    /// <summary>What the file holds now, or null when that is what the last look found.</summary>
    public ConfigModule.FileRead? Changed()
    {
        var stamp = Stamp(path);
        if (stamp == _stamp && Stopwatch.GetElapsedTime(_lastRead) < ReadEvery) return null;
        _stamp = stamp;
        _lastRead = Stopwatch.GetTimestamp();
        var read = Read(path);
        if (_reported is not null && read.Equals(_reported)) return null;
        _reported = read;
        return read;
    }

    /// <summary>
    /// What is at a token file's path, for the core to judge: never blocks on a named pipe, never reads a device,
    /// never reads more than <see cref="ConfigModule.tokenFileLimit"/> bytes.
    /// </summary>
    public static ConfigModule.FileRead Read(string path) =>
        UserFile.Read(path, ConfigModule.tokenFileLimit) switch
        {
            UserFileRead.Missing => ConfigModule.FileRead.NotFound,
            UserFileRead.NotRegular { Kind: UserFileKind.Directory } => ConfigModule.FileRead.IsDirectory,
            UserFileRead.NotRegular other => ConfigModule.FileRead.NewNotRegular(UserFile.Describe(other.Kind)),
            UserFileRead.TooLarge large => ConfigModule.FileRead.NewTooLarge(large.Limit),
            UserFileRead.Denied => ConfigModule.FileRead.Denied,
            UserFileRead.Failed failed => ConfigModule.FileRead.NewUnreadable(failed.Message),
            UserFileRead.Bytes bytes => Decode(bytes.Content),
            _ => ConfigModule.FileRead.NewUnreadable("unknown"),
        };

    private static ConfigModule.FileRead Decode(byte[] bytes)
    {
        try
        {
            return ConfigModule.FileRead.NewContents(StrictUtf8.GetString(bytes));
        }
        catch (System.Text.DecoderFallbackException)
        {
            return ConfigModule.FileRead.NotUtf8;
        }
    }

    private static (long, DateTime) Stamp(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Exists ? (info.Length, info.LastWriteTimeUtc) : (-1, default);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (-2, default);
        }
    }
}
