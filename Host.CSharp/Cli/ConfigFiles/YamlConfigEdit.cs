using System.Text;
using System.Text.Json.Nodes;
using Microsoft.FSharp.Collections;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Molecule.Host.Cli.ConfigFiles;

/// <summary>
/// Adds or replaces <c>mcp_servers: &lt;name&gt;:</c> in hermes' <c>config.yaml</c>. YamlDotNet's parser gives the
/// position of every node; only the old entry's lines (or the place after the last server) change, written in the
/// style the file uses (block or flow, its indentation). Comments, blank lines, block scalars and other servers stay
/// byte for byte; keys of the old entry molecule-mcp does not own are carried over. The result is parsed again and must
/// equal the old document with the one entry set.
/// </summary>
public static class YamlConfigEdit
{
    private const string Servers = "mcp_servers";

    public static Edit Merge(string text, ServerEntry entry)
    {
        var bom = text.StartsWith('\uFEFF') ? "\uFEFF" : "";
        var body = text[bom.Length..];
        var nl = body.Contains("\r\n") ? "\r\n" : "\n";
        YamlStream stream;
        try
        {
            stream = Load(body);
        }
        catch (Exception ex) when (ex is YamlException or ArgumentException or InvalidOperationException)
        {
            return Edit.Refuse("it is not valid YAML: " + ex.Message);
        }
        if (stream.Documents.Count > 1) return Edit.Refuse("it holds several YAML documents");

        var root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        string merged;
        YamlMappingNode? oldEntry = null;
        if (root is null || root is YamlScalarNode { Value: null or "" or "~" or "null" })
        {
            if (root is YamlScalarNode { Value.Length: > 0 }) return Edit.Refuse("its top level is not a mapping");
            merged = AppendLine(body, nl) + Servers + ":" + nl + BlockEntry(entry, "  ", "  ", nl, []);
        }
        else if (root is not YamlMappingNode top || top.Style == YamlDotNet.Core.Events.MappingStyle.Flow)
        {
            return Edit.Refuse("its top level is not a block mapping");
        }
        else if (Find(top, Servers) is not { } servers)
        {
            merged = AppendLine(body, nl) + Servers + ":" + nl + BlockEntry(entry, Unit(body, top), Unit(body, top), nl, []);
        }
        else if (servers.Value is YamlScalarNode { Style: ScalarStyle.Plain, Value: "" or "~" or "null" or "Null" or "NULL" } empty)
        {
            // `mcp_servers:` (a comment after it, or ~): the entry goes on the lines after it
            var unit = Unit(body, top);
            var start = (int)empty.Start.Index;
            var lineEnd = LineEnd(body, start);
            var keep = lineEnd > 0 && body[lineEnd - 1] == '\n' ? lineEnd - (lineEnd > 1 && body[lineEnd - 2] == '\r' ? 2 : 1) : lineEnd;
            var indent = LineIndent(body, (int)servers.Key.Start.Index) + unit;
            merged = body[..start] + body[(int)empty.End.Index..keep] + nl + BlockEntry(entry, indent, unit, nl, []).TrimEnd('\n', '\r')
                     + body[keep..];
            if (keep == body.Length) merged += nl;
        }
        else if (servers.Value is YamlMappingNode map)
        {
            var named = Find(map, entry.Name);
            oldEntry = named?.Value as YamlMappingNode;
            if (named is { } n && n.Value is not YamlMappingNode && !IsNull(n.Value))
                return Edit.Refuse($"its {Servers}.{entry.Name} is not a mapping");
            merged = map.Style == YamlDotNet.Core.Events.MappingStyle.Flow
                ? Flow(body, map, named, entry)
                : Block(body, top, servers.Key, map, named, entry, nl);
        }
        else
        {
            return Edit.Refuse($"its {Servers} is not a mapping");
        }

        try
        {
            var expected = Canonical(root) as JsonObject ?? new JsonObject();
            if (expected[Servers] is not JsonObject serversObject)
            {
                serversObject = new JsonObject();
                expected[Servers] = serversObject;
            }
            serversObject[entry.Name] = ExpectedEntry(oldEntry, entry);
            var reread = Load(merged);
            var actual = reread.Documents.Count == 1 ? Canonical(reread.Documents[0].RootNode) : null;
            return JsonNode.DeepEquals(expected, actual)
                ? Edit.Ok(bom + merged)
                : Edit.Refuse("the merged file did not read back as the old one with this entry set (a bug: please report it)");
        }
        catch (Exception ex) when (ex is YamlException or ArgumentException or InvalidOperationException)
        {
            return Edit.Refuse("the merged file would not be valid YAML (" + ex.Message + "); nothing was written");
        }
    }

    /// <summary>A block <c>mcp_servers</c>: the old entry's lines replaced, or the new entry after the last server.</summary>
    private static string Block(string body, YamlMappingNode top, YamlNode serversKey, YamlMappingNode map,
        KeyValuePair<YamlNode, YamlNode>? named, ServerEntry entry, string nl)
    {
        var first = map.Children.First();
        var childIndent = LineIndent(body, (int)first.Key.Start.Index);
        var unit = StepInside(body, map) ?? Unit(body, top);
        if (named is { } n)
        {
            var start = LineStart(body, (int)n.Key.Start.Index);
            var end = LineEnd(body, ContentEnd(body, n));
            var carried = new List<string>();
            if (n.Value is YamlMappingNode { Style: YamlDotNet.Core.Events.MappingStyle.Block } old)
                foreach (var child in old.Children.Where(c => !Owned(c.Key)))
                    carried.Add(Ensure(body[LineStart(body, (int)child.Key.Start.Index)..LineEnd(body, ContentEnd(body, child))], nl));
            else if (n.Value is YamlMappingNode flowOld)
                foreach (var child in flowOld.Children.Where(c => !Owned(c.Key)))
                    carried.Add(childIndent + unit + Source(body, child) + nl);
            return body[..start] + BlockEntry(entry, childIndent, unit, nl, carried) + body[end..];
        }
        var at = LineEnd(body, map.Children.Max(c => ContentEnd(body, c)));
        var before = at > 0 && body[at - 1] == '\n' ? "" : nl;
        return body[..at] + before + BlockEntry(entry, childIndent, unit, nl, []) + body[at..];
    }

    /// <summary>A flow <c>mcp_servers: {…}</c>: the entry replaced or added inside the braces, on one line.</summary>
    private static string Flow(string body, YamlMappingNode map, KeyValuePair<YamlNode, YamlNode>? named, ServerEntry entry)
    {
        if (named is { } n)
        {
            var carried = n.Value is YamlMappingNode old ? old.Children.Where(c => !Owned(c.Key)).Select(c => Source(body, c)).ToList() : [];
            return body[..(int)n.Key.Start.Index] + Molecule.Protocol.ClientConfig.yamlKey(entry.Name) + ": " + FlowEntry(entry, carried) + body[ContentEnd(body, n)..];
        }
        if (map.Children.Count > 0)
        {
            var at = map.Children.Max(c => ContentEnd(body, c));
            return body[..at] + ", " + Molecule.Protocol.ClientConfig.yamlKey(entry.Name) + ": " + FlowEntry(entry, []) + body[at..];
        }
        var close = ContentEnd(body, map) - 1;
        return body[..close] + Molecule.Protocol.ClientConfig.yamlKey(entry.Name) + ": " + FlowEntry(entry, []) + body[close..];
    }

    private static string BlockEntry(ServerEntry entry, string indent, string unit, string nl, List<string> carried)
    {
        var block = Molecule.Protocol.ClientConfig.hermesBlock(indent, unit, entry.Name, entry.Command, entry.Env);
        return (nl == "\n" ? block : block.Replace("\n", nl)) + string.Concat(carried);
    }

    private static string FlowEntry(ServerEntry entry, List<string> carried) =>
        Molecule.Protocol.ClientConfig.hermesFlow(entry.Command, entry.Env, ListModule.OfSeq(carried));

    /// <summary>What the entry must read back as: the old entry's own keys that are not ours, and ours.</summary>
    private static JsonObject ExpectedEntry(YamlMappingNode? old, ServerEntry entry)
    {
        var o = new JsonObject();
        if (old is not null)
            foreach (var child in old.Children.Where(c => !Owned(c.Key)))
                o[KeyText(child.Key)] = Canonical(child.Value);
        o["command"] = "s:" + entry.Command;
        var env = new JsonObject();
        foreach (var kv in entry.Env) env[kv.Item1] = "s:" + kv.Item2;
        o["env"] = env;
        o["enabled"] = "p:true";
        return o;
    }

    /// <summary>A YAML node as JSON for comparing: scalars keep whether they were plain (typed by the schema) or quoted.</summary>
    private static JsonNode? Canonical(YamlNode? node, int depth = 0)
    {
        if (depth > 100) throw new InvalidOperationException("nested too deeply (or aliases that refer to themselves)");
        switch (node)
        {
            case null:
                return null;
            case YamlMappingNode m:
                var o = new JsonObject();
                foreach (var c in m.Children) o[KeyText(c.Key)] = Canonical(c.Value, depth + 1);
                return o;
            case YamlSequenceNode s:
                var a = new JsonArray();
                foreach (var c in s.Children) a.Add(Canonical(c, depth + 1));
                return a;
            case YamlScalarNode sc:
                var tag = sc.Tag.IsEmpty ? "" : sc.Tag.Value + " ";
                return tag + (sc.Style is ScalarStyle.Plain or ScalarStyle.Any ? "p:" : "s:") + sc.Value;
            default:
                return node.ToString();
        }
    }

    private static YamlStream Load(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream;
    }

    private static KeyValuePair<YamlNode, YamlNode>? Find(YamlMappingNode map, string key)
    {
        foreach (var c in map.Children)
            if (c.Key is YamlScalarNode s && s.Value == key) return c;
        return null;
    }

    private static bool IsNull(YamlNode n) => n is YamlScalarNode { Style: ScalarStyle.Plain, Value: "" or "~" or "null" or "Null" or "NULL" };

    private static bool Owned(YamlNode key) => key is YamlScalarNode s && OwnedKeys.Hermes.Contains(s.Value);

    private static string KeyText(YamlNode key) => key is YamlScalarNode s ? s.Value ?? "" : "?" + key;

    /// <summary>A key as it is written in the entry: source text of the pair on one line (a flow pair).</summary>
    private static string Source(string body, KeyValuePair<YamlNode, YamlNode> pair) =>
        body[(int)pair.Key.Start.Index..ContentEnd(body, pair)].Trim();

    /// <summary>Where a pair's text ends: after its last scalar, or a flow collection's closing bracket.</summary>
    private static int ContentEnd(string body, KeyValuePair<YamlNode, YamlNode> pair) =>
        Math.Max((int)pair.Key.End.Index, ContentEnd(body, pair.Value));

    private static int ContentEnd(string body, YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode m:
                var inner = m.Children.Count == 0 ? (int)m.Start.Index + 1 : m.Children.Max(c => ContentEnd(body, c));
                return m.Style == YamlDotNet.Core.Events.MappingStyle.Flow ? Closing(body, inner, '}') : inner;
            case YamlSequenceNode s:
                var last = s.Children.Count == 0 ? (int)s.Start.Index + 1 : s.Children.Max(c => ContentEnd(body, c));
                return s.Style == YamlDotNet.Core.Events.SequenceStyle.Flow ? Closing(body, last, ']') : last;
            default:
                return (int)node.End.Index;
        }
    }

    /// <summary>The position after the closing bracket that follows <paramref name="from"/> (spaces, commas, comments between).</summary>
    private static int Closing(string body, int from, char bracket)
    {
        var i = from;
        while (i < body.Length && body[i] != bracket)
        {
            if (body[i] == '#') i = LineEnd(body, i);
            else i++;
        }
        return Math.Min(i + 1, body.Length);
    }

    private static int LineStart(string body, int pos) => body.LastIndexOf('\n', Math.Max(pos - 1, 0)) is var i && i >= 0 && i < pos ? i + 1 : 0;

    private static int LineEnd(string body, int pos)
    {
        if (pos > 0 && pos <= body.Length && body[pos - 1] == '\n') return pos;
        var i = body.IndexOf('\n', Math.Min(pos, body.Length));
        return i < 0 ? body.Length : i + 1;
    }

    private static string LineIndent(string body, int pos)
    {
        var start = LineStart(body, pos);
        var indent = body[start..pos];
        return indent.Trim().Length == 0 ? indent : new string(' ', indent.Length);
    }

    /// <summary>The file's indentation step: under its first nested block mapping, else two spaces.</summary>
    private static string Unit(string body, YamlMappingNode top)
    {
        foreach (var c in top.Children)
            if (c.Value is YamlMappingNode { Style: YamlDotNet.Core.Events.MappingStyle.Block, Children.Count: > 0 } m)
            {
                var indent = LineIndent(body, (int)m.Children.First().Key.Start.Index);
                if (indent.Length > 0) return indent;
            }
        return "  ";
    }

    /// <summary>The step between a server's key and its settings, from a server written in block style.</summary>
    private static string? StepInside(string body, YamlMappingNode servers)
    {
        foreach (var c in servers.Children)
            if (c.Value is YamlMappingNode { Style: YamlDotNet.Core.Events.MappingStyle.Block, Children.Count: > 0 } m)
            {
                var outer = LineIndent(body, (int)c.Key.Start.Index).Length;
                var inner = LineIndent(body, (int)m.Children.First().Key.Start.Index);
                if (inner.Length > outer) return inner[outer..];
            }
        return null;
    }

    private static string AppendLine(string body, string nl) => body.Length == 0 || body.EndsWith('\n') ? body : body + nl;

    private static string Ensure(string line, string nl) => line.EndsWith('\n') ? line : line + nl;
}
