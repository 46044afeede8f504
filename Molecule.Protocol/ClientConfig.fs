/// How each MCP client is told to start molecule-mcp: the server name, the snippet to paste, the client's config file
/// and how to merge an entry into it. One wording for `molecule-mcp config`, the platform's `workspace create` /
/// `token mint` lines and the canvas. Pure; file IO belongs to the callers.
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

let private tomlString (s: string) =
    "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n") + "\""

let private codexTable (server: string) (command: string) (env: (string * string) list) =
    let pairs = String.Join(", ", env |> List.map (fun (k, v) -> $"{k} = {tomlString v}"))
    $"[mcp_servers.{server}]\ncommand = {tomlString command}\nenv = {{ {pairs} }}\n"

let private yamlString (s: string) = Json.quote s

let private hermesEntry (server: string) (command: string) (env: (string * string) list) =
    let lines =
        [ $"  {server}:"
          $"    command: {yamlString command}"
          "    env:" ]
        @ (env |> List.map (fun (k, v) -> $"      {k}: {yamlString v}"))
        @ [ "    enabled: true" ]
    String.Join("\n", lines) + "\n"

let private openCodeEntry (command: string) (env: (string * string) list) : JsonObject =
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
    | Hermes -> "mcp_servers:\n" + hermesEntry server command env
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

let private mergeJson (existing: string option) (key: string) (server: string) (value: JsonNode) : Result<string, string> =
    let doc =
        match existing with
        | None -> Ok(JsonObject())
        | Some text when String.IsNullOrWhiteSpace text -> Ok(JsonObject())
        | Some text ->
            match Json.tryParse text with
            | Some(:? JsonObject as o) -> Ok o
            | _ -> Error "the file is not a JSON object; fix or move it first"
    doc
    |> Result.bind (fun o ->
        match Json.prop key o with
        | None ->
            o[key] <- Json.obj [ server, value ]
            Ok(indentedJson o)
        | Some(:? JsonObject as servers) ->
            servers[server] <- value
            Ok(indentedJson o)
        | Some _ -> Error $"its \"{key}\" is not an object; fix it first")

/// Lines of `text` without the block that starts at a line equal to `header` and runs until the next line that
/// `isNext` recognises (or the end).
let private withoutBlock (text: string) (header: string) (isNext: string -> bool) =
    let lines = text.Replace("\r\n", "\n").Split('\n') |> List.ofArray
    let rec go (acc: string list) (skipping: bool) (rest: string list) =
        match rest with
        | [] -> List.rev acc
        | l :: tail when l.TrimEnd() = header -> go acc true tail
        | l :: tail when skipping && not (isNext l) -> go acc true tail
        | l :: tail -> go (l :: acc) false tail
    go [] false lines

let private mergeCodex (existing: string) (server: string) (command: string) (env: (string * string) list) =
    let header = $"[mcp_servers.{server}]"
    let kept = withoutBlock existing header (fun l -> l.TrimStart().StartsWith "[")
    let body = String.Join("\n", kept).TrimEnd('\n')
    Ok((if body = "" then "" else body + "\n\n") + codexTable server command env)

let private mergeHermes (existing: string) (server: string) (command: string) (env: (string * string) list) =
    let lines = existing.Replace("\r\n", "\n").Split('\n') |> List.ofArray
    let entryText = hermesEntry server command env
    match lines |> List.tryFindIndex (fun l -> l.TrimEnd() = "mcp_servers:") with
    | None ->
        let body = existing.TrimEnd('\n')
        Ok((if body = "" then "" else body + "\n") + "mcp_servers:\n" + entryText)
    | Some i ->
        // Entries are the lines indented under `mcp_servers:`; ours (two spaces + name) is replaced.
        let before = lines |> List.take (i + 1)
        let after = lines |> List.skip (i + 1)
        let isChild (l: string) = l.StartsWith " " || l.Trim() = ""
        let block = after |> List.takeWhile isChild
        let rest = after |> List.skip block.Length
        let cleaned =
            withoutBlock (String.Join("\n", block)) $"  {server}:" (fun l -> l.StartsWith "  " && not (l.StartsWith "   ") && l.Trim() <> "")
            |> List.filter (fun l -> l.Trim() <> "")
        let merged = before @ cleaned @ (entryText.TrimEnd('\n').Split('\n') |> List.ofArray) @ rest
        Ok(String.Join("\n", merged).TrimEnd('\n') + "\n")

/// The client's config file with this server's entry added or replaced (the rest kept), or why it cannot be done.
let merge (client: Client) (existing: string option) (server: string) (command: string) (env: (string * string) list) : Result<string, string> =
    match client with
    | ClaudeCode
    | Gemini
    | Cursor
    | Cline -> mergeJson existing "mcpServers" server (entry command env)
    | OpenCode -> mergeJson existing "mcp" server (openCodeEntry command env)
    | Codex -> mergeCodex (defaultArg existing "") server command env
    | Hermes -> mergeHermes (defaultArg existing "") server command env
    | PlainJson -> Error "plain JSON has no config file; paste the printed entry where your client expects it"
