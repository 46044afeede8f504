using System.Text.Json.Nodes;
using Microsoft.FSharp.Core;
using Molecule.Core;
using CoreChannel = Molecule.Core.Channel;

namespace Molecule.Agents;

/// <summary>
/// A tool every agent offers (the MCP server lists exactly these): name, title, description, the JSON Schema of its
/// arguments (as JSON text) and its MCP annotations (<paramref name="Destructive"/> and <paramref name="Idempotent"/>
/// are null for read-only tools).
/// </summary>
public sealed record ToolInfo(string Name, string Title, string Description, string InputSchemaJson,
    bool ReadOnly, bool? Destructive, bool? Idempotent, bool OpenWorld)
{
    /// <summary>The tools in the order the MCP server lists them, from the core's specs.</summary>
    internal static IReadOnlyList<ToolInfo> All { get; } =
        Molecule.Core.Tools.specs.Select(s => new ToolInfo(s.Name, s.Title, s.Description, s.InputSchema,
            s.Annotations.ReadOnly, OrNull(s.Annotations.Destructive), OrNull(s.Annotations.Idempotent),
            s.Annotations.OpenWorld)).ToList();

    private static bool? OrNull(FSharpOption<bool> value) => FSharpOption<bool>.get_IsSome(value) ? value.Value : null;
}

/// <summary>
/// The answer of a tool call, as the MCP server returns it: its text (what an agent reads; JSON for some tools),
/// whether it failed, and a notice shown after it (unread messages waiting), or null.
/// </summary>
public sealed record ToolResult(string Text, bool IsError, string? Notice);

/// <summary>A progress report of a long tool call (MCP <c>notifications/progress</c>): increases with every report.</summary>
public sealed record ToolProgress(double Progress, double? Total, string Message);

/// <summary>
/// A message pushed as the MCP server pushes it (<c>notifications/claude/channel</c>): the text an agent reads
/// (who sent it, the message, the call that answers it) and its attributes. See
/// <see cref="MoleculeAgent.ReadNotificationsAsync"/>.
/// </summary>
public sealed class ChannelNotification
{
    private readonly ChannelEvent _event;

    internal ChannelNotification(ChannelEvent channelEvent)
    {
        _event = channelEvent;
        Content = channelEvent.Content ?? "";
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in channelEvent.Meta) meta.TryAdd(key, value);
        Meta = meta;
    }

    /// <summary>The header (who sent it), the message text and the reply hint, one per line.</summary>
    public string Content { get; }

    /// <summary>kind, peer_id, method, activity_id, ts, and when known peer_name, peer_role, agent_card_url,
    /// arrival_workspace_id.</summary>
    public IReadOnlyDictionary<string, string> Meta { get; }

    /// <summary>The notification's <c>params</c> exactly as the MCP server sends them: <c>{"content": …, "meta": {…}}</c>.</summary>
    public JsonObject ToJson() => CoreChannel.toParams(_event);

    public override string ToString() => Content;
}
