using System.Threading.Channels;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Molecule.Host.Logging;

namespace Molecule.Host.Mcp;

/// <summary>
/// Wraps the stdio transport and answers <c>server/discover</c> with "method not found" BEFORE the SDK session
/// sees it. The SDK's built-in per-request-metadata filter runs ahead of user message filters and would record
/// the probe's <c>_meta</c> protocol version (2026-07-28) as negotiated; the client's fallback <c>initialize</c>
/// is then refused. Dropping the probe here keeps the session initialize-capable, so the SDK client's default
/// discover-then-initialize sequence connects.
/// </summary>
internal sealed class DiscoverRejectingTransport : ITransport
{
    private readonly ITransport _inner;
    private readonly StderrLog _log;
    private readonly Channel<JsonRpcMessage> _messages = Channel.CreateUnbounded<JsonRpcMessage>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = true });

    public DiscoverRejectingTransport(ITransport inner, StderrLog log)
    {
        _inner = inner;
        _log = log;
        _ = Task.Run(PumpAsync);
    }

    public string? SessionId => _inner.SessionId;

    public ChannelReader<JsonRpcMessage> MessageReader => _messages.Reader;

    public Task SendMessageAsync(JsonRpcMessage message, CancellationToken cancellationToken = default) =>
        _inner.SendMessageAsync(message, cancellationToken);

    public ValueTask DisposeAsync() => _inner.DisposeAsync();

    private async Task PumpAsync()
    {
        try
        {
            await foreach (var message in _inner.MessageReader.ReadAllAsync().ConfigureAwait(false))
            {
                if (message is JsonRpcRequest { Method: RequestMethods.ServerDiscover } discover)
                {
                    await RejectAsync(discover).ConfigureAwait(false);
                    continue;
                }

                await _messages.Writer.WriteAsync(message).ConfigureAwait(false);
            }

            _messages.Writer.TryComplete();
        }
        catch (Exception ex)
        {
            _messages.Writer.TryComplete(ex);
        }
    }

    private async Task RejectAsync(JsonRpcRequest request)
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
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _log.Debug($"could not answer {request.Method}: {ex.Message}");
        }
    }
}
