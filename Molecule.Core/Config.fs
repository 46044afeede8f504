/// Environment → validated `Config` (or every problem at once), state directory, help text, log scrubbing.
/// Pure and total: no IO (the host reads the env, the token file and checks /configs), never throws.
[<CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Molecule.Core.Config

open System
open Molecule.Protocol
open System.Globalization

type ConfigError =
    | Missing of var: string
    | Invalid of var: string * reason: string

/// What the host found at MOLECULE_WORKSPACE_TOKEN_FILE's path.
type FileRead =
    | Contents of string
    | NotFound
    | IsDirectory
    | Denied
    | NotUtf8
    | Unreadable of reason: string
    /// Not a regular file (a named pipe, a device, a socket): never opened. `kind` says what it is.
    | NotRegular of kind: string
    /// Larger than the host reads for a token (`limit` bytes): never read whole.
    | TooLarge of limit: int64

/// The most a token file may hold: a token is under a hundred bytes; this leaves room for a newline and a BOM.
let tokenFileLimit = 4096L

/// Name of the token file inside the state directory.
let tokenFileName = ".auth_token"

let private tokenVar = "MOLECULE_WORKSPACE_TOKEN"

/// Null-safe trim.
let private trim (s: string) = if isNull s then "" else s.Trim()

/// Trimmed env value, "" when unset.
let private var (env: Map<string, string>) (name: string) =
    match Map.tryFind name env with
    | Some v -> trim v
    | None -> ""

/// Joins a directory and a file name with exactly one '/'.
let private join (dir: string) (name: string) =
    let d = if isNull dir then "" else dir.TrimEnd('/')
    d + "/" + name

/// CONFIGS_DIR (trimmed, non-empty) → "/configs" when writable → <home>/.molecule-workspace.
let stateDir (env: Map<string, string>) (home: string) (configsWritable: bool) : string =
    match var env "CONFIGS_DIR" with
    | "" -> if configsWritable then "/configs" else join home ".molecule-workspace"
    | dir ->
        // Keep a lone "/" but drop trailing slashes otherwise, so file paths never get "//".
        let d = dir.TrimEnd('/')
        if d = "" then "/" else d

// ---------------------------------------------------------------------------------------------
// Platform URL
// ---------------------------------------------------------------------------------------------

let private hasBadChar (s: string) =
    s |> Seq.exists (fun c -> Char.IsWhiteSpace c || Char.IsControl c || c = '\\')

/// (base URL, origin). The base URL is origin + path (trailing '/' dropped), so normalising it again
/// gives the same pair. The origin is what the platform sees as its own: scheme://host[:port], lower-case,
/// default port omitted, IPv6 bracketed, international names in their ASCII (IDN) form.
/// Reasons never echo the value (users sometimes paste the token into the wrong variable).
let normaliseUrl (raw: string) : Result<string * string, string> =
    let s = (trim raw).TrimEnd('/')
    let sep = s.IndexOf("://", StringComparison.Ordinal)
    if s = "" then
        Result.Error "is empty"
    elif hasBadChar s then
        Result.Error "must not contain spaces, control characters or backslashes"
    elif s.Contains '?' then
        Result.Error "must not contain a query string ('?…'); give only the base URL"
    elif s.Contains '#' then
        Result.Error "must not contain a fragment ('#…'); give only the base URL"
    elif sep <= 0 then
        Result.Error "must be an absolute http(s) URL, e.g. https://your-tenant.moleculesai.app"
    else
        let scheme = s.Substring(0, sep).ToLowerInvariant()
        let rest = s.Substring(sep + 3)
        let slash = rest.IndexOf '/'
        let authority = if slash < 0 then rest else rest.Substring(0, slash)
        let path = if slash < 0 then "" else rest.Substring(slash).TrimEnd('/')
        if scheme <> "http" && scheme <> "https" then
            Result.Error "must use the http or https scheme"
        elif authority = "" then
            Result.Error "has no host"
        elif authority.Contains '@' then
            Result.Error "must not contain credentials (user@host); put the token in MOLECULE_WORKSPACE_TOKEN"
        elif path.Contains "//" then
            Result.Error "must not contain empty path segments ('//')"
        else
            let parsed =
                try
                    match Uri.TryCreate(scheme + "://" + authority + "/", UriKind.Absolute) with
                    | true, u when not (isNull u) -> Some u
                    | _ -> None
                with
                | :? UriFormatException
                | :? ArgumentException ->
                    None
            match parsed with
            | None -> Result.Error "has an invalid host or port"
            | Some u ->
                // IdnHost throws UriFormatException for names that are invalid under IDN rules (with ICU,
                // e.g. a label ending in '-' that holds non-ASCII letters): treat that as an invalid host.
                let host =
                    try
                        match u.HostNameType with
                        | UriHostNameType.Dns -> u.IdnHost
                        | _ -> u.Host
                        |> fun h -> if isNull h then "" else h.ToLowerInvariant()
                    with :? UriFormatException ->
                        null
                if isNull host then
                    Result.Error "has an invalid host or port"
                elif host = "" || host = "[]" then
                    Result.Error "has no host"
                else
                    let port =
                        if u.IsDefaultPort then "" else ":" + u.Port.ToString(CultureInfo.InvariantCulture)
                    let origin = scheme + "://" + host + port
                    Ok(origin + path, origin)

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A flag is on when its trimmed value is non-empty, EXCEPT 0/false/no/off (any case), which mean off.
/// (The reference treated every non-empty value as on, so MOLECULE_MCP_VERBOSE=0 turned logging up.)
let private flag (env: Map<string, string>) (name: string) =
    match (var env name).ToLowerInvariant() with
    | ""
    | "0"
    | "false"
    | "no"
    | "off" -> false
    | _ -> true

let private isDigits (s: string) = s <> "" && s |> Seq.forall Char.IsAsciiDigit

/// Interval settings (seconds): unset/invalid/non-positive → the default; clamped to 0.2..max.
/// Only tests and impatient demos need them; the defaults are the platform's cadence (spec §2.3, §2.4).
let private interval (fallback: float) (max: float) (raw: string) : float =
    match Double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v when Double.IsFinite v && v > 0.0 -> Math.Clamp(v, 0.2, max)
    | _ -> fallback

/// MOLECULE_MCP_POLL_TIMEOUT_SECS: unset/invalid/negative → 2, above 60 → 60 (also for huge numbers).
let private pollTimeout (v: string) =
    match Int32.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
    | true, n when n < 0 -> 2
    | true, n -> min n 60
    | _ ->
        // Too big for an int but still a plain positive number → the ceiling.
        let digits = if v.StartsWith '+' then v.Substring 1 else v
        if isDigits digits then 60 else 2

/// A whole number setting: unset/invalid → the default; clamped to lo..hi (also for huge numbers).
let private whole (fallback: int) (lo: int) (hi: int) (raw: string) : int =
    match Int64.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
    | true, n -> int (Math.Clamp(n, int64 lo, int64 hi))
    | _ -> if isDigits (if raw.StartsWith '+' then raw.Substring 1 else raw) then hi else fallback

/// The replay window default (the reference's 600 s) and its bound (the platform's 30-day cap).
let defaultReplaySecs = 600
let maxReplaySecs = 2_592_000

/// Re-notification of unpopped messages: default delay, and the longest accepted.
let defaultRenotifySecs = 300
let maxRenotifySecs = 86_400

/// stdin line cap: default 4 MiB, at least 64 KiB, at most 256 MiB.
let defaultMaxLineBytes = 4 * 1024 * 1024

/// The loop guard's default bounds: far above what a working pair of agents sends with no human turn between.
let defaultLoopBounds: LoopBounds = { MaxExchanges = 100; MaxPerMinute = 30; MaxRepeats = 8 }

let private loopBounds (env: Map<string, string>) : LoopBounds =
    let bound name fallback = whole fallback 0 1_000_000 (var env name)
    { MaxExchanges = bound "MOLECULE_MCP_LOOP_MAX_EXCHANGES" defaultLoopBounds.MaxExchanges
      MaxPerMinute = bound "MOLECULE_MCP_LOOP_MAX_PER_MINUTE" defaultLoopBounds.MaxPerMinute
      MaxRepeats = bound "MOLECULE_MCP_LOOP_MAX_REPEATS" defaultLoopBounds.MaxRepeats }

/// The permission relay's switch and how long a relayed prompt may be answered (default 10 minutes, at most a day).
let permissionRelayVar = "MOLECULE_MCP_PERMISSION_RELAY"
let defaultPermissionTimeoutSecs = 600

/// WORKSPACE_TIER: a non-negative integer, else 1.
let private tier (v: string) =
    match Int32.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
    | true, n when n >= 0 -> n
    | _ -> 1

/// DELEGATION_TIMEOUT: the longest accepted (a day) and the default (the reference's 300 s).
let defaultDelegationTimeoutSecs = 300.0
let maxDelegationTimeoutSecs = 86_400.0

let private delegationTimeout (env: Map<string, string>) : Result<float, ConfigError> =
    match var env "DELEGATION_TIMEOUT" with
    | "" -> Ok defaultDelegationTimeoutSecs
    | raw ->
        match Double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v when Double.IsFinite v && v > 0.0 && v <= maxDelegationTimeoutSecs -> Ok v
        | _ ->
            Result.Error(
                Invalid("DELEGATION_TIMEOUT", "must be a number of seconds greater than 0 and at most 86400, e.g. 300")
            )

/// DELEGATION_SYNC_VIA_INBOX: 1/true/yes/on (any case) → on; unset, 0/false/no/off → off; anything else is refused
/// (the reference silently treated every value but "1" as off).
let private syncViaInbox (env: Map<string, string>) : Result<bool, ConfigError> =
    match (var env "DELEGATION_SYNC_VIA_INBOX").ToLowerInvariant() with
    | "1"
    | "true"
    | "yes"
    | "on" -> Ok true
    | ""
    | "0"
    | "false"
    | "no"
    | "off" -> Ok false
    | _ -> Result.Error(Invalid("DELEGATION_SYNC_VIA_INBOX", "must be 1 (on) or 0 (off)"))

/// The problems of the settings every workspace of the process shares (checked in single and multi mode).
let sharedErrors (env: Map<string, string>) : ConfigError list =
    [ match delegationTimeout env with
      | Result.Error e -> e
      | Ok _ -> ()
      match syncViaInbox env with
      | Result.Error e -> e
      | Ok _ -> () ]

/// The env values get_runtime_identity reports (trimmed, "" when unset).
let identity (env: Map<string, string>) : RuntimeIdentity =
    { Model = var env "MODEL"
      ModelProvider = var env "MODEL_PROVIDER"
      MoleculeModel = var env "MOLECULE_MODEL"
      AnthropicBaseUrl = var env "ANTHROPIC_BASE_URL"
      Tier = var env "TIER"
      Runtime = var env "ADAPTER_MODULE" }

let private skills (v: string) =
    v.Split ',' |> Array.toList |> List.map trim |> List.filter ((<>) "") |> List.distinct

let private validToken (t: string) = t |> Seq.forall (fun c -> c > ' ' && c < '\u007f')

let private workspaceId (env: Map<string, string>) : Result<WorkspaceId, ConfigError> =
    match var env "WORKSPACE_ID" with
    | "" -> Result.Error(Missing "WORKSPACE_ID")
    | id ->
        match WorkspaceId.tryParse id with
        | Some ws -> Ok ws
        | None ->
            Result.Error(
                Invalid(
                    "WORKSPACE_ID",
                    $"must be the workspace UUID from the canvas (8-4-4-4-12 hex digits), got {id.Length} characters that are not a UUID"
                )
            )

let private platformUrl (env: Map<string, string>) : Result<string * string, ConfigError> =
    match var env "PLATFORM_URL" with
    | "" -> Result.Error(Missing "PLATFORM_URL")
    | url ->
        match normaliseUrl url with
        | Ok pair -> Ok pair
        | Result.Error reason -> Result.Error(Invalid("PLATFORM_URL", reason))

let private tokenFileVar = "MOLECULE_WORKSPACE_TOKEN_FILE"

/// A token read from MOLECULE_WORKSPACE_TOKEN_FILE, or the reason it cannot be used (never a fall-back). The same
/// rules at the start and on every rotation: a file that breaks one stops the start (exit 2), and a rotation to it
/// keeps the token read before.
let readTokenFile (path: string) (read: FileRead) : Result<string, ConfigError> =
    let bad reason = Result.Error(Invalid(tokenFileVar, reason))
    match read with
    | NotFound -> bad $"points to '{path}' which does not exist"
    | IsDirectory -> bad $"points to '{path}' which is a directory"
    | NotRegular kind -> bad $"points to '{path}' which is {kind}"
    | TooLarge limit -> bad $"'{path}' is larger than {limit} bytes — expected a single token"
    | Denied -> bad $"'{path}' is not readable (permission denied)"
    | NotUtf8 -> bad $"'{path}' is not valid UTF-8"
    | Unreadable reason -> bad $"'{path}' could not be read: {reason}"
    | Contents text ->
        match trim (text.TrimStart '\uFEFF') with
        | "" -> bad $"'{path}' is empty"
        | t when t |> Seq.exists Char.IsWhiteSpace -> bad $"'{path}' contains internal whitespace — expected a single token"
        | t when not (validToken t) ->
            bad $"'{path}' contains control or non-ASCII characters — expected the token exactly as the canvas shows it"
        | t -> Ok t

/// ONE token source, ONE precedence (fixes spec P1): env MOLECULE_WORKSPACE_TOKEN, else MOLECULE_WORKSPACE_TOKEN_FILE
/// (whose problems are errors, never a fall-back), else <state dir>/.auth_token.
let private token (env: Map<string, string>) (dir: string) (authToken: string option) (tokenFile: FileRead option) =
    let fromAuthFile () =
        match authToken |> Option.map trim with
        | Some t when t <> "" -> Some(Ok(t, FromFile(join dir tokenFileName)))
        | _ -> None
    let found =
        match var env tokenVar, var env tokenFileVar, tokenFile with
        | "", "", _ -> fromAuthFile ()
        | "", path, Some read -> Some(readTokenFile path read |> Result.map (fun t -> t, FromTokenFile path))
        | "", _, None -> fromAuthFile ()
        | t, _, _ -> Some(Ok(t, FromEnv))
    match found with
    | None -> Result.Error(Missing tokenVar)
    | Some(Ok(t, src)) when validToken t -> Ok(t, src)
    | Some(Ok(_, src)) ->
        let where =
            match src with
            | FromEnv -> "the value"
            | FromFile p
            | FromTokenFile p -> $"the token read from {p}"
            | FromWorkspaces -> "a MOLECULE_WORKSPACES token"
        Result.Error(
            Invalid(tokenVar, $"{where} contains whitespace, control or non-ASCII characters; paste the token exactly as the canvas shows it")
        )
    | Some(Result.Error e) -> Result.Error e

/// The configuration of one workspace connection on the shared settings of the environment.
let build (env: Map<string, string>) (stateDir: string) (id: WorkspaceId) (baseUrl: string, origin: string) (t: string, src: TokenSource) : Config =
    let name =
        match var env "MOLECULE_AGENT_NAME" with
        | "" -> "molecule-mcp-" + id.Value.Substring(0, 8)
        | n -> n
    let description =
        match var env "MOLECULE_AGENT_DESCRIPTION" with
        | "" -> None
        | d -> Some d
    { WorkspaceId = id
      PlatformUrl = baseUrl
      Origin = origin
      Token = t
      TokenSource = src
      AgentCard =
        { Name = name
          Description = description
          Skills = skills (var env "MOLECULE_AGENT_SKILLS") }
      StateDir = trim stateDir
      Verbose = flag env "MOLECULE_MCP_VERBOSE"
      HeartbeatEnabled = not (flag env "MOLECULE_MCP_DISABLE_HEARTBEAT")
      InboxEnabled = not (flag env "MOLECULE_MCP_DISABLE_INBOX")
      StreamEnabled = not (flag env "MOLECULE_MCP_DISABLE_STREAM")
      PollTimeoutSecs = pollTimeout (var env "MOLECULE_MCP_POLL_TIMEOUT_SECS")
      HeartbeatIntervalSecs = interval 20.0 300.0 (var env "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS")
      PollIntervalSecs = interval 5.0 60.0 (var env "MOLECULE_MCP_POLL_INTERVAL_SECS")
      Tier = tier (var env "WORKSPACE_TIER")
      ReplaySecs = whole defaultReplaySecs 1 maxReplaySecs (var env "MOLECULE_MCP_REPLAY_SECS")
      RenotifySecs = float (whole defaultRenotifySecs 0 maxRenotifySecs (var env "MOLECULE_MCP_RENOTIFY_SECS"))
      MaxLineBytes = whole defaultMaxLineBytes (64 * 1024) (256 * 1024 * 1024) (var env "MOLECULE_MCP_MAX_LINE_BYTES")
      // Checked by sharedErrors before a Config is built; the defaults only stand in for a value already refused.
      DelegationSyncViaInbox = (match syncViaInbox env with Ok on -> on | Result.Error _ -> false)
      DelegationTimeoutSecs = (match delegationTimeout env with Ok t -> t | Result.Error _ -> defaultDelegationTimeoutSecs)
      Identity = identity env
      LoopGuard = loopBounds env
      PermissionRelay = (var env permissionRelayVar = "" || flag env permissionRelayVar)
      PermissionTimeoutSecs = whole defaultPermissionTimeoutSecs 10 86_400 (var env "MOLECULE_MCP_PERMISSION_TIMEOUT_SECS") }

/// The platform URL of the environment (base, origin).
let platformOf (env: Map<string, string>) = platformUrl env

/// Env map → validated Config for one workspace (WORKSPACE_ID, PLATFORM_URL, a token), or ALL the problems found.
/// `tokenFile` is what the host found at MOLECULE_WORKSPACE_TOKEN_FILE's path (None when that variable is unset).
let parseSingle (env: Map<string, string>) (stateDir: string) (authToken: string option) (tokenFile: FileRead option) : Result<Config, ConfigError list> =
    let env = if isNull (box env) then Map.empty else env
    let id = workspaceId env
    let url = platformUrl env
    let tok = token env (trim stateDir) authToken tokenFile
    let shared = sharedErrors env
    match id, url, tok with
    | Ok id, Ok pair, Ok tokenAndSource when shared.IsEmpty -> Ok(build env stateDir id pair tokenAndSource)
    | _ ->
        let err r =
            match r with
            | Result.Error e -> [ e ]
            | Ok _ -> []
        Result.Error(err id @ err url @ err tok @ shared)

/// Env map → validated Config (single mode, no MOLECULE_WORKSPACE_TOKEN_FILE), or ALL the problems found.
let parse (env: Map<string, string>) (stateDir: string) (authToken: string option) : Result<Config, ConfigError list> =
    parseSingle env stateDir authToken None

// ---------------------------------------------------------------------------------------------
// Help, logging
// ---------------------------------------------------------------------------------------------

/// Text for stderr before exit 2. Never contains any env value (only variable names and reasons).
let helpText (errors: ConfigError list) : string =
    let missing =
        errors
        |> List.choose (function
            | Missing v when v = tokenVar -> Some(tokenVar + " (or CONFIGS_DIR/.auth_token)")
            | Missing v -> Some v
            | Invalid _ -> None)
        |> List.distinct
    let invalid =
        errors
        |> List.choose (function
            | Invalid(v, reason) -> Some $"Invalid {v}: {reason}"
            | Missing _ -> None)
    [ yield "molecule-mcp: missing or invalid environment."
      yield "Set these variables in the MCP server config before starting molecule-mcp:"
      yield "  WORKSPACE_ID              the workspace UUID, as shown in the canvas"
      yield "  PLATFORM_URL              the platform base URL, e.g. https://your-tenant.moleculesai.app"
      yield "                            (http://127.0.0.1:<port> for the local platform)"
      yield "  MOLECULE_WORKSPACE_TOKEN  the workspace bearer token from the canvas → Tokens tab"
      yield "                            (or store it in CONFIGS_DIR/.auth_token)"
      yield "Optional: MOLECULE_AGENT_NAME, MOLECULE_AGENT_DESCRIPTION, MOLECULE_AGENT_SKILLS (comma-separated)."
      yield ""
      if not missing.IsEmpty then
          yield "Currently missing: " + String.Join(", ", missing)
      yield! invalid ]
    |> String.concat "\n"

/// Info when MOLECULE_MCP_VERBOSE is on, else Warning.
let minLogLevel (config: Config) : LogLevel = if config.Verbose then Info else Warning

/// Masks the token in a text (see Secrets.mask): the raw env value only differs from the stored token by
/// surrounding whitespace, so it contains the token and is covered too.
let scrub (config: Config) (text: string) : string =
    let token = if isNull (box config) || isNull config.Token then "" else config.Token
    Secrets.mask [ token ] text
