/// The nudge sweeper of spec §7.1: an idle agent recipient with a request open longer than a threshold gets an inbox
/// "nudge" turn — a `request_update` row with event `nudge` — at most once an interval per request. Which requests
/// to nudge at a time is `due`; the row is `row`. Pure: time, the team and the last nudges are arguments.
module Molecule.Platform.Nudges

open System
open System.Globalization
open Molecule.Platform.Requests
module Json = Molecule.Protocol.Json

/// The thresholds (PlatformOptions: NudgeAfter, NudgeEvery; the sweep's period is NudgeInterval).
type Settings =
    { /// A request open at least this long may be nudged (spec: 10 minutes).
      After: TimeSpan
      /// A request is nudged again only this long after its last nudge (spec: at most hourly).
      Every: TimeSpan }

module Settings =
    let defaults =
        { After = TimeSpan.FromMinutes 10.0
          Every = TimeSpan.FromHours 1.0 }

    /// The sweep's default period (spec: every 5 minutes).
    let defaultInterval = TimeSpan.FromMinutes 5.0

/// The event of a nudge row (Molecule.Protocol.RequestUpdate).
[<Literal>]
let EventName = "nudge"

/// Idle, from what the platform knows of an agent: its workspace is online (it registered and heartbeats; the
/// liveness sweep takes a silent one offline) and its last heartbeat reported no active task and no current task.
/// A removed, offline or never-connected workspace cannot take a turn; a busy one is left to finish its work.
let isIdle (w: Workspace) : bool =
    w.Status = Status.Online && w.ActiveTasks <= 0 && String.IsNullOrWhiteSpace w.CurrentTask

/// A request waits on its agent recipient when it is open at `now` (pending or info_requested, not expired).
let private waitingOnAgent (now: DateTimeOffset) (r: Request) : WorkspaceId option =
    match r.Recipient with
    | Party.Agent ws when RequestStatus.isOpen (statusAt now r) -> Some ws
    | _ -> None

/// Nudged at `now`: open and unchanged for at least `After` (a message or answer restarts the wait), its recipient an idle agent of the team, and
/// never nudged or last nudged at least `Every` ago.
let isDue (s: Settings) (now: DateTimeOffset) (recipient: Workspace option) (lastNudge: DateTimeOffset option) (r: Request) : bool =
    match waitingOnAgent now r, recipient with
    | Some ws, Some w when w.Id = ws ->
        now - r.UpdatedAt >= s.After
        && isIdle w
        && lastNudge |> Option.forall (fun last -> now - last >= s.Every)
    | _ -> false

/// The requests to nudge at `now`, oldest first.
let due
    (s: Settings)
    (now: DateTimeOffset)
    (workspace: WorkspaceId -> Workspace option)
    (lastNudge: RequestId -> DateTimeOffset option)
    (requests: Request list)
    : Request list =
    requests
    |> List.filter (fun r ->
        let recipient = Party.agent r.Recipient |> Option.bind workspace
        isDue s now recipient (lastNudge r.Id) r)
    |> List.sortBy (fun r -> r.CreatedAt, r.Id.Text)

/// "12 min", "3 h 5 min", "2 days": how long a request has waited, for the row's summary.
let waited (span: TimeSpan) : string =
    let n (v: int) = v.ToString(CultureInfo.InvariantCulture)
    let minutes = max 0 (int span.TotalMinutes)

    if minutes < 60 then n minutes + " min"
    elif minutes < 48 * 60 then
        let h, m = minutes / 60, minutes % 60
        if m = 0 then n h + " h" else n h + " h " + n m + " min"
    else n (minutes / (24 * 60)) + " days"

/// The one-line text of a nudge: the request, who asked, how long it has waited.
let summary (name: WorkspaceId -> string) (now: DateTimeOffset) (r: Request) : string =
    let title = r.Title.Replace('\n', ' ').Replace('\r', ' ').Trim()
    let title = if title.Length <= 80 then title else title.Substring(0, 80) + "…"

    let from =
        match r.Requester with
        | Party.User _ -> "the user"
        | Party.Agent w -> name w

    $"Reminder: the {Kind.text r.Kind} request \"{title}\" from {from} has waited {waited (now - r.CreatedAt)} for your answer"

/// The nudge delivered to the recipient agent `ws`: a `request_update` row like the others (no source: the platform
/// acts; `actor_type` is `platform`), with event `nudge`, the request's status and its detail as the body.
let row (id: ActivityId) (now: DateTimeOffset) (name: WorkspaceId -> string) (ws: WorkspaceId) (r: Request) : ActivityRow =
    let fields =
        [ "request_id", Wire.idNode r.Id
          "event", Json.str EventName
          "status", Json.str (RequestStatus.text (statusAt now r))
          "kind", Json.str (Kind.text r.Kind)
          "title", Json.str r.Title
          "actor_type", Json.str "platform"
          "source", Json.str (Source.text r.Source) ]
        @ [ for d in Option.toList r.Detail -> "body", Json.str d ]

    { Activity.row id now ws "a2a_receive" with
        TargetId = Some ws
        Method = Some "request_update"
        Summary = Some(summary name now r)
        RequestBody = Some(Json.compact (Json.sorted fields)) }

/// The thresholds from the platform's environment (`MOLECULE_PLATFORM_NUDGE_AFTER_SECS`, `…_EVERY_SECS`,
/// `…_INTERVAL_SECS`; seconds, > 0): the settings and the sweep's period, or the first variable that is not a number
/// of seconds.
let ofVariables (variable: string -> string option) (s: Settings) (interval: TimeSpan) : Result<Settings * TimeSpan, string> =
    let read (name: string) (fallback: TimeSpan) =
        match variable name |> Option.filter (String.IsNullOrWhiteSpace >> not) with
        | None -> Ok fallback
        | Some text ->
            match Double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture) with
            | true, v when v > 0.0 && v <= 30.0 * 86400.0 -> Ok(TimeSpan.FromSeconds v)
            | _ -> Error($"{name} must be a number of seconds between 0 and 2592000 (got \"{text.Trim()}\")")

    match read "MOLECULE_PLATFORM_NUDGE_AFTER_SECS" s.After, read "MOLECULE_PLATFORM_NUDGE_EVERY_SECS" s.Every, read "MOLECULE_PLATFORM_NUDGE_INTERVAL_SECS" interval with
    | Ok a, Ok e, Ok i -> Ok({ After = a; Every = e }, i)
    | Error m, _, _
    | _, Error m, _
    | _, _, Error m -> Error m
