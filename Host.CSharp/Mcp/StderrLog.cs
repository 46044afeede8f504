using System.Text;
using Microsoft.Extensions.Logging;
using MsLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Host;

/// <summary>Severity used by the stderr sink.</summary>
public enum Severity
{
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// <summary>
/// The single stderr sink of the process. Every line is <c>[molecule-mcp] text</c>, with
/// <c>WARNING: </c> / <c>ERROR: </c> after the prefix for those levels. Thread-safe. Registered
/// secrets (the bearer token) are replaced by <c>***</c> before anything is written.
/// Nothing here ever writes to stdout. As an <see cref="ILogger"/> it takes the commands' own lines (the agent logs
/// through <see cref="StderrLoggerFactory"/>).
/// </summary>
public sealed class StderrLog : ILogger
{
    public const string Prefix = "[molecule-mcp] ";

    private readonly object _gate = new();
    private readonly TextWriter _sink;
    private volatile string[] _secrets = [];
    private volatile int _minLevel;

    public StderrLog(TextWriter sink, Severity minLevel = Severity.Warning)
    {
        _sink = sink;
        _minLevel = (int)minLevel;
    }

    /// <summary>A sink on the raw stderr stream (independent of <see cref="Console.Out"/> redirection).</summary>
    public static StderrLog CreateForStderr(Severity minLevel = Severity.Warning)
    {
        var stream = Console.OpenStandardError();
        var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true };
        return new StderrLog(TextWriter.Synchronized(writer), minLevel);
    }

    public Severity MinLevel
    {
        get => (Severity)_minLevel;
        set => _minLevel = (int)value;
    }

    public bool IsEnabled(Severity level) => (int)level >= _minLevel;

    /// <summary>Registers a value that must never appear in output (e.g. the token). Empty/short values are ignored.</summary>
    public void AddSecret(string? secret)
    {
        if (string.IsNullOrEmpty(secret) || secret.Length < 4) return;
        lock (_gate)
        {
            if (Array.IndexOf(_secrets, secret) >= 0) return;
            _secrets = [.. _secrets, secret];
        }
    }

    /// <summary>Masks what else must not appear (the agent's own secrets, which change with a token file).</summary>
    public Func<string, string>? Redactor { get; set; }

    /// <summary>Replaces every registered secret in <paramref name="text"/> by <c>***</c>.</summary>
    public string Redact(string text)
    {
        var masked = Molecule.Protocol.Secrets.mask(_secrets, text);
        return Redactor is { } more ? more(masked) : masked;
    }

    public void Write(Severity level, string text)
    {
        if (IsEnabled(level)) WriteLine(level, text);
    }

    /// <summary>Writes a line whatever <see cref="MinLevel"/> says (its source filtered it already).</summary>
    public void WriteLine(Severity level, string text)
    {
        var label = level switch
        {
            Severity.Warning => "WARNING: ",
            Severity.Error => "ERROR: ",
            _ => "",
        };
        var line = Prefix + label + Redact(text ?? "");
        lock (_gate)
        {
            try
            {
                _sink.WriteLine(line);
                _sink.Flush();
            }
            catch (IOException)
            {
                // stderr closed: nothing sensible left to do.
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    public void Debug(string text) => Write(Severity.Debug, text);
    public void Info(string text) => Write(Severity.Info, text);
    public void Warning(string text) => Write(Severity.Warning, text);
    public void Error(string text) => Write(Severity.Error, text);

    public void Flush()
    {
        lock (_gate)
        {
            try { _sink.Flush(); } catch (IOException) { } catch (ObjectDisposedException) { }
        }
    }

    public static Severity ToSeverity(MsLevel level) =>
        level switch
        {
            MsLevel.Trace or MsLevel.Debug => Severity.Debug,
            MsLevel.Information => Severity.Info,
            MsLevel.Warning => Severity.Warning,
            _ => Severity.Error,
        };

    bool ILogger.IsEnabled(MsLevel logLevel) => logLevel != MsLevel.None && IsEnabled(ToSeverity(logLevel));

    void ILogger.Log<TState>(MsLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (logLevel != MsLevel.None) Write(ToSeverity(logLevel), formatter(state, exception));
    }

    IDisposable? ILogger.BeginScope<TState>(TState state) => null;
}
