/// The platform's data model: typed ids, the unions of status, delivery mode and memory scope, and plain immutable
/// records shared by the pure rules, the store and the server. Raw JSON columns are kept as compact JSON text.
namespace Molecule.Platform

open System
open System.Text.Json.Nodes

/// An id of the kind `'kind` (one of the marker types below): a GUID whose `Text` is the one normal form (lower-case
/// 8-4-4-4-12) that is stored, sent and logged. Ids of different kinds are different types.
[<Struct>]
type Id<'kind> =
    | Id of Guid

    member this.Guid =
        let (Id g) = this
        g

    member this.Text = this.Guid.ToString "D"
    override this.ToString() = this.Text

type OfWorkspace = interface end
type OfToken = interface end
/// An activity row; a delegation's id is the id of its tracking row.
type OfActivity = interface end
type OfMemory = interface end
/// A request of the requests inbox (tasks and approvals, spec §7.1), a message of its thread, an approval (§7.2).
type OfRequest = interface end
type OfRequestMessage = interface end
type OfApproval = interface end

type WorkspaceId = Id<OfWorkspace>
/// A token's id (the row's; never the token's text).
type TokenId = Id<OfToken>
type ActivityId = Id<OfActivity>
type MemoryId = Id<OfMemory>
type RequestId = Id<OfRequest>
type RequestMessageId = Id<OfRequestMessage>
type ApprovalId = Id<OfApproval>

/// The ids' constructors, by the names of their kinds.
[<AutoOpen>]
module Ids =
    let WorkspaceId (g: Guid) : WorkspaceId = Id g
    let TokenId (g: Guid) : TokenId = Id g
    let ActivityId (g: Guid) : ActivityId = Id g
    let MemoryId (g: Guid) : MemoryId = Id g
    let RequestId (g: Guid) : RequestId = Id g
    let RequestMessageId (g: Guid) : RequestMessageId = Id g
    let ApprovalId (g: Guid) : ApprovalId = Id g

/// A workspace's status; `Status.text` is its wire and column form.
[<RequireQualifiedAccess>]
type Status =
    | Provisioning
    | Online
    | Offline
    | Degraded
    | Failed
    | Removed
    | Paused
    | Hibernated
    | AwaitingAgent

module Status =
    let all =
        [ Status.Provisioning
          Status.Online
          Status.Offline
          Status.Degraded
          Status.Failed
          Status.Removed
          Status.Paused
          Status.Hibernated
          Status.AwaitingAgent ]

    let text (s: Status) =
        match s with
        | Status.Provisioning -> "provisioning"
        | Status.Online -> "online"
        | Status.Offline -> "offline"
        | Status.Degraded -> "degraded"
        | Status.Failed -> "failed"
        | Status.Removed -> "removed"
        | Status.Paused -> "paused"
        | Status.Hibernated -> "hibernated"
        | Status.AwaitingAgent -> "awaiting_agent"

    let tryParse (s: string) : Status option = all |> List.tryFind (fun x -> text x = s)

/// How a workspace receives messages: queued for its agent to poll, or forwarded to its URL.
[<RequireQualifiedAccess>]
type DeliveryMode =
    | Poll
    | Push

module DeliveryMode =
    let text (m: DeliveryMode) =
        match m with
        | DeliveryMode.Poll -> "poll"
        | DeliveryMode.Push -> "push"

    let tryParse (s: string) : DeliveryMode option =
        match s with
        | "poll" -> Some DeliveryMode.Poll
        | "push" -> Some DeliveryMode.Push
        | _ -> None

    /// The 400 text of anything else.
    let invalid = "delivery_mode must be 'push' or 'poll'"

/// Who recalls a memory: its writer only, the writer's team, or everyone.
[<RequireQualifiedAccess>]
type MemoryScope =
    | Local
    | Team
    | Global

module MemoryScope =
    let all = [ MemoryScope.Local; MemoryScope.Team; MemoryScope.Global ]

    let text (s: MemoryScope) =
        match s with
        | MemoryScope.Local -> "LOCAL"
        | MemoryScope.Team -> "TEAM"
        | MemoryScope.Global -> "GLOBAL"

    /// Upper-case text (`LOCAL`, `TEAM`, `GLOBAL`; surrounding whitespace and case ignored).
    let tryParse (s: string) : MemoryScope option =
        let t = (if isNull s then "" else s.Trim()).ToUpperInvariant()
        all |> List.tryFind (fun x -> text x = t)

type Workspace =
    { Id: WorkspaceId
      Name: string
      Role: string option
      Tier: int
      Status: Status
      AgentCard: string option
      Url: string option
      ParentId: WorkspaceId option
      DeliveryMode: DeliveryMode
      Runtime: string
      LastHeartbeatAt: DateTimeOffset option
      LastErrorRate: float
      ActiveTasks: int
      UptimeSeconds: int
      CurrentTask: string
      MaxConcurrentTasks: int
      /// The secret the platform hands the agent (register, heartbeat). Held here in clear; the store seals it at
      /// rest (see DESIGN.md, "Secrets at rest").
      InboundSecret: string option
      LastOutboundAt: DateTimeOffset option
      CreatedAt: DateTimeOffset
      UpdatedAt: DateTimeOffset }

[<RequireQualifiedAccess>]
module Workspace =
    /// A workspace row as first saved: no URL, parent, heartbeat, secret or load yet; callers set name, tier, status,
    /// card and delivery mode.
    let fresh (id: WorkspaceId) (now: DateTimeOffset) : Workspace =
        { Id = id
          Name = ""
          Role = None
          Tier = 0
          Status = Status.AwaitingAgent
          AgentCard = None
          Url = None
          ParentId = None
          DeliveryMode = DeliveryMode.Poll
          Runtime = "external"
          LastHeartbeatAt = None
          LastErrorRate = 0.0
          ActiveTasks = 0
          UptimeSeconds = 0
          CurrentTask = ""
          MaxConcurrentTasks = 1
          InboundSecret = None
          LastOutboundAt = None
          CreatedAt = now
          UpdatedAt = now }

    let isRemoved (w: Workspace) = w.Status = Status.Removed

type Token =
    { Id: TokenId
      WorkspaceId: WorkspaceId
      Hash: byte[]
      Prefix: string
      CreatedAt: DateTimeOffset
      LastUsedAt: DateTimeOffset option
      RevokedAt: DateTimeOffset option }

type ActivityRow =
    { Seq: int64
      Id: ActivityId
      WorkspaceId: WorkspaceId
      ActivityType: string
      SourceId: WorkspaceId option
      TargetId: WorkspaceId option
      Method: string option
      Summary: string option
      RequestBody: string option
      ResponseBody: string option
      ToolTrace: string option
      DurationMs: int option
      /// Free text: agents report their own statuses; the platform writes ok/error and the delegation states.
      Status: string
      ErrorDetail: string option
      CreatedAt: DateTimeOffset
      IdempotencyKey: string option
      /// A2A `params.message.messageId` of an inbound message: unique per (workspace, message id) (spec §6.1).
      MessageId: string option }

type Memory =
    { Id: MemoryId
      WorkspaceId: WorkspaceId
      Content: string
      Scope: MemoryScope
      Namespace: string
      CreatedAt: DateTimeOffset }

/// An HTTP-level outcome of a rule: status code and JSON body text.
type Reply = { Code: int; Body: string }

/// Who sees an event.
type Audience =
    /// The canvas stream and the streams of the anchor workspace.
    | Everyone
    /// Only the canvas stream (e.g. rows the reference writes without a broadcast).
    | CanvasOnly
    /// Only the anchor workspace's streams (e.g. the poll short-circuit's second ring).
    | WorkspaceOnly

/// A platform event, published once the store transaction that caused it has committed.
type PlatformEvent =
    { Type: string
      WorkspaceId: WorkspaceId option
      /// Canvas payload (GET /events).
      Payload: JsonObject
      /// Workspace-stream payload (the envelope's `data`, spec §1.3).
      Data: JsonObject
      At: DateTimeOffset
      Audience: Audience }

/// An event a decision announces, before the shell dates it and adds the canvas's labels: its type, anchor
/// workspace, canvas payload, workspace-stream payload and audience.
type Announcement =
    { Kind: string
      Anchor: WorkspaceId option
      Canvas: (string * JsonNode) list
      Stream: JsonObject
      Audience: Audience }
