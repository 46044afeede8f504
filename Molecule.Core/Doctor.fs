/// `molecule-mcp doctor`: every check of the reference's doctor, made to pass against the real platform (`/health`;
/// the token is tried with a read that changes nothing — no register, no heartbeat), plus what users trip on: the
/// state directory, which token source is used, a deleted workspace, clock skew, the binary on PATH, and the
/// Claude Code server name the channels flag must name. Pure: the host gathers the facts.
module Molecule.Core.Doctor

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Protocol

type Status =
    | Pass
    | Warn
    | Fail

type Check =
    { Label: string
      Status: Status
      Message: string
      Next: string option }

/// What the host found out.
type Facts =
    { Version: string
      /// This executable's absolute path.
      Binary: string
      /// What `molecule-mcp` on PATH resolves to, if anything.
      OnPath: string option
      Config: Result<Config list, Config.ConfigError list>
      StateDirWritable: bool
      /// GET <platform>/health, and the platform's clock (its Date header) against ours.
      Health: Response option
      ClockSkewSecs: float option
      /// Per workspace: GET /workspaces/:id/activity?limit=1 (the token), GET /workspaces/:id (the workspace).
      Token: (WorkspaceId * Response) list
      Workspace: (WorkspaceId * Response) list
      /// Opening the primary workspace's event stream: Reply(200, first line) when it opened, else the refusal.
      Stream: Response option
      /// ~/.claude.json, when there is one.
      ClaudeConfig: string option }

/// The requests whose answers the doctor needs, per workspace: the token probe and the workspace record.
let tokenProbe (cfg: Config) : Request =
    { Api.activity cfg (Window(60, None, 1)) with TimeoutSecs = 8.0 }

let workspaceProbe (cfg: Config) : Request = { Api.workspace cfg with TimeoutSecs = 8.0 }

let healthUrl (cfg: Config) = cfg.PlatformUrl + "/health"

let private check label status message next = { Label = label; Status = status; Message = message; Next = next }

let private inv (n: int) = n.ToString(CultureInfo.InvariantCulture)

let private short (id: WorkspaceId) = id.Value.Substring(0, 8)

let private source (c: Config) =
    match c.TokenSource with
    | FromEnv -> "env MOLECULE_WORKSPACE_TOKEN"
    | FromFile p -> $"file {p}"
    | FromTokenFile p -> $"file {p} (via MOLECULE_WORKSPACE_TOKEN_FILE)"
    | FromWorkspaces -> "MOLECULE_WORKSPACES"

let private describe (response: Response) =
    match response with
    | Reply(status, _) -> $"HTTP {inv status}"
    | TransportError m -> m
    | TimedOut s -> $"no answer within {s.ToString(CultureInfo.InvariantCulture)} s"

let private binaryChecks (f: Facts) =
    let dir = IO.Path.GetDirectoryName f.Binary
    [ check "molecule-mcp" Pass $"{f.Version} at {f.Binary}" None
      match f.OnPath with
      | Some p when String.Equals(p, f.Binary, StringComparison.Ordinal) -> check "PATH" Pass "molecule-mcp on PATH is this binary" None
      | Some p ->
          check "PATH" Warn $"molecule-mcp on PATH is {p}, not this binary"
              (Some $"use the absolute path {f.Binary} as the command in your MCP config")
      | None ->
          check "PATH" Warn "molecule-mcp is not on PATH"
              (Some $"use the absolute path {f.Binary} as the command in your MCP config, or add {dir} to PATH") ]

let private tokenCheck (c: Config) (response: Response) =
    let label = $"Token ({short c.WorkspaceId})"
    match response with
    | Reply(200, _) -> check label Pass $"accepted by the platform (token from {source c})" None
    | Reply((401 | 403) as s, _) ->
        check label Fail $"HTTP {inv s}: the platform rejects the token from {source c}" (Some Texts.regenerate)
    | Reply(410, _) -> check label Fail "the workspace was deleted on the platform" (Some Texts.regenerate)
    | Reply(404, _) ->
        check label Fail $"workspace {c.WorkspaceId.Value} is not known to {c.PlatformUrl}" (Some "check WORKSPACE_ID and PLATFORM_URL")
    | other -> check label Fail $"the token could not be tried: {describe other}" (Some "see Platform reachability")

let private workspaceCheck (c: Config) (response: Response) =
    let label = $"Workspace ({short c.WorkspaceId})"
    match response with
    | Reply(200, body) ->
        let node = Json.tryParse body
        let field n = node |> Option.bind (Json.stringProp n) |> Option.defaultValue "?"
        let name, status = field "name", field "status"
        check label Pass $"{name} (status {status})" None
    | Reply(410, body) -> check label Fail (Removed.text (Removed.parse c.WorkspaceId.Value body)) (Some Texts.regenerate)
    | other -> check label Warn $"the workspace record could not be read: {describe other}" None

/// Claude Code's server entries for a workspace (user scope and every project), by name.
let claudeServers (claudeConfig: string) (workspace: WorkspaceId) : string list =
    let entries (servers: JsonNode option) =
        match servers with
        | Some(:? JsonObject as o) ->
            o
            |> Seq.choose (fun kv ->
                match Json.path [ "env"; "WORKSPACE_ID" ] kv.Value |> Option.bind Json.asString with
                | Some id when WorkspaceId.names workspace id -> Some kv.Key
                | _ ->
                    // The `claude mcp add … -- env K=V … molecule-mcp` form keeps the env in args.
                    match Json.prop "args" kv.Value |> Option.bind Json.asArray with
                    | Some args when args |> List.exists (fun a -> Json.asString a = Some("WORKSPACE_ID=" + workspace.Value)) -> Some kv.Key
                    | _ -> None)
            |> List.ofSeq
        | _ -> []
    match Json.tryParse claudeConfig with
    | Some doc ->
        let projects =
            match Json.prop "projects" doc with
            | Some(:? JsonObject as ps) -> ps |> Seq.collect (fun kv -> entries (Json.prop "mcpServers" kv.Value)) |> List.ofSeq
            | _ -> []
        entries (Json.prop "mcpServers" doc) @ projects |> List.distinct
    | None -> []

let private claudeCheck (f: Facts) (configs: Config list) =
    match f.ClaudeConfig with
    | None -> []
    | Some text ->
        configs
        |> List.map (fun c ->
            let label = $"Claude Code push ({short c.WorkspaceId})"
            match claudeServers text c.WorkspaceId with
            | [] ->
                check label Warn "no Claude Code server entry for this workspace in ~/.claude.json"
                    (Some "molecule-mcp config claude-code prints the line that adds one")
            | names ->
                let flags = String.Join(" or ", names |> List.map (fun n -> "`claude " + ClientConfig.channelFlag n + "`"))
                let joined = String.Join(", ", names)
                check label Pass $"server name {joined} — for push, start Claude Code with {flags}" None)

/// Every check, in order.
let checks (f: Facts) : Check list =
    let envCheck, configs =
        match f.Config with
        | Ok configs ->
            let sources = String.Join(", ", configs |> List.map (fun c -> $"{short c.WorkspaceId}: {source c}"))
            check "Env vars" Pass $"PLATFORM_URL and {configs.Length} workspace(s) set; token from {sources}" None, configs
        | Result.Error errors ->
            let lines = (Connections.helpText errors).Split('\n') |> Array.filter (fun l -> l.StartsWith "Currently missing" || l.StartsWith "Invalid" || l.StartsWith "  - ")
            check "Env vars" Fail (String.Join("; ", lines |> Array.map (fun l -> l.Trim()))) (Some "set them in the MCP server config (molecule-mcp --help lists every variable)"), []
    let platformChecks =
        match configs with
        | [] -> [ check "Platform reachability" Warn "skipped (Env vars must pass first)" None ]
        | c :: _ ->
            let health =
                match f.Health with
                | Some(Reply(s, _)) when s >= 200 && s < 300 -> check "Platform reachability" Pass $"GET {healthUrl c} → {inv s}" None
                | Some r -> check "Platform reachability" Fail $"GET {healthUrl c} failed: {describe r}" (Some "check PLATFORM_URL and that the platform is running")
                | None -> check "Platform reachability" Warn "skipped" None
            let clock =
                match f.ClockSkewSecs with
                | Some s when Math.Abs s > 60.0 ->
                    let amount = Math.Abs(s).ToString("0", CultureInfo.InvariantCulture)
                    let side = if s > 0.0 then "ahead of" else "behind"
                    [ check "Clock" Warn $"this machine's clock is {amount} s {side} the platform's" (Some "sync the clock (NTP); replay windows and timestamps depend on it") ]
                | Some _ -> [ check "Clock" Pass "in step with the platform" None ]
                | None -> []
            let state =
                if f.StateDirWritable then check "State directory" Pass $"{c.StateDir} is writable" None
                else check "State directory" Fail $"{c.StateDir} cannot be written" (Some "set CONFIGS_DIR to a directory you can write")
            let stream =
                match f.Stream with
                | None -> []
                | Some _ when not c.StreamEnabled -> [ check "Event stream" Warn "switched off (MOLECULE_MCP_DISABLE_STREAM); new messages arrive by polling" None ]
                | Some(Reply(200, _)) -> [ check "Event stream" Pass "open: new messages arrive at once" None ]
                | Some r ->
                    let poll = c.PollIntervalSecs.ToString("0.#", CultureInfo.InvariantCulture)
                    [ check "Event stream" Warn $"unavailable ({describe r}); new messages arrive by polling every {poll} s" (Some "messages still arrive; for sub-second delivery the platform must serve GET /workspaces/:id/events/stream") ]
            let relay =
                if c.PermissionRelay then
                    let minutes = (float c.PermissionTimeoutSecs / 60.0).ToString("0.#", CultureInfo.InvariantCulture)
                    check "Permission relay" Pass $"on: Claude Code's permission prompts become approvals in the console (answered within {minutes} min); {Config.permissionRelayVar}=0 turns it off" None
                else check "Permission relay" Pass $"off ({Config.permissionRelayVar}=0): permission prompts are answered in the terminal only" None
            [ state; health ] @ clock @ stream @ [ relay ]
            @ (configs |> List.collect (fun cfg ->
                [ match f.Token |> List.tryFind (fun (id, _) -> id = cfg.WorkspaceId) with
                  | Some(_, r) -> tokenCheck cfg r
                  | None -> check $"Token ({short cfg.WorkspaceId})" Warn "skipped" None
                  match f.Workspace |> List.tryFind (fun (id, _) -> id = cfg.WorkspaceId) with
                  | Some(_, r) -> workspaceCheck cfg r
                  | None -> () ]))
    binaryChecks f @ [ envCheck ] @ platformChecks @ claudeCheck f configs

let exitCode (checks: Check list) = if checks |> List.exists (fun c -> c.Status = Fail) then 1 else 0

let private tag (s: Status) =
    match s with
    | Pass -> "[OK]  "
    | Warn -> "[WARN]"
    | Fail -> "[FAIL]"

/// The report for a terminal.
let render (checks: Check list) : string =
    let lines =
        checks
        |> List.collect (fun c ->
            $"  {tag c.Status} {c.Label}: {c.Message}"
            :: (match c.Next, c.Status with
                | Some n, (Warn | Fail) -> [ $"        next: {n}" ]
                | _ -> []))
    let fails = checks |> List.filter (fun c -> c.Status = Fail) |> List.length
    let warns = checks |> List.filter (fun c -> c.Status = Warn) |> List.length
    let summary =
        if fails > 0 then $"{inv fails} check(s) failed, {inv warns} warning(s). Fix the FAIL items above and re-run."
        elif warns > 0 then $"All required checks passed; {inv warns} warning(s) — review the next-step hints."
        else "All checks passed."
    String.Join("\n", [ "molecule-mcp doctor — onboarding diagnostic"; "" ] @ lines @ [ ""; summary ]) + "\n"

/// The report for machines (`--json`).
let renderJson (checks: Check list) : string =
    let status s =
        match s with
        | Pass -> "ok"
        | Warn -> "warn"
        | Fail -> "fail"
    Json.indented (
        Json.obj
            [ "ok", Json.bool (exitCode checks = 0)
              "checks",
              Json.arr (
                  checks
                  |> List.map (fun c ->
                      Json.obj
                          [ "label", Json.str c.Label
                            "status", Json.str (status c.Status)
                            "message", Json.str c.Message
                            "next", (match c.Next with Some n -> Json.str n | None -> Json.nul) ]
                      :> JsonNode)
              ) ]
    )
