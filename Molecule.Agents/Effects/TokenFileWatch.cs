using Molecule.Core;
using Molecule.Protocol;

namespace Molecule.Agents.Effects;

/// <summary>
/// MOLECULE_WORKSPACE_TOKEN_FILE of one workspace: reports what is in it whenever its size or time stamp changed
/// since the last look (a stat per look; the file is read only when it changed).
/// </summary>
internal sealed class TokenFileWatch(WorkspaceId workspace, string path)
{
    private (long Length, DateTime Written) _seen = Stamp(path);

    public WorkspaceId Workspace { get; } = workspace;

    /// <summary>What the file holds now, or null when it did not change.</summary>
    public ConfigModule.FileRead? Changed()
    {
        var stamp = Stamp(path);
        if (stamp == _seen) return null;
        _seen = stamp;
        return AgentBoot.ReadTokenFile(path);
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
