/// Total validation of `tools/call` arguments into a typed `ToolCall` (fixes the silent defaults and crashes of
/// P5–P13): every argument the schema names is checked, nothing throws whatever the JSON.
module Molecule.Core.ToolArgs

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
let private defaultHistoryLimit = 20
let private maxHistoryLimit = 500

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

/// A required id: a required text that `tryParse` takes.
let private requiredId (name: string) (tryParse: string -> 'id option) (args: JsonObject) : Result<'id, string> =
    requiredText name args
    |> Result.bind (fun s ->
        match tryParse s with
        | Some id -> Ok id
        | None -> Result.Error $"{name} is required")

/// An optional text: missing/null → ""; otherwise it must be a JSON string. Trimmed.
let private optionalText (name: string) (args: JsonObject) : Result<string, string> =
    match arg name args with
    | Missing -> Ok ""
    | Value v ->
        match Json.asString v with
        | None -> Result.Error $"{name} must be a string"
        | Some s -> Ok(s.Trim())

/// A delegation's target: a workspace UUID.
let private peerWorkspace (args: JsonObject) : Result<WorkspaceId, string> =
    match requiredText "workspace_id" args with
    | Result.Error e -> Result.Error e
    | Ok s ->
        match WorkspaceId.tryParse s with
        | Some ws -> Ok ws
        | None -> Result.Error "workspace_id must be a workspace UUID (from list_peers)"

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

/// Integral number (or numeric string) → 1..max; missing, fractional, invalid or ≤ 0 → the default.
let private limitWith (deflt: int) (max: int) (args: JsonObject) : int =
    match arg "limit" args with
    | Missing -> deflt
    | Value v ->
        match number v with
        | Some f when f = Math.Floor f && f > 0.0 -> if f >= float max then max else int f
        | _ -> deflt

/// inbox_peek: 1..200, default 10.
let private limit (args: JsonObject) : int = limitWith defaultLimit maxLimit args

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
    member _.ReturnFrom(r: Result<'a, string>) = r

let private result = ResultBuilder()

/// delegate_task and delegate_task_async take the same arguments.
let private delegation (make: WorkspaceId * string -> ToolCall) (args: JsonObject) : Result<ToolCall, string> =
    result {
        let! peer = peerWorkspace args
        let! task = requiredText "task" args
        return make (peer, task)
    }

/// update_agent_card's card as compact JSON when it is an object; the program refuses anything else with the
/// reference's JSON answer.
let private card (args: JsonObject) : string option =
    match arg "card" args with
    | Value card ->
        let text = Json.compact card
        match Json.tryParse text with
        | Some(:? JsonObject) -> Some text
        | _ -> None
    | Missing -> None

let private chatHistory (args: JsonObject) : Result<ToolCall, string> =
    match arg "peer_id" args |> (function Value v -> Json.asString v |> Option.bind PeerId.tryParse | Missing -> None) with
    | Some peer ->
        result {
            let! before = optionalText "before_ts" args
            return ChatHistory(peer, limitWith defaultHistoryLimit maxHistoryLimit args, (if before = "" then None else Some before))
        }
    | None -> Result.Error "peer_id is required"

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

let private maxTitleChars = ToolSpecs.maxTitleChars
let private maxDetailChars = ToolSpecs.maxDetailChars
let private maxPriorityChars = ToolSpecs.maxPriorityChars

/// An optional text that must be one of `choices` (any letter case, trimmed): missing/null/"" → None.
let private optionalChoice (name: string) (choices: string list) (args: JsonObject) : Result<string option, string> =
    match optionalText name args with
    | Result.Error e -> Result.Error e
    | Ok "" -> Ok None
    | Ok given ->
        match choices |> List.tryFind (fun c -> String.Equals(c, given, StringComparison.OrdinalIgnoreCase)) with
        | Some c -> Ok(Some c)
        | None -> Result.Error $"""{name} must be one of {String.Join(", ", choices)}"""

/// A required text of at most `max` characters, trimmed.
let private boundedText (name: string) (max: int) (args: JsonObject) : Result<string, string> =
    requiredText name args
    |> Result.bind (fun s ->
        let s = s.Trim()
        if s.Length > max then Result.Error $"{name} is longer than {max} characters" else Ok s)

let private optionalBounded (name: string) (max: int) (args: JsonObject) : Result<string option, string> =
    optionalText name args
    |> Result.bind (fun s ->
        if s = "" then Ok None
        elif s.Length > max then Result.Error $"{name} is longer than {max} characters"
        else Ok(Some s))

let private recipient (args: JsonObject) : Result<Recipient, string> =
    result {
        let! kind = optionalChoice "recipient_type" [ "user"; "agent" ] args
        let! id = optionalText "recipient_id" args
        match kind, id with
        | (None | Some "user"), "" -> return ToUser
        | (None | Some "user"), _ -> return! Result.Error "recipient_id is only for recipient_type agent"
        | _, "" -> return! Result.Error "recipient_id is required for recipient_type agent (a workspace UUID from list_peers)"
        | _, id ->
            match WorkspaceId.tryParse id with
            | Some ws -> return ToAgent ws
            | None -> return! Result.Error "recipient_id must be a workspace UUID (from list_peers)"
    }

/// create_request, or create_approval (`approval`: kind and recipient fixed: an approval for the user).
let private newRequest (approval: bool) (args: JsonObject) : Result<ToolCall, string> =
    result {
        let! kind =
            if approval then Ok(Some "approval")
            else optionalChoice "kind" [ "task"; "approval" ] args |> Result.bind (function Some k -> Ok(Some k) | None -> Result.Error "kind is required (task or approval)")
        let! recipient = if approval then Ok ToUser else recipient args
        let! title = boundedText "title" maxTitleChars args
        let! detail = optionalBounded "detail" maxDetailChars args
        let! priority = optionalBounded "priority" maxPriorityChars args
        return
            CreateRequest
                { Kind = (if kind = Some "task" then TaskRequest else ApprovalRequest)
                  Recipient = recipient
                  Title = title
                  Detail = detail
                  Priority = priority }
    }

let private requestId (args: JsonObject) = requiredId "request_id" RequestId.tryParse args

let private respond (args: JsonObject) : Result<ToolCall, string> =
    result {
        let! rid = requestId args
        let! action = optionalChoice "action" [ "approved"; "rejected"; "done" ] args
        match action with
        | Some "approved" -> return RespondToRequest(rid, Approve)
        | Some "rejected" -> return RespondToRequest(rid, Reject)
        | Some _ -> return RespondToRequest(rid, MarkDone)
        | None -> return! Result.Error "action is required (approved, rejected or done)"
    }

let private parseRequests (name: string) (args: JsonObject) : Result<ToolCall, string> option =
    match name with
    | "create_request" -> Some(newRequest false args)
    | "create_approval" -> Some(newRequest true args)
    | "list_requests" ->
        Some(
            result {
                let! box = optionalChoice "box" [ "mine"; "inbox" ] args
                let! status = optionalChoice "status" ToolSpecs.requestStatuses args
                return ListRequests((if box = Some "inbox" then AddressedToMe else Mine), status)
            }
        )
    | "get_request" -> Some(requestId args |> Result.map GetRequest)
    | "respond_to_request" -> Some(respond args)
    | "add_request_message" ->
        Some(
            result {
                let! rid = requestId args
                let! body = boundedText "body" maxDetailChars args
                return AddRequestMessage(rid, body)
            }
        )
    | "cancel_request" -> Some(requestId args |> Result.map CancelRequest)
    | _ -> None

let private parseKnown (name: string) (args: JsonObject) : Result<ToolCall, string> option =
    match name with
    | "delegate_task" -> Some(delegation DelegateTask args)
    | "delegate_task_async" -> Some(delegation DelegateTaskAsync args)
    // workspace_id is accepted and ignored (only the caller's own delegations are visible).
    | "check_task_status" ->
        Some(
            result {
                let! taskId = optionalText "task_id" args
                return CheckTaskStatus(if taskId = "" then None else Some taskId)
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
                let! id = requiredId "activity_id" ActivityId.tryParse args
                return InboxPop id
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
    | "get_runtime_identity" -> Some(Ok GetRuntimeIdentity)
    | "update_agent_card" -> Some(Ok(UpdateAgentCard(card args)))
    | "broadcast_message" ->
        Some(
            result {
                let! message = requiredText "message" args
                return BroadcastMessage message
            }
        )
    | "chat_history" -> Some(chatHistory args)
    | _ -> parseRequests name args

/// The workspace the call names by its routing argument (ToolSpecs.routingArg), read here once.
let private route (name: string) (args: JsonObject) : Route =
    match ToolSpecs.routingArg name |> Option.map (fun arg -> arg, Json.stringProp arg args |> Option.map (fun s -> s.Trim())) with
    | Some(arg, Some given) when given <> "" ->
        match WorkspaceId.tryParse given with
        | Some ws -> Named(arg, given, ws)
        | None -> NotAWorkspace(arg, given)
    | _ -> Unnamed

/// Validates a `tools/call`: tool name + arguments (None = {}) → the typed call and the workspace it names, or a short
/// error sentence for the agent. Total: never throws, whatever the name or the JSON.
let parse (name: string) (args: JsonObject option) : Result<ParsedCall, string> =
    let name = if isNull name then "" else name

    let args =
        match args with
        | Some a when not (isNull a) -> a
        | _ -> JsonObject()

    try
        match parseKnown name args with
        | Some r -> r |> Result.map (fun call -> { Call = call; Route = route name args })
        | None -> Result.Error $"Unknown tool: {shown 100 name}"
    // Arguments the schema does not expect in a shape the readers cannot take (a node of another kind).
    with
    | :? InvalidOperationException
    | :? ArgumentException
    | :? FormatException ->
        Result.Error "invalid tool arguments"
