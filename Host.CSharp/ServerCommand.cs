using Molecule.Agents;
using Molecule.Host.Mcp;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Host;

/// <summary>
/// The stdio server: a <see cref="MoleculeAgent"/> from the environment, served over MCP — its tools as MCP tools, its
/// pushed messages as <c>notifications/claude/channel</c>. Everything it does is the library's public API.
/// </summary>
public static class ServerCommand
{
    /// <summary>Exit code of a usage or configuration error.</summary>
    public const int UsageExitCode = 2;

    /// <summary>Runs until stdin closes or the agent must stop. Returns the exit code.</summary>
    public static async Task<int> RunAsync(CancellationToken ct)
    {
        var log = StderrLog.CreateForStderr(Severity.Warning);
        using var loggerFactory = new StderrLoggerFactory(log, MsLogLevel.Warning);
        MoleculeAgent agent;
        try
        {
            agent = await MoleculeAgent.ConnectAsync(MoleculeOptions.FromEnvironment(), loggerFactory, ct).ConfigureAwait(false);
        }
        catch (MoleculeOptionsException invalid)
        {
            var help = invalid.Message;
            Console.Error.Write(help.EndsWith('\n') ? help : help + "\n");
            Console.Error.Flush();
            return UsageExitCode;
        }
        if (agent.Settings.Verbose)
        {
            log.MinLevel = Severity.Info;
            loggerFactory.SdkMinLevel = MsLogLevel.Information;
        }
        log.Redactor = agent.Redact;
        // Environment.Exit (stdin EOF with a tool still running) skips the normal shutdown below.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => agent.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(3));

        var tools = MoleculeAgent.Tools.Select(tool => new DataTool(tool, agent.CallToolAsync)).ToList();
        var host = new McpHost(agent.Instructions, tools, loggerFactory, log, agent.Settings.MaxLineBytes, agent.Settings.PermissionRelay);
        host.ClientInitialized += () => _ = PushAsync(agent, host, log);
        host.PermissionRequested += agent.RelayPermissionPrompt;
        if (agent.Settings.PermissionRelay) _ = AnswerAsync(agent, host, log);

        var serving = host.RunAsync(ct);
        var first = await Task.WhenAny(serving, agent.Completion).ConfigureAwait(false);
        if (first == agent.Completion && agent.Completion.Exception?.InnerException is MoleculeAgentStoppedException stopped)
        {
            log.Flush();
            Console.Error.Flush();
            Environment.Exit(stopped.ExitCode);
        }
        var exitCode = await serving.ConfigureAwait(false);
        await agent.DisposeAsync().ConfigureAwait(false);
        log.Flush();
        return exitCode;
    }

    /// <summary>The user's decisions on relayed permission prompts, as <c>notifications/claude/channel/permission</c>.</summary>
    private static async Task AnswerAsync(MoleculeAgent agent, McpHost host, StderrLog log)
    {
        try
        {
            await foreach (var answer in agent.ReadPermissionAnswersAsync().ConfigureAwait(false))
                await host.SendPermissionAsync(answer).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            log.Error($"permission answers stopped: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>Once the client is ready: every message the agent pushes, as a channel notification, in order.</summary>
    private static async Task PushAsync(MoleculeAgent agent, McpHost host, StderrLog log)
    {
        try
        {
            await foreach (var notification in agent.ReadNotificationsAsync().ConfigureAwait(false))
                await host.SendChannelAsync(notification.ToJson()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            log.Error($"channel notifications stopped: {ex.GetType().Name}: {ex.Message}");
        }
    }
}
