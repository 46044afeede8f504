/// The platform's event stream as a doorbell (delivery spec §1.6): the stream only says "something may have
/// changed"; intake then fetches with `since_id`. One stream per workspace, opened again after a drop as the one
/// pacing policy says (Pacing.stream); a fetch on every (re)connect, since events missed meanwhile are gone; a quiet
/// stream (no frame for three heartbeat intervals, though our own heartbeats ring it) is opened again. A platform
/// without the route is said once (info) and asked again rarely; refusals of the token have their own count and
/// words (the heartbeat's 3 strikes decide whether the token is rejected). The timer poll stays the safety net.
/// Pure: randomness for the jitter comes with the news.
module Molecule.Core.Doorbell

open System
open System.Globalization
open Molecule.Protocol

/// A stream that stayed open this long before it ended was working: its end starts a new run of failures.
let workedSecs = 60.0

type Status =
    | Off
    | Connecting
    | Open
    /// Waiting to open it again.
    | Waiting

type State =
    { Status: Status
      /// Pacing of the route: failed opens and drops in a row (reset by a frame, or by a stream that stayed open).
      Pace: Pacing.State
      /// Uptime of the last frame (or of the open).
      LastFrame: float
      /// Uptime of the last open, and whether a frame came since.
      OpenedAt: float
      Framed: bool
      /// The user was told that delivery fell back to polling.
      Degraded: bool
      /// The platform has no event stream (404): said once.
      Missing: bool
      /// Refusals of the token by the stream route in a row (its own count: not the heartbeat's strikes).
      Refusals: int }

/// What happened to the stream (the host reports it).
type News =
    | Opened
    /// The open got another answer, or could not connect.
    | Refused of Response
    /// One `data:` payload.
    | Frame of data: string
    /// The open stream ended (dropped, cut, closed by the platform).
    | Ended of reason: string

type Outcome =
    { Doorbell: State
      Effects: Effect list
      /// Fetch now (a relevant ring, or a (re)connect).
      Fetch: bool
      /// The workspace may be gone: probe it.
      Probe: bool
      /// A 410 from the stream route (the workspace is gone): for the lifecycle's removal handling.
      Gone: Response option }

let initial =
    { Status = Off
      Pace = Pacing.ready
      LastFrame = 0.0
      OpenedAt = 0.0
      Framed = false
      Degraded = false
      Missing = false
      Refusals = 0 }

let private none s = { Doorbell = s; Effects = []; Fetch = false; Probe = false; Gone = None }

let private fmt (f: float) = f.ToString("0.#", CultureInfo.InvariantCulture)

/// Seconds to wait after the n-th consecutive failure (Pacing.stream: 1, 2, 4 … 30, the upper half jittered by the
/// sample 0..1).
let backoff (failures: int) (sample: float) : float = Pacing.delay Pacing.stream failures sample

/// Opens the stream (on start, after a wait, or to replace a quiet one).
let listen (cfg: Config) (uptime: float) (s: State) : State * Effect list =
    { s with Status = Connecting; LastFrame = uptime }, [ Listen(cfg.WorkspaceId, Api.eventStream cfg) ]

/// Frames that may mean a new inbox row (or a deleted workspace).
let private relevance (data: string) : bool * bool =
    match Json.tryParse data with
    | Some frame ->
        match Json.stringProp "type" frame with
        | Some "ACTIVITY_LOGGED" ->
            match Json.path [ "data"; "activity_type" ] frame |> Option.bind Json.asString with
            | Some "a2a_receive"
            | Some "chat_upload_receive" -> true, false
            | _ -> false, false
        | Some "WORKSPACE_REMOVED" -> false, true
        | _ -> false, false
    | None -> false, false

let private describe (response: Response) =
    match response with
    | Reply(status, _) -> $"HTTP {status.ToString(CultureInfo.InvariantCulture)}"
    | TransportError message -> message
    | TimedOut secs -> $"no answer within {fmt secs} s"

/// A failed open or a drop: paced; said at once, then at most every `Pacing.logEverySecs` with since when.
let private failed (cfg: Config) (uptime: float) (reason: string) (sample: float) (s: State) : Outcome =
    // A stream that had worked (a frame came, or it stayed open a while) starts a new run of failures.
    let pace =
        if s.Status = Open && (s.Framed || uptime - s.OpenedAt >= workedSecs) then Pacing.ready else s.Pace
    let pace', wait, due = Pacing.fail Pacing.stream uptime sample pace
    let poll = fmt cfg.PollIntervalSecs
    let logs =
        if not due then []
        elif pace.Failures = 0 then
            [ Log(Warning, $"event stream of workspace {cfg.WorkspaceId.Value} unavailable ({reason}); new messages arrive by polling every {poll} s until it is back (next try in {fmt wait} s)") ]
        else
            [ Log(Warning, $"event stream of workspace {cfg.WorkspaceId.Value} unavailable for {Pacing.duration (uptime - pace'.Since)} ({pace'.Failures.ToString(CultureInfo.InvariantCulture)} attempts; {reason}); new messages arrive by polling every {poll} s (next try in {fmt wait} s)") ]
    { none { s with Status = Waiting; Pace = pace'; Degraded = true } with
        Effects = logs @ [ After(wait, StreamTimer cfg.WorkspaceId) ] }

/// The stream works again (a frame came): the pacing resets, and after failures one line says so.
let private working (cfg: Config) (s: State) : State * Effect list =
    if s.Framed then
        s, []
    else
        let logs = if s.Degraded then [ Log(Info, $"event stream of workspace {cfg.WorkspaceId.Value} is back; new messages arrive at once again") ] else []
        { s with Framed = true; Pace = Pacing.ready; Degraded = false; Refusals = 0; Missing = false }, logs

/// Folds what the host reports about the stream; `uptime` is the agent's last known uptime.
let onNews (cfg: Config) (uptime: float) (news: News) (sample: float) (s: State) : Outcome =
    match news with
    | Opened ->
        // Events broadcast while it was closed are gone: fetch once. The stream counts as working at its first frame.
        { none { s with Status = Open; LastFrame = uptime; OpenedAt = uptime; Framed = false } with Fetch = true }
    | Frame data ->
        let fetch, probe = relevance data
        // Only a frame of the open stream shows that it works (the host drops those of a stream it closed).
        let s, logs = if s.Status = Open then working cfg { s with LastFrame = uptime } else { s with LastFrame = uptime }, []
        { none s with Effects = logs; Fetch = fetch; Probe = probe }
    | Refused(Reply(status, _)) when status = 404 || status = 405 || status = 501 ->
        // A platform without the event stream is a normal platform: said once, polled, asked again rarely.
        let logs =
            if s.Missing then []
            else
                [ Log(Info, $"workspace {cfg.WorkspaceId.Value}: the platform has no event stream (HTTP {status.ToString(CultureInfo.InvariantCulture)} from …/events/stream); new messages arrive by polling every {fmt cfg.PollIntervalSecs} s") ]
        { none { s with Status = Waiting; Missing = true } with
            Effects = logs @ [ After(Pacing.streamMissingSecs, StreamTimer cfg.WorkspaceId) ] }
    | Refused(Reply(status, _)) when status = 401 || status = 403 ->
        let n = s.Refusals + 1
        let why = $"the platform refuses the token for the stream: HTTP {status.ToString(CultureInfo.InvariantCulture)}, {n.ToString(CultureInfo.InvariantCulture)} refusal(s) in a row; the heartbeat's 3 strikes tell whether the token is rejected"
        failed cfg uptime why sample { s with Refusals = n }
    | Refused(Reply(410, _) as r) -> { failed cfg uptime (describe r) sample s with Gone = Some r; Probe = true }
    | Refused r -> failed cfg uptime (describe r) sample s
    | Ended reason -> failed cfg uptime (if String.IsNullOrWhiteSpace reason then "the stream ended" else reason) sample s

/// The heartbeat cadence: a stream quiet for three heartbeat intervals (at least a minute) is opened again.
let checkQuiet (cfg: Config) (uptime: float) (s: State) : State * Effect list =
    let quietAfter = Math.Max(60.0, 3.0 * cfg.HeartbeatIntervalSecs)
    match s.Status with
    | Open when uptime - s.LastFrame > quietAfter -> listen cfg uptime s
    | _ -> s, []

/// The workspace is gone or the stream is not wanted any more.
let stop (cfg: Config) (s: State) : State * Effect list =
    match s.Status with
    | Off -> s, []
    | _ -> { s with Status = Off }, [ Unlisten cfg.WorkspaceId ]
