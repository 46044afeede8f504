/// The loop guard at work in the agent (LoopGuard decides): peers' messages judged as they arrive, those of a paused
/// pair held (kept in the inbox, not pushed), the agent told and the user asked once per pause, a pair resumed by the
/// user's approval — and at start, before any push, the pairs the platform still holds paused (their loop_guard
/// requests open) paused again. Pure: the effects are performed by the host, the answers folded here.
module Molecule.Core.Pairs

open Molecule.Protocol

type State =
    { Guard: LoopGuard.State
      /// Held message id → its peer.
      Held: Map<string, string>
      /// The start-up reads of paused pairs not answered yet (workspace, status): pushes wait for them.
      Reading: Set<WorkspaceId * string> }

let empty: State = { Guard = LoopGuard.empty; Held = Map.empty; Reading = Set.empty }

/// How long a start-up read of the paused pairs may hold the first pushes.
let readTimeoutSecs = 5.0

/// Pushes wait while the paused pairs are being read at start.
let reading (s: State) = not s.Reading.IsEmpty

let isHeld (activityId: string) (s: State) = s.Held.ContainsKey activityId

/// A message handled (popped): no longer held.
let handled (activityId: string) (s: State) = { s with Held = s.Held.Remove activityId }

/// A one-line channel event of the loop guard's.
let private notice (peer: string) (text: string) : ChannelEvent =
    { Content = text; Meta = [ "kind", "loop_guard"; "peer_id", peer ] }

let private told (initialized: bool) (peer: string) (line: string) =
    if initialized then [ Notify(notice peer line) ] else []

// ---------------------------------------------------------------------------------------------
// At start: the pauses the platform holds
// ---------------------------------------------------------------------------------------------

/// At start, each workspace with an inbox and the guard on reads its own requests of each open status (bounded by
/// `readTimeoutSecs`: a slow platform holds the first pushes no longer; the read is not repeated). With the guard
/// off nothing is read: nothing is held.
let read (configs: Config list) (s: State) : State * Effect list =
    let wanted (c: Config) = c.InboxEnabled && LoopGuard.isOn c.LoopGuard
    let reads = [ for c in configs |> List.filter wanted do for status in LoopGuard.openStatuses -> c, status ]
    { s with Reading = reads |> List.map (fun (c, status) -> c.WorkspaceId, status) |> Set.ofList },
    reads
    |> List.map (fun (c, status) ->
        Send(Background(c.WorkspaceId, RestoreGuard status), { Api.listRequests c Mine (Some status) with TimeoutSecs = readTimeoutSecs }))

/// What a start-up read that gave no list got: the platform's words.
let private why (response: Response) =
    match response with
    | Reply(status, body) when RequestTools.isRouteMissing status body -> "this platform has no requests inbox"
    | Reply(status, body) when status < 200 || status >= 300 -> ToolKit.httpDetail status body
    | Reply _ -> "the answer is not a list of requests"
    | TransportError m -> m
    | TimedOut _ -> "the platform did not answer in time"

/// The answer to a start-up read: the peers its open loop_guard requests name are paused again and their waiting
/// letters held; any other answer (no route, a failure, a timeout, another shape) changes nothing but a log line.
let restored (ws: WorkspaceId) (status: string) (response: Response) (waiting: Mailbox.Letter list) (s: State) : State * Effect list =
    let s' = { s with Reading = s.Reading.Remove(ws, status) }
    let peers =
        match response with
        | Reply(code, body) when code >= 200 && code < 300 -> LoopGuard.pausedPeers body
        | _ -> None
    match peers with
    | _ when not (s.Reading.Contains(ws, status)) -> s, []
    | Some peers ->
        let ofPeer (l: Mailbox.Letter) = WorkspaceId.tryParse l.Message.PeerId |> Option.map (fun w -> w.Value) |> Option.filter (fun p -> List.contains p peers)
        let held = waiting |> List.filter (fun l -> l.Message.Kind = PeerAgent) |> List.choose (fun l -> ofPeer l |> Option.map (fun p -> l.Message.ActivityId, p))
        { s' with Guard = LoopGuard.restore peers s.Guard; Held = held |> List.fold (fun (m: Map<string, string>) (id, p) -> m.Add(id, p)) s.Held },
        peers |> List.map (fun p -> Log(Info, LoopGuard.stillPausedLine p))
    | None -> s', [ Log(Info, LoopGuard.notRestoredLine (why response)) ]

// ---------------------------------------------------------------------------------------------
// As messages arrive
// ---------------------------------------------------------------------------------------------

/// The guard's look at one new letter of a workspace (`who`: how the channel names its sender; `initialized`: channel
/// events may flow). A user's message is a human turn; a peer's is judged — a suppressed one is held, and the one that
/// pauses its pair tells the agent and asks the user. True when the letter may be pushed.
let judge (config: Config) (who: Mailbox.Letter -> string) (initialized: bool) (l: Mailbox.Letter) (s: State) : State * Effect list * bool =
    match l.Message.Kind with
    | CanvasUser -> { s with Guard = LoopGuard.humanTurn s.Guard }, [], true
    | PeerAgent when l.Message.PeerId <> "" ->
        let peer = l.Message.PeerId
        let hold g = { s with Guard = g; Held = s.Held.Add(l.Message.ActivityId, peer) }
        match LoopGuard.judge config.LoopGuard peer l.Message.Text (Activity.parseTime l.Message.CreatedAt) s.Guard with
        | LoopGuard.Pass, g -> { s with Guard = g }, [], true
        | LoopGuard.Suppress(_, false), g -> hold g, [], false
        | LoopGuard.Suppress(trip, true), g ->
            let name = who l
            let line = LoopGuard.pausedLine name peer trip
            let ask =
                Api.createRequest config
                    { Kind = ApprovalRequest; Recipient = ToUser; Title = LoopGuard.requestTitle name peer trip; Detail = Some LoopGuard.requestDetail; Priority = Some "high" }
                    [ "source", RequestUpdate.sourceName RequestUpdate.LoopGuard ]
            hold g, [ Log(Warning, line); Send(Background(config.WorkspaceId, RaiseGuard peer), ask) ] @ told initialized peer line, false
    | _ -> s, [], true

/// The user approved a loop_guard request: its pair runs again (the messages held meanwhile stay in the inbox, no
/// longer held), and the agent is told.
let resumed (peer: string) (initialized: bool) (s: State) : State * Effect list =
    { s with Guard = LoopGuard.resume peer s.Guard; Held = s.Held |> Map.filter (fun _ p -> p <> peer) },
    Log(Info, LoopGuard.resumedLine peer) :: told initialized peer (LoopGuard.resumedLine peer)
