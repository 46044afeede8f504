/// A deterministic world for the agent core: an in-memory platform with the newer platform's activity semantics
/// (since_id on (created_at, seq), before_ts paging, acknowledgements, pruning, 410) and a driver that performs the
/// agent's effects — ledger writes into an in-memory journal file, requests answered by the platform (or lost to a
/// fault), tool answers and channel notifications recorded — so that properties can crash and restart the agent
/// between any two steps and check what it delivered.
module Molecule.Tests.Core.Sim

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Core
open Molecule.Protocol
open FsCheck.FSharp

let private ws (text: string) = (WorkspaceId.tryParse text).Value
let selfId = ws "5e1f0000-0000-4000-8000-00000000000a"
let otherId = ws "07e00000-0000-4000-8000-00000000000b"
let peerId = "9eea0000-0000-4000-8000-0000000000a1"

/// ApiTests' configuration with the simulated platform's identity (every other setting is the default there).
let config: Config =
    { Molecule.Tests.Core.ApiTests.cfg with
        WorkspaceId = selfId
        PlatformUrl = "http://platform.test"
        Origin = "http://platform.test"
        Token = "tok_SIM_0123456789abcdef"
        TokenSource = FromEnv
        AgentCard = { Name = "sim"; Description = None; Skills = [] }
        StateDir = "/state"
        PollTimeoutSecs = 2 }

// ---------------------------------------------------------------------------------------------
// The platform
// ---------------------------------------------------------------------------------------------

type RowKind =
    | Canvas
    | Peer
    /// Our own send_message_to_user row: never delivered.
    | NotifyEcho
    /// A row whose message cannot be read (an invalid string): skipped, never stalls intake.
    | Garbled
    /// A file the user uploaded (`chat_upload_receive`): fetched, then announced (never a message of its own).
    | Upload

type Row =
    { Id: string
      Seq: int64
      /// Milliseconds since the epoch below.
      At: int64
      Kind: RowKind
      Text: string }

let epoch = DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero)

let stamp (ms: int64) = Activity.formatTime (epoch.AddMilliseconds(float ms))

let rowJson (r: Row) : string =
    let parts (text: string) = $"[{{\"kind\":\"text\",\"text\":{Json.quote text}}}]"
    let source, meth, body =
        match r.Kind with
        | Canvas -> "null", "\"message/send\"", $"{{\"params\":{{\"message\":{{\"parts\":{parts r.Text}}}}}}}"
        | Peer -> $"\"{peerId}\"", "\"message/send\"", $"{{\"params\":{{\"message\":{{\"parts\":{parts r.Text}}}}}}}"
        | NotifyEcho -> "null", "\"notify\"", "null"
        | Garbled -> $"\"{peerId}\"", "\"message/send\"", "{\"params\":{\"message\":{\"parts\":[{\"kind\":\"text\",\"text\":\"\\ud800\"}]}}}"
        | Upload ->
            "null",
            "\"chat_upload_receive\"",
            $"{{\"file_id\":\"f{r.Seq}\",\"name\":\"file{r.Seq}.txt\",\"mimeType\":\"text/plain\",\"size\":3,\"uri\":\"platform-pending:{selfId}/f{r.Seq}\"}}"
    $"{{\"id\":\"{r.Id}\",\"seq\":{r.Seq},\"workspace_id\":\"{selfId}\",\"activity_type\":\"a2a_receive\",\"source_id\":{source},\"method\":{meth},\"summary\":null,\"created_at\":\"{stamp r.At}\",\"request_body\":{body}}}"

let delivers (r: Row) = r.Kind = Canvas || r.Kind = Peer

type Platform =
    { Rows: Row list
      NextSeq: int64
      Now: int64
      Floor: int64
      AckSupported: bool
      Pruned: Set<string> }

let platform (ackSupported: bool) =
    { Rows = []
      NextSeq = 1L
      Now = 0L
      Floor = 0L
      AckSupported = ackSupported
      Pruned = Set.empty }

/// A message arrives for the workspace (`sameMs`: with the timestamp of the previous row).
let append (kind: RowKind) (sameMs: bool) (p: Platform) : Platform * Row =
    let at = if sameMs then p.Now else p.Now + 7L
    let n = p.NextSeq
    let r =
        { Id = Guid(int n, 0s, 0s, [| 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 1uy |]).ToString("D")
          Seq = n
          At = at
          Kind = kind
          Text = $"message {n}" }
    { p with Rows = p.Rows @ [ r ]; NextSeq = n + 1L; Now = at }, r

/// A message committed late: created up to `lateMs` before the newest row (a transaction that started earlier, as
/// a poll-mode upload does), so it sorts before rows the agent may already have read — but after the row the
/// agent's cursor is on (`after`): what the cursor's lag behind the newest row is for (a row later than that is
/// beyond what any cursor can promise).
let appendLate (kind: RowKind) (lateMs: int64) (after: int64 option) (p: Platform) : Platform * Row =
    let now = p.Now
    let p, r = append kind false p
    let earliest = match after with Some at -> at + 1L | None -> 0L
    let r = { r with At = max earliest (now - lateMs) }
    { p with Rows = (p.Rows |> List.take (p.Rows.Length - 1)) @ [ r ]; Now = now }, r

/// Time passes on the platform without a message.
let wait (ms: int64) (p: Platform) : Platform = { p with Now = p.Now + ms }

let private live (p: Platform) = p.Rows |> List.filter (fun r -> not (p.Pruned.Contains r.Id))

let private order (r: Row) = (r.At, r.Seq)

let private page (rows: Row list) = Reply(200, "[" + String.Join(",", rows |> List.map rowJson) + "]")

let private query (url: string) =
    let q = match url.IndexOf '?' with -1 -> "" | i -> url.Substring(i + 1)
    q.Split('&', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun kv -> match kv.IndexOf '=' with -1 -> kv, "" | i -> kv.Substring(0, i), Uri.UnescapeDataString(kv.Substring(i + 1)))
    |> Map.ofArray

let private jsonBody (r: Request) =
    match r.Body with
    | JsonBody text -> Json.tryParse text
    | _ -> None

/// The platform's answer to one request of the agent.
let answer (r: Request) (p: Platform) : Platform * Response =
    let path = (Uri r.Url).AbsolutePath
    let q = query r.Url
    let limit = q.TryFind "limit" |> Option.map int |> Option.defaultValue 100 |> min 500
    match r.Method with
    | Get when path.EndsWith "/activity" ->
        match q.TryFind "since_id" with
        | Some cursor ->
            match live p |> List.tryFind (fun x -> x.Id = cursor) with
            | None -> p, Reply(410, "{\"error\":\"since_id cursor not found\"}")
            | Some c -> p, page (live p |> List.filter (fun x -> order x > order c) |> List.sortBy order |> List.truncate limit)
        | None ->
            let secs = q.TryFind "since_secs" |> Option.map int64 |> Option.defaultValue 600L
            let before = q.TryFind "before_ts" |> Option.bind Activity.parseTime
            let rows =
                live p
                |> List.filter (fun x -> x.At >= p.Now - secs * 1000L)
                |> List.filter (fun x ->
                    match before with
                    | Some t -> epoch.AddMilliseconds(float x.At) < t
                    | None -> true)
                |> List.sortByDescending order
                |> List.truncate limit
            p, page rows
    | Post when path.EndsWith "/activity/ack" ->
        if not p.AckSupported then
            p, Reply(404, "{\"error\":\"not found\"}")
        else
            match jsonBody r |> Option.bind (Json.prop "acked_seq") |> Option.bind Json.asFloat with
            | Some n ->
                let floor = max p.Floor (int64 n)
                { p with Floor = floor }, Reply(200, $"{{\"last_acked_seq\":{floor}}}")
            | None -> p, Reply(400, "{\"error\":\"acked_seq is required\"}")
    | _ -> p, Reply(200, "{\"status\":\"ok\"}")

/// The platform forgets rows: the acknowledged ones, or (a hard prune) everything older than `keepLast` rows.
let prune (hard: bool) (p: Platform) =
    let gone =
        if hard then p.Rows |> List.truncate (max 0 (p.Rows.Length - 3)) |> List.map (fun r -> r.Id)
        else p.Rows |> List.filter (fun r -> r.Seq <= p.Floor) |> List.map (fun r -> r.Id)
    { p with Pruned = Set.union p.Pruned (Set.ofList gone) }

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

type World =
    { Model: Agent.Model
      Platform: Platform
      /// The ledger file as lines (what survives a crash).
      File: string list
      /// Requests sent and not answered yet, oldest first.
      Inflight: (Purpose * Request) list
      Timers: Timer list
      Notified: string list
      Answers: Map<int64, ToolOutput>
      NextCall: int64
      Uptime: float
      /// Downloads asked for and not finished yet, oldest first (lost with the process).
      Downloads: (Purpose * string) list }

let boot (file: string list) : Workspace.Boot =
    match file with
    | [] ->
        { Ledger = Ledger.empty selfId; Generation = 0L; Events = 0; FileExists = false; Leader = true; Legacy = None }
    | lines ->
        match Journal.restore selfId (String.Join("\n", lines)) with
        | Ok r -> { Ledger = r.State; Generation = r.Generation; Events = r.Events; FileExists = true; Leader = true; Legacy = None }
        | Result.Error e -> failwith $"the agent's own ledger could not be read back: {Journal.describeRefusal e}"

let private perform (w: World) (effects: Effect list) : World =
    effects
    |> List.fold
        (fun w e ->
            match e with
            | Persist(_, Append lines) -> { w with File = w.File @ lines }
            | Persist(_, Rewrite text) -> { w with File = text.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray }
            | Send(purpose, request) -> { w with Inflight = w.Inflight @ [ purpose, request ] }
            | After(_, timer) -> { w with Timers = w.Timers @ [ timer ] }
            | Notify ev ->
                let id = ev.Meta |> List.tryFind (fun (k, _) -> k = "activity_id") |> Option.map snd |> Option.defaultValue "?"
                { w with Notified = w.Notified @ [ id ] }
            | Answer(call, output, _) -> { w with Answers = w.Answers.Add(call, output) }
            | Download(purpose, _, path) -> { w with Downloads = w.Downloads @ [ purpose, path ] }
            | _ -> w)
        w

let dispatch (msg: Agent.Msg) (w: World) : World =
    let model, effects = Agent.update msg w.Model
    perform { w with Model = model } effects

/// A fresh agent process on the world's ledger file (after a crash, or at first start).
let start (w: World) : World =
    let model = Agent.init config (boot w.File)
    let w = { w with Model = model; Inflight = []; Timers = []; Downloads = [] }
    w |> dispatch Agent.Start |> dispatch Agent.ClientInitialized

let world (ackSupported: bool) : World =
    { Model = Agent.init config (boot [])
      Platform = platform ackSupported
      File = []
      Inflight = []
      Timers = []
      Notified = []
      Answers = Map.empty
      NextCall = 0L
      Uptime = 0.0
      Downloads = [] }
    |> start

/// Answers the oldest request in flight (or loses it: a dropped connection).
let answerOne (lose: bool) (w: World) : World =
    match w.Inflight with
    | [] -> w
    | (purpose, request) :: rest ->
        let w = { w with Inflight = rest }
        if lose then
            dispatch (Agent.Responded(purpose, TransportError "connection reset")) w
        else
            let p, response = answer request w.Platform
            dispatch (Agent.Responded(purpose, response)) { w with Platform = p }

/// Answers requests until none is in flight (bounded).
let settle (w: World) : World =
    let rec go n w = if n > 500 || w.Inflight.IsEmpty then w else go (n + 1) (answerOne false w)
    go 0 w

/// The poll timer fires (five seconds later).
let tick (w: World) : World =
    let w = { w with Uptime = w.Uptime + 5.0 }
    dispatch (Agent.TimerFired(PollTimer selfId, w.Uptime)) { w with Timers = w.Timers |> List.filter (fun t -> t <> PollTimer selfId) }

/// The event stream rings: a message was logged for the workspace.
let ring (w: World) : World =
    let frame = "{\"type\":\"ACTIVITY_LOGGED\",\"timestamp\":1,\"data\":{\"activity_type\":\"a2a_receive\"}}"
    dispatch (Agent.Stream(selfId, Doorbell.Frame frame, 0.5)) w

/// Calls a tool and returns its output (answered at once for the inbox tools).
let call (name: string) (args: (string * JsonNode) list) (w: World) : World * ToolOutput option =
    let n = w.NextCall + 1L
    let w = dispatch (Agent.ToolCalled(n, Guid.NewGuid().ToString(), Tools.parse name (Some(Json.obj args)))) { w with NextCall = n }
    w, w.Answers.TryFind n

/// The agent handles the oldest waiting message: peek, then pop it. Returns the popped id when pop said removed.
let handleOne (w: World) : World * string option =
    match Ledger.head (Agent.primary w.Model).Ledger with
    | None -> w, None
    | Some m ->
        let w, out = call "inbox_pop" [ "activity_id", Json.str m.ActivityId ] w
        match out |> Option.bind (fun o -> Json.tryParse o.Text) |> Option.bind (Json.prop "removed") |> Option.bind Json.asScalarText with
        | Some "true" -> w, Some m.ActivityId
        | _ -> w, None

let waiting (w: World) = Ledger.peek Int32.MaxValue (Agent.primary w.Model).Ledger |> List.map (fun m -> m.ActivityId)

// ---------------------------------------------------------------------------------------------
// Rows as ledger items
// ---------------------------------------------------------------------------------------------

let readable (r: Row) =
    match Activity.parseRow (Json.tryParse (rowJson r)).Value with
    | Ok row -> Ledger.Readable row
    | Result.Error skip -> Ledger.Unreadable skip

/// n rows of the given kinds arriving in order, as ledger items.
let rowsOf (kinds: RowKind list) =
    let p, rows = ((platform true, []), kinds) ||> List.fold (fun (p, acc) k -> let p, r = append k false p in p, acc @ [ r ])
    p, rows

let takeAll (items: Ledger.Item list) (s: Ledger.State) =
    match Ledger.take false items s with
    | Some t, _ -> Ledger.evolve s (Ledger.Took t)
    | None, _ -> s

let kindGen = Gen.frequency [ 4, Gen.constant Peer; 2, Gen.constant Canvas; 1, Gen.constant NotifyEcho; 1, Gen.constant Garbled ]

