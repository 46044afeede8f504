using System.Collections;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Runtime.Effects;
using Molecule.Runtime.Logging;
using CoreConfig = Molecule.Core.Config;
using CoreChannel = Molecule.Core.Channel;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Molecule.Runtime;

/// <summary>
/// The imperative shell around the core's <c>Agent</c> state machine. It owns the one mutable model (changed
/// only under <see cref="_gate"/>), interprets every <see cref="Effect"/> in order, feeds answers back as
/// messages, and serves tool calls and inbox waits. It makes no decision of its own.
/// </summary>
public sealed class AgentRuntime : IInboxPort
{
    private readonly object _gate = new();
    private readonly CoreConfig _config;
    private readonly StderrLog _log;
    private readonly HttpExecutor _http;
    private readonly StepRunner _steps;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Task _interpreter;
    private int _stopping;
    private readonly System.Threading.Channels.Channel<Effect> _effects = System.Threading.Channels.Channel.CreateUnbounded<Effect>(new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });

    private Agent.Model _model;
    private TaskCompletionSource _inboxChanged = NewSignal();

    public AgentRuntime(CoreConfig config, Inbox.State inbox, StderrLog log, HttpExecutor http)
    {
        _config = config;
        _log = log;
        _http = http;
        _model = Agent.init(config, inbox);
        _steps = new StepRunner(http, this, text => _log.Error(text));
        _interpreter = Task.Run(InterpretLoopAsync);
        // Environment.Exit (stdin EOF with a tool still running, or an Exit effect) skips the normal Stop path.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop();
    }

    /// <summary>Where channel notifications (<c>notifications/claude/channel</c> params) go; null drops them.</summary>
    public Func<JsonObject, CancellationToken, Task>? ChannelSink { get; set; }

    /// <summary>The MCP client sent <c>notifications/initialized</c>: channel notifications may flow.</summary>
    public void ClientInitialized() => Dispatch(Agent.Msg.ClientInitialized);

    /// <summary>
    /// Stops the agent: effects already queued are still applied where they are local (state files, log lines), so
    /// an acknowledged <c>inbox_pop</c> is never undone by a shutdown; requests, timers and notifications are not.
    /// </summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopping, 1) == 1) return;
        _effects.Writer.TryComplete();
        _shutdown.Cancel();
        if (!_interpreter.IsCompleted) _interpreter.Wait(TimeSpan.FromSeconds(2));
    }

    private bool Stopping => Volatile.Read(ref _stopping) == 1;

    // -----------------------------------------------------------------------------------------------------
    // Messages and effects
    // -----------------------------------------------------------------------------------------------------

    /// <summary>Applies one message to the model and queues its effects (in order) for interpretation.</summary>
    public void Dispatch(Agent.Msg msg)
    {
        lock (_gate)
        {
            var before = Agent.inboxVersion(_model);
            var (model, effects) = Agent.update(msg, _model);
            Commit(model, effects, before);
        }
    }

    /// <summary>Must run under <see cref="_gate"/>.</summary>
    private void Commit(Agent.Model model, FSharpList<Effect> effects, int versionBefore)
    {
        _model = model;
        foreach (var effect in effects) _effects.Writer.TryWrite(effect);
        if (Agent.inboxVersion(model) != versionBefore)
        {
            var fired = _inboxChanged;
            _inboxChanged = NewSignal();
            fired.TrySetResult();
        }
    }

    private async Task InterpretLoopAsync()
    {
        var token = _shutdown.Token;
        // Ends when Stop completes the queue and everything queued before has been read.
        await foreach (var effect in _effects.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (Stopping && effect is not (Effect.WriteStateFile or Effect.DeleteStateFile or Effect.Log)) continue;
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
            {
                var purpose = send.Item1;
                var request = send.Item2;
                _ = Task.Run(async () =>
                {
                    var response = await _http.ExecuteAsync(request, token).ConfigureAwait(false);
                    if (!token.IsCancellationRequested) Dispatch(Agent.Msg.NewResponded(purpose, response));
                }, CancellationToken.None);
                break;
            }

            case Effect.Log log:
                _log.Write(log.Item1, log.Item2);
                break;

            case Effect.Notify notify:
                if (ChannelSink is { } sink)
                    await sink(CoreChannel.toParams(notify.Item), token).ConfigureAwait(false);
                break;

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
                _ = Task.Run(async () =>
                {
                    await Task.Delay(delay, token).ConfigureAwait(false);
                    Dispatch(Agent.Msg.NewTimerFired(timer, UptimeSecs));
                }, CancellationToken.None);
                break;
            }

            case Effect.Exit exit:
                // This loop is the only reader: apply what is still queued locally, then leave (Stop, run by
                // ProcessExit, then finds the agent stopped and does not wait for this loop).
                if (Interlocked.Exchange(ref _stopping, 1) == 0)
                {
                    _effects.Writer.TryComplete();
                    _shutdown.Cancel();
                }
                while (_effects.Reader.TryRead(out var rest))
                    if (rest is Effect.WriteStateFile or Effect.DeleteStateFile or Effect.Log)
                        await InterpretAsync(rest, CancellationToken.None).ConfigureAwait(false);
                _log.Flush();
                Console.Error.Flush();
                Environment.Exit(exit.code);
                break;
        }
    }

    private int UptimeSecs => (int)Math.Min(int.MaxValue, _uptime.Elapsed.TotalSeconds);

    // -----------------------------------------------------------------------------------------------------
    // Tools
    // -----------------------------------------------------------------------------------------------------

    /// <summary>One MCP tool call: validate, build the core program, run it, report what it learnt.</summary>
    public async Task<ToolOutput> HandleToolAsync(string name, JsonObject? arguments, CancellationToken ct)
    {
        var parsed = Tools.parse(name, arguments is null ? FSharpOption<JsonObject>.None : FSharpOption<JsonObject>.Some(arguments));
        if (parsed.IsError) return new ToolOutput(parsed.ErrorValue, true);

        ToolContext context;
        lock (_gate) context = Agent.context(_model);

        var program = Molecule.Core.Dispatch.run(context, parsed.ResultValue);
        var (output, observations) = await _steps.RunAsync(program, ct).ConfigureAwait(false);
        if (!observations.IsEmpty) Dispatch(Agent.Msg.NewToolObserved(observations));
        return output;
    }

    // -----------------------------------------------------------------------------------------------------
    // Inbox port (serialised through the model lock)
    // -----------------------------------------------------------------------------------------------------

    private InboxAnswer Ask(InboxOp op, out Task changed)
    {
        lock (_gate)
        {
            var before = Agent.inboxVersion(_model);
            var (model, answer, effects) = Agent.inbox(op, _model);
            Commit(model, effects, before);
            changed = _inboxChanged.Task;
            return answer;
        }
    }

    public Task<InboxAnswer> PeekAsync(int limit, CancellationToken ct) => Task.FromResult(Ask(InboxOp.NewPeek(limit), out _));

    public Task<InboxAnswer> PopAsync(string activityId, CancellationToken ct) => Task.FromResult(Ask(InboxOp.NewPop(activityId), out _));

    public async Task<InboxAnswer> WaitAsync(double timeoutSecs, CancellationToken ct)
    {
        var budget = double.IsFinite(timeoutSecs) ? Math.Clamp(timeoutSecs, 0, 86_400) : 0;
        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var timeout = Task.Delay(TimeSpan.FromSeconds(budget), timeoutCts.Token);
        try
        {
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                // Ask again on every wake-up: the core decides what the answer is.
                var answer = Ask(InboxOp.NewWait(budget), out var changed);
                if (answer is not InboxAnswer.Waited { Item: null } || timeout.IsCompleted) return answer;
                await Task.WhenAny(changed, timeout).ConfigureAwait(false);
            }
        }
        finally
        {
            timeoutCts.Cancel(); // releases the timer when the wait ends early
        }
    }

    // -----------------------------------------------------------------------------------------------------

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

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
