/// The whole agent as one Elmish-style state machine: `update: Msg -> Model -> Model * Effect list`. It owns the
/// workspaces (lifecycle + inbox ledger each; the first is the primary), serves tool calls — the inbox tools from the
/// shared mailbox, the platform tools as programs routed to one workspace — pushes channel notifications and
/// re-notifies messages left unpopped. The host performs the effects and feeds every answer back as a message.
module Molecule.Core.Agent

open System
open Molecule.Protocol

/// A tool call waiting for something (a program knows the workspace it acts for).
type Pending =
    | AwaitResponse of WorkspaceId * (Response -> Program<ToolOutput>)
    | AwaitFiles of WorkspaceId * (FileCheck list -> Program<ToolOutput>)
    /// wait_for_message: answered by the next message or at its deadline.
    | Waiting of timeoutSecs: float
    /// A program's `Pause`: resumed by its timer.
    | AwaitPause of WorkspaceId * (float -> Program<ToolOutput>)

/// A call the client wants progress reports for: its tool and how many reports went out.
type Reporting = { Tool: string; Reports: int }

/// Seconds between progress reports of a long call (MCP clients give up on silent calls; at least every 10 s).
let progressEverySecs = 5.0

type Model =
    { /// The workspace tools act for unless told otherwise.
      Primary: WorkspaceId
      Workspaces: Map<WorkspaceId, Workspace.State>
      /// The client sent `notifications/initialized`: channel notifications may flow.
      Initialized: bool
      Calls: Map<int64, Pending>
      /// Peer id (PeerId's normal form) → display name, learnt from list_peers / discover.
      PeerNames: Map<string, string>
      /// The workspaces whose list_peers returned a peer.
      PeerSources: Map<PeerId, Set<WorkspaceId>>
      /// Seconds since start, as of the last timer (the core has no clock).
      Uptime: float
      /// When each waiting message was pushed (uptime), and the ones already pushed a second time.
      Notified: Map<string, float>
      Renotified: Set<string>
      /// The calls that get progress reports.
      Progress: Map<int64, Reporting>
      /// Names the registry gave for peers whose messages came without one (lower-case id; bounded).
      Discovered: Map<string, string>
      DiscoveredOrder: string list
      /// Peers being looked up, with the letters whose push waits for the name.
      Lookups: Map<string, Mailbox.Letter list>
      /// Lookups that failed, and the uptime until which they are not tried again.
      Misses: Map<string, float>
      /// The loop guard over peers' messages, the messages it kept from being pushed (still in the inbox), and the
      /// start-up reads of the pairs the platform holds paused.
      Pairs: Pairs.State
      /// Claude Code's permission prompts relayed and not answered yet, by the prompt's id.
      Prompts: Map<string, Permissions.Waiting> }

/// Names kept from registry lookups (the oldest forgotten first).
let discoveredCapacity = 500

/// A failed lookup of a peer's name is not tried again for this long.
let missSecs = 30.0

/// How long a name lookup may hold a push.
let lookupTimeoutSecs = 3.0

type Msg =
    /// The process started: register, probe, start intake.
    | Start
    /// The answer to an earlier `Send(purpose, request)`, with a random sample (0..1) for a retry's jitter.
    | Responded of Purpose * Response * sample: float
    | FilesChecked of call: int64 * FileCheck list
    /// An earlier `After(seconds, timer)` elapsed; uptime is seconds since start.
    | TimerFired of Timer * uptimeSecs: float
    /// The MCP client sent `notifications/initialized`.
    | ClientInitialized
    /// A tool call: its id, a fresh random UUID, and what Tools.parse made of its name and arguments (the host parses
    /// them as they arrive: nothing mutable crosses into the core).
    | ToolCalled of call: int64 * nonce: string * parsed: Result<ParsedCall, string>
    /// The client gave up on a call (cancelled, or disconnected): forget it, send nothing more for it.
    | ToolCancelled of call: int64
    /// The client sent a progressToken with this call: report progress while it runs.
    | ProgressRequested of call: int64 * tool: string
    /// The outcome of an earlier `Download(purpose, request, path)`, with a random sample (0..1) for a retry's jitter.
    | Downloaded of Purpose * DownloadResult * sample: float
    /// Lines another process of this machine appended to a workspace's journal.
    | Synced of workspace: WorkspaceId * lines: string list
    /// A workspace's journal was rewritten by another process.
    | Reloaded of workspace: WorkspaceId * text: string
    /// The answer to `Claim`.
    | Claimed of workspace: WorkspaceId * won: bool
    /// What happened to a workspace's event stream, with a random sample (0..1) for the backoff's jitter.
    | Stream of workspace: WorkspaceId * news: Doorbell.News * sample: float
    /// MOLECULE_WORKSPACE_TOKEN_FILE of a workspace changed on disk: what is there now.
    | TokenFileChanged of workspace: WorkspaceId * Config.FileRead
    /// The client relayed a permission prompt (`notifications/claude/channel/permission_request`).
    | PermissionRequested of Permissions.Prompt

/// The agent for several workspaces (the first is the primary).
let initMany (workspaces: (Config * Workspace.Boot) list) : Model =
    let primary = workspaces |> List.head |> fst
    { Primary = primary.WorkspaceId
      Workspaces = workspaces |> List.map (fun (c, b) -> c.WorkspaceId, Workspace.boot c b) |> Map.ofList
      Initialized = false
      Calls = Map.empty
      PeerNames = Map.empty
      PeerSources = Map.empty
      Uptime = 0.0
      Notified = Map.empty
      Renotified = Set.empty
      Progress = Map.empty
      Discovered = Map.empty
      DiscoveredOrder = []
      Lookups = Map.empty
      Misses = Map.empty
      Pairs = Pairs.empty
      Prompts = Map.empty }

/// The agent for one workspace.
let init (config: Config) (boot: Workspace.Boot) : Model = initMany [ config, boot ]

let primary (model: Model) : Workspace.State = model.Workspaces[model.Primary]

/// One process serves several workspaces: messages and lines say which.
let multi (model: Model) = model.Workspaces.Count > 1

/// Unread messages of every workspace this process serves.
let unread (model: Model) = Mailbox.count model.Workspaces

let private withWorkspace (ws: Workspace.State) (model: Model) =
    { model with Workspaces = model.Workspaces.Add(Workspace.id ws, ws) }

// ---------------------------------------------------------------------------------------------
// Push and waiters
// ---------------------------------------------------------------------------------------------

/// Every name this process knows for a peer: learnt from list_peers and delegations, else from a registry lookup.
let names (model: Model) : Map<string, string> =
    model.PeerNames |> Map.fold (fun (acc: Map<string, string>) k v -> acc.Add(k, v)) model.Discovered

/// A letter whose sender this process cannot name yet: a peer message without the platform's name (a platform
/// without `include=peer_info`), from a peer not looked up lately.
let private unnamed (known: Map<string, string>) (model: Model) (l: Mailbox.Letter) : string option =
    match l.Message.PeerName, WorkspaceId.tryParse l.Message.PeerId with
    | None, Some peer when l.Message.Kind <> CanvasUser ->
        let key = peer.Value
        let missed = model.Misses.TryFind key |> Option.exists (fun until -> model.Uptime < until)
        if known.ContainsKey key || known.ContainsKey l.Message.PeerId || missed then None else Some key
    | _ -> None

let private notifyAll (letters: Mailbox.Letter list) (model: Model) : Model * Effect list =
    if letters.IsEmpty then
        model, []
    else
        let known = names model
        let notified = letters |> List.fold (fun (m: Map<string, float>) l -> m.Add(l.Message.ActivityId, model.Uptime)) model.Notified
        { model with Notified = notified }, letters |> List.map (Mailbox.event (multi model) known >> Notify)

/// Pushes letters; one whose sender has no name yet waits for one registry lookup per peer (answered, failed or
/// timed out within `lookupTimeoutSecs`), so that the first message of a peer is named too.
let private push (letters: Mailbox.Letter list) (model: Model) : Model * Effect list =
    if not model.Initialized || Pairs.reading model.Pairs || letters.IsEmpty then
        model, []
    else
        let known = names model
        let held, ready = letters |> List.partition (fun l -> (unnamed known model l).IsSome)
        let model, asks =
            held
            |> List.fold
                (fun (m: Model, acc) l ->
                    let key = (unnamed known m l).Value
                    match m.Lookups.TryFind key with
                    | Some waiting -> { m with Lookups = m.Lookups.Add(key, waiting @ [ l ]) }, acc
                    | None ->
                        let ask =
                            match m.Workspaces.TryFind l.Arrival with
                            | Some ws ->
                                [ Send(Background(l.Arrival, Discover key), { Api.discover ws.Config key with TimeoutSecs = lookupTimeoutSecs }) ]
                            | None -> []
                        { m with Lookups = m.Lookups.Add(key, [ l ]) }, acc @ ask)
                (model, [])
        let model, pushed = notifyAll ready model
        model, asks @ pushed

/// The registry's answer about a peer: its name is kept (bounded), or the miss for `missSecs`; the letters that
/// waited for it are pushed now (those still waiting in the inbox).
let private discovered (peer: string) (response: Response) (model: Model) : Model * Effect list =
    let name =
        match response with
        | Reply(status, body) when status >= 200 && status < 300 ->
            Json.tryParse body |> Option.bind (Json.stringProp "name") |> Option.filter (fun n -> not (String.IsNullOrWhiteSpace n))
        | _ -> None
    let model =
        match name with
        | Some n ->
            let order = (model.DiscoveredOrder |> List.filter (fun k -> k <> peer)) @ [ peer ]
            let forgotten, kept = if order.Length > discoveredCapacity then List.splitAt (order.Length - discoveredCapacity) order else [], order
            { model with
                Discovered = forgotten |> List.fold (fun (m: Map<string, string>) k -> m.Remove k) (model.Discovered.Add(peer, n))
                DiscoveredOrder = kept
                Misses = model.Misses.Remove peer }
        | None -> { model with Misses = model.Misses.Add(peer, model.Uptime + missSecs) }
    let waiting = defaultArg (model.Lookups.TryFind peer) []
    let model = { model with Lookups = model.Lookups.Remove peer }
    let live = waiting |> List.filter (fun l -> (Mailbox.owner l.Message.ActivityId model.Workspaces).IsSome)
    notifyAll live model

/// Answers every waiting wait_for_message with the oldest waiting message.
let private wake (model: Model) : Model * Effect list =
    match Mailbox.head model.Workspaces with
    | None -> model, []
    | Some l ->
        let waiting = model.Calls |> Map.filter (fun _ p -> match p with Waiting _ -> true | _ -> false)
        let answer = InboxTools.waited (Mailbox.json (multi model) (names model) l)
        { model with Calls = waiting |> Map.fold (fun (calls: Map<int64, Pending>) call _ -> calls.Remove call) model.Calls },
        waiting |> Map.toList |> List.map (fun (call, _) -> Answer(call, answer, None))

// ---------------------------------------------------------------------------------------------
// Updates the agent answers itself: permission prompts and the loop guard's pauses
// ---------------------------------------------------------------------------------------------

/// A request update of the agent's own making (a relayed permission prompt, a loop-guard pause) is answered here and
/// handled at once: never pushed, never waiting in the inbox.
let private ownUpdate (m: InboxMessage) : RequestUpdate.Update option =
    match m.Kind with
    | RequestUpdate u when u.Source <> RequestUpdate.FromAgent -> Some u
    | _ -> None

/// What an own update does: a decided prompt is answered (once, in time); an approved pause resumes its pair.
let private consume (m: InboxMessage) (u: RequestUpdate.Update) (model: Model) : Model * Effect list =
    match u.Source with
    | RequestUpdate.PermissionRelay ->
        let prompt = model.Prompts |> Map.tryFindKey (fun _ w -> w.Request = Some u.RequestId)
        match prompt with
        | Some id ->
            match Permissions.behavior model.Prompts[id] u (Activity.parseTime m.CreatedAt) with
            | Some behavior -> { model with Prompts = model.Prompts.Remove id }, [ AnswerPermission(id, behavior) ]
            | None -> model, []
        | None -> model, []
    | RequestUpdate.LoopGuard when u.Event = "responded" && u.Status = "approved" ->
        match LoopGuard.peerOfTitle u.Title with
        | Some peer ->
            let pairs, effects = Pairs.resumed peer model.Initialized model.Pairs
            { model with Pairs = pairs }, effects
        | None -> model, []
    | _ -> model, []

/// The loop guard's look at one new message (Pairs.judge): true when it may be pushed.
let private guard (ws: WorkspaceId) (l: Mailbox.Letter) (model: Model) : Model * Effect list * bool =
    let who (l: Mailbox.Letter) = Channel.sender l.PlatformUrl (Mailbox.named (names model) l).Message |> fun s -> defaultArg s.Name "a peer agent"
    let pairs, effects, ok = Pairs.judge model.Workspaces[ws].Config who model.Initialized l model.Pairs
    { model with Pairs = pairs }, effects, ok

/// The messages waiting to be announced: every one not held and not pushed yet in this run.
let private backlog (model: Model) =
    Mailbox.all model.Workspaces
    |> List.filter (fun l -> not (Pairs.isHeld l.Message.ActivityId model.Pairs || model.Notified.ContainsKey l.Message.ActivityId))

/// The answer to a start-up read of the pairs the platform holds paused: folded in; once every read is answered the
/// backlog is announced (when the client is ready).
let private pairsRead (ws: WorkspaceId) (status: string) (response: Response) (model: Model) : Model * Effect list =
    let pairs, logs = Pairs.restored ws status response (Mailbox.all model.Workspaces) model.Pairs
    let model = { model with Pairs = pairs }
    let model, pushed = if Pairs.reading pairs then model, [] else push (backlog model) model
    model, logs @ pushed

/// New messages of a workspace: the agent's own updates answered and handled, the rest judged by the loop guard,
/// pushed (after the effects that made them durable) and handed to waiting calls.
let private arrived (ws: WorkspaceId) (messages: InboxMessage list) (model: Model) : Model * Effect list =
    let platformUrl = model.Workspaces.TryFind ws |> Option.map (fun w -> w.Config.PlatformUrl) |> Option.defaultValue ""
    let model, handled, kept =
        messages
        |> List.fold
            (fun (model: Model, effects, kept) m ->
                match ownUpdate m, model.Workspaces.TryFind ws with
                | Some u, Some w ->
                    let w, popped, _ = Workspace.pop m.ActivityId w
                    let model, answered = consume m u { model with Workspaces = model.Workspaces.Add(ws, w) }
                    model, effects @ popped @ answered, kept
                | _ -> model, effects, kept @ [ m ])
            (model, [], [])
    let letters = kept |> List.map (fun m -> { Mailbox.Message = m; Mailbox.Arrival = ws; Mailbox.PlatformUrl = platformUrl })
    let model, guarded, pass =
        letters
        |> List.fold
            (fun (model, effects, pass) l ->
                let model, more, ok = guard ws l model
                model, effects @ more, (if ok then pass @ [ l ] else pass))
            (model, [], [])
    let model, pushed = push pass model
    let model, woken = if kept.IsEmpty then model, [] else wake model
    model, handled @ guarded @ pushed @ woken

/// Pushes once more, after `RenotifySecs`, every message still waiting that was pushed only once.
let private renotify (model: Model) : Model * Effect list =
    let after = (primary model).Config.RenotifySecs
    if after <= 0.0 || not model.Initialized then
        model, []
    else
        let waiting = Mailbox.all model.Workspaces
        let due =
            waiting
            |> List.filter (fun l ->
                not (model.Renotified.Contains l.Message.ActivityId)
                && (match model.Notified.TryFind l.Message.ActivityId with Some t -> model.Uptime - t >= after | None -> false))
        let live = waiting |> List.map (fun l -> l.Message.ActivityId) |> Set.ofList
        { model with
            Renotified = due |> List.fold (fun (s: Set<string>) l -> s.Add l.Message.ActivityId) (Set.intersect model.Renotified live)
            Notified = model.Notified |> Map.filter (fun id _ -> live.Contains id) },
        due |> List.map (Mailbox.event (multi model) (names model) >> Notify)

// ---------------------------------------------------------------------------------------------
// Tool programs
// ---------------------------------------------------------------------------------------------

let private contextOf (model: Model) (ws: Workspace.State) (nonce: string) : ToolContext =
    { Config = ws.Config
      Removed = ws.Life.Removed
      PeerNames = model.PeerNames
      Nonce = nonce
      Via = multi model
      Degraded = Lifecycle.degraded ws.Config ws.Life
      Served = model.Workspaces |> Seq.map (fun kv -> kv.Key) |> List.ofSeq }

/// The tool context of the primary workspace.
let context (model: Model) (nonce: string) : ToolContext = contextOf model (primary model) nonce

let private observe (ran: WorkspaceId) (observations: Observation list) (model: Model) : Model * Effect list =
    observations
    |> List.fold
        (fun (model, effects) observation ->
            match observation with
            | PeerNames names ->
                { model with PeerNames = names |> List.fold (fun (m: Map<string, string>) (id, name) -> m.Add(id.Value, name)) model.PeerNames },
                effects
            | PeersVia(ws, peers) ->
                let add (m: Map<PeerId, Set<WorkspaceId>>) (peer: PeerId) = m.Add(peer, (defaultArg (m.TryFind peer) Set.empty).Add ws)
                { model with PeerSources = peers |> List.fold add model.PeerSources }, effects
            | WorkspaceRemoved _ ->
                match model.Workspaces.TryFind ran with
                | Some ws ->
                    let ws, more = Workspace.decide (Lifecycle.Observed observation) ws
                    withWorkspace ws model, effects @ more
                | None -> model, effects
            | OwnUploads(wsId, fileIds) ->
                match model.Workspaces.TryFind wsId with
                | Some ws ->
                    let ws, more, announced = Staging.ownUploads (fileIds |> List.map (fun f -> f.Value)) ws
                    let model, pushed = arrived wsId announced (withWorkspace ws model)
                    model, effects @ more @ pushed
                | None -> model, effects)
        (model, [])

/// Runs a program until it needs the host, or answers the call.
let private step (call: int64) (ran: WorkspaceId) (program: Program<ToolOutput>) (model: Model) : Model * Effect list =
    match program with
    | Done(output, observations) ->
        let model, effects = observe ran observations model
        { model with Calls = model.Calls.Remove call },
        effects @ [ Answer(call, output, InboxTools.pendingNotice (unread model)) ]
    | Call(request, k) -> { model with Calls = model.Calls.Add(call, AwaitResponse(ran, k)) }, [ Send(ForTool call, request) ]
    | CheckFiles(paths, k) -> { model with Calls = model.Calls.Add(call, AwaitFiles(ran, k)) }, [ CheckPaths(call, paths) ]
    | Pause(seconds, k) -> { model with Calls = model.Calls.Add(call, AwaitPause(ran, k)) }, [ After(seconds, ProgramTimer call) ]

let private answer call output = [ Answer(call, output, None) ]

let private failure (text: string) : ToolOutput = { Text = text; IsError = true }

let private inboxTool (call: int64) (toolCall: ToolCall) (model: Model) : Model * Effect list =
    let json = Mailbox.json (multi model) (names model)
    match toolCall with
    | _ when not (primary model).Config.InboxEnabled -> model, answer call (failure InboxTools.disabled)
    | InboxPeek limit ->
        model, answer call (InboxTools.peeked (Mailbox.peek (InboxTools.peekLimit limit) model.Workspaces |> List.map json))
    | InboxPop activityId ->
        match Mailbox.owner activityId.Value model.Workspaces with
        | None -> model, answer call (InboxTools.popped false activityId)
        | Some owner ->
            let ws, effects, removed = Workspace.pop activityId.Value model.Workspaces[owner]
            let model =
                { withWorkspace ws model with
                    Notified = model.Notified.Remove activityId.Value
                    Renotified = model.Renotified.Remove activityId.Value
                    Pairs = Pairs.handled activityId.Value model.Pairs }
            // effects begin with the durable write: the answer leaves after it.
            model, effects @ answer call (InboxTools.popped removed activityId)
    | WaitForMessage timeout ->
        let t = InboxTools.waitTimeout timeout
        match Mailbox.head model.Workspaces with
        | Some l -> model, answer call (InboxTools.waited (json l))
        | None when t <= 0.0 -> model, answer call (InboxTools.timedOut t)
        | None -> { model with Calls = model.Calls.Add(call, Waiting t) }, [ After(t, WaitDeadline call) ]
    | _ -> model, answer call (failure "Error: not an inbox tool.")

/// The workspaces a platform tool acts for (see Routing.route).
let route (model: Model) (parsed: ParsedCall) : Result<Workspace.State list, string> =
    Routing.route model.Primary model.Workspaces model.PeerSources parsed

/// A call's arguments the tool cannot take: "Error: <why>" (an unknown tool keeps the reference's own words).
let private refused (text: string) =
    if text.StartsWith("Unknown tool", StringComparison.Ordinal) then text else "Error: " + text

/// list_peers of several workspaces: one answer, the lines of each in turn.
let private joined (programs: Program<ToolOutput> list) : Program<ToolOutput> =
    programs
    |> List.reduce (fun first next ->
        first
        |> Program.bind (fun a -> next |> Program.map (fun b -> { Text = a.Text + "\n" + b.Text; IsError = a.IsError && b.IsError })))

/// A call's typed tool and the workspaces it runs in, or why it is refused.
let private targetsOf (model: Model) (parsed: Result<ParsedCall, string>) : Result<ToolCall * Workspace.State list, string> =
    match parsed with
    | Result.Error text -> Result.Error(refused text)
    | Ok p -> route model p |> Result.map (fun targets -> p.Call, targets)

let private toolCalled call nonce (parsed: Result<ParsedCall, string>) (model: Model) : Model * Effect list =
    match targetsOf model parsed with
    | Result.Error text -> model, answer call (failure text)
    | Ok(toolCall, targets) ->
        let programs = targets |> List.choose (fun ws -> Dispatch.run (contextOf model ws nonce) toolCall |> Option.map (fun p -> ws, p))
        match programs with
        | [] -> inboxTool call toolCall model
        | (first, _) :: _ -> step call (Workspace.id first) (joined (List.map snd programs)) model

// ---------------------------------------------------------------------------------------------
// Progress and cancellation
// ---------------------------------------------------------------------------------------------

let private whole (f: float) = (Math.Round f).ToString(Globalization.CultureInfo.InvariantCulture)

/// The client asked for progress of a call still running: the first report after `progressEverySecs`.
let private progressRequested (call: int64) (tool: string) (model: Model) : Model * Effect list =
    if model.Calls.ContainsKey call && not (model.Progress.ContainsKey call) then
        { model with Progress = model.Progress.Add(call, { Tool = tool; Reports = 0 }) }, [ After(progressEverySecs, ProgressTimer call) ]
    else
        model, []

/// A report for a call still running (and the next one scheduled); nothing once it has been answered or cancelled.
let private reportProgress (call: int64) (model: Model) : Model * Effect list =
    match model.Progress.TryFind call, model.Calls.TryFind call with
    | Some r, Some pending ->
        let n = r.Reports + 1
        let elapsed = float n * progressEverySecs
        let total, message =
            match pending with
            | Waiting t -> Some t, $"no message yet after {whole elapsed} s (waiting up to {whole t} s)"
            | _ -> None, $"{r.Tool} still running after {whole elapsed} s"
        { model with Progress = model.Progress.Add(call, { r with Reports = n }) },
        [ Effect.Progress(call, { Progress = elapsed; Total = total; Message = message }); After(progressEverySecs, ProgressTimer call) ]
    | _ -> { model with Progress = model.Progress.Remove call }, []

/// The client gave up on a call: forgotten at once (a wait ends, a program's later steps never run, nothing is sent
/// again); a request already on its way is not taken back.
let private cancelled (call: int64) (model: Model) : Model * Effect list =
    let model' = { model with Calls = model.Calls.Remove call; Progress = model.Progress.Remove call }
    match model.Calls.TryFind call with
    | Some(Waiting _) -> model', [ Log(Info, "wait_for_message cancelled by the client") ]
    | Some _ -> model', [ Log(Info, "tool call cancelled by the client: its remaining steps will not run") ]
    | None -> model', []

/// A poll answer's messages, then the uploaded files it brought moved on (their announcement joins the messages).
let private stage (ws: Workspace.State, effects: Effect list, fresh: InboxMessage list) =
    let ws, files, announced = Staging.uploads ws
    ws, effects @ files, fresh @ announced

// ---------------------------------------------------------------------------------------------
// Permission prompts
// ---------------------------------------------------------------------------------------------

/// What came of a request the agent raised itself (a line for the log): its id, or why not.
let private raised (what: string) (subject: string) (response: Response) : string =
    match response with
    | Reply(status, body) when status >= 200 && status < 300 ->
        let rid = Json.tryParse body |> Option.bind (Json.stringProp "request_id") |> Option.defaultValue "?"
        $"{what} for {subject} raised as request {rid}"
    | Reply(status, body) when RequestTools.isRouteMissing status body -> $"{what} for {subject} not raised: this platform has no requests inbox"
    | Reply(status, body) -> $"{what} for {subject} not raised: {ToolKit.httpDetail status body}"
    | TransportError m -> $"{what} for {subject} not raised: {m}"
    | TimedOut _ -> $"{what} for {subject} not raised: the platform did not answer"

/// A prompt from the client: relayed as an approval of the primary workspace's user, until it expires.
let private permissionRequested (p: Permissions.Prompt) (model: Model) : Model * Effect list =
    let ws = primary model
    if not ws.Config.PermissionRelay || not (Permissions.isPromptId p.RequestId) || model.Prompts.ContainsKey p.RequestId then
        model, []
    else
        let expires = Permissions.expiresAt ws.Config.PermissionTimeoutSecs p.Now
        let ask = Api.createRequest ws.Config (Permissions.request p) (Permissions.extras expires)
        { model with Prompts = model.Prompts.Add(p.RequestId, { Workspace = model.Primary; Request = None; ExpiresAt = expires }) },
        [ Send(Background(model.Primary, RaisePermission p.RequestId), ask)
          After(float ws.Config.PermissionTimeoutSecs, PermissionDeadline p.RequestId) ]

/// The platform's answer to a relayed prompt's request: its id is kept to match the decision; a failure forgets it.
let private relayed (id: string) (response: Response) (model: Model) : Model * Effect list =
    match model.Prompts.TryFind id, response with
    | Some w, Reply(status, body) when status >= 200 && status < 300 ->
        match Json.tryParse body |> Option.bind (Json.stringProp "request_id") with
        | Some rid -> { model with Prompts = model.Prompts.Add(id, { w with Request = Some rid }) }, [ Log(Info, Permissions.relayedLine id rid) ]
        | None -> { model with Prompts = model.Prompts.Remove id }, [ Log(Warning, Permissions.failedLine id "the platform's answer has no request_id") ]
    | Some _, _ -> { model with Prompts = model.Prompts.Remove id }, [ Log(Warning, raised "permission prompt" id response) ]
    | None, _ -> model, []

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

let private onWorkspace (wsId: WorkspaceId) (model: Model) (f: Workspace.State -> Workspace.State * Effect list) =
    match model.Workspaces.TryFind wsId with
    | Some ws ->
        let ws, effects = f ws
        withWorkspace ws model, effects
    | None -> model, []

let private withArrivals (wsId: WorkspaceId) (model: Model) (f: Workspace.State -> Workspace.State * Effect list * InboxMessage list) =
    match model.Workspaces.TryFind wsId with
    | Some ws ->
        let ws, effects, fresh = f ws
        let model, more = arrived wsId fresh (withWorkspace ws model)
        model, effects @ more
    | None -> model, []

let private handle (msg: Msg) (model: Model) : Model * Effect list =
    match msg with
    | Start ->
        let model, effects =
            model.Workspaces
            |> Seq.fold
                (fun (model, effects) kv ->
                    let ws, more = Workspace.start kv.Value
                    // files a restored ledger still waits for; announced with the rest once the client is ready
                    let ws, files, _ = Staging.uploads ws
                    withWorkspace ws model, effects @ more @ files)
                (model, [])
        // the pairs paused before a restart are read before anything is pushed
        let pairs, reads = Pairs.read (model.Workspaces |> Seq.map (fun kv -> kv.Value.Config) |> List.ofSeq) model.Pairs
        { model with Pairs = pairs }, effects @ reads
    | Responded(Background(ws, Register), response, _) -> onWorkspace ws model (Workspace.onRegister response)
    | Responded(Background(ws, Heartbeat), response, sample) -> onWorkspace ws model (Workspace.onHeartbeat sample response)
    | Responded(Background(ws, WorkspaceProbe), response, _) -> onWorkspace ws model (Workspace.decide (Lifecycle.ProbeOutcome response))
    | Responded(Background(ws, Poll), response, sample) -> withArrivals ws model (Workspace.onPoll model.Uptime sample response >> stage)
    | Responded(Background(ws, AckUpload fileId), response, _) -> onWorkspace ws model (Staging.onUploadAck fileId response)
    | Responded(Background(_, FetchUpload _), _, _) -> model, []
    | Responded(Background(_, Discover peer), response, _) -> discovered peer response model
    | Responded(Background(_, RaiseGuard peer), response, _) -> model, [ Log(Info, raised "loop guard approval" peer response) ]
    | Responded(Background(ws, RestoreGuard status), response, _) -> pairsRead ws status response model
    | Responded(Background(_, RaisePermission id), response, _) -> relayed id response model
    | TimerFired(PermissionDeadline id, uptime) ->
        let model = { model with Uptime = uptime }
        if model.Prompts.ContainsKey id then { model with Prompts = model.Prompts.Remove id }, [ Log(Info, Permissions.expiredLine id) ]
        else model, []
    | PermissionRequested prompt -> permissionRequested prompt model
    | Downloaded(Background(ws, FetchUpload fileId), result, sample) -> withArrivals ws model (Staging.onDownload model.Uptime sample fileId result)
    | Downloaded _ -> model, []
    | Responded(Background(ws, Ack), response, sample) -> onWorkspace ws model (Workspace.onAck model.Uptime sample response)
    | Responded(Background(ws, LegacyProbe), response, _) -> withArrivals ws model (Workspace.onLegacyProbe response)
    | Responded(ForTool call, response, _) ->
        match model.Calls.TryFind call with
        | Some(AwaitResponse(ran, k)) -> step call ran (k response) model
        | _ -> model, []
    | FilesChecked(call, results) ->
        match model.Calls.TryFind call with
        | Some(AwaitFiles(ran, k)) -> step call ran (k results) model
        | _ -> model, []
    | TimerFired(HeartbeatTimer ws, uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.heartbeat uptime)
    | TimerFired(StreamTimer ws, uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.streamTimer uptime)
    | TimerFired(RetryTimer(ws, FetchUpload fileId), uptime) -> withArrivals ws { model with Uptime = uptime } (Staging.retry fileId)
    | TimerFired(RetryTimer(ws, job), uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.retry job)
    | TimerFired(PollTimer ws, uptime) ->
        let model, effects = onWorkspace ws { model with Uptime = uptime } Workspace.tick
        // downloads that failed are tried again
        let model, files = withArrivals ws model Staging.uploads
        let model, again = if ws = model.Primary then renotify model else model, []
        model, effects @ files @ again
    | TimerFired(ProgramTimer call, uptime) ->
        let model = { model with Uptime = uptime }
        match model.Calls.TryFind call with
        | Some(AwaitPause(ran, k)) -> step call ran (k uptime) model
        | _ -> model, []
    | TimerFired(ProgressTimer call, uptime) -> reportProgress call { model with Uptime = uptime }
    | TimerFired(WaitDeadline call, uptime) ->
        let model = { model with Uptime = uptime }
        match model.Calls.TryFind call with
        | Some(Waiting t) -> { model with Calls = model.Calls.Remove call }, answer call (InboxTools.timedOut t)
        | _ -> model, []
    | ClientInitialized when model.Initialized -> model, []
    | ClientInitialized ->
        // Messages that arrived before the handshake, or are still unpopped from an earlier run, are announced now.
        let model = { model with Initialized = true }
        push (backlog model) model
    | ToolCalled(call, nonce, parsed) -> toolCalled call nonce parsed model
    | ToolCancelled call -> cancelled call model
    | ProgressRequested(call, tool) -> progressRequested call tool model
    | Synced(ws, lines) ->
        withArrivals ws model (fun w ->
            let w, fresh = Workspace.synced lines w
            w, [], fresh)
    | Reloaded(ws, text) -> withArrivals ws model (Workspace.reloaded text)
    | Claimed(ws, won) -> onWorkspace ws model (Workspace.claimed model.Uptime won)
    | Stream(ws, news, sample) -> onWorkspace ws model (Workspace.onStream model.Uptime news sample)
    | TokenFileChanged(ws, read) -> onWorkspace ws model (Workspace.onTokenFile read)

/// What an answer says about the token of the workspace it was for: a success clears strikes and a tool's refusal,
/// a tool's own 401 confirms a rejection (the heartbeat's answers have their own outcome).
let private observeAnswer (purpose: Purpose) (response: Response) (model: Model) : Model * Effect list =
    let ran =
        match purpose with
        | Background(_, Heartbeat) -> None
        | Background(ws, _) -> Some(ws, false)
        | ForTool call ->
            match model.Calls.TryFind call with
            | Some(AwaitResponse(ws, _)) -> Some(ws, true)
            | _ -> None
    match ran with
    | Some(ws, forTool) -> onWorkspace ws model (Workspace.answered forTool response)
    | None -> model, []

let update (msg: Msg) (model: Model) : Model * Effect list =
    match msg with
    | Responded(purpose, response, _) ->
        let model, seen = observeAnswer purpose response model
        let model, effects = handle msg model
        model, seen @ effects
    | _ -> handle msg model
