/// The one pacing policy for every background request that is tried again after a failure (the inbox fetch, the
/// acknowledgement and the floor behind it, the event stream, uploaded files, the heartbeat): exponential backoff
/// with jitter and a cap, reset by a success, and a throttled log line that says what fails and since when.
/// Whatever a platform answers, a paced route is asked again only when its retry timer fires. Pure: the jitter's
/// randomness comes in as a sample (0..1) with the message that reports the failure, time as the agent's uptime.
module Molecule.Core.Pacing

open System
open System.Globalization

/// How one route backs off: the delay after the n-th failure in a row is min(cap, base × 2^(n-1)), of which a
/// random part (the upper half) is left out — "equal jitter": every delay lies in [d/2, d].
type Policy = { BaseSecs: float; CapSecs: float }

/// A failing route logs its first failure, then at most once per this many seconds while it keeps failing.
let logEverySecs = 300.0

/// The backoff ceiling of a failure count, before jitter.
let ceiling (policy: Policy) (failures: int) : float =
    let b = max 0.0 policy.BaseSecs
    let exponent = float (Math.Clamp(failures - 1, 0, 40))
    Math.Min(max b policy.CapSecs, b * Math.Pow(2.0, exponent))

/// The delay after the n-th failure in a row (n ≥ 1) for a sample in [0, 1] (other samples count as 0.5).
let delay (policy: Policy) (failures: int) (sample: float) : float =
    let s = if Double.IsFinite sample then Math.Clamp(sample, 0.0, 1.0) else 0.5
    let d = ceiling policy failures
    d * (0.5 + 0.5 * s)

/// The shortest delay the policy can give after the n-th failure: what no route may undercut.
let least (policy: Policy) (failures: int) : float = ceiling policy failures * 0.5

/// The most requests a route that fails all along can get within `secs`: the first at once, each next one no sooner
/// than the least delay after as many failures (the pacing bound the tests hold every route to).
let most (policy: Policy) (secs: float) : int =
    let rec go n t =
        let t' = t + least policy n
        if t' > secs then n else go (n + 1) t'
    go 1 0.0

type State =
    { /// Failures in a row (0: the route works).
      Failures: int
      /// Uptime of the first failure of this run of failures.
      Since: float
      /// Uptime of the last log line about it.
      Logged: float
      /// A retry timer is pending: nothing asks the route before it fires.
      Waiting: bool }

let ready = { Failures = 0; Since = 0.0; Logged = 0.0; Waiting = false }

let failing (s: State) = s.Failures > 0

/// A duration for people: "40 s", "3 min", "2 h 5 min".
let duration (secs: float) : string =
    let inv (n: int64) = n.ToString(CultureInfo.InvariantCulture)
    let t = int64 (Math.Round(max 0.0 secs))
    if t < 90L then $"{inv t} s"
    elif t < 5400L then $"{inv ((t + 30L) / 60L)} min"
    else
        let m = (t + 30L) / 60L
        if m % 60L = 0L then $"{inv (m / 60L)} h" else $"{inv (m / 60L)} h {inv (m % 60L)} min"

let private secs (s: float) = s.ToString("0.#", CultureInfo.InvariantCulture)

/// A failure at `uptime`: the state (waiting for its retry timer), the delay until that timer, and whether a log line
/// is due (the first failure, then at most one per `logEverySecs`).
let fail (policy: Policy) (uptime: float) (sample: float) (s: State) : State * float * bool =
    let n = s.Failures + 1
    let wait = delay policy n sample
    let since = if s.Failures = 0 then uptime else s.Since
    let due = s.Failures = 0 || uptime - s.Logged >= logEverySecs
    { Failures = n; Since = since; Logged = (if due then uptime else s.Logged); Waiting = true }, wait, due

/// A failure of the route `what` (e.g. "acknowledgements of workspace <id>") at `uptime`: as `fail`, with the log
/// line in the common words — what fails, why, since when, and when it is tried next.
let failed (policy: Policy) (level: LogLevel) (what: string) (reason: string) (uptime: float) (sample: float) (s: State) : State * float * Effect list =
    let s', wait, due = fail policy uptime sample s
    let logs =
        if not due then []
        elif s.Failures = 0 then [ Log(level, $"{what} failed: {reason}; trying again in {secs wait} s") ]
        else
            [ Log(level, $"{what} has been failing for {duration (uptime - s'.Since)} ({s'.Failures.ToString(CultureInfo.InvariantCulture)} attempts): {reason}; next try in {secs wait} s") ]
    s', wait, logs

/// The retry timer fired: the route may be asked again.
let due (s: State) : State = { s with Waiting = false }

/// A success: the route is ready again; after failures, one line says so.
let succeeded (what: string) (uptime: float) (s: State) : State * Effect list =
    if s.Failures = 0 then
        { s with Waiting = false }, []
    else
        ready,
        [ Log(Info, $"{what} works again (after {s.Failures.ToString(CultureInfo.InvariantCulture)} failed attempts over {duration (uptime - s.Since)})") ]

// ---------------------------------------------------------------------------------------------
// The routes' policies (DESIGN.md's route table lists them)
// ---------------------------------------------------------------------------------------------

/// The inbox fetch (`GET /workspaces/:id/activity`): required, so it backs off only to half a minute.
let fetch = { BaseSecs = 1.0; CapSecs = 30.0 }

/// Acknowledgements and learning the floor (`POST /workspaces/:id/activity/ack`): optional.
let ack = { BaseSecs = 1.0; CapSecs = 300.0 }

/// The event stream (`GET /workspaces/:id/events/stream`): optional, the poll is the safety net.
let stream = { BaseSecs = 1.0; CapSecs = 30.0 }

/// A platform without the event stream (404) is asked again this rarely, in case it gains one.
let streamMissingSecs = 600.0

/// Downloading a file the user uploaded (`GET …/pending-uploads/:file_id/content`).
let upload = { BaseSecs = 2.0; CapSecs = 120.0 }

/// The heartbeat: failures stretch the interval, up to a minute (the platform marks a workspace offline after 180 s).
let heartbeat (intervalSecs: float) = { BaseSecs = intervalSecs; CapSecs = max intervalSecs 60.0 }
