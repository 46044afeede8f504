/// The inbox of one workspace as a ledger (a decider: facts in, events out, `evolve` folds them): which messages
/// are waiting, which were handled, where the next `since_id` poll starts and how far the platform may be told
/// that everything is handled. Pure; `Journal` makes every event durable before the agent reports it.
module Molecule.Core.Ledger

open System
open Molecule.Protocol

/// Unread messages intake takes before it pauses (the platform keeps the rest behind the cursor).
let capacity = 1000

/// Delivered ids remembered for de-duplication (oldest forgotten first). Rows at or below the acknowledged
/// `seq` floor are recognised without it.
let seenCapacity = 20_000

/// Rows younger than this (relative to the newest row of a batch) stay behind the cursor, so that rows sharing a
/// timestamp or committed a little late are fetched again (and de-duplicated) instead of skipped by a platform
/// that compares `created_at` alone.
let cursorLagSecs = 2.0

/// Queue order: created_at instant (unparsable last), seq, created_at text, id.
type Key = int64 * int64 * string * string

type State =
    { WorkspaceId: WorkspaceId
      /// Id of the row the next `since_id` poll starts after; None → a replay of the recent window.
      Cursor: string option
      Queue: Map<Key, InboxMessage>
      Keys: Map<string, Key>
      /// Delivered ids (a set, bounded by `seenCapacity`) and their delivery order.
      Seen: Set<string>
      SeenOrder: Map<int64, string>
      SeenNext: int64
      /// The platform's stored `last_acked_seq`, as last confirmed.
      Floor: int64 option
      /// The highest `seq` intake has taken (delivered or skipped).
      Horizon: int64 option
      /// The newest row time (platform clock, UTC ticks) intake has taken: a row created after it was never taken
      /// here, so no number can say it was handled.
      Newest: int64 option }

type Take =
    { Messages: InboxMessage list
      /// The new cursor; None keeps the current one.
      Cursor: string option
      Horizon: int64 option
      /// The newest row time of the batch, when it is newer than the ledger's.
      Newest: int64 option }

type Event =
    /// One batch of rows taken: messages queued, cursor moved.
    | Took of Take
    | Popped of activityId: string
    /// The platform confirmed its `last_acked_seq`.
    | Acked of floor: int64
    /// The cursor row is gone (410): the next poll replays.
    | CursorLost
    /// The platform's numbers were shown wrong (they went back, or a floor above every number it has shown): the
    /// floor is forgotten and the horizon starts again from the numbers the platform shows now.
    | Rebased of horizon: int64 option

let empty (workspaceId: WorkspaceId) : State =
    { WorkspaceId = workspaceId
      Cursor = None
      Queue = Map.empty
      Keys = Map.empty
      Seen = Set.empty
      SeenOrder = Map.empty
      SeenNext = 0L
      Floor = None
      Horizon = None
      Newest = None }

let keyOf (m: InboxMessage) : Key =
    let ticks =
        match Activity.parseTime m.CreatedAt with
        | Some t -> t.UtcTicks
        | None -> Int64.MaxValue
    (ticks, defaultArg m.Seq 0L, m.CreatedAt, m.ActivityId)

let private maxOpt (a: int64 option) (b: int64 option) =
    match a, b with
    | Some x, Some y -> Some(max x y)
    | Some _, None -> a
    | None, _ -> b

/// Records an id as delivered (the oldest is forgotten beyond `seenCapacity`).
let remember (id: string) (s: State) : State =
    if s.Seen.Contains id then
        s
    else
        let s =
            { s with
                Seen = s.Seen.Add id
                SeenOrder = s.SeenOrder.Add(s.SeenNext, id)
                SeenNext = s.SeenNext + 1L }
        if s.Seen.Count <= seenCapacity then
            s
        else
            let first = Seq.head s.SeenOrder
            let n, oldest = first.Key, first.Value
            { s with
                Seen = s.Seen.Remove oldest
                SeenOrder = s.SeenOrder.Remove n }

/// The remembered key of an uploaded file: a second row naming the same file is the same upload.
let fileKey (fileId: string) = "file:" + fileId

let private enqueue (s: State) (m: InboxMessage) : State =
    if s.Keys.ContainsKey m.ActivityId then
        s
    else
        let k = keyOf m
        let s = remember m.ActivityId { s with Queue = s.Queue.Add(k, m); Keys = s.Keys.Add(m.ActivityId, k) }
        match Uploads.decode m with
        | Some p -> remember (fileKey p.Upload.FileId) s
        | None -> s

let evolve (s: State) (event: Event) : State =
    match event with
    | Took t ->
        let s = t.Messages |> List.fold enqueue s
        { s with
            Cursor = (match t.Cursor with Some _ -> t.Cursor | None -> s.Cursor)
            Horizon = maxOpt s.Horizon t.Horizon
            Newest = maxOpt s.Newest t.Newest }
    | Popped id ->
        match s.Keys.TryFind id with
        | Some k -> remember id { s with Queue = s.Queue.Remove k; Keys = s.Keys.Remove id }
        | None -> s
    | Acked floor -> { s with Floor = maxOpt s.Floor (Some floor) }
    | CursorLost -> { s with Cursor = None }
    | Rebased horizon -> { s with Floor = None; Horizon = horizon }

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// The messages the agent sees: everything waiting but the files still being fetched (Uploads).
let private visible (s: State) = s.Queue |> Seq.map (fun kv -> kv.Value) |> Seq.filter (Uploads.isPending >> not)

let count (s: State) = Seq.length (visible s)

let head (s: State) : InboxMessage option = Seq.tryHead (visible s)

/// The oldest `limit` waiting messages.
let peek (limit: int) (s: State) : InboxMessage list =
    if limit <= 0 then [] else visible s |> Seq.truncate limit |> List.ofSeq

/// Uploaded files not yet announced to the agent (hidden messages, oldest first).
let pendingUploads (s: State) : InboxMessage list =
    s.Queue |> Seq.map (fun kv -> kv.Value) |> Seq.filter Uploads.isPending |> List.ofSeq

let contains (activityId: string) (s: State) = not (isNull activityId) && s.Keys.ContainsKey activityId

let room (s: State) = max 0 (capacity - s.Queue.Count)

// ---------------------------------------------------------------------------------------------
// Deciding
// ---------------------------------------------------------------------------------------------

let kindName (kind: MessageKind) =
    match kind with
    | CanvasUser -> "canvas_user"
    | PeerAgent -> "peer_agent"
    | DelegationResult -> "delegation_result"
    | RequestUpdate _ -> "request_update"

/// Our own echoes: the notify row written by send_message_to_user (no source) and the a2a_receive row that
/// delegate_task reports about ourselves (source = own id, not a delegate_result).
let isEcho (self: WorkspaceId) (row: Activity.Row) : bool =
    (String.Equals(row.Method, "notify", StringComparison.OrdinalIgnoreCase) && row.SourceId = "")
    || (WorkspaceId.names self row.SourceId
        && not (String.Equals(row.Method, "delegate_result", StringComparison.OrdinalIgnoreCase)))

let private isMethod (name: string) (row: Activity.Row) =
    String.Equals(row.Method, name, StringComparison.OrdinalIgnoreCase)

/// The message of a row: an uploaded file is kept hidden until it is on disk (Uploads); a delegation's answer names
/// the peer that answered (the target when the row is written on this workspace's own behalf).
let messageOf (self: WorkspaceId) (row: Activity.Row) : InboxMessage =
    match row.Upload with
    | Some upload when isMethod Activity.uploadMethod row -> Uploads.hidden row upload
    | _ ->
        let result = isMethod Activity.delegationResultMethod row
        let peer = if result && WorkspaceId.names self row.SourceId then row.TargetId else row.SourceId
        let update = if isMethod RequestUpdate.method row then row.Update else None
        { ActivityId = row.Id
          Seq = row.Seq
          Text = row.Text
          PeerId = peer
          Kind =
            match update with
            | Some u -> RequestUpdate u
            | None -> if result then DelegationResult elif peer <> "" then PeerAgent else CanvasUser
          Method = row.Method
          CreatedAt = row.CreatedAt
          PeerName = row.PeerName
          PeerRole = row.PeerRole
          AgentCardUrl = row.AgentCardUrl }

/// What intake does with one readable row.
type Verdict =
    /// A new message for the agent.
    | Deliver
    /// Nothing to deliver (an echo, already delivered, or at/below the acknowledged floor).
    | Handled

/// True when this ledger already has the row with this id: waiting in the queue, or delivered before.
let knows (s: State) (id: string) : bool = s.Seen.Contains id || s.Keys.ContainsKey id

/// The file of an upload row, when it names one.
let private fileOf (row: Activity.Row) =
    match row.Upload with
    | Some u when isMethod Activity.uploadMethod row -> Some u.FileId
    | _ -> None

/// The floor speaks only for rows the ids cannot: rows no newer than the newest row this ledger has taken (those it
/// may have handled and forgotten, or that a lost ledger handled) — and never above the highest number it has taken.
/// A row created after everything taken here was never handled here, whatever its number says.
let coveredBy (s: State) (seq: int64 option) (at: DateTimeOffset option) : bool =
    match seq, s.Floor with
    | Some q, Some f ->
        let f = match s.Horizon with Some h -> min f h | None -> f
        let older =
            match s.Newest, at with
            | Some newest, Some at -> at.UtcTicks <= newest
            | _ -> true
        q <= f && older
    | _ -> false

let floorCovers (s: State) (row: Activity.Row) : bool = coveredBy s row.Seq row.At

let verdict (s: State) (row: Activity.Row) : Verdict =
    if isEcho s.WorkspaceId row then Handled
    // An upload row without a file to fetch has nothing for the agent.
    elif isMethod Activity.uploadMethod row && row.Upload.IsNone then Handled
    elif knows s row.Id then Handled
    // A second row naming a file already taken is the same upload.
    elif (match fileOf row with Some f -> knows s (fileKey f) | None -> false) then Handled
    elif floorCovers s row then Handled
    else Deliver

/// A row of a batch: readable, or skipped (with its id when it has one).
type Item =
    | Readable of Activity.Row
    /// A row the ledger already has (`knows`), read no further than its stamp: handled, like its whole reading.
    | Known of Activity.Stamp
    | Unreadable of Activity.Skipped

let itemId (item: Item) =
    match item with
    | Readable r -> Some r.Id
    | Known k -> Some k.Id
    | Unreadable s -> s.Id

let itemTime (item: Item) =
    match item with
    | Readable r -> r.At
    | Known k -> k.At
    | Unreadable k -> k.At

let itemSeq (item: Item) =
    match item with
    | Readable r -> r.Seq
    | Known k -> k.Seq
    | Unreadable k -> k.Seq

/// The floor speaks for this row (see `coveredBy`).
let itemCovered (s: State) (item: Item) = coveredBy s (itemSeq item) (itemTime item)

/// Takes a batch of rows given oldest first (as `since_id` returns them, or a replay sorted so): delivers the
/// new ones while there is room, and moves the cursor as far as it safely can — never past a row it could not
/// take (that row is fetched again once there is room), lagging `cursorLagSecs` behind the newest row, but
/// always at least onto the first row when there was no cursor, and always forward on a full page.
/// Returns the take (None when nothing changes) and whether rows were held back for lack of room.
let take (pageFull: bool) (items: Item list) (s: State) : Take option * bool =
    // a batch that names one file twice delivers it once
    let fileSeen (seen: Set<string>) (row: Activity.Row) = match fileOf row with Some f -> seen.Contains(fileKey f) | None -> false
    let rec walk (room: int) (accepted: Item list) (delivered: InboxMessage list) (seen: Set<string>) (rest: Item list) =
        match rest with
        | [] -> List.rev accepted, List.rev delivered, false
        | item :: tail ->
            match item with
            | Readable row when verdict s row = Deliver && not (seen.Contains row.Id) && not (fileSeen seen row) ->
                if room <= 0 then
                    List.rev accepted, List.rev delivered, true
                else
                    let seen = match fileOf row with Some f -> (seen.Add row.Id).Add(fileKey f) | None -> seen.Add row.Id
                    walk (room - 1) (item :: accepted) (messageOf s.WorkspaceId row :: delivered) seen tail
            | _ -> walk room (item :: accepted) delivered seen tail
    let accepted, delivered, held = walk (room s) [] [] Set.empty items
    let withIds = accepted |> List.choose (fun i -> itemId i |> Option.map (fun id -> id, itemTime i))
    let newest = items |> List.choose itemTime |> List.fold (fun acc t -> maxOpt acc (Some t.UtcTicks)) None
    let settled =
        match newest with
        | Some n ->
            let limit = n - int64 (cursorLagSecs * float TimeSpan.TicksPerSecond)
            withIds |> List.filter (fun (_, t) -> match t with Some t -> t.UtcTicks <= limit | None -> false) |> List.tryLast
        | None -> None
    let cursor =
        match settled with
        | Some(id, _) -> Some id
        | None when (pageFull || held) && not withIds.IsEmpty -> Some(fst (List.last withIds))
        | None when s.Cursor.IsNone && not withIds.IsEmpty -> Some(fst (List.head withIds))
        | None -> None
    let cursor = if cursor = s.Cursor then None else cursor
    let horizon = accepted |> List.choose itemSeq |> List.fold (fun acc q -> maxOpt acc (Some q)) None
    let horizon = match horizon, s.Horizon with Some h, Some old when h <= old -> None | _ -> horizon
    let latest = accepted |> List.choose itemTime |> List.fold (fun acc t -> maxOpt acc (Some t.UtcTicks)) None
    let latest = match latest, s.Newest with Some n, Some old when n <= old -> None | _ -> latest
    if delivered.IsEmpty && cursor.IsNone && horizon.IsNone && latest.IsNone then
        None, held
    else
        Some { Messages = Uploads.grouped delivered; Cursor = cursor; Horizon = horizon; Newest = latest }, held

/// Evidence that the platform's numbering went back (restored from a backup, say): a row created clearly after the
/// newest row this ledger has taken (more than `cursorLagSecs`, what late commits may differ by), whose `seq` is no
/// higher than the highest this ledger has taken. Returns that row's seq and the horizon it undercuts.
let rewound (s: State) (items: Item list) : (int64 * int64) option =
    match s.Newest, s.Horizon with
    | Some newest, Some horizon ->
        let slack = int64 (cursorLagSecs * float TimeSpan.TicksPerSecond)
        items
        |> List.tryPick (fun i ->
            match itemTime i, itemSeq i with
            | Some at, Some q when at.UtcTicks > newest + slack && q <= horizon -> Some(q, horizon)
            | _ -> None)
    | _ -> None

/// The event of handling one message, if it is waiting.
let pop (activityId: string) (s: State) : Event option =
    if contains activityId s then Some(Popped activityId) else None

/// The `seq` the platform may be told is handled now: everything taken up to it was delivered and popped, or
/// needed no delivery. Never above a waiting message, never above what intake has seen. None when there is
/// nothing new to acknowledge (or the platform gives no `seq`).
let ackTarget (s: State) : int64 option =
    match s.Horizon with
    | None -> None
    | Some horizon ->
        let lowestWaiting =
            s.Queue |> Seq.choose (fun kv -> kv.Value.Seq) |> Seq.fold (fun acc q -> Some(min q (defaultArg acc q))) None
        let target =
            match lowestWaiting with
            | Some q -> min horizon (q - 1L)
            | None -> horizon
        if target > defaultArg s.Floor 0L then Some target else None
