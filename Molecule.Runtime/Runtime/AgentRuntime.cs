using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Runtime.Effects;
using Molecule.Runtime.Logging;
using CoreChannel = Molecule.Core.Channel;

namespace Molecule.Runtime;

/// <summary>The result of a tool call: its text, whether it failed, and a notice to show after it (or null).</summary>
public sealed record ToolResult(string Text, bool IsError, string? Notice);

/// <summary>
/// A tool the agent offers: name, title, description, the JSON Schema of its arguments (as JSON text) and its MCP
/// annotations (<paramref name="Destructive"/> and <paramref name="Idempotent"/> are null for read-only tools).
/// </summary>
public sealed record ToolInfo(string Name, string Title, string Description, string InputSchemaJson,
    bool ReadOnly, bool? Destructive, bool? Idempotent, bool OpenWorld);

/// <summary>A progress report of a running tool call (MCP <c>notifications/progress</c>).</summary>
public sealed record ToolProgressReport(double Progress, double? Total, string Message);

/// <summary>
/// The imperative shell around the core's <c>Agent</c> state machine, and the surface agents written in C# use.
/// It owns the one mutable model (changed only under a lock), performs every effect the core returns, feeds each
/// answer back as a message, and decides nothing itself. Ledger writes are applied while the change is committed,
/// so nothing that reports a change (a tool answer, a channel notification) can leave before it is on disk.
/// </summary>
public sealed class AgentRuntime : IDisposable
{
    private readonly object _gate = new();
    private readonly Config _config;
    private readonly StderrLog _log;
    private readonly HttpExecutor _http;
    private readonly Dictionary<Molecule.Protocol.WorkspaceId, LedgerStore> _stores;
    private readonly List<TokenFileWatch> _tokenFiles;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly System.Threading.Channels.Channel<Effect> _effects =
        System.Threading.Channels.Channel.CreateUnbounded<Effect>(new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<long, TaskCompletionSource<ToolResult>> _calls = new();
    private readonly Dictionary<long, Func<ToolProgressReport, Task>> _progress = new();
    private readonly Dictionary<Molecule.Protocol.WorkspaceId, CancellationTokenSource> _streams = new();
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _interpreter;
    private Agent.Model _model;
    private long _nextCall;
    private int _stopping;

    internal AgentRuntime(IReadOnlyList<(Config Config, Workspace.Boot Boot, LedgerStore? Store)> workspaces, StderrLog log, HttpExecutor http)
    {
        _config = workspaces[0].Config;
        _log = log;
        _http = http;
        _stores = workspaces.Where(w => w.Store is not null).ToDictionary(w => w.Config.WorkspaceId, w => w.Store!);
        WorkspaceIds = workspaces.Select(w => w.Config.WorkspaceId.Value).ToList();
        _tokenFiles = workspaces
            .Where(w => w.Config.TokenSource is TokenSource.FromTokenFile)
            .Select(w => new TokenFileWatch(w.Config.WorkspaceId, ((TokenSource.FromTokenFile)w.Config.TokenSource).path))
            .ToList();
        _model = Agent.initMany(ListModule.OfSeq(workspaces.Select(w => Tuple.Create(w.Config, w.Boot))));
        _interpreter = Task.Run(InterpretLoopAsync);
        // Environment.Exit (stdin EOF with a tool still running) skips the normal Stop path.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop();
    }

    /// <summary>The workspace this agent acts for unless a tool names another (the primary).</summary>
    public string WorkspaceId => _config.WorkspaceId.Value;

    /// <summary>Every workspace this agent serves, the primary first.</summary>
    public IReadOnlyList<string> WorkspaceIds { get; }

    /// <summary>The tools every agent offers, in the reference's order.</summary>
    public static IReadOnlyList<ToolInfo> Tools { get; } =
        Molecule.Core.Tools.specs.Select(s => new ToolInfo(s.Name, s.Title, s.Description, s.InputSchema,
            s.Annotations.ReadOnly, OrNull(s.Annotations.Destructive), OrNull(s.Annotations.Idempotent),
            s.Annotations.OpenWorld)).ToList();

    private static bool? OrNull(FSharpOption<bool> value) =>
        FSharpOption<bool>.get_IsSome(value) ? value.Value : null;

    /// <summary>The MCP server instructions: how the agent receives messages (push and poll).</summary>
    public string Instructions => CoreChannel.instructions(_config.PollTimeoutSecs);

    /// <summary>Info-level logs were asked for (MOLECULE_MCP_VERBOSE).</summary>
    public bool Verbose => _config.Verbose;

    /// <summary>The longest stdin line a host should accept (MOLECULE_MCP_MAX_LINE_BYTES).</summary>
    public int MaxLineBytes => _config.MaxLineBytes;

    /// <summary>Where channel notifications (<c>notifications/claude/channel</c> params) go; null drops them.</summary>
    public Func<JsonObject, CancellationToken, Task>? ChannelSink { get; set; }

    /// <summary>Completes with an exit code when the agent must stop (e.g. the platform rejected the token).</summary>
    public Task<int> Exited => _exited.Task;

    /// <summary>Registers the workspace, starts heartbeats and the inbox.</summary>
    public void Start() => Dispatch(Agent.Msg.Start);

    /// <summary>The client is ready for channel notifications (MCP <c>notifications/initialized</c>).</summary>
    public void ClientInitialized() => Dispatch(Agent.Msg.ClientInitialized);

    /// <summary>
    /// Runs one tool call. Cancelling <paramref name="ct"/> abandons it at once (nothing more is sent for it). When
    /// <paramref name="progress"/> is given, the agent reports progress to it while the call runs.
    /// </summary>
    public Task<ToolResult> CallToolAsync(string name, JsonObject? arguments, CancellationToken ct = default,
        Func<ToolProgressReport, Task>? progress = null)
    {
        if (Stopping) return Task.FromResult(new ToolResult("Error: molecule-mcp is shutting down.", true, null));
        var call = Interlocked.Increment(ref _nextCall);
        var tcs = new TaskCompletionSource<ToolResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_calls) _calls[call] = tcs;
        if (progress is not null)
            lock (_progress) _progress[call] = progress;
        if (ct.CanBeCanceled)
            ct.Register(() =>
            {
                if (!Forget(call)) return;
                tcs.TrySetCanceled(ct);
                Dispatch(Agent.Msg.NewToolCancelled(call));
            });
        // Parsed here, as it arrives: the core gets typed values, never the mutable arguments.
        var args = arguments is null ? FSharpOption<JsonObject>.None : FSharpOption<JsonObject>.Some(arguments);
        Dispatch(Agent.Msg.NewToolCalled(call, Guid.NewGuid().ToString("D"), Molecule.Core.Tools.parse(name ?? "", args)));
        if (progress is not null) Dispatch(Agent.Msg.NewProgressRequested(call, name ?? ""));
        return tcs.Task;
    }

    /// <summary>
    /// Stops the agent: effects already queued are still applied where they are local (log lines, files), so an
    /// acknowledged change is never undone by a shutdown; requests, timers and notifications are not.
    /// </summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopping, 1) == 1) return;
        _effects.Writer.TryComplete();
        _shutdown.Cancel();
        if (!_interpreter.IsCompleted) _interpreter.Wait(TimeSpan.FromSeconds(2));
        foreach (var store in _stores.Values) store.Dispose();
    }

    public void Dispose() => Stop();

    private bool Stopping => Volatile.Read(ref _stopping) == 1;

    private bool Forget(long call)
    {
        lock (_progress) _progress.Remove(call);
        lock (_calls) return _calls.Remove(call);
    }

    // -----------------------------------------------------------------------------------------------------
    // Messages and effects
    // -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Applies one message. Under the ledger's write lock, first folds in what another process of this machine
    /// wrote, then updates the model and writes the ledger changes before queueing the other effects in order.
    /// </summary>
    internal void Dispatch(Agent.Msg msg)
    {
        lock (_gate)
        {
            if (Stopping) return;
            var locks = new List<IDisposable>();
            try
            {
                foreach (var watch in _tokenFiles)
                    if (watch.Changed() is { } read)
                    {
                        if (read is Molecule.Core.ConfigModule.FileRead.Contents contents) _log.AddSecret(contents.Item.Trim());
                        Commit(Agent.Msg.NewTokenFileChanged(watch.Workspace, read));
                    }
                foreach (var (ws, store) in _stores)
                {
                    var writeLock = store.LockForWrite(out var lockError);
                    if (lockError is not null) _log.Warning(lockError);
                    if (writeLock is not null) locks.Add(writeLock);
                    switch (store.CatchUp())
                    {
                        case LedgerChange.Appended appended:
                            Commit(Agent.Msg.NewSynced(ws, ListModule.OfSeq(appended.Lines)));
                            break;
                        case LedgerChange.Rewritten rewritten:
                            Commit(Agent.Msg.NewReloaded(ws, rewritten.Text));
                            break;
                    }
                }
                Commit(msg);
            }
            finally
            {
                foreach (var l in locks) l.Dispose();
            }
        }
    }

    /// <summary>Must run under <see cref="_gate"/>.</summary>
    private void Commit(Agent.Msg msg)
    {
        var (model, effects) = Agent.update(msg, _model);
        _model = model;
        foreach (var effect in effects)
        {
            if (effect is Effect.Persist persist)
            {
                var error = _stores.TryGetValue(persist.workspace, out var store) ? store.Write(persist.Item2) : "no ledger store (inbox disabled)";
                if (error is not null) _log.Error($"inbox ledger not saved: {error}");
            }
            else
            {
                _effects.Writer.TryWrite(effect);
            }
        }
    }

    private async Task InterpretLoopAsync()
    {
        var token = _shutdown.Token;
        await foreach (var effect in _effects.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (Stopping && effect is not (Effect.WriteStateFile or Effect.DeleteStateFile or Effect.Log or Effect.Answer)) continue;
            try
            {
                await InterpretAsync(effect, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                // shutting down: keep draining the local effects
            }
            catch (Exception ex)
            {
                _log.Error($"effect failed: {ex.GetType().Name}: {ex.Message}");
            }
        }
    }

    private async Task InterpretAsync(Effect effect, CancellationToken token)
    {
        switch (effect)
        {
            case Effect.Send send:
                Background(async () =>
                {
                    var response = await _http.ExecuteAsync(send.Item2, token).ConfigureAwait(false);
                    return Agent.Msg.NewResponded(send.Item1, response);
                }, token);
                break;

            case Effect.Download download:
            {
                var purpose = download.Item1;
                Background(async () =>
                {
                    var result = await _http.DownloadAsync(download.Item2, download.path, token).ConfigureAwait(false);
                    return Agent.Msg.NewDownloaded(purpose, result);
                }, token);
                break;
            }

            case Effect.Progress report:
            {
                Func<ToolProgressReport, Task>? progressSink;
                lock (_progress) _progress.TryGetValue(report.call, out progressSink);
                if (progressSink is not null)
                {
                    var p = report.Item2;
                    var total = FSharpOption<double>.get_IsSome(p.Total) ? p.Total.Value : (double?)null;
                    try
                    {
                        await progressSink(new ToolProgressReport(p.Progress, total, p.Message ?? "")).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        _log.Debug($"progress report dropped: {ex.GetType().Name}: {ex.Message}");
                    }
                }
                break;
            }

            case Effect.CheckPaths check:
                Background(() => Task.FromResult(Agent.Msg.NewFilesChecked(check.call, ListModule.OfSeq(check.paths.Select(FileChecks.Check)))), token);
                break;

            case Effect.Log log:
                _log.Write(log.Item1, log.Item2);
                break;

            case Effect.Notify notify:
                if (ChannelSink is { } sink)
                    await sink(CoreChannel.toParams(notify.Item), token).ConfigureAwait(false);
                break;

            case Effect.Answer answer:
            {
                TaskCompletionSource<ToolResult>? tcs;
                lock (_calls)
                {
                    _calls.Remove(answer.call, out tcs);
                }
                lock (_progress) _progress.Remove(answer.call);
                var notice = FSharpOption<string>.get_IsSome(answer.notice) ? answer.notice.Value : null;
                tcs?.TrySetResult(new ToolResult(answer.Item2.Text ?? "", answer.Item2.IsError, notice));
                break;
            }

            case Effect.WriteStateFile write:
            {
                var error = StateFiles.WriteAtomic(_config.StateDir, write.fileName, write.contents);
                if (error is not null) _log.Warning(error);
                break;
            }

            case Effect.DeleteStateFile delete:
            {
                var error = StateFiles.Delete(_config.StateDir, delete.fileName);
                if (error is not null) _log.Warning(error);
                break;
            }

            case Effect.After after:
            {
                var timer = after.Item2;
                var delay = TimeSpan.FromSeconds(double.IsFinite(after.seconds) ? Math.Clamp(after.seconds, 0, 86_400) : 0);
                Background(async () =>
                {
                    await Task.Delay(delay, token).ConfigureAwait(false);
                    return Agent.Msg.NewTimerFired(timer, _uptime.Elapsed.TotalSeconds);
                }, token);
                break;
            }

            case Effect.Claim claim:
            {
                var won = _stores.TryGetValue(claim.workspace, out var store) && store.TryClaimPoller();
                Background(() => Task.FromResult(Agent.Msg.NewClaimed(claim.workspace, won)), token);
                break;
            }

            case Effect.Listen listen:
            {
                var ws = listen.workspace;
                var streamCts = CancellationTokenSource.CreateLinkedTokenSource(token);
                lock (_streams)
                {
                    if (_streams.Remove(ws, out var previous)) previous.Cancel();
                    _streams[ws] = streamCts;
                }
                _ = Task.Run(() => _http.ListenAsync(listen.Item2, news =>
                {
                    if (!streamCts.IsCancellationRequested) Dispatch(Agent.Msg.NewStream(ws, news, Random.Shared.NextDouble()));
                    return Task.CompletedTask;
                }, streamCts.Token), CancellationToken.None);
                break;
            }

            case Effect.Unlisten unlisten:
                lock (_streams)
                {
                    if (_streams.Remove(unlisten.workspace, out var open)) open.Cancel();
                }
                break;

            case Effect.Exit exit:
                if (Interlocked.Exchange(ref _stopping, 1) == 0)
                {
                    _effects.Writer.TryComplete();
                    _shutdown.Cancel();
                }
                while (_effects.Reader.TryRead(out var rest))
                    if (rest is Effect.WriteStateFile or Effect.DeleteStateFile or Effect.Log)
                        await InterpretAsync(rest, CancellationToken.None).ConfigureAwait(false);
                _log.Flush();
                _exited.TrySetResult(exit.code);
                break;
        }
    }

    /// <summary>Runs work off the interpreter loop and dispatches the message it produces.</summary>
    private void Background(Func<Task<Agent.Msg>> work, CancellationToken token)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                var msg = await work().ConfigureAwait(false);
                if (!token.IsCancellationRequested) Dispatch(msg);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                _log.Error($"background effect failed: {ex.GetType().Name}: {ex.Message}");
            }
        }, CancellationToken.None);
    }
}
