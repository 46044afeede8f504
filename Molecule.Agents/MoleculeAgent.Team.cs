using System.Text.Json;
using System.Text.Json.Nodes;

namespace Molecule.Agents;

// The team tools as typed methods. Each runs the MCP tool of the same name through the same path as the MCP server
// (name + arguments → the core), so it behaves exactly as the tool does; a failure is a MoleculeToolException with
// the tool's own words. `fromWorkspace`: only for an agent of several workspaces — the one to act for (a message's
// WorkspaceId to answer it); null: the core's choice (the workspace a peer was listed from, else the primary).
public sealed partial class MoleculeAgent
{
    /// <summary>The peers this workspace may reach (<c>list_peers</c>; of every workspace when it serves several).</summary>
    public async Task<IReadOnlyList<Peer>> ListPeersAsync(string? fromWorkspace = null, CancellationToken cancellationToken = default) =>
        ToolAnswers.Peers(await CallOrThrowAsync("list_peers", Routed("list_peers", new JsonObject(), fromWorkspace), cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// Sends a task (or a reply) to a peer and waits for its answer (<c>delegate_task</c>; a push-mode peer may take
    /// minutes). A poll-mode peer cannot answer inline: the task is queued for it — delivered — and its answer arrives
    /// later as a message (<see cref="DelegationReply.Answered"/> is false). Never resend a queued task.
    /// </summary>
    public async Task<DelegationReply> DelegateAsync(string peerId, string task, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["workspace_id"] = peerId, ["task"] = task };
        return ToolAnswers.Delegation(await CallOrThrowAsync("delegate_task", Routed("delegate_task", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// Hands a task to a peer through the platform without waiting (<c>delegate_task_async</c>): a peer that answers
    /// at once (push mode) has its result arrive as a <see cref="MessageKind.DelegationResult"/> message; a poll-mode
    /// peer (<c>molecule-mcp</c>, another library agent) gets the task as a message and answers with a
    /// <see cref="MessageKind.PeerAgent"/> message of its own. <see cref="GetDelegationAsync"/> tells how it stands.
    /// </summary>
    public async Task<DelegationTicket> DelegateInBackgroundAsync(string peerId, string task, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["workspace_id"] = peerId, ["task"] = task };
        return ToolAnswers.Ticket(await CallOrThrowAsync("delegate_task_async", Routed("delegate_task_async", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>How one delegation of this workspace stands (<c>check_task_status</c> with its id).</summary>
    public async Task<DelegationStatus> GetDelegationAsync(string delegationId, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["task_id"] = delegationId };
        return ToolAnswers.Status(await CallOrThrowAsync("check_task_status", Routed("check_task_status", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>This workspace's latest delegations (<c>check_task_status</c> without an id; at most 10).</summary>
    public async Task<IReadOnlyList<DelegationStatus>> ListDelegationsAsync(string? fromWorkspace = null,
        CancellationToken cancellationToken = default) =>
        ToolAnswers.Statuses(await CallOrThrowAsync("check_task_status", Routed("check_task_status", new JsonObject(), fromWorkspace), cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// Writes to the user in the workspace's canvas chat (<c>send_message_to_user</c>), with files attached (absolute
    /// paths, 25 MB each at most; uploaded first — if one cannot be, nothing is sent).
    /// </summary>
    public async Task SendToUserAsync(string message, IEnumerable<string>? attachments = null, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["message"] = message };
        if (attachments is not null) args["attachments"] = new JsonArray(attachments.Select(a => (JsonNode?)JsonValue.Create(a)).ToArray());
        await CallOrThrowAsync("send_message_to_user", Routed("send_message_to_user", args, fromWorkspace), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a message to every workspace the platform lets this one reach (<c>broadcast_message</c>); how many
    /// it reached, when the platform says.</summary>
    public async Task<int?> BroadcastAsync(string message, string? fromWorkspace = null, CancellationToken cancellationToken = default) =>
        ToolAnswers.Delivered(await CallOrThrowAsync("broadcast_message", Routed("broadcast_message", new JsonObject { ["message"] = message }, fromWorkspace), cancellationToken).ConfigureAwait(false));

    /// <summary>Keeps a memory (<c>commit_memory</c>; well-known secret shapes are redacted before it leaves).</summary>
    public async Task<MemoryRecord> CommitMemoryAsync(string content, MemoryScope scope = MemoryScope.Local, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["content"] = content, ["scope"] = ScopeName(scope) };
        return ToolAnswers.Committed(await CallOrThrowAsync("commit_memory", Routed("commit_memory", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Finds memories (<c>recall_memory</c>): those matching <paramref name="query"/> (all when null), of one
    /// scope or of every scope this workspace may read.</summary>
    public async Task<IReadOnlyList<Memory>> RecallMemoriesAsync(string? query = null, MemoryScope? scope = null, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["query"] = query ?? "" };
        if (scope is { } s) args["scope"] = ScopeName(s);
        return ToolAnswers.Memories(await CallOrThrowAsync("recall_memory", Routed("recall_memory", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The messages this workspace exchanged with a peer, oldest first, as the platform's activity rows
    /// (<c>chat_history</c>; <paramref name="limit"/> 1–500, default 20; only rows before <paramref name="before"/>).</summary>
    public async Task<IReadOnlyList<JsonElement>> GetChatHistoryAsync(string peerId, int? limit = null, DateTimeOffset? before = null,
        string? fromWorkspace = null, CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["peer_id"] = peerId };
        if (limit is { } n) args["limit"] = n;
        if (before is { } b) args["before_ts"] = Molecule.Protocol.Activity.formatTime(b);
        return ToolAnswers.Rows(await CallOrThrowAsync("chat_history", Routed("chat_history", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Replaces this workspace's agent card in the registry (<c>update_agent_card</c>).</summary>
    public async Task UpdateAgentCardAsync(JsonObject card, string? fromWorkspace = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(card);
        var args = new JsonObject { ["card"] = card.DeepClone() };
        await CallOrThrowAsync("update_agent_card", Routed("update_agent_card", args, fromWorkspace), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The platform's record of this workspace (<c>get_workspace_info</c>).</summary>
    public async Task<WorkspaceInfo> GetWorkspaceInfoAsync(string? workspace = null, CancellationToken cancellationToken = default)
    {
        var text = await CallOrThrowAsync("get_workspace_info", Routed("get_workspace_info", new JsonObject(), workspace), cancellationToken).ConfigureAwait(false);
        return ToolAnswers.Workspace(text, workspace ?? WorkspaceId);
    }

    /// <summary>What this agent runs on (<c>get_runtime_identity</c>; MODEL, MODEL_PROVIDER, … of the environment).</summary>
    public async Task<RuntimeIdentity> GetRuntimeIdentityAsync(CancellationToken cancellationToken = default) =>
        ToolAnswers.Identity(await CallOrThrowAsync("get_runtime_identity", new JsonObject(), cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// Raises a request in the team's requests inbox (<c>create_request</c>): a task or an approval, for the user (the
    /// console's Requests view) or, with <paramref name="recipientAgentId"/>, for another agent. The answer arrives
    /// later as a <see cref="MessageKind.RequestUpdate"/> message. A platform without the requests inbox throws
    /// <see cref="MoleculeToolException"/> saying so.
    /// </summary>
    public async Task<RequestTicket> CreateRequestAsync(string title, RequestKind kind = RequestKind.Approval, string? detail = null,
        string? recipientAgentId = null, string? priority = null, string? fromWorkspace = null, CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["kind"] = kind == RequestKind.Task ? "task" : "approval", ["title"] = title };
        if (detail is not null) args["detail"] = detail;
        if (recipientAgentId is not null) { args["recipient_type"] = "agent"; args["recipient_id"] = recipientAgentId; }
        if (priority is not null) args["priority"] = priority;
        return ToolAnswers.RequestCreated(await CallOrThrowAsync("create_request", Routed("create_request", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The requests this workspace raised (<see cref="RequestBox.Mine"/>) or that are addressed to it
    /// (<c>list_requests</c>), optionally of one status (pending, info_requested, approved, rejected, done, cancelled, expired).</summary>
    public async Task<IReadOnlyList<RequestRecord>> ListRequestsAsync(RequestBox box = RequestBox.Mine, string? status = null,
        string? fromWorkspace = null, CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["box"] = box == RequestBox.Inbox ? "inbox" : "mine" };
        if (status is not null) args["status"] = status;
        return ToolAnswers.Requests(await CallOrThrowAsync("list_requests", Routed("list_requests", args, fromWorkspace), cancellationToken).ConfigureAwait(false));
    }

    /// <summary>One request with its thread (<c>get_request</c>).</summary>
    public async Task<RequestThread> GetRequestAsync(string requestId, string? fromWorkspace = null, CancellationToken cancellationToken = default) =>
        ToolAnswers.Thread(await CallOrThrowAsync("get_request", Routed("get_request", new JsonObject { ["request_id"] = requestId }, fromWorkspace), cancellationToken).ConfigureAwait(false));

    /// <summary>Answers a request addressed to this workspace (<c>respond_to_request</c>); returns its status now.</summary>
    public async Task<string> RespondToRequestAsync(string requestId, RequestAnswer answer, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var action = answer switch { RequestAnswer.Approved => "approved", RequestAnswer.Rejected => "rejected", _ => "done" };
        var args = new JsonObject { ["request_id"] = requestId, ["action"] = action };
        return ToolAnswers.Field(await CallOrThrowAsync("respond_to_request", Routed("respond_to_request", args, fromWorkspace), cancellationToken).ConfigureAwait(false), "status");
    }

    /// <summary>Adds a message to a request's thread (<c>add_request_message</c>); returns the message's id.</summary>
    public async Task<string> AddRequestMessageAsync(string requestId, string body, string? fromWorkspace = null,
        CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["request_id"] = requestId, ["body"] = body };
        return ToolAnswers.Field(await CallOrThrowAsync("add_request_message", Routed("add_request_message", args, fromWorkspace), cancellationToken).ConfigureAwait(false), "message_id");
    }

    /// <summary>Cancels a request this workspace raised (<c>cancel_request</c>).</summary>
    public async Task CancelRequestAsync(string requestId, string? fromWorkspace = null, CancellationToken cancellationToken = default) =>
        await CallOrThrowAsync("cancel_request", Routed("cancel_request", new JsonObject { ["request_id"] = requestId }, fromWorkspace), cancellationToken).ConfigureAwait(false);

    /// <summary>The arguments with the tool's routing argument (the core names it) set to <paramref name="workspace"/>.</summary>
    private static JsonObject Routed(string tool, JsonObject args, string? workspace)
    {
        var argument = Molecule.Core.Tools.routingArg(tool);
        if (!string.IsNullOrWhiteSpace(workspace) && argument is not null) args[argument.Value] = workspace;
        return args;
    }

    private static string ScopeName(MemoryScope scope) =>
        Molecule.Core.Api.scopeName(scope switch
        {
            MemoryScope.Team => Molecule.Core.MemoryScope.Team,
            MemoryScope.Global => Molecule.Core.MemoryScope.Global,
            _ => Molecule.Core.MemoryScope.Local,
        });
}
