/// The workspace lifecycle as a decider: register / heartbeat / probe outcomes and tool observations
/// → events → state; events → effects (logs, exit 3, the inbound-secret file). Pure and total.
module Molecule.Core.Lifecycle

open Molecule.Protocol

open System
open System.Globalization

/// A non-auth failure of a platform call.
type Failure =
    /// HTTP status ≥ 400 (not 401/403/410) with the raw body.
    | HttpFailure of status: int * body: string
    | Unreachable of detail: string
    | TimeoutAfter of secs: float

type State =
    { Registered: bool
      /// The platform took the workspace's token in this run (TokenTaken, a register or heartbeat that succeeded): the
      /// workspace existed while this process ran, so its removal seen afterwards happened at runtime.
      Live: bool
      /// Heartbeat 401/403 in a row with no successful request of this workspace between them (the "strike" counter):
      /// reset by any success, so a refusal of the heartbeat alone never adds up to three.
      AuthFailures: int
      /// Heartbeat 401/403 in a row (reset by a successful heartbeat only).
      Refusals: int
      /// A tool's own request was refused with 401 and no request succeeded since.
      ToolRefused: bool
      /// The user was told that heartbeats alone are refused (in this run of refusals).
      HeartbeatOnly: bool
      Removed: RemovedInfo option
      /// Consecutive non-auth heartbeat failures; reset by a successful heartbeat only.
      HeartbeatFailures: int
      /// Kind of the last non-auth heartbeat failure ("http 500", "unreachable", "timeout"); "" when none.
      LastFailureKind: string }

type Command =
    | RegisterOutcome of Response
    | HeartbeatOutcome of Response
    | ProbeOutcome of Response
    | Observed of Observation
    /// The token was replaced (MOLECULE_WORKSPACE_TOKEN_FILE): what the old one earned no longer counts.
    | TokenReplaced of source: string
    /// A request of this workspace other than the heartbeat succeeded (2xx): the platform takes the token.
    | Succeeded
    /// A request that the platform answers only with the workspace's valid token succeeded (the inbox's poll or
    /// acknowledgement, the event stream opened): what Succeeded says, and the workspace and its token existed in
    /// this run.
    | TokenTaken
    /// A tool's own request of this workspace was refused (401).
    | ToolRefusal of status: int

type Event =
    | Registered
    /// The platform took the token for the first time in this run.
    | Reached
    /// 401/403/410 at register (unless this run saw the workspace live, then removed): the process must stop (exit 3).
    | RegisterRejected of status: int
    /// Any other failure at register: warn and keep going.
    | RegisterFailed of Failure
    | HeartbeatSucceeded of inboundSecret: string option
    /// `consecutive`: strikes (no success between them); `refusals`: heartbeat refusals in a row.
    | HeartbeatAuthFailed of status: int * consecutive: int * refusals: int
    | HeartbeatFailed of Failure * consecutive: int
    | WorkspaceRemoved of RemovedInfo
    | NewToken of source: string
    /// A request succeeded after refusals: strikes and a tool's refusal are cleared.
    | Accepted
    | ToolRequestRefused of status: int

let initial: State =
    { Registered = false
      Live = false
      AuthFailures = 0
      Refusals = 0
      ToolRefused = false
      HeartbeatOnly = false
      Removed = None
      HeartbeatFailures = 0
      LastFailureKind = "" }

/// Auth failures that get the one loud ERROR: the 3rd, then every 20 more (23, 43, 63 …).
let isAuthEscalation (n: int) = n = 3 || (n > 3 && (n - 3) % 20 = 0)

/// Identical non-auth heartbeat warnings are repeated only on every 30th consecutive failure.
let warningRepeatEvery = 30

let private nonEmpty (s: string option) =
    match s with
    | Some v when not (String.IsNullOrWhiteSpace v) -> Some v
    | _ -> None

/// The 410 body {id, removed_at, hint}; defaults: own id, no time, the shared default hint.
let removedInfoOfBody (workspaceId: string) (body: string) : RemovedInfo = Removed.parse workspaceId body

let private failureOf (response: Response) : Failure option =
    match response with
    | Reply(status, body) when status >= 400 -> Some(HttpFailure(status, (if isNull body then "" else body)))
    | Reply _ -> None
    | TransportError message -> Some(Unreachable(if isNull message then "" else message))
    | TimedOut secs -> Some(TimeoutAfter secs)

let private failureKind (f: Failure) =
    match f with
    | HttpFailure(status, _) -> $"http {status}"
    | Unreachable _ -> "unreachable"
    | TimeoutAfter _ -> "timeout"

let private removedOnce (state: State) (info: RemovedInfo) =
    match state.Removed with
    | None -> [ WorkspaceRemoved info ]
    | Some _ -> []

let private isAuth status = status = 401 || status = 403

let decide (config: Config) (command: Command) (state: State) : Event list =
    let refused = state.AuthFailures > 0 || state.ToolRefused
    match command with
    // The register's answer came after this run saw the workspace live and then removed (a busy machine answered it
    // late): the removal was told already, and the process keeps serving as after any removal at runtime.
    | RegisterOutcome(Reply(status, _)) when state.Live && state.Removed.IsSome && (status = 410 || isAuth status) -> []
    | RegisterOutcome(Reply(status, body)) when status = 410 ->
        removedOnce state (removedInfoOfBody config.WorkspaceId.Value body) @ [ RegisterRejected status ]
    | RegisterOutcome(Reply(status, _)) when isAuth status -> [ RegisterRejected status ]
    | RegisterOutcome response ->
        match failureOf response with
        | None -> [ Registered ]
        | Some f -> [ RegisterFailed f ]
    | HeartbeatOutcome(Reply(status, body)) when status = 410 ->
        removedOnce state (removedInfoOfBody config.WorkspaceId.Value body)
    | HeartbeatOutcome(Reply(status, _)) when isAuth status ->
        [ HeartbeatAuthFailed(status, state.AuthFailures + 1, state.Refusals + 1) ]
    | HeartbeatOutcome(Reply(status, body)) when status < 400 ->
        let secret =
            Json.tryParse body |> Option.bind (Json.stringProp "platform_inbound_secret") |> nonEmpty
        [ HeartbeatSucceeded secret ]
    | HeartbeatOutcome response ->
        match failureOf response with
        | Some f -> [ HeartbeatFailed(f, state.HeartbeatFailures + 1) ]
        | None -> []
    | ProbeOutcome(Reply(410, body)) -> removedOnce state (removedInfoOfBody config.WorkspaceId.Value body)
    | ProbeOutcome(Reply(200, body)) ->
        // Legacy platforms answer 200 with the row whose status is "removed".
        match Json.tryParse body |> Option.bind (Json.stringProp "status") with
        | Some "removed" -> removedOnce state (removedInfoOfBody config.WorkspaceId.Value body)
        | _ -> []
    | ProbeOutcome _ -> []
    | Observed(Observation.WorkspaceRemoved info) -> removedOnce state info
    | Observed(PeerNames _)
    | Observed(PeersVia _)
    | Observed(OwnUploads _) -> []
    | TokenReplaced source -> [ NewToken source ]
    | Succeeded -> [ if refused then Accepted ]
    | TokenTaken ->
        [ if not state.Live then Reached
          if refused then Accepted ]
    | ToolRefusal status when state.Removed.IsNone -> [ ToolRequestRefused status ]
    | ToolRefusal _ -> []

let evolve (state: State) (event: Event) : State =
    match event with
    | Registered -> { state with Registered = true; Live = true }
    | Reached -> { state with Live = true }
    | RegisterRejected _
    | RegisterFailed _ -> state
    | HeartbeatSucceeded _ ->
        { state with
            Live = true
            AuthFailures = 0
            Refusals = 0
            ToolRefused = false
            HeartbeatOnly = false
            HeartbeatFailures = 0
            LastFailureKind = "" }
    | HeartbeatAuthFailed(_, n, r) -> { state with AuthFailures = n; Refusals = r; HeartbeatOnly = state.HeartbeatOnly || n <> r }
    | Accepted -> { state with AuthFailures = 0; ToolRefused = false }
    | ToolRequestRefused _ -> { state with ToolRefused = true }
    | HeartbeatFailed(f, n) ->
        { state with
            HeartbeatFailures = n
            LastFailureKind = failureKind f }
    | WorkspaceRemoved info -> { state with Removed = Some info }
    | NewToken _ -> { state with AuthFailures = 0; Refusals = 0; ToolRefused = false }

/// Strikes that confirm the platform rejects the token (the 3-strike rule).
let strikes = 3

/// The rejection is confirmed: three heartbeats refused with no success between them, or a tool's own request
/// refused — and nothing succeeded since. A single refused heartbeat never blocks the tools.
let confirmed (state: State) = (state.AuthFailures >= strikes || state.ToolRefused) && state.Removed.IsNone

/// The one line every platform tool answers while the rejection is confirmed (None otherwise).
let degraded (config: Config) (state: State) : string option =
    if confirmed state then
        let place =
            match config.TokenSource with
            | FromEnv -> "MOLECULE_WORKSPACE_TOKEN"
            | FromFile path
            | FromTokenFile path -> path
            | FromWorkspaces -> "MOLECULE_WORKSPACES"
        let why =
            if state.AuthFailures >= strikes then $"{state.AuthFailures} heartbeats refused in a row"
            else "a request was refused with HTTP 401"
        Some
            $"Error: the platform rejects the token of workspace {config.WorkspaceId.Value} (from {place}; {why}, and no request succeeded since). {Texts.regenerate}"
    else
        None

// ---------------------------------------------------------------------------------------------
// Effects
// ---------------------------------------------------------------------------------------------

let inboundSecretFileName = ".platform_inbound_secret"

/// Where the user put the token, for messages.
let private tokenPlace (config: Config) =
    match config.TokenSource with
    | FromEnv -> "MOLECULE_WORKSPACE_TOKEN"
    | FromFile path -> $"the token file {path}"
    | FromTokenFile path -> $"the token file {path} (MOLECULE_WORKSPACE_TOKEN_FILE)"
    | FromWorkspaces -> "MOLECULE_WORKSPACES"

/// First 200 characters of a body on one line, token already scrubbed (scrub before cutting, so no
/// token prefix can survive the cut).
let private snippet (config: Config) (body: string) =
    let flat =
        (Config.scrub config body)
        |> String.map (fun c -> if Char.IsControl c then ' ' else c)
    if flat.Length <= 200 then
        flat
    else
        let cut = if Char.IsHighSurrogate flat[199] then 199 else 200
        flat.Substring(0, cut)

let private secs (s: float) = s.ToString("0.#", CultureInfo.InvariantCulture)

let private describe (config: Config) (what: string) (f: Failure) =
    match f with
    | HttpFailure(status, body) -> $"{what} HTTP {status}: {snippet config body}"
    | Unreachable detail -> $"{what} failed: {snippet config detail}"
    | TimeoutAfter s -> $"{what} failed: timed out after {secs s}s"

let private revokedText (config: Config) (n: int) (status: int) =
    $"molecule-mcp: {n} consecutive heartbeat auth failures (HTTP {status}) — the token in {tokenPlace config} has been REVOKED, likely because workspace {config.WorkspaceId.Value} was deleted server-side. The MCP server is still running but every platform call will fail. {Texts.regenerate}"

/// The words for heartbeats refused while other requests with the same token succeed.
let heartbeatOnlyText (config: Config) (status: int) (refusals: int) =
    $"workspace {config.WorkspaceId.Value}: the platform refuses its heartbeats (HTTP {status}, {refusals} in a row) while other requests with the same token succeed — the workspace may show as offline on the platform; tools keep working and the heartbeat keeps trying"

let private effectsOf (config: Config) (state: State) (event: Event) : Effect list =
    match event with
    | Registered -> [ Log(Info, $"registered workspace {config.WorkspaceId.Value} with platform") ]
    | RegisterRejected 410 -> [ Exit 3 ]
    | RegisterRejected status ->
        [ Log(
              Error,
              $"molecule-mcp: register rejected with HTTP {status} — the token in {tokenPlace config} is not valid for workspace {config.WorkspaceId.Value}. {Texts.regenerate}"
          )
          Exit 3 ]
    | RegisterFailed(HttpFailure(status, body)) ->
        [ Log(Warning, $"register POST returned HTTP {status}: {snippet config body}") ]
    | RegisterFailed f -> [ Log(Warning, describe config "register POST" f) ]
    | HeartbeatSucceeded secret ->
        [ if state.AuthFailures > 0 then
              Log(Info, $"heartbeat recovered after {state.AuthFailures} auth failure(s)")
          if state.HeartbeatFailures > 0 then
              Log(Info, $"heartbeat recovered after {state.HeartbeatFailures} failed attempt(s)")
          match secret with
          | Some s -> WriteStateFile(inboundSecretFileName, s)
          | None -> () ]
    | HeartbeatAuthFailed(status, n, r) when n = r && n < 3 ->
        [ Log(Warning, $"heartbeat HTTP {status} — auth failure {n}/3; the token may have been revoked; retrying") ]
    | HeartbeatAuthFailed(status, n, r) when n = r && isAuthEscalation n -> [ Log(Error, revokedText config n status) ]
    | HeartbeatAuthFailed(_, n, r) when n = r -> []
    | HeartbeatAuthFailed(status, _, r) when not state.HeartbeatOnly || r % warningRepeatEvery = 0 ->
        // Other requests with the same token succeed between the refusals: not a revoked token.
        [ Log(Warning, heartbeatOnlyText config status r) ]
    | HeartbeatAuthFailed _ -> []
    | Reached -> []
    | Accepted when confirmed state -> [ Log(Info, $"workspace {config.WorkspaceId.Value}: the platform accepts the token again; tools call it again") ]
    | Accepted -> []
    | ToolRequestRefused status when not (confirmed state) ->
        [ Log(Warning, $"workspace {config.WorkspaceId.Value}: a tool's request was refused with HTTP {status}; other tools answer that the token is rejected until a request succeeds") ]
    | ToolRequestRefused _ -> []
    | HeartbeatFailed(f, n) ->
        let fresh = state.HeartbeatFailures = 0 || state.LastFailureKind <> failureKind f
        if fresh || n % warningRepeatEvery = 0 then
            let suffix = if n > 1 then $" ({n} consecutive failures)" else ""
            [ Log(Warning, describe config "heartbeat" f + suffix) ]
        else
            []
    | NewToken source -> [ Log(Info, $"workspace {config.WorkspaceId.Value}: a new token from {source} is used from the next request on") ]
    | WorkspaceRemoved info ->
        match state.Removed with
        | None -> [ Log(Error, "molecule-mcp: " + Removed.text info) ]
        | Some _ -> []

/// Effects of one event; `state` is the state BEFORE the event. Every log text is scrubbed of the token.
let effects (config: Config) (state: State) (event: Event) : Effect list =
    effectsOf config state event
    |> List.map (function
        | Log(level, text) -> Log(level, Config.scrub config text)
        | e -> e)
