/// The message inbox: platform activity rows → messages, echo filters, exactly-once dedupe, ordering,
/// a bounded queue that pauses intake instead of dropping, the tie-safe cursor and persistence.
/// Pure: the host performs the poll and the file writes described by the returned effects.
module Molecule.Core.Inbox

open Molecule.Protocol

open System
open System.Globalization
open System.Text.Json
open System.Text.Json.Nodes
open System.Text.Json.Serialization
open System.Text.Json.Serialization.Metadata

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// Unread messages the queue holds before intake pauses (never drops).
let capacity = 200

/// How many processed ids the dedupe set remembers (FIFO of the newest).
let seenCapacity = 4096

/// Page size asked of `/activity` (the platform default).
let pageLimit = 100

/// Replay window used when no cursor is known (first start, after a 410).
let replaySecs = 600

/// Rows younger than this (relative to the newest row of a batch) stay behind the cursor so that
/// equal timestamps and late commits (≤ 1 s) are fetched again and deduped instead of lost.
let cursorLagSecs = 2.0

/// A failure Warning is logged on the 1st consecutive failure and then on every n-th.
let failureLogEvery = 60

let stateFileName = ".mcp_inbox_state.json"
let legacyCursorFileName = ".mcp_inbox_cursor"

let private snapshotVersion = 1

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

type State =
    { /// Id of the activity row the next `since_id` poll starts after; None → `since_secs` replay.
      Cursor: string option
      /// Unread messages ordered by (created_at, activity_id); at most `capacity` come from intake while a
      /// cursor can hold the rest back (see `processRows`).
      Queue: InboxMessage list
      /// Ids ever recorded or popped, oldest first, the newest `seenCapacity` kept.
      Seen: string list
      /// Transient (not persisted): consecutive failed polls.
      Failures: int
      /// Transient (not persisted): intake is paused because the queue is full.
      Paused: bool }

let empty =
    { Cursor = None
      Queue = []
      Seen = []
      Failures = 0
      Paused = false }

// ---------------------------------------------------------------------------------------------
// Time keys and ordering
// ---------------------------------------------------------------------------------------------

/// created_at parsed as an instant (invariant culture; a missing offset means UTC, so the result
/// never depends on the machine's time zone). None when unparsable.
let parseTime (createdAt: string) : DateTimeOffset option =
    if String.IsNullOrWhiteSpace createdAt then
        None
    else
        try
            match
                DateTimeOffset.TryParse(
                    createdAt.Trim(),
                    CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal ||| DateTimeStyles.AdjustToUniversal
                )
            with
            | true, t -> Some t
            | _ -> None
        with _ ->
            None

/// Total order of messages: parsable timestamps by instant, unparsable ones after them by text,
/// then activity_id (ordinal).
let private compareKeys (t1: DateTimeOffset option, raw1: string, id1: string) (t2: DateTimeOffset option, raw2: string, id2: string) =
    let c =
        match t1, t2 with
        | Some a, Some b -> compare a.UtcTicks b.UtcTicks
        | Some _, None -> -1
        | None, Some _ -> 1
        | None, None -> String.CompareOrdinal(raw1, raw2)
    if c <> 0 then c else String.CompareOrdinal(id1, id2)

let private keyOf (m: InboxMessage) = (parseTime m.CreatedAt, m.CreatedAt, m.ActivityId)

/// Compares two messages by the queue order.
let compareMessages (a: InboxMessage) (b: InboxMessage) = compareKeys (keyOf a) (keyOf b)

/// Merges new messages into the (sorted) queue; each timestamp is parsed once.
let private mergeSorted (fresh: InboxMessage list) (queue: InboxMessage list) =
    let keyed ms = ms |> List.map (fun m -> keyOf m, m)
    let freshKeyed = keyed fresh |> List.sortWith (fun (a, _) (b, _) -> compareKeys a b)
    let rec merge acc xs ys =
        match xs, ys with
        | [], rest
        | rest, [] -> List.rev acc @ List.map snd rest
        | (kx, x) :: xt, (ky, y) :: yt ->
            if compareKeys kx ky <= 0 then merge (x :: acc) xt ys else merge (y :: acc) xs yt
    merge [] (keyed queue) freshKeyed

// ---------------------------------------------------------------------------------------------
// Rows → messages
// ---------------------------------------------------------------------------------------------

let kindName (kind: MessageKind) =
    match kind with
    | CanvasUser -> "canvas_user"
    | PeerAgent -> "peer_agent"

let private kindOfName (name: string) =
    match name with
    | "canvas_user" -> Some CanvasUser
    | "peer_agent" -> Some PeerAgent
    | _ -> None

let private textField name node =
    Json.prop name node |> Option.bind Json.asScalarText |> Option.defaultValue ""

let private partType (part: JsonNode) =
    match Json.stringProp "kind" part with
    | Some k -> k
    | None -> Json.stringProp "type" part |> Option.defaultValue ""

/// The text lines one part contributes: its text, or an attachment line for a file part.
let private partLines (part: JsonNode) : string list =
    match partType part with
    | "text" ->
        match Json.stringProp "text" part with
        | Some t when t <> "" -> [ t ]
        | _ -> []
    | "file" ->
        let file = Json.prop "file" part
        let field n = file |> Option.bind (Json.stringProp n) |> Option.filter (fun s -> s.Trim() <> "")
        match [ field "name"; field "uri" ] |> List.choose id with
        | [] -> []
        | fields -> [ "[attachment: " + String.Join(" ", fields) + "]" ]
    | _ -> []

let private textOfParts (parts: JsonNode) : string option =
    match Json.asArray parts with
    | None -> None
    | Some items ->
        match items |> List.collect partLines with
        | [] -> None
        | lines -> Some(String.Join("\n", lines))

/// request_body as a JSON object (it may arrive as a JSON string containing JSON).
let private requestBody (row: JsonNode) : JsonNode option =
    match Json.prop "request_body" row with
    | Some(:? JsonObject as o) -> Some(o :> JsonNode)
    | Some body ->
        match Json.asString body |> Option.bind Json.tryParse with
        | Some(:? JsonObject as o) -> Some(o :> JsonNode)
        | _ -> None
    | None -> None

let private textOfRow (row: JsonNode) : string =
    let fromParts =
        requestBody row
        |> Option.bind (fun body ->
            [ [ "params"; "message"; "parts" ]; [ "params"; "parts" ]; [ "parts" ] ]
            |> List.tryPick (fun p -> Json.path p body |> Option.bind textOfParts))
    match fromParts with
    | Some t -> t
    | None ->
        match Json.stringProp "summary" row with
        | Some s when s.Trim() <> "" -> s
        | _ -> "(empty A2A message)"

let private rowId (row: JsonNode) : string option =
    Json.prop "id" row |> Option.bind Json.asScalarText |> Option.filter (fun s -> s.Trim() <> "")

let private messageOfRowUnsafe (row: JsonNode) : InboxMessage option =
    match row with
    | :? JsonObject ->
        rowId row
        |> Option.map (fun id ->
            let peer = textField "source_id" row
            { ActivityId = id
              Text = textOfRow row
              PeerId = peer
              Kind = (if peer <> "" then PeerAgent else CanvasUser)
              Method = textField "method" row
              CreatedAt = textField "created_at" row })
    | _ -> None

/// The inbox message of one activity row; None for rows without a usable id. Never throws.
let messageOfRow (row: JsonNode) : InboxMessage option =
    try
        messageOfRowUnsafe row
    with _ ->
        None

/// Our own echoes: the notify row written by send_message_to_user (no source) and the
/// a2a_receive row delegate_task reports about ourselves (source = own id, not a delegate_result).
let isEcho (selfId: string) (row: JsonNode) : bool =
    try
        let meth = textField "method" row
        let source = (textField "source_id" row).Trim()
        let self = if isNull selfId then "" else selfId.Trim()
        (String.Equals(meth, "notify", StringComparison.OrdinalIgnoreCase) && source = "")
        || (self <> ""
            && String.Equals(source, self, StringComparison.OrdinalIgnoreCase)
            && not (String.Equals(meth, "delegate_result", StringComparison.OrdinalIgnoreCase)))
    with _ ->
        false

let toJson (m: InboxMessage) : JsonObject =
    Json.obj
        [ "activity_id", Json.str m.ActivityId
          "text", Json.str m.Text
          "peer_id", Json.str m.PeerId
          "kind", Json.str (kindName m.Kind)
          "method", Json.str m.Method
          "created_at", Json.str m.CreatedAt ]

// ---------------------------------------------------------------------------------------------
// Persistence (FSharp.SystemTextJson for the persisted record)
// ---------------------------------------------------------------------------------------------

type PersistedMessage =
    { activity_id: string
      text: string
      peer_id: string
      kind: string
      ``method``: string
      created_at: string }

type Persisted =
    { version: int
      cursor: string option
      queue: PersistedMessage list
      seen: string list }

let private jsonOptions =
    let o = JsonSerializerOptions(WriteIndented = false)
    o.Converters.Add(JsonFSharpConverter())
    // Explicit resolver: works also where reflection-based serialization is off by default.
    o.TypeInfoResolver <- DefaultJsonTypeInfoResolver()
    o

let private persistedOf (s: State) : Persisted =
    { version = snapshotVersion
      cursor = s.Cursor
      queue =
        s.Queue
        |> List.map (fun m ->
            { activity_id = m.ActivityId
              text = m.Text
              peer_id = m.PeerId
              kind = kindName m.Kind
              ``method`` = m.Method
              created_at = m.CreatedAt })
      seen = s.Seen }

/// The same document built by hand (System.Text.Json.Nodes); used if the serializer is unavailable.
let snapshotPlain (s: State) : string =
    let p = persistedOf s
    Json.compact (
        Json.obj
            [ "version", Json.num p.version
              "cursor", (match p.cursor with Some c -> Json.str c | None -> Json.nul)
              "queue", Json.arr (s.Queue |> List.map (fun m -> toJson m :> JsonNode))
              "seen", Json.arr (p.seen |> List.map Json.str) ]
    )

/// JSON of {version, cursor, queue, seen}. Transient fields (failure counter, pause flag) are not
/// persisted: a restarted process starts its logging afresh.
let snapshot (s: State) : string =
    try
        JsonSerializer.Serialize(persistedOf s, jsonOptions)
    with _ ->
        snapshotPlain s

let private validCursor (c: string) =
    not (String.IsNullOrWhiteSpace c)
    && c.Length <= 256
    && c |> Seq.forall (fun ch -> not (Char.IsWhiteSpace ch) && not (Char.IsControl ch))

let private trimSeen (seen: string list) =
    let n = List.length seen
    if n > seenCapacity then List.skip (n - seenCapacity) seen else seen

let private stateOfPersisted (p: Persisted) : State option =
    let okStr (s: string) = not (isNull s)
    let messages =
        if isNull (box p.queue) then
            None
        else
            let converted =
                p.queue
                |> List.map (fun m ->
                    if isNull (box m) then
                        None
                    elif [ m.activity_id; m.text; m.peer_id; m.``method``; m.created_at ] |> List.forall okStr
                         && m.activity_id.Trim() <> "" then
                        let kind =
                            match (if isNull m.kind then None else kindOfName m.kind) with
                            | Some k -> k
                            | None -> if m.peer_id <> "" then PeerAgent else CanvasUser
                        Some
                            { ActivityId = m.activity_id
                              Text = m.text
                              PeerId = m.peer_id
                              Kind = kind
                              Method = m.``method``
                              CreatedAt = m.created_at }
                    else
                        None)
            if converted |> List.forall Option.isSome then Some(List.choose id converted) else None
    let seen =
        if isNull (box p.seen) || p.seen |> List.exists (fun s -> isNull s || s.Trim() = "") then
            None
        else
            Some p.seen
    match p.version, messages, seen with
    | v, Some queue, Some seen when v = snapshotVersion ->
        let queue =
            queue |> List.distinctBy (fun m -> m.ActivityId) |> List.sortWith compareMessages
        let cursor = p.cursor |> Option.filter (fun c -> not (isNull c) && validCursor c)
        Some
            { empty with
                Cursor = cursor
                Queue = queue
                Seen = trimSeen (List.distinct seen) }
    | _ -> None

/// Reads a state document with System.Text.Json.Nodes only (no reflection): the fallback used when
/// the serializer is unavailable (e.g. reflection disabled in a trimmed/NativeAOT build).
let restorePlain (text: string) : State option =
    let strings (node: JsonNode) =
        Json.asArray node
        |> Option.bind (fun items ->
            let values = items |> List.map Json.asString
            if values |> List.forall Option.isSome then Some(List.choose id values) else None)
    let message (node: JsonNode) : PersistedMessage option =
        let field n = Json.prop n node |> Option.bind Json.asString
        match field "activity_id", field "text", field "peer_id", field "method", field "created_at" with
        | Some id, Some text, Some peer, Some meth, Some at ->
            Some
                { activity_id = id
                  text = text
                  peer_id = peer
                  kind = field "kind" |> Option.defaultValue ""
                  ``method`` = meth
                  created_at = at }
        | _ -> None
    try
        Json.tryParse text
        |> Option.bind (fun doc ->
            let version =
                Json.prop "version" doc
                |> Option.bind (fun v -> match v with :? JsonValue as jv when jv.GetValueKind() = JsonValueKind.Number -> Json.asFloat v | _ -> None)
            let cursor =
                match Json.prop "cursor" doc with
                | None -> Some None
                | Some c -> Json.asString c |> Option.map Some
            let queue =
                Json.prop "queue" doc
                |> Option.bind Json.asArray
                |> Option.bind (fun items ->
                    let ms = items |> List.map message
                    if ms |> List.forall Option.isSome then Some(List.choose id ms) else None)
            let seen = Json.prop "seen" doc |> Option.bind strings
            match version, cursor, queue, seen with
            | Some v, Some cursor, Some queue, Some seen when v = float snapshotVersion ->
                stateOfPersisted
                    { version = snapshotVersion
                      cursor = cursor
                      queue = queue
                      seen = seen }
            | _ -> None)
    with _ ->
        None

/// The state at startup from the state file (if present) or else the legacy plain-text cursor.
/// Total: unreadable input gives the empty state.
let restore (stateFile: string option) (legacyCursor: string option) : State =
    match stateFile with
    | Some text ->
        let viaSerializer =
            try
                match JsonSerializer.Deserialize<Persisted>(text, jsonOptions) |> box with
                | :? Persisted as p -> Result.Ok(stateOfPersisted p)
                | _ -> Result.Ok None
            with
            | :? JsonException -> Result.Ok None
            | e -> Result.Error e // the serializer itself failed (not the document): read it by hand
        match viaSerializer with
        | Result.Ok(Some s) -> s
        | Result.Ok None -> empty
        | Result.Error _ -> restorePlain text |> Option.defaultValue empty
    | None ->
        match legacyCursor with
        | Some c when not (isNull c) && validCursor (c.Trim()) -> { empty with Cursor = Some(c.Trim()) }
        | _ -> empty

// ---------------------------------------------------------------------------------------------
// Queue operations
// ---------------------------------------------------------------------------------------------

let pollQuery (s: State) : PollQuery =
    match s.Cursor with
    | Some c -> SinceId(c, pageLimit)
    | None -> SinceSecs(replaySecs, pageLimit)

let head (s: State) : InboxMessage option = List.tryHead s.Queue

let peek (limit: int) (s: State) : InboxMessage list =
    if limit <= 0 then [] else List.truncate limit s.Queue

let private durableEqual (a: State) (b: State) =
    a.Cursor = b.Cursor && a.Queue = b.Queue && a.Seen = b.Seen

let private persist (before: State) (after: State) : Effect list =
    if durableEqual before after then [] else [ WriteStateFile(stateFileName, snapshot after) ]

let pop (activityId: string) (s: State) : State * bool * Effect list =
    let id = if isNull activityId then "" else activityId
    match s.Queue |> List.tryFind (fun m -> m.ActivityId = id) with
    | None -> s, false, []
    | Some _ ->
        let seen = if List.contains id s.Seen then s.Seen else trimSeen (s.Seen @ [ id ])
        let s' =
            { s with
                Queue = s.Queue |> List.filter (fun m -> m.ActivityId <> id)
                Seen = seen }
        s', true, persist s s'

// ---------------------------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------------------------

let private clip (n: int) (text: string) =
    let t = if isNull text then "" else text
    if t.Length <= n then t else t.Substring(0, n) + "…"

let private fmt (n: int) = n.ToString(CultureInfo.InvariantCulture)

let private failed (reason: string) (s: State) : State * InboxMessage list * Effect list =
    let n = s.Failures + 1
    let logs =
        if n = 1 || n % failureLogEvery = 0 then
            [ Log(Warning, $"inbox poll failed ({fmt n} in a row): {reason}") ]
        else
            []
    { s with Failures = n }, [], logs

let private recovered (s: State) =
    if s.Failures > 0 then
        [ Log(Info, $"inbox polling recovered after {fmt s.Failures} failed poll(s)") ]
    else
        []

type private Row =
    { Node: JsonNode
      Id: string option
      Time: DateTimeOffset option
      Raw: string }

type private Outcome =
    | Recorded
    | Skipped
    | HeldBack

let private processRowsWith (room: int) (selfId: string) (rows: JsonNode list) (s: State) =
    let rows =
        rows
        |> List.choose (fun node ->
            match node with
            | :? JsonObject ->
                let raw = textField "created_at" node
                Some
                    { Node = node
                      Id = rowId node
                      Time = parseTime raw
                      Raw = raw }
            | _ -> None)
        |> List.sortWith (fun a b ->
            compareKeys (a.Time, a.Raw, defaultArg a.Id "") (b.Time, b.Raw, defaultArg b.Id ""))
    let seenSet = Set.ofList s.Seen
    let folder (count: int, known: Set<string>, added: string list, recorded, held: bool, outcomes) (row: Row) =
        let skip = count, known, added, recorded, held, (row, Skipped) :: outcomes
        match row.Id with
        | None -> skip
        | Some id when isEcho selfId row.Node || known.Contains id -> skip
        | Some _ ->
            match messageOfRow row.Node with
            | None -> skip
            | Some _ when held || count >= room ->
                count, known, added, recorded, true, (row, HeldBack) :: outcomes
            | Some m ->
                count + 1,
                known.Add m.ActivityId,
                m.ActivityId :: added,
                m :: recorded,
                held,
                (row, Recorded) :: outcomes
    let known = s.Queue |> List.fold (fun (k: Set<string>) m -> k.Add m.ActivityId) seenSet
    let _, _, added, recordedRev, _, outcomes =
        List.fold folder (List.length s.Queue, known, [], [], false, []) rows
    let queue = if List.isEmpty recordedRev then s.Queue else mergeSorted recordedRev s.Queue
    let outcomes = List.rev outcomes
    let heldRows = outcomes |> List.filter (fun (_, o) -> o = HeldBack) |> List.map fst
    // The cursor may only move to a processed row strictly older than every held-back row.
    let bound: DateTimeOffset option option =
        match heldRows with
        | [] -> Some None
        | hs when hs |> List.forall (fun r -> r.Time.IsSome) -> Some(Some(hs |> List.map (fun r -> r.Time.Value) |> List.min))
        | _ -> None // a held row without a usable time: do not move at all
    let candidates =
        match bound with
        | None -> []
        | Some b ->
            outcomes
            |> List.choose (fun (r, o) ->
                match o, r.Id, r.Time with
                | HeldBack, _, _ -> None
                | _, Some id, Some t when (match b with Some limit -> t < limit | None -> true) -> Some(id, t)
                | _ -> None)
    let newest = rows |> List.choose (fun r -> r.Time) |> List.fold (fun acc t -> max acc (Some t)) None
    let lastWhere pred = candidates |> List.filter pred |> List.tryLast |> Option.map fst
    let pageFull = List.length rows >= pageLimit
    let cursor =
        let settled =
            newest
            |> Option.bind (fun n -> lastWhere (fun (_, t) -> t <= n.AddSeconds(-cursorLagSecs)))
        match settled with
        | Some c -> Some c
        | None when pageFull && heldRows.IsEmpty ->
            // Progress is mandatory on a full page: newest row older than the newest timestamp,
            // else (the whole page shares one timestamp) the newest row of the page.
            match newest |> Option.bind (fun n -> lastWhere (fun (_, t) -> t < n)) with
            | Some c -> Some c
            | None ->
                match rows |> List.choose (fun r -> r.Id) |> List.tryLast with
                | Some c -> Some c
                | None -> s.Cursor
        | None -> s.Cursor
    let seen = trimSeen (s.Seen @ (added |> List.rev |> List.filter (fun id -> not (seenSet.Contains id))))
    let paused = not heldRows.IsEmpty || (s.Paused && List.length queue >= capacity)
    let pauseLogs =
        if paused && not s.Paused then
            [ Log(Warning, $"inbox full ({fmt capacity} unread) — pausing intake until messages are popped with inbox_pop") ]
        elif s.Paused && not paused then
            [ Log(Info, "inbox has room again — intake resumed") ]
        else
            []
    let s' =
        { Cursor = cursor
          Queue = queue
          Seen = seen
          Failures = 0
          Paused = paused }
    let recorded = List.rev recordedRev
    let logs =
        recovered s
        @ (if recorded.IsEmpty then [] else [ Log(Debug, $"inbox: {fmt recorded.Length} new message(s)") ])
        @ pauseLogs
    s', recorded, logs @ persist s s', not heldRows.IsEmpty

/// Holding rows back is safe only behind a cursor: the next `since_id` poll fetches them again. Without one
/// (`since_secs` replay after a start or a 410) a held row leaves the replay window (600 s, newest page only)
/// and would be lost, so when no cursor ends up in front of the held rows the queue takes them beyond capacity.
let private processRows (selfId: string) (rows: JsonNode list) (s: State) =
    match processRowsWith capacity selfId rows s with
    | s', _, _, true when s'.Cursor.IsNone ->
        let s', recorded, effects, _ = processRowsWith Int32.MaxValue selfId rows s
        s', recorded, effects
    | s', recorded, effects, _ -> s', recorded, effects

/// Folds one `/activity` poll response into the state. Returns the messages recorded by this poll
/// (oldest first) and the effects: log lines and the state file write when it changed.
/// Contract: the response answers `pollQuery` of this state (pops in between are fine); duplicated
/// responses and overlapping since_id windows are harmless (dedupe), rows are never lost.
let onPoll (selfId: string) (response: Response) (s: State) : State * InboxMessage list * Effect list =
    try
        match response with
        | Reply(410, _) ->
            let s' = { s with Cursor = None; Failures = 0 }
            let logs =
                recovered s
                @ [ Log(Info, $"inbox cursor expired (410); replaying the last {fmt replaySecs} s (since_secs={fmt replaySecs})") ]
            s', [], logs @ persist s s'
        | Reply(status, body) when status >= 200 && status < 300 ->
            match Json.tryParse body |> Option.bind Json.asArray with
            | Some rows -> processRows selfId rows s
            | None -> failed $"HTTP {fmt status} from /activity with a body that is not a JSON array: {clip 200 body}" s
        | Reply(status, body) -> failed $"HTTP {fmt status} from /activity: {clip 200 body}" s
        | TransportError message -> failed $"/activity request failed: {message}" s
        | TimedOut secs ->
            failed $"/activity request timed out after {secs.ToString(CultureInfo.InvariantCulture)} s" s
    with e ->
        failed $"unexpected error while reading /activity: {e.Message}" s
