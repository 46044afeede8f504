/// The platform's event stream as a doorbell (delivery spec §1.6): the stream only says "something may have
/// changed"; intake then fetches with `since_id`. One stream per workspace, opened again after a drop with jittered,
/// bounded backoff; a fetch on every (re)connect, since events missed meanwhile are gone; a quiet stream (no frame for
/// three heartbeat intervals, though our own heartbeats ring it) is opened again. The timer poll stays the safety net.
/// Pure: randomness for the jitter comes with the news.
module Molecule.Core.Doorbell

open System
open System.Globalization
open Molecule.Protocol

/// The longest wait before opening the stream again.
let maxBackoffSecs = 30.0

/// A failure Warning is repeated on every n-th consecutive failure.
let warnEvery = 20

type Status =
    | Off
    | Connecting
    | Open
    /// Waiting to open it again.
    | Waiting

type State =
    { Status: Status
      /// Consecutive failed opens and drops.
      Failures: int
      /// Uptime of the last frame (or of the open).
      LastFrame: float
      /// The user was told that delivery fell back to polling.
      Degraded: bool }

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
      /// An auth answer (401/403/410) for the lifecycle's 3-strike and 410 handling.
      Auth: Response option }

let initial = { Status = Off; Failures = 0; LastFrame = 0.0; Degraded = false }

let private none s = { Doorbell = s; Effects = []; Fetch = false; Probe = false; Auth = None }

let private fmt (f: float) = f.ToString("0.#", CultureInfo.InvariantCulture)

/// Seconds to wait after the n-th consecutive failure: 1, 2, 4 … 30, each ±25 % by the sample (0..1).
let backoff (failures: int) (sample: float) : float =
    let baseSecs = Math.Min(maxBackoffSecs, Math.Pow(2.0, float (max 0 (failures - 1))))
    let s = if Double.IsFinite sample then Math.Clamp(sample, 0.0, 1.0) else 0.5
    baseSecs * (0.75 + 0.5 * s)

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

let private failed (cfg: Config) (reason: string) (sample: float) (s: State) : Outcome =
    let n = s.Failures + 1
    let wait = backoff n sample
    let poll = fmt cfg.PollIntervalSecs
    let logs =
        if not s.Degraded || n % warnEvery = 0 then
            [ Log(Warning, $"event stream of workspace {cfg.WorkspaceId.Value} unavailable ({reason}); new messages arrive by polling every {poll} s until it is back (next try in {fmt wait} s)") ]
        else
            []
    { none { s with Status = Waiting; Failures = n; Degraded = true } with
        Effects = logs @ [ After(wait, StreamTimer cfg.WorkspaceId) ] }

/// Folds what the host reports about the stream; `uptime` is the agent's last known uptime.
let onNews (cfg: Config) (uptime: float) (news: News) (sample: float) (s: State) : Outcome =
    match news with
    | Opened ->
        let logs = if s.Degraded then [ Log(Info, $"event stream of workspace {cfg.WorkspaceId.Value} is back; new messages arrive at once again") ] else []
        // Events broadcast while it was closed are gone: fetch once.
        { none { s with Status = Open; Failures = 0; LastFrame = uptime; Degraded = false } with Effects = logs; Fetch = true }
    | Frame data ->
        let fetch, probe = relevance data
        { none { s with LastFrame = uptime } with Fetch = fetch; Probe = probe }
    | Refused(Reply(status, _) as r) when status = 401 || status = 403 || status = 410 ->
        { failed cfg (describe r) sample s with Auth = Some r }
    | Refused r -> failed cfg (describe r) sample s
    | Ended reason -> failed cfg (if String.IsNullOrWhiteSpace reason then "the stream ended" else reason) sample s

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
