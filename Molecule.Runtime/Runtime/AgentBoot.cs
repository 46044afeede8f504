using System.Collections;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Runtime.Effects;
using Molecule.Runtime.Logging;
using CoreConfig = Molecule.Core.ConfigModule;

namespace Molecule.Runtime;

/// <summary>The outcome of <see cref="AgentBoot.Create"/>: a runtime, or why there is none and the exit code to use.</summary>
public sealed record RuntimeStart(AgentRuntime? Runtime, int ExitCode, string? Error);

/// <summary>
/// Builds an <see cref="AgentRuntime"/> from the environment the reference documents (WORKSPACE_ID, PLATFORM_URL,
/// MOLECULE_WORKSPACE_TOKEN, …): validates it, finds the state directory, opens the workspace's inbox ledger (or
/// the old shared state file to migrate) and decides whether this process polls it.
/// </summary>
public static class AgentBoot
{
    /// <summary>Exit code of a missing or invalid configuration.</summary>
    public const int UsageExitCode = 2;

    /// <summary>The process environment as a plain dictionary.</summary>
    public static IReadOnlyDictionary<string, string> ProcessEnvironment()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
            if (e.Key is string k && e.Value is string v) env[k] = v;
        return env;
    }

    /// <summary>The user's home directory as the environment gives it.</summary>
    public static string Home(IReadOnlyDictionary<string, string> environment) =>
        environment.TryGetValue("HOME", out var h) && h.Length > 0 ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>The workspaces the environment configures (the primary first), or every problem; reads the token files.</summary>
    public static FSharpResult<FSharpList<Config>, FSharpList<CoreConfig.ConfigError>> Parse(IReadOnlyDictionary<string, string> environment, StderrLog log)
    {
        var env = MapModule.OfSeq(environment.Select(kv => Tuple.Create(kv.Key, kv.Value)));
        var stateDir = CoreConfig.stateDir(env, Home(environment), StateFiles.IsWritableDir("/configs"));

        var tokenText = StateFiles.ReadPath(Path.Combine(stateDir, CoreConfig.tokenFileName), out var tokenError);
        if (tokenError is not null) log.Warning(tokenError);

        var tokenFile = environment.TryGetValue("MOLECULE_WORKSPACE_TOKEN_FILE", out var tokenPath) && tokenPath.Trim().Length > 0
            ? FSharpOption<CoreConfig.FileRead>.Some(ReadTokenFile(tokenPath.Trim()))
            : FSharpOption<CoreConfig.FileRead>.None;
        return Connections.parse(env, stateDir, Option(tokenText), tokenFile);
    }

    /// <summary>Creates a runtime (not yet started) for <paramref name="environment"/>; logs go to <paramref name="log"/>.</summary>
    public static RuntimeStart Create(IReadOnlyDictionary<string, string> environment, StderrLog log, HttpExecutor? http = null)
    {
        var parsed = Parse(environment, log);
        if (parsed.IsError) return new RuntimeStart(null, UsageExitCode, Connections.helpText(parsed.ErrorValue));

        var configs = parsed.ResultValue.ToList();
        foreach (var c in configs) log.AddSecret(c.Token);
        log.MinLevel = StderrLog.ToSeverity(CoreConfig.minLogLevel(configs[0]));

        var dirError = StateFiles.EnsureDir(configs[0].StateDir);
        if (dirError is not null) log.Warning(dirError);

        var workspaces = new List<(Config, Workspace.Boot, LedgerStore?)>();
        foreach (var config in configs)
        {
            var (boot, store) = config.InboxEnabled ? OpenLedger(config, log) : (Fresh(config, leader: false), null);
            workspaces.Add((config, boot, store));
        }
        return new RuntimeStart(new AgentRuntime(workspaces, log, http ?? new HttpExecutor()), 0, null);
    }

    /// <summary>What is at MOLECULE_WORKSPACE_TOKEN_FILE's path, for the core to judge.</summary>
    public static CoreConfig.FileRead ReadTokenFile(string path) => TokenFileWatch.Read(path);

    private static Workspace.Boot Fresh(Config config, bool leader) =>
        new(Ledger.empty(config.WorkspaceId), 0L, 0, false, leader,
            FSharpOption<Tuple<FSharpOption<string>, FSharpList<InboxMessage>, FSharpList<string>>>.None);

    /// <summary>Reads the workspace's ledger under its write lock; a file of another workspace is never loaded.</summary>
    private static (Workspace.Boot, LedgerStore) OpenLedger(Config config, StderrLog log)
    {
        var store = new LedgerStore(config.StateDir, config.WorkspaceId);
        var leader = store.TryClaimPoller();
        using var writeLock = store.LockForWrite(out var lockError);
        if (lockError is not null) log.Warning(lockError);

        var text = store.ReadAll(out var readError);
        if (readError is not null) log.Warning(readError);
        if (text is not null)
        {
            var restored = Journal.restore(config.WorkspaceId, text);
            if (restored.IsOk)
            {
                var r = restored.ResultValue;
                if (r.Ignored > 0)
                    log.Info($"inbox ledger {store.FileName}: skipped {r.Ignored} unreadable line(s) (a write cut short by a crash is never acknowledged)");
                return (new Workspace.Boot(r.State, r.Generation, r.Events, true, leader,
                    FSharpOption<Tuple<FSharpOption<string>, FSharpList<InboxMessage>, FSharpList<string>>>.None), store);
            }
            log.Warning($"inbox ledger {store.FilePath} is not this workspace's ({Journal.describeRefusal(restored.ErrorValue)}); moved aside to {store.FileName}.rejected, starting a fresh ledger");
            var asideError = store.SetAside();
            if (asideError is not null) log.Warning(asideError);
            return (Fresh(config, leader), store);
        }

        var legacyText = StateFiles.Read(config.StateDir, Journal.legacyFileName, out var legacyError);
        if (legacyError is not null) log.Warning(legacyError);
        var legacy = legacyText is null ? null : Journal.readLegacy(legacyText);
        if (legacyText is not null && legacy is null)
            log.Info($"left {Journal.legacyFileName} alone: it is not a state file this version can read");
        return (new Workspace.Boot(Ledger.empty(config.WorkspaceId), 0L, 0, false, leader,
            legacy ?? FSharpOption<Tuple<FSharpOption<string>, FSharpList<InboxMessage>, FSharpList<string>>>.None), store);
    }

    private static FSharpOption<string> Option(string? value) =>
        value is null ? FSharpOption<string>.None : FSharpOption<string>.Some(value);
}
