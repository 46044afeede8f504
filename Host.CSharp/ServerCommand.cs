using System.Collections;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Host.Mcp;
using Molecule.Runtime;
using Molecule.Runtime.Effects;
using Molecule.Runtime.Logging;
using CoreChannel = Molecule.Core.Channel;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Host;

/// <summary>The stdio server: configuration from the environment, the agent runtime and the MCP host.</summary>
public static class ServerCommand
{
    /// <summary>Exit code of a usage or configuration error.</summary>
    public const int UsageExitCode = 2;

    /// <summary>The stdio server entry point: configuration, state, MCP host, agent start. Returns the exit code.</summary>
    public static async Task<int> RunAsync(CancellationToken ct)
    {
        var log = StderrLog.CreateForStderr(Severity.Warning);

        var env = ReadEnvironment();
        var home = Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } h
            ? h
            : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var stateDir = ConfigModule.stateDir(env, home, StateFiles.IsWritableDir("/configs"));

        var tokenText = StateFiles.ReadPath(Path.Combine(stateDir, ConfigModule.tokenFileName), out var tokenError);
        if (tokenError is not null) log.Warning(tokenError);

        var parsed = ConfigModule.parse(env, stateDir, Option(tokenText));
        if (parsed.IsError)
        {
            var help = ConfigModule.helpText(parsed.ErrorValue);
            Console.Error.Write(help.EndsWith('\n') ? help : help + "\n");
            Console.Error.Flush();
            return UsageExitCode;
        }

        var config = parsed.ResultValue;
        log.AddSecret(config.Token);
        log.MinLevel = StderrLog.ToSeverity(ConfigModule.minLogLevel(config));

        var dirError = StateFiles.EnsureDir(config.StateDir);
        if (dirError is not null) log.Warning(dirError);

        var inboxFile = StateFiles.Read(config.StateDir, Inbox.stateFileName, out var inboxError);
        if (inboxError is not null) log.Warning(inboxError);
        var legacyCursor = StateFiles.Read(config.StateDir, Inbox.legacyCursorFileName, out var cursorError);
        if (cursorError is not null) log.Warning(cursorError);
        var inbox = Inbox.restore(Option(inboxFile), Option(legacyCursor));

        using var loggerFactory = new StderrLoggerFactory(log, config.Verbose ? MsLogLevel.Information : MsLogLevel.Warning);
        using var http = new HttpExecutor();
        var runtime = new AgentRuntime(config, inbox, log, http);

        var tools = Tools.specs.Select(spec => new DataTool(spec, runtime.HandleToolAsync)).ToList();
        var host = new McpHost(CoreChannel.instructions(config.PollTimeoutSecs), tools, loggerFactory, log);
        runtime.ChannelSink = host.SendChannelAsync;
        host.ClientInitialized += runtime.ClientInitialized;

        runtime.Dispatch(Agent.Msg.Start);
        var exitCode = await host.RunAsync(ct).ConfigureAwait(false);
        runtime.Stop();
        log.Flush();
        return exitCode;
    }

    private static FSharpOption<string> Option(string? value) =>
        value is null ? FSharpOption<string>.None : FSharpOption<string>.Some(value);

    private static FSharpMap<string, string> ReadEnvironment()
    {
        var pairs = new List<Tuple<string, string>>();
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
            if (e.Key is string k && e.Value is string v) pairs.Add(Tuple.Create(k, v));
        return MapModule.OfSeq(pairs);
    }
}
