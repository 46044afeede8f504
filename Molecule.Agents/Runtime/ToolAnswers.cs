using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Molecule.Protocol;

namespace Molecule.Agents;

/// <summary>
/// Reads the tools' answers (what the MCP server returns) into the library's result records. The JSON answers are read
/// by their documented fields; the few answers written for an agent to read (list_peers, recall_memory,
/// broadcast_message) are read by the shapes the core writes, which contain no separator a shown value can hold
/// (registry strings are sanitised), and round-trip tests against the core keep the two in step.
/// </summary>
internal static class ToolAnswers
{
    /// <summary>list_peers: one <c>- name (ID: id, status: s[, role: r][, via: w])[ — skills: [a, b]]</c> line per peer.</summary>
    public static IReadOnlyList<Peer> Peers(string text)
    {
        var peers = new List<Peer>();
        foreach (var line in Lines(text))
            if (line.StartsWith("- ", StringComparison.Ordinal) && Peer(line[2..]) is { } peer)
                peers.Add(peer);
        return peers;
    }

    private static Peer? Peer(string line)
    {
        const string skillsMark = " \u2014 skills: [";
        IReadOnlyList<string> skills = [];
        var at = line.IndexOf(skillsMark, StringComparison.Ordinal);
        if (at >= 0 && line.EndsWith(']'))
        {
            skills = line[(at + skillsMark.Length)..^1].Split(", ", StringSplitOptions.RemoveEmptyEntries);
            line = line[..at];
        }
        if (!line.EndsWith(')')) return null;
        var fields = line[..^1].Split(", ");
        var idAt = fields[0].LastIndexOf(" (ID: ", StringComparison.Ordinal);
        if (idAt < 0) return null;
        string Field(string name) =>
            fields.Skip(1).FirstOrDefault(f => f.StartsWith(name + ": ", StringComparison.Ordinal))?[(name.Length + 2)..] ?? "";
        var role = Field("role");
        return new Peer(fields[0][(idAt + 6)..], fields[0][..idAt], Field("status"), role.Length > 0 ? role : null, skills);
    }

    /// <summary>delegate_task: the peer's answer between the frame's markers, or the queued note of a poll-mode peer.</summary>
    public static DelegationReply Delegation(string text)
    {
        var open = A2a.peerResultOpen + "\n";
        var close = "\n" + A2a.peerResultClose;
        return text.StartsWith(open, StringComparison.Ordinal) && text.EndsWith(close, StringComparison.Ordinal) && text.Length >= open.Length + close.Length
            ? new DelegationReply(true, text[open.Length..^close.Length])
            : new DelegationReply(false, text);
    }

    /// <summary>delegate_task_async: <c>{"delegation_id", "workspace_id", "status", "note"}</c>.</summary>
    public static DelegationTicket Ticket(string text)
    {
        var o = Object(text);
        return new DelegationTicket(Str(o, "delegation_id") ?? "", Str(o, "workspace_id") ?? "", Str(o, "note") ?? "");
    }

    /// <summary>check_task_status with a task id: the platform's delegation entry (or <c>{"status":"not_found"}</c>).</summary>
    public static DelegationStatus Status(string text) => Status(Object(text));

    /// <summary>check_task_status without a task id: <c>{"delegations": […], "count": n}</c>.</summary>
    public static IReadOnlyList<DelegationStatus> Statuses(string text) =>
        Object(text)["delegations"] is JsonArray items ? items.OfType<JsonObject>().Select(Status).ToList() : [];

    private static DelegationStatus Status(JsonObject o) =>
        new(Str(o, "delegation_id") ?? "", Str(o, "status") ?? "", Str(o, "target_id"), Str(o, "summary"), Str(o, "response_preview"));

    /// <summary>commit_memory: <c>{"success": true, "id", "scope"}</c>.</summary>
    public static MemoryRecord Committed(string text)
    {
        var o = Object(text);
        return new MemoryRecord(Str(o, "id") ?? "", Str(o, "scope") ?? "");
    }

    /// <summary>recall_memory: one <c>[SCOPE] content</c> per memory; a content's further lines follow its first.</summary>
    public static IReadOnlyList<Memory> Memories(string text)
    {
        var memories = new List<Memory>();
        foreach (var line in Lines(text))
        {
            var close = line.IndexOf("] ", StringComparison.Ordinal);
            if (line.StartsWith('[') && close > 1 && line[1..close].All(c => char.IsAsciiLetterUpper(c) || c == '?'))
                memories.Add(new Memory(line[1..close], line[(close + 2)..]));
            else if (memories.Count > 0)
                memories[^1] = memories[^1] with { Content = memories[^1].Content + "\n" + line };
        }
        return memories;
    }

    /// <summary>get_runtime_identity: the reference's keys.</summary>
    public static RuntimeIdentity Identity(string text)
    {
        var o = Object(text);
        return new RuntimeIdentity(Str(o, "model") ?? "", Str(o, "model_provider") ?? "", Str(o, "molecule_model") ?? "",
            Str(o, "anthropic_base_url") ?? "", Str(o, "tier") ?? "", Str(o, "workspace_id") ?? "", Str(o, "runtime") ?? "");
    }

    /// <summary>get_workspace_info: the platform's workspace object.</summary>
    public static WorkspaceInfo Workspace(string text, string id)
    {
        using var doc = JsonDocument.Parse(text);
        var o = Object(text);
        return new WorkspaceInfo(Str(o, "id") ?? id, Str(o, "name"), Str(o, "role"), Str(o, "status"), doc.RootElement.Clone());
    }

    /// <summary>chat_history: the platform's rows, oldest first.</summary>
    public static IReadOnlyList<JsonElement> Rows(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToList() : [];
    }

    /// <summary>broadcast_message: how many workspaces it reached (null when the platform did not say).</summary>
    public static int? Delivered(string text)
    {
        var digits = new string(text.SkipWhile(c => !char.IsAsciiDigit(c)).TakeWhile(char.IsAsciiDigit).ToArray());
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
    }

    /// <summary>The message wait_for_message answered with; null when it timed out.</summary>
    public static JsonObject? Waited(string text) =>
        Object(text) is { } o && !o.ContainsKey("timeout") ? o : null;

    /// <summary>inbox_peek: the waiting messages.</summary>
    public static IEnumerable<JsonObject> Peeked(string text)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(text); } catch (JsonException) { node = null; }
        return node is JsonArray items ? items.OfType<JsonObject>() : [];
    }

    /// <summary>inbox_pop: whether the message was still waiting.</summary>
    public static bool Removed(string text) =>
        Object(text)["removed"] is JsonValue v && v.TryGetValue<bool>(out var removed) && removed;

    /// <summary>create_request: <c>{"request_id", "status", …}</c>.</summary>
    public static RequestTicket RequestCreated(string text)
    {
        var o = Object(text);
        return new RequestTicket(Str(o, "request_id") ?? "", Str(o, "status") ?? "");
    }

    /// <summary>list_requests: the platform's request objects.</summary>
    public static IReadOnlyList<RequestRecord> Requests(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.ValueKind == JsonValueKind.Array
            ? doc.RootElement.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Object).Select(Request).ToList()
            : [];
    }

    /// <summary>get_request: <c>{"request": …, "messages": […]}</c>.</summary>
    public static RequestThread Thread(string text)
    {
        using var doc = JsonDocument.Parse(text);
        var root = doc.RootElement;
        var request = Request(root.ValueKind == JsonValueKind.Object && root.TryGetProperty("request", out var r) ? r : root);
        var messages = Object(text)["messages"] is JsonArray items
            ? items.OfType<JsonObject>().Select(m => new RequestMessage(Str(m, "id") ?? "", Str(m, "author_type") ?? "",
                Str(m, "author_id"), Str(m, "body") ?? "", Str(m, "created_at"))).ToList()
            : [];
        return new RequestThread(request, messages);
    }

    /// <summary>respond_to_request, add_request_message, cancel_request: the <c>status</c> the platform answered.</summary>
    public static string Field(string text, string name) => Str(Object(text), name) ?? "";

    /// <summary>The <c>request</c> of a request_update message (the inbox tools' JSON).</summary>
    public static RequestChange? Change(JsonNode? node) =>
        node is JsonObject o && Str(o, "request_id") is { Length: > 0 } id
            ? new RequestChange(id, Str(o, "event") ?? "", Str(o, "status") ?? "", Str(o, "kind") ?? "", Str(o, "title") ?? "",
                Str(o, "actor_type") ?? "", Str(o, "actor_id"), Str(o, "body"), Str(o, "source") ?? "")
            : null;

    private static RequestRecord Request(JsonElement e)
    {
        var o = Object(e.GetRawText());
        return new RequestRecord(Str(o, "id") ?? "", Str(o, "kind") ?? "", Str(o, "title") ?? "", Str(o, "detail"),
            Str(o, "status") ?? "", Str(o, "priority"), Str(o, "requester_type") ?? "", Str(o, "requester_id"),
            Str(o, "recipient_type") ?? "", Str(o, "recipient_id"), e.Clone());
    }

    private static IEnumerable<string> Lines(string text) => text.Split('\n');

    private static JsonObject Object(string text)
    {
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? new JsonObject();
        }
        catch (JsonException)
        {
            return new JsonObject();
        }
    }

    private static string? Str(JsonObject o, string name) =>
        o[name] is JsonValue v ? v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => v.ToJsonString(),
            _ => null,
        } : null;
}
