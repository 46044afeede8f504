/// Asynchronous delegations: request validation, idempotency, tracking/result rows and the list view. Pure.
/// Delegations live in the caller's activity log (activity_type `delegation`, methods delegate/delegate_result);
/// the delegation id is the id of the tracking row.
module Molecule.Platform.Delegations

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

type Request =
    { TargetId: WorkspaceId
      Task: string
      IdempotencyKey: string option }

let parse (source: WorkspaceId) (body: JsonObject) : Result<Request, Reply> =
    result {
        let! targetText =
            match Json.prop "target_id" body with
            | None -> Error(bad "target_id is required")
            | Some n ->
                match Json.asString n with
                | Some s -> Ok s
                | None -> Error(bad "target_id must be a valid UUID")

        let! target =
            match parseWorkspaceId targetText with
            | Some g -> Ok g
            | None -> Error(bad "target_id must be a valid UUID")

        let! task = reqString "task" body
        let! key = optString "idempotency_key" body

        do!
            if target = source then
                Error(bad "self-delegation not permitted")
            else
                Ok()

        return
            { TargetId = target
              Task = task
              IdempotencyKey = key |> Option.filter (fun k -> k <> "") |> Option.map (cap 256) }
    }

let isTracking (r: ActivityRow) =
    r.ActivityType = "delegation" && r.Method = Some "delegate"

/// Outcome of the idempotency check against the caller's existing rows.
type Idempotency =
    | Fresh
    /// A live (non-failed) delegation with the same key: answer 200 with idempotent_hit.
    | Hit of ActivityRow
    /// A failed delegation with the same key: delete it and start fresh.
    | ReplaceFailed of ActivityRow

/// What an earlier tracking row with the same key (the store's `TrackingRow`) means for a new request.
let idempotency (earlier: ActivityRow option) : Idempotency =
    match earlier with
    | Some r when r.Status = "failed" -> ReplaceFailed r
    | Some r -> Hit r
    | None -> Fresh

/// The tracking row of `source` with idempotency key `key` among `rows`.
let trackingWithKey (rows: ActivityRow seq) (source: WorkspaceId) (key: string) : ActivityRow option =
    rows |> Seq.tryFind (fun r -> r.WorkspaceId = source && isTracking r && r.IdempotencyKey = Some key)

let checkIdempotency (rows: ActivityRow seq) (source: WorkspaceId) (key: string option) : Idempotency =
    key |> Option.bind (trackingWithKey rows source) |> idempotency

let hitReply (r: ActivityRow) : Reply =
    Wire.reply
        200
        (Json.obj
            [ "delegation_id", Wire.idNode r.Id
              "status", Json.str r.Status
              "target_id", Wire.optId r.TargetId
              "idempotent_hit", Json.bool true ])

let acceptedReply (delegationId: ActivityId) (target: WorkspaceId) : Reply =
    Wire.reply
        202
        (Json.obj
            [ "delegation_id", Wire.idNode delegationId
              "status", Json.str "delegated"
              "target_id", Wire.idNode target ])

let trackingRow (delegationId: ActivityId) (now: DateTimeOffset) (source: WorkspaceId) (req: Request) : ActivityRow =
    { Activity.row delegationId now source "delegation" with
        SourceId = Some source
        TargetId = Some req.TargetId
        Method = Some "delegate"
        Summary = Some $"Delegating to {req.TargetId.Text}"
        RequestBody = Some(Json.compact (Json.obj [ "task", Json.str req.Task; "delegation_id", Wire.idNode delegationId ]))
        Status = "pending"
        IdempotencyKey = req.IdempotencyKey }

/// The A2A envelope delivered to the target.
let envelope (rpcId: Guid) (delegationId: ActivityId) (task: string) : JsonObject =
    Json.obj
        [ "jsonrpc", Json.str "2.0"
          "id", Wire.guidNode rpcId
          "method", Json.str "message/send"
          "params",
          Json.obj
              [ "message",
                Json.obj
                    [ "role", Json.str "user"
                      "messageId", Wire.idNode delegationId
                      "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str task ] ]
                      "metadata", Json.obj [ "delegation_id", Wire.idNode delegationId ] ] ] ]

type Outcome =
    | Completed of text: string
    /// Delivered to a poll-mode target's inbox; the answer will come back as a new inbound message.
    | Queued
    | Failed of detail: string

let statusOf (o: Outcome) =
    match o with
    | Completed _ -> "completed"
    | Queued -> "queued"
    | Failed _ -> "failed"

let resultRow (id: ActivityId) (now: DateTimeOffset) (source: WorkspaceId) (target: WorkspaceId) (delegationId: ActivityId) (o: Outcome) : ActivityRow =
    let baseRow =
        { Activity.row id now source "delegation" with
            SourceId = Some source
            TargetId = Some target
            Method = Some "delegate_result"
            Status = statusOf o }

    match o with
    | Completed text ->
        { baseRow with
            Summary = Some $"Delegation completed by {target.Text}"
            ResponseBody = Some(Json.compact (Json.obj [ "text", Json.str text; "delegation_id", Wire.idNode delegationId ])) }
    | Queued ->
        { baseRow with
            Summary = Some $"Delegation queued for poll-mode workspace {target.Text}"
            ResponseBody =
                Some(
                    Json.compact (
                        Json.obj
                            [ "delegation_id", Wire.idNode delegationId
                              "queued", Json.bool true
                              "delivery_mode", Json.str "poll" ]
                    )
                ) }
    | Failed detail ->
        { baseRow with
            Summary = Some $"Delegation to {target.Text} failed"
            ErrorDetail = Some(cap 4096 detail)
            ResponseBody = Some(Json.compact (Json.obj [ "delegation_id", Wire.idNode delegationId ])) }

/// For a completed delegation, an inbound message on the caller (a2a_receive, method delegate_result,
/// source = the target) so the answer also reaches the caller's inbox.
let replyRow (id: ActivityId) (now: DateTimeOffset) (source: WorkspaceId) (target: WorkspaceId) (delegationId: ActivityId) (text: string) : ActivityRow =
    let env =
        Json.obj
            [ "jsonrpc", Json.str "2.0"
              "method", Json.str "delegate_result"
              "params",
              Json.obj
                  [ "message",
                    Json.obj
                        [ "role", Json.str "agent"
                          "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str text ] ]
                          "metadata", Json.obj [ "delegation_id", Wire.idNode delegationId ] ] ] ]

    { Activity.row id now source "a2a_receive" with
        SourceId = Some target
        TargetId = Some source
        Method = Some "delegate_result"
        Summary = Some $"Delegation result from {target.Text}"
        RequestBody = Some(Json.compact env) }

let private delegationIdOf (r: ActivityRow) : JsonNode =
    let fromBody (b: string option) =
        b
        |> Option.bind Json.tryParseDecoded
        |> Option.bind (Json.prop "delegation_id")
        |> Option.bind Json.asString

    match fromBody r.RequestBody |> Option.orElse (fromBody r.ResponseBody) with
    | Some d -> Json.str d
    | None -> null

let preview (r: ActivityRow) : string option =
    match r.ResponseBody with
    | None -> None
    | Some b ->
        let text =
            match Json.tryParseDecoded b |> Option.bind (Json.prop "text") |> Option.bind Json.asString with
            | Some t -> t
            | None -> b

        Some(if text.Length > 300 then text.Substring(0, 300) + "..." else text)

/// GET /workspaces/:id/delegations: up to 50 newest delegation rows of the caller.
let list (rows: ActivityRow seq) (source: WorkspaceId) : JsonNode =
    rows
    |> Seq.filter (fun r -> r.WorkspaceId = source && r.ActivityType = "delegation")
    |> Seq.sortByDescending Activity.orderKey
    |> Seq.truncate 50
    |> Seq.map (fun r ->
        let o =
            Json.obj
                [ "id", Wire.idNode r.Id
                  "type", Json.optStr r.Method
                  "source_id", Wire.optId r.SourceId
                  "target_id", Wire.optId r.TargetId
                  "summary", Json.optStr r.Summary
                  "status", Json.str r.Status
                  "created_at", Wire.timeNode r.CreatedAt ]

        match delegationIdOf r with
        | null -> ()
        | d -> o["delegation_id"] <- d

        r.ErrorDetail |> Option.iter (fun e -> o["error"] <- Json.str e)
        preview r |> Option.iter (fun p -> o["response_preview"] <- Json.str p)
        o :> JsonNode)
    |> Json.arr
