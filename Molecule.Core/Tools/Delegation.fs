/// delegate_task, delegate_task_async and check_task_status (spec §3.1–3.3; P5–P7, P9, P10).
module Molecule.Core.DelegationTools

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// delegate_task
// ---------------------------------------------------------------------------------------------

type private A2aOutcome =
    | Answered of string
    | QueuedForPoll of method: string
    | Failed of string
    | Gone of string

/// All text of a JSON-RPC `result` (P9).
let private resultText (result: JsonNode) : string list = A2a.resultLines result

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

/// First 32 hex chars of SHA-256 of the text.
let private sha256Hex32 (text: string) : string =
    let hash = SHA256.HashData(Encoding.UTF8.GetBytes text)
    Convert.ToHexString(hash).ToLowerInvariant().Substring(0, 32)

/// Delegating to your own workspace — in any letter case, or to another workspace this same process serves — only
/// comes back to you (P29): refused before anything is sent.
let selfDelegation (tool: string) (ctx: ToolContext) (target: string) : string option =
    let opening = $"Error: cannot {tool} to your own workspace — "
    if WorkspaceId.names ctx.Config.WorkspaceId target then
        Some(
            opening
            + "a task sent to yourself only comes back to you as a message, and a delegate_task waiting for your own answer would never get it. Do the work yourself, or use commit_memory to keep a note or send_message_to_user to tell the user."
        )
    elif ctx.Served |> List.exists (fun w -> WorkspaceId.names w target) then
        Some(
            opening
            + $"{target.Trim().ToLowerInvariant()} is also served by this molecule-mcp process (MOLECULE_WORKSPACES), so the task would come back to you. Do the work yourself, or use commit_memory / send_message_to_user."
        )
    else
        None

/// How often the DELEGATION_SYNC_VIA_INBOX path reads the delegation list (the reference's 3 s).
let pollEverySecs = 3.0

/// The answer in a /delegations entry: its preview, said to be cut when the platform cut it.
let private previewOf (entry: JsonNode) : string =
    let preview = Json.stringProp "response_preview" entry |> Option.defaultValue ""
    if preview.Length >= 300 && (preview.EndsWith("...", StringComparison.Ordinal) || preview.EndsWith("…", StringComparison.Ordinal)) then
        preview
        + "\n(The platform's delegation list shows only the start of the answer; the whole answer may also reach your inbox as a delegation_result message.)"
    elif isBlank preview then
        "(the peer answered without any text)"
    else
        preview

let delegateTask (ctx: ToolContext) (target: string) (task: string) : Program =
    let cfg = ctx.Config
    let target = if isNull target then "" else target.Trim().ToLowerInvariant()

    platform ctx (fun () ->
        if target = "" || isBlank task then
            fail "Error: workspace_id and task are required."
        elif not (isUuid target) then
            fail $"Error: \"{target}\" is not a workspace ID (expected a UUID as shown by list_peers)."
        elif (selfDelegation "delegate_task" ctx target).IsSome then
            fail (selfDelegation "delegate_task" ctx target).Value
        else
            // `unavailable`: discover said the peer is not reachable right now (503 + its status). The send is still
            // tried: the platform queues messages for poll-mode peers whatever their status, so nothing is lost.
            let afterDiscover (discovered: string option) (unavailable: string option) : Program =
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

                let goneAfter (shown: string option) (body: string) : Program =
                    let info = removedInfo ctx body

                    let text =
                        match shown with
                        | Some t -> t + "\n\n" + Removed.text info
                        | None -> Removed.text info

                    Done({ Text = text; IsError = true }, learnt @ [ WorkspaceRemoved info ])

                // The activity log line's outcome is ignored, except that a 410 means this workspace is gone.
                let report (kind: string) (summary: string) (status: string) reqBody respBody err (shown: string option) (next: unit -> Program) =
                    Call(
                        Api.reportActivity cfg kind target summary status reqBody respBody err,
                        fun resp ->
                            match resp with
                            | Reply(410, body) -> goneAfter shown body
                            | _ -> next ()
                    )

                let finish (outcome: A2aOutcome) : Program =
                    match outcome with
                    | Gone body -> goneAfter None body
                    | Answered text ->
                        report "a2a_receive" $"{name} responded ({inv text.Length} chars)" "ok" None (Some(Json.obj [ "result", Json.str text ] :> JsonNode)) None (Some text) (fun () ->
                            // framed as the peer's words (P28); the activity log keeps the answer as it came
                            okWith (A2a.framePeerResult text) learnt)
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

                // DELEGATION_SYNC_VIA_INBOX: POST /delegate, then read /delegations every 3 s until it ends or
                // DELEGATION_TIMEOUT passes. Nothing is ever sent twice (P27); a queued delegation ends at once.
                let viaInbox () : Program =
                    let rec poll (id: string) (t0: float) (now: float) (last: string) : Program =
                        Call(
                            Api.delegations cfg,
                            fun resp ->
                                let entry =
                                    match resp with
                                    | Reply(s, body) when is2xx s ->
                                        Json.tryParse body
                                        |> Option.bind Json.asArray
                                        |> Option.defaultValue []
                                        |> List.tryFind (fun e -> Json.prop "delegation_id" e |> Option.bind Json.asScalarText = Some id)
                                    | _ -> None
                                let status = entry |> Option.bind (Json.stringProp "status") |> Option.defaultValue last
                                match resp, entry, status with
                                | Reply(410, body), _, _ -> finish (Gone body)
                                | _, Some e, "completed" -> finish (Answered(previewOf e))
                                | _, Some e, "failed" ->
                                    let why =
                                        [ "error"; "error_detail"; "summary" ]
                                        |> List.tryPick (fun k -> Json.stringProp k e |> Option.filter (isBlank >> not))
                                    finish (Failed(defaultArg why "delegation failed"))
                                | _, Some _, "queued" -> finish (QueuedForPoll "message/send")
                                | _ when now - t0 >= cfg.DelegationTimeoutSecs ->
                                    finish (
                                        Failed
                                            $"no answer within {secs cfg.DelegationTimeoutSecs} s (delegation_id={id}, last status: {status}). The platform is still working on it and nothing was re-sent: call check_task_status(task_id=\"{id}\") later."
                                    )
                                | _ ->
                                    let wait = Math.Max(0.0, Math.Min(pollEverySecs, t0 + cfg.DelegationTimeoutSecs - now))
                                    Pause(wait, fun later -> poll id t0 later status)
                        )

                    let key = sha256Hex32 $"{cfg.WorkspaceId.Value}:{target}:{task}:{ctx.Nonce}"
                    Call(
                        Api.``delegate`` cfg target task key,
                        fun resp ->
                            match resp with
                            | Reply(410, body) when namesPeer ctx target body -> finish (Failed $"workspace {target} was deleted on the platform")
                            | Reply(410, body) -> finish (Gone body)
                            | Reply(s, body) when is2xx s ->
                                match Json.tryParse body |> Option.bind (Json.prop "delegation_id") |> Option.bind Json.asScalarText with
                                | Some id -> Pause(0.0, fun t0 -> poll id t0 t0 "pending")
                                | None -> finish (Failed $"the platform accepted the delegation (HTTP {inv s}) but returned no delegation_id: {short body}")
                            | Reply(s, body) -> finish (Failed $"delegate dispatch failed: {httpDetail s body}")
                            | TransportError m -> finish (Failed $"delegate dispatch failed: could not reach the platform at {cfg.PlatformUrl}: {m}")
                            | TimedOut t -> finish (Failed $"delegate dispatch failed: the platform did not answer within {secs t} s")
                    )

                report "a2a_send" $"Delegating to {name}" "ok" (Some(Json.obj [ "task", Json.str task ] :> JsonNode)) None None None (fun () ->
                    if cfg.DelegationSyncViaInbox then
                        viaInbox ()
                    else
                        Call(Api.a2aSend cfg target (derivedId ctx.Nonce "rpc") ctx.Nonce task, fun resp -> finish (a2aOutcome ctx target resp)))

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

let delegateTaskAsync (ctx: ToolContext) (target: string) (task: string) : Program =
    let target = if isNull target then "" else target.Trim()

    platform ctx (fun () ->
        if target = "" || isBlank task then
            fail "Error: workspace_id and task are required."
        elif (selfDelegation "delegate_task_async" ctx target).IsSome then
            fail (selfDelegation "delegate_task_async" ctx target).Value
        else
            let key = sha256Hex32 $"{target}:{task}:{ctx.Nonce}"

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
                | s, _ -> fail $"Error: delegation to {target} failed: {httpDetail s body}"))

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

let checkTaskStatus (ctx: ToolContext) (taskId: string option) : Program =
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

