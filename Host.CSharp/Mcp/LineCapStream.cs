using System.Globalization;
using System.Text;

namespace Molecule.Host.Mcp;

/// <summary>
/// stdin for the MCP transport with a cap on line length. A line (one JSON-RPC message) is passed on only once it is
/// complete and within <see cref="Limit"/> bytes; a longer one is never held whole: its bytes are dropped as they
/// arrive (only its top-level <c>"id"</c> is picked out on the way) and, at its end, replaced by one small
/// notification <see cref="OversizedMethod"/> naming the id, so the server can answer the request with an error
/// instead of keeping the client waiting. Memory stays bounded by the limit, whatever the client sends.
/// </summary>
public sealed class LineCapStream : Stream
{
    /// <summary>The notification that stands in for a dropped line: params <c>{"id":…,"bytes":N,"limit":N}</c>.</summary>
    public const string OversizedMethod = "molecule/line-too-long";

    private const int ChunkSize = 64 * 1024;

    private readonly Stream _inner;
    private readonly byte[] _chunk = new byte[ChunkSize];
    private readonly MemoryStream _line = new();
    private readonly TopLevelIdScanner _scanner = new();
    private byte[] _ready = [];
    private int _readyOffset;
    private bool _discarding;
    private long _discarded;
    private bool _eof;

    public LineCapStream(Stream inner, int limit)
    {
        _inner = inner;
        Limit = Math.Max(1024, limit);
    }

    /// <summary>The longest line passed on, in bytes (without the newline).</summary>
    public int Limit { get; }

    /// <summary>Awaited once at the end of input, before the reader is told (the transport stops sending once it
    /// is): lets the requests already read be answered.</summary>
    public Func<Task>? AtEnd { get; set; }

    private bool _endAnnounced;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        while (_readyOffset >= _ready.Length)
        {
            if (_eof)
            {
                if (!_endAnnounced && AtEnd is { } atEnd)
                {
                    _endAnnounced = true;
                    await atEnd().ConfigureAwait(false);
                }
                return 0;
            }
            var n = await _inner.ReadAsync(_chunk.AsMemory(), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                _eof = true;
                // A last line without a newline is passed on (when it fits) with the newline added, so the reader has
                // a whole line before it learns of the end (P37).
                if (!_discarding && _line.Length > 0)
                {
                    _line.WriteByte((byte)'\n');
                    Emit(_line.ToArray());
                }
                continue;
            }
            Consume(_chunk.AsSpan(0, n));
        }
        var take = Math.Min(destination.Length, _ready.Length - _readyOffset);
        _ready.AsMemory(_readyOffset, take).CopyTo(destination);
        _readyOffset += take;
        return take;
    }

    private void Consume(ReadOnlySpan<byte> bytes)
    {
        var output = new MemoryStream();
        while (!bytes.IsEmpty)
        {
            var newline = bytes.IndexOf((byte)'\n');
            var part = newline < 0 ? bytes : bytes[..newline];
            if (_discarding)
            {
                _scanner.Feed(part);
                _discarded += part.Length;
            }
            else if (_line.Length + part.Length > Limit)
            {
                _discarding = true;
                _scanner.Reset();
                _scanner.Feed(_line.GetBuffer().AsSpan(0, (int)_line.Length));
                _scanner.Feed(part);
                _discarded = _line.Length + part.Length;
                ResetLine();
            }
            else
            {
                _line.Write(part);
            }
            if (newline < 0) break;
            if (_discarding)
            {
                output.Write(Marker(_scanner.Id, _discarded));
                _discarding = false;
            }
            else
            {
                output.Write(_line.GetBuffer().AsSpan(0, (int)_line.Length));
                output.WriteByte((byte)'\n');
                ResetLine();
            }
            bytes = bytes[(newline + 1)..];
        }
        if (output.Length > 0) Emit(output.ToArray());
    }

    private void ResetLine()
    {
        _line.SetLength(0);
        // A line close to the limit leaves a big buffer behind: give it back.
        if (_line.Capacity > ChunkSize * 4) _line.Capacity = ChunkSize;
    }

    private void Emit(byte[] bytes)
    {
        _ready = bytes;
        _readyOffset = 0;
    }

    private byte[] Marker(string? id, long bytes)
    {
        var b = bytes.ToString(CultureInfo.InvariantCulture);
        var limit = Limit.ToString(CultureInfo.InvariantCulture);
        var idJson = IsIdJson(id) ? id! : "null";
        return Encoding.UTF8.GetBytes(
            $"{{\"jsonrpc\":\"2.0\",\"method\":\"{OversizedMethod}\",\"params\":{{\"id\":{idJson},\"bytes\":{b},\"limit\":{limit}}}}}\n");
    }

    /// <summary>A JSON-RPC id is a JSON number or string.</summary>
    private static bool IsIdJson(string? text)
    {
        if (string.IsNullOrEmpty(text)) return false;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(text);
            return doc.RootElement.ValueKind is System.Text.Json.JsonValueKind.Number or System.Text.Json.JsonValueKind.String;
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _inner.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Finds the top-level <c>"id"</c> member of one JSON object fed in pieces, without holding the text: tracks nesting
/// and strings byte by byte, and keeps only the id's own JSON text (a number or string of at most 200 bytes).
/// </summary>
internal sealed class TopLevelIdScanner
{
    private const int MaxId = 200;
    private readonly StringBuilder _key = new();
    private readonly StringBuilder _value = new();
    private int _depth;
    private bool _inString;
    private bool _escape;
    private bool _readingKey;
    private bool _afterIdKey;
    private bool _readingValue;
    private bool _expectKey = true;

    /// <summary>The id's JSON text (e.g. <c>5</c> or <c>"abc"</c>), when found and short enough.</summary>
    public string? Id { get; private set; }

    public void Reset()
    {
        _key.Clear();
        _value.Clear();
        _depth = 0;
        _inString = _escape = _readingKey = _afterIdKey = _readingValue = false;
        _expectKey = true;
        Id = null;
    }

    public void Feed(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes) Step((char)b);
    }

    private void Step(char c)
    {
        if (_readingValue && _depth == 1)
        {
            if (!_inString && _value.Length == 0 && char.IsWhiteSpace(c))
            {
                // whitespace before the value
            }
            else if (_inString || (c != ',' && c != '}' && !char.IsWhiteSpace(c)))
            {
                if (_value.Length <= MaxId) _value.Append(c);
            }
            else
            {
                FinishValue();
            }
        }
        if (_inString)
        {
            if (_escape) _escape = false;
            else if (c == '\\') _escape = true;
            else if (c == '"')
            {
                _inString = false;
                if (_readingKey)
                {
                    _readingKey = false;
                    _afterIdKey = _key.ToString() == "id";
                }
                else if (_readingValue && _depth == 1)
                {
                    FinishValue();
                }
            }
            else if (_readingKey && _key.Length < 8) _key.Append(c);
            return;
        }
        switch (c)
        {
            case '"':
                _inString = true;
                if (_depth == 1 && _expectKey)
                {
                    _readingKey = true;
                    _expectKey = false;
                    _key.Clear();
                }
                break;
            case '{' or '[':
                _depth++;
                break;
            case '}' or ']':
                _depth--;
                break;
            case ':' when _depth == 1:
                if (_afterIdKey)
                {
                    _readingValue = true;
                    _value.Clear();
                    _afterIdKey = false;
                }
                break;
            case ',' when _depth == 1:
                _expectKey = true;
                break;
        }
    }

    private void FinishValue()
    {
        _readingValue = false;
        var text = _value.ToString().Trim();
        if (text.Length is > 0 and <= MaxId && Id is null) Id = text;
    }
}
