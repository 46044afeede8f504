using Microsoft.Extensions.Logging;
using CoreLevel = Molecule.Core.LogLevel;
using MsLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Agents;

/// <summary>
/// The agent's one log: the core's log lines and the runtime's own, handed to an <see cref="ILogger"/> with every
/// secret this agent holds (its tokens) masked first — the logger never sees one. Lines below the core's level for the
/// configuration (Warning, or Information with MOLECULE_MCP_VERBOSE) are not written. Thread-safe.
/// </summary>
internal sealed class AgentLog(ILogger logger)
{
    private readonly object _gate = new();
    private volatile string[] _secrets = [];
    private volatile int _minLevel = (int)MsLevel.Warning;

    /// <summary>The lowest level written (the core's <c>Config.minLogLevel</c>).</summary>
    public MsLevel MinLevel
    {
        get => (MsLevel)_minLevel;
        set => _minLevel = (int)value;
    }

    /// <summary>Registers a value that must never appear in a log line (a token).</summary>
    public void AddSecret(string? secret)
    {
        if (string.IsNullOrEmpty(secret)) return;
        lock (_gate)
        {
            if (Array.IndexOf(_secrets, secret) >= 0) return;
            _secrets = [.. _secrets, secret];
        }
    }

    /// <summary>The text with every registered secret masked.</summary>
    public string Redact(string text) => Molecule.Protocol.Secrets.mask(_secrets, text ?? "");

    public void Write(MsLevel level, string text)
    {
        if (level < MinLevel || !logger.IsEnabled(level)) return;
        logger.Log(level, "{Line}", Redact(text));
    }

    public void Write(CoreLevel level, string text) => Write(ToLevel(level), text);

    public void Debug(string text) => Write(MsLevel.Debug, text);
    public void Info(string text) => Write(MsLevel.Information, text);
    public void Warning(string text) => Write(MsLevel.Warning, text);
    public void Error(string text) => Write(MsLevel.Error, text);

    public static MsLevel ToLevel(CoreLevel level) =>
        level.Tag switch
        {
            CoreLevel.Tags.Debug => MsLevel.Debug,
            CoreLevel.Tags.Info => MsLevel.Information,
            CoreLevel.Tags.Warning => MsLevel.Warning,
            _ => MsLevel.Error,
        };
}
