using System.Text;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Serialization;
using Tomlyn.Syntax;

namespace Molecule.Host.Cli.ConfigFiles;

/// <summary>
/// Adds or replaces <c>[mcp_servers.&lt;name&gt;]</c> in Codex's <c>config.toml</c>. Tomlyn's lossless syntax tree
/// locates every piece of the old entry — its table under any quoting, its <c>[….env]</c> subtable, dotted keys or an
/// inline table inside <c>[mcp_servers]</c> — and only those spans are replaced by one table; every other byte
/// (comments, blank lines, other servers, multi-line arrays) stays. Keys of the old entry that molecule-mcp does not
/// own are carried over. The result is parsed again and must equal the old document with the one entry set.
/// </summary>
public static class TomlConfigEdit
{
    private const string Servers = "mcp_servers";

    /// <summary>A key of the old entry that is kept: its path inside the entry and its value's source text.</summary>
    private sealed record Carried(IReadOnlyList<string> Path, string ValueText);

    public static Edit Merge(string text, ServerEntry entry)
    {
        var bom = text.StartsWith('\uFEFF') ? "\uFEFF" : "";
        var body = text[bom.Length..];
        DocumentSyntax doc;
        TomlTable original;
        try
        {
            doc = SyntaxParser.Parse(body, "config.toml", validate: true);
            if (doc.HasErrors) return Edit.Refuse("it is not valid TOML: " + doc.Diagnostics.First(d => d.Kind == DiagnosticMessageKind.Error).ToString());
            original = Model(body);
        }
        catch (TomlException ex)
        {
            return Edit.Refuse("it is not valid TOML: " + ex.Message);
        }
        if (original.TryGetValue(Servers, out var serversValue) && serversValue is not TomlTable)
            return Edit.Refuse($"its {Servers} is not a table");

        var target = new[] { Servers, entry.Name };
        var cuts = new List<(int Start, int End)>();
        var carried = new List<Carried>();
        int? replaceAt = null;
        int? afterServers = null;

        foreach (var kv in doc.KeyValues)
            if (Collect(kv, [], target, cuts, carried) is { } refusal) return Edit.Refuse(refusal);
        foreach (var table in doc.Tables)
        {
            var path = Parts(table.Name!);
            if (StartsWith(path, [Servers])) afterServers = End(table);
            if (table is TableArraySyntax)
            {
                if (StartsWith(path, [Servers]) && path.Count <= 2) return Edit.Refuse($"its {string.Join('.', path)} is an array of tables");
                continue;
            }
            if (path.Count >= 2 && StartsWith(path, target))
            {
                var inner = path.Skip(2).ToList();
                if (inner.Count > 0 && !Owned(inner[0])) continue; // a subtable of the entry that is not ours: kept
                replaceAt ??= table.Span.Offset;
                cuts.Add((table.Span.Offset, End(table)));
                foreach (var item in table.Items)
                {
                    var p = Parts(item.Key!);
                    if (!Owned((inner.Count > 0 ? inner : p)[0])) carried.Add(new Carried(inner.Concat(p).ToList(), ValueText(item)));
                }
                continue;
            }
            foreach (var kv in table.Items)
            {
                if (Collect(kv, path, target, cuts, carried) is { } refusal) return Edit.Refuse(refusal);
                if (StartsWith(path, [Servers]) && cuts.Count > 0 && cuts[^1].End == End(kv)) replaceAt ??= End(table);
            }
        }

        var nl = body.Contains("\r\n") ? "\r\n" : "\n";
        var tableText = TableText(entry, carried).Replace("\n", nl);
        var pieces = new StringBuilder();
        var insertAt = replaceAt ?? afterServers ?? body.Length;
        var position = 0;
        var inserted = false;
        foreach (var (start, end) in cuts.OrderBy(c => c.Start).Append((body.Length + 1, body.Length + 1)))
        {
            if (!inserted && insertAt <= start)
            {
                pieces.Append(body, position, insertAt - position);
                pieces.Append(Separated(pieces, tableText, replaceAt is null, nl));
                position = insertAt;
                inserted = true;
            }
            if (start > body.Length) break;
            pieces.Append(body, position, start - position);
            position = end;
        }
        pieces.Append(body, position, body.Length - position);
        var merged = pieces.ToString();

        try
        {
            return Same(Expected(entry, carried, body), Model(merged))
                ? Edit.Ok(bom + merged)
                : Edit.Refuse("the merged file did not read back as the old one with this entry set (a bug: please report it)");
        }
        catch (TomlException ex)
        {
            return Edit.Refuse("the merged file would not be valid TOML (" + ex.Message + "); nothing was written");
        }
    }

    /// <summary>A blank line before the new table when it follows other text, and a line end after the text before it.</summary>
    private static string Separated(StringBuilder before, string table, bool fresh, string nl)
    {
        if (before.Length == 0) return table;
        var text = before.ToString();
        var prefix = text.EndsWith('\n') ? "" : nl;
        if (fresh && !(text + prefix).EndsWith(nl + nl)) prefix += nl;
        return prefix + table;
    }

    /// <summary>
    /// A key-value inside <paramref name="tablePath"/> (or the root) that defines part of the entry: cut out, its
    /// keys that are not ours carried. One that holds the entry inside a larger inline table cannot be edited alone.
    /// </summary>
    private static string? Collect(KeyValueSyntax kv, IReadOnlyList<string> tablePath, string[] target, List<(int, int)> cuts, List<Carried> carried)
    {
        var full = tablePath.Concat(Parts(kv.Key!)).ToList();
        if (full.Count < target.Length && StartsWith(target, full) && kv.Value is InlineTableSyntax)
            return $"its {string.Join('.', full)} is an inline table; rewrite it as [{Servers}.<name>] tables (or remove {target[1]} from it) and run again";
        if (full.Count < target.Length || !StartsWith(full, target)) return null;
        cuts.Add((kv.Span.Offset, End(kv)));
        var inner = full.Skip(2).ToList();
        if (inner.Count > 0)
        {
            if (!Owned(inner[0])) carried.Add(new Carried(inner, ValueText(kv)));
        }
        else if (kv.Value is InlineTableSyntax inline)
        {
            foreach (var item in inline.Items)
                if (item.KeyValue is { } pair && Parts(pair.Key!) is var p && !Owned(p[0]))
                    carried.Add(new Carried(p, ValueText(pair)));
        }
        return null;
    }

    private static string ValueText(KeyValueSyntax kv) => kv.Value!.ToString().Trim();

    private static bool Owned(string key) => OwnedKeys.Codex.Contains(key);

    private static int End(SyntaxNode node) => node.Span.Offset + node.Span.Length;

    /// <summary>A dotted key's parts, unquoted.</summary>
    private static List<string> Parts(KeySyntax key)
    {
        var parts = new List<string> { Name(key.Key!) };
        foreach (var dot in key.DotKeys) parts.Add(Name(dot.Key!));
        return parts;
    }

    private static string Name(BareKeyOrStringValueSyntax k) => k switch
    {
        BareKeySyntax bare => bare.Key!.Text!,
        StringValueSyntax s => s.Value!,
        _ => k.ToString()!.Trim(),
    };

    private static bool StartsWith(IReadOnlyList<string> path, IReadOnlyList<string> prefix) =>
        path.Count >= prefix.Count && prefix.Select((p, i) => path[i] == p).All(x => x);

    /// <summary>The entry as <c>config codex</c> prints it, then the old entry's keys that are kept.</summary>
    private static string TableText(ServerEntry entry, IEnumerable<Carried> carried)
    {
        var sb = new StringBuilder(Molecule.Protocol.ClientConfig.codexTable(entry.Name, entry.Command, entry.Env));
        foreach (var c in carried) sb.Append(CarriedLine(c)).Append('\n');
        return sb.ToString();
    }

    private static string CarriedLine(Carried c) => string.Join('.', c.Path.Select(Key)) + " = " + c.ValueText;

    private static string Key(string key) => BareKeySyntax.IsBareKey(key) ? key : Molecule.Protocol.ClientConfig.tomlString(key);

    private static TomlTable Model(string text) =>
        TomlSerializer.Deserialize(text, TomlModelContext.Default.TomlTable) ?? new TomlTable();

    /// <summary>The old document with mcp_servers.&lt;name&gt; set to the entry (carried keys included).</summary>
    private static TomlTable Expected(ServerEntry entry, List<Carried> carried, string body)
    {
        var expected = Model(body);
        if (!expected.TryGetValue(Servers, out var s) || s is not TomlTable servers)
        {
            servers = new TomlTable();
            expected[Servers] = servers;
        }
        var table = new TomlTable();
        if (carried.Count > 0)
        {
            var carriedText = string.Join('\n', carried.Select(CarriedLine)) + "\n";
            foreach (var (k, v) in Model(carriedText)) table[k] = v;
        }
        table["command"] = entry.Command;
        var env = new TomlTable();
        foreach (var kv in entry.Env) env[kv.Item1] = kv.Item2;
        table["env"] = env;
        servers[entry.Name] = table;
        return expected;
    }

    private static bool Same(object? a, object? b) => (a, b) switch
    {
        (TomlTable x, TomlTable y) => x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var v) && Same(kv.Value, v)),
        (TomlTableArray x, TomlTableArray y) => x.Count == y.Count && x.Zip(y).All(p => Same(p.First, p.Second)),
        (TomlArray x, TomlArray y) => x.Count == y.Count && x.Zip(y).All(p => Same(p.First, p.Second)),
        _ => Equals(a, b),
    };
}

/// <summary>Tomlyn's model (TomlTable) without reflection: the NativeAOT molecule-mcp reads and checks TOML through it.</summary>
[TomlSerializable(typeof(TomlTable))]
internal partial class TomlModelContext : TomlSerializerContext;
