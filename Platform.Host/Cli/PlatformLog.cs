using System.Threading.Channels;

namespace Molecule.PlatformHost.Cli;

/// <summary>
/// The platform's log on stderr, written by one background task. The platform logs while it holds its store lock
/// (each activity row, each refusal), so a write must never wait for the reader of stderr: a paused terminal or a
/// supervisor that does not read would otherwise stop every request. Lines queue (up to 10,000); beyond that they
/// are dropped and the number dropped is said with the next line that fits.
/// </summary>
internal sealed class PlatformLog
{
    private readonly Channel<string> _lines = Channel.CreateBounded<string>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly Task _writer;
    private readonly string _prefix;
    private readonly bool _json;
    private long _dropped;

    /// <summary>A log whose lines are <c>prefix + text</c>, or with <paramref name="json"/> one JSON object a line:
    /// <c>{"time", "instance", "message"}</c>.</summary>
    public PlatformLog(string prefix, bool json = false)
    {
        _prefix = prefix;
        _json = json;
        _writer = Task.Run(WriteAsync);
    }

    /// <summary>The instance the JSON lines name (set once the platform's options are known).</summary>
    public string Instance { get; set; } = "";

    public void Write(string text)
    {
        if (!_lines.Writer.TryWrite(Line(text))) Interlocked.Increment(ref _dropped);
    }

    private string Line(string text) => _json ? JsonLine(DateTimeOffset.UtcNow, Instance, text) : _prefix + text;

    /// <summary>One structured log line: the time (RFC 3339 UTC), the instance's name and the message.</summary>
    public static string JsonLine(DateTimeOffset time, string instance, string message)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("time", time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("instance", instance);
            w.WriteString("message", message);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private async Task WriteAsync()
    {
        var err = Console.Error;
        await foreach (var line in _lines.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            var dropped = Interlocked.Exchange(ref _dropped, 0);
            if (dropped > 0) err.WriteLine(Line($"({dropped} log lines dropped: stderr was not read fast enough)"));
            err.WriteLine(line);
            if (_lines.Reader.Count == 0) err.Flush();
        }
        err.Flush();
    }

    /// <summary>Writes what is queued (waiting at most half a second for a reader of stderr, well inside the CLI's shutdown timeout), then stops taking lines.</summary>
    public async Task FlushAndStopAsync()
    {
        _lines.Writer.TryComplete();
        await Task.WhenAny(_writer, Task.Delay(TimeSpan.FromMilliseconds(500))).ConfigureAwait(false);
    }
}
