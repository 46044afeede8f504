/// Activity log: query parsing, tie-safe cursor paging, and the body of POST /workspaces/:id/activity. Pure.
module Molecule.Platform.Activity

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation

[<Literal>]
let DefaultLimit = 100

[<Literal>]
let MaxLimit = 500

/// 30 days.
[<Literal>]
let MaxSinceSecs = 2592000

let cursorGone =
    "since_id cursor not found (row may have been pruned or belongs to a different workspace); omit since_id to reset"

type SourceFilter =
    | Canvas
    | Agent

type Query =
    { Type: string option
      Source: SourceFilter option
      Limit: int
      SinceSecs: int option
      SinceId: string option }

/// Lenient limit: default 100, capped at 500, non-positive or garbage → 100.
let parseLimit (raw: string option) : int =
    match raw with
    | Some s ->
        match Int32.TryParse(s.Trim()) with
        | true, n when n > 0 -> min n MaxLimit
        | _ -> DefaultLimit
    | None -> DefaultLimit

/// Query string → Query. `get` returns the first value of a query parameter.
let parseQuery (get: string -> string option) : Result<Query, Reply> =
    let nonEmpty name =
        match get name with
        | Some s when not (String.IsNullOrWhiteSpace s) -> Some(s.Trim())
        | _ -> None

    result {
        let! source =
            match nonEmpty "source" with
            | None -> Ok None
            | Some "canvas" -> Ok(Some Canvas)
            | Some "agent" -> Ok(Some Agent)
            | Some _ -> Error(bad "source must be 'canvas' or 'agent'")

        let! sinceSecs =
            match get "since_secs" with
            | None -> Ok None
            | Some s ->
                match Int32.TryParse(s.Trim()) with
                | true, n when n > 0 -> Ok(Some(min n MaxSinceSecs))
                | _ -> Error(bad "since_secs must be a positive integer")

        return
            { Type = nonEmpty "type"
              Source = source
              Limit = parseLimit (get "limit")
              SinceSecs = sinceSecs
              SinceId = nonEmpty "since_id" }
    }

/// Total order of a workspace's log: creation time, then insertion sequence (tie-safe).
let orderKey (r: ActivityRow) = struct (r.CreatedAt.UtcTicks, r.Seq)

let private matchesFilters (now: DateTimeOffset) (q: Query) (r: ActivityRow) =
    (match q.Type with
     | Some t -> r.ActivityType = t
     | None -> true)
    && (match q.Source with
        | Some Canvas -> r.SourceId.IsNone
        | Some Agent -> r.SourceId.IsSome
        | None -> true)
    && (match q.SinceSecs with
        | Some s -> r.CreatedAt >= now.AddSeconds(-(float s))
        | None -> true)

/// Rows of `workspaceId` for a query. With since_id: the rows strictly after the cursor row in (created_at, seq)
/// order, oldest first; the cursor must be a row of this workspace, else 410. Without: newest first.
let select (now: DateTimeOffset) (workspaceId: Guid) (rows: ActivityRow seq) (q: Query) : Result<ActivityRow list, Reply> =
    let own = rows |> Seq.filter (fun r -> r.WorkspaceId = workspaceId) |> List.ofSeq

    match q.SinceId with
    | Some cursor ->
        let found =
            match Validation.parseGuid cursor with
            | Some g -> own |> List.tryFind (fun r -> r.Id = g)
            | None -> None

        match found with
        | None -> Error(Json.errorReply 410 cursorGone)
        | Some c ->
            let ck = orderKey c

            own
            |> List.filter (fun r -> compare (orderKey r) ck > 0 && matchesFilters now q r)
            |> List.sortBy orderKey
            |> List.truncate q.Limit
            |> Ok
    | None ->
        own
        |> List.filter (matchesFilters now q)
        |> List.sortByDescending orderKey
        |> List.truncate q.Limit
        |> Ok

let reportTypes =
    [ "a2a_send"; "a2a_receive"; "task_update"; "agent_log"; "skill_promotion"; "memory_write"; "error" ]

let private jsonColumn (name: string) (o: JsonObject) : string option =
    match Json.prop name o with
    | Some n -> Some(Json.compact n)
    | None -> None

/// POST /workspaces/:id/activity body → a row to insert (Seq assigned by the store), or 400/403.
let report (id: Guid) (now: DateTimeOffset) (workspaceId: Guid) (body: JsonObject) : Result<ActivityRow, Reply> =
    result {
        let! activityType = reqString "activity_type" body

        do!
            if List.contains activityType reportTypes then
                Ok()
            else
                Error(bad ("activity_type must be one of " + String.Join(", ", reportTypes)))

        let! source = optString "source_id" body

        do!
            match source with
            | Some s when not (String.IsNullOrWhiteSpace s) && parseGuid s <> Some workspaceId ->
                Error(Json.errorReply 403 "source_id must match authenticated workspace")
            | _ -> Ok()

        let! target = optGuid "target_id" body
        let! methodName = optString "method" body
        let! summary = optString "summary" body
        let! status = optString "status" body
        let! errorDetail = optString "error_detail" body
        let! duration = optInt "duration_ms" body

        return
            { Seq = 0L
              Id = id
              WorkspaceId = workspaceId
              ActivityType = activityType
              SourceId = Some workspaceId
              TargetId = target
              Method = methodName |> Option.filter (fun s -> s <> "")
              Summary = summary |> Option.map (cap 4096)
              RequestBody = jsonColumn "request_body" body
              ResponseBody = jsonColumn "response_body" body
              ToolTrace = jsonColumn "tool_trace" body
              DurationMs = duration
              Status =
                match status with
                | Some s when s <> "" -> s
                | _ -> "ok"
              ErrorDetail = errorDetail |> Option.map (cap 4096)
              CreatedAt = now
              IdempotencyKey = None }
    }

/// A blank row (helpers fill in the rest).
let row (id: Guid) (now: DateTimeOffset) (workspaceId: Guid) (activityType: string) : ActivityRow =
    { Seq = 0L
      Id = id
      WorkspaceId = workspaceId
      ActivityType = activityType
      SourceId = None
      TargetId = None
      Method = None
      Summary = None
      RequestBody = None
      ResponseBody = None
      ToolTrace = None
      DurationMs = None
      Status = "ok"
      ErrorDetail = None
      CreatedAt = now
      IdempotencyKey = None }
