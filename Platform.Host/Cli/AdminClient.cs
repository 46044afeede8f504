using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Molecule.PlatformHost.Cli;

/// <summary>
/// Talks to a platform's admin API with the admin bearer. Turns transport failures and 4xx/5xx answers into
/// <see cref="CliException"/>s carrying the platform's own error message.
/// </summary>
public sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _startHint;

    public AdminClient(string baseUrl, string adminToken, string startHint)
    {
        BaseUrl = baseUrl.TrimEnd('/');
        _startHint = startHint;
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(15) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
    }

    public string BaseUrl { get; }

    public void Dispose() => _http.Dispose();

    public Task<JsonNode?> GetAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Get, path, null, ct);
    public Task<JsonNode?> PostAsync(string path, JsonNode body, CancellationToken ct = default) => SendAsync(HttpMethod.Post, path, body, ct);
    public Task<JsonNode?> DeleteAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, path, null, ct);

    /// <summary>Sends one request; returns the parsed JSON body of a 2xx answer (null when empty).</summary>
    public async Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct = default)
    {
        var (status, node, raw) = await TrySendAsync(method, path, body, ct).ConfigureAwait(false);
        if (status is >= 200 and < 300) return node;
        throw new CliException(Describe(status, node, raw));
    }

    /// <summary>Sends one request and returns the status and body whatever the status (transport errors still throw).</summary>
    public async Task<(int Status, JsonNode? Body, string Raw)> TrySendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(method, BaseUrl + path);
        if (body is not null)
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CliException($"cannot reach the platform at {BaseUrl} ({e.Message}): is it running? {_startHint}.");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException($"the platform at {BaseUrl} did not answer within 15 s: {method} {path}");
        }
        using (response)
        {
            var raw = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            JsonNode? node = null;
            try { node = raw.Length == 0 ? null : JsonNode.Parse(raw); }
            catch (JsonException) { }
            return ((int)response.StatusCode, node, raw);
        }
    }

    private static string Describe(int status, JsonNode? node, string raw)
    {
        var message = node is JsonObject o
            ? Str(o, "error") ?? Str(o, "message") ?? Truncate(raw)
            : Truncate(raw);
        if (node is JsonObject o2 && Str(o2, "message") is { } detail && detail != message) message += $" ({detail})";
        var prefix = status switch
        {
            401 => "the platform rejected the admin token (HTTP 401); check --admin-token / the admin_token file",
            403 => "the platform refused the request (HTTP 403)",
            404 => "not found (HTTP 404)",
            409 => "conflict (HTTP 409)",
            410 => "the workspace was deleted on the platform (HTTP 410)",
            _ => $"the platform answered HTTP {status.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        };
        return string.IsNullOrWhiteSpace(message) ? prefix : $"{prefix}: {message}";
    }

    private static string Truncate(string s) => s.Length > 300 ? s[..300] + "…" : s;

    public static string? Str(JsonNode? node, string name) =>
        node is JsonObject o && o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
