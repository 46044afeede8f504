using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Molecule.Host.Cli.ConfigFiles;

/// <summary>
/// Adds or replaces one server in a JSON client config (<c>{"mcpServers": {name: entry}}</c>, OpenCode's
/// <c>{"mcp": …}</c>) by splicing the text: System.Text.Json's reader finds where the entry (or the place for it) is,
/// and only those bytes change — every other byte, comments (JSONC) and formatting included, stays. The result is
/// read back and must equal the old document with the one entry set, or nothing is written.
/// </summary>
public static class JsonConfigEdit
{
    private static readonly JsonDocumentOptions Reading = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 256,
    };

    private sealed record Member(string Name, int NameStart, int ValueStart, int ValueEnd, JsonTokenType Type);

    private sealed record Scan(List<Member> Members, int Open, int Close);

    /// <summary>The config with <paramref name="key"/>.<paramref name="server"/> set to <c>build(old entry)</c>.</summary>
    public static Edit Merge(string text, string key, string server, Func<JsonNode?, JsonObject> build)
    {
        var bom = text.StartsWith('\uFEFF') ? "\uFEFF" : "";
        var body = text[bom.Length..];
        if (body.Trim().Length == 0)
            return Edit.Ok(bom + Render(new JsonObject { [key] = new JsonObject { [server] = build(null) } }, false, "  ", "", "\n") + "\n");

        JsonObject original;
        try
        {
            if (JsonNode.Parse(body, documentOptions: Reading) is not JsonObject o) return Edit.Refuse("it is not a JSON object");
            original = (JsonObject)o.DeepClone(); // materialises every member: a repeated name fails here
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            return Edit.Refuse($"it is not valid JSON ({ex.Message})");
        }

        var bytes = Encoding.UTF8.GetBytes(body);
        var root = ScanObject(bytes, 0, bytes.Length);
        var nl = body.Contains("\r\n") ? "\r\n" : "\n";
        // A file on one line stays on one line; otherwise the indentation of its first member that starts a line.
        var compact = Array.IndexOf(bytes, (byte)'\n', root.Open, root.Close - root.Open) < 0;
        var unit = root.Members.Select(m => LineIndent(bytes, m.NameStart)).FirstOrDefault(i => i is { Length: > 0 }) ?? "  ";

        var keys = root.Members.Where(m => m.Name == key).ToList();
        if (keys.Count > 1) return Edit.Refuse($"it has \"{key}\" more than once");
        var newEntry = build(original[key] is JsonObject servers0 ? servers0[server] : null);

        (int Start, int End, string Text) splice;
        if (keys.Count == 0)
        {
            splice = Insert(bytes, root, "", unit, compact, nl, key, new JsonObject { [server] = newEntry.DeepClone() });
        }
        else
        {
            var k = keys[0];
            if (k.Type != JsonTokenType.StartObject) return Edit.Refuse($"its \"{key}\" is not an object");
            var servers = ScanObject(bytes, k.ValueStart, k.ValueEnd);
            var named = servers.Members.Where(m => m.Name == server).ToList();
            if (named.Count > 1) return Edit.Refuse($"its \"{key}\" has \"{server}\" more than once");
            var indent = LineIndent(bytes, k.NameStart) ?? "";
            if (named.Count == 0)
            {
                splice = Insert(bytes, servers, indent, unit, compact, nl, server, newEntry);
            }
            else
            {
                var m = named[0];
                var memberIndent = LineIndent(bytes, m.NameStart) ?? indent + unit;
                splice = (m.ValueStart, m.ValueEnd, Render(newEntry, compact, unit, memberIndent, nl));
            }
        }

        var merged = bom + Encoding.UTF8.GetString(bytes, 0, splice.Start) + splice.Text
                     + Encoding.UTF8.GetString(bytes, splice.End, bytes.Length - splice.End);
        return Check(original, merged[bom.Length..], key, server, newEntry) ? Edit.Ok(merged)
            : Edit.Refuse("the merged file did not read back as the old one with this entry set (a bug: please report it)");
    }

    /// <summary>A new member at the end of an object: after its last member, or inside the empty braces.</summary>
    private static (int, int, string) Insert(byte[] bytes, Scan obj, string containerIndent, string unit, bool compact,
        string nl, string name, JsonNode value)
    {
        var quoted = Render(JsonValue.Create(name), true, unit, "", nl);
        if (obj.Members.Count > 0)
        {
            var last = obj.Members[^1];
            if (compact) return (last.ValueEnd, last.ValueEnd, "," + quoted + ":" + Render(value, true, unit, "", nl));
            var indent = LineIndent(bytes, last.NameStart) ?? containerIndent + unit;
            return (last.ValueEnd, last.ValueEnd, "," + nl + indent + quoted + ": " + Render(value, false, unit, indent, nl));
        }
        var inner = Encoding.UTF8.GetString(bytes, obj.Open + 1, obj.Close - obj.Open - 1);
        if (compact) return (obj.Open + 1, obj.Open + 1, quoted + ":" + Render(value, true, unit, "", nl));
        var memberIndent = containerIndent + unit;
        var member = quoted + ": " + Render(value, false, unit, memberIndent, nl);
        return inner.Trim().Length == 0
            ? (obj.Open, obj.Close + 1, "{" + nl + memberIndent + member + nl + containerIndent + "}")
            : (obj.Open + 1, obj.Open + 1, nl + memberIndent + member); // comments inside stay after it
    }

    /// <summary>The members of the object that spans [start, end) of the bytes, with their byte offsets.</summary>
    private static Scan ScanObject(byte[] bytes, int start, int end)
    {
        var reader = new Utf8JsonReader(bytes.AsSpan(start, end - start), new JsonReaderOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            MaxDepth = 256,
        });
        reader.Read(); // StartObject
        var open = start + (int)reader.TokenStartIndex;
        var members = new List<Member>();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            var nameStart = start + (int)reader.TokenStartIndex;
            reader.Read();
            var valueStart = start + (int)reader.TokenStartIndex;
            var type = reader.TokenType;
            if (type is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
            var valueEnd = type is JsonTokenType.StartObject or JsonTokenType.StartArray
                ? start + (int)reader.TokenStartIndex + 1
                : start + (int)reader.BytesConsumed;
            members.Add(new Member(name, nameStart, valueStart, valueEnd, type));
        }
        return new Scan(members, open, start + (int)reader.TokenStartIndex);
    }

    /// <summary>The whitespace between the start of the line and <paramref name="pos"/>, or null when other text is there.</summary>
    private static string? LineIndent(byte[] bytes, int pos)
    {
        var i = pos;
        while (i > 0 && bytes[i - 1] is (byte)' ' or (byte)'\t') i--;
        if (i > 0 && bytes[i - 1] != (byte)'\n') return null;
        return Encoding.ASCII.GetString(bytes, i, pos - i);
    }

    /// <summary>A value as JSON: on one line, or indented by <paramref name="unit"/> with lines after the first at <paramref name="indent"/>.</summary>
    public static string Render(JsonNode node, bool compact, string unit, string indent, string nl)
    {
        var options = new JsonWriterOptions
        {
            Indented = !compact,
            IndentCharacter = unit.Length > 0 && unit.All(c => c == '\t') ? '\t' : ' ',
            IndentSize = Math.Clamp(unit.Length, 1, 127),
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            NewLine = "\n",
        };
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, options)) node.WriteTo(writer);
        var text = Encoding.UTF8.GetString(stream.ToArray());
        return compact ? text : text.Replace("\n", nl + indent);
    }

    /// <summary>The merged text reads back as the original with only <c>key.server</c> set to the entry.</summary>
    private static bool Check(JsonObject original, string merged, string key, string server, JsonObject entry)
    {
        try
        {
            var expected = (JsonObject)original.DeepClone();
            if (expected[key] is not JsonObject servers)
            {
                servers = new JsonObject();
                expected[key] = servers;
            }
            servers[server] = entry.DeepClone();
            var actual = JsonNode.Parse(merged, documentOptions: Reading);
            return JsonNode.DeepEquals(expected, actual);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }
}
