/// Tool call → pure program (spec §3). Each tool is a `Step`: the host performs the requests,
/// file checks and inbox operations it asks for and feeds the answers back. Every failure is
/// flagged `IsError` (P13) and platform error bodies surface their message (P8).
module Molecule.Core.Dispatch

open Molecule.Protocol

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

let private ok (text: string) : Step = Done({ Text = text; IsError = false }, [])
let private okWith (text: string) (obs: Observation list) : Step = Done({ Text = text; IsError = false }, obs)
let private fail (text: string) : Step = Done({ Text = text; IsError = true }, [])

let private inv (n: int) = n.ToString(CultureInfo.InvariantCulture)

let private secs (f: float) =
    if Double.IsFinite f then f.ToString("0.###", CultureInfo.InvariantCulture) else "?"

let private trunc (max: int) (s: string) = Api.truncate max s

let private short (s: string) =
    let s = if isNull s then "" else s.Trim()
    if s.Length > 200 then trunc 200 s + "…" else s

let private isBlank (s: string) = String.IsNullOrWhiteSpace s

/// The message of a platform error body: `{"error":"…"}`, `{"error":{"message":…}}`, `{"message":…}`,
/// else the first 200 characters of the raw body ("" for an empty body).
let private platformMessage (body: string) : string =
    match Json.tryParse body with
    | Some node ->
        let fromError =
            match Json.prop "error" node with
            | Some e ->
                match Json.asString e with
                | Some s -> Some s
                | None -> Json.stringProp "message" e
            | None -> None

        match fromError |> Option.orElse (Json.stringProp "message" node) with
        | Some m when not (isBlank m) -> m.Trim()
        | _ -> short body
    | None -> short (if isNull body then "" else body)

let private withMessage (msg: string) = if msg = "" then "" else $": {msg}"

/// Why a 401/403 happened and what to do (no "Error:" prefix).
let private tokenRejectedDetail (status: int) (msg: string) =
    $"the platform rejected this workspace's token (HTTP {inv status}{withMessage msg}). The workspace may have been deleted on the platform. Regenerate the workspace token from the canvas → Tokens tab, update your MCP config and restart your runtime."


let private isTokenProblem (status: int) (msg: string) =
    status = 401
    || (status = 403 && (msg = "" || msg.Contains("token", StringComparison.OrdinalIgnoreCase)))

/// What went wrong for a non-success HTTP answer (no "Error:" prefix).
let private httpDetail (status: int) (body: string) : string =
    let msg = platformMessage body

    if isTokenProblem status msg then
        tokenRejectedDetail status msg
    else
        $"platform answered HTTP {inv status}{withMessage msg}"

/// Error text for a non-success HTTP answer.
let private httpFailure (status: int) (body: string) : string = "Error: " + httpDetail status body

let private transportFailure (ctx: ToolContext) (message: string) =
    $"Error: could not reach the platform at {ctx.Config.PlatformUrl}: {message}"

let private timeoutFailure (after: float) =
    $"Error: the platform did not answer within {secs after} s."

/// The removal facts from a 410 body {id, removed_at, hint}.
let private removedInfo (ctx: ToolContext) (body: string) : RemovedInfo =
    let node = Json.tryParse body

    let field name =
        node |> Option.bind (Json.stringProp name) |> Option.filter (isBlank >> not)

    { Id = field "id" |> Option.defaultValue ctx.Config.WorkspaceId
      RemovedAt = field "removed_at"
      Hint = field "hint" |> Option.defaultValue Text.defaultRemovedHint }

let private removedStep (ctx: ToolContext) (body: string) : Step =
    let info = removedInfo ctx body
    Done({ Text = Text.removed info; IsError = true }, [ WorkspaceRemoved info ])

/// A 410 that names another workspace (the peer) is about that peer, not about this workspace.
let private namesPeer (ctx: ToolContext) (peer: string) (body: string) : bool =
    match Json.tryParse body |> Option.bind (Json.stringProp "id") with
    | Some id ->
        id.Equals(peer, StringComparison.OrdinalIgnoreCase)
        && not (id.Equals(ctx.Config.WorkspaceId, StringComparison.OrdinalIgnoreCase))
    | None -> false

/// Runs a platform program unless the workspace is already known to be removed.
let private platform (ctx: ToolContext) (program: unit -> Step) : Step =
    match ctx.Removed with
    | Some info -> fail (Text.removed info)
    | None -> program ()

/// One request whose 410 / transport / timeout outcomes are handled uniformly; `k` sees replies.
let private call (ctx: ToolContext) (req: Request) (k: int -> string -> Step) : Step =
    Call(
        req,
        fun resp ->
            match resp with
            | Reply(410, body) -> removedStep ctx body
            | Reply(status, body) -> k status (if isNull body then "" else body)
            | TransportError m -> fail (transportFailure ctx m)
            | TimedOut s -> fail (timeoutFailure s)
    )

let private is2xx status = status >= 200 && status < 300

// ---------------------------------------------------------------------------------------------
// get_workspace_info
// ---------------------------------------------------------------------------------------------

let private getWorkspaceInfo (ctx: ToolContext) : Step =
    platform ctx (fun () ->
        call ctx (Api.workspace ctx.Config) (fun status body ->
            match status with
            | s when is2xx s ->
                match Json.tryParse body with
                | Some node -> ok (Json.indented node)
                | None -> fail $"Error: the platform answered HTTP {inv s} with a body that is not JSON: {short body}"
            | 404 -> fail $"Error: workspace {ctx.Config.WorkspaceId} not found on the platform"
            | s -> fail (httpFailure s body)))

// ---------------------------------------------------------------------------------------------
// list_peers
// ---------------------------------------------------------------------------------------------

let private skillNames (peer: JsonNode) : string list =
    match Json.path [ "agent_card"; "skills" ] peer |> Option.bind Json.asArray with
    | Some items ->
        items
        |> List.choose (fun s ->
            match Json.asString s with
            | Some n -> Some n
            | None -> Json.stringProp "name" s)
        |> List.filter (isBlank >> not)
    | None -> []

/// Display name of a peer: the workspace name, or the agent card name when the platform still has
/// the registration placeholder (the id) or nothing (P12).
let private peerName (peer: JsonNode) (id: string) : string =
    let name = Json.stringProp "name" peer |> Option.filter (isBlank >> not)
    let cardName = Json.path [ "agent_card"; "name" ] peer |> Option.bind Json.asString |> Option.filter (isBlank >> not)

    match name, cardName with
    | Some n, Some c when n = id -> c
    | Some n, _ -> n
    | None, Some c -> c
    | None, None -> if id = "" then "(unnamed)" else id

let private peerLine (peer: JsonNode) : (string * string) option * string =
    let id = Json.prop "id" peer |> Option.bind Json.asScalarText |> Option.defaultValue ""
    let name = peerName peer id
    let status = Json.stringProp "status" peer |> Option.filter (isBlank >> not) |> Option.defaultValue "unknown"

    let role =
        match Json.stringProp "role" peer with
        | Some r when not (isBlank r) -> $", role: {r}"
        | _ -> ""

    let skills =
        match skillNames peer with
        | [] -> ""
        | xs -> " — skills: [" + String.Join(", ", xs) + "]"

    let pair = if id = "" then None else Some(id, name)
    pair, $"- {name} (ID: {id}, status: {status}{role}){skills}"

let private listPeers (ctx: ToolContext) : Step =
    let noPeers (why: string) = fail $"Error: no peers could be listed. {why}"

    platform ctx (fun () ->
        Call(
            Api.peers ctx.Config,
            fun resp ->
                match resp with
                | Reply(410, body) -> removedStep ctx body
                | Reply(s, body) when is2xx s ->
                    match Json.tryParse body |> Option.bind Json.asArray with
                    | Some [] ->
                        ok "You have no peers in the platform registry (no parent, no children and no siblings are registered)."
                    | Some items ->
                        let lines = items |> List.filter (fun p -> Json.asObject p |> Option.isSome) |> List.map peerLine
                        let names = lines |> List.choose fst

                        if lines.IsEmpty then
                            noPeers $"The platform answered with a list that holds no peer objects: {short body}"
                        else
                            okWith (String.Join("\n", lines |> List.map snd)) [ PeerNames names ]
                    | None -> noPeers $"The platform answered HTTP {inv s} but the body is not a JSON list: {short body}"
                | Reply(s, body) when s = 401 || s = 403 ->
                    let msg = platformMessage body

                    noPeers
                        $"Authentication to the platform failed (HTTP {inv s}{withMessage msg}): the workspace token was rejected. The workspace may have been deleted; regenerate the token from the canvas → Tokens tab, update your MCP config and restart your runtime."
                | Reply(404, _) ->
                    noPeers
                        $"Workspace {ctx.Config.WorkspaceId} is not registered with the platform (HTTP 404). Restart your runtime so it registers again, and check WORKSPACE_ID and PLATFORM_URL."
                | Reply(s, body) when s >= 500 -> noPeers $"The platform had an internal error (HTTP {inv s}{withMessage (platformMessage body)})."
                | Reply(s, body) -> noPeers $"Unexpected platform answer: HTTP {inv s}{withMessage (platformMessage body)}."
                | TransportError m -> noPeers $"Cannot reach the platform at {ctx.Config.PlatformUrl}: {m}"
                | TimedOut t -> noPeers $"The platform at {ctx.Config.PlatformUrl} did not answer within {secs t} s."
        ))

// ---------------------------------------------------------------------------------------------
// delegate_task
// ---------------------------------------------------------------------------------------------

type private A2aOutcome =
    | Answered of string
    | QueuedForPoll of method: string
    | Failed of string
    | Gone of string

let private textOfParts (parts: JsonNode option) : string list =
    match parts |> Option.bind Json.asArray with
    | Some items ->
        items
        |> List.choose (fun p ->
            let kind =
                Json.stringProp "kind" p |> Option.orElse (Json.stringProp "type" p) |> Option.defaultValue "text"

            if kind = "text" then Json.stringProp "text" p else None)
    | None -> []

/// All text of a JSON-RPC `result`: a Message's parts, or a Task's artifacts and status message (P9).
let private resultText (result: JsonNode) : string list =
    match Json.asString result with
    | Some s -> [ s ]
    | None ->
        let direct = textOfParts (Json.prop "parts" result)

        let artifacts =
            match Json.prop "artifacts" result |> Option.bind Json.asArray with
            | Some arts -> arts |> List.collect (fun a -> textOfParts (Json.prop "parts" a))
            | None -> []

        let statusMsg = textOfParts (Json.path [ "status"; "message"; "parts" ] result)
        direct @ artifacts @ statusMsg

let private rpcErrorDetail (err: JsonNode) : string =
    match Json.asString err with
    | Some s -> s
    | None ->
        let msg = Json.stringProp "message" err |> Option.filter (isBlank >> not)
        let code = Json.prop "code" err |> Option.bind Json.asScalarText

        match msg, code with
        | Some m, Some c -> $"{m} (code={c})"
        | Some m, None -> m
        | None, Some c -> $"JSON-RPC error without a message (code={c})"
        | None, None -> "JSON-RPC error without a message"

let private a2aOutcome (ctx: ToolContext) (target: string) (resp: Response) : A2aOutcome =
    match resp with
    | Reply(410, body) when namesPeer ctx target body -> Failed $"workspace {target} was deleted on the platform"
    | Reply(410, body) -> Gone body
    | Reply(status, body) ->
        let node = Json.tryParse body
        let sp name = node |> Option.bind (Json.stringProp name)

        if is2xx status && sp "status" = Some "queued" && sp "delivery_mode" = Some "poll" then
            QueuedForPoll(sp "method" |> Option.defaultValue "message/send")
        elif status >= 400 then
            Failed(httpDetail status body)
        else
            match node |> Option.bind (Json.prop "error"), node |> Option.bind (Json.prop "result") with
            | Some err, _ -> Failed(rpcErrorDetail err)
            | None, Some result ->
                let text = String.Join("\n", resultText result)

                if text.TrimStart().StartsWith("Agent error:", StringComparison.Ordinal) then Failed(text.Trim())
                elif isBlank text then Answered "(the peer answered without any text)"
                else Answered text
            | None, None ->
                match node |> Option.bind (Json.prop "queued") |> Option.bind Json.asScalarText with
                | Some "true" ->
                    Failed "the peer is busy; the platform queued the message for later delivery, so no reply will come back through delegate_task. Do not re-send it."
                | _ -> Failed $"unexpected answer (HTTP {inv status}, neither a result nor an error): {short body}"
    | TransportError m -> Failed $"could not reach the platform at {ctx.Config.PlatformUrl}: {m}"
    | TimedOut t ->
        Failed
            $"the peer did not answer within {secs t} s. The task may still be running on the peer; it was not re-sent. Check back later or ask the peer before sending it again."

let private isUuid (s: string) =
    let mutable g = Guid.Empty
    Guid.TryParseExact(s, "D", &g)

let private delegateTask (ctx: ToolContext) (target: string) (task: string) : Step =
    let cfg = ctx.Config
    let target = if isNull target then "" else target.Trim().ToLowerInvariant()

    platform ctx (fun () ->
        if target = "" || isBlank task then
            fail "Error: workspace_id and task are required."
        elif not (isUuid target) then
            fail $"Error: \"{target}\" is not a workspace ID (expected a UUID as shown by list_peers)."
        else
            // `unavailable`: discover said the peer is not reachable right now (503 + its status). The send is still
            // tried: the platform queues messages for poll-mode peers whatever their status, so nothing is lost.
            let afterDiscover (discovered: string option) (unavailable: string option) : Step =
                let name =
                    match discovered with
                    | Some n -> n
                    | None ->
                        match ctx.PeerNames.TryFind target with
                        | Some n when not (isBlank n) -> n
                        | _ -> target.Substring(0, Math.Min(8, target.Length))

                let learnt =
                    match discovered with
                    | Some n -> [ PeerNames [ target, n ] ]
                    | None -> []

                let goneAfter (shown: string option) (body: string) : Step =
                    let info = removedInfo ctx body

                    let text =
                        match shown with
                        | Some t -> t + "\n\n" + Text.removed info
                        | None -> Text.removed info

                    Done({ Text = text; IsError = true }, learnt @ [ WorkspaceRemoved info ])

                // The activity log line's outcome is ignored, except that a 410 means this workspace is gone.
                let report (kind: string) (summary: string) (status: string) reqBody respBody err (shown: string option) (next: unit -> Step) =
                    Call(
                        Api.reportActivity cfg kind target summary status reqBody respBody err,
                        fun resp ->
                            match resp with
                            | Reply(410, body) -> goneAfter shown body
                            | _ -> next ()
                    )

                let finish (outcome: A2aOutcome) : Step =
                    match outcome with
                    | Gone body -> goneAfter None body
                    | Answered text ->
                        report "a2a_receive" $"{name} responded ({inv text.Length} chars)" "ok" None (Some(Json.obj [ "result", Json.str text ] :> JsonNode)) None (Some text) (fun () ->
                            okWith text learnt)
                    | QueuedForPoll meth ->
                        let text =
                            match unavailable with
                            | None ->
                                $"Task delivered to {name} (poll-mode peer; queued, method={meth}). Its reply will arrive in your inbox as a peer_agent message — use wait_for_message / inbox_peek."
                            | Some st ->
                                $"Task queued for {name} (poll-mode peer, currently {st}; method={meth}): its agent gets it when it connects. Its reply will arrive in your inbox as a peer_agent message — use wait_for_message / inbox_peek."

                        report "a2a_receive" $"{name} has the task queued (poll mode)" "ok" None None None (Some text) (fun () -> okWith text learnt)
                    | Failed detail ->
                        let detail =
                            match unavailable with
                            | None -> detail
                            | Some st -> $"workspace {target} is not available right now (status: {st}) and the platform did not queue the task: {detail}"

                        let text =
                            $"DELEGATION FAILED to {name}: {detail}\nYou can try a different peer, do the task yourself, or tell the user that {name} is unavailable right now and give your best answer."

                        report "a2a_receive" $"{name} failed: {trunc 120 detail}" "error" None None (Some detail) (Some text) (fun () ->
                            Done({ Text = text; IsError = true }, learnt))

                report "a2a_send" $"Delegating to {name}" "ok" (Some(Json.obj [ "task", Json.str task ] :> JsonNode)) None None None (fun () ->
                    NewId(fun rpcId ->
                        NewId(fun messageId ->
                            Call(Api.a2aSend cfg target rpcId messageId task, fun resp -> finish (a2aOutcome ctx target resp)))))

            Call(
                Api.discover cfg target,
                fun resp ->
                    match resp with
                    | Reply(410, body) when namesPeer ctx target body ->
                        fail $"Error: workspace {target} was deleted on the platform. Pick another peer from list_peers."
                    | Reply(410, body) -> removedStep ctx body
                    | Reply(s, body) when is2xx s ->
                        let node = Json.tryParse body

                        match node |> Option.bind (Json.stringProp "status") with
                        | Some st when st.Equals("offline", StringComparison.OrdinalIgnoreCase) ->
                            fail $"Error: workspace {target} is offline."
                        | _ -> afterDiscover (node |> Option.bind (Json.stringProp "name") |> Option.filter (isBlank >> not)) None
                    | Reply(404, _) ->
                        fail $"Error: workspace {target} was not found on the platform. Check the ID with list_peers."
                    | Reply(403, body) when not (isTokenProblem 403 (platformMessage body)) ->
                        fail
                            $"Error: you may not reach workspace {target} (access control: {platformMessage body}). Only peers listed by list_peers can be delegated to."
                    | Reply(503, body) ->
                        let st = Json.tryParse body |> Option.bind (Json.stringProp "status") |> Option.defaultValue "unavailable"
                        afterDiscover None (Some st)
                    | Reply(s, body) -> fail $"Error: could not look up workspace {target}: {httpDetail s body}"
                    | TransportError m -> fail (transportFailure ctx m)
                    | TimedOut t -> fail (timeoutFailure t)
            ))

// ---------------------------------------------------------------------------------------------
// delegate_task_async / check_task_status
// ---------------------------------------------------------------------------------------------

/// First 32 hex chars of SHA-256 of the text.
let private sha256Hex32 (text: string) : string =
    let hash = SHA256.HashData(Encoding.UTF8.GetBytes text)
    Convert.ToHexString(hash).ToLowerInvariant().Substring(0, 32)

let private delegateTaskAsync (ctx: ToolContext) (target: string) (task: string) : Step =
    let target = if isNull target then "" else target.Trim()

    platform ctx (fun () ->
        if target = "" || isBlank task then
            fail "Error: workspace_id and task are required."
        else
            NewId(fun nonce ->
                let key = sha256Hex32 $"{target}:{task}:{nonce}"

                call ctx (Api.``delegate`` ctx.Config target task key) (fun status body ->
                    let node = Json.tryParse body
                    let idOf () = node |> Option.bind (Json.prop "delegation_id") |> Option.bind Json.asScalarText

                    let answer (id: string) (note: string) =
                        Json.obj
                            [ "delegation_id", Json.str id
                              "workspace_id", Json.str target
                              "status", Json.str "delegated"
                              "note", Json.str note ]
                        |> Json.compact
                        |> ok

                    let hit =
                        node |> Option.bind (Json.prop "idempotent_hit") |> Option.bind Json.asScalarText = Some "true"

                    match status, idOf () with
                    | s, Some id when is2xx s && hit ->
                        answer
                            id
                            "This task was already delegated to that peer; the existing delegation continues. Use check_task_status to poll for its result."
                    | s, Some id when is2xx s ->
                        answer id "Task delegated. The platform runs it in the background. Use check_task_status to poll for results."
                    | s, None when is2xx s ->
                        fail $"Error: delegation to {target} was accepted (HTTP {inv s}) but the platform returned no delegation_id: {short body}"
                    | s, _ -> fail $"Error: delegation to {target} failed: {httpDetail s body}")))

let private queuedEnvelope = Regex("\"status\"\\s*:\\s*\"queued\"", RegexOptions.CultureInvariant)

/// P6: a poll-mode peer's queued envelope is not a completed result.
let private fixQueued (entry: JsonObject) : JsonObject =
    let preview = Json.stringProp "response_preview" entry |> Option.defaultValue ""

    if queuedEnvelope.IsMatch preview && preview.Contains("poll", StringComparison.Ordinal) then
        entry["status"] <- Json.str "queued"

        entry["note"] <-
            Json.str
                "The peer is a poll-mode workspace: the task was queued for it, not completed. Its reply will arrive in your inbox as a peer_agent message (wait_for_message / inbox_peek)."

    entry

let private createdAt (entry: JsonNode) : DateTimeOffset option =
    match Json.stringProp "created_at" entry with
    | Some s ->
        match DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) with
        | true, d -> Some d
        | _ -> None
    | None -> None

let private checkTaskStatus (ctx: ToolContext) (taskId: string option) : Step =
    platform ctx (fun () ->
        call ctx (Api.delegations ctx.Config) (fun status body ->
            if not (is2xx status) then
                fail $"Error: failed to check delegations: {httpDetail status body}"
            else
                match Json.tryParse body |> Option.bind Json.asArray with
                | None -> fail $"Error: failed to check delegations: the platform's answer is not a JSON list: {short body}"
                | Some items ->
                    let entries = items |> List.choose Json.asObject

                    match taskId |> Option.filter (isBlank >> not) with
                    | Some id ->
                        let matches =
                            entries
                            |> List.filter (fun e ->
                                Json.prop "delegation_id" e |> Option.bind Json.asScalarText = Some id)

                        match matches with
                        | [] ->
                            ok (Json.compact (Json.obj [ "status", Json.str "not_found"; "delegation_id", Json.str id ]))
                        | first :: _ ->
                            // newest first from the platform; prefer a strictly later timestamp if present
                            let newest =
                                matches
                                |> List.fold
                                    (fun (best: JsonObject) e ->
                                        match createdAt e, createdAt best with
                                        | Some a, Some b when a > b -> e
                                        | _ -> best)
                                    first

                            ok (Json.compact (fixQueued (Json.clone newest :?> JsonObject)))
                    | None ->
                        let reduce (e: JsonObject) =
                            let field name =
                                Json.prop name e |> Option.bind Json.asScalarText |> Option.defaultValue ""

                            Json.obj
                                [ "delegation_id", Json.str (field "delegation_id")
                                  "target_id", Json.str (field "target_id")
                                  "status", Json.str (field "status")
                                  "summary", Json.str (field "summary")
                                  "response_preview", Json.str (field "response_preview") ]
                            |> fixQueued
                            :> JsonNode

                        Json.obj
                            [ "delegations", Json.arr (entries |> List.truncate 10 |> List.map reduce)
                              "count", Json.num entries.Length ]
                        |> Json.compact
                        |> ok))

// ---------------------------------------------------------------------------------------------
// Inbox tools (local; work even when the workspace is removed)
// ---------------------------------------------------------------------------------------------

let private inboxDisabled =
    "Error: inbox polling is not enabled (MOLECULE_MCP_DISABLE_INBOX is set). Unset it and restart the runtime to receive messages."

let private unexpectedInbox = "Error: the inbox gave an unexpected answer."

let private waitForMessage (timeout: float) : Step =
    let t = if Double.IsNaN timeout then 60.0 else Math.Clamp(timeout, 0.0, 300.0)

    Inbox(
        Wait t,
        fun answer ->
            match answer with
            | InboxDisabled -> fail inboxDisabled
            | Waited(Some m) -> ok (Json.compact (Inbox.toJson m))
            | Messages(m :: _) -> ok (Json.compact (Inbox.toJson m))
            | Waited None
            | Messages [] -> ok (Json.compact (Json.obj [ "timeout", Json.bool true; "timeout_secs", Json.numf t ]))
            | Popped _ -> fail unexpectedInbox
    )

let private inboxPeek (limit: int) : Step =
    let n = if limit <= 0 then 10 else limit

    Inbox(
        Peek n,
        fun answer ->
            match answer with
            | InboxDisabled -> fail inboxDisabled
            | Messages ms -> ok (Json.compact (Json.arr (ms |> List.truncate n |> List.map (fun m -> Inbox.toJson m :> JsonNode))))
            | Waited m -> ok (Json.compact (Json.arr (m |> Option.toList |> List.map (fun m -> Inbox.toJson m :> JsonNode))))
            | Popped _ -> fail unexpectedInbox
    )

let private inboxPop (activityId: string) : Step =
    if isBlank activityId then
        fail "Error: activity_id is required."
    else
        Inbox(
            Pop activityId,
            fun answer ->
                match answer with
                | InboxDisabled -> fail inboxDisabled
                | Popped removed ->
                    ok (Json.compact (Json.obj [ "removed", Json.bool removed; "activity_id", Json.str activityId ]))
                | Messages _
                | Waited _ -> fail unexpectedInbox
        )

// ---------------------------------------------------------------------------------------------
// send_message_to_user
// ---------------------------------------------------------------------------------------------

let private maxAttachmentBytes = 25L * 1024L * 1024L

let private baseName (path: string) =
    let i = Math.Max(path.LastIndexOf '/', path.LastIndexOf '\\')
    if i >= 0 then path.Substring(i + 1) else path

let private sendMessageToUser (ctx: ToolContext) (message: string) (attachments: string list) : Step =
    let cfg = ctx.Config
    let paths = attachments |> List.filter (isBlank >> not)

    let sendNotify (entries: JsonNode list) : Step =
        call ctx (Api.notify cfg message entries) (fun status body ->
            if is2xx status then
                match entries.Length with
                | 0 -> ok "Message sent to user"
                | n -> ok $"Message sent to user with {inv n} attachment(s)"
            else
                fail (httpFailure status body))

    platform ctx (fun () ->
        if isBlank message then
            fail "Error: message is required."
        elif paths.IsEmpty then
            sendNotify []
        else
            CheckFiles(
                paths,
                fun checks ->
                    if checks.Length <> paths.Length then
                        fail "Error: could not check the attachment files; nothing was sent."
                    else
                        let problem =
                            List.zip paths checks
                            |> List.tryPick (fun (p, c) ->
                                match c with
                                | FileMissing -> Some $"Error: attachment not found: {p}"
                                | FileUnreadable reason -> Some $"Error: cannot read attachment {p}: {reason}"
                                | FileOk size when size > maxAttachmentBytes ->
                                    let mb = (float size / 1048576.0).ToString("0.#", CultureInfo.InvariantCulture)
                                    Some $"Error: attachment {p} is {mb} MB; the limit is 25 MB per file."
                                | FileOk _ -> None)

                        match problem with
                        | Some text -> fail (text + " Nothing was sent.")
                        | None ->
                            let files =
                                paths
                                |> List.map (fun p ->
                                    let name = baseName p

                                    { Path = p
                                      FileName = name
                                      ContentType = Api.contentTypeOf name })

                            call ctx (Api.uploads cfg files) (fun status body ->
                                if status <> 200 then
                                    fail $"Error: chat/uploads returned {inv status}{withMessage (platformMessage body)}. Nothing was sent."
                                else
                                    match Json.tryParse body |> Option.bind (Json.prop "files") |> Option.bind Json.asArray with
                                    | Some entries when entries.Length = files.Length -> sendNotify (entries |> List.map Json.clone)
                                    | Some entries ->
                                        fail
                                            $"Error: chat/uploads returned {inv entries.Length} entries for {inv files.Length} files. Nothing was sent."
                                    | None ->
                                        fail $"Error: chat/uploads answered without a files list: {short body}. Nothing was sent.")
            ))

// ---------------------------------------------------------------------------------------------
// Memories
// ---------------------------------------------------------------------------------------------

let private secretPatterns: (Regex * string) list =
    let opts = RegexOptions.CultureInvariant

    [ Regex("(?<![A-Za-z0-9])sk-[A-Za-z0-9_\\-]{20,}", opts), "[REDACTED]"
      Regex("gh[ps]_[A-Za-z0-9]{36,}", opts), "[REDACTED]"
      Regex("github_pat_[A-Za-z0-9_]{82,}", opts), "[REDACTED]"
      Regex("AKIA[A-Z0-9]{16}", opts), "[REDACTED]"
      Regex("(?i)((?:api_key|key|token|secret|password)\\s*[=:]\\s*)[A-Za-z0-9+/=_\\-]{40,}", opts), "$1[REDACTED]" ]

/// Replaces well-known secret shapes with [REDACTED] before anything leaves the process (spec §3.10).
let redactSecrets (text: string) : string =
    match text with
    | null -> ""
    | t -> secretPatterns |> List.fold (fun (acc: string) (re, repl) -> re.Replace(acc, repl)) t

let private commitMemory (ctx: ToolContext) (content: string) (scope: MemoryScope) : Step =
    platform ctx (fun () ->
        if isBlank content then
            fail "Error: content is required."
        else
            call ctx (Api.commitMemory ctx.Config (redactSecrets content) scope) (fun status body ->
                if status = 200 || status = 201 then
                    let node = Json.tryParse body
                    let id = node |> Option.bind (Json.prop "id") |> Option.bind Json.asScalarText |> Option.defaultValue ""
                    let sc = node |> Option.bind (Json.stringProp "scope") |> Option.defaultValue (Api.scopeName scope)

                    Json.obj [ "success", Json.bool true; "id", Json.str id; "scope", Json.str sc ]
                    |> Json.compact
                    |> ok
                else
                    fail (httpFailure status body)))

let private recallMemory (ctx: ToolContext) (query: string) (scope: MemoryScope option) : Step =
    platform ctx (fun () ->
        call ctx (Api.recallMemory ctx.Config (if isNull query then "" else query.Trim()) scope) (fun status body ->
            if not (is2xx status) then
                fail (httpFailure status body)
            else
                match Json.tryParse body |> Option.bind Json.asArray with
                | Some [] -> ok "No memories found."
                | Some rows ->
                    rows
                    |> List.map (fun r ->
                        let sc = Json.stringProp "scope" r |> Option.filter (isBlank >> not) |> Option.defaultValue "?"
                        let content = Json.prop "content" r |> Option.bind Json.asScalarText |> Option.defaultValue ""
                        $"[{sc}] {content}")
                    |> fun lines -> ok (String.Join("\n", lines))
                | None -> fail $"Error: the platform's memory answer is not a JSON list: {short body}"))

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/// Tokens shorter than this are placeholders (a grandfathered workspace needs none; the platform mints 43
/// characters): scrubbing them would mangle ordinary words in results.
let private minScrubbedToken = 8

/// The same program, its final text scrubbed of the workspace token: platform bodies, peer replies and
/// memories are quoted into results, and a result goes to stdout, where the token must never appear.
let rec private scrubbed (config: Config) (step: Step) : Step =
    match step with
    | Done(output, observations) when not (isNull config.Token) && config.Token.Length >= minScrubbedToken ->
        Done({ output with Text = Config.scrub config output.Text }, observations)
    | Done _ -> step
    | Call(req, k) -> Call(req, k >> scrubbed config)
    | CheckFiles(paths, k) -> CheckFiles(paths, k >> scrubbed config)
    | Inbox(op, k) -> Inbox(op, k >> scrubbed config)
    | NewId k -> NewId(k >> scrubbed config)

/// The program for one validated tool call.
let run (ctx: ToolContext) (toolCall: ToolCall) : Step =
    scrubbed ctx.Config <|
    match toolCall with
    | ListPeers -> listPeers ctx
    | GetWorkspaceInfo -> getWorkspaceInfo ctx
    | DelegateTask(target, task) -> delegateTask ctx target task
    | DelegateTaskAsync(target, task) -> delegateTaskAsync ctx target task
    | CheckTaskStatus(_, taskId) -> checkTaskStatus ctx taskId
    | WaitForMessage t -> waitForMessage t
    | InboxPeek n -> inboxPeek n
    | InboxPop id -> inboxPop id
    | SendMessageToUser(message, attachments) -> sendMessageToUser ctx message attachments
    | CommitMemory(content, scope) -> commitMemory ctx content scope
    | RecallMemory(query, scope) -> recallMemory ctx query scope
