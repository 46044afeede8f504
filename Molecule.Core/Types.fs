/// The shared vocabulary of the functional core. Every type here is plain data: no IO, no clock,
/// no randomness. The C# host interprets `Effect`s and tool `Program`s; every rule lives in the core.
namespace Molecule.Core

open System

type LogLevel =
    | Debug
    | Info
    | Warning
    | Error

/// Where the one bearer token came from (spec P1 fix: one source, one precedence, used everywhere).
type TokenSource =
    | FromEnv
    /// `<state dir>/.auth_token`.
    | FromFile of path: string
    /// MOLECULE_WORKSPACE_TOKEN_FILE (watched: a new token there is used from the next request on).
    | FromTokenFile of path: string
    /// An entry of MOLECULE_WORKSPACES.
    | FromWorkspaces

type AgentCard =
    { Name: string
      Description: string option
      Skills: string list }

/// What the host runs on, as get_runtime_identity reports it (each an env value, "" when unset).
type RuntimeIdentity =
    { /// MODEL
      Model: string
      /// MODEL_PROVIDER
      ModelProvider: string
      /// MOLECULE_MODEL
      MoleculeModel: string
      /// ANTHROPIC_BASE_URL
      AnthropicBaseUrl: string
      /// TIER (not WORKSPACE_TIER)
      Tier: string
      /// ADAPTER_MODULE
      Runtime: string }

/// When the loop guard pauses a peer (LoopGuard.fs): the bounds on what one peer may send with no human turn in
/// between (0 turns a bound off).
type LoopBounds =
    { /// Messages from one peer (MOLECULE_MCP_LOOP_MAX_EXCHANGES, default 100).
      MaxExchanges: int
      /// Messages from one peer within any 60 s (MOLECULE_MCP_LOOP_MAX_PER_MINUTE, default 30).
      MaxPerMinute: int
      /// Copies of one payload (normalised: whitespace, digits, ids) from one peer (MOLECULE_MCP_LOOP_MAX_REPEATS,
      /// default 8).
      MaxRepeats: int }

/// Validated, normalised configuration (see Config.fs).
type Config =
    { WorkspaceId: Molecule.Protocol.WorkspaceId
      /// Trimmed, no trailing slash.
      PlatformUrl: string
      /// scheme://host[:port] — exactly what the platform sees as its own origin.
      Origin: string
      Token: string
      TokenSource: TokenSource
      AgentCard: AgentCard
      StateDir: string
      Verbose: bool
      HeartbeatEnabled: bool
      InboxEnabled: bool
      /// Listen to the platform's event stream as a doorbell (off: MOLECULE_MCP_DISABLE_STREAM).
      StreamEnabled: bool
      /// 0..60; 0 = push only (instructions say so).
      PollTimeoutSecs: int
      /// Seconds between heartbeats (MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS, default 20).
      HeartbeatIntervalSecs: float
      /// Seconds between inbox polls (MOLECULE_MCP_POLL_INTERVAL_SECS, default 5).
      PollIntervalSecs: float
      /// WORKSPACE_TIER (default 1); GLOBAL memory writes need 0.
      Tier: int
      /// How far back a start without a cursor looks when the platform keeps no acknowledgements
      /// (MOLECULE_MCP_REPLAY_SECS, default 600, at most 30 days).
      ReplaySecs: int
      /// An unpopped message is pushed once more after this many seconds (MOLECULE_MCP_RENOTIFY_SECS,
      /// default 300; 0 = never).
      RenotifySecs: float
      /// The longest stdin line accepted, in bytes (MOLECULE_MCP_MAX_LINE_BYTES, default 4 MiB).
      MaxLineBytes: int
      /// DELEGATION_SYNC_VIA_INBOX: delegate_task sends through POST /delegate and polls GET /delegations.
      DelegationSyncViaInbox: bool
      /// DELEGATION_TIMEOUT: how long that polling waits for the answer (seconds, default 300).
      DelegationTimeoutSecs: float
      /// The env values get_runtime_identity reports.
      Identity: RuntimeIdentity
      /// The loop guard's bounds.
      LoopGuard: LoopBounds
      /// Relay Claude Code's permission prompts as approvals (MOLECULE_MCP_PERMISSION_RELAY, default on).
      PermissionRelay: bool
      /// How long a relayed permission prompt may be answered (MOLECULE_MCP_PERMISSION_TIMEOUT_SECS, default 600).
      PermissionTimeoutSecs: int }

// ---------------------------------------------------------------------------------------------
// HTTP effects as data
// ---------------------------------------------------------------------------------------------

type HttpMethod =
    | Get
    | Post
    | Delete

type UploadFile =
    { Path: string
      FileName: string
      ContentType: string }

type Body =
    | NoBody
    /// Serialized JSON text; the host sends it with Content-Type: application/json.
    | JsonBody of string
    /// multipart/form-data, one part named `files` per file; the host reads the files.
    | Multipart of UploadFile list

/// How the host may retry a request. Only idempotent-at-the-peer failures are retried.
type Retry =
    | NoRetry
    /// A2A send: up to 5 attempts when the connection cannot be established (the peer never saw the request),
    /// backoff min(2^k, 16) s ±25 %, 600 s budget. Never after the request went out, never on a timeout (P10 fix).
    | TransientConnect

type Request =
    { Method: HttpMethod
      /// Absolute URL (PlatformUrl + path + query), already escaped.
      Url: string
      /// Complete header list (Authorization, Origin, X-Workspace-ID …); Content-Type comes from Body.
      Headers: (string * string) list
      Body: Body
      TimeoutSecs: float
      Retry: Retry }

type Response =
    | Reply of status: int * body: string
    /// Connection refused, reset, DNS failure … The message never contains the token.
    | TransportError of message: string
    | TimedOut of afterSecs: float

// ---------------------------------------------------------------------------------------------
// Inbox
// ---------------------------------------------------------------------------------------------

type MessageKind =
    | CanvasUser
    | PeerAgent
    /// The answer (or failure) of a task this workspace delegated (`method: delegate_result`).
    | DelegationResult
    /// A request of this workspace was answered, asked about or cancelled, or one was addressed to it
    /// (`method: request_update`).
    | RequestUpdate of Molecule.Protocol.RequestUpdate.Update

type InboxMessage =
    { ActivityId: string
      /// The platform's delivery sequence number, when it has one (acknowledgements use it).
      Seq: int64 option
      Text: string
      /// "" for canvas users.
      PeerId: string
      Kind: MessageKind
      Method: string
      /// As the platform sent it (RFC 3339).
      CreatedAt: string
      /// The sender's name, role and agent card URL as the platform gave them (`include=peer_info`; raw — the
      /// channel and the inbox tools sanitise them).
      PeerName: string option
      PeerRole: string option
      AgentCardUrl: string option }

/// What the inbox asks `/workspaces/:id/activity` for.
type PollQuery =
    /// Rows after the cursor row, oldest first.
    | SinceId of cursor: string * limit: int
    /// Rows of the last `seconds`, newest first, optionally strictly older than `before` (RFC 3339).
    | Window of seconds: int * before: string option * limit: int

// ---------------------------------------------------------------------------------------------
// Lifecycle facts shared by tools
// ---------------------------------------------------------------------------------------------

/// A deleted workspace's facts (the 410 body).
type RemovedInfo = Molecule.Protocol.Removed.Info

/// Something a tool learnt that the rest of the agent must know.
type Observation =
    | WorkspaceRemoved of RemovedInfo
    | PeerNames of (Molecule.Protocol.PeerId * string) list
    /// The peers a workspace's list_peers returned (for routing a later delegation from that workspace).
    | PeersVia of workspace: Molecule.Protocol.WorkspaceId * peers: Molecule.Protocol.PeerId list
    /// Files this workspace uploaded itself (send_message_to_user): their pending-upload rows are its own (P35).
    | OwnUploads of workspace: Molecule.Protocol.WorkspaceId * fileIds: Molecule.Protocol.FileId list

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/// What a request asks for: a task to do, or an approval (a yes or no).
type RequestKind =
    | TaskRequest
    | ApprovalRequest

/// Whom a request is for.
type Recipient =
    | ToUser
    | ToAgent of Molecule.Protocol.WorkspaceId

/// A request as create_request takes it (validated).
type NewRequest =
    { Kind: RequestKind
      Recipient: Recipient
      Title: string
      Detail: string option
      Priority: string option }

/// The requests list_requests shows: those this workspace raised, or those addressed to it.
type RequestBox =
    | Mine
    | AddressedToMe

/// How a recipient answers a request: an approval is approved or rejected, a task done or rejected.
type RequestAction =
    | Approve
    | Reject
    | MarkDone

type MemoryScope =
    | Local
    | Team
    | Global

/// A validated tool call (see Tools.fs for parsing and schemas): typed values only, nothing left to read.
type ToolCall =
    | ListPeers
    | GetWorkspaceInfo
    /// A delegation's target is a workspace (a UUID, from list_peers); the task as given.
    | DelegateTask of peer: Molecule.Protocol.WorkspaceId * task: string
    | DelegateTaskAsync of peer: Molecule.Protocol.WorkspaceId * task: string
    /// The delegation to look at (trimmed); None for the recent ones. (Its workspace_id is accepted and ignored.)
    | CheckTaskStatus of taskId: string option
    | WaitForMessage of timeoutSecs: float
    | InboxPeek of limit: int
    | InboxPop of activityId: Molecule.Protocol.ActivityId
    | SendMessageToUser of message: string * attachments: string list
    | CommitMemory of content: string * scope: MemoryScope
    | RecallMemory of query: string * scope: MemoryScope option
    | GetRuntimeIdentity
    /// The `card` argument as compact JSON text when it is an object; None when it is anything else (the program
    /// answers the reference's refusal).
    | UpdateAgentCard of card: string option
    | BroadcastMessage of message: string
    | ChatHistory of peer: Molecule.Protocol.PeerId * limit: int * beforeTs: string option
    | CreateRequest of NewRequest
    /// The box and the status asked for (None: every status).
    | ListRequests of RequestBox * status: string option
    | GetRequest of Molecule.Protocol.RequestId
    | RespondToRequest of Molecule.Protocol.RequestId * RequestAction
    | AddRequestMessage of Molecule.Protocol.RequestId * body: string
    | CancelRequest of Molecule.Protocol.RequestId

/// The workspace a tool call names for itself, when one process serves several (MOLECULE_WORKSPACES).
type Route =
    /// No routing argument, or a blank one: the agent chooses (the workspace the peer was listed from, else the primary).
    | Unnamed
    /// The routing argument (`workspace_id` or `source_workspace_id`) named this workspace; `given` is its text, trimmed.
    | Named of argument: string * given: string * Molecule.Protocol.WorkspaceId
    /// The routing argument named something that is no workspace id.
    | NotAWorkspace of argument: string * given: string

/// A `tools/call` parsed once, at the edge (Tools.parse): the typed call and the workspace it names.
type ParsedCall = { Call: ToolCall; Route: Route }

type ToolOutput = { Text: string; IsError: bool }

/// What a tool program may know about the agent when it starts.
type ToolContext =
    { Config: Config
      Removed: RemovedInfo option
      /// id → display name, learnt from list_peers / discover.
      PeerNames: Map<string, string>
      /// A fresh random UUID for this call (the host's randomness): A2A message ids, idempotency keys.
      Nonce: string
      /// When one process serves several workspaces: lines name the workspace they come from (`via: <id8>`).
      Via: bool
      /// The platform rejects the token: every platform tool answers this one line instead.
      Degraded: string option
      /// Every workspace this process serves (delegating to one of them is refused).
      Served: Molecule.Protocol.WorkspaceId list }

/// MCP tool annotations (hints for clients). Destructive and Idempotent mean something only for tools that are not
/// read-only (None for those).
type ToolAnnotations =
    { ReadOnly: bool
      Destructive: bool option
      Idempotent: bool option
      /// Reaches beyond this workspace's own records: other agents, the user.
      OpenWorld: bool }

/// Name, title, description, JSON Schema (object) and annotations of one MCP tool.
type ToolSpec =
    { Name: string
      Title: string
      Description: string
      InputSchema: string
      Annotations: ToolAnnotations }

type FileCheck =
    | FileOk of size: int64
    | FileMissing
    | FileUnreadable of reason: string

/// A tool run as a pure program: the agent performs what it asks for (as effects) and feeds the answer back. A tool's
/// program is a `Program<ToolOutput>`; its parts are written with `program { }` (Tools/Program.fs). The
/// continuations are pure: dropping one (a cancelled call) undoes nothing.
type Program<'a> =
    /// The program's value, with what it learnt on the way.
    | Done of 'a * Observation list
    | Call of Request * (Response -> Program<'a>)
    | CheckFiles of paths: string list * (FileCheck list -> Program<'a>)
    /// Waits `seconds`; the continuation gets the agent's uptime when the wait is over (the core has no clock).
    | Pause of seconds: float * (float -> Program<'a>)

// ---------------------------------------------------------------------------------------------
// The one effect vocabulary (Elmish style: the agent's update returns effects as data)
// ---------------------------------------------------------------------------------------------

/// Background work of one workspace.
type Job =
    | Register
    | Heartbeat
    | Poll
    | Ack
    | WorkspaceProbe
    /// Asks the platform whether an old shared inbox file's cursor belongs to this workspace.
    | LegacyProbe
    /// Downloads a file the user uploaded (a `chat_upload_receive` row).
    | FetchUpload of fileId: string
    /// Tells the platform an uploaded file is on disk here.
    | AckUpload of fileId: string
    /// Asks the registry for the name of a peer whose message came without one (`include=peer_info` unsupported).
    | Discover of peerId: string
    /// Asks the user whether to resume a pair the loop guard paused (a `loop_guard` approval).
    | RaiseGuard of peerId: string
    /// Reads the workspace's own loop_guard requests of one open status at start (pairs paused before a restart).
    | RestoreGuard of status: string
    /// Relays a Claude Code permission prompt as a `permission_relay` approval.
    | RaisePermission of promptId: string

/// Whom the answer to a request belongs to.
type Purpose =
    | Background of workspace: Molecule.Protocol.WorkspaceId * Job
    | ForTool of call: int64

type Timer =
    | HeartbeatTimer of workspace: Molecule.Protocol.WorkspaceId
    | PollTimer of workspace: Molecule.Protocol.WorkspaceId
    /// The deadline of a waiting `wait_for_message` call.
    | WaitDeadline of call: int64
    /// Time to open the event stream again.
    | StreamTimer of workspace: Molecule.Protocol.WorkspaceId
    /// The end of a tool program's `Pause`.
    | ProgramTimer of call: int64
    /// Time to tell the client a long call is still running (it asked for progress).
    | ProgressTimer of call: int64
    /// A failed background route of a workspace may be asked again (Pacing): the fetch (`Poll`), the
    /// acknowledgement (`Ack`) or an uploaded file (`FetchUpload`).
    | RetryTimer of workspace: Molecule.Protocol.WorkspaceId * Job
    /// A relayed permission prompt may no longer be answered.
    | PermissionDeadline of promptId: string

/// The channel notification `notifications/claude/channel` params: content + string-only meta.
type ChannelEvent =
    { Content: string
      Meta: (string * string) list }

/// A durable write of a workspace's inbox ledger (see Journal.fs).
type LedgerWrite =
    /// Lines appended to the journal (each a complete JSON document, no newline inside).
    | Append of lines: string list
    /// The whole file replaced atomically (compaction, migration, first write).
    | Rewrite of text: string

/// What came of downloading a file to disk.
type DownloadResult =
    /// On disk (written to a temporary name, flushed, renamed into place).
    | Saved of bytes: int64
    /// The platform answered with something other than the file.
    | DownloadRefused of status: int * body: string
    /// The request or the write failed (never a partial file in place).
    | DownloadFailed of message: string

/// A progress report for a tool call the client asked progress for (`notifications/progress`).
type ToolProgress =
    { /// Increases with every report of the call.
      Progress: float
      Total: float option
      Message: string }

type Effect =
    /// Perform an HTTP request; its answer comes back as `Responded(purpose, response)`.
    | Send of Purpose * Request
    /// Stat files for a tool; the answer comes back as `FilesChecked`.
    | CheckPaths of call: int64 * paths: string list
    /// Make a ledger change durable. The host applies it before any later effect leaves the process.
    | Persist of workspace: Molecule.Protocol.WorkspaceId * LedgerWrite
    | Log of LogLevel * string
    | Notify of ChannelEvent
    /// The result of a tool call, with an optional notice shown as a separate text item after it.
    | Answer of call: int64 * ToolOutput * notice: string option
    /// Write a file in the state dir atomically (temp + rename, mode 0600).
    | WriteStateFile of fileName: string * contents: string
    | DeleteStateFile of fileName: string
    | After of seconds: float * Timer
    /// Try to become the process that polls this workspace; the answer comes back as `Claimed`.
    | Claim of workspace: Molecule.Protocol.WorkspaceId
    /// Open the workspace's event stream (closing one already open); what happens comes back as `Stream` news.
    | Listen of workspace: Molecule.Protocol.WorkspaceId * Request
    /// Close the workspace's event stream.
    | Unlisten of workspace: Molecule.Protocol.WorkspaceId
    /// GET a file into `path` (written to a temporary name, then renamed; mode 0600); the outcome comes back as
    /// `Downloaded(purpose, result)`.
    | Download of Purpose * Request * path: string
    /// Report progress of a tool call to the client.
    | Progress of call: int64 * ToolProgress
    /// Answer a relayed permission prompt (`notifications/claude/channel/permission`): behavior "allow" or "deny".
    | AnswerPermission of promptId: string * behavior: string
    | Exit of code: int
