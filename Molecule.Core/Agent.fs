/// The whole agent as one Elmish-style state machine: `update: Msg -> Model -> Model * Effect list`. It owns the
/// workspaces (lifecycle + inbox ledger each; the first is the primary), serves tool calls — the inbox tools from the
/// shared mailbox, the platform tools as programs routed to one workspace — pushes channel notifications and
/// re-notifies messages left unpopped. The host performs the effects and feeds every answer back as a message.
module Molecule.Core.Agent

open System
open Molecule.Protocol
open Molecule.Core.AgentModel

/// The agent's state (see AgentModel).
type Model = AgentModel.Model

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

// The names the hosts and the tests use, kept here (their code moved to AgentModel and ToolCalls).

/// Seconds between progress reports of a long call (see AgentModel).
let progressEverySecs = AgentModel.progressEverySecs

/// Names kept from registry lookups (see AgentModel).
let discoveredCapacity = AgentModel.discoveredCapacity

/// A failed lookup of a peer's name is not tried again for this long (see AgentModel).
let missSecs = AgentModel.missSecs

let primary (model: Model) : Workspace.State = AgentModel.primary model

/// Unread messages of every workspace this process serves.
let unread (model: Model) = AgentModel.unread model

/// The tool context of the primary workspace.
let context (model: Model) (nonce: string) : ToolContext = ToolCalls.context model nonce

/// The workspaces a platform tool acts for (see Routing.route).
let route (model: Model) (parsed: ParsedCall) : Result<Workspace.State list, string> = ToolCalls.route model parsed

/// A poll answer's messages, then the uploaded files it brought moved on (their announcement joins the messages).
let private stage (ws: Workspace.State, effects: Effect list, fresh: InboxMessage list) =
    let ws, files, announced = Staging.uploads ws
    ws, effects @ files, fresh @ announced

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
        let model, more = Arrivals.arrived wsId fresh (withWorkspace ws model)
        model, effects @ more
    | None -> model, []

/// The answer of a background request of workspace `ws`.
let private onBackground (ws: WorkspaceId) (job: Job) (response: Response) (sample: float) (model: Model) : Model * Effect list =
    match job with
    | Register -> onWorkspace ws model (Workspace.onRegister response)
    | Heartbeat -> onWorkspace ws model (Workspace.onHeartbeat sample response)
    | WorkspaceProbe -> onWorkspace ws model (Workspace.decide (Lifecycle.ProbeOutcome response))
    | Poll -> withArrivals ws model (Workspace.onPoll model.Uptime sample response >> stage)
    | AckUpload fileId -> onWorkspace ws model (Staging.onUploadAck fileId response)
    | FetchUpload _ -> model, []
    | Discover peer -> Arrivals.discovered peer response model
    | RaiseGuard peer -> model, [ Log(Info, Arrivals.raised "loop guard approval" peer response) ]
    | RestoreGuard status -> Arrivals.pairsRead ws status response model
    | RaisePermission id -> Arrivals.relayed id response model
    | Ack -> onWorkspace ws model (Workspace.onAck model.Uptime sample response)
    | LegacyProbe -> withArrivals ws model (Workspace.onLegacyProbe response)

/// A timer of a workspace fired (the others are `onTimer`'s).
let private onWorkspaceTimer (timer: Timer) (model: Model) : Model * Effect list =
    match timer with
    | HeartbeatTimer ws -> onWorkspace ws model (Workspace.heartbeat model.Uptime)
    | StreamTimer ws -> onWorkspace ws model (Workspace.streamTimer model.Uptime)
    | RetryTimer(ws, FetchUpload fileId) -> withArrivals ws model (Staging.retry fileId)
    | RetryTimer(ws, job) -> onWorkspace ws model (Workspace.retry job)
    | PollTimer ws ->
        let model, effects = onWorkspace ws model Workspace.tick
        // downloads that failed are tried again
        let model, files = withArrivals ws model Staging.uploads
        let model, again = if ws = model.Primary then Arrivals.renotify model else model, []
        model, effects @ files @ again
    | PermissionDeadline _
    | ProgramTimer _
    | ProgressTimer _
    | WaitDeadline _ -> model, []

/// A timer fired (`model.Uptime` is its time): a workspace's, a tool call's or a relayed prompt's deadline.
let private onTimer (timer: Timer) (model: Model) : Model * Effect list =
    match timer with
    | PermissionDeadline id ->
        if model.Prompts.ContainsKey id then { model with Prompts = model.Prompts.Remove id }, [ Log(Info, Permissions.expiredLine id) ]
        else model, []
    | ProgramTimer call ->
        match model.Calls.TryFind call with
        | Some(AwaitPause(ran, k)) -> ToolCalls.step call ran (k model.Uptime) model
        | _ -> model, []
    | ProgressTimer call -> ToolCalls.reportProgress call model
    | WaitDeadline call ->
        match model.Calls.TryFind call with
        | Some(Waiting t) -> { model with Calls = model.Calls.Remove call }, ToolCalls.answer call (InboxTools.timedOut t)
        | _ -> model, []
    | HeartbeatTimer _
    | StreamTimer _
    | RetryTimer _
    | PollTimer _ -> onWorkspaceTimer timer model

/// The start: every workspace starts; the pairs paused before a restart are read before anything is pushed.
let private start (model: Model) : Model * Effect list =
    let model, effects =
        model.Workspaces
        |> Seq.fold
            (fun (model, effects) kv ->
                let ws, more = Workspace.start kv.Value
                // files a restored ledger still waits for; announced with the rest once the client is ready
                let ws, files, _ = Staging.uploads ws
                withWorkspace ws model, effects @ more @ files)
            (model, [])
    let pairs, reads = Pairs.read (model.Workspaces |> Seq.map (fun kv -> kv.Value.Config) |> List.ofSeq) model.Pairs
    { model with Pairs = pairs }, effects @ reads

let private handle (msg: Msg) (model: Model) : Model * Effect list =
    match msg with
    | Start -> start model
    | Responded(Background(ws, job), response, sample) -> onBackground ws job response sample model
    | Responded(ForTool call, response, _) ->
        match model.Calls.TryFind call with
        | Some(AwaitResponse(ran, k)) -> ToolCalls.step call ran (k response) model
        | _ -> model, []
    | FilesChecked(call, results) ->
        match model.Calls.TryFind call with
        | Some(AwaitFiles(ran, k)) -> ToolCalls.step call ran (k results) model
        | _ -> model, []
    | TimerFired(timer, uptime) -> onTimer timer { model with Uptime = uptime }
    | PermissionRequested prompt -> Arrivals.permissionRequested prompt model
    | Downloaded(Background(ws, FetchUpload fileId), result, sample) -> withArrivals ws model (Staging.onDownload model.Uptime sample fileId result)
    | Downloaded _ -> model, []
    | ClientInitialized when model.Initialized -> model, []
    | ClientInitialized ->
        // Messages that arrived before the handshake, or are still unpopped from an earlier run, are announced now.
        let model = { model with Initialized = true }
        Arrivals.push (Arrivals.backlog model) model
    | ToolCalled(call, nonce, parsed) -> ToolCalls.toolCalled call nonce parsed model
    | ToolCancelled call -> ToolCalls.cancelled call model
    | ProgressRequested(call, tool) -> ToolCalls.progressRequested call tool model
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
        // the inbox's routes answer only the workspace's valid token
        | Background(ws, (Poll | Ack)) -> Some(ws, false, true)
        | Background(ws, _) -> Some(ws, false, false)
        | ForTool call ->
            match model.Calls.TryFind call with
            | Some(AwaitResponse(ws, _)) -> Some(ws, true, false)
            | _ -> None
    match ran with
    | Some(ws, forTool, needsToken) -> onWorkspace ws model (Workspace.answered forTool needsToken response)
    | None -> model, []

let update (msg: Msg) (model: Model) : Model * Effect list =
    match msg with
    | Responded(purpose, response, _) ->
        let model, seen = observeAnswer purpose response model
        let model, effects = handle msg model
        model, seen @ effects
    | _ -> handle msg model
