using Microsoft.Extensions.Logging;
using MsLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Host.Mcp;

/// <summary>
/// <see cref="ILoggerFactory"/> writing to the process's one <see cref="StderrLog"/>: the agent's lines (category
/// <c>Molecule.Agents</c>, already filtered to the configured level and masked by the library) as they are, the MCP
/// SDK's as <c>mcp[category] …</c> from <see cref="SdkMinLevel"/> (Warning unless verbose).
/// </summary>
public sealed class StderrLoggerFactory(StderrLog log, MsLevel sdkMinLevel) : ILoggerFactory
{
    private const string AgentCategory = "Molecule.Agents";

    /// <summary>The lowest level of the SDK's own lines.</summary>
    public MsLevel SdkMinLevel { get; set; } = sdkMinLevel;

    public ILogger CreateLogger(string categoryName) =>
        categoryName == AgentCategory ? new AgentLogger(log) : new SdkLogger(this, log, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
        // Single fixed sink; providers are not supported.
    }

    public void Dispose()
    {
    }

    /// <summary>The agent's lines: the library filtered them by the configured level and masked them.</summary>
    private sealed class AgentLogger(StderrLog log) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(MsLevel logLevel) => logLevel != MsLevel.None;

        public void Log<TState>(MsLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) log.WriteLine(StderrLog.ToSeverity(logLevel), formatter(state, exception));
        }
    }

    private sealed class SdkLogger(StderrLoggerFactory factory, StderrLog log, string category) : ILogger
    {
        private readonly string _shortCategory = ShortName(category);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(MsLevel logLevel) => logLevel != MsLevel.None && logLevel >= factory.SdkMinLevel;

        public void Log<TState>(MsLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var message = formatter(state, exception);
            if (exception is not null)
                message = $"{message} ({exception.GetType().Name}: {exception.Message})";
            var severity = StderrLog.ToSeverity(logLevel);
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
