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
/// </summary>
public sealed class DiscoverGateTransport : ITransport
{
    private readonly ITransport _inner;
    private readonly Channel<JsonRpcMessage> _incoming = Channel.CreateUnbounded<JsonRpcMessage>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public DiscoverGateTransport(ITransport inner)
    {
        _inner = inner;
        _ = Task.Run(PumpAsync);
    }

    public string? SessionId => _inner.SessionId;

    public ChannelReader<JsonRpcMessage> MessageReader => _incoming.Reader;

    public Task SendMessageAsync(JsonRpcMessage message, CancellationToken cancellationToken = default) =>
        _inner.SendMessageAsync(message, cancellationToken);

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
