/// The platform's data model: plain immutable records shared by the pure rules, the store and the server.
/// Raw JSON columns are kept as compact JSON text (string option).
namespace Molecule.Platform

open System

module Status =
    [<Literal>]
    let Provisioning = "provisioning"

    [<Literal>]
    let Online = "online"

    [<Literal>]
    let Offline = "offline"

    [<Literal>]
    let Degraded = "degraded"

    [<Literal>]
    let Failed = "failed"

    [<Literal>]
    let Removed = "removed"

    [<Literal>]
    let Paused = "paused"

    [<Literal>]
    let Hibernated = "hibernated"

    [<Literal>]
    let AwaitingAgent = "awaiting_agent"

    let all =
        [ Provisioning; Online; Offline; Degraded; Failed; Removed; Paused; Hibernated; AwaitingAgent ]

type Workspace =
    { Id: Guid
      Name: string
      Role: string option
      Tier: int
      Status: string
      AgentCard: string option
      Url: string option
      ParentId: Guid option
      DeliveryMode: string
      Runtime: string
      LastHeartbeatAt: DateTimeOffset option
      LastErrorRate: float
      ActiveTasks: int
      UptimeSeconds: int
      CurrentTask: string
      MaxConcurrentTasks: int
      InboundSecret: string option
      LastOutboundAt: DateTimeOffset option
      CreatedAt: DateTimeOffset
      UpdatedAt: DateTimeOffset }

[<RequireQualifiedAccess>]
module Workspace =
    /// A workspace row as first saved: no URL, parent, heartbeat, secret or load yet; callers set name, tier, status,
    /// card and delivery mode.
    let fresh (id: Guid) (now: DateTimeOffset) : Workspace =
        { Id = id
          Name = ""
          Role = None
          Tier = 0
          Status = Status.AwaitingAgent
          AgentCard = None
          Url = None
          ParentId = None
          DeliveryMode = "poll"
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

type Token =
    { Id: Guid
      WorkspaceId: Guid
      Hash: byte[]
      Prefix: string
      CreatedAt: DateTimeOffset
      LastUsedAt: DateTimeOffset option
      RevokedAt: DateTimeOffset option }

type ActivityRow =
    { Seq: int64
      Id: Guid
      WorkspaceId: Guid
      ActivityType: string
      SourceId: Guid option
      TargetId: Guid option
      Method: string option
      Summary: string option
      RequestBody: string option
      ResponseBody: string option
      ToolTrace: string option
      DurationMs: int option
      Status: string
      ErrorDetail: string option
      CreatedAt: DateTimeOffset
      IdempotencyKey: string option
      /// A2A `params.message.messageId` of an inbound message: unique per (workspace, message id) (spec §6.1).
      MessageId: string option }

type Memory =
    { Id: Guid
      WorkspaceId: Guid
      Content: string
      Scope: string
      Namespace: string
      CreatedAt: DateTimeOffset }

/// An HTTP-level outcome of a rule: status code and JSON body text.
type Reply = { Code: int; Body: string }
