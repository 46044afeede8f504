using System.Text.Json.Nodes;
using System.Threading.Channels;
using Channel = System.Threading.Channels.Channel;
using Microsoft.FSharp.Core;
using Molecule.Agents.Effects;
using Molecule.Core;

namespace Molecule.Agents;

/// <summary>
/// The agent's one loop, run as Elmish runs a program: one task reads one input at a time from a queue, updates the
/// model and makes its ledger changes durable (<see cref="Committer"/>), then performs the effects in the core's order
/// (<see cref="EffectInterpreter"/>); whatever an effect brings back later — a response, a timer, stream news — is
/// posted to the same queue. Nothing else touches the model, so nothing needs a lock, and whatever reports a change
/// (an answer, a notification) leaves after the change is on disk.
/// </summary>
internal sealed class AgentLoop : IAsyncDisposable
{
    /// <summary>A call's answer once the agent has stopped (the MCP server's wording).</summary>
    public const string ShuttingDown = "Error: molecule-mcp is shutting down.";

    /// <summary>How long a shutdown waits for the input being handled (a ledger write in progress) to finish.</summary>
    private static readonly TimeSpan StopPatience = TimeSpan.FromSeconds(2);

    private readonly Channel<LoopInput> _inputs =
        Channel.CreateUnbounded<LoopInput>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<ChannelNotification> _notifications =
        Channel.CreateUnbounded<ChannelNotification>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Channel<PermissionAnswer> _permissionAnswers =
        Channel.CreateUnbounded<PermissionAnswer>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _shutdown = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PendingCalls _calls = new();
    private readonly AgentLog _log;
    private readonly HttpExecutor _http;
    private readonly Committer _committer;
    private readonly EffectInterpreter _effects;
    private Task _run = Task.CompletedTask;
    private Exception? _stopReason;
    private long _nextCall;
    private int _stopped;
    private int _disposed;

    public AgentLoop(IReadOnlyList<WorkspaceStart> workspaces, AgentLog log, HttpExecutor http)
    {
        _log = log;
        _http = http;
        _committer = new Committer(workspaces, log);
        _effects = new EffectInterpreter(log, http, workspaces[0].Config.StateDir, _committer, _calls,
            _notifications.Writer, _permissionAnswers.Writer, Post, _shutdown.Token);
    }

    /// <summary>The channel notifications the core pushes, in order (after the consumer said it is ready).</summary>
    public ChannelReader<ChannelNotification> Notifications => _notifications.Reader;

    /// <summary>The answers to relayed permission prompts, in order.</summary>
    public ChannelReader<PermissionAnswer> PermissionAnswers => _permissionAnswers.Reader;

    /// <summary>Ends when the agent stops: faulted with <see cref="MoleculeAgentStoppedException"/> when the
    /// platform stopped it, completed when it was disposed.</summary>
    public Task Completion => _completion.Task;

    public bool Stopped => Volatile.Read(ref _stopped) == 1;

    /// <summary>Starts the loop and the agent (register, heartbeats, inbox).</summary>
    public void Start()
    {
        _run = Task.Run(RunAsync);
        Post(Agent.Msg.Start);
    }

    public void Post(Agent.Msg msg) => Post(new LoopInput.Message(msg));

    private void Post(LoopInput input) => _inputs.Writer.TryWrite(input);

    /// <summary>
    /// One tool call. Cancelling <paramref name="ct"/> abandons it at once (its remaining steps never run). Progress
    /// reports, when asked for, are given to <paramref name="progress"/> on the loop: its Report must not block.
    /// </summary>
    public Task<ToolResult> CallAsync(string name, JsonObject? arguments, IProgress<ToolProgress>? progress, CancellationToken ct)
    {
        if (ct.IsCancellationRequested) return Task.FromCanceled<ToolResult>(ct);
        if (Stopped) return Task.FromResult(new ToolResult(ShuttingDown, true, null));
        var call = new PendingCall(Interlocked.Increment(ref _nextCall), progress);
        if (ct.CanBeCanceled)
            call.Cancellation = ct.Register(static state =>
            {
                var (loop, pending, token) = ((AgentLoop, PendingCall, CancellationToken))state!;
                pending.Result.TrySetCanceled(token);
                loop.Post(new LoopInput.Cancel(pending.Id));
            }, (this, call, ct));
        Post(new LoopInput.Call(call, name ?? "", arguments));
        return call.Result.Task;
    }

    private async Task RunAsync()
    {
        var reader = _inputs.Reader;
        while (!Stopped && await reader.WaitToReadAsync().ConfigureAwait(false))
            while (!Stopped && reader.TryRead(out var input))
                Step(input);
        _calls.FailAll(_stopReason ?? new ObjectDisposedException(nameof(MoleculeAgent)));
    }

    /// <summary>Update → persist → perform, for one input.</summary>
    private void Step(LoopInput input)
    {
        try
        {
            var effects = input switch
            {
                LoopInput.Message m => _committer.Commit(m.Msg),
                LoopInput.Call c => Called(c),
                LoopInput.Cancel c => _calls.Forget(c.CallId) ? _committer.Commit(Agent.Msg.NewToolCancelled(c.CallId)) : null,
                LoopInput.News n => _effects.IsCurrent(n.Workspace, n.Stream)
                    ? _committer.Commit(Agent.Msg.NewStream(n.Workspace, n.Item, Random.Shared.NextDouble()))
                    : null,
                _ => null,
            };
            if (effects is not null && _effects.Perform(effects) is int code)
                Stop(new MoleculeAgentStoppedException(code));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _log.Error($"agent loop: {ex.GetType().Name}: {ex.Message}");
            // a call the failed step started is answered with the failure rather than left waiting
            if (input is LoopInput.Call c && _calls.Forget(c.Pending.Id)) c.Pending.Result.TrySetException(ex);
        }
    }

    private List<Effect>? Called(LoopInput.Call c)
    {
        var call = c.Pending;
        if (call.Result.Task.IsCompleted) return null; // given up before it started
        _calls.Add(call);
        var called = ToolCalled(call.Id, c.Name, c.Arguments);
        return call.Progress is null
            ? _committer.Commit(called)
            : _committer.Commit(called, Agent.Msg.NewProgressRequested(call.Id, c.Name));
    }

    /// <summary>
    /// The core's message for a tool call: id, a fresh random UUID (the host's randomness), and the call as
    /// <c>Tools.parse</c> reads it — parsed here, as it arrives: the core gets typed values, never the mutable arguments.
    /// </summary>
    private static Agent.Msg ToolCalled(long id, string name, JsonObject? arguments) =>
        Agent.Msg.NewToolCalled(id, Guid.NewGuid().ToString("D"), Molecule.Core.Tools.parse(name,
            arguments is null ? FSharpOption<JsonObject>.None : FSharpOption<JsonObject>.Some(arguments)));

    private void Stop(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _stopReason, reason, null) is not null) return;
        Volatile.Write(ref _stopped, 1);
        _inputs.Writer.TryComplete();
        _notifications.Writer.TryComplete();
        _permissionAnswers.Writer.TryComplete();
        _shutdown.Cancel();
        if (reason is MoleculeAgentStoppedException) _completion.TrySetException(reason);
    }

    /// <summary>
    /// Stops the agent: the input being handled is finished (a ledger write is never cut short), nothing after it is
    /// read; requests, timers and streams are cancelled; waiting calls end with <see cref="ObjectDisposedException"/>;
    /// the poller locks are released.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        Stop(new ObjectDisposedException(nameof(MoleculeAgent)));
        try
        {
            await _run.WaitAsync(StopPatience).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _log.Warning("the agent loop did not stop within 2 s");
        }
        _effects.Dispose();
        _committer.Dispose();
        _http.Dispose();
        _completion.TrySetResult();
    }
}
