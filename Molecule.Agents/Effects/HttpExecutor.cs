using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.FSharp.Collections;
using Molecule.Core;
using Polly;
using Polly.Retry;
using CoreRequest = Molecule.Core.Request;
using CoreResponse = Molecule.Core.Response;
using CoreHttpMethod = Molecule.Core.HttpMethod;

namespace Molecule.Agents.Effects;

/// <summary>Retry parameters for <see cref="Retry.TransientConnect"/> (spec: 5 attempts, min(2^k,16) s ±25 %, 600 s).</summary>
internal sealed record TransientRetryPolicy(
    int MaxAttempts = 5,
    double MaxDelaySecs = 16,
    double Jitter = 0.25,
    double BudgetSecs = 600)
{
    public static readonly TransientRetryPolicy Default = new();

    /// <summary>Delay after the failed attempt <paramref name="attempt"/> (0-based): min(2^k, max) scaled by 1 ± jitter.
    /// <paramref name="unitSample"/> is uniform in [0,1).</summary>
    public TimeSpan DelayAfter(int attempt, double unitSample)
    {
        var baseSecs = Math.Min(Math.Pow(2, Math.Clamp(attempt, 0, 30)), MaxDelaySecs);
        var factor = 1 + Jitter * (2 * unitSample - 1);
        return TimeSpan.FromSeconds(Math.Max(0, baseSecs * factor));
    }
}

/// <summary>
/// Executes core <see cref="CoreRequest"/> values over one shared <see cref="HttpClient"/> and returns a core
/// <see cref="CoreResponse"/>. Never throws: every failure becomes <c>TransportError</c> or <c>TimedOut</c>.
/// Redirects are followed only within the same origin (scheme, host, port). Error messages never contain the
/// Authorization value. Response bodies are capped.
/// </summary>
internal sealed partial class HttpExecutor : IDisposable
{
    public const int DefaultMaxBodyBytes = 4 * 1024 * 1024;
    private const int MaxRedirects = 5;
    private const double DefaultTimeoutSecs = 30;

    private readonly HttpClient _client;
    private readonly int _maxBodyBytes;
    private readonly TransientRetryPolicy _retry;
    private readonly string _userAgent;

    public HttpExecutor(int maxBodyBytes = DefaultMaxBodyBytes, TransientRetryPolicy? retry = null,
        HttpMessageHandler? handler = null, string? userAgent = null)
    {
        _maxBodyBytes = maxBodyBytes;
        _retry = retry ?? TransientRetryPolicy.Default;
        _userAgent = userAgent ?? $"molecule-mcp/{AppInfo.Version}";
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.All,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            ConnectTimeout = TimeSpan.FromSeconds(15),
            UseCookies = false,
        };
        _client = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Performs the request (with the retry the request asks for). Never throws.</summary>
    public async Task<CoreResponse> ExecuteAsync(CoreRequest request, CancellationToken ct = default)
    {
        try
        {
            if (request.Retry.IsTransientConnect)
                return await ExecuteWithRetryAsync(request, ct).ConfigureAwait(false);
            return (await AttemptAsync(request, ct).ConfigureAwait(false)).Response;
        }
        catch (Exception ex)
        {
            // Defensive: AttemptAsync already converts everything; this only guards against surprises.
            return CoreResponse.NewTransportError(Sanitize(request, $"request failed: {ex.GetType().Name}"));
        }
    }

    private async Task<CoreResponse> ExecuteWithRetryAsync(CoreRequest request, CancellationToken ct)
    {
        var started = Stopwatch.StartNew();
        var policy = _retry;
        var samples = new double[Math.Max(1, policy.MaxAttempts)];
        for (var i = 0; i < samples.Length; i++) samples[i] = Random.Shared.NextDouble();

        var pipeline = new ResiliencePipelineBuilder<Attempt>()
            .AddRetry(new RetryStrategyOptions<Attempt>
            {
                MaxRetryAttempts = Math.Max(1, policy.MaxAttempts - 1),
                ShouldHandle = args =>
                {
                    var a = args.Outcome.Result;
                    if (a is null || !a.ConnectFailure || args.Context.CancellationToken.IsCancellationRequested)
                        return ValueTask.FromResult(false);
                    var delay = policy.DelayAfter(args.AttemptNumber, samples[Math.Min(args.AttemptNumber, samples.Length - 1)]);
                    // Total budget: never start a retry that would begin after the budget is spent.
                    var withinBudget = started.Elapsed + delay < TimeSpan.FromSeconds(policy.BudgetSecs);
                    return ValueTask.FromResult(withinBudget);
                },
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(
                    policy.DelayAfter(args.AttemptNumber, samples[Math.Min(args.AttemptNumber, samples.Length - 1)])),
            })
            .Build();

        try
        {
            var attempt = await pipeline.ExecuteAsync(
                static (state, token) => new ValueTask<Attempt>(state.self.AttemptAsync(state.request, token)),
                (self: this, request), ct).ConfigureAwait(false);
            return attempt.Response;
        }
        catch (OperationCanceledException)
        {
            return CoreResponse.NewTransportError("request cancelled");
        }
    }

    /// <summary>One attempt (following same-origin redirects). Never throws.</summary>
    private async Task<Attempt> AttemptAsync(CoreRequest request, CancellationToken ct)
    {
        var timeoutSecs = request.TimeoutSecs is > 0 and < 86_400 ? request.TimeoutSecs : DefaultTimeoutSecs;
        using var timeoutCts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSecs));
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeoutCts.Token);
        var token = linked.Token;

        if (!Uri.TryCreate(request.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            return new Attempt(CoreResponse.NewTransportError(Sanitize(request, $"invalid URL: {request.Url}")), false);

        var method = request.Method;
        var sendBody = true;
        var disposables = new List<IDisposable>();
        try
        {
            for (var hop = 0; ; hop++)
            {
                using var message = new HttpRequestMessage(ToHttpMethod(method), uri);
                var bodyError = sendBody ? AttachBody(message, request.Body, disposables) : null;
                if (bodyError is not null)
                    return new Attempt(CoreResponse.NewTransportError(Sanitize(request, bodyError)), false);
                AttachHeaders(message, request.Headers);

                using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, token)
                    .ConfigureAwait(false);
                var status = (int)response.StatusCode;

                if (IsRedirect(status) && response.Headers.Location is { } location && hop < MaxRedirects)
                {
                    var target = location.IsAbsoluteUri ? location : new Uri(uri, location);
                    if (SameOrigin(uri, target))
                    {
                        // 303 (and 301/302 after POST, like browsers) continue as GET without a body.
                        if (status == 303 || ((status == 301 || status == 302) && !method.IsGet))
                        {
                            method = CoreHttpMethod.Get;
                            sendBody = false;
                        }
                        uri = target;
                        DisposeAll(disposables);
                        continue;
                    }
                    // Cross-origin redirects are not followed: the 3xx is the answer.
                }

                var (body, tooLarge) = await ReadBodyAsync(response.Content, token).ConfigureAwait(false);
                if (tooLarge)
                    return new Attempt(CoreResponse.NewTransportError(
                        $"response body from {Describe(uri)} exceeds {_maxBodyBytes} bytes (HTTP {status})"), false);
                return new Attempt(CoreResponse.NewReply(status, body), false);
            }
        }
        catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // A timeout is never retried (spec P10 fix).
            return new Attempt(CoreResponse.NewTimedOut(timeoutSecs), false);
        }
        catch (OperationCanceledException)
        {
            return new Attempt(CoreResponse.NewTransportError("request cancelled"), false);
        }
        catch (HttpRequestException ex)
        {
            var connect = IsConnectFailure(ex);
            return new Attempt(CoreResponse.NewTransportError(Sanitize(request, DescribeFailure(ex, uri))), connect);
        }
        catch (Exception ex)
        {
            return new Attempt(CoreResponse.NewTransportError(Sanitize(request, $"{ex.GetType().Name}: {ex.Message} ({Describe(uri)})")), false);
        }
        finally
        {
            DisposeAll(disposables);
        }
    }

    /// <summary>True only when the connection could not be established (refused, unreachable, reset during the
    /// connect): then the peer cannot have seen the request. A connection that closes after the request went out
    /// (no response, reset, abort) is not retried: the peer may already be working on it (spec P10).</summary>
    internal static bool IsConnectFailure(HttpRequestException ex) =>
        ex.HttpRequestError is HttpRequestError.ConnectionError;

    private static string DescribeFailure(HttpRequestException ex, Uri uri)
    {
        string kind = ex.HttpRequestError switch
        {
            HttpRequestError.ConnectionError => "connection failed",
            HttpRequestError.NameResolutionError => "name resolution failed",
            HttpRequestError.SecureConnectionError => "TLS handshake failed",
            HttpRequestError.ResponseEnded => "connection closed before a response",
            _ => "request failed",
        };
        var inner = ex.InnerException is { } ie ? ie.Message : ex.Message;
        return $"{kind}: {inner} ({Describe(uri)})";
    }

    private static string Describe(Uri uri) => uri.GetLeftPart(UriPartial.Path);

    private static bool IsRedirect(int status) => status is 301 or 302 or 303 or 307 or 308;

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase)
        && a.Port == b.Port;

    private static System.Net.Http.HttpMethod ToHttpMethod(CoreHttpMethod m) =>
        m.Tag switch
        {
            CoreHttpMethod.Tags.Post => System.Net.Http.HttpMethod.Post,
            CoreHttpMethod.Tags.Delete => System.Net.Http.HttpMethod.Delete,
            _ => System.Net.Http.HttpMethod.Get,
        };

    private void AttachHeaders(HttpRequestMessage message, FSharpList<Tuple<string, string>> headers)
    {
        string? contentType = null;
        var hasUserAgent = false;
        foreach (var (name, value) in headers)
        {
            if (string.IsNullOrEmpty(name)) continue;
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
            {
                contentType = value;
                continue;
            }
            if (name.Equals("User-Agent", StringComparison.OrdinalIgnoreCase)) hasUserAgent = true;
            if (!message.Headers.TryAddWithoutValidation(name, value))
                message.Content?.Headers.TryAddWithoutValidation(name, value);
        }
        if (!hasUserAgent) message.Headers.TryAddWithoutValidation("User-Agent", _userAgent);
        // An explicit Content-Type only refines a JSON body (multipart needs its boundary).
        if (contentType is not null && message.Content is StringContent sc
            && MediaTypeHeaderValue.TryParse(contentType, out var parsed))
            sc.Headers.ContentType = parsed;
    }

    /// <summary>Sets the body; returns an error text when a multipart file cannot be opened.</summary>
    private static string? AttachBody(HttpRequestMessage message, Body body, List<IDisposable> disposables)
    {
        switch (body)
        {
            case Body.JsonBody json:
                message.Content = new StringContent(json.Item, new UTF8Encoding(false), "application/json");
                return null;
            case Body.Multipart multipart:
                var form = new MultipartFormDataContent();
                disposables.Add(form);
                foreach (var file in multipart.Item)
                {
                    FileStream stream;
                    try
                    {
                        stream = new FileStream(file.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
                    {
                        return $"cannot read file {file.Path}: {ex.Message}";
                    }
                    var part = new StreamContent(stream);
                    if (!string.IsNullOrWhiteSpace(file.ContentType) && MediaTypeHeaderValue.TryParse(file.ContentType, out var ctype))
                        part.Headers.ContentType = ctype;
                    else
                        part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                    form.Add(part, "files", string.IsNullOrEmpty(file.FileName) ? Path.GetFileName(file.Path) : file.FileName);
                }
                message.Content = form;
                return null;
            default:
                return null;
        }
    }

    /// <summary>Bodies up to this size are read into pooled buffers; a larger one into its own array, so the pool
    /// never keeps a rare big body's buffer alive.</summary>
    private const int PooledBodyBytes = 1024 * 1024;

    /// <summary>The body as text (UTF-8), or tooLarge past the limit. Read into a pooled buffer and decoded once:
    /// a busy inbox reads a page of rows every few milliseconds, and growing a fresh buffer for each was most of the
    /// large-object garbage.</summary>
    private async Task<(string body, bool tooLarge)> ReadBodyAsync(HttpContent content, CancellationToken token)
    {
        await using var stream = await content.ReadAsStreamAsync(token).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var size = buffer.Length * 2;
                    var bigger = size <= PooledBodyBytes ? ArrayPool<byte>.Shared.Rent(size) : new byte[size];
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    Give(buffer);
                    buffer = bigger;
                }
                var read = await stream.ReadAsync(buffer.AsMemory(length), token).ConfigureAwait(false);
                if (read == 0) break;
                if (length + read > _maxBodyBytes) return ("", true);
                length += read;
            }
            return (Encoding.UTF8.GetString(buffer, 0, length), false);
        }
        finally
        {
            Give(buffer);
        }

        static void Give(byte[] array)
        {
            if (array.Length <= PooledBodyBytes) ArrayPool<byte>.Shared.Return(array);
        }
    }

    private static void DisposeAll(List<IDisposable> disposables)
    {
        foreach (var d in disposables)
        {
            try { d.Dispose(); } catch { /* ignore */ }
        }
        disposables.Clear();
    }

    /// <summary>Removes the Authorization value (and the bare bearer token) from a message.</summary>
    internal static string Sanitize(CoreRequest request, string text)
    {
        foreach (var (name, value) in request.Headers)
        {
            if (!name.Equals("Authorization", StringComparison.OrdinalIgnoreCase) || string.IsNullOrEmpty(value)) continue;
            text = text.Replace(value, "***", StringComparison.Ordinal);
            var space = value.IndexOf(' ');
            var secret = space >= 0 ? value[(space + 1)..].Trim() : value;
            if (secret.Length >= 4) text = text.Replace(secret, "***", StringComparison.Ordinal);
        }
        return text;
    }

    private sealed record Attempt(CoreResponse Response, bool ConnectFailure);
}
