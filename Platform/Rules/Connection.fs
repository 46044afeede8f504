/// Ready-to-paste connection lines for each MCP client (Claude Code, Hermes, JSON config): the one wording both the
/// CLI (`workspace create`, `token mint`) and the canvas (Tokens tab, via the mint answer) show. Pure.
module Molecule.Platform.Connection

open System
open System.Text
open System.Text.Json.Nodes
module ClientConfig = Molecule.Protocol.ClientConfig

/// Said wherever a new token is shown (create and mint answers, the CLI, the canvas).
let shownOnce = "Copy this token now; it is not shown again. Anyone holding it acts as this workspace."

/// Said after a token is revoked (revoke answer, the CLI, the canvas).
let revoked = "An agent using it gets 401 from now on."

let badPlatformUrl = "platform_url must be an http(s) URL without a path"

/// The platform URL for connection lines: `platform_url` as given (the canvas sends the address it was opened at,
/// e.g. behind a proxy; a trailing slash dropped), else `fallback` (the scheme and Host the request came in on).
let platformUrl (given: string option) (fallback: string) : Result<string, Reply> =
    match given |> Option.filter (fun s -> s.Trim() <> "") with
    | None -> Ok fallback
    | Some u ->
        let u = u.Trim().TrimEnd('/')

        match Uri.TryCreate(u, UriKind.Absolute) with
        | true, uri when (uri.Scheme = "http" || uri.Scheme = "https") && uri.AbsolutePath = "/" && uri.Query = "" && uri.UserInfo = "" -> Ok u
        | _ -> Error(Wire.errorReply 400 badPlatformUrl)

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

/// Server name for the MCP config (the name `molecule-mcp config` uses too).
let slug (name: string) : string = ClientConfig.serverName name

let shellQuote (word: string) : string = ClientConfig.shellQuote word

/// `claude mcp add <slug> -s user -- env K=V … <binary>`
let claudeCommand (c: Connection) : string =
    ClientConfig.snippet ClientConfig.ClaudeCode (slug c.Name) c.Binary (env c)

/// `hermes mcp add <slug> --command <binary> --env K=V …`
let hermesCommand (c: Connection) : string =
    ClientConfig.addCommand ClientConfig.Hermes (slug c.Name) c.Binary (env c) |> Option.defaultValue ""

/// `{"mcpServers": {"<slug>": {"command": …, "env": {…}}}}`, indented, as `molecule-mcp config json` prints it.
let jsonConfig (c: Connection) : string =
    ClientConfig.snippet ClientConfig.PlainJson (slug c.Name) c.Binary (env c)

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
