using Molecule.Core;

namespace Molecule.Agents.Effects;

/// <summary>What the core asks about files before it sends them (attachments): size, or why they cannot be read.</summary>
internal static class FileChecks
{
    /// <summary>Size of a readable regular file, or why it is missing/unreadable. Never throws.</summary>
    public static FileCheck Check(string path)
    {
        try
        {
            if (string.IsNullOrWhiteSpace(path)) return FileCheck.FileMissing;
            if (Directory.Exists(path)) return FileCheck.NewFileUnreadable("is a directory");
            var info = new FileInfo(path);
            if (!info.Exists) return FileCheck.FileMissing;
            using (File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
            }
            return FileCheck.NewFileOk(info.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException
                                       or NotSupportedException or System.Security.SecurityException)
        {
            return FileCheck.NewFileUnreadable(ex.Message);
        }
    }
}
