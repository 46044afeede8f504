using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Agents.Effects;
using Molecule.Core;
using Molecule.Protocol;
using Timer = Molecule.Core.Timer;

namespace Molecule.Agents;

/// <summary>
/// Performs the effects the core returned, in order, on the loop. What is local happens at once (log lines, state
/// files, answers, notifications); what takes time — a request, a download, a timer, a file check, an event stream —
/// runs off the loop and comes back as a message in the loop's queue. Decides nothing the core could.
/// </summary>
internal sealed class EffectInterpreter : IDisposable
{
    private readonly AgentLog _log;
    private readonly HttpExecutor _http;
    private readonly string _stateDir;
    private readonly Committer _committer;
    private readonly PendingCalls _calls;
    private readonly ChannelWriter<ChannelNotification> _notifications;
    private readonly ChannelWriter<PermissionAnswer> _permissionAnswers;
    private readonly Action<LoopInput> _post;
    private readonly CancellationToken _shutdown;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly Dictionary<WorkspaceId, (CancellationTokenSource Cts, long Id)> _streams = new();
    private long _nextStream;

    public EffectInterpreter(AgentLog log, HttpExecutor http, string stateDir, Committer committer, PendingCalls calls,
        ChannelWriter<ChannelNotification> notifications, ChannelWriter<PermissionAnswer> permissionAnswers,
        Action<LoopInput> post, CancellationToken shutdown)
    {
        _permissionAnswers = permissionAnswers;
        _log = log;
        _http = http;
        _stateDir = stateDir;
        _committer = committer;
        _calls = calls;
        _notifications = notifications;
        _post = post;
        _shutdown = shutdown;
    }

    /// <summary>
    /// Performs the effects in order. After an <c>Exit</c> only the local writes that follow it still happen (log
    /// lines, state files). Returns the exit code when there was an <c>Exit</c>.
    /// </summary>
    public int? Perform(List<Effect> effects)
    {
        int? exit = null;
        foreach (var effect in effects)
        {
            if (exit is not null && effect is not (Effect.WriteStateFile or Effect.DeleteStateFile or Effect.Log)) continue;
            try
            {
                if (effect is Effect.Exit stop) exit = stop.code;
                else Perform(effect);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _log.Error($"effect failed: {ex.GetType().Name}: {ex.Message}");
            }
        }
        return exit;
    }

    /// <summary>Whether news of stream <paramref name="id"/> still counts (it was not replaced or closed since).</summary>
    public bool IsCurrent(WorkspaceId workspace, long id) =>
        _streams.TryGetValue(workspace, out var open) && open.Id == id;

    private void Perform(Effect effect)
    {
        switch (effect)
        {
            case Effect.Send send:
                Background(async token => Agent.Msg.NewResponded(send.Item1,
                    await _http.ExecuteAsync(send.Item2, token).ConfigureAwait(false), Random.Shared.NextDouble()));
                break;
            case Effect.Download download:
                Background(async token => Agent.Msg.NewDownloaded(download.Item1,
                    await _http.DownloadAsync(download.Item2, download.path, token).ConfigureAwait(false), Random.Shared.NextDouble()));
                break;
            case Effect.CheckPaths check:
                Background(_ => Task.FromResult(Agent.Msg.NewFilesChecked(check.call,
                    ListModule.OfSeq(check.paths.Select(FileChecks.Check)))));
                break;
            case Effect.After after:
                Later(after.seconds, after.Item2);
                break;
            case Effect.Claim claim:
                _post(new LoopInput.Message(Agent.Msg.NewClaimed(claim.workspace, _committer.TryClaimPoller(claim.workspace))));
                break;
            case Effect.Listen listen:
                Listen(listen.workspace, listen.Item2);
                break;
            case Effect.Unlisten unlisten:
                Close(unlisten.workspace);
                break;
            case Effect.Log log:
                _log.Write(log.Item1, log.Item2);
                break;
            case Effect.Notify notify:
                _notifications.TryWrite(new ChannelNotification(notify.Item));
                break;
            case Effect.AnswerPermission relay:
                _permissionAnswers.TryWrite(new PermissionAnswer(relay.promptId, relay.behavior));
                break;
            case Effect.Answer answer:
                _calls.Complete(answer.call, new ToolResult(answer.Item2.Text ?? "", answer.Item2.IsError, OrNull(answer.notice)));
                break;
            case Effect.Progress report:
                var p = report.Item2;
                _calls.Report(report.call, new ToolProgress(p.Progress, FSharpOption<double>.get_IsSome(p.Total) ? p.Total.Value : null, p.Message ?? ""));
                break;
            case Effect.WriteStateFile write:
                Warn(StateFiles.WriteAtomic(_stateDir, write.fileName, write.contents));
                break;
            case Effect.DeleteStateFile delete:
                Warn(StateFiles.Delete(_stateDir, delete.fileName));
                break;
            case Effect.Persist:
                // The committer applied it before this effect list left it.
                break;
            default:
                // an effect the core gained and this interpreter does not perform yet: loud, never silent
                _log.Error($"effect not performed (no interpreter for it): {effect.GetType().Name}");
                break;
        }
    }

    private void Warn(string? error)
    {
        if (error is not null) _log.Warning(error);
    }

    private static string? OrNull(FSharpOption<string> value) => FSharpOption<string>.get_IsSome(value) ? value.Value : null;

    /// <summary>The timer's message after its delay, with the uptime when it fired (the core has no clock).</summary>
    private void Later(double seconds, Timer timer)
    {
        var delay = TimeSpan.FromSeconds(double.IsFinite(seconds) ? Math.Clamp(seconds, 0, 86_400) : 0);
        Background(async token =>
        {
            await Task.Delay(delay, token).ConfigureAwait(false);
            return Agent.Msg.NewTimerFired(timer, _uptime.Elapsed.TotalSeconds);
        });
    }

    /// <summary>Opens the workspace's event stream in place of the one open; its news is posted with the stream's id.</summary>
    private void Listen(WorkspaceId workspace, Request request)
    {
        Close(workspace);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_shutdown);
        var id = ++_nextStream;
        _streams[workspace] = (cts, id);
        var token = cts.Token;
        _ = Task.Run(() => ListenAsync(workspace, id, request, token), CancellationToken.None);
    }

    private async Task ListenAsync(WorkspaceId workspace, long id, Request request, CancellationToken token)
    {
        try
        {
            await _http.ListenAsync(request, news =>
            {
                if (!token.IsCancellationRequested) _post(new LoopInput.News(workspace, id, news));
                return Task.CompletedTask;
            }, token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            if (!token.IsCancellationRequested) _log.Error($"event stream failed: {ex.GetType().Name}: {ex.Message}");
        }
    }

    private void Close(WorkspaceId workspace)
    {
        if (!_streams.Remove(workspace, out var open)) return;
        open.Cts.Cancel();
        open.Cts.Dispose();
    }

    /// <summary>
    /// Runs work on the thread pool — never on the loop, which goes on with the next input at once (a first request's
    /// connection set-up, a file check) — and posts the message it ends with (nothing once the agent stops).
    /// </summary>
    private void Background(Func<CancellationToken, Task<Agent.Msg>> work) =>
        _ = Task.Run(() => RunAsync(work), CancellationToken.None);

    private async Task RunAsync(Func<CancellationToken, Task<Agent.Msg>> work)
    {
        var token = _shutdown;
        try
        {
            var msg = await work(token).ConfigureAwait(false);
            if (!token.IsCancellationRequested) _post(new LoopInput.Message(msg));
        }
        catch (Exception) when (token.IsCancellationRequested)
        {
            // the agent stopped: nothing comes back
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _log.Error($"background effect failed: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>Closes the event streams.</summary>
    public void Dispose()
    {
        foreach (var ws in _streams.Keys.ToList()) Close(ws);
    }
}
