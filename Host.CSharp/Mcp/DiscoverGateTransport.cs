using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;

namespace Molecule.Host.Mcp;

/// <summary>
/// Wraps the stdio transport and answers <c>server/discover</c> (the 2026-07-28 revision's opening request)
/// with JSON-RPC -32601 before the SDK sees it, so clients fall back to the <c>initialize</c> handshake — the only
/// handshake that carries <c>notifications/initialized</c> and the channel capability. It has to happen here, below
/// the SDK: the SDK's own first filter adopts the version from the request's <c>_meta</c> before any user filter
/// runs, and would then refuse the client's fallback <c>initialize</c>.
/// It also answers the stand-in for a line <see cref="LineCapStream"/> dropped (too long) with -32600 for its id,
/// and at the end of stdin lets the requests already read be answered (up to <see cref="DrainLimit"/>, through
/// <see cref="DrainAsync"/> before the stdio transport sees the end and stops sending): `printf '…' | molecule-mcp`
/// gets its answers (P37: the reference answered nothing after EOF).
/// </summary>
public sealed class DiscoverGateTransport : ITransport
{
    private readonly ITransport _inner;
    private readonly StderrLog? _log;
    private readonly Channel<JsonRpcMessage> _incoming = Channel.CreateUnbounded<JsonRpcMessage>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    /// <summary>How long the requests read before the end of stdin may take to be answered.</summary>
    public static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(3);

    private readonly object _pendingGate = new();
    private readonly HashSet<RequestId> _pending = new();
    private TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public DiscoverGateTransport(ITransport inner, StderrLog? log = null)
    {
        _inner = inner;
        _log = log;
        _ = Task.Run(PumpAsync);
    }

    public string? SessionId => _inner.SessionId;

    public ChannelReader<JsonRpcMessage> MessageReader => _incoming.Reader;

    public async Task SendMessageAsync(JsonRpcMessage message, CancellationToken cancellationToken = default)
    {
        await _inner.SendMessageAsync(message, cancellationToken).ConfigureAwait(false);
        if (message is JsonRpcMessageWithId { Id: var id } and (JsonRpcResponse or JsonRpcError)) Answered(id);
    }

    private void Asked(RequestId id)
    {
        lock (_pendingGate)
        {
            if (_pending.Count == 0 && _drained.Task.IsCompleted)
                _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending.Add(id);
        }
    }

    private void Answered(RequestId id)
    {
        lock (_pendingGate)
        {
            if (_pending.Remove(id) && _pending.Count == 0) _drained.TrySetResult();
        }
    }

    /// <summary>
    /// At the end of stdin (see <see cref="LineCapStream.AtEnd"/>): waits until the messages already read have
    /// reached the SDK, then until every request among them is answered — at most <see cref="DrainLimit"/> in all.
    /// </summary>
    public async Task DrainAsync()
    {
        var deadline = Task.Delay(DrainLimit);
        // the lines returned last are parsed and queued by the transport a moment later: wait for 100 ms in which
        // nothing waits between stdin and the SDK
        var quietSince = DateTime.UtcNow;
        while (!deadline.IsCompleted && DateTime.UtcNow - quietSince < TimeSpan.FromMilliseconds(100))
        {
            await Task.Delay(10).ConfigureAwait(false);
            if (_inner.MessageReader.CanCount && _inner.MessageReader.Count > 0 || _incoming.Reader.CanCount && _incoming.Reader.Count > 0)
                quietSince = DateTime.UtcNow;
        }
        Task drained;
        lock (_pendingGate)
        {
            if (_pending.Count == 0) return;
            drained = _drained.Task;
        }
        await Task.WhenAny(drained, deadline).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => _inner.DisposeAsync();

    private async Task PumpAsync()
    {
        Exception? failure = null;
        try
        {
            await foreach (var message in _inner.MessageReader.ReadAllAsync().ConfigureAwait(false))
            {
                if (message is JsonRpcRequest { Method: RequestMethods.ServerDiscover } discover)
                {
                    await RefuseAsync(discover).ConfigureAwait(false);
                    continue;
                }
                if (message is JsonRpcNotification { Method: LineCapStream.OversizedMethod } oversized)
                {
                    await RefuseOversizedAsync(oversized).ConfigureAwait(false);
                    continue;
                }
                if (message is JsonRpcRequest request) Asked(request.Id);
                await _incoming.Writer.WriteAsync(message).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        finally
        {
            _incoming.Writer.TryComplete(failure);
        }
    }

    private async Task RefuseOversizedAsync(JsonRpcNotification marker)
    {
        var p = marker.Params as JsonObject;
        var bytes = p?["bytes"]?.GetValue<long>() ?? 0;
        var limit = p?["limit"]?.GetValue<long>() ?? 0;
        var text = $"Request too large: {bytes.ToString(CultureInfo.InvariantCulture)} bytes; this server accepts JSON-RPC messages of at most {limit.ToString(CultureInfo.InvariantCulture)} bytes (MOLECULE_MCP_MAX_LINE_BYTES). The message was dropped.";
        _log?.Warning($"dropped a stdin line of {bytes.ToString(CultureInfo.InvariantCulture)} bytes (limit {limit.ToString(CultureInfo.InvariantCulture)})");
        RequestId? id = p?["id"] switch
        {
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n) => new RequestId(n),
            JsonValue v when v.GetValueKind() == JsonValueKind.String => new RequestId(v.GetValue<string>()),
            _ => null,
        };
        if (id is not { } requestId) return; // a notification, or no id to answer: nothing waits for an answer
        try
        {
            await _inner.SendMessageAsync(new JsonRpcError
            {
                Id = requestId,
                Error = new JsonRpcErrorDetail { Code = (int)McpErrorCode.InvalidRequest, Message = text },
            }).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The client went away; nothing to answer.
        }
    }

    private async Task RefuseAsync(JsonRpcRequest request)
    {
        try
        {
            await _inner.SendMessageAsync(new JsonRpcError
            {
                Id = request.Id,
                Error = new JsonRpcErrorDetail
                {
                    Code = (int)McpErrorCode.MethodNotFound,
                    Message = $"Method '{request.Method}' is not available.",
                },
            }).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The client went away; nothing to answer.
        }
    }
}
