/// New messages: the agent's own request updates handled, the rest judged by the loop guard, pushed (named first),
/// handed to waiting calls and pushed again; the requests the agent raises itself (permission prompts, pauses).
module Molecule.Core.Arrivals

open System
open Molecule.Protocol
open Molecule.Core.AgentModel

// ---------------------------------------------------------------------------------------------
// Push and waiters
// ---------------------------------------------------------------------------------------------
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
let internal push (letters: Mailbox.Letter list) (model: Model) : Model * Effect list =
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
let internal discovered (peer: string) (response: Response) (model: Model) : Model * Effect list =
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
let internal backlog (model: Model) =
    Mailbox.all model.Workspaces
    |> List.filter (fun l -> not (Pairs.isHeld l.Message.ActivityId model.Pairs || model.Notified.ContainsKey l.Message.ActivityId))

/// The answer to a start-up read of the pairs the platform holds paused: folded in; once every read is answered the
/// backlog is announced (when the client is ready).
let internal pairsRead (ws: WorkspaceId) (status: string) (response: Response) (model: Model) : Model * Effect list =
    let pairs, logs = Pairs.restored ws status response (Mailbox.all model.Workspaces) model.Pairs
    let model = { model with Pairs = pairs }
    let model, pushed = if Pairs.reading pairs then model, [] else push (backlog model) model
    model, logs @ pushed

/// New messages of a workspace: the agent's own updates answered and handled, the rest judged by the loop guard,
/// pushed (after the effects that made them durable) and handed to waiting calls.
let internal arrived (ws: WorkspaceId) (messages: InboxMessage list) (model: Model) : Model * Effect list =
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
let internal renotify (model: Model) : Model * Effect list =
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
// Permission prompts
// ---------------------------------------------------------------------------------------------

/// What came of a request the agent raised itself (a line for the log): its id, or why not.
let internal raised (what: string) (subject: string) (response: Response) : string =
    match response with
    | Reply(status, body) when status >= 200 && status < 300 ->
        let rid = Json.tryParse body |> Option.bind (Json.stringProp "request_id") |> Option.defaultValue "?"
        $"{what} for {subject} raised as request {rid}"
    | Reply(status, body) when RequestTools.isRouteMissing status body -> $"{what} for {subject} not raised: this platform has no requests inbox"
    | Reply(status, body) -> $"{what} for {subject} not raised: {ToolKit.httpDetail status body}"
    | TransportError m -> $"{what} for {subject} not raised: {m}"
    | TimedOut _ -> $"{what} for {subject} not raised: the platform did not answer"

/// A prompt from the client: relayed as an approval of the primary workspace's user, until it expires.
let internal permissionRequested (p: Permissions.Prompt) (model: Model) : Model * Effect list =
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
let internal relayed (id: string) (response: Response) (model: Model) : Model * Effect list =
    match model.Prompts.TryFind id, response with
    | Some w, Reply(status, body) when status >= 200 && status < 300 ->
        match Json.tryParse body |> Option.bind (Json.stringProp "request_id") with
        | Some rid -> { model with Prompts = model.Prompts.Add(id, { w with Request = Some rid }) }, [ Log(Info, Permissions.relayedLine id rid) ]
        | None -> { model with Prompts = model.Prompts.Remove id }, [ Log(Warning, Permissions.failedLine id "the platform's answer has no request_id") ]
    | Some _, _ -> { model with Prompts = model.Prompts.Remove id }, [ Log(Warning, raised "permission prompt" id response) ]
    | None, _ -> model, []
