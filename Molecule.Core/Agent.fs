/// The whole agent as one Elmish-style state machine: `update: Msg -> Model -> Model * Effect list`. It owns the
/// workspaces (lifecycle + inbox ledger each; the first is the primary), serves tool calls — the inbox tools from the
/// shared mailbox, the platform tools as programs routed to one workspace — pushes channel notifications and
/// re-notifies messages left unpopped. The host performs the effects and feeds every answer back as a message.
module Molecule.Core.Agent

open System
open System.Text.Json.Nodes
open Molecule.Protocol

/// A tool call waiting for something (a program knows the workspace it acts for).
type Pending =
    | AwaitResponse of WorkspaceId * (Response -> Program)
    | AwaitFiles of WorkspaceId * (FileCheck list -> Program)
    /// wait_for_message: answered by the next message or at its deadline.
    | Waiting of timeoutSecs: float

type Model =
    { /// The workspace tools act for unless told otherwise.
      Primary: WorkspaceId
      Workspaces: Map<WorkspaceId, Workspace.State>
      /// The client sent `notifications/initialized`: channel notifications may flow.
      Initialized: bool
      Calls: Map<int64, Pending>
      PeerNames: Map<string, string>
      /// The workspaces whose list_peers returned a peer (lower-case peer id).
      PeerSources: Map<string, Set<WorkspaceId>>
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
    /// MOLECULE_WORKSPACE_TOKEN_FILE of a workspace changed on disk: what is there now.
    | TokenFileChanged of workspace: WorkspaceId * Config.FileRead

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
      Renotified = Set.empty }

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

let private push (letters: Mailbox.Letter list) (model: Model) : Model * Effect list =
    if not model.Initialized || letters.IsEmpty then
        model, []
    else
        let notified = letters |> List.fold (fun (m: Map<string, float>) l -> m.Add(l.Message.ActivityId, model.Uptime)) model.Notified
        { model with Notified = notified }, letters |> List.map (Mailbox.event (multi model) >> Notify)

/// Answers every waiting wait_for_message with the oldest waiting message.
let private wake (model: Model) : Model * Effect list =
    match Mailbox.head model.Workspaces with
    | None -> model, []
    | Some l ->
        let waiting = model.Calls |> Map.filter (fun _ p -> match p with Waiting _ -> true | _ -> false)
        let answer = InboxTools.waited (Mailbox.json (multi model) l)
        { model with Calls = waiting |> Map.fold (fun (calls: Map<int64, Pending>) call _ -> calls.Remove call) model.Calls },
        waiting |> Map.toList |> List.map (fun (call, _) -> Answer(call, answer, None))

/// New messages of a workspace: pushed (after the effects that made them durable) and handed to waiting calls.
let private arrived (ws: WorkspaceId) (messages: InboxMessage list) (model: Model) : Model * Effect list =
    let model, pushed = push (messages |> List.map (fun m -> { Mailbox.Message = m; Mailbox.Arrival = ws })) model
    let model, woken = if messages.IsEmpty then model, [] else wake model
    model, pushed @ woken

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
        due |> List.map (Mailbox.event (multi model) >> Notify)

// ---------------------------------------------------------------------------------------------
// Tool programs
// ---------------------------------------------------------------------------------------------

let private contextOf (model: Model) (ws: Workspace.State) (nonce: string) : ToolContext =
    { Config = ws.Config
      Removed = ws.Life.Removed
      PeerNames = model.PeerNames
      Nonce = nonce
      Via = multi model
      Degraded = Lifecycle.degraded ws.Config ws.Life }

/// The tool context of the primary workspace.
let context (model: Model) (nonce: string) : ToolContext = contextOf model (primary model) nonce

let private observe (ran: WorkspaceId) (observations: Observation list) (model: Model) : Model * Effect list =
    observations
    |> List.fold
        (fun (model, effects) observation ->
            match observation with
            | PeerNames names ->
                { model with PeerNames = names |> List.fold (fun (m: Map<string, string>) (id, name) -> m.Add(id, name)) model.PeerNames },
                effects
            | PeersVia(ws, peers) ->
                let add (m: Map<string, Set<WorkspaceId>>) (peer: string) =
                    let key = peer.ToLowerInvariant()
                    m.Add(key, (defaultArg (m.TryFind key) Set.empty).Add ws)
                { model with PeerSources = peers |> List.fold add model.PeerSources }, effects
            | WorkspaceRemoved _ ->
                match model.Workspaces.TryFind ran with
                | Some ws ->
                    let ws, more = Workspace.decide (Lifecycle.Observed observation) ws
                    withWorkspace ws model, effects @ more
                | None -> model, effects)
        (model, [])

/// Runs a program until it needs the host, or answers the call.
let private step (call: int64) (ran: WorkspaceId) (program: Program) (model: Model) : Model * Effect list =
    match program with
    | Done(output, observations) ->
        let model, effects = observe ran observations model
        { model with Calls = model.Calls.Remove call },
        effects @ [ Answer(call, output, InboxTools.pendingNotice (unread model)) ]
    | Call(request, k) -> { model with Calls = model.Calls.Add(call, AwaitResponse(ran, k)) }, [ Send(ForTool call, request) ]
    | CheckFiles(paths, k) -> { model with Calls = model.Calls.Add(call, AwaitFiles(ran, k)) }, [ CheckPaths(call, paths) ]

let private answer call output = [ Answer(call, output, None) ]

let private failure (text: string) : ToolOutput = { Text = text; IsError = true }

let private inboxTool (call: int64) (toolCall: ToolCall) (model: Model) : Model * Effect list =
    let json = Mailbox.json (multi model)
    match toolCall with
    | _ when not (primary model).Config.InboxEnabled -> model, answer call (failure InboxTools.disabled)
    | InboxPeek limit ->
        model, answer call (InboxTools.peeked (Mailbox.peek (InboxTools.peekLimit limit) model.Workspaces |> List.map json))
    | InboxPop activityId when String.IsNullOrWhiteSpace activityId -> model, answer call (failure InboxTools.activityIdRequired)
    | InboxPop activityId ->
        match Mailbox.owner activityId model.Workspaces with
        | None -> model, answer call (InboxTools.popped false activityId)
        | Some owner ->
            let ws, effects, removed = Workspace.pop activityId model.Workspaces[owner]
            let model =
                { withWorkspace ws model with
                    Notified = model.Notified.Remove activityId
                    Renotified = model.Renotified.Remove activityId }
            // effects begin with the durable write: the answer leaves after it.
            model, effects @ answer call (InboxTools.popped removed activityId)
    | WaitForMessage timeout ->
        let t = InboxTools.waitTimeout timeout
        match Mailbox.head model.Workspaces with
        | Some l -> model, answer call (InboxTools.waited (json l))
        | None when t <= 0.0 -> model, answer call (InboxTools.timedOut t)
        | None -> { model with Calls = model.Calls.Add(call, Waiting t) }, [ After(t, WaitDeadline call) ]
    | _ -> model, answer call (failure "Error: not an inbox tool.")

/// The peer a call is about (its source workspace may be known from list_peers).
let private peerOf (toolCall: ToolCall) =
    match toolCall with
    | DelegateTask(peer, _)
    | DelegateTaskAsync(peer, _) -> Some peer
    | _ -> None

/// The workspaces a platform tool acts for: the routing argument's, else the one a peer was listed from, else the
/// primary (list_peers: all of them). Refused when the argument names no workspace of this server, or when a peer
/// was listed from several and none was named.
let route (model: Model) (name: string) (toolCall: ToolCall) (args: JsonObject option) : Result<Workspace.State list, string> =
    let known () = String.Join(", ", model.Workspaces |> Seq.map (fun kv -> kv.Key.Value))
    let requested =
        match Tools.routingArg name, args with
        | Some arg, Some a -> Json.stringProp arg a |> Option.filter (fun s -> s.Trim() <> "") |> Option.map (fun s -> arg, s)
        | _ -> None
    match requested with
    | Some(arg, value) ->
        match WorkspaceId.tryParse value |> Option.bind model.Workspaces.TryFind with
        | Some ws -> Ok [ ws ]
        | None -> Result.Error $"Error: {arg} {value.Trim()} is not a workspace of this server (it serves {known ()})."
    | None when not (multi model) -> Ok [ primary model ]
    | None ->
        match toolCall, peerOf toolCall with
        | ListPeers, _ -> Ok(model.Workspaces |> Seq.map (fun kv -> kv.Value) |> List.ofSeq)
        | SendMessageToUser _, _ ->
            Result.Error $"Error: this server serves several workspaces ({known ()}); pass workspace_id — the arrival_workspace_id of the message you answer — so the user sees the reply in the right chat."
        | _, Some peer ->
            match model.PeerSources.TryFind(peer.Trim().ToLowerInvariant()) |> Option.map Set.toList with
            | Some [ ws ] -> Ok [ model.Workspaces[ws] ]
            | Some(_ :: _ :: _ as several) ->
                let names = String.Join(", ", several |> List.map (fun w -> w.Value))
                Result.Error $"Error: peer {peer.Trim()} is reachable from several workspaces of this server ({names}); pass source_workspace_id to choose one."
            | _ -> Ok [ primary model ]
        | _ -> Ok [ primary model ]

let private toolCalled call nonce name arguments (model: Model) : Model * Effect list =
    match Tools.parse name arguments with
    | Result.Error text -> model, answer call (failure text)
    | Ok toolCall ->
        match route model name toolCall arguments with
        | Result.Error text -> model, answer call (failure text)
        | Ok targets ->
            let programs = targets |> List.choose (fun ws -> Dispatch.run (contextOf model ws nonce) toolCall |> Option.map (fun p -> ws, p))
            match programs with
            | [] -> inboxTool call toolCall model
            | [ ws, program ] -> step call (Workspace.id ws) program model
            | (first, program) :: rest ->
                // list_peers of several workspaces: one answer, the lines of each in turn.
                let joined =
                    rest
                    |> List.fold
                        (fun acc (_, next) ->
                            acc
                            |> ToolKit.andThen (fun (a, obsA) ->
                                next |> ToolKit.andThen (fun (b, obsB) ->
                                    Done({ Text = a.Text + "\n" + b.Text; IsError = a.IsError && b.IsError }, obsA @ obsB))))
                        program
                step call (Workspace.id first) joined model

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
        | Some(AwaitResponse(ran, k)) -> step call ran (k response) model
        | _ -> model, []
    | FilesChecked(call, results) ->
        match model.Calls.TryFind call with
        | Some(AwaitFiles(ran, k)) -> step call ran (k results) model
        | _ -> model, []
    | TimerFired(HeartbeatTimer ws, uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.heartbeat uptime)
    | TimerFired(StreamTimer ws, uptime) -> onWorkspace ws { model with Uptime = uptime } (Workspace.streamTimer uptime)
    | TimerFired(PollTimer ws, uptime) ->
        let model, effects = onWorkspace ws { model with Uptime = uptime } Workspace.tick
        let model, again = if ws = model.Primary then renotify model else model, []
        model, effects @ again
    | TimerFired(WaitDeadline call, uptime) ->
        let model = { model with Uptime = uptime }
        match model.Calls.TryFind call with
        | Some(Waiting t) -> { model with Calls = model.Calls.Remove call }, answer call (InboxTools.timedOut t)
        | _ -> model, []
    | ClientInitialized when model.Initialized -> model, []
    | ClientInitialized ->
        // Messages that arrived before the handshake, or are still unpopped from an earlier run, are announced now.
        push (Mailbox.all model.Workspaces) { model with Initialized = true }
    | ToolCalled(call, nonce, name, arguments) -> toolCalled call nonce name arguments model
    | ToolCancelled call -> { model with Calls = model.Calls.Remove call }, []
    | Synced(ws, lines) ->
        withArrivals ws model (fun w ->
            let w, fresh = Workspace.synced lines w
            w, [], fresh)
    | Reloaded(ws, text) -> withArrivals ws model (Workspace.reloaded text)
    | Claimed(ws, won) -> onWorkspace ws model (Workspace.claimed model.Uptime won)
    | Stream(ws, news, sample) -> onWorkspace ws model (Workspace.onStream model.Uptime news sample)
    | TokenFileChanged(ws, read) -> onWorkspace ws model (Workspace.onTokenFile read)
