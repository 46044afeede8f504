/// Ready-to-paste connection lines for each MCP client (Claude Code, Hermes, JSON config): the one wording both the
/// CLI (`workspace create`, `token mint`) and the canvas (Tokens tab, via the mint answer) show. Pure.
module Molecule.Platform.Connection

open System
open System.IO
open System.Text
open System.Text.Encodings.Web
open System.Text.Json
open System.Text.Json.Nodes

/// Said wherever a new token is shown (create and mint answers, the CLI, the canvas).
let shownOnce = "Copy this token now; it is not shown again. Anyone holding it acts as this workspace."

/// Said after a token is revoked (revoke answer, the CLI, the canvas).
let revoked = "An agent using it gets 401 from now on."

/// What an MCP client needs to start molecule-mcp for one workspace.
type Connection =
    { Name: string
      WorkspaceId: string
      PlatformUrl: string
      Token: string
      /// The molecule-mcp command (an absolute path, or `molecule-mcp` on PATH).
      Binary: string }

/// The environment of the server process, in a stable order (the agent name only when there is one).
let env (c: Connection) : (string * string) list =
    [ "WORKSPACE_ID", c.WorkspaceId
      "PLATFORM_URL", c.PlatformUrl
      "MOLECULE_WORKSPACE_TOKEN", c.Token
      if not (String.IsNullOrWhiteSpace c.Name) then
          "MOLECULE_AGENT_NAME", c.Name ]

/// Server name for the MCP config: lower-case letters, digits and '-', at most 48 characters, never empty.
let slug (name: string) : string =
    let sb = StringBuilder()

    for ch in (if isNull name then "" else name).Trim().ToLowerInvariant() do
        if (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') then
            sb.Append ch |> ignore
        elif sb.Length > 0 && sb[sb.Length - 1] <> '-' then
            sb.Append '-' |> ignore

    let s = sb.ToString().Trim('-')
    let s = if s.Length > 48 then s.Substring(0, 48).TrimEnd('-') else s
    if s = "" then "molecule" else s

let private isSafe (c: char) =
    Char.IsAsciiLetterOrDigit c || "_-./:=@%+,".Contains c

/// POSIX shell quoting: the word unchanged when it is plain, else single-quoted ('\'' for a quote).
let shellQuote (word: string) : string =
    let w = if isNull word then "" else word

    if w.Length > 0 && w |> Seq.forall isSafe then
        w
    else
        "'" + w.Replace("'", "'\\''") + "'"

/// `claude mcp add <slug> -s user -- env K=V … <binary>`
let claudeCommand (c: Connection) : string =
    [ "claude"; "mcp"; "add"; shellQuote (slug c.Name); "-s"; "user"; "--"; "env" ]
    @ [ for (k, v) in env c -> shellQuote $"{k}={v}" ]
    @ [ shellQuote c.Binary ]
    |> String.concat " "

/// `hermes mcp add <slug> --command <binary> --env K=V …`
let hermesCommand (c: Connection) : string =
    [ "hermes"; "mcp"; "add"; shellQuote (slug c.Name); "--command"; shellQuote c.Binary ]
    @ [ for (k, v) in env c do
            "--env"
            shellQuote $"{k}={v}" ]
    |> String.concat " "

/// `{"mcpServers": {"<slug>": {"command": …, "env": {…}}}}`
let jsonConfigNode (c: Connection) : JsonObject =
    let e = JsonObject()

    for (k, v) in env c do
        e[k] <- JsonValue.Create v

    let server = JsonObject()
    server["command"] <- JsonValue.Create c.Binary
    server["env"] <- e
    let servers = JsonObject()
    servers[slug c.Name] <- server
    let root = JsonObject()
    root["mcpServers"] <- servers
    root

/// Indented JSON without needless \u escapes (still valid, properly escaped JSON).
let toJson (node: JsonNode) : string =
    use ms = new MemoryStream()

    do
        use w =
            new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping))

        node.WriteTo w

    Encoding.UTF8.GetString(ms.ToArray())

let jsonConfig (c: Connection) : string = toJson (jsonConfigNode c)

/// One client's snippet: a stable key, its heading and the text to copy.
type Snippet = { Key: string; Title: string; Text: string }

/// The snippets, in the order they are shown.
let snippets (c: Connection) : Snippet list =
    [ { Key = "claude"; Title = "Claude Code (run once):"; Text = claudeCommand c }
      { Key = "hermes"; Title = "Hermes Agent (run once):"; Text = hermesCommand c }
      { Key = "json"
        Title = "Other MCP clients (JSON config):"
        Text = jsonConfig c } ]

/// The block printed by `workspace create` and `token mint`: each heading, then its text (commands indented).
let block (c: Connection) : string =
    let sb = StringBuilder()

    snippets c
    |> List.iteri (fun i s ->
        if i > 0 then sb.Append('\n') |> ignore
        sb.Append(s.Title).Append('\n') |> ignore
        let text = if s.Key = "json" then s.Text else "  " + s.Text
        sb.Append(text).Append('\n') |> ignore)

    sb.ToString()

/// The snippets as JSON (`[{key, title, text}]`), for the mint and create answers.
let toJsonArray (c: Connection) : JsonArray =
    let a = JsonArray()

    for s in snippets c do
        let o = JsonObject()
        o["key"] <- JsonValue.Create s.Key
        o["title"] <- JsonValue.Create s.Title
        o["text"] <- JsonValue.Create s.Text
        a.Add o

    a
