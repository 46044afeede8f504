using Molecule.Host.Mcp;
using Molecule.Runtime;
using Molecule.Runtime.Logging;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Host;

/// <summary>The stdio server: the agent runtime from the environment, served over MCP.</summary>
public static class ServerCommand
{
    /// <summary>Exit code of a usage or configuration error.</summary>
    public const int UsageExitCode = AgentBoot.UsageExitCode;

    /// <summary>Runs until stdin closes or the agent must stop. Returns the exit code.</summary>
    public static async Task<int> RunAsync(CancellationToken ct)
    {
        var log = StderrLog.CreateForStderr(Severity.Warning);
        var start = AgentBoot.Create(AgentBoot.ProcessEnvironment(), log);
        if (start.Runtime is not { } runtime)
        {
            var help = start.Error ?? "";
            Console.Error.Write(help.EndsWith('\n') ? help : help + "\n");
            Console.Error.Flush();
            return start.ExitCode;
        }

        using var loggerFactory = new StderrLoggerFactory(log, runtime.Verbose ? MsLogLevel.Information : MsLogLevel.Warning);
        var tools = AgentRuntime.Tools.Select(tool => new DataTool(tool, runtime.CallToolAsync)).ToList();
        var host = new McpHost(runtime.Instructions, tools, loggerFactory, log, runtime.MaxLineBytes);
        runtime.ChannelSink = host.SendChannelAsync;
        host.ClientInitialized += runtime.ClientInitialized;

        runtime.Start();
        var serving = host.RunAsync(ct);
        var first = await Task.WhenAny(serving, runtime.Exited).ConfigureAwait(false);
        if (first == runtime.Exited)
        {
            log.Flush();
            Console.Error.Flush();
            Environment.Exit(runtime.Exited.Result);
        }
        var exitCode = await serving.ConfigureAwait(false);
        runtime.Stop();
        log.Flush();
        return exitCode;
    }
}
