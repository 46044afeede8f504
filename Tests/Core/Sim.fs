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
        PollTimeoutSecs = 2
        // the simulated traffic (hundreds of peer messages a second) would trip the loop guard: its tests turn it on
        LoopGuard = { MaxExchanges = 0; MaxPerMinute = 0; MaxRepeats = 0 } }

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
    /// The user answered a request of this workspace (`request_update`): a message of its own kind.
    | Update
    /// The user decided a request the agent raised itself (`source`: permission_relay or loop_guard): answered by the
    /// agent, never a message for it.
    | Decided of requestId: string * status: string * source: string * title: string

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
    let summary = if r.Kind = Update then $"\"Request \\\"{r.Seq}\\\" approved by the user\"" else "null"
    let source, meth, body =
        match r.Kind with
        | Decided(rid, status, src, title) ->
            "null",
            "\"request_update\"",
            $"{{\"request_id\":{Json.quote rid},\"event\":\"responded\",\"status\":{Json.quote status},\"kind\":\"approval\",\"title\":{Json.quote title},\"actor_type\":\"user\",\"source\":{Json.quote src}}}"
        | Update ->
            "null",
            "\"request_update\"",
            $"{{\"request_id\":\"r{r.Seq}\",\"event\":\"responded\",\"status\":\"approved\",\"kind\":\"approval\",\"title\":{Json.quote r.Text},\"actor_type\":\"user\",\"source\":\"agent\"}}"
        | Canvas -> "null", "\"message/send\"", $"{{\"params\":{{\"message\":{{\"parts\":{parts r.Text}}}}}}}"
        | Peer -> $"\"{peerId}\"", "\"message/send\"", $"{{\"params\":{{\"message\":{{\"parts\":{parts r.Text}}}}}}}"
        | NotifyEcho -> "null", "\"notify\"", "null"
        | Garbled -> $"\"{peerId}\"", "\"message/send\"", "{\"params\":{\"message\":{\"parts\":[{\"kind\":\"text\",\"text\":\"\\ud800\"}]}}}"
        | Upload ->
            "null",
            "\"chat_upload_receive\"",
            $"{{\"file_id\":\"f{r.Seq}\",\"name\":\"file{r.Seq}.txt\",\"mimeType\":\"text/plain\",\"size\":3,\"uri\":\"platform-pending:{selfId}/f{r.Seq}\"}}"
    $"{{\"id\":\"{r.Id}\",\"seq\":{r.Seq},\"workspace_id\":\"{selfId}\",\"activity_type\":\"a2a_receive\",\"source_id\":{source},\"method\":{meth},\"summary\":{summary},\"created_at\":\"{stamp r.At}\",\"request_body\":{body}}}"

let delivers (r: Row) = r.Kind = Canvas || r.Kind = Peer || r.Kind = Update

/// Which route a request is for (what a lying platform answers per route, what the pacing bound counts).
type Route =
    | ActivityRoute
    | AckRoute
    | StreamRoute
    | DiscoverRoute
    /// GET …/requests: the agent reads its own requests (the loop guard's pauses, at start).
    | RequestsRoute
    | OtherRoute

let routeOf (r: Request) =
    let path = (Uri r.Url).AbsolutePath
    if path.EndsWith "/activity/ack" then AckRoute
    elif path.StartsWith "/registry/discover/" then DiscoverRoute
    elif path.EndsWith "/activity" && r.Method = Get then ActivityRoute
    elif path.EndsWith "/events/stream" then StreamRoute
    elif path.EndsWith "/requests" && r.Method = Get then RequestsRoute
    else OtherRoute

type Platform =
    { Rows: Row list
      NextSeq: int64
      /// Row ids are numbered on their own: a platform whose numbering went back still gives every row a new id.
      NextId: int
      Now: int64
      Floor: int64
      AckSupported: bool
      Pruned: Set<string>
      /// A lying platform: what a route answers instead of the truth, one answer per request, in order (then the
      /// truth again) …
      Lies: Map<Route, Response list>
      /// … or every time.
      Always: Map<Route, Response>
      /// The requests the agent raised (`POST /workspaces/:id/requests`): id → its body.
      Raised: (string * JsonNode) list }

let platform (ackSupported: bool) =
    { Rows = []
      NextSeq = 1L
      NextId = 1
      Now = 0L
      Floor = 0L
      AckSupported = ackSupported
      Pruned = Set.empty
      Lies = Map.empty
      Always = Map.empty
      Raised = [] }

/// A message arrives for the workspace (`sameMs`: with the timestamp of the previous row).
let append (kind: RowKind) (sameMs: bool) (p: Platform) : Platform * Row =
    let at = if sameMs then p.Now else p.Now + 7L
    let n = p.NextSeq
    let i = p.NextId
    let r =
        { Id = Guid(i, 0s, 0s, [| 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 1uy |]).ToString("D")
          Seq = n
          At = at
          Kind = kind
          // distinct in letters, not only in digits (the loop guard takes messages differing in numbers for repeats)
          Text = $"message {i} " + String(Array.init 4 (fun k -> char (int 'a' + (i / pown 26 k) % 26))) }
    { p with Rows = p.Rows @ [ r ]; NextSeq = n + 1L; NextId = i + 1; Now = at }, r

/// A message with this text arrives.
let appendText (kind: RowKind) (text: string) (p: Platform) : Platform * Row =
    let p, r = append kind false p
    let r = { r with Text = text }
    { p with Rows = (p.Rows |> List.take (p.Rows.Length - 1)) @ [ r ] }, r

/// The user decides a request the agent raised: the platform writes its request_update row.
let decide (requestId: string) (status: string) (p: Platform) : Platform * Row =
    let body = p.Raised |> List.tryFind (fun (id, _) -> id = requestId) |> Option.map snd
    let field name = body |> Option.bind (Json.stringProp name) |> Option.defaultValue ""
    append (Decided(requestId, status, field "source", field "title")) false p

/// The platform is restored from a backup taken when it had its first `kept` rows: the later rows, their numbers and
/// the acknowledged floor of then are gone; time goes on, and new rows reuse the numbers.
let restore (kept: int) (p: Platform) : Platform =
    let rows = p.Rows |> List.truncate kept
    let top = rows |> List.fold (fun acc r -> max acc r.Seq) 0L
    { p with Rows = rows; NextSeq = top + 1L; Floor = min p.Floor top; Pruned = p.Pruned |> Set.filter (fun id -> rows |> List.exists (fun r -> r.Id = id)) }

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

/// The platform's answer to one request of the agent (or its lie).
let rec answer (r: Request) (p: Platform) : Platform * Response =
    match p.Lies.TryFind(routeOf r), p.Always.TryFind(routeOf r) with
    | Some(lie :: rest), _ -> { p with Lies = p.Lies.Add(routeOf r, rest) }, lie
    | _, Some lie -> p, lie
    | _ -> truth r p

and private truth (r: Request) (p: Platform) : Platform * Response =
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
    | Post when path.EndsWith "/requests" ->
        let id = $"rq{p.Raised.Length + 1}"
        let body = jsonBody r |> Option.defaultValue (Json.obj [] :> JsonNode)
        { p with Raised = p.Raised @ [ id, body ] }, Reply(201, $"{{\"request_id\":\"{id}\",\"status\":\"pending\"}}")
    | Get when path.EndsWith "/requests" ->
        // the requests the agent raised, with the status of their last decision (pending until one), newest first
        let statusOf id =
            p.Rows |> List.choose (fun r -> match r.Kind with Decided(rid, st, _, _) when rid = id -> Some st | _ -> None) |> List.tryLast
        let item (id, body: JsonNode) =
            let status = defaultArg (statusOf id) "pending"
            let field name = Json.stringProp name body |> Option.defaultValue ""
            Json.obj [ "id", Json.str id; "status", Json.str status; "source", Json.str (field "source"); "title", Json.str (field "title") ] :> JsonNode
        let listed = p.Raised |> List.rev |> List.map item |> List.filter (fun r -> q.TryFind "status" |> Option.forall (fun st -> Json.stringProp "status" r = Some st))
        p, Reply(200, Json.compact (Json.arr listed))
    | Get when path.Contains "/registry/discover/" ->
        let id = path.Substring(path.LastIndexOf '/' + 1)
        p, Reply(200, $"{{\"id\":\"{id}\",\"name\":\"Sim Peer\",\"url\":\"\"}}")
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
      /// Timers set, with the uptime they are due at.
      Timers: (float * Timer) list
      /// Every request sent, newest first: when (uptime) and to which route (an opened event stream too).
      Sent: (float * Route) list
      /// The agent asked to open its event stream and has not been told what came of it.
      Listening: bool
      /// The URLs of the requests sent, newest first.
      Asked: string list
      /// The channel notifications pushed, newest first.
      Envelopes: ChannelEvent list
      /// The log lines, newest first.
      Logs: string list
      /// Samples drawn for the jitter so far (the next one is derived from the count).
      Draws: int
      Notified: string list
      /// The permission answers sent to the client, oldest first.
      Relayed: (string * string) list
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
            | Send(purpose, request) ->
                { w with
                    Inflight = w.Inflight @ [ purpose, request ]
                    Sent = (w.Uptime, routeOf request) :: w.Sent
                    Asked = request.Url :: w.Asked }
            | After(secs, timer) -> { w with Timers = w.Timers @ [ w.Uptime + secs, timer ] }
            | Listen _ -> { w with Listening = true; Sent = (w.Uptime, StreamRoute) :: w.Sent }
            | Unlisten _ -> { w with Listening = false }
            | Notify ev ->
                let id = ev.Meta |> List.tryFind (fun (k, _) -> k = "activity_id") |> Option.map snd |> Option.defaultValue "?"
                { w with Notified = w.Notified @ [ id ]; Envelopes = ev :: w.Envelopes }
            | Answer(call, output, _) -> { w with Answers = w.Answers.Add(call, output) }
            | AnswerPermission(id, behavior) -> { w with Relayed = w.Relayed @ [ id, behavior ] }
            | Download(purpose, _, path) -> { w with Downloads = w.Downloads @ [ purpose, path ] }
            | Log(_, text) -> { w with Logs = text :: w.Logs }
            | _ -> w)
        w

let dispatch (msg: Agent.Msg) (w: World) : World =
    let model, effects = Agent.update msg w.Model
    perform { w with Model = model } effects

/// A fresh agent process on the world's ledger file (after a crash, or at first start).
let start (w: World) : World =
    let model = Agent.init config (boot w.File)
    let w = { w with Model = model; Inflight = []; Timers = []; Downloads = []; Listening = false }
    // the process starts again: its uptime starts again too — the world's clock goes on
    w |> dispatch Agent.Start |> dispatch Agent.ClientInitialized

let world (ackSupported: bool) : World =
    { Model = Agent.init config (boot [])
      Platform = platform ackSupported
      File = []
      Inflight = []
      Timers = []
      Notified = []
      Relayed = []
      Answers = Map.empty
      NextCall = 0L
      Uptime = 0.0
      Downloads = []
      Sent = []
      Listening = false
      Asked = []
      Envelopes = []
      Logs = []
      Draws = 0 }
    |> start

/// A world whose agent runs with another configuration (from its first start).
let worldWith (cfg: Config) : World =
    { world true with Model = Agent.init cfg (boot []); Inflight = []; Timers = []; File = [] }
    |> dispatch Agent.Start
    |> dispatch Agent.ClientInitialized

/// The next jitter sample (deterministic: the golden-ratio sequence).
let sample (w: World) : World * float =
    let x = float (w.Draws + 1) * 0.6180339887498949
    { w with Draws = w.Draws + 1 }, x - Math.Floor x

/// Answers the oldest request in flight (or loses it: a dropped connection).
let answerOne (lose: bool) (w: World) : World =
    match w.Inflight with
    | [] -> w
    | (purpose, request) :: rest ->
        let w, jitter = sample { w with Inflight = rest }
        if lose then
            dispatch (Agent.Responded(purpose, TransportError "connection reset", jitter)) w
        else
            let p, response = answer request w.Platform
            dispatch (Agent.Responded(purpose, response, jitter)) { w with Platform = p }

/// Answers requests until none is in flight (bounded).
let settle (w: World) : World =
    let rec go n w = if n > 500 || w.Inflight.IsEmpty then w else go (n + 1) (answerOne false w)
    go 0 w

/// Time passes (`secs`): every timer due by then fires, in the order they are due, at its due time.
let advance (secs: float) (w: World) : World =
    let until = w.Uptime + secs
    let rec go (w: World) =
        match w.Timers |> List.filter (fun (at, _) -> at <= until) |> List.sortBy fst with
        | [] -> { w with Uptime = until }
        | (at, timer) :: _ ->
            let w = { w with Uptime = max w.Uptime at; Timers = w.Timers |> List.filter (fun t -> t <> (at, timer)) }
            go (dispatch (Agent.TimerFired(timer, w.Uptime)) w)
    go w

/// Five seconds pass: the poll timer fires (and every other timer due by then).
let tick (w: World) : World = advance 5.0 w

/// The platform answers the agent's open of its event stream: as it always does (`Always` of the stream route), or it
/// opens it.
let streamAnswer (w: World) : World =
    if not w.Listening then
        w
    else
        let w, jitter = sample { w with Listening = false }
        let news =
            match w.Platform.Always.TryFind StreamRoute with
            | Some refusal -> Doorbell.Refused refusal
            | None -> Doorbell.Opened
        dispatch (Agent.Stream(selfId, news, jitter)) w

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

let kindGen = Gen.frequency [ 4, Gen.constant Peer; 2, Gen.constant Canvas; 1, Gen.constant Update; 1, Gen.constant NotifyEcho; 1, Gen.constant Garbled ]

