/// The store's column codecs (ids as text, instants as UTC ticks) and its rows as read from a command.
module Molecule.Platform.SqlCodec

open System
open System.Data.Common
open Molecule.Platform

let ticks (t: DateTimeOffset) = box t.UtcTicks

let optTicks (t: DateTimeOffset option) =
    match t with
    | Some v -> box v.UtcTicks
    | None -> null

let optText (s: string option) =
    match s with
    | Some v -> box v
    | None -> null

let inline idText (id: ^T) = box ((^T: (member Text: string) id))

let inline optId (id: ^T option) =
    match id with
    | Some v -> idText v
    | None -> null

let ofTicks (v: int64) = DateTimeOffset(v, TimeSpan.Zero)
let private text (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetString i)
let private instant (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(ofTicks (r.GetInt64 i))
let private guid (r: DbDataReader) (i: int) = Guid.Parse(r.GetString i)
let private optGuid (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(guid r i)
let private optInt (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetInt32 i)

/// A column value this platform never writes: the database was changed by hand or by another program.
let private corrupt (column: string) (value: string) : 'a =
    raise (InvalidOperationException($"the database holds {column} '{value}', which this molecule-platform does not know"))

let private status (r: DbDataReader) (i: int) =
    let s = r.GetString i
    Status.tryParse s |> Option.defaultWith (fun () -> corrupt "workspace status" s)

let private mode (r: DbDataReader) (i: int) =
    let s = r.GetString i
    DeliveryMode.tryParse s |> Option.defaultWith (fun () -> corrupt "delivery mode" s)

let private scope (r: DbDataReader) (i: int) =
    let s = r.GetString i
    MemoryScope.tryParse s |> Option.defaultWith (fun () -> corrupt "memory scope" s)

// ---------------------------------------------------------------- rows

let workspaceColumns =
    "id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at"

/// A workspace row; its sealed inbound secret opened by `openSecret` (id text, stored value).
let readWorkspace (openSecret: string -> string -> string option) (r: DbDataReader) : Workspace =
    let id = r.GetString 0

    { Id = WorkspaceId(Guid.Parse id)
      Name = r.GetString 1
      Role = text r 2
      Tier = r.GetInt32 3
      Status = status r 4
      AgentCard = text r 5
      Url = text r 6
      ParentId = optGuid r 7 |> Option.map WorkspaceId
      DeliveryMode = mode r 8
      Runtime = r.GetString 9
      LastHeartbeatAt = instant r 10
      LastErrorRate = r.GetDouble 11
      ActiveTasks = r.GetInt32 12
      UptimeSeconds = r.GetInt32 13
      CurrentTask = r.GetString 14
      MaxConcurrentTasks = r.GetInt32 15
      InboundSecret = text r 16 |> Option.bind (openSecret id)
      LastOutboundAt = instant r 17
      CreatedAt = ofTicks (r.GetInt64 18)
      UpdatedAt = ofTicks (r.GetInt64 19) }

let tokenColumns = "id,workspace_id,token_hash,prefix,created_at,last_used_at,revoked_at"

let readToken (r: DbDataReader) : Token =
    { Id = TokenId(guid r 0)
      WorkspaceId = WorkspaceId(guid r 1)
      Hash = r.GetFieldValue<byte[]> 2
      Prefix = r.GetString 3
      CreatedAt = ofTicks (r.GetInt64 4)
      LastUsedAt = instant r 5
      RevokedAt = instant r 6 }

let activityColumns =
    "seq,id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

/// The same columns without the three JSON bodies (read as NULL).
let slimActivityColumns =
    "seq,id,workspace_id,activity_type,source_id,target_id,method,summary,NULL,NULL,NULL,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

let readActivity (r: DbDataReader) : ActivityRow =
    { Seq = r.GetInt64 0
      Id = ActivityId(guid r 1)
      WorkspaceId = WorkspaceId(guid r 2)
      ActivityType = r.GetString 3
      SourceId = optGuid r 4 |> Option.map WorkspaceId
      TargetId = optGuid r 5 |> Option.map WorkspaceId
      Method = text r 6
      Summary = text r 7
      RequestBody = text r 8
      ResponseBody = text r 9
      ToolTrace = text r 10
      DurationMs = optInt r 11
      Status = r.GetString 12
      ErrorDetail = text r 13
      CreatedAt = ofTicks (r.GetInt64 14)
      IdempotencyKey = text r 15
      MessageId = text r 16 }

let memoryColumns = "id,workspace_id,content,scope,namespace,created_at"

let readMemory (r: DbDataReader) : Memory =
    { Id = MemoryId(guid r 0)
      WorkspaceId = WorkspaceId(guid r 1)
      Content = r.GetString 2
      Scope = scope r 3
      Namespace = r.GetString 4
      CreatedAt = ofTicks (r.GetInt64 5) }

let requestColumns =
    "id,kind,requester_type,requester_id,recipient_type,recipient_id,title,detail,status,responder_type,responder_id,priority,source,expires_at,created_at,updated_at,responded_at"

let private party (r: DbDataReader) (i: int) : Requests.Party =
    let typ = r.GetString i
    Requests.Party.ofColumns typ (text r (i + 1)) |> Option.defaultWith (fun () -> corrupt "request party" typ)

let private parsed (column: string) (parse: string -> 'a option) (r: DbDataReader) (i: int) : 'a =
    let s = r.GetString i
    parse s |> Option.defaultWith (fun () -> corrupt column s)

let readRequest (r: DbDataReader) : Requests.Request =
    { Id = RequestId(guid r 0)
      Kind = parsed "request kind" Requests.Kind.tryParse r 1
      Requester = party r 2
      Recipient = party r 4
      Title = r.GetString 6
      Detail = text r 7
      Status = parsed "request status" Requests.RequestStatus.tryParse r 8
      Responder = (if r.IsDBNull 9 then None else Some(party r 9))
      Priority = r.GetString 11
      Source = parsed "request source" Requests.Source.tryParse r 12
      ExpiresAt = instant r 13
      CreatedAt = ofTicks (r.GetInt64 14)
      UpdatedAt = ofTicks (r.GetInt64 15)
      RespondedAt = instant r 16 }

let requestMessageColumns = "id,request_id,author_type,author_id,body,created_at"

/// A request's last nudge (`id, last_nudged_at`).
let readLastNudge (r: DbDataReader) : RequestId * DateTimeOffset option = RequestId(guid r 0), instant r 1

let readRequestMessage (r: DbDataReader) : Requests.Message =
    { Id = RequestMessageId(guid r 0)
      RequestId = RequestId(guid r 1)
      Author = party r 2
      Body = r.GetString 4
      CreatedAt = ofTicks (r.GetInt64 5) }

let approvalColumns = "id,workspace_id,task_id,action,reason,context,status,decided_by,decided_at,created_at"

let readApproval (r: DbDataReader) : Approvals.Approval =
    { Id = ApprovalId(guid r 0)
      WorkspaceId = WorkspaceId(guid r 1)
      TaskId = text r 2
      Action = r.GetString 3
      Reason = text r 4
      Context = text r 5
      Status = parsed "approval status" Approvals.ApprovalStatus.tryParse r 6
      DecidedBy = text r 7
      DecidedAt = instant r 8
      CreatedAt = ofTicks (r.GetInt64 9) }

/// An activity row's parameters, but its seq (an insert's: rowColumns, rowValues).
let rowParams (r: ActivityRow) =
    [ "@id", idText r.Id
      "@ws", idText r.WorkspaceId
      "@t", box r.ActivityType
      "@src", optId r.SourceId
      "@tgt", optId r.TargetId
      "@m", optText r.Method
      "@s", optText r.Summary
      "@rq", optText r.RequestBody
      "@rs", optText r.ResponseBody
      "@tt", optText r.ToolTrace
      "@d", (match r.DurationMs with Some d -> box d | None -> null)
      "@st", box r.Status
      "@e", optText r.ErrorDetail
      "@ca", ticks r.CreatedAt
      "@k", optText r.IdempotencyKey
      "@mid", optText r.MessageId ]

/// The columns an insert of an activity row names, but seq.
let rowColumns =
    "id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

/// Their parameters, in the same order.
let rowValues = "@id,@ws,@t,@src,@tgt,@m,@s,@rq,@rs,@tt,@d,@st,@e,@ca,@k,@mid"

/// A workspace's parameters (its inbound secret sealed with `seal`).
let workspaceParams (seal: string -> string) (w: Workspace) =
    [ "@id", idText w.Id
      "@name", box w.Name
      "@role", optText w.Role
      "@tier", box w.Tier
      "@status", box (Status.text w.Status)
      "@card", optText w.AgentCard
      "@url", optText w.Url
      "@parent", optId w.ParentId
      "@dm", box (DeliveryMode.text w.DeliveryMode)
      "@rt", box w.Runtime
      "@hb", optTicks w.LastHeartbeatAt
      "@er", box w.LastErrorRate
      "@at", box w.ActiveTasks
      "@up", box w.UptimeSeconds
      "@ct", box w.CurrentTask
      "@mct", box w.MaxConcurrentTasks
      "@sec", (w.InboundSecret |> Option.map seal |> optText)
      "@out", optTicks w.LastOutboundAt
      "@ca", ticks w.CreatedAt
      "@ua", ticks w.UpdatedAt ]
