using System.Text;
using Molecule.Core;
using CoreRequest = Molecule.Core.Request;
using CoreResponse = Molecule.Core.Response;

namespace Molecule.Agents.Effects;

internal sealed partial class HttpExecutor
{
    /// <summary>
    /// Opens a server-sent event stream and reports, in order: <see cref="Doorbell.News.Opened"/> (or
    /// <c>Refused</c> with the answer and stop), one <c>Frame</c> per event's data, and <c>Ended</c> when the stream
    /// ends. Nothing is reported once <paramref name="ct"/> is cancelled (the stream was replaced or closed). The
    /// request's timeout bounds only the wait for the response headers. Never throws.
    /// </summary>
    public async Task ListenAsync(CoreRequest request, Func<Doorbell.News, Task> report, CancellationToken ct)
    {
        var headerSecs = request.TimeoutSecs is > 0 and < 86_400 ? request.TimeoutSecs : DefaultTimeoutSecs;
        if (!Uri.TryCreate(request.Url, UriKind.Absolute, out var uri))
        {
            await report(Doorbell.News.NewRefused(CoreResponse.NewTransportError(Sanitize(request, $"invalid URL: {request.Url}")))).ConfigureAwait(false);
            return;
        }
        HttpResponseMessage? response = null;
        try
        {
            using (var headersCts = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                headersCts.CancelAfter(TimeSpan.FromSeconds(headerSecs));
                using var message = new HttpRequestMessage(System.Net.Http.HttpMethod.Get, uri);
                AttachHeaders(message, request.Headers);
                try
                {
                    response = await _client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, headersCts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    await report(Doorbell.News.NewRefused(CoreResponse.NewTimedOut(headerSecs))).ConfigureAwait(false);
                    return;
                }
            }
            var status = (int)response.StatusCode;
            if (status != 200)
            {
                var (body, _) = await ReadBodyAsync(response.Content, ct).ConfigureAwait(false);
                if (!ct.IsCancellationRequested)
                    await report(Doorbell.News.NewRefused(CoreResponse.NewReply(status, body))).ConfigureAwait(false);
                return;
            }
            await report(Doorbell.News.Opened).ConfigureAwait(false);
            await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var data = new StringBuilder();
            while (true)
            {
                var line = await reader.ReadLineAsync(ct).ConfigureAwait(false);
                if (line is null)
                {
                    await report(Doorbell.News.NewEnded("the platform closed the stream")).ConfigureAwait(false);
                    return;
                }
                if (line.Length == 0)
                {
                    if (data.Length > 0) await report(Doorbell.News.NewFrame(data.ToString())).ConfigureAwait(false);
                    data.Clear();
                }
                else if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    if (data.Length > 0) data.Append('\n');
                    data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
                    // A frame larger than a response body is not a doorbell: drop it, keep the ring.
                    if (data.Length > _maxBodyBytes) data.Clear().Append("{}");
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // replaced or closed: nothing to report
        }
        catch (HttpRequestException ex) when (!ct.IsCancellationRequested)
        {
            var news = response is null
                ? Doorbell.News.NewRefused(CoreResponse.NewTransportError(Sanitize(request, DescribeFailure(ex, uri))))
                : Doorbell.News.NewEnded(Sanitize(request, ex.Message));
            await report(news).ConfigureAwait(false);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            var news = response is null
                ? Doorbell.News.NewRefused(CoreResponse.NewTransportError(Sanitize(request, $"{ex.GetType().Name}: {ex.Message}")))
                : Doorbell.News.NewEnded(Sanitize(request, $"{ex.GetType().Name}: {ex.Message}"));
            await report(news).ConfigureAwait(false);
        }
        finally
        {
            response?.Dispose();
        }
    }
}
