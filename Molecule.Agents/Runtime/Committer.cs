using Microsoft.FSharp.Collections;
using Molecule.Agents.Effects;
using Molecule.Core;
using Molecule.Protocol;

namespace Molecule.Agents;

/// <summary>
/// The model and the ledgers it is kept in: applies messages to the core's <c>Agent.update</c> and makes every ledger
/// change durable before it returns. Under the ledgers' write locks it first folds in what another process of this
/// machine wrote to a shared ledger and a changed token file, then the messages — so processes never interleave a
/// decision and its write. Used by the loop only (one thread at a time).
/// </summary>
internal sealed class Committer : IDisposable
{
    private readonly AgentLog _log;
    private readonly Dictionary<WorkspaceId, LedgerStore> _stores;
    private readonly List<TokenFileWatch> _tokenFiles;
    private AgentModel.Model _model;

    public Committer(IReadOnlyList<WorkspaceStart> workspaces, AgentLog log)
    {
        _log = log;
        _stores = workspaces.Where(w => w.Store is not null).ToDictionary(w => w.Config.WorkspaceId, w => w.Store!);
        _tokenFiles = workspaces
            .Where(w => w.Config.TokenSource is TokenSource.FromTokenFile)
            .Select(w => new TokenFileWatch(w.Config.WorkspaceId, ((TokenSource.FromTokenFile)w.Config.TokenSource).path))
            .ToList();
        _model = Agent.initMany(ListModule.OfSeq(workspaces.Select(w => Tuple.Create(w.Config, w.Boot))));
    }

    /// <summary>
    /// Applies the messages in order and returns the effects still to perform, in the core's order. Every
    /// <c>Persist</c> among them is already on disk: whatever reports a change (an answer, a notification) is
    /// performed after this returns, so it never leaves before the change is durable.
    /// </summary>
    public List<Effect> Commit(params Agent.Msg[] messages)
    {
        var effects = new List<Effect>();
        var locks = new List<IDisposable>();
        try
        {
            foreach (var watch in _tokenFiles)
                if (watch.Changed() is { } read)
                {
                    if (read is ConfigModule.FileRead.Contents contents) _log.AddSecret(contents.Item.Trim());
                    Apply(Agent.Msg.NewTokenFileChanged(watch.Workspace, read), effects);
                }
            foreach (var (ws, store) in _stores)
            {
                var writeLock = store.LockForWrite(out var lockError);
                if (lockError is not null) _log.Warning(lockError);
                if (writeLock is not null) locks.Add(writeLock);
                switch (store.CatchUp())
                {
                    case LedgerChange.Appended appended:
                        Apply(Agent.Msg.NewSynced(ws, ListModule.OfSeq(appended.Lines)), effects);
                        break;
                    case LedgerChange.Rewritten rewritten:
                        Apply(Agent.Msg.NewReloaded(ws, rewritten.Text), effects);
                        break;
                }
            }
            foreach (var message in messages) Apply(message, effects);
        }
        finally
        {
            foreach (var l in locks) l.Dispose();
        }
        return effects;
    }

    /// <summary>Tries to become the process that polls the workspace (it holds the poller lock for life).</summary>
    public bool TryClaimPoller(WorkspaceId workspace) =>
        _stores.TryGetValue(workspace, out var store) && store.TryClaimPoller();

    private void Apply(Agent.Msg message, List<Effect> rest)
    {
        var (model, effects) = Agent.update(message, _model);
        _model = model;
        foreach (var effect in effects)
        {
            if (effect is Effect.Persist persist) Persist(persist);
            else rest.Add(effect);
        }
    }

    private void Persist(Effect.Persist persist)
    {
        var error = _stores.TryGetValue(persist.workspace, out var store) ? store.Write(persist.Item2) : "no ledger store (inbox disabled)";
        if (error is not null) _log.Error($"inbox ledger not saved: {error}");
    }

    /// <summary>Releases the poller locks.</summary>
    public void Dispose()
    {
        foreach (var store in _stores.Values) store.Dispose();
    }
}
