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

/// Failed asks for the floor before a fresh start gives up waiting for it and replays the window instead.
let floorTries = 3

/// The largest number taken as a floor or a seq: integers beyond it do not survive a JSON number exactly.
let maxExactSeq = 9_007_199_254_740_992.0

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
    /// Waiting for the platform's acknowledged floor (asked on the acknowledgement route) before a replay.
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
      /// A sweep was asked for while a fetch was in flight (or intake was paused or waiting): the next fetch is one.
      SweepOwed: bool
      /// The pacing of the fetch route (`GET /activity`): while a retry timer is pending nothing else fetches.
      Fetch: Pacing.State
      /// 410s since the last fetch that read from a cursor successfully: a second one in a row is paced.
      Gone: int
      /// Rows skipped because they could not be read, since start.
      Skipped: int64
      Ack: AckSupport
      /// The `acked_seq` of an acknowledgement in flight (0: asking for the floor).
      AckInFlight: int64 option
      /// The pacing of the acknowledgement route (`POST /activity/ack`), floor questions included.
      AckPace: Pacing.State
      /// Failed asks for the floor in a row while intake waits for it.
      FloorTries: int
      /// The floor could not be learnt at start: intake replayed the recent window instead, and the
      /// acknowledgement route keeps asking for it in the background.
      FloorOwed: bool
      /// The floor was learnt late: the next sweep replays the whole retention window above it.
      ReplayOwed: bool
      /// The highest `acked_seq` the platform took (or that was moot): not sent again.
      AckedUpTo: int64
      /// The user was told that the platform's acknowledged position cannot be right (said once).
      Doubted: bool
      Paused: bool }

let internal replay (window: int) =
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
      Fetch = Pacing.ready
      Gone = 0
      Skipped = 0L
      Ack = Unknown
      AckInFlight = None
      AckPace = Pacing.ready
      FloorTries = 0
      FloorOwed = false
      ReplayOwed = false
      AckedUpTo = 0L
      Doubted = false
      Paused = false }

/// The request of the next fetch, or None when one is in flight (the trigger is then remembered), intake is paused
/// for lack of room, waits for the floor (asked on the acknowledgement route), or waits for its retry timer.
let nextFor (trigger: Trigger) (cfg: Config) (ledger: Ledger.State) (s: State) : State * Request option =
    let sweep = trigger = Sweep || s.SweepOwed
    if s.InFlight then
        { s with Again = true; SweepOwed = sweep }, None
    elif s.Fetch.Waiting || s.Phase = LearningFloor then
        { s with SweepOwed = sweep }, None
    elif s.Paused && Ledger.room ledger = 0 then
        { s with SweepOwed = sweep }, None
    else
        let s =
            match s.Phase with
            | Following when s.ReplayOwed -> { s with Phase = replay maxWindowSecs; ReplayOwed = false }
            | _ -> s
        let quick, request =
            match s.Phase, ledger.Cursor, s.Head with
            | Following, Some _, Some head when not sweep -> true, Api.activity cfg (SinceId(head, pageLimit))
            | Following, Some cursor, _ -> false, Api.activity cfg (SinceId(cursor, pageLimit))
            | Following, None, _ -> false, Api.activity cfg (Window(cfg.ReplaySecs, None, pageLimit))
            | Replaying r, _, _ -> false, Api.activity cfg (Window(r.Window, r.Before, pageLimit))
            // (LearningFloor never fetches: see above) the recent window
            | LearningFloor, _, _ -> false, Api.activity cfg (Window(cfg.ReplaySecs, None, pageLimit))
        { s with InFlight = true; Again = false; Quick = quick; SweepOwed = false }, Some request

/// The request of the next sweep (see `nextFor`).
let next (cfg: Config) (ledger: Ledger.State) (s: State) : State * Request option = nextFor Sweep cfg ledger s

/// The fetch route's retry timer fired: the next sweep may go.
let fetchDue (s: State) : State = { s with Fetch = Pacing.due s.Fetch; SweepOwed = true }

/// What one fetch answer changes.
type Outcome =
    { Intake: State
      Events: Ledger.Event list
      Effects: Effect list
      /// Fetch again at once (a page that made progress, a replay page to follow, a trigger that arrived meanwhile).
      FetchNow: bool }

let internal fmt (n: int64) = n.ToString(CultureInfo.InvariantCulture)

let internal clip (n: int) (text: string) =
    let t = if isNull text then "" else text
    let t = String(t.ToCharArray() |> Array.map (fun c -> if Char.IsControl c then ' ' else c))
    if t.Length <= n then t else t.Substring(0, n) + "…"

/// What the log lines call the fetch route of a workspace.
let private fetchRoute (cfg: Config) = $"inbox polling of workspace {cfg.WorkspaceId.Value} (GET …/activity)"

/// A successful fetch: the route is ready again (`reset`: also after paced 410s).
let private settleWith (cfg: Config) (uptime: float) (reset: bool) (s: State) (events: Ledger.Event list) (effects: Effect list) (more: bool) : Outcome =
    let fetch, recovered = if reset then Pacing.succeeded (fetchRoute cfg) uptime s.Fetch else s.Fetch, []
    { Intake = { s with InFlight = false; Quick = false; Again = false; Fetch = fetch }
      Events = events
      Effects = recovered @ effects
      FetchNow = more || s.Again }

/// A failed fetch: paced — nothing fetches until the retry timer fires (triggers meanwhile make it a sweep).
let private failedWith (cfg: Config) (uptime: float) (sample: float) (s: State) (events: Ledger.Event list) (reason: string) : Outcome =
    let fetch, wait, logs = Pacing.failed Pacing.fetch Warning (fetchRoute cfg) reason uptime sample s.Fetch
    { Intake = { s with InFlight = false; Quick = false; Fetch = fetch; SweepOwed = s.SweepOwed || s.Again; Again = false }
      Events = events
      Effects = logs @ [ After(wait, RetryTimer(cfg.WorkspaceId, Poll)) ]
      FetchNow = false }

let internal describe (what: string) (response: Response) =
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

/// A floor or a seq as the platform wrote it: a whole number from 0 up to what a JSON number carries exactly.
let validSeq (node: Text.Json.Nodes.JsonNode) : int64 option =
    match Json.asNumber node with
    | Some f when f >= 0.0 && f = Math.Floor f && f <= maxExactSeq -> Some(int64 f)
    | _ -> None

let private highest (items: Ledger.Item list) =
    items |> List.choose Ledger.itemSeq |> List.fold (fun acc q -> Some(max q (defaultArg acc q))) None

/// The words for a platform whose numbering went back.
let rewoundText (cfg: Config) (seq: int64) (horizon: int64) =
    $"workspace {cfg.WorkspaceId.Value}: the platform's message numbering went back (a new message is numbered {fmt seq}, but messages up to {fmt horizon} were taken before) — was the platform restored from a backup? Re-reading its messages: those this server has not handled are delivered (recognised by id), and its numbers start again from what it shows now"

/// The words for a floor above every number the platform has shown.
let doubtedText (cfg: Config) (floor: int64) (shown: int64) (action: string) =
    $"workspace {cfg.WorkspaceId.Value}: the platform says every message up to number {fmt floor} is handled, but the highest number it has shown is {fmt shown} — its acknowledged position cannot be right; {action}"

/// After the take of a batch: when the batch shows that the numbering went back, the ledger re-bases onto the
/// numbers shown now (said once per time it happens).
let private rebase (cfg: Config) (ledger: Ledger.State) (items: Ledger.Item list) : Ledger.Event list * Effect list =
    match Ledger.rewound ledger items with
    | Some(q, horizon) -> [ Ledger.Rebased(highest items) ], [ Log(Warning, rewoundText cfg q horizon) ]
    | None -> [], []

/// Where the next replay page starts (`before_ts`): one microsecond after the page's oldest row (its ties are read
/// again), else that row's own instant (when the page brought nothing new, or the microsecond would not reach back).
/// None when neither reaches further back than the last page did — a platform that ignores `before_ts` ends the
/// replay instead of looping.
let private onward (before: string option) (items: Ledger.Item list) (fresh: int) : string option =
    let exactly = items |> List.tryPick Ledger.itemTime |> Option.map Activity.formatTime
    let candidates = if fresh = 0 then [ exactly ] else [ oneMicrosecondAfter items; exactly ]
    let earlier (next: string option) =
        match before, next with
        | Some b, Some n -> (Activity.parseTime n, Activity.parseTime b) ||> Option.map2 (<) = Some true
        | None, Some _ -> true
        | _ -> false
    candidates |> List.tryFind earlier |> Option.flatten

/// The replay has read its window: its rows are taken oldest first — unless a fresh ledger's floor is above every
/// number the platform shows (not taken: the recent window again, said once).
let private finishReplay (cfg: Config) (settle: State -> Ledger.Event list -> Effect list -> bool -> Outcome) (ledger: Ledger.State) (s: State) (r: Replay) (logs: Effect list) : Outcome =
    match ledger.Floor, ledger.Newest, highest r.Items with
    | Some floor, None, Some top when floor > top ->
        let note = doubtedText cfg floor top $"reading the last {fmt (int64 cfg.ReplaySecs)} s instead and recognising handled messages by id"
        settle { s with Phase = replay cfg.ReplaySecs; Doubted = true } [ Ledger.Rebased None ] (logs @ [ Log(Warning, note) ]) true
    | _ ->
        let take, held = Ledger.take r.Truncated r.Items ledger
        let events = takeEvents take
        let rebased, notes = rebase cfg ledger r.Items
        let after = events @ rebased |> List.fold Ledger.evolve ledger
        let phase = if after.Cursor.IsSome then Following else replay r.Window
        let paused = held || r.Truncated
        // The replay read up to the newest row: rings read on from there (unless rows were held back).
        let head = if paused || phase <> Following then None else newestId r.Items
        let s = if rebased.IsEmpty then s else { s with AckedUpTo = 0L }
        settle { s with Phase = phase; Paused = paused; Head = head } (events @ rebased) (logs @ notes @ pauseLogs s paused) (after.Cursor.IsSome && not paused)

let private onReplayPage (cfg: Config) (uptime: float) (ledger: Ledger.State) (s: State) (r: Replay) (items: Ledger.Item list) (pageFull: bool) (logs: Effect list) : Outcome =
    let settle = settleWith cfg uptime (s.Gone = 0)
    let gathered, fresh = gather ledger r items
    // Only rows the floor speaks for can end the paging (a newer row below the floor is a renumbered new one).
    let allBelowFloor = ledger.Floor.IsSome && not items.IsEmpty && items |> List.forall (Ledger.itemCovered ledger)
    match onward r.Before items fresh with
    | Some before when pageFull && not allBelowFloor ->
        let notes =
            if fresh > 0 then []
            else
                // More than a page of rows share one timestamp: `before_ts` (strict) cannot page through them.
                [ Log(Warning, $"inbox replay: more than {pageLimit.ToString(CultureInfo.InvariantCulture)} rows share the timestamp {before}; rows of that instant beyond one page cannot be fetched") ]
        settle { s with Phase = Replaying { gathered with Before = Some before } } [] (logs @ notes) true
    | _ -> finishReplay cfg settle ledger s gathered logs

let private onFollowingPage (cfg: Config) (uptime: float) (ledger: Ledger.State) (s: State) (items: Ledger.Item list) (pageFull: bool) (logs: Effect list) : Outcome =
    let take, held = Ledger.take pageFull items ledger
    // A ring's fetch saw only rows after the head: rows committed late may still sort before those, so it leaves the
    // cursor where it is and raises no acknowledgement (an ack past such a row would mark it handled); the sweep does.
    let take =
        match take with
        | Some t when s.Quick -> if t.Messages.IsEmpty then None else Some { t with Cursor = None; Horizon = None; Newest = None }
        | t -> t
    let rebased, notes = if s.Quick then [], [] else rebase cfg ledger items
    // Everything up to the newest row was taken unless rows were held back for lack of room.
    let head = if held then None else newestId items |> Option.orElse s.Head
    // A full page asks for the next one at once only when it got somewhere: something new, or the cursor or the head
    // moved on (a platform that answers the same full page again is not asked again at once).
    let moved =
        match take with
        | Some t -> not t.Messages.IsEmpty || t.Cursor.IsSome
        | None -> false
    let progress = moved || (s.Quick && head <> s.Head)
    let s = if rebased.IsEmpty then s else { s with AckedUpTo = 0L }
    settleWith cfg uptime true { s with Phase = Following; Paused = held; Head = head; Gone = 0 } (takeEvents take @ rebased) (logs @ notes @ pauseLogs s held) (pageFull && not held && progress)

/// Folds the answer of the fetch in flight (`uptime`: the agent's; `sample`: 0..1 for a retry's jitter).
let onResponse (cfg: Config) (uptime: float) (sample: float) (response: Response) (ledger: Ledger.State) (s: State) : Outcome =
    match response with
    | Reply(410, _) when s.Quick ->
        // The newest row read is gone already: read from the cursor instead.
        settleWith cfg uptime false { s with Head = None } [] [] true
    | Reply(410, body) when s.Phase = Following ->
        let phase = phaseFor cfg.ReplaySecs s.Ack (Ledger.evolve ledger Ledger.CursorLost)
        let window = match phase with Replaying r -> r.Window | _ -> cfg.ReplaySecs
        let note =
            match phase with
            | LearningFloor -> "reading the platform's acknowledged position, then replaying every newer message"
            | _ -> $"replaying the last {fmt (int64 window)} s"
        let s = { s with Phase = phase; Head = None; Gone = s.Gone + 1 }
        if s.Gone = 1 then
            settleWith cfg uptime true s [ Ledger.CursorLost ] [ Log(Info, $"inbox cursor expired (410); {note}") ] true
        else
            // The cursor a replay just found is gone again: the platform is not keeping its rows — paced.
            failedWith cfg uptime sample s [ Ledger.CursorLost ] $"the platform lost the inbox cursor again (HTTP 410: {clip 120 body}); {note}"
    | Reply(status, body) when status >= 200 && status < 300 ->
        match Activity.parsePage body with
        | Result.Error reason -> failedWith cfg uptime sample s [] $"HTTP {status.ToString(CultureInfo.InvariantCulture)} from /activity: {reason}: {clip 200 body}"
        | Ok rows ->
            let items, s, logs = itemsOf ledger s rows
            let pageFull = rows.Length >= pageLimit
            match s.Phase with
            | Replaying r -> onReplayPage cfg uptime ledger s r items pageFull logs
            | _ -> onFollowingPage cfg uptime ledger s items pageFull logs
    | other -> failedWith cfg uptime sample s [] (describe "/activity" other)
