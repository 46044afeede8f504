/// The whole agent as one Elmish-style state machine: `update: Msg -> Model -> Model * Effect list`. It owns the
/// workspaces (lifecycle + inbox ledger each), serves tool calls — the inbox tools from the ledger, the platform
/// tools as programs whose requests it emits as effects — pushes channel notifications and re-notifies messages
/// left unpopped. The host performs the effects and feeds every answer back as a message.
module Molecule.Core.Agent

open System.Text.Json.Nodes
open Molecule.Protocol

/// A tool call waiting for something.
type Pending =
    | AwaitResponse of (Response -> Program)
    | AwaitFiles of (FileCheck list -> Program)
    /// wait_for_message: answered by the next message or at its deadline.
    | Waiting of timeoutSecs: float

type Model =
    { /// The workspace the tools act on.
      Primary: WorkspaceId
      Workspaces: Map<WorkspaceId, Workspace.State>
      /// The client sent `notifications/initialized`: channel notifications may flow.
      Initialized: bool
      Calls: Map<int64, Pending>
      PeerNames: Map<string, string>
      /// Seconds since start, as of the last timer (the core has no clock).
      Uptime: float
      /// When each waiting message was pushed (uptime), and the ones already pushed a second time.
      Notified: Map<string, float>
      Renotified: Set<string> }

type Msg =
    /// The process started: register, probe, start intake.
    | Start
    /// The answer to an earlier `Send(purpose, request)`.
    | Responded of Purpose * Response
    | FilesChecked of call: int64 * FileCheck list
    /// An earlier `After(seconds, timer)` elapsed; uptime is seconds since start.
    | TimerFired of Timer * uptimeSecs: float
    /// The MCP client sent `notifications/initialized`.
    | ClientInitialized
    /// A tool call: its id, a fresh random UUID, the tool name and the raw arguments.
    | ToolCalled of call: int64 * nonce: string * name: string * arguments: JsonObject option
    /// The client gave up on a call (cancelled, or disconnected): forget it, send nothing more for it.
    | ToolCancelled of call: int64
    /// Lines another process of this machine appended to a workspace's journal.
    | Synced of workspace: WorkspaceId * lines: string list
    /// A workspace's journal was rewritten by another process.
    | Reloaded of workspace: WorkspaceId * text: string
    /// The answer to `Claim`.
    | Claimed of workspace: WorkspaceId * won: bool
    /// What happened to a workspace's event stream, with a random sample (0..1) for the backoff's jitter.
    | Stream of workspace: WorkspaceId * news: Doorbell.News * sample: float

let init (config: Config) (boot: Workspace.Boot) : Model =
    { Primary = config.WorkspaceId
      Workspaces = Map.ofList [ config.WorkspaceId, Workspace.boot config boot ]
      Initialized = false
      Calls = Map.empty
      PeerNames = Map.empty
      Uptime = 0.0
      Notified = Map.empty
      Renotified = Set.empty }

let primary (model: Model) : Workspace.State = model.Workspaces[model.Primary]

/// Unread messages of every workspace this process serves.
let unread (model: Model) = model.Workspaces |> Seq.sumBy (fun kv -> Ledger.count kv.Value.Ledger)

let private withWorkspace (ws: Workspace.State) (model: Model) =
    { model with Workspaces = model.Workspaces.Add(Workspace.id ws, ws) }

let private head (model: Model) : InboxMessage option = Ledger.head (primary model).Ledger

// ---------------------------------------------------------------------------------------------
// Push and waiters
// ---------------------------------------------------------------------------------------------

let private push (messages: InboxMessage list) (model: Model) : Model * Effect list =
    if not model.Initialized || messages.IsEmpty then
        model, []
    else
        let notified = messages |> List.fold (fun (m: Map<string, float>) msg -> m.Add(msg.ActivityId, model.Uptime)) model.Notified
        { model with Notified = notified }, messages |> List.map (Channel.event >> Notify)

/// Answers every waiting wait_for_message with the head of the inbox.
let private wake (model: Model) : Model * Effect list =
    match head model with
    | None -> model, []
    | Some m ->
        let waiting = model.Calls |> Map.filter (fun _ p -> match p with Waiting _ -> true | _ -> false)
        if waiting.IsEmpty then
            model, []
        else
            { model with Calls = waiting |> Map.fold (fun (calls: Map<int64, Pending>) call _ -> calls.Remove call) model.Calls },
            waiting |> Map.toList |> List.map (fun (call, _) -> Answer(call, InboxTools.waited m, None))

/// New messages: pushed (after the effects that made them durable) and handed to waiting calls.
let private arrived (messages: InboxMessage list) (model: Model) : Model * Effect list =
    let model, pushed = push messages model
    let model, woken = if messages.IsEmpty then model, [] else wake model
    model, pushed @ woken

/// Pushes once more, after `RenotifySecs`, every message still waiting that was pushed only once.
let private renotify (model: Model) : Model * Effect list =
    let after = (primary model).Config.RenotifySecs
    if after <= 0.0 || not model.Initialized then
        model, []
    else
        let due =
            model.Workspaces
            |> Seq.collect (fun kv -> Ledger.peek Ledger.capacity kv.Value.Ledger)
            |> Seq.filter (fun m ->
                not (model.Renotified.Contains m.ActivityId)
                && (match model.Notified.TryFind m.ActivityId with Some t -> model.Uptime - t >= after | None -> false))
            |> List.ofSeq
        { model with Renotified = due |> List.fold (fun (s: Set<string>) m -> s.Add m.ActivityId) model.Renotified },
        due |> List.map (Channel.event >> Notify)

// ---------------------------------------------------------------------------------------------
// Tool programs
// ---------------------------------------------------------------------------------------------

let context (model: Model) (nonce: string) : ToolContext =
    let ws = primary model
    { Config = ws.Config
      Removed = ws.Life.Removed
      PeerNames = model.PeerNames
      Nonce = nonce }

let private observe (observations: Observation list) (model: Model) : Model * Effect list =
    observations
    |> List.fold
        (fun (model, effects) observation ->
            match observation with
            | PeerNames names ->
                { model with PeerNames = names |> List.fold (fun (m: Map<string, string>) (id, name) -> m.Add(id, name)) model.PeerNames },
                effects
            | WorkspaceRemoved _ ->
                let ws, more = Workspace.decide (Lifecycle.Observed observation) (primary model)
                withWorkspace ws model, effects @ more)
        (model, [])

/// Runs a program until it needs the host, or answers the call.
let private step (call: int64) (program: Program) (model: Model) : Model * Effect list =
    match program with
    | Done(output, observations) ->
        let model, effects = observe observations model
        { model with Calls = model.Calls.Remove call },
        effects @ [ Answer(call, output, InboxTools.pendingNotice (unread model)) ]
    | Call(request, k) -> { model with Calls = model.Calls.Add(call, AwaitResponse k) }, [ Send(ForTool call, request) ]
    | CheckFiles(paths, k) -> { model with Calls = model.Calls.Add(call, AwaitFiles k) }, [ CheckPaths(call, paths) ]

let private answer call output = [ Answer(call, output, None) ]

let private inboxTool (call: int64) (toolCall: ToolCall) (model: Model) : Model * Effect list =
    let ws = primary model
    match toolCall with
    | _ when not ws.Config.InboxEnabled -> model, answer call { Text = InboxTools.disabled; IsError = true }
    | InboxPeek limit -> model, answer call (InboxTools.peeked (Ledger.peek (InboxTools.peekLimit limit) ws.Ledger))
    | InboxPop activityId when System.String.IsNullOrWhiteSpace activityId ->
        model, answer call { Text = InboxTools.activityIdRequired; IsError = true }
    | InboxPop activityId ->
        let ws, effects, removed = Workspace.pop activityId ws
        let model =
            { withWorkspace ws model with
                Notified = model.Notified.Remove activityId
                Renotified = model.Renotified.Remove activityId }
        // effects begin with the durable write: the answer leaves after it.
        model, effects @ answer call (InboxTools.popped removed activityId)
    | WaitForMessage timeout ->
        let t = InboxTools.waitTimeout timeout
        match Ledger.head ws.Ledger with
        | Some m -> model, answer call (InboxTools.waited m)
        | None when t <= 0.0 -> model, answer call (InboxTools.timedOut t)
        | None -> { model with Calls = model.Calls.Add(call, Waiting t) }, [ After(t, WaitDeadline call) ]
    | _ -> model, answer call { Text = "Error: not an inbox tool."; IsError = true }

let private toolCalled call nonce name arguments (model: Model) : Model * Effect list =
    match Tools.parse name arguments with
    | Result.Error text -> model, answer call { Text = text; IsError = true }
    | Ok toolCall ->
        match Dispatch.run (context model nonce) toolCall with
        | Some program -> step call program model
        | None -> inboxTool call toolCall model

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
        let model, more = arrived fresh (withWorkspace ws model)
        model, effects @ more
    | None -> model, []

let update (msg: Msg) (model: Model) : Model * Effect list =
    match msg with
    | Start ->
        model.Workspaces
        |> Seq.fold
            (fun (model, effects) kv ->
                let ws, more = Workspace.start kv.Value
                withWorkspace ws model, effects @ more)
            (model, [])
    | Responded(Background(ws, Register), response) -> onWorkspace ws model (Workspace.onRegister response)
    | Responded(Background(ws, Heartbeat), response) -> onWorkspace ws model (Workspace.onHeartbeat response)
    | Responded(Background(ws, WorkspaceProbe), response) -> onWorkspace ws model (Workspace.decide (Lifecycle.ProbeOutcome response))
    | Responded(Background(ws, Poll), response) -> withArrivals ws model (Workspace.onPoll response)
    | Responded(Background(ws, Ack), response) -> onWorkspace ws model (Workspace.onAck response)
    | Responded(Background(ws, LegacyProbe), response) -> withArrivals ws model (Workspace.onLegacyProbe response)
    | Responded(ForTool call, response) ->
        match model.Calls.TryFind call with
        | Some(AwaitResponse k) -> step call (k response) model
        | _ -> model, []
    | FilesChecked(call, results) ->
        match model.Calls.TryFind call with
        | Some(AwaitFiles k) -> step call (k results) model
        | _ -> model, []
    | TimerFired(HeartbeatTimer ws, uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.heartbeat uptime)
    | TimerFired(StreamTimer ws, uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.streamTimer uptime)
    | TimerFired(PollTimer ws, uptime) ->
        let model, effects = onWorkspace ws { model with Uptime = uptime } Workspace.tick
        let model, again = renotify model
        model, effects @ again
    | TimerFired(WaitDeadline call, uptime) ->
        let model = { model with Uptime = uptime }
        match model.Calls.TryFind call with
        | Some(Waiting t) -> { model with Calls = model.Calls.Remove call }, answer call (InboxTools.timedOut t)
        | _ -> model, []
    | ClientInitialized when model.Initialized -> model, []
    | ClientInitialized ->
        // Messages that arrived before the handshake, or are still unpopped from an earlier run, are announced now.
        let waiting = model.Workspaces |> Seq.collect (fun kv -> Ledger.peek Ledger.capacity kv.Value.Ledger) |> List.ofSeq
        push waiting { model with Initialized = true }
    | ToolCalled(call, nonce, name, arguments) -> toolCalled call nonce name arguments model
    | ToolCancelled call -> { model with Calls = model.Calls.Remove call }, []
    | Synced(ws, lines) ->
        withArrivals ws model (fun w ->
            let w, fresh = Workspace.synced lines w
            w, [], fresh)
    | Reloaded(ws, text) -> withArrivals ws model (Workspace.reloaded text)
    | Claimed(ws, won) -> onWorkspace ws model (Workspace.claimed model.Uptime won)
    | Stream(ws, news, sample) -> onWorkspace ws model (Workspace.onStream model.Uptime news sample)
