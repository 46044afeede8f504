/// The 11 MCP tools: names, descriptions and input schemas (reference-compatible property names,
/// types and required lists — spec §3), plus total validation of `tools/call` arguments into a
/// typed `ToolCall` (fixes the silent defaults and crashes of P5–P13).
module Molecule.Core.Tools

open Molecule.Protocol

open System
open System.Text.Json.Nodes

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

let private defaultTimeoutSecs = 60.0
let private maxTimeoutSecs = 300.0
let private defaultLimit = 10
let private maxLimit = 200

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

let private stringProp (description: string) : JsonNode =
    Json.obj [ "type", Json.str "string"; "description", Json.str description ]

let private enumProp (values: string list) (description: string) : JsonNode =
    Json.obj
        [ "type", Json.str "string"
          "enum", Json.arr (values |> List.map Json.str)
          "description", Json.str description ]

/// {"type":"object","properties":{...}[,"required":[...]]} — "required" is left out when empty
/// (an empty required array is invalid for strict draft-04 validators).
let private objectSchema (props: (string * JsonNode) list) (required: string list) : string =
    let fields =
        [ "type", Json.str "object"; "properties", (Json.obj props :> JsonNode) ]
        @ (if List.isEmpty required then [] else [ "required", Json.arr (required |> List.map Json.str) ])

    Json.compact (Json.obj fields)

let private workspaceIdProp =
    stringProp "ID of the target workspace: a UUID as shown by list_peers (or the peer_id of a peer_agent message)."

let private delegateSchema =
    objectSchema
        [ "workspace_id", workspaceIdProp
          "task", stringProp "What the peer should do — or your reply to a peer_agent message — in plain text." ]
        [ "workspace_id"; "task" ]

let private emptySchema = objectSchema [] []

let private spec name description schema =
    { Name = name
      Description = description
      InputSchema = schema }

/// The argument that selects the workspace a tool acts for when one process serves several (MOLECULE_WORKSPACES);
/// None for the tools that act for the primary workspace or on the shared inbox.
let routingArg (toolName: string) : string option =
    match toolName with
    | "send_message_to_user"
    | "broadcast_message" -> Some "workspace_id"
    | "wait_for_message"
    | "inbox_peek"
    | "inbox_pop"
    | "get_runtime_identity"
    | "update_agent_card" -> None
    | _ -> Some "source_workspace_id"

let private routingDescription (arg: string) =
    if arg = "workspace_id" then
        "Only when this server serves several workspaces (MOLECULE_WORKSPACES): the workspace to send from — the arrival_workspace_id of the message you answer."
    else
        "Only when this server serves several workspaces (MOLECULE_WORKSPACES): the workspace to act for. Omitted: the one the peer was listed from, else the first."

/// A spec with its routing argument added to the schema's properties.
let private withRouting (s: ToolSpec) : ToolSpec =
    match routingArg s.Name, Json.tryParse s.InputSchema with
    | Some arg, Some(:? JsonObject as schema) ->
        match Json.prop "properties" schema with
        | Some(:? JsonObject as props) when not (props.ContainsKey arg) ->
            props[arg] <- stringProp (routingDescription arg)
            { s with InputSchema = Json.compact schema }
        | _ -> s
    | _ -> s

/// The tools in the reference's `tools/list` order.
let specs: ToolSpec list =
    List.map withRouting <|
    [ spec
          "delegate_task"
          "Send a task (or a reply) to a peer workspace and wait for its answer, which becomes this tool's result (a push-mode peer may take several minutes). A peer that runs in poll mode — an external agent like you — cannot answer inline: the result then says the task was queued, which means it WAS delivered; the peer's answer arrives later as a peer_agent message in your inbox (wait_for_message / inbox_peek). Never resend a queued task. Get workspace IDs from list_peers."
          delegateSchema

      spec
          "delegate_task_async"
          "Send a task to a peer workspace and return at once with a delegation_id; the platform delivers it in the background. Follow up with check_task_status(task_id=<delegation_id>). When the peer runs in poll mode, check_task_status reports queued: the task was delivered and the peer's answer arrives later as a peer_agent message in your inbox."
          delegateSchema

      spec
          "check_task_status"
          "Check the tasks you started with delegate_task_async. With task_id: the latest state of that delegation (pending, dispatched, queued = delivered and waiting, do not resend; completed with a preview of the result; failed with the reason). With an empty or missing task_id: a list of your recent delegations, newest first. workspace_id is accepted for compatibility and ignored: you can only see your own delegations."
          (objectSchema
              [ "workspace_id", stringProp "The peer the task was sent to. Accepted for compatibility and ignored: only this workspace's own delegations are checked."
                "task_id", stringProp "delegation_id returned by delegate_task_async. Leave empty to list your recent delegations." ]
              // Required like in the reference (clients that validate keep working the same way);
              // parse accepts it missing, since it is ignored.
              [ "workspace_id" ])

      spec
          "list_peers"
          "List the workspaces you can message — your parent, siblings and children — with name, ID, status and role. Use an ID as workspace_id for delegate_task or delegate_task_async."
          emptySchema

      spec
          "get_workspace_info"
          "Show this workspace's own record on the platform: ID, name, role, tier, parent and status. Says clearly if the workspace has been deleted on the platform."
          emptySchema

      spec
          "send_message_to_user"
          "Post a message to the user's chat on the Molecule canvas: an acknowledgement, a progress update, a final result, or the answer to a canvas_user message. Never paste URLs or file links into the text: to share files, pass their absolute local paths in attachments (at most 25 MB per file) and they are uploaded and shown as attachments."
          (objectSchema
              [ "message", stringProp "The text to show the user. Do not put URLs or file links in it; use attachments for files."
                "attachments",
                Json.obj
                    [ "type", Json.str "array"
                      "items", (Json.obj [ "type", Json.str "string" ] :> JsonNode)
                      "description", Json.str "Absolute paths of local files to attach (at most 25 MB each). Optional." ] ]
              [ "message" ])

      spec
          "wait_for_message"
          "Wait up to timeout_secs seconds (default 60, at most 300; 0 = just check) for an inbound message from the user's canvas or a peer agent. Returns the oldest pending message as JSON (activity_id, text, peer_id, kind, method, created_at), or a timeout marker when nothing arrived. The message is NOT removed: after handling it, call inbox_pop(activity_id) or the same message is returned again."
          (objectSchema
              [ "timeout_secs",
                Json.obj
                    [ "type", Json.str "number"
                      "description", Json.str "Maximum seconds to wait, 0 to 300. Default 60."
                      "default", Json.num 60
                      "minimum", Json.num 0
                      "maximum", Json.num 300 ] ]
              [])

      spec
          "inbox_peek"
          "List pending inbound messages, oldest first, without removing them. Each has activity_id, text, peer_id, kind, method and created_at."
          (objectSchema
              [ "limit",
                Json.obj
                    [ "type", Json.str "integer"
                      "description", Json.str "How many messages to return at most (1 to 200). Default 10."
                      "default", Json.num 10
                      "minimum", Json.num 1
                      "maximum", Json.num 200 ] ]
              [])

      spec
          "inbox_pop"
          "Remove a message you have handled from the inbox, by its activity_id. Safe to repeat: answers removed=false when the message is already gone."
          (objectSchema [ "activity_id", stringProp "activity_id of the handled message." ] [ "activity_id" ])

      spec
          "commit_memory"
          "Save a fact in the platform's persistent memory. scope LOCAL (default): only this workspace reads it; TEAM: your team (parent and siblings) reads it too; GLOBAL: every workspace reads it; only root workspaces (no parent) may write it, and the platform says so otherwise. Do not store secrets."
          (objectSchema
              [ "content", stringProp "The fact to remember, as plain text."
                "scope", enumProp [ "LOCAL"; "TEAM"; "GLOBAL" ] "Who can read it: LOCAL (default), TEAM or GLOBAL." ]
              [ "content" ])

      spec
          "recall_memory"
          "Search the platform's persistent memory. The query is matched by the platform's full-text search (whole words, not substrings); an empty query returns memories without filtering, at most 50. scope empty (default): your own memories of every scope; LOCAL: your own LOCAL ones; TEAM: your team's TEAM memories; GLOBAL: everyone's GLOBAL memories."
          (objectSchema
              [ "query", stringProp "Words to search for. Empty = no filter."
                "scope", enumProp [ "LOCAL"; "TEAM"; "GLOBAL"; "" ] "Which memories to search; empty = your own of every scope." ]
              []) ]

// ---------------------------------------------------------------------------------------------
// Argument validation
// ---------------------------------------------------------------------------------------------

type private Arg =
    | Missing
    | Value of JsonNode

let private arg (name: string) (args: JsonObject) : Arg =
    match Json.prop name args with
    | Some v -> Value v
    | None -> Missing

let private isBlank (s: string) = String.IsNullOrWhiteSpace s

/// A required text: a JSON string that is not blank. The original text is kept (untrimmed).
let private requiredText (name: string) (args: JsonObject) : Result<string, string> =
    match arg name args with
    | Missing -> Result.Error $"{name} is required"
    | Value v ->
        match Json.asString v with
        | None -> Result.Error $"{name} must be a string"
        | Some s when isBlank s -> Result.Error $"{name} is required"
        | Some s -> Ok s

/// An optional text: missing/null → ""; otherwise it must be a JSON string. Trimmed.
let private optionalText (name: string) (args: JsonObject) : Result<string, string> =
    match arg name args with
    | Missing -> Ok ""
    | Value v ->
        match Json.asString v with
        | None -> Result.Error $"{name} must be a string"
        | Some s -> Ok(s.Trim())

let private workspaceId (args: JsonObject) : Result<string, string> =
    match requiredText "workspace_id" args with
    | Result.Error e -> Result.Error e
    | Ok s ->
        match Guid.TryParseExact(s.Trim(), "D") with
        | true, g -> Ok(g.ToString("D").ToLowerInvariant())
        | _ -> Result.Error "workspace_id must be a workspace UUID (from list_peers)"

/// Json.asFloat, also for hand-built nodes that cannot be serialized (NaN, ±Infinity).
let private number (node: JsonNode) : float option =
    try
        Json.asFloat node
    with
    | :? ArgumentException
    | :? InvalidOperationException ->
        None

/// Any number (or numeric string) → clamped to 0..300; missing or invalid → 60.
let private timeoutSecs (args: JsonObject) : float =
    match arg "timeout_secs" args with
    | Missing -> defaultTimeoutSecs
    | Value v ->
        match number v with
        | Some f -> Math.Clamp(f, 0.0, maxTimeoutSecs)
        | None -> defaultTimeoutSecs

/// Integral number (or numeric string) → 1..200; missing, fractional, invalid or ≤ 0 → 10.
let private limit (args: JsonObject) : int =
    match arg "limit" args with
    | Missing -> defaultLimit
    | Value v ->
        match number v with
        | Some f when f = Math.Floor f && f > 0.0 -> if f >= float maxLimit then maxLimit else int f
        | _ -> defaultLimit

let private isAbsolutePath (p: string) =
    let isDrive =
        p.Length >= 3
        && ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z'))
        && p[1] = ':'
        && (p[2] = '\\' || p[2] = '/')

    p.StartsWith "/" || p.StartsWith @"\\" || isDrive

/// Text safe to echo back in an error: one line, at most `max` characters (cut ones end in "…").
let private shown (max: int) (s: string) : string =
    let oneLine = String(s.ToCharArray() |> Array.map (fun c -> if Char.IsControl c then ' ' else c))

    if oneLine.Length <= max then
        oneLine
    else
        let cut = if Char.IsHighSurrogate oneLine[max - 2] then max - 2 else max - 1
        oneLine.Substring(0, cut) + "…"

let private attachments (args: JsonObject) : Result<string list, string> =
    let notPaths = Result.Error "attachments must be an array of file paths"

    match arg "attachments" args with
    | Missing -> Ok []
    | Value v ->
        match Json.asArray v with
        | None -> notPaths
        | Some items ->
            let paths = items |> List.map (fun i -> if isNull i then None else Json.asString i)

            if paths |> List.exists (fun p -> match p with Some s -> isBlank s | None -> true) then
                notPaths
            else
                let paths = paths |> List.choose id

                match paths |> List.tryFind (isAbsolutePath >> not) with
                | Some p -> Result.Error $"attachment path must be absolute: {shown 200 p}"
                | None -> Ok paths

let private asciiUpper (s: string) =
    String(s.ToCharArray() |> Array.map (fun c -> if c >= 'a' && c <= 'z' then char (int c - 32) else c))

let private scopeError = "scope must be one of LOCAL, TEAM, GLOBAL"

/// missing/null/"" → None; LOCAL/TEAM/GLOBAL in any letter case → Some; anything else → Error.
let private optionalScope (args: JsonObject) : Result<MemoryScope option, string> =
    match arg "scope" args with
    | Missing -> Ok None
    | Value v ->
        match Json.asString v with
        | None -> Result.Error scopeError
        | Some s ->
            match asciiUpper (s.Trim()) with
            | "" -> Ok None
            | "LOCAL" -> Ok(Some Local)
            | "TEAM" -> Ok(Some Team)
            | "GLOBAL" -> Ok(Some Global)
            | _ -> Result.Error scopeError

type private ResultBuilder() =
    member _.Bind(r: Result<'a, string>, f: 'a -> Result<'b, string>) = Result.bind f r
    member _.Return(x: 'a) : Result<'a, string> = Ok x

let private result = ResultBuilder()

/// delegate_task and delegate_task_async take the same arguments.
let private delegation (make: string * string -> ToolCall) (args: JsonObject) : Result<ToolCall, string> =
    result {
        let! ws = workspaceId args
        let! task = requiredText "task" args
        return make (ws, task)
    }

let private parseKnown (name: string) (args: JsonObject) : Result<ToolCall, string> option =
    match name with
    | "delegate_task" -> Some(delegation DelegateTask args)
    | "delegate_task_async" -> Some(delegation DelegateTaskAsync args)
    | "check_task_status" ->
        // workspace_id is accepted and ignored (only the caller's own delegations are visible).
        let ws =
            match Json.stringProp "workspace_id" args with
            | Some s -> s.Trim()
            | None -> ""

        Some(
            result {
                let! taskId = optionalText "task_id" args
                return CheckTaskStatus(ws, (if taskId = "" then None else Some taskId))
            }
        )
    | "list_peers" -> Some(Ok ListPeers)
    | "get_workspace_info" -> Some(Ok GetWorkspaceInfo)
    | "send_message_to_user" ->
        Some(
            result {
                let! message = requiredText "message" args
                let! files = attachments args
                return SendMessageToUser(message, files)
            }
        )
    | "wait_for_message" -> Some(Ok(WaitForMessage(timeoutSecs args)))
    | "inbox_peek" -> Some(Ok(InboxPeek(limit args)))
    | "inbox_pop" ->
        Some(
            result {
                let! id = requiredText "activity_id" args
                return InboxPop(id.Trim())
            }
        )
    | "commit_memory" ->
        Some(
            result {
                let! content = requiredText "content" args
                let! scope = optionalScope args
                return CommitMemory(content, defaultArg scope Local)
            }
        )
    | "recall_memory" ->
        Some(
            result {
                let! query = optionalText "query" args
                let! scope = optionalScope args
                return RecallMemory(query, scope)
            }
        )
    | _ -> None

/// Validates a `tools/call`: tool name + arguments (None = {}) → a typed call or a short error
/// sentence for the agent. Total: never throws, whatever the name or the JSON.
let parse (name: string) (args: JsonObject option) : Result<ToolCall, string> =
    let name = if isNull name then "" else name

    let args =
        match args with
        | Some a when not (isNull a) -> a
        | _ -> JsonObject()

    try
        match parseKnown name args with
        | Some r -> r
        | None -> Result.Error $"Unknown tool: {shown 100 name}"
    // Arguments the schema does not expect in a shape the readers cannot take (a node of another kind).
    with
    | :? InvalidOperationException
    | :? ArgumentException
    | :? FormatException ->
        Result.Error "invalid tool arguments"
