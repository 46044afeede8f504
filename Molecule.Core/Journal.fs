/// The ledger on disk: one file per workspace, `inbox-<workspace id>.jsonl`. Line 1 names the file's workspace and
/// generation, line 2 is a snapshot of the ledger, every further line one event (appended and flushed before the
/// agent reports the change). Compaction rewrites the file as header + snapshot. The one reader and the one writer
/// of the file; System.Text.Json.Nodes only (no reflection, NativeAOT-safe). Pure and total.
module Molecule.Core.Journal

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Protocol

let private formatVersion = 2

/// Events appended after the snapshot before the file is compacted.
let compactAfter = 2000

/// The ledger file of a workspace (the whole id is in the name).
let fileName (workspaceId: WorkspaceId) = $"inbox-{workspaceId.Value}.jsonl"

/// The file that serialises writers and elects the poller of a workspace.
let lockFileName (workspaceId: WorkspaceId) = $"inbox-{workspaceId.Value}.lock"

/// The pre-ledger state file shared by every workspace of a state directory.
let legacyFileName = ".mcp_inbox_state.json"

let private inv (n: int64) = n.ToString(CultureInfo.InvariantCulture)

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

let private optNum (n: int64 option) : JsonNode =
    match n with
    | Some v -> JsonValue.Create v :> JsonNode
    | None -> Json.nul

let private optStr (s: string option) : JsonNode =
    match s with
    | Some v -> Json.str v
    | None -> Json.nul

let messageJson (m: InboxMessage) : JsonObject =
    let o =
        Json.obj
            [ "activity_id", Json.str m.ActivityId
              "seq", optNum m.Seq
              "text", Json.str m.Text
              "peer_id", Json.str m.PeerId
              "kind", Json.str (Ledger.kindName m.Kind)
              "method", Json.str m.Method
              "created_at", Json.str m.CreatedAt ]
    // The sender's registry facts (include=peer_info): written only when known, so older readers see the same keys.
    for (key, value) in [ "peer_name", m.PeerName; "peer_role", m.PeerRole; "agent_card_url", m.AgentCardUrl ] do
        match value with
        | Some v -> o[key] <- Json.str v
        | None -> ()
    match m.Kind with
    | RequestUpdate u -> o["request"] <- RequestUpdate.json u
    | _ -> ()
    o

/// Line 1: whose file this is.
let header (workspaceId: WorkspaceId) (generation: int64) : string =
    Json.compact (
        Json.obj
            [ "molecule_inbox", Json.num formatVersion
              "workspace_id", Json.str workspaceId.Value
              "generation", JsonValue.Create generation ]
    )

let snapshot (s: Ledger.State) : string =
    Json.compact (
        Json.obj
            [ "cursor", optStr s.Cursor
              "floor", optNum s.Floor
              "horizon", optNum s.Horizon
              "newest", optNum s.Newest
              "queue", Json.arr (s.Queue |> Seq.map (fun kv -> messageJson kv.Value :> JsonNode))
              "seen", Json.arr (s.SeenOrder |> Seq.map (fun kv -> Json.str kv.Value)) ]
    )

let event (e: Ledger.Event) : string =
    let fields =
        match e with
        | Ledger.Took t ->
            [ "e", Json.str "took"
              "messages", Json.arr (t.Messages |> List.map (fun m -> messageJson m :> JsonNode))
              "cursor", optStr t.Cursor
              "horizon", optNum t.Horizon
              "newest", optNum t.Newest ]
        | Ledger.Popped id -> [ "e", Json.str "popped"; "id", Json.str id ]
        | Ledger.Acked floor -> [ "e", Json.str "acked"; "floor", JsonValue.Create floor :> JsonNode ]
        | Ledger.CursorLost -> [ "e", Json.str "cursor_lost" ]
        | Ledger.Rebased horizon -> [ "e", Json.str "rebased"; "horizon", optNum horizon ]
    Json.compact (Json.obj fields)

/// The whole file for a ledger: header, snapshot, trailing newline.
let file (generation: int64) (s: Ledger.State) : string =
    header s.WorkspaceId generation + "\n" + snapshot s + "\n"

// ---------------------------------------------------------------------------------------------
// Decoding (total)
// ---------------------------------------------------------------------------------------------

let private int64Of (node: JsonNode) : int64 option =
    match node with
    | :? JsonValue as v ->
        match v.TryGetValue<int64>() with
        | true, n -> Some n
        | _ -> None
    | _ -> None

/// A request update without its request (a file damaged by hand) reads as the message it shows.
let private kindOf (name: string) (peer: string) (node: JsonNode) =
    match name, Json.prop "request" node |> Option.bind RequestUpdate.ofBody with
    | "canvas_user", _ -> CanvasUser
    | "peer_agent", _ -> PeerAgent
    | "delegation_result", _ -> DelegationResult
    | "request_update", Some u -> RequestUpdate u
    | _ -> if peer <> "" then PeerAgent else CanvasUser

let messageOfJson (node: JsonNode) : InboxMessage option =
    let field n = Json.prop n node |> Option.bind Json.asString
    match field "activity_id", field "text", field "peer_id", field "method", field "created_at" with
    | Some id, Some text, Some peer, Some meth, Some at when id.Trim() <> "" ->
        Some
            { ActivityId = id
              Seq = Json.prop "seq" node |> Option.bind int64Of
              Text = text
              PeerId = peer
              Kind = kindOf (defaultArg (field "kind") "") peer node
              Method = meth
              CreatedAt = at
              PeerName = field "peer_name"
              PeerRole = field "peer_role"
              AgentCardUrl = field "agent_card_url" }
    | _ -> None

let private all (f: JsonNode -> 'a option) (node: JsonNode option) : 'a list option =
    match node |> Option.bind Json.asArray with
    | Some items ->
        let xs = items |> List.map f
        if xs |> List.forall Option.isSome then Some(List.choose id xs) else None
    | None -> None

/// The workspace and generation named by a header line.
let readHeader (line: string) : (string * int64) option =
    match Json.tryParse line with
    | Some h when (Json.prop "molecule_inbox" h |> Option.bind int64Of) = Some(int64 formatVersion) ->
        match Json.stringProp "workspace_id" h, Json.prop "generation" h |> Option.bind int64Of with
        | Some ws, Some g -> Some(ws, g)
        | _ -> None
    | _ -> None

let private readSnapshot (workspaceId: WorkspaceId) (line: string) : Ledger.State option =
    match Json.tryParse line with
    | Some doc ->
        let cursor =
            match Json.prop "cursor" doc with
            | None -> Some None
            | Some c -> Json.asString c |> Option.map Some
        match cursor, all messageOfJson (Json.prop "queue" doc), all Json.asString (Json.prop "seen" doc) with
        | Some cursor, Some queue, Some seen ->
            let s =
                { Ledger.empty workspaceId with
                    Cursor = cursor |> Option.filter (fun c -> c.Trim() <> "")
                    Floor = Json.prop "floor" doc |> Option.bind int64Of
                    Horizon = Json.prop "horizon" doc |> Option.bind int64Of
                    Newest = Json.prop "newest" doc |> Option.bind int64Of }
            // Seen ids first (oldest first), then the queue (whose ids are among them already).
            let s = seen |> List.fold (fun s id -> Ledger.remember id s) s
            Some(Ledger.evolve s (Ledger.Took { Messages = queue; Cursor = None; Horizon = None; Newest = None }))
        | _ -> None
    | None -> None

let readEvent (line: string) : Ledger.Event option =
    match Json.tryParse line with
    | Some doc ->
        match Json.stringProp "e" doc with
        | Some "took" ->
            all messageOfJson (Json.prop "messages" doc)
            |> Option.map (fun ms ->
                Ledger.Took
                    { Messages = ms
                      Cursor = Json.stringProp "cursor" doc |> Option.filter (fun c -> c.Trim() <> "")
                      Horizon = Json.prop "horizon" doc |> Option.bind int64Of
                      Newest = Json.prop "newest" doc |> Option.bind int64Of })
        | Some "popped" -> Json.stringProp "id" doc |> Option.map Ledger.Popped
        | Some "acked" -> Json.prop "floor" doc |> Option.bind int64Of |> Option.map Ledger.Acked
        | Some "cursor_lost" -> Some Ledger.CursorLost
        | Some "rebased" -> Some(Ledger.Rebased(Json.prop "horizon" doc |> Option.bind int64Of))
        | _ -> None
    | None -> None

/// A ledger read back from its file.
type Restored =
    { State: Ledger.State
      Generation: int64
      /// Events after the snapshot (the compaction counter starts there).
      Events: int
      /// Lines that could not be read (a torn last line after a crash is the only expected one).
      Ignored: int }

/// Why a file is not this workspace's ledger.
type Refusal =
    | NotALedger of reason: string
    | OtherWorkspace of owner: string

/// Reads a whole ledger file. Refuses a file of another workspace (ids compared case-insensitively) and a file
/// without a readable header and snapshot; an unreadable event line is skipped and counted.
let restore (workspaceId: WorkspaceId) (text: string) : Result<Restored, Refusal> =
    let lines = (if isNull text then "" else text).Split('\n') |> Array.filter (fun l -> l.Trim() <> "")
    if lines.Length < 2 then
        Result.Error(NotALedger "the file has no header and snapshot")
    else
        match readHeader lines[0] with
        | None -> Result.Error(NotALedger "the first line is not a molecule inbox header")
        | Some(owner, _) when not (WorkspaceId.names workspaceId owner) ->
            Result.Error(OtherWorkspace owner)
        | Some(_, generation) ->
            match readSnapshot workspaceId lines[1] with
            | None -> Result.Error(NotALedger "the snapshot line cannot be read")
            | Some s ->
                let events = lines |> Array.skip 2 |> Array.map readEvent
                let state = events |> Array.choose id |> Array.fold Ledger.evolve s
                Ok
                    { State = state
                      Generation = generation
                      Events = events.Length
                      Ignored = events |> Array.filter Option.isNone |> Array.length }

/// Folds lines appended by another process into a ledger (unreadable lines are skipped).
let catchUp (lines: string list) (s: Ledger.State) : Ledger.State * int =
    let events = lines |> List.filter (fun l -> l.Trim() <> "") |> List.map readEvent
    (events |> List.choose id |> List.fold Ledger.evolve s), events.Length

// ---------------------------------------------------------------------------------------------
// The pre-ledger shared state file (version 1: {version, cursor, queue, seen})
// ---------------------------------------------------------------------------------------------

/// The cursor, queue and seen ids of an old shared state file; None when it is not one.
let readLegacy (text: string) : (string option * InboxMessage list * string list) option =
    match Json.tryParse text with
    | Some doc when (Json.prop "version" doc |> Option.bind int64Of) = Some 1L ->
        let cursor =
            Json.prop "cursor" doc |> Option.bind Json.asString |> Option.filter (fun c -> c.Trim() <> "")
        match all messageOfJson (Json.prop "queue" doc), all Json.asString (Json.prop "seen" doc) with
        | Some queue, Some seen -> Some(cursor, queue, seen)
        | _ -> None
    | _ -> None

/// A ledger built from an old shared file once its cursor was shown to belong to this workspace.
let ofLegacy (workspaceId: WorkspaceId) (cursor: string option) (queue: InboxMessage list) (seen: string list) : Ledger.State =
    let s = Ledger.empty workspaceId
    let s = seen |> List.fold (fun s id -> Ledger.remember id s) s
    Ledger.evolve s (Ledger.Took { Messages = queue; Cursor = cursor; Horizon = None; Newest = None })

let describeRefusal (r: Refusal) =
    match r with
    | NotALedger reason -> reason
    | OtherWorkspace owner -> $"it belongs to workspace {owner}"

let generationText (g: int64) = inv g
