/// The whole agent as one Elmish-style state machine: `update: Msg -> Model -> Model * Effect list`.
/// It composes the lifecycle decider, the inbox and the channel; the host only performs the effects
/// and feeds the answers back as messages.
module Molecule.Core.Agent

type Model =
    { Config: Config
      Life: Lifecycle.State
      Inbox: Inbox.State
      /// Bumped whenever the inbox content changes (the host wakes `wait_for_message` on it).
      InboxVersion: int
      /// The client sent `notifications/initialized`: channel notifications may flow.
      Initialized: bool
      /// Messages recorded before the client was ready, in arrival order.
      PendingNotify: InboxMessage list
      PeerNames: Map<string, string> }

type Msg =
    /// The process started: register, probe the workspace, start polling.
    | Start
    /// The answer to an earlier `Send(purpose, request)`.
    | Responded of Purpose * Response
    /// An earlier `After(seconds, timer)` elapsed; uptime is whole seconds since start.
    | TimerFired of Timer * uptimeSecs: int
    /// The MCP client sent `notifications/initialized`.
    | ClientInitialized
    /// What a finished tool program learnt.
    | ToolObserved of Observation list

let init (config: Config) (inbox: Inbox.State) : Model =
    { Config = config
      Life = Lifecycle.initial
      Inbox = inbox
      InboxVersion = 0
      Initialized = false
      // Unread messages restored from the state file are announced like any that arrive before the handshake:
      // their notification may never have reached a client (it stopped, or this process did, in between).
      PendingNotify = (if config.InboxEnabled then inbox.Queue else [])
      PeerNames = Map.empty }

let context (model: Model) : ToolContext =
    { Config = model.Config
      Removed = model.Life.Removed
      PeerNames = model.PeerNames }

let inboxVersion (model: Model) = model.InboxVersion

/// Runs one command through the lifecycle decider, returning the new model and the effects of its events.
let private decide (command: Lifecycle.Command) (model: Model) : Model * Effect list =
    let events = Lifecycle.decide model.Config command model.Life

    let life, effects =
        events
        |> List.fold
            (fun (state, acc) event -> Lifecycle.evolve state event, acc @ Lifecycle.effects model.Config state event)
            (model.Life, [])

    { model with Life = life }, effects

let private exits (effects: Effect list) =
    effects
    |> List.exists (function
        | Exit _ -> true
        | _ -> false)

let private pollNow (model: Model) =
    Send(Poll, Api.activity model.Config (Inbox.pollQuery model.Inbox))

let private notifyAll (messages: InboxMessage list) =
    messages |> List.map (Channel.event >> Notify)

let private stillQueued (model: Model) (message: InboxMessage) =
    model.Inbox.Queue
    |> List.exists (fun m -> m.ActivityId = message.ActivityId)

let update (msg: Msg) (model: Model) : Model * Effect list =
    let cfg = model.Config

    match msg with
    | Start ->
        let register =
            if cfg.HeartbeatEnabled then
                [ Send(Register, Api.register cfg) ]
            else
                [ Log(Info, "heartbeat disabled (MOLECULE_MCP_DISABLE_HEARTBEAT): not registering") ]

        let poll =
            if cfg.InboxEnabled then
                [ pollNow model ]
            else
                [ Log(Info, "inbox disabled (MOLECULE_MCP_DISABLE_INBOX): not polling") ]

        let hello =
            Log(Info, $"starting for workspace {cfg.WorkspaceId} on {cfg.PlatformUrl}")

        model, hello :: register @ [ Send(WorkspaceProbe, Api.workspace cfg) ] @ poll

    | Responded(Register, response) ->
        let model, effects = decide (Lifecycle.RegisterOutcome response) model
        // The first heartbeat follows the register answer at once; the loop then keeps its own cadence.
        let next = if exits effects then [] else [ After(0.0, HeartbeatTimer) ]
        model, effects @ next

    | Responded(Heartbeat, response) ->
        let model, effects = decide (Lifecycle.HeartbeatOutcome response) model
        model, effects @ [ After(cfg.HeartbeatIntervalSecs, HeartbeatTimer) ]

    | Responded(WorkspaceProbe, response) -> decide (Lifecycle.ProbeOutcome response) model

    | Responded(Poll, response) ->
        let inbox, fresh, effects = Inbox.onPoll cfg.WorkspaceId response model.Inbox

        let model =
            { model with
                Inbox = inbox
                InboxVersion = if List.isEmpty fresh then model.InboxVersion else model.InboxVersion + 1 }

        let model, notifications =
            if model.Initialized then
                model, notifyAll fresh
            else
                { model with PendingNotify = model.PendingNotify @ fresh }, []

        model, effects @ notifications @ [ After(cfg.PollIntervalSecs, PollTimer) ]

    | TimerFired(HeartbeatTimer, uptime) -> model, [ Send(Heartbeat, Api.heartbeat cfg uptime) ]

    | TimerFired(PollTimer, _) -> model, [ pollNow model ]

    | ClientInitialized when model.Initialized -> model, []

    | ClientInitialized ->
        // Messages that arrived before the handshake are announced now, unless already handled.
        let pending = model.PendingNotify |> List.filter (stillQueued model)

        { model with
            Initialized = true
            PendingNotify = [] },
        notifyAll pending

    | ToolObserved observations ->
        observations
        |> List.fold
            (fun (model, effects) observation ->
                match observation with
                | PeerNames names ->
                    let names =
                        names |> List.fold (fun (m: Map<string, string>) (id, name) -> m.Add(id, name)) model.PeerNames

                    { model with PeerNames = names }, effects
                | WorkspaceRemoved _ ->
                    let model, more = decide (Lifecycle.Observed observation) model
                    model, effects @ more)
            (model, [])

/// Serves an inbox tool operation. `Wait` answers at once with the head (None when empty);
/// the host waits for `inboxVersion` to change and asks again.
let inbox (op: InboxOp) (model: Model) : Model * InboxAnswer * Effect list =
    if not model.Config.InboxEnabled then
        model, InboxDisabled, []
    else
        match op with
        | Peek limit -> model, Messages(Inbox.peek limit model.Inbox), []
        | Wait _ -> model, Waited(Inbox.head model.Inbox), []
        | Pop activityId ->
            let inbox, removed, effects = Inbox.pop activityId model.Inbox

            let model =
                { model with
                    Inbox = inbox
                    InboxVersion = if removed then model.InboxVersion + 1 else model.InboxVersion }

            model, Popped removed, effects
