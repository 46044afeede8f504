/// Acknowledgements of handled messages, and the platform's acknowledged floor: what to send on
/// `POST …/activity/ack` and what its answer changes in intake (a fresh start waits for the floor before its replay;
/// a floor is evidence, not an order). Part of intake's state; pure.
module Molecule.Core.Acks

open System.Globalization
open Molecule.Protocol
open Molecule.Core.Intake

/// What the log lines call the acknowledgement route of a workspace.
let private ackRoute (cfg: Config) = $"acknowledgements of workspace {cfg.WorkspaceId.Value} (POST …/activity/ack)"

let private floorOf (body: string) : int64 option =
    Json.tryParse body |> Option.bind (Json.prop "last_acked_seq") |> Option.bind validSeq


/// The acknowledgement to send now, if any: none while one is in flight, while the route waits for its retry timer,
/// or when the platform has none. While the floor is not known only the floor is asked (`acked_seq` 0): acking a
/// position then could mark rows handled that no replay has seen.
let next (cfg: Config) (ledger: Ledger.State) (s: State) : State * Request option =
    let ask (target: int64) = { s with AckInFlight = Some target }, Some(Api.ack cfg target)
    match s.Ack with
    | Unsupported -> s, None
    | _ when s.AckInFlight.IsSome || s.AckPace.Waiting -> s, None
    | _ when s.Phase = LearningFloor || s.FloorOwed -> ask 0L
    | _ ->
        match Ledger.ackTarget ledger with
        | Some target when target > s.AckedUpTo -> ask target
        | _ -> s, None

/// The acknowledgement route's retry timer fired: it may be asked again.
let due (s: State) : State = { s with AckPace = Pacing.due s.AckPace }

/// What one answer of the acknowledgement route changes.
type Outcome =
    { State: State
      Events: Ledger.Event list
      Effects: Effect list
      /// A fetch is due now (the floor became known, or intake stops waiting for it).
      FetchNow: bool }

let private ackFailed (cfg: Config) (uptime: float) (sample: float) (s: State) (reason: string) : Outcome =
    let pace, wait, logs = Pacing.failed Pacing.ack Warning (ackRoute cfg) reason uptime sample s.AckPace
    let s = { s with AckPace = pace }
    let timer = After(wait, RetryTimer(cfg.WorkspaceId, Ack))
    if s.Phase = LearningFloor then
        let tries = s.FloorTries + 1
        if tries >= floorTries then
            // An optional route never holds the inbox: the recent window now, the floor later.
            let note =
                $"workspace {cfg.WorkspaceId.Value}: the platform's acknowledged position could not be read ({tries.ToString(CultureInfo.InvariantCulture)} tries; {reason}) — delivering the messages of the last {fmt (int64 cfg.ReplaySecs)} s meanwhile (handled ones are recognised by id) and asking for it again in the background"
            { State = { s with FloorTries = tries; Phase = replay cfg.ReplaySecs; FloorOwed = true }
              Events = []
              Effects = logs @ [ Log(Warning, note); timer ]
              FetchNow = true }
        else
            { State = { s with FloorTries = tries }; Events = []; Effects = logs @ [ timer ]; FetchNow = false }
    else
        { State = s; Events = []; Effects = logs @ [ timer ]; FetchNow = false }

/// A floor the platform answered for `sent`: taken, or (above every number it has shown) not.
let private onFloor (cfg: Config) (uptime: float) (ledger: Ledger.State) (s: State) (sent: int64) (floor: int64) : Outcome =
    let ok (s: State) events effects fetch =
        let pace, recovered = Pacing.succeeded (ackRoute cfg) uptime s.AckPace
        { State = { s with AckPace = pace; Ack = Supported }; Events = events; Effects = recovered @ effects; FetchNow = fetch }
    let raised = if Some floor > ledger.Floor then [ Ledger.Acked floor ] else []
    match ledger.Horizon with
    | _ when sent = 0L && s.Phase = LearningFloor ->
        // A fresh start: taken for now; the replay checks it against the numbers the platform shows.
        ok { s with Phase = replay maxWindowSecs; FloorTries = 0 } raised [] true
    | Some shown when floor > shown ->
        // Above every number the platform has shown: moot, and not taken as the floor.
        let notes =
            if s.Doubted then []
            else [ Log(Warning, doubtedText cfg floor shown "messages are still recognised by id, and newer ones are delivered whatever their number") ]
        ok { s with Doubted = true; FloorOwed = false; AckedUpTo = max s.AckedUpTo sent } [] notes false
    | _ when s.FloorOwed ->
        // The floor learnt late: what it shows is taken (the ids keep the replay from repeating anything).
        let note = Log(Info, $"workspace {cfg.WorkspaceId.Value}: the platform's acknowledged position is {fmt floor}; reading every retained message above it")
        ok { s with FloorOwed = false; ReplayOwed = true; AckedUpTo = max s.AckedUpTo floor } raised [ note ] true
    | _ -> ok { s with AckedUpTo = max s.AckedUpTo floor } raised [] false

/// The platform keeps no acknowledgements (404/405/501): never asked again; a fresh start replays the recent window.
let private noAcks (cfg: Config) (status: int) (s: State) : Outcome =
    let learning = s.Phase = LearningFloor
    let what = $"the platform keeps no acknowledgements (HTTP {status.ToString(CultureInfo.InvariantCulture)} from /activity/ack)"
    let note =
        if learning then $"{what}; replaying the last {fmt (int64 cfg.ReplaySecs)} s"
        else $"{what}; handled messages are remembered locally only"
    let s = { s with Ack = Unsupported; FloorOwed = false; AckPace = Pacing.ready }
    let s = if learning then { s with Phase = replay cfg.ReplaySecs } else s
    { State = s; Events = []; Effects = [ Log(Info, note) ]; FetchNow = learning }

/// Folds an answer of the acknowledgement route. A floor is evidence, not an order: one below what was sent was
/// not recorded (tried again, paced); one above every number the platform has shown is not taken (said once).
let onAnswer (cfg: Config) (uptime: float) (sample: float) (response: Response) (ledger: Ledger.State) (s: State) : Outcome =
    let sent = defaultArg s.AckInFlight 0L
    let s = { s with AckInFlight = None }
    match response with
    | Reply(status, body) when status >= 200 && status < 300 ->
        match floorOf body with
        | None -> ackFailed cfg uptime sample s $"HTTP {status.ToString(CultureInfo.InvariantCulture)} without a usable last_acked_seq: {clip 200 body}"
        | Some floor when floor < sent ->
            ackFailed cfg uptime sample s $"the platform answered last_acked_seq {fmt floor}, below the {fmt sent} sent: the acknowledgement was not recorded"
        | Some floor -> onFloor cfg uptime ledger s sent floor
    | Reply(status, _) when status = 404 || status = 405 || status = 501 -> noAcks cfg status s
    | other -> ackFailed cfg uptime sample s (describe "/activity/ack" other)
