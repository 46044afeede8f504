/// How each MCP client is told to start molecule-mcp: the server name, the snippet to paste (and the entry text
/// `config --write` puts into a file), the client's config file and the path that starts molecule-mcp. One wording for
/// `molecule-mcp config`, the platform's `workspace create` / `token mint` lines and the canvas. Pure; reading and
/// merging files belongs to the host (Host.CSharp/Cli/ConfigFiles).
module Molecule.Protocol.ClientConfig

open System
open System.Text
open System.Text.Json.Nodes

type Client =
    | ClaudeCode
    | Codex
    | Gemini
    | Cursor
    | Cline
    | OpenCode
    | Hermes
    | PlainJson

let clients = [ ClaudeCode; Codex; Gemini; Cursor; Cline; OpenCode; Hermes; PlainJson ]

let clientName (c: Client) =
    match c with
    | ClaudeCode -> "claude-code"
    | Codex -> "codex"
    | Gemini -> "gemini"
    | Cursor -> "cursor"
    | Cline -> "cline"
    | OpenCode -> "opencode"
    | Hermes -> "hermes"
    | PlainJson -> "json"

let parseClient (text: string) : Client option =
    let t = if isNull text then "" else text.Trim().ToLowerInvariant()
    match t with
    | "claude" -> Some ClaudeCode
    | _ -> clients |> List.tryFind (fun c -> clientName c = t)

/// A server name for the config: lower-case letters, digits and '-', at most 48 characters, never empty.
let serverName (name: string) : string =
    let sb = StringBuilder()
    for ch in (if isNull name then "" else name.Trim().ToLowerInvariant()) do
        if (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') then sb.Append ch |> ignore
        elif sb.Length > 0 && sb[sb.Length - 1] <> '-' then sb.Append '-' |> ignore
    let slug = sb.ToString().Trim('-')
    let slug = if slug.Length > 48 then slug.Substring(0, 48).TrimEnd('-') else slug
    if slug = "" then "molecule" else slug

/// What Claude Code needs at start for push (channels) to this server.
let channelFlag (server: string) = $"--dangerously-load-development-channels server:{server}"

let private isSafe (c: char) =
    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "_-./:=@%+,".Contains c

/// A word as a POSIX shell reads it back unchanged.
let shellQuote (s: string) =
    let s = if isNull s then "" else s
    if s <> "" && s |> Seq.forall isSafe then s else "'" + s.Replace("'", "'\\''") + "'"

let private envObject (env: (string * string) list) =
    Json.obj (env |> List.map (fun (k, v) -> k, Json.str v))

/// The server entry most clients take: {"command": …, "env": {…}}.
let entry (command: string) (env: (string * string) list) : JsonObject =
    Json.obj [ "command", Json.str command; "env", (envObject env :> JsonNode) ]

let private indentedJson (node: JsonNode) = Json.indented node

/// A TOML basic string (every control character escaped).
let tomlString (s: string) =
    let sb = StringBuilder("\"")
    for c in (if isNull s then "" else s) do
        match c with
        | '"' -> sb.Append "\\\"" |> ignore
        | '\\' -> sb.Append "\\\\" |> ignore
        | '\n' -> sb.Append "\\n" |> ignore
        | '\r' -> sb.Append "\\r" |> ignore
        | '\t' -> sb.Append "\\t" |> ignore
        | c when c < ' ' || c = '\u007f' -> sb.Append("\\u").Append((int c).ToString("X4", Globalization.CultureInfo.InvariantCulture)) |> ignore
        | c -> sb.Append c |> ignore
    sb.Append('"').ToString()

/// Codex's entry: one `[mcp_servers.<name>]` table, the environment as an inline table.
let codexTable (server: string) (command: string) (env: (string * string) list) =
    let pairs = String.Join(", ", env |> List.map (fun (k, v) -> $"{k} = {tomlString v}"))
    let envText = if env.IsEmpty then "{}" else $"{{ {pairs} }}"
    $"[mcp_servers.{server}]\ncommand = {tomlString command}\nenv = {envText}\n"

let private yamlString (s: string) = Json.quote s

/// A YAML mapping key: plain when YAML reads it back as the same string, else double-quoted.
let yamlKey (k: string) =
    let reserved = [ "true"; "false"; "null"; "yes"; "no"; "on"; "off"; "y"; "n"; "nan"; "inf" ]
    let plain =
        not (String.IsNullOrEmpty k)
        && Char.IsAsciiLetter k[0]
        && k |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '_' || c = '-' || c = '.')
        && not (List.contains (k.ToLowerInvariant()) reserved)
    if plain then k else yamlString k

/// hermes' entry in block style: `<indent><name>:` and its settings one `unit` further in (lines end with "\n").
let hermesBlock (indent: string) (unit: string) (server: string) (command: string) (env: (string * string) list) =
    let inner = indent + unit
    let envLines =
        if env.IsEmpty then [ $"{inner}env: {{}}" ]
        else $"{inner}env:" :: (env |> List.map (fun (k, v) -> $"{inner}{unit}{yamlKey k}: {yamlString v}"))
    let lines = [ $"{indent}{yamlKey server}:"; $"{inner}command: {yamlString command}" ] @ envLines @ [ $"{inner}enabled: true" ]
    String.Join("\n", lines) + "\n"

/// hermes' entry in flow style (inside `mcp_servers: {…}`), with the given extra `key: value` items.
let hermesFlow (command: string) (env: (string * string) list) (extra: string list) =
    let pairs = String.Join(", ", env |> List.map (fun (k, v) -> $"{yamlKey k}: {yamlString v}"))
    let rest = String.Join("", extra |> List.map (fun e -> ", " + e))
    $"{{command: {yamlString command}, env: {{{pairs}}}, enabled: true{rest}}}"

/// OpenCode's entry: {"type": "local", "command": [...], "environment": {...}, "enabled": true}.
let openCodeEntry (command: string) (env: (string * string) list) : JsonObject =
    Json.obj
        [ "type", Json.str "local"
          "command", Json.arr [ Json.str command ]
          "environment", (envObject env :> JsonNode)
          "enabled", Json.bool true ]

/// The text to paste (or run) for a client.
let snippet (client: Client) (server: string) (command: string) (env: (string * string) list) : string =
    let wrapped (key: string) (value: JsonNode) = indentedJson (Json.obj [ key, (Json.obj [ server, value ] :> JsonNode) ])
    match client with
    | ClaudeCode ->
        let words = env |> List.map (fun (k, v) -> shellQuote (k + "=" + v))
        $"claude mcp add {shellQuote server} -s user -- env {String.Join(' ', words)} {shellQuote command}"
    | Codex -> codexTable server command env
    | Hermes -> "mcp_servers:\n" + hermesBlock "  " "  " server command env
    | OpenCode -> wrapped "mcp" (openCodeEntry command env)
    | Gemini
    | Cursor
    | Cline
    | PlainJson -> wrapped "mcpServers" (entry command env)

/// The one-line commands that add the server in the clients that have one (what the seed docs show): Claude Code's
/// `claude mcp add … -- env K=V … <binary>` and Hermes Agent's `hermes mcp add … --command <binary> --env K=V …`.
let addCommand (client: Client) (server: string) (command: string) (env: (string * string) list) : string option =
    match client with
    | ClaudeCode -> Some(snippet ClaudeCode server command env)
    | Hermes ->
        let envWords = env |> List.collect (fun (k, v) -> [ "--env"; shellQuote (k + "=" + v) ])
        Some(String.Join(' ', [ "hermes"; "mcp"; "add"; shellQuote server; "--command"; shellQuote command ] @ envWords))
    | _ -> None

/// The client's user config file under a home directory (None for plain JSON).
let configPath (client: Client) (home: string) : string option =
    let p (parts: string list) = Some(String.Join("/", home.TrimEnd('/') :: parts))
    match client with
    | ClaudeCode -> p [ ".claude.json" ]
    | Codex -> p [ ".codex"; "config.toml" ]
    | Gemini -> p [ ".gemini"; "settings.json" ]
    | Cursor -> p [ ".cursor"; "mcp.json" ]
    | Cline -> p [ ".config"; "Code"; "User"; "globalStorage"; "saoudrizwan.claude-dev"; "settings"; "cline_mcp_settings.json" ]
    | OpenCode -> p [ ".config"; "opencode"; "opencode.json" ]
    | Hermes -> p [ ".hermes"; "config.yaml" ]
    | PlainJson -> None

/// The folder of a .NET tool install whose versioned store holds `path` (`<folder>/.store/molecule-mcp/<version>/…`).
let toolStoreRoot (path: string) : string option =
    if isNull path then None
    else
        let i = path.Replace('\\', '/').IndexOf("/.store/molecule-mcp/", StringComparison.OrdinalIgnoreCase)
        if i < 0 then None else Some(path.Substring(0, i))

/// What a host found out about the molecule-mcp executable it means (its own, or the one the platform found).
type Launch =
    { /// The executable, as found (absolute).
      Binary: string
      /// The same with every symbolic link resolved.
      BinaryReal: string
      /// Each `molecule-mcp` on PATH in PATH order: (its path there, that path with every link resolved).
      OnPath: (string * string) list
      /// The .NET tool command (shim) of the tool install that holds the executable, when it is one and exists.
      ToolShim: string option }

/// The path that starts molecule-mcp, one rule for `doctor`, `config`, `workspace create`, the canvas and the demo:
/// the stable command on PATH (a .NET tool shim, a link the user made) wins over the resolved binary; a versioned
/// tool store path (`…/.store/molecule-mcp/<version>/…`, gone after `dotnet tool update`) is never the answer.
let launchCommand (l: Launch) : string =
    let starts (onPath: string, real: string) = (real = l.BinaryReal || Some onPath = l.ToolShim) && (toolStoreRoot onPath).IsNone
    match l.OnPath |> List.tryFind starts with
    | Some(path, _) -> path
    | None ->
        match l.ToolShim with
        | Some shim when (toolStoreRoot shim).IsNone -> shim
        | _ when (toolStoreRoot l.Binary).IsSome || (toolStoreRoot l.BinaryReal).IsSome -> "molecule-mcp"
        | _ -> l.Binary
