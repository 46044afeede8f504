/// Activity log: query parsing, tie-safe cursor paging over a workspace's ordered log, and the body of
/// POST /workspaces/:id/activity. Pure.
module Molecule.Platform.Activity

open System
open System.Collections.Generic
open System.Globalization
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

[<Literal>]
let DefaultLimit = 100

[<Literal>]
let MaxLimit = 500

/// 30 days.
[<Literal>]
let MaxSinceSecs = 2592000

let cursorGone =
    "since_id cursor not found (row may have been pruned or belongs to a different workspace); omit since_id to reset"

let badPeerId = "peer_id must be a UUID"
let badBeforeTs = "before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"
let badSinceSecs = "since_secs must be a positive integer"
let badSource = "source must be 'canvas' or 'agent'"

type SourceFilter =
    | Canvas
    | Agent

type Query =
    { Type: string option
      /// A bad `source` is reported only after the cursor lookup (a bad cursor's 410 wins, spec §2.1).
      Source: Result<SourceFilter option, Reply>
      Limit: int
      SinceSecs: int option
      SinceId: string option
      /// Rows whose source_id or target_id is this workspace.
      PeerId: WorkspaceId option
      /// Rows created strictly before this instant (created_at only).
      BeforeTs: DateTimeOffset option
      /// include=peer_info: peer_name, peer_role, agent_card_url, attachments.
      PeerInfo: bool }

/// A query with no filters: the newest 100 rows.
let defaultQuery: Query =
    { Type = None
      Source = Ok None
      Limit = DefaultLimit
      SinceSecs = None
      SinceId = None
      PeerId = None
      BeforeTs = None
      PeerInfo = false }

/// Lenient limit: default 100, capped at 500, non-positive or garbage → 100.
let parseLimit (raw: string option) : int =
    match raw with
    | Some s ->
        match Int64.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
        | true, n when n > 0L -> int (min n (int64 MaxLimit))
        | _ -> DefaultLimit
    | None -> DefaultLimit

let private rfc3339 =
    Regex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", RegexOptions.CultureInvariant)

/// RFC 3339 with optional fractional seconds (up to 9 digits; .NET keeps 100 ns), else None.
let parseTimestamp (s: string) : DateTimeOffset option =
    if isNull s || not (rfc3339.IsMatch s) then
        None
    else
        // .NET parses at most 7 fractional digits: drop the nanosecond tail
        let m = rfc3339.Match s
        let frac = m.Groups[1].Value
        let trimmed = if frac.Length > 8 then s.Replace(frac, frac.Substring(0, 8)) else s

        match DateTimeOffset.TryParse(trimmed, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind) with
        | true, t -> Some t
        | _ -> None

/// Query string → Query, checked in the reference handler's order (peer_id, before_ts, limit, since_secs).
/// `get` returns the first value of a query parameter.
let parseQuery (get: string -> string option) : Result<Query, Reply> =
    let nonEmpty name =
        match get name with
        | Some s when not (String.IsNullOrWhiteSpace s) -> Some(s.Trim())
        | _ -> None

    let given name =
        match get name with
        | Some s when s <> "" -> Some s
        | _ -> None

    result {
        let! peer =
            match given "peer_id" with
            | None -> Ok None
            | Some s ->
                match Guid.TryParse s with
                | true, g -> Ok(Some(WorkspaceId g))
                | _ -> Error(bad badPeerId)

        let! before =
            match given "before_ts" with
            | None -> Ok None
            | Some s ->
                match parseTimestamp s with
                | Some t -> Ok(Some t)
                | None -> Error(bad badBeforeTs)

        let limit = parseLimit (get "limit")

        let! sinceSecs =
            match given "since_secs" with
            | None -> Ok None
            | Some s ->
                match Int64.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
                | true, n when n > 0L -> Ok(Some(int (min n (int64 MaxSinceSecs))))
                | _ -> Error(bad badSinceSecs)

        let source =
            match nonEmpty "source" with
            | None -> Ok None
            | Some "canvas" -> Ok(Some Canvas)
            | Some "agent" -> Ok(Some Agent)
            | Some _ -> Error(bad badSource)

        let includes =
            match get "include" with
            | Some s -> s.Split(',') |> Array.map (fun x -> x.Trim()) |> List.ofArray
            | None -> []

        return
            { Type = nonEmpty "type"
              Source = source
              Limit = limit
              SinceSecs = sinceSecs
              SinceId = nonEmpty "since_id"
              PeerId = peer
              BeforeTs = before
              PeerInfo = List.contains "peer_info" includes }
    }

/// `now - span`, clamped at the earliest representable instant (total for any inputs).
let ago (now: DateTimeOffset) (span: TimeSpan) : DateTimeOffset =
    let utc = now.UtcTicks

    if span.Ticks <= 0L then now
    elif utc - DateTimeOffset.MinValue.UtcTicks <= span.Ticks then DateTimeOffset.MinValue
    else DateTimeOffset(utc - span.Ticks, TimeSpan.Zero)

/// Total order of a workspace's log: creation time, then insertion sequence (tie-safe).
let orderKey (r: ActivityRow) = struct (r.CreatedAt.UtcTicks, r.Seq)

/// Timestamps are kept to the microsecond (as the reference's Postgres does): what a client reads back in
/// `created_at` is exactly what the platform compares.
let truncateToMicros (t: DateTimeOffset) : DateTimeOffset =
    let utc = t.ToUniversalTime()
    DateTimeOffset(utc.UtcTicks - utc.UtcTicks % 10L, TimeSpan.Zero)

/// The row as the log admits it after a row created at `last` (the workspace's newest row): created_at truncated
/// to microseconds and never earlier than `last`, so the (created_at, seq) order is the insertion order
/// (exactly-once paging even when the clock steps back).
let admit (last: DateTimeOffset option) (r: ActivityRow) : ActivityRow =
    let t = truncateToMicros r.CreatedAt

    match last with
    | Some l when l > t -> { r with CreatedAt = l }
    | _ -> { r with CreatedAt = t }

/// The first index in `rows` whose element satisfies `pred`, for a predicate that is false then true along the
/// list (`rows.Count` when none does). O(log n).
let firstIndex (rows: IReadOnlyList<ActivityRow>) (pred: ActivityRow -> bool) : int =
    let mutable lo = 0
    let mutable hi = rows.Count

    while lo < hi do
        let mid = lo + (hi - lo) / 2

        if pred rows[mid] then hi <- mid else lo <- mid + 1

    lo

let private matchesFilters (source: SourceFilter option) (q: Query) (r: ActivityRow) =
    (match q.Type with
     | Some t -> r.ActivityType = t
     | None -> true)
    && (match source with
        | Some Canvas -> r.SourceId.IsNone
        | Some Agent -> r.SourceId.IsSome
        | None -> true)
    && (match q.PeerId with
        | Some p -> r.SourceId = Some p || r.TargetId = Some p
        | None -> true)

/// Rows for a query. `rows` is this workspace's log in (created_at, seq) order; `find` looks up any row by id.
/// With since_id: the rows strictly after the cursor row in that order, oldest first (the cursor must be a row of
/// this workspace, else 410). Without: newest first. since_secs and before_ts bound created_at (inclusive lower,
/// strict upper). Costs O(log n) plus the rows scanned for the page.
let select
    (now: DateTimeOffset)
    (workspaceId: WorkspaceId)
    (rows: IReadOnlyList<ActivityRow>)
    (find: ActivityId -> ActivityRow option)
    (q: Query)
    : Result<ActivityRow list, Reply> =
    let lower = q.SinceSecs |> Option.map (fun s -> ago now (TimeSpan.FromSeconds(float s)))
    let collect = ResizeArray<ActivityRow>()

    let cursor =
        match q.SinceId with
        | None -> Ok None
        | Some text ->
            match Validation.parseGuid text |> Option.map ActivityId |> Option.bind find with
            | Some c when c.WorkspaceId = workspaceId -> Ok(Some c)
            | _ -> Error(Wire.errorReply 410 cursorGone)

    match cursor, q.Source with
    | Error e, _ -> Error e
    | Ok _, Error e -> Error e
    | Ok(Some c), Ok source ->
        let ck = orderKey c
        let afterCursor = firstIndex rows (fun r -> compare (orderKey r) ck > 0)

        let start =
            match lower with
            | Some t -> max afterCursor (firstIndex rows (fun r -> r.CreatedAt >= t))
            | None -> afterCursor

        let mutable i = start

        while i < rows.Count && collect.Count < q.Limit do
            let r = rows[i]

            match q.BeforeTs with
            | Some b when r.CreatedAt >= b -> i <- rows.Count
            | _ ->
                if matchesFilters source q r then collect.Add r
                i <- i + 1

        Ok(List.ofSeq collect)
    | Ok None, Ok source ->
        let stop =
            match q.BeforeTs with
            | Some b -> firstIndex rows (fun r -> r.CreatedAt >= b)
            | None -> rows.Count

        let mutable i = stop - 1

        while i >= 0 && collect.Count < q.Limit do
            let r = rows[i]

            match lower with
            | Some t when r.CreatedAt < t -> i <- -1
            | _ ->
                if matchesFilters source q r then collect.Add r
                i <- i - 1

        Ok(List.ofSeq collect)

let reportTypes =
    [ "a2a_send"; "a2a_receive"; "task_update"; "agent_log"; "skill_promotion"; "memory_write"; "error" ]

let private jsonColumn (name: string) (o: JsonObject) : string option =
    match Json.prop name o with
    | Some n -> Some(Json.compact n)
    | None -> None

/// POST /workspaces/:id/activity body → a row to insert (Seq assigned by the store), or 400/403.
let report (id: ActivityId) (now: DateTimeOffset) (workspaceId: WorkspaceId) (body: JsonObject) : Result<ActivityRow, Reply> =
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
            | Some s when not (String.IsNullOrWhiteSpace s) && parseWorkspaceId s <> Some workspaceId ->
                Error(Wire.errorReply 403 "source_id must match authenticated workspace")
            | _ -> Ok()

        let! target = optWorkspaceId "target_id" body
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
              IdempotencyKey = None
              MessageId = None }
    }

/// A blank row (helpers fill in the rest).
let row (id: ActivityId) (now: DateTimeOffset) (workspaceId: WorkspaceId) (activityType: string) : ActivityRow =
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
      IdempotencyKey = None
      MessageId = None }
