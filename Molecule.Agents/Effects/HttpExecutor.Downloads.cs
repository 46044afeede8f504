using Molecule.Core;
using CoreRequest = Molecule.Core.Request;

namespace Molecule.Agents.Effects;

internal sealed partial class HttpExecutor
{
    /// <summary>The largest file downloaded (the platform's per-file cap, addendum §7.5).</summary>
    public const long MaxDownloadBytes = 100L * 1024 * 1024;

    private const UnixFileMode File0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Dir0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// GETs <paramref name="request"/> into <paramref name="path"/>: written to a temporary file in the same directory
    /// (mode 0600, directories 0700), flushed to disk, then renamed into place — so the path never holds a partial
    /// file. Never throws: a non-2xx answer is <c>DownloadRefused</c>, anything else that fails <c>DownloadFailed</c>.
    /// </summary>
    public async Task<DownloadResult> DownloadAsync(CoreRequest request, string path, CancellationToken ct = default)
    {
        var timeoutSecs = request.TimeoutSecs is > 0 and < 86_400 ? request.TimeoutSecs : DefaultTimeoutSecs;
        using var timeoutCts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSecs));
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeoutCts.Token);
        var token = linked.Token;

        if (!Uri.TryCreate(request.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            return DownloadResult.NewDownloadFailed(Sanitize(request, $"invalid URL: {request.Url}"));
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathFullyQualified(path))
            return DownloadResult.NewDownloadFailed($"not an absolute path: {path}");

        string? temp = null;
        try
        {
            using var message = new HttpRequestMessage(System.Net.Http.HttpMethod.Get, uri);
            AttachHeaders(message, request.Headers);
            using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is < 200 or >= 300)
            {
                var (body, _) = await ReadBodyAsync(response.Content, token).ConfigureAwait(false);
                return DownloadResult.NewDownloadRefused(status, body);
            }
            if (response.Content.Headers.ContentLength is > MaxDownloadBytes)
                return DownloadResult.NewDownloadFailed("the file is larger than 100 MB");

            var dir = Path.GetDirectoryName(path)!;
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
            else Directory.CreateDirectory(dir, Dir0700);
            temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.part");
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = File0600;

            long total = 0;
            await using (var file = new FileStream(temp, options))
            await using (var source = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false))
            {
                var buffer = new byte[81920];
                int read;
                while ((read = await source.ReadAsync(buffer, token).ConfigureAwait(false)) > 0)
                {
                    total += read;
                    if (total > MaxDownloadBytes) return DownloadResult.NewDownloadFailed("the file is larger than 100 MB");
                    await file.WriteAsync(buffer.AsMemory(0, read), token).ConfigureAwait(false);
                }
                await file.FlushAsync(token).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
            temp = null;
            return DownloadResult.NewSaved(total);
        }
        catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            return DownloadResult.NewDownloadFailed($"no complete answer within {timeoutSecs} s");
        }
        catch (OperationCanceledException)
        {
            return DownloadResult.NewDownloadFailed("download cancelled");
        }
        catch (HttpRequestException ex)
        {
            return DownloadResult.NewDownloadFailed(Sanitize(request, DescribeFailure(ex, uri)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            return DownloadResult.NewDownloadFailed($"cannot write {path}: {ex.Message}");
        }
        finally
        {
            if (temp is not null)
            {
                try { File.Delete(temp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
        }
    }
}
