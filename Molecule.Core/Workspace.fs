/// One workspace of the agent: its lifecycle (register, heartbeat, 3 strikes, 410), its inbox ledger, how the
/// ledger is fetched, made durable and acknowledged, and whether this process polls it or serves it from the
/// ledger another process on this machine polls. Pure: every function returns the new state and its effects.
module Molecule.Core.Workspace

open System.Globalization
open Molecule.Protocol

/// How a workspace's ledger was found at start (read by the host).
type Boot =
    { Ledger: Ledger.State
      /// The file's generation, and events after its snapshot; 0, 0 when there is no file yet.
      Generation: int64
      Events: int
      FileExists: bool
      /// This process holds the poller lock.
      Leader: bool
      /// An old shared state file (cursor, queue, seen) waiting for the ownership check.
      Legacy: (string option * InboxMessage list * string list) option }

type State =
    { Config: Config
      Life: Lifecycle.State
      Ledger: Ledger.State
      Intake: Intake.State
      Generation: int64
      JournalEvents: int
      FileExists: bool
      Leader: bool
      Legacy: (string option * InboxMessage list * string list) option
      Doorbell: Doorbell.State
      /// File ids of this workspace's own uploads (send_message_to_user): never fetched as the user's (P35).
      OwnUploads: Set<string>
      /// Uploaded files being downloaded now, and the pacing of those whose download failed.
      Downloading: Set<string>
      DownloadPace: Map<string, Pacing.State> }

let boot (config: Config) (b: Boot) : State =
    { Config = config
      Life = Lifecycle.initial
      Ledger = b.Ledger
      Intake = Intake.start config.ReplaySecs b.Ledger
      Generation = b.Generation
      JournalEvents = b.Events
      FileExists = b.FileExists
      Leader = b.Leader
      Legacy = b.Legacy
      Doorbell = Doorbell.initial
      OwnUploads = Set.empty
      Downloading = Set.empty
      DownloadPace = Map.empty }

let id (ws: State) = ws.Config.WorkspaceId

let send (ws: State) (job: Job) (request: Request) = Send(Background(id ws, job), request)

// ---------------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------------

/// Applies ledger events and makes them durable: appended to the journal, or the file rewritten when it does not
/// exist yet or has grown long enough to compact. The Persist effect comes first, so nothing that reports the
/// change can leave before it.
let apply (events: Ledger.Event list) (ws: State) : State * Effect list =
    if events.IsEmpty then
        ws, []
    else
        let ledger = events |> List.fold Ledger.evolve ws.Ledger
        let ws = { ws with Ledger = ledger }
        if not ws.FileExists || ws.JournalEvents + events.Length > Journal.compactAfter then
            let generation = ws.Generation + 1L
            { ws with Generation = generation; JournalEvents = 0; FileExists = true },
            [ Persist(id ws, Rewrite(Journal.file generation ledger)) ]
        else
            { ws with JournalEvents = ws.JournalEvents + events.Length },
            [ Persist(id ws, Append(events |> List.map Journal.event)) ]

/// The messages the events delivered (in order).
let delivered (events: Ledger.Event list) : InboxMessage list =
    events |> List.collect (function Ledger.Took t -> t.Messages | _ -> [])

// ---------------------------------------------------------------------------------------------
// Fetching and acknowledging
// ---------------------------------------------------------------------------------------------

/// This process polls the workspace's inbox (enabled, the poller, no old shared file being checked).
let inboxActive (ws: State) = ws.Config.InboxEnabled && ws.Leader && ws.Legacy.IsNone

/// Sends the acknowledgement (or the floor question) the ledger allows now, if any.
let acknowledge (ws: State) : State * Effect list =
    if not (inboxActive ws) then
        ws, []
    else
        let intake, request = Acks.next ws.Config ws.Ledger ws.Intake
        { ws with Intake = intake }, (request |> Option.map (send ws Ack) |> Option.toList)

/// Starts the next fetch unless one is in flight (then it is coalesced into one more) or the route waits for its
/// retry timer; a floor still to be learnt is asked on the acknowledgement route meanwhile.
let fetchFor (trigger: Intake.Trigger) (ws: State) : State * Effect list =
    if not (inboxActive ws) then
        ws, []
    else
        let intake, request = Intake.nextFor trigger ws.Config ws.Ledger ws.Intake
        let ws, asks = acknowledge { ws with Intake = intake }
        ws, (request |> Option.map (send ws Poll) |> Option.toList) @ asks

/// Starts the next sweep (see `Intake.Trigger`).
let fetch (ws: State) : State * Effect list = fetchFor Intake.Sweep ws

/// A fetch answer: events made durable, then the next fetch when one is due, then acknowledgements. `uptime` is the
/// agent's, `sample` (0..1) the jitter of a retry.
let onPoll (uptime: float) (sample: float) (response: Response) (ws: State) : State * Effect list * InboxMessage list =
    let o = Intake.onResponse ws.Config uptime sample response ws.Ledger ws.Intake
    let ws, persisted = apply o.Events { ws with Intake = o.Intake }
    // A follow-up (a page that got somewhere, a coalesced ring) reads on from the newest row; an owed sweep still runs.
    let ws, more = if o.FetchNow then fetchFor Intake.Ring ws else ws, []
    let ws, acks = acknowledge ws
    // uploaded files reach the agent only once they are on disk (Staging)
    ws, persisted @ o.Effects @ more @ acks, delivered o.Events |> List.filter (Uploads.isPending >> not)

let onAck (uptime: float) (sample: float) (response: Response) (ws: State) : State * Effect list =
    let o = Acks.onAnswer ws.Config uptime sample response ws.Ledger ws.Intake
    let ws, persisted = apply o.Events { ws with Intake = o.State }
    let ws, more = if o.FetchNow then fetch ws else ws, []
    let ws, again = acknowledge ws
    ws, persisted @ o.Effects @ more @ again

/// A paced route's retry timer fired: the fetch or the acknowledgement goes again.
let retry (job: Job) (ws: State) : State * Effect list =
    match job with
    | Poll -> fetch { ws with Intake = Intake.fetchDue ws.Intake }
    | Ack -> acknowledge { ws with Intake = Acks.due ws.Intake }
    | _ -> ws, []

/// The agent handled a message: the pop is durable before anything reports it, then acknowledged, and a paused
/// intake fetches again.
let pop (activityId: string) (ws: State) : State * Effect list * bool =
    match Ledger.pop activityId ws.Ledger with
    | None -> ws, [], false
    | Some event ->
        let wasFull = Ledger.room ws.Ledger = 0
        let ws, persisted = apply [ event ] ws
        let ws, acks = acknowledge ws
        let ws, more = if wasFull || ws.Intake.Paused then fetch ws else ws, []
        ws, persisted @ acks @ more, true

// ---------------------------------------------------------------------------------------------
// Sharing the ledger with another process of this machine
// ---------------------------------------------------------------------------------------------

/// Lines another process appended to the journal: folded in; returns the messages that are new here.
let synced (lines: string list) (ws: State) : State * InboxMessage list =
    let before = ws.Ledger
    let ledger, n = Journal.catchUp lines before
    let fresh = Ledger.peek Ledger.capacity ledger |> List.filter (fun m -> not (Ledger.contains m.ActivityId before))
    { ws with Ledger = ledger; JournalEvents = ws.JournalEvents + n }, fresh

/// The journal was rewritten by another process (compaction): read it whole.
let reloaded (text: string) (ws: State) : State * Effect list * InboxMessage list =
    match Journal.restore (id ws) text with
    | Ok r ->
        let fresh = Ledger.peek Ledger.capacity r.State |> List.filter (fun m -> not (Ledger.contains m.ActivityId ws.Ledger))
        { ws with Ledger = r.State; Generation = r.Generation; JournalEvents = r.Events; FileExists = true }, [], fresh
    | Result.Error refusal ->
        ws, [ Log(Warning, $"inbox ledger of workspace {id ws} changed on disk and cannot be read ({Journal.describeRefusal refusal}); keeping the state in memory") ], []

// ---------------------------------------------------------------------------------------------
// The event stream (doorbell)
// ---------------------------------------------------------------------------------------------

let private streamWanted (ws: State) =
    ws.Config.StreamEnabled && ws.Config.InboxEnabled && ws.Leader && ws.Life.Removed.IsNone

/// Opens the event stream when this process polls the workspace and the stream is wanted.
let private listen (uptime: float) (ws: State) : State * Effect list =
    if streamWanted ws then
        let bell, effects = Doorbell.listen ws.Config uptime ws.Doorbell
        { ws with Doorbell = bell }, effects
    else
        ws, []

/// The answer to a Claim: this process now polls (the other one stopped), or still does not.
let claimed (uptime: float) (won: bool) (ws: State) : State * Effect list =
    if won && not ws.Leader then
        let ws = { ws with Leader = true; Intake = Intake.start ws.Config.ReplaySecs ws.Ledger }
        let ws, effects = fetch ws
        let ws, stream = listen uptime ws
        ws, Log(Info, $"this process now polls the inbox of workspace {id ws} (the other process on this machine stopped)") :: effects @ stream
    else
        ws, []

/// Time to open the stream again after a failure.
let streamTimer (uptime: float) (ws: State) : State * Effect list =
    match ws.Doorbell.Status with
    | Doorbell.Waiting -> listen uptime ws
    | _ -> ws, []

// ---------------------------------------------------------------------------------------------
// The old shared state file
// ---------------------------------------------------------------------------------------------

/// The ownership check of an old shared state file: its cursor is a row of this workspace (the platform answers
/// `since_id` with 200; a row of another workspace gets 410). Only then are its messages adopted.
let onLegacyProbe (response: Response) (ws: State) : State * Effect list * InboxMessage list =
    match ws.Legacy with
    | None -> ws, [], []
    | Some(cursor, queue, seen) ->
        let ws = { ws with Legacy = None; FileExists = false }
        match response with
        | Reply(status, _) when status >= 200 && status < 300 ->
            let migrated = Journal.ofLegacy (id ws) cursor queue seen
            let ws = { ws with Ledger = migrated; Intake = Intake.start ws.Config.ReplaySecs migrated }
            let generation = ws.Generation + 1L
            let ws = { ws with Generation = generation; JournalEvents = 0; FileExists = true }
            let count = queue.Length.ToString(CultureInfo.InvariantCulture)
            let ws, more = fetch ws
            ws,
            [ Persist(id ws, Rewrite(Journal.file generation migrated))
              DeleteStateFile Journal.legacyFileName
              Log(Info, $"migrated the shared inbox state file {Journal.legacyFileName} to {Journal.fileName (id ws)} ({count} unread message(s)): its cursor is a row of workspace {id ws}") ]
            @ more,
            queue
        | _ ->
            let why =
                match response with
                | Reply(status, _) -> $"the platform does not know its cursor as a row of workspace {id ws} (HTTP {status.ToString(CultureInfo.InvariantCulture)})"
                | _ -> "the platform could not be asked whether its cursor belongs to this workspace"
            let ws, more = fetch ws
            ws, Log(Info, $"left the shared inbox state file {Journal.legacyFileName} alone: {why}") :: more, []

// ---------------------------------------------------------------------------------------------
// Start and timers
// ---------------------------------------------------------------------------------------------

let start (ws: State) : State * Effect list =
    let cfg = ws.Config
    let register =
        if cfg.HeartbeatEnabled then [ send ws Register (Api.register cfg) ]
        else [ Log(Info, "heartbeat disabled (MOLECULE_MCP_DISABLE_HEARTBEAT): not registering") ]
    let hello = Log(Info, $"starting for workspace {cfg.WorkspaceId} on {cfg.PlatformUrl}")
    let probe = send ws WorkspaceProbe (Api.workspace cfg)
    if not cfg.InboxEnabled then
        ws, hello :: register @ [ probe; Log(Info, "inbox disabled (MOLECULE_MCP_DISABLE_INBOX): not polling") ]
    else
        let timer = After(cfg.PollIntervalSecs, PollTimer(id ws))
        match ws.Legacy with
        | Some(Some cursor, _, _) when ws.Leader ->
            let ws, stream = listen 0.0 ws
            ws, hello :: register @ [ probe; send ws LegacyProbe (Api.activity cfg (SinceId(cursor, 1))) ] @ stream @ [ timer ]
        | Some _ ->
            let ws = { ws with Legacy = None }
            let note = Log(Info, $"left the shared inbox state file {Journal.legacyFileName} alone: it has no cursor that could show it belongs to workspace {id ws}")
            let ws, poll = fetch ws
            let ws, stream = listen 0.0 ws
            ws, hello :: register @ [ probe; note ] @ poll @ stream @ [ timer ]
        | None when not ws.Leader ->
            let note =
                Log(Info, $"another molecule-mcp process on this machine polls workspace {id ws}; this one serves the same inbox ledger and takes over polling when that process stops")
            ws, hello :: register @ [ probe; note; timer ]
        | None ->
            let ws, poll = fetch ws
            let ws, stream = listen 0.0 ws
            ws, hello :: register @ [ probe ] @ poll @ stream @ [ timer ]

/// The poll timer: the safety-net fetch (or, for a follower, a claim), a retried acknowledgement, the next tick.
let tick (ws: State) : State * Effect list =
    let ws, work =
        if not ws.Config.InboxEnabled then ws, []
        elif ws.Leader then fetch ws
        else ws, [ Claim(id ws) ]
    let ws, acks = acknowledge ws
    ws, work @ acks @ [ After(ws.Config.PollIntervalSecs, PollTimer(id ws)) ]

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

/// Runs one command through the lifecycle decider.
let decide (command: Lifecycle.Command) (ws: State) : State * Effect list =
    let events = Lifecycle.decide ws.Config command ws.Life
    let life, effects =
        events
        |> List.fold (fun (state, acc) event -> Lifecycle.evolve state event, acc @ Lifecycle.effects ws.Config state event) (ws.Life, [])
    // A deleted workspace's stream is closed for good.
    let bell, closing = if life.Removed.IsSome then Doorbell.stop ws.Config ws.Doorbell else ws.Doorbell, []
    { ws with Life = life; Doorbell = bell }, effects @ closing

/// What the host reports about the event stream: a relevant ring or a (re)connect fetches; a 410 is the workspace's
/// removal (refusals of the token have the stream's own count: only the heartbeat's 3 strikes confirm a rejection).
let onStream (uptime: float) (news: Doorbell.News) (sample: float) (ws: State) : State * Effect list =
    let o = Doorbell.onNews ws.Config uptime news sample ws.Doorbell
    let ws = { ws with Doorbell = o.Doorbell }
    let ws, fetched = if o.Fetch then fetchFor Intake.Ring ws else ws, []
    let probe = if o.Probe then [ send ws WorkspaceProbe (Api.workspace ws.Config) ] else []
    let ws, gone =
        match o.Gone with
        | Some response -> decide (Lifecycle.ProbeOutcome response) ws
        | None -> ws, []
    // A stream that opened took the token.
    let ws, accepted = if news = Doorbell.Opened then decide Lifecycle.TokenTaken ws else ws, []
    ws, o.Effects @ fetched @ probe @ gone @ accepted

/// What any answer of a request of this workspace says about the token: a success clears strikes and a tool's
/// refusal, and shows the token taken when the request needs it (`needsToken`: not every route asks for it); a
/// tool's own 401 confirms a rejection (`forTool`).
let answered (forTool: bool) (needsToken: bool) (response: Response) (ws: State) : State * Effect list =
    match response with
    | Reply(status, _) when status >= 200 && status < 300 -> decide (if needsToken then Lifecycle.TokenTaken else Lifecycle.Succeeded) ws
    | Reply(401, _) when forTool -> decide (Lifecycle.ToolRefusal 401) ws
    | _ -> ws, []

let private exits (effects: Effect list) = effects |> List.exists (function Exit _ -> true | _ -> false)

let onRegister (response: Response) (ws: State) : State * Effect list =
    let ws, effects = decide (Lifecycle.RegisterOutcome response) ws
    // The first heartbeat follows the register answer at once; the loop then keeps its own cadence.
    ws, effects @ (if exits effects then [] else [ After(0.0, HeartbeatTimer(id ws)) ])

/// A heartbeat answer: the next heartbeat after the interval, or — after failures — as the pacing policy says (the
/// interval doubling up to a minute, jittered by `sample`).
let onHeartbeat (sample: float) (response: Response) (ws: State) : State * Effect list =
    let ws, effects = decide (Lifecycle.HeartbeatOutcome response) ws
    let failures = ws.Life.HeartbeatFailures + ws.Life.Refusals
    let interval = ws.Config.HeartbeatIntervalSecs
    let wait = if failures = 0 then interval else Pacing.delay (Pacing.heartbeat interval) failures sample
    ws, effects @ [ After(wait, HeartbeatTimer(id ws)) ]

/// MOLECULE_WORKSPACE_TOKEN_FILE changed: a valid new token is used from the next request on (heartbeats included);
/// a file that became unusable keeps the current token.
let onTokenFile (read: Config.FileRead) (ws: State) : State * Effect list =
    match ws.Config.TokenSource with
    | FromTokenFile path ->
        match Config.readTokenFile path read with
        | Ok token when token <> ws.Config.Token ->
            let ws = { ws with Config = { ws.Config with Token = token } }
            decide (Lifecycle.TokenReplaced path) ws
        | Ok _ -> ws, []
        | Result.Error(Config.Invalid(_, reason)) ->
            ws, [ Log(Warning, $"MOLECULE_WORKSPACE_TOKEN_FILE {reason}; keeping the token read before") ]
        | Result.Error _ -> ws, []
    | _ -> ws, []

/// The heartbeat timer: a heartbeat, and a quiet stream opened again.
let heartbeat (uptime: float) (ws: State) : State * Effect list =
    let bell, reopen = Doorbell.checkQuiet ws.Config uptime ws.Doorbell
    { ws with Doorbell = bell }, send ws Heartbeat (Api.heartbeat ws.Config (int uptime)) :: reopen
