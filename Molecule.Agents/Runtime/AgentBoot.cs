using System.Collections;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Agents.Effects;
using CoreConfig = Molecule.Core.ConfigModule;

namespace Molecule.Agents;

/// <summary>One workspace an agent serves, as it starts: its configuration, what its ledger held, and the ledger's
/// files (null when the inbox is disabled).</summary>
internal sealed record WorkspaceStart(Config Config, Workspace.Boot Boot, LedgerStore? Store);

/// <summary>
/// The start of an agent from the variables the reference documents (WORKSPACE_ID, PLATFORM_URL,
/// MOLECULE_WORKSPACE_TOKEN, …): the core validates them, this finds the state directory, reads the token files,
/// opens each workspace's inbox ledger (or the old shared state file to migrate) and decides whether this process
/// polls it.
/// </summary>
internal static class AgentBoot
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
    public static FSharpResult<FSharpList<Config>, FSharpList<CoreConfig.ConfigError>> Parse(IReadOnlyDictionary<string, string> environment, ILogger logger) =>
        Parse(environment, new AgentLog(logger));

    /// <summary>The workspaces the environment configures (the primary first), or every problem; reads the token files.</summary>
    public static FSharpResult<FSharpList<Config>, FSharpList<CoreConfig.ConfigError>> Parse(IReadOnlyDictionary<string, string> environment, AgentLog log)
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

    /// <summary>
    /// Opens every configured workspace: the state directory, each inbox ledger (read under its write lock) and
    /// the poller lock. The log learns the tokens and the configured level first.
    /// </summary>
    public static IReadOnlyList<WorkspaceStart> Open(IReadOnlyList<Config> configs, AgentLog log)
    {
        foreach (var c in configs) log.AddSecret(c.Token);
        log.MinLevel = AgentLog.ToLevel(CoreConfig.minLogLevel(configs[0]));

        var dirError = StateFiles.EnsureDir(configs[0].StateDir);
        if (dirError is not null) log.Warning(dirError);

        var workspaces = new List<WorkspaceStart>();
        foreach (var config in configs)
        {
            var (boot, store) = config.InboxEnabled ? OpenLedger(config, log) : (Fresh(config, leader: false), null);
            workspaces.Add(new WorkspaceStart(config, boot, store));
        }
        return workspaces;
    }

    /// <summary>What is at MOLECULE_WORKSPACE_TOKEN_FILE's path, for the core to judge.</summary>
    public static CoreConfig.FileRead ReadTokenFile(string path) => TokenFileWatch.Read(path);

    private static Workspace.Boot Fresh(Config config, bool leader) =>
        new(Ledger.empty(config.WorkspaceId), 0L, 0, false, leader,
            FSharpOption<Tuple<FSharpOption<string>, FSharpList<InboxMessage>, FSharpList<string>>>.None);

    /// <summary>Reads the workspace's ledger under its write lock; a file of another workspace is never loaded.</summary>
    private static (Workspace.Boot, LedgerStore) OpenLedger(Config config, AgentLog log)
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
