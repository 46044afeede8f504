/// How the inbox fetches: `since_id` pages while they are full; without a cursor (first start, lost state, 410) a
/// replay that pages back through the whole window with `before_ts` — reading the platform's acknowledged floor
/// first, so that every retained row above it is taken however old; at most one fetch in flight, triggers that
/// arrive meanwhile coalesced into one more. A doorbell ring reads only what came after the newest row this process
/// has taken; the timer's sweep reads from the (lagging) cursor, so rows committed late are still found. Transient
/// (nothing here is persisted) and pure.
module Molecule.Core.Intake

open System
open System.Globalization
open Molecule.Protocol

/// Rows asked for per page (the platform's maximum).
let pageLimit = 500

/// The platform keeps rows at most 30 days; a replay with a known floor looks that far back.
let maxWindowSecs = 2_592_000

/// A failure Warning is logged on the 1st consecutive failure and then on every n-th.
let failureLogEvery = 60

type AckSupport =
    | Unknown
    | Supported
    | Unsupported

type Replay =
    { Window: int
      /// `before_ts` of the next page; None for the first (newest) page.
      Before: string option
      /// Rows gathered so far, oldest first (see `gather` for the bound).
      Items: Ledger.Item list
      Ids: Set<string>
      /// Newer deliverable rows were dropped for lack of room: `since_id` fetches them once there is room.
      Truncated: bool }

type Phase =
    | Following
    /// `POST …/activity/ack {"acked_seq":0}` in flight: learning the floor before a replay.
    | LearningFloor
    | Replaying of Replay

/// What asks for a fetch.
type Trigger =
    /// The timer, a start, room made by a pop: read from the cursor, which lags `Ledger.cursorLagSecs` behind the
    /// newest row — the sweep that finds rows committed late (created before rows already read).
    | Sweep
    /// The event stream rang (or a fetch follows one): read from the newest row this process has taken. Such a
    /// fetch never moves the cursor, so no late row can fall behind it.
    | Ring

type State =
    { Phase: Phase
      InFlight: bool
      /// The fetch in flight reads from `Head` (a ring's), not from the cursor.
      Quick: bool
      /// The newest row taken while following, when nothing was held back: where a ring's fetch starts.
      Head: string option
      /// A trigger (timer, doorbell, a pop that made room) arrived while a fetch was in flight.
      Again: bool
      /// A sweep was asked for while a fetch was in flight (or intake was paused): the next fetch is one.
      SweepOwed: bool
      Failures: int
      /// Rows skipped because they could not be read, since start.
      Skipped: int64
      Ack: AckSupport
      /// The `acked_seq` of an acknowledgement in flight.
      AckInFlight: int64 option
      Paused: bool }

let private replay (window: int) =
    Replaying
        { Window = window
          Before = None
          Items = []
          Ids = Set.empty
          Truncated = false }

/// Where intake begins for a ledger: follow its cursor, or replay (learning the floor first when the platform may
/// keep acknowledgements and the ledger does not know the floor yet).
let private phaseFor (replaySecs: int) (ack: AckSupport) (ledger: Ledger.State) =
    match ledger.Cursor, ack, ledger.Floor with
    | Some _, _, _ -> Following
    | None, Unsupported, _ -> replay replaySecs
    | None, _, Some _ -> replay maxWindowSecs
    | None, _, None -> LearningFloor

let start (replaySecs: int) (ledger: Ledger.State) : State =
    { Phase = phaseFor replaySecs Unknown ledger
      InFlight = false
      Quick = false
      Head = None
      Again = false
      SweepOwed = false
      Failures = 0
      Skipped = 0L
      Ack = Unknown
      AckInFlight = None
      Paused = false }

/// The request of the next fetch, or None when one is in flight (the trigger is then remembered) or intake is
/// paused for lack of room.
let nextFor (trigger: Trigger) (cfg: Config) (ledger: Ledger.State) (s: State) : State * Request option =
    let sweep = trigger = Sweep || s.SweepOwed
    if s.InFlight then
        { s with Again = true; SweepOwed = sweep }, None
    elif s.Paused && Ledger.room ledger = 0 then
        { s with SweepOwed = sweep }, None
    else
        let quick, request =
            match s.Phase, ledger.Cursor, s.Head with
            | Following, Some _, Some head when not sweep -> true, Api.activity cfg (SinceId(head, pageLimit))
            | Following, Some cursor, _ -> false, Api.activity cfg (SinceId(cursor, pageLimit))
            | Following, None, _ -> false, Api.activity cfg (Window(cfg.ReplaySecs, None, pageLimit))
            | LearningFloor, _, _ -> false, Api.ack cfg 0L
            | Replaying r, _, _ -> false, Api.activity cfg (Window(r.Window, r.Before, pageLimit))
        { s with InFlight = true; Again = false; Quick = quick; SweepOwed = false }, Some request

/// The request of the next sweep (see `nextFor`).
let next (cfg: Config) (ledger: Ledger.State) (s: State) : State * Request option = nextFor Sweep cfg ledger s

/// What one fetch answer changes.
type Outcome =
    { Intake: State
      Events: Ledger.Event list
      Effects: Effect list
      /// Fetch again at once (a full page, a replay page to follow, a trigger that arrived meanwhile).
      FetchNow: bool }

let private fmt (n: int64) = n.ToString(CultureInfo.InvariantCulture)

let private clip (n: int) (text: string) =
    let t = if isNull text then "" else text
    if t.Length <= n then t else t.Substring(0, n) + "…"

let private settle (s: State) (events: Ledger.Event list) (effects: Effect list) (more: bool) : Outcome =
    let recovered =
        if s.Failures > 0 then [ Log(Info, $"inbox polling recovered after {fmt (int64 s.Failures)} failed poll(s)") ] else []
    { Intake = { s with InFlight = false; Quick = false; Failures = 0; Again = false }
      Events = events
      Effects = recovered @ effects
      FetchNow = more || s.Again }

let private failed (s: State) (reason: string) : Outcome =
    let n = s.Failures + 1
    let logs =
        if n = 1 || n % failureLogEvery = 0 then [ Log(Warning, $"inbox poll failed ({fmt (int64 n)} in a row): {reason}") ] else []
    { Intake = { s with InFlight = false; Quick = false; Failures = n; Again = false }
      Events = []
      Effects = logs
      FetchNow = false }

let private describe (what: string) (response: Response) =
    match response with
    | Reply(status, body) -> $"HTTP {status.ToString(CultureInfo.InvariantCulture)} from {what}: {clip 200 body}"
    | TransportError message -> $"{what} request failed: {message}"
    | TimedOut secs -> $"{what} request timed out after {secs.ToString(CultureInfo.InvariantCulture)} s"

/// The rows of a page as ledger items, oldest first, and log lines for the unreadable ones. A row the ledger
/// already has is read no further than its stamp: the cursor lags behind the newest row, so every fetch sees the
/// last seconds' rows again, and reading each whole again is most of what a busy inbox costs.
let private itemsOf (ledger: Ledger.State) (s: State) (rows: Text.Json.Nodes.JsonNode list) : Ledger.Item list * State * Effect list =
    let items =
        rows
        |> List.map (fun r ->
            match Activity.stampOf r with
            | Some stamp when Ledger.knows ledger stamp.Id -> Ledger.Known stamp
            | _ ->
                match Activity.parseRow r with
                | Ok row -> Ledger.Readable row
                | Result.Error skip -> Ledger.Unreadable skip)
    let skipped = items |> List.choose (function Ledger.Unreadable k -> Some k | _ -> None)
    let s = { s with Skipped = s.Skipped + int64 skipped.Length }
    let logs =
        skipped
        |> List.mapi (fun i k ->
            let id = defaultArg k.Id "(no id)"
            Log(Warning, $"inbox: skipped activity row {id}: {k.Reason} ({fmt (s.Skipped - int64 skipped.Length + int64 i + 1L)} skipped since start)"))
    let key (item: Ledger.Item) =
        ((match Ledger.itemTime item with Some t -> t.UtcTicks | None -> Int64.MaxValue),
         defaultArg (Ledger.itemSeq item) 0L,
         defaultArg (Ledger.itemId item) "")
    List.sortBy key items, s, logs

let private pauseLogs (before: State) (paused: bool) =
    if paused && not before.Paused then
        [ Log(Warning, $"inbox full ({Ledger.capacity.ToString(CultureInfo.InvariantCulture)} unread) — pausing intake until messages are popped with inbox_pop") ]
    elif before.Paused && not paused then
        [ Log(Info, "inbox has room again — intake resumed") ]
    else
        []

/// The id of the newest row of a batch (oldest first): where a ring's fetch reads on from.
let private newestId (items: Ledger.Item list) = items |> List.choose Ledger.itemId |> List.tryLast

let private takeEvents (take: Ledger.Take option) =
    match take with
    | Some t -> [ Ledger.Took t ]
    | None -> []

let private isDeliverable (ledger: Ledger.State) (item: Ledger.Item) =
    match item with
    | Ledger.Readable row -> Ledger.verdict ledger row = Ledger.Deliver
    | Ledger.Known _
    | Ledger.Unreadable _ -> false

/// Adds an older page to a replay: de-duplicated by id, oldest first; at most `room` deliverable rows (the newest
/// beyond are dropped) and at most `room + pageLimit` rows in all (the oldest handled rows are dropped first).
let private gather (ledger: Ledger.State) (r: Replay) (page: Ledger.Item list) : Replay * int =
    let fresh =
        page |> List.filter (fun i -> match Ledger.itemId i with Some id -> not (r.Ids.Contains id) | None -> true)
    let ids = fresh |> List.fold (fun (acc: Set<string>) i -> match Ledger.itemId i with Some id -> acc.Add id | None -> acc) r.Ids
    let items = fresh @ r.Items
    let room = Ledger.room ledger
    let rec keep (n: int) (acc: Ledger.Item list) (xs: Ledger.Item list) =
        match xs with
        | [] -> List.rev acc, false
        | x :: rest when isDeliverable ledger x ->
            if n >= room then List.rev acc, true else keep (n + 1) (x :: acc) rest
        | x :: rest -> keep n (x :: acc) rest
    let kept, truncated = keep 0 [] items
    let excess = kept.Length - (room + pageLimit)
    let kept =
        if excess <= 0 then kept
        else
            let rec dropHandled (k: int) (acc: Ledger.Item list) (xs: Ledger.Item list) =
                match xs with
                | [] -> List.rev acc
                | x :: rest when k > 0 && not (isDeliverable ledger x) -> dropHandled (k - 1) acc rest
                | x :: rest -> dropHandled k (x :: acc) rest
            dropHandled excess [] kept
    { r with Items = kept; Ids = ids; Truncated = r.Truncated || truncated }, fresh.Length

let private oneMicrosecondAfter (items: Ledger.Item list) : string option =
    items |> List.tryPick Ledger.itemTime |> Option.map (fun t -> Activity.formatTime (t.AddTicks 10L))

let private onActivity (cfg: Config) (response: Response) (ledger: Ledger.State) (s: State) : Outcome =
    match response with
    | Reply(410, _) when s.Quick ->
        // The newest row read is gone already: read from the cursor instead.
        settle { s with Head = None } [] [] true
    | Reply(410, _) when s.Phase = Following ->
        let phase = phaseFor cfg.ReplaySecs s.Ack (Ledger.evolve ledger Ledger.CursorLost)
        let window = match phase with Replaying r -> r.Window | _ -> cfg.ReplaySecs
        let note =
            match phase with
            | LearningFloor -> "reading the platform's acknowledged position, then replaying every newer message"
            | _ -> $"replaying the last {fmt (int64 window)} s"
        settle { s with Phase = phase; Head = None } [ Ledger.CursorLost ] [ Log(Info, $"inbox cursor expired (410); {note}") ] true
    | Reply(status, body) when status >= 200 && status < 300 ->
        match Activity.parsePage body with
        | Result.Error reason -> failed s $"HTTP {status.ToString(CultureInfo.InvariantCulture)} from /activity: {reason}: {clip 200 body}"
        | Ok rows ->
            let items, s, logs = itemsOf ledger s rows
            let pageFull = rows.Length >= pageLimit
            match s.Phase with
            | Replaying r ->
                let r, freshCount = gather ledger r items
                let allBelowFloor =
                    match ledger.Floor with
                    | Some f ->
                        items |> List.forall (fun i -> match Ledger.itemSeq i with Some q -> q <= f | None -> false)
                    | None -> false
                let oldest = items |> List.tryPick Ledger.itemTime
                let exactly = oldest |> Option.map Activity.formatTime
                let exhausted = not pageFull || allBelowFloor || (freshCount = 0 && r.Before = exactly)
                if not exhausted && freshCount = 0 then
                    // More than a page of rows share one timestamp: `before_ts` (strict) cannot page through them.
                    let instant = defaultArg exactly "?"
                    let note =
                        Log(Warning, $"inbox replay: more than {pageLimit.ToString(CultureInfo.InvariantCulture)} rows share the timestamp {instant}; rows of that instant beyond one page cannot be fetched")
                    settle { s with Phase = Replaying { r with Before = exactly } } [] (logs @ [ note ]) true
                elif not exhausted then
                    settle { s with Phase = Replaying { r with Before = oneMicrosecondAfter items } } [] logs true
                else
                    let take, held = Ledger.take r.Truncated r.Items ledger
                    let events = takeEvents take
                    let after = events |> List.fold Ledger.evolve ledger
                    let phase = if after.Cursor.IsSome then Following else replay r.Window
                    let paused = held || r.Truncated
                    // The replay read up to the newest row: rings read on from there (unless rows were held back).
                    let head = if paused || phase <> Following then None else newestId r.Items
                    settle { s with Phase = phase; Paused = paused; Head = head } events (logs @ pauseLogs s paused) (after.Cursor.IsSome && not paused)
            | _ ->
                let take, held = Ledger.take pageFull items ledger
                // A ring's fetch saw only rows after the head: rows committed late may still sort before those, so
                // it leaves the cursor where it is and raises no acknowledgement (an ack past such a row would mark
                // it handled); the sweep does both.
                let take =
                    match take with
                    | Some t when s.Quick ->
                        if t.Messages.IsEmpty then None else Some { t with Cursor = None; Horizon = None }
                    | t -> t
                // Everything up to the newest row was taken unless rows were held back for lack of room.
                let head = if held then None else newestId items |> Option.orElse s.Head
                settle { s with Phase = Following; Paused = held; Head = head } (takeEvents take) (logs @ pauseLogs s held) (pageFull && not held)
    | other -> failed s (describe "/activity" other)

let private onFloor (cfg: Config) (response: Response) (ledger: Ledger.State) (s: State) : Outcome =
    match response with
    | Reply(status, body) when status >= 200 && status < 300 ->
        match Json.tryParse body |> Option.bind (Json.prop "last_acked_seq") |> Option.bind Json.asFloat with
        | Some f when f >= 0.0 ->
            let floor = int64 f
            let events = if Some floor > ledger.Floor then [ Ledger.Acked floor ] else []
            settle { s with Phase = replay maxWindowSecs; Ack = Supported } events [] true
        | _ -> failed s $"the acknowledgement answer has no last_acked_seq: {clip 200 body}"
    | Reply(status, _) when status = 404 || status = 405 || status = 501 ->
        let note =
            $"the platform keeps no acknowledgements (HTTP {status.ToString(CultureInfo.InvariantCulture)} from /activity/ack); replaying the last {fmt (int64 cfg.ReplaySecs)} s"
        settle { s with Phase = replay cfg.ReplaySecs; Ack = Unsupported } [] [ Log(Info, note) ] true
    | other -> failed s (describe "/activity/ack" other)

/// Folds the answer of the fetch in flight.
let onResponse (cfg: Config) (response: Response) (ledger: Ledger.State) (s: State) : Outcome =
    match s.Phase with
    | LearningFloor -> onFloor cfg response ledger s
    | _ -> onActivity cfg response ledger s

// ---------------------------------------------------------------------------------------------
// Acknowledgements of handled messages
// ---------------------------------------------------------------------------------------------

/// The acknowledgement to send now, if any (none while one is in flight or the platform has none).
let ackRequest (cfg: Config) (ledger: Ledger.State) (s: State) : State * Request option =
    match s.Ack, s.AckInFlight, Ledger.ackTarget ledger with
    | Unsupported, _, _
    | _, Some _, _
    | _, _, None -> s, None
    | _, None, Some target -> { s with AckInFlight = Some target }, Some(Api.ack cfg target)

/// Folds an acknowledgement answer: the confirmed floor, or that the platform has none (404).
let onAck (response: Response) (ledger: Ledger.State) (s: State) : State * Ledger.Event list * Effect list =
    let s' = { s with AckInFlight = None }
    match response with
    | Reply(status, body) when status >= 200 && status < 300 ->
        match Json.tryParse body |> Option.bind (Json.prop "last_acked_seq") |> Option.bind Json.asFloat with
        | Some f when f >= 0.0 && Some(int64 f) > ledger.Floor -> { s' with Ack = Supported }, [ Ledger.Acked(int64 f) ], []
        | _ -> { s' with Ack = Supported }, [], []
    | Reply(status, _) when status = 404 || status = 405 || status = 501 ->
        { s' with Ack = Unsupported }, [], [ Log(Info, "the platform keeps no acknowledgements (/activity/ack answered 404); handled messages are remembered locally only") ]
    | other ->
        let detail = describe "/activity/ack" other
        s', [], [ Log(Debug, $"acknowledgement not recorded: {detail}") ]
