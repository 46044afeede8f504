/// A small model of the platform's activity log with the reference server's semantics, used to test
/// the inbox against interleavings of appends, polls, duplicate/overlapping responses, 410s and pops.
module Molecule.Tests.Core.InboxModel

open Molecule.Protocol

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Core

let selfId = "5e1f0000-0000-4000-8000-00000000000a"
let peerA = "9eea0000-0000-4000-8000-0000000000a1"
let peerB = "9eeb0000-0000-4000-8000-0000000000b2"

/// What kind of activity row the platform wrote.
type RowKind =
    | CanvasText
    | PeerText
    /// Our own send_message_to_user notify row (echo).
    | NotifyEcho
    /// Our own delegate_task report row with source = self (echo).
    | SelfDelegationEcho
    /// A delegate_result row about ourselves: not an echo, must surface.
    | SelfDelegateResult

type ModelRow =
    { Id: string
      /// Milliseconds since the model epoch.
      At: int64
      Kind: RowKind
      Text: string
      /// 0: trimmed fraction + Z (Go RFC3339Nano), 1: micro seconds + "+00:00", 2: nanoseconds + Z
      Format: int
      /// The row as the platform renders it (cached).
      Wire: string }

let isEchoKind k =
    match k with
    | NotifyEcho
    | SelfDelegationEcho -> true
    | _ -> false

let epoch = DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero)

let formatAt (format: int) (ms: int64) =
    let t = epoch.AddMilliseconds(float ms)
    match format with
    | 1 -> t.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'+00:00'", CultureInfo.InvariantCulture)
    | 2 -> t.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'00Z'", CultureInfo.InvariantCulture)
    | _ -> t.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture)

let canvasBody (text: string) : JsonNode =
    Json.obj
        [ "jsonrpc", Json.str "2.0"
          "id", Json.str "rpc-1"
          "method", Json.str "message/send"
          "params",
          Json.obj
              [ "message",
                Json.obj
                    [ "role", Json.str "user"
                      "messageId", Json.str "m-1"
                      "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str text ] ] ] ]
          :> JsonNode ]
    :> JsonNode

let rowJson (r: ModelRow) : JsonNode =
    let source, meth, summary, body, response =
        match r.Kind with
        | CanvasText -> Json.nul, Json.str "message/send", Json.nul, canvasBody r.Text, Json.nul
        | PeerText -> Json.str peerA, Json.str "message/send", Json.nul, canvasBody r.Text, Json.nul
        | NotifyEcho ->
            Json.nul, Json.str "notify", Json.str ("Agent message: " + r.Text), Json.nul,
            (Json.obj [ "message", Json.str r.Text ] :> JsonNode)
        | SelfDelegationEcho ->
            Json.str (selfId.ToUpperInvariant()), Json.str "message/send", Json.str "peer responded (5 chars)",
            (Json.obj [ "task", Json.str r.Text ] :> JsonNode), (Json.obj [ "result", Json.str "done" ] :> JsonNode)
        | SelfDelegateResult ->
            Json.str selfId, Json.str "delegate_result", Json.str ("Delegation result: " + r.Text), Json.nul, Json.nul
    let fields =
        [ "id", Json.str r.Id
          "workspace_id", Json.str selfId
          "activity_type", Json.str "a2a_receive"
          "source_id", source
          "target_id", Json.str selfId
          "method", meth
          "summary", summary
          "duration_ms", Json.nul
          "status", Json.str "ok"
          "error_detail", Json.nul
          "created_at", Json.str (formatAt r.Format r.At) ]
        @ (if isNull body then [] else [ "request_body", body ])
        @ (if isNull response then [] else [ "response_body", response ])
    Json.obj fields :> JsonNode

/// The platform's activity log: append-only, with pruning.
type Platform =
    { Rows: ModelRow list // append order, newest last
      Now: int64
      Pruned: Set<string>
      /// Order of rows sharing a created_at (the database gives no guarantee).
      TiesReversed: bool }

let platform tiesReversed =
    { Rows = []
      Now = 0L
      Pruned = Set.empty
      TiesReversed = tiesReversed }

let private live (p: Platform) = p.Rows |> List.filter (fun r -> not (p.Pruned.Contains r.Id))

let private ascending (p: Platform) (rows: ModelRow list) =
    let indexed = rows |> List.mapi (fun i r -> (i, r))
    indexed
    |> List.sortBy (fun (i, r) -> (r.At, (if p.TiesReversed then -i else i)))
    |> List.map snd

let private render (rows: ModelRow list) =
    "[" + String.Join(",", rows |> List.map (fun r -> r.Wire)) + "]"

/// `GET /workspaces/:id/activity?type=a2a_receive&…` with the reference server's semantics.
let serveRows (query: PollQuery) (p: Platform) : Result<ModelRow list, Response> =
    match query with
    | SinceId(cursor, limit) ->
        match live p |> List.tryFind (fun r -> r.Id = cursor) with
        | None ->
            Result.Error(Reply(410, "{\"error\":\"since_id cursor not found (row may have been pruned or belongs to a different workspace); omit since_id to reset\"}"))
        | Some c -> Result.Ok(live p |> List.filter (fun r -> r.At > c.At) |> ascending p |> List.truncate limit)
    | SinceSecs(secs, limit) ->
        let from = p.Now - int64 secs * 1000L
        Result.Ok(live p |> List.filter (fun r -> r.At >= from) |> ascending p |> List.rev |> List.truncate limit)

let serve (query: PollQuery) (p: Platform) : Response =
    match serveRows query p with
    | Result.Ok rows -> Reply(200, render rows)
    | Result.Error response -> response

/// Appends a row committed `lateMs` (≤ 1000) after its timestamp was taken.
let append (kind: RowKind) (lateMs: int64) (format: int) (p: Platform) : Platform * ModelRow =
    let n = List.length p.Rows
    let id = $"{(n + 1).ToString(CultureInfo.InvariantCulture).PadLeft(8, '0')}-0000-4000-8000-{(n * 7919 % 1000003).ToString(CultureInfo.InvariantCulture).PadLeft(12, '0')}"
    let row =
        { Id = id
          At = max 0L (p.Now - min 1000L (max 0L lateMs))
          Kind = kind
          Text = $"message {n + 1}"
          Format = format
          Wire = "" }
    let row = { row with Wire = Json.compact (rowJson row) }
    { p with Rows = p.Rows @ [ row ] }, row

let advance (ms: int64) (p: Platform) = { p with Now = p.Now + max 0L ms }

/// Rows created within the last two seconds (the model keeps bursts below a page per 2 s).
let recentCount (p: Platform) =
    p.Rows |> List.filter (fun r -> r.At > p.Now - 2000L) |> List.length

let prune (id: string) (p: Platform) = { p with Pruned = p.Pruned.Add id }

// ---------------------------------------------------------------------------------------------
// Operations and the simulator
// ---------------------------------------------------------------------------------------------

type Op =
    | Append of RowKind * lateMs: int64 * format: int
    | Burst of count: int * RowKind
    | Advance of ms: int64
    | Poll
    /// Apply the last response once more (a duplicated response).
    | Duplicate
    /// Poll with the query used `back` polls ago (overlapping windows).
    | Overlap of back: int
    /// Prune the cursor row, then poll (410) and poll again (since_secs replay).
    | PruneCursor
    | PopHead
    | PopNth of int
    | PopUnknown
    | Restart
    | Fail of Response

type Sim =
    { Platform: Platform
      Inbox: Inbox.State
      /// Every message onPoll reported as new, in order.
      Surfaced: InboxMessage list
      SurfacedIds: Set<string>
      Popped: Set<string>
      Queries: PollQuery list // newest first
      LastResponse: Response option
      AppendsSinceCursorlessPoll: int
      /// Invariant violations seen along the way.
      Violations: string list
      /// Situations the run went through (to show the properties are not vacuous).
      Events: Set<string> }

let start tiesReversed inbox =
    { Platform = platform tiesReversed
      Inbox = inbox
      Surfaced = []
      SurfacedIds = Set.empty
      Popped = Set.empty
      Queries = []
      LastResponse = None
      AppendsSinceCursorlessPoll = 0
      Violations = []
      Events = Set.empty }

/// Queue order as the test understands it: instant (UTC ticks), then id; all model timestamps parse.
let orderKey (m: InboxMessage) =
    match DateTimeOffset.TryParse(m.CreatedAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) with
    | true, t -> (t.UtcTicks, m.ActivityId)
    | _ -> (Int64.MaxValue, m.ActivityId)

let private check (before: Sim) (sim: Sim) =
    let q = sim.Inbox.Queue
    let changed = not (obj.ReferenceEquals(before.Inbox.Queue, q))
    let violations =
        [ if changed && List.length q > Inbox.capacity then "queue exceeds capacity"
          if changed && q |> List.map orderKey |> List.pairwise |> List.exists (fun (a, b) -> compare a b >= 0) then
              "queue not strictly ordered by (created_at, id)"
          if changed && q |> List.exists (fun m -> sim.Popped.Contains m.ActivityId) then "a popped message came back" ]
    if violations.IsEmpty then sim else { sim with Violations = sim.Violations @ violations }

let applyResponse (response: Response) (sim: Sim) =
    let inbox, fresh, _ = Inbox.onPoll selfId response sim.Inbox
    let events =
        [ if inbox.Paused && not sim.Inbox.Paused then "pause"
          if sim.Inbox.Paused && not inbox.Paused then "resume"
          match response with
          | Reply(410, _) -> "410"
          | Reply(200, _) -> ()
          | _ -> "failure" ]
    let sim = { sim with Events = Set.union sim.Events (Set.ofList events) }
    let twice = fresh |> List.exists (fun m -> sim.SurfacedIds.Contains m.ActivityId)
    { sim with
        Inbox = inbox
        Surfaced = sim.Surfaced @ fresh
        SurfacedIds = fresh |> List.fold (fun ids m -> Set.add m.ActivityId ids) sim.SurfacedIds
        LastResponse = Some response
        Violations = if twice then "a message surfaced twice" :: sim.Violations else sim.Violations }

let poll (sim: Sim) =
    let query = Inbox.pollQuery sim.Inbox
    let served = serveRows query sim.Platform
    let response =
        match served with
        | Result.Ok rows -> Reply(200, render rows)
        | Result.Error response -> response
    let full =
        match served with
        | Result.Ok rows -> List.length rows >= 100
        | _ -> false
    let sim = applyResponse response sim
    let sim = if full then { sim with Events = sim.Events.Add "full-page" } else sim
    { sim with
        Queries = query :: sim.Queries
        AppendsSinceCursorlessPoll = 0 }

/// Non-echo rows not surfaced yet.
let unsurfaced (sim: Sim) =
    sim.Platform.Rows |> List.filter (fun r -> not (isEchoKind r.Kind) && not (sim.SurfacedIds.Contains r.Id))

/// A replay with since_secs can only recover rows that are among the newest page of its window.
let replayCanRecover (sim: Sim) =
    let p = sim.Platform
    let window =
        p.Rows
        |> List.filter (fun r -> not (p.Pruned.Contains r.Id) && r.At >= p.Now - 600_000L)
        |> List.sortByDescending (fun r -> r.At)
        |> List.truncate 90
        |> List.map (fun r -> r.Id)
        |> Set.ofList
    let missing = unsurfaced sim
    missing |> List.forall (fun r -> window.Contains r.Id)
    && List.length sim.Inbox.Queue + List.length missing < Inbox.capacity

let private appendOne kind late format (sim: Sim) =
    // Keep bursts below one page per two seconds, and keep a cursorless inbox within one replay page
    // (the platform API cannot serve more; see the property texts).
    let sim =
        if sim.Inbox.Cursor.IsNone && sim.AppendsSinceCursorlessPoll >= 40 then poll sim else sim
    let p = if recentCount sim.Platform >= 40 then advance 2001L sim.Platform else sim.Platform
    let p', row = append kind late format p
    let events =
        [ if p.Rows |> List.exists (fun r -> r.At > row.At) then "late-commit"
          if p.Rows |> List.exists (fun r -> r.At = row.At) then "equal-timestamps" ]
    let p = p'
    { sim with
        Events = Set.union sim.Events (Set.ofList events)
        Platform = p
        AppendsSinceCursorlessPoll = sim.AppendsSinceCursorlessPoll + (if sim.Inbox.Cursor.IsNone then 1 else 0) }

let step (before: Sim) (op: Op) : Sim =
    let sim = before
    let sim =
        match op with
        | Append(kind, late, format) -> appendOne kind late format sim
        | Burst(count, kind) ->
            List.fold
                (fun s i ->
                    let s = appendOne kind (int64 (i % 3) * 400L) (i % 3) s
                    { s with Platform = advance (int64 (i % 4) * 150L) s.Platform })
                sim
                [ 1..count ]
        | Advance ms -> { sim with Platform = advance ms sim.Platform }
        | Poll -> poll sim
        | Duplicate ->
            match sim.LastResponse with
            | Some r -> applyResponse r { sim with Events = sim.Events.Add "duplicate" }
            | None -> sim
        | Overlap back ->
            // onPoll answers pollQuery of the current state: an overlapping poll can only be a
            // since_id poll from an older cursor while the inbox has a cursor.
            match List.tryItem back sim.Queries, sim.Inbox.Cursor with
            | Some(SinceId _ as query), Some _ ->
                match serve query sim.Platform with
                | Reply(410, _) -> sim // a stale cursor's 410 is not what the host would act on
                | response -> applyResponse response { sim with Events = sim.Events.Add "overlap" }
            | _ -> sim
        | PruneCursor ->
            match sim.Inbox.Cursor with
            | Some c when replayCanRecover sim ->
                let sim = { sim with Platform = prune c sim.Platform; Events = sim.Events.Add "prune" }
                let sim = poll sim
                poll sim
            | _ -> sim
        | PopHead ->
            match Inbox.head sim.Inbox with
            | Some m ->
                let inbox, _, _ = Inbox.pop m.ActivityId sim.Inbox
                { sim with Inbox = inbox; Popped = sim.Popped.Add m.ActivityId }
            | None -> sim
        | PopNth n ->
            match List.tryItem (n % max 1 (List.length sim.Inbox.Queue)) sim.Inbox.Queue with
            | Some m ->
                let inbox, _, _ = Inbox.pop m.ActivityId sim.Inbox
                { sim with Inbox = inbox; Popped = sim.Popped.Add m.ActivityId }
            | None -> sim
        | PopUnknown ->
            let inbox, _, _ = Inbox.pop "not-a-queued-id" sim.Inbox
            { sim with Inbox = inbox }
        | Restart -> { sim with Inbox = Inbox.restore (Some(Inbox.snapshot sim.Inbox)) None; Events = sim.Events.Add "restart" }
        | Fail response -> applyResponse response sim
    check before sim

/// Pops everything and polls (letting time settle) until a round brings nothing new and the cursor
/// stays where it is.
let drain (sim: Sim) =
    let rec go (sim: Sim) rounds =
        let sim = sim.Inbox.Queue |> List.fold (fun s _ -> step s PopHead) sim
        let before = List.length sim.Surfaced, sim.Inbox.Cursor
        let sim = step (step sim (Advance 3000L)) Poll
        let quiet = (List.length sim.Surfaced, sim.Inbox.Cursor) = before && sim.Inbox.Queue.IsEmpty
        if quiet || rounds = 0 then sim else go sim (rounds - 1)
    go sim 60
