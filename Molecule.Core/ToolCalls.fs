/// Tool calls: routed to their workspaces, run as programs step by step, answered; progress reports and cancellation.
module Molecule.Core.ToolCalls

open System
open Molecule.Protocol
open Molecule.Core.AgentModel

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
                    let model, pushed = Arrivals.arrived wsId announced (withWorkspace ws model)
                    model, effects @ more @ pushed
                | None -> model, effects)
        (model, [])

/// Runs a program until it needs the host, or answers the call.
let internal step (call: int64) (ran: WorkspaceId) (program: Program<ToolOutput>) (model: Model) : Model * Effect list =
    match program with
    | Done(output, observations) ->
        let model, effects = observe ran observations model
        { model with Calls = model.Calls.Remove call },
        effects @ [ Answer(call, output, InboxTools.pendingNotice (unread model)) ]
    | Call(request, k) -> { model with Calls = model.Calls.Add(call, AwaitResponse(ran, k)) }, [ Send(ForTool call, request) ]
    | CheckFiles(paths, k) -> { model with Calls = model.Calls.Add(call, AwaitFiles(ran, k)) }, [ CheckPaths(call, paths) ]
    | Pause(seconds, k) -> { model with Calls = model.Calls.Add(call, AwaitPause(ran, k)) }, [ After(seconds, ProgramTimer call) ]

let internal answer call output = [ Answer(call, output, None) ]

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

let internal toolCalled call nonce (parsed: Result<ParsedCall, string>) (model: Model) : Model * Effect list =
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
let internal progressRequested (call: int64) (tool: string) (model: Model) : Model * Effect list =
    if model.Calls.ContainsKey call && not (model.Progress.ContainsKey call) then
        { model with Progress = model.Progress.Add(call, { Tool = tool; Reports = 0 }) }, [ After(progressEverySecs, ProgressTimer call) ]
    else
        model, []

/// A report for a call still running (and the next one scheduled); nothing once it has been answered or cancelled.
let internal reportProgress (call: int64) (model: Model) : Model * Effect list =
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
let internal cancelled (call: int64) (model: Model) : Model * Effect list =
    let model' = { model with Calls = model.Calls.Remove call; Progress = model.Progress.Remove call }
    match model.Calls.TryFind call with
    | Some(Waiting _) -> model', [ Log(Info, "wait_for_message cancelled by the client") ]
    | Some _ -> model', [ Log(Info, "tool call cancelled by the client: its remaining steps will not run") ]
    | None -> model', []
