using Microsoft.Extensions.Logging;
using Molecule.Runtime.Logging;
using MsLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Host.Mcp;

/// <summary>
/// <see cref="ILoggerFactory"/> for the MCP SDK that writes to the same <see cref="StderrLog"/> sink.
/// The SDK's own messages are shown from <c>minLevel</c> (Warning unless verbose).
/// </summary>
public sealed class StderrLoggerFactory(StderrLog log, MsLevel minLevel) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new StderrLogger(log, minLevel, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
        // Single fixed sink; providers are not supported.
    }

    public void Dispose()
    {
    }

    private sealed class StderrLogger(StderrLog log, MsLevel minLevel, string category) : ILogger
    {
        private readonly string _shortCategory = ShortName(category);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(MsLevel logLevel) => logLevel != MsLevel.None && logLevel >= minLevel;

        public void Log<TState>(MsLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var message = formatter(state, exception);
            if (exception is not null)
                message = $"{message} ({exception.GetType().Name}: {exception.Message})";
            var severity = logLevel switch
            {
                MsLevel.Trace or MsLevel.Debug => Severity.Debug,
                MsLevel.Information => Severity.Info,
                MsLevel.Warning => Severity.Warning,
                _ => Severity.Error,
            };
            // Protocol errors caused by the client (unknown method/tool, bad params) are already answered to the
            // client as JSON-RPC errors; Codex probes resources/list on every start. Keep them out of the warnings.
            if (severity > Severity.Info && (exception is ModelContextProtocol.McpProtocolException or OperationCanceledException
                                             || message.Contains("but no handler is available", StringComparison.Ordinal)))
                severity = Severity.Info;
            log.Write(severity, $"mcp[{_shortCategory}] {message}");
        }

        private static string ShortName(string category)
        {
            var i = category.LastIndexOf('.');
            return i >= 0 && i < category.Length - 1 ? category[(i + 1)..] : category;
        }
    }
}
