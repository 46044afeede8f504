using Molecule.Core;
using Molecule.Protocol;

namespace Molecule.Agents;

/// <summary>What the agent's loop reads, one at a time and in the order posted.</summary>
internal abstract class LoopInput
{
    private LoopInput() { }

    /// <summary>A message for the core: the answer of an effect, a timer, the start.</summary>
    public sealed class Message(Agent.Msg msg) : LoopInput
    {
        public Agent.Msg Msg { get; } = msg;
    }

    /// <summary>A tool call of the facade: remembered, then given to the core.</summary>
    public sealed class Call(PendingCall call, string name, System.Text.Json.Nodes.JsonObject? arguments) : LoopInput
    {
        public PendingCall Pending { get; } = call;
        public string Name { get; } = name;
        public System.Text.Json.Nodes.JsonObject? Arguments { get; } = arguments;
    }

    /// <summary>The caller gave up on a call.</summary>
    public sealed class Cancel(long call) : LoopInput
    {
        public long CallId { get; } = call;
    }

    /// <summary>News of an event stream, dropped when that stream has since been replaced or closed.</summary>
    public sealed class News(WorkspaceId workspace, long stream, Doorbell.News news) : LoopInput
    {
        public WorkspaceId Workspace { get; } = workspace;
        public long Stream { get; } = stream;
        public Doorbell.News Item { get; } = news;
    }
}

/// <summary>A tool call waiting for its answer.</summary>
internal sealed class PendingCall(long id, IProgress<ToolProgress>? progress)
{
    public long Id { get; } = id;
    public IProgress<ToolProgress>? Progress { get; } = progress;
    public TaskCompletionSource<ToolResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public CancellationTokenRegistration Cancellation { get; set; }
}

/// <summary>The calls waiting for an answer. Used by the loop only.</summary>
internal sealed class PendingCalls
{
    private readonly Dictionary<long, PendingCall> _calls = new();

    public void Add(PendingCall call) => _calls[call.Id] = call;

    /// <summary>Forgets a call the caller gave up on; whether it was still waiting.</summary>
    public bool Forget(long id)
    {
        if (!_calls.Remove(id, out var call)) return false;
        call.Cancellation.Unregister();
        return true;
    }

    public void Complete(long id, ToolResult result)
    {
        if (!_calls.Remove(id, out var call)) return;
        call.Cancellation.Unregister();
        call.Result.TrySetResult(result);
    }

    public void Report(long id, ToolProgress progress)
    {
        if (_calls.TryGetValue(id, out var call)) call.Progress?.Report(progress);
    }

    /// <summary>Ends every waiting call with <paramref name="error"/> (the agent stopped).</summary>
    public void FailAll(Exception error)
    {
        foreach (var call in _calls.Values)
        {
            call.Cancellation.Unregister();
            call.Result.TrySetException(error);
        }
        _calls.Clear();
    }
}
