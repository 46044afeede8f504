using System.Text.Json;

namespace Molecule.Agents;

/// <summary>Who may read a memory: this workspace, its team, or every workspace (GLOBAL needs tier 0).</summary>
public enum MemoryScope
{
    Local,
    Team,
    Global,
}

/// <summary>A peer workspace this one may reach (<c>list_peers</c>), its registry strings shown as the server shows them.</summary>
public sealed record Peer(string Id, string Name, string Status, string? Role, IReadOnlyList<string> Skills);

/// <summary>
/// The outcome of a delegation that waited (<c>delegate_task</c>). <see cref="Answered"/>: <see cref="Text"/> is the
/// peer's answer. Otherwise the peer runs in poll mode and the task was queued for it — delivered, not lost: its answer
/// comes later as a <see cref="MessageKind.PeerAgent"/> message, and <see cref="Text"/> says so.
/// </summary>
public sealed record DelegationReply(bool Answered, string Text);

/// <summary>A delegation the platform runs in the background (<c>delegate_task_async</c>); its result arrives as a
/// <see cref="MessageKind.DelegationResult"/> message (a poll-mode peer answers with a message of its own instead), and
/// <see cref="MoleculeAgent.GetDelegationAsync"/> tells how it stands.</summary>
public sealed record DelegationTicket(string DelegationId, string PeerId, string Note);

/// <summary>How a delegation stands (<c>check_task_status</c>): pending, completed, failed, queued, not_found, …</summary>
public sealed record DelegationStatus(string DelegationId, string Status, string? PeerId, string? Summary, string? ResponsePreview);

/// <summary>A memory as stored (<c>commit_memory</c>).</summary>
public sealed record MemoryRecord(string Id, string Scope);

/// <summary>A memory found by <c>recall_memory</c>: its scope (LOCAL, TEAM, GLOBAL) and content.</summary>
public sealed record Memory(string Scope, string Content);

/// <summary>What the agent runs on (<c>get_runtime_identity</c>): the environment values it reports, "" when unset.</summary>
public sealed record RuntimeIdentity(string Model, string ModelProvider, string MoleculeModel, string AnthropicBaseUrl,
    string Tier, string WorkspaceId, string Runtime);

/// <summary>The platform's record of a workspace (<c>get_workspace_info</c>): a few fields, and all of it as JSON.</summary>
public sealed record WorkspaceInfo(string Id, string? Name, string? Role, string? Status, JsonElement Details);

/// <summary>
/// The settings the agent runs with, as the core read them from the options (defaults applied, values clamped) — for
/// the primary workspace.
/// </summary>
public sealed record AgentSettings(
    string AgentName,
    string StateDirectory,
    bool Verbose,
    bool HeartbeatEnabled,
    bool InboxEnabled,
    bool StreamEnabled,
    TimeSpan HeartbeatInterval,
    TimeSpan PollInterval,
    int PollTimeoutSeconds,
    int MaxLineBytes,
    bool PermissionRelay,
    TimeSpan PermissionTimeout);

/// <summary>What a request asks for: a task (answered done or rejected) or an approval (approved or rejected).</summary>
public enum RequestKind
{
    Task,
    Approval,
}

/// <summary>Which requests <see cref="MoleculeAgent.ListRequestsAsync"/> lists: raised by this workspace, or addressed to it.</summary>
public enum RequestBox
{
    Mine,
    Inbox,
}

/// <summary>How a recipient answers a request (<see cref="MoleculeAgent.RespondToRequestAsync"/>).</summary>
public enum RequestAnswer
{
    Approved,
    Rejected,
    Done,
}

/// <summary>A request just raised (<c>create_request</c>): its id and status; the answer arrives later as a
/// <see cref="MessageKind.RequestUpdate"/> message.</summary>
public sealed record RequestTicket(string RequestId, string Status);

/// <summary>A request as the platform shows it (<c>list_requests</c>, <c>get_request</c>): the usual fields, and all of
/// it as JSON.</summary>
public sealed record RequestRecord(string Id, string Kind, string Title, string? Detail, string Status, string? Priority,
    string RequesterType, string? RequesterId, string RecipientType, string? RecipientId, JsonElement Details);

/// <summary>One message of a request's thread.</summary>
public sealed record RequestMessage(string Id, string AuthorType, string? AuthorId, string Body, string? CreatedAt);

/// <summary>A request with its thread (<c>get_request</c>).</summary>
public sealed record RequestThread(RequestRecord Request, IReadOnlyList<RequestMessage> Messages);

/// <summary>
/// What a <see cref="MessageKind.RequestUpdate"/> message says: the request, what happened (created, responded, message,
/// cancelled), its status now, its kind and title, who acted (user or agent, and which), the clarification or detail,
/// and who raised it (agent, permission_relay, loop_guard).
/// </summary>
public sealed record RequestChange(string RequestId, string Event, string Status, string Kind, string Title,
    string ActorType, string? ActorId, string? Body, string Source);

/// <summary>A permission prompt of the MCP client (Claude Code's <c>notifications/claude/channel/permission_request</c>):
/// its id (five lower-case letters), the tool, what it does and a preview of its input.</summary>
public sealed record PermissionPrompt(string RequestId, string ToolName, string Description, string InputPreview);

/// <summary>The user's decision on a relayed permission prompt: <c>allow</c> or <c>deny</c>, for the prompt's id.</summary>
public sealed record PermissionAnswer(string RequestId, string Behavior);
