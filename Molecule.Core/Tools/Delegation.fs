/// delegate_task and delegate_task_async (spec §3.1–3.2; P5, P7, P9, P10); check_task_status is TaskStatus.fs.
module Molecule.Core.DelegationTools

open System
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// delegate_task: what came of it
// ---------------------------------------------------------------------------------------------

/// What came of sending the task.
type private A2aOutcome =
    | Answered of string
    | QueuedForPoll of method: string
    | Failed of string

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

/// What an A2A send's answer means (a 410 about this workspace aside: the call ends there).
let private a2aOutcome (ctx: ToolContext) (peer: string) (resp: Response) : A2aOutcome =
    match resp with
    | Reply(410, body) when namesPeer ctx peer body -> Failed $"workspace {peer} was deleted on the platform"
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

/// First 32 hex chars of SHA-256 of the text.
let private sha256Hex32 (text: string) : string =
    let hash = SHA256.HashData(Encoding.UTF8.GetBytes text)
    Convert.ToHexString(hash).ToLowerInvariant().Substring(0, 32)

/// Delegating to your own workspace — or to another workspace this same process serves — only comes back to you
/// (P29): refused before anything is sent.
let selfDelegation (tool: string) (ctx: ToolContext) (peer: WorkspaceId) : string option =
    let opening = $"Error: cannot {tool} to your own workspace — "
    if peer = ctx.Config.WorkspaceId then
        Some(
            opening
            + "a task sent to yourself only comes back to you as a message, and a delegate_task waiting for your own answer would never get it. Do the work yourself, or use commit_memory to keep a note or send_message_to_user to tell the user."
        )
    elif List.contains peer ctx.Served then
        Some(
            opening
            + $"{peer.Value} is also served by this molecule-mcp process (MOLECULE_WORKSPACES), so the task would come back to you. Do the work yourself, or use commit_memory / send_message_to_user."
        )
    else
        None

/// The checks before anything is sent: a task, and a peer that is not this process itself.
let private refuseNotSendable (tool: string) (ctx: ToolContext) (peer: WorkspaceId) (task: string) : Program<Result<unit, ToolOutput>> =
    program {
        if isBlank task then do! refuse "Error: workspace_id and task are required."
        match selfDelegation tool ctx peer with
        | Some refusal -> do! refuse refusal
        | None -> ()
    }

/// How often the DELEGATION_SYNC_VIA_INBOX path reads the delegation list (the reference's 3 s).
let pollEverySecs = 3.0

// ---------------------------------------------------------------------------------------------
// delegate_task: the peer
// ---------------------------------------------------------------------------------------------

/// The peer a delegation goes to, as discover found it.
type private Target =
    { Id: WorkspaceId
      /// discover's name, else the one learnt before, else the id's first 8 characters.
      Name: string
      /// discover's name, which the agent learns.
      Discovered: string option
      /// discover said the peer is not reachable right now (503 + its status). The send is still tried: the platform
      /// queues messages for poll-mode peers whatever their status, so nothing is lost.
      Unavailable: string option }

let private found (ctx: ToolContext) (peer: WorkspaceId) (discovered: string option) (unavailable: string option) : Target =
    let learntBefore = ctx.PeerNames.TryFind peer.Value |> Option.filter (isBlank >> not)
    { Id = peer
      Name = discovered |> Option.orElse learntBefore |> Option.defaultValue (peer.Value.Substring(0, 8))
      Discovered = discovered
      Unavailable = unavailable }

/// Looks the peer up (GET /registry/discover): goes on with it, or ends the call when it cannot be reached.
let private discover (ctx: ToolContext) (peer: WorkspaceId) : Program<Result<Target, ToolOutput>> =
    program {
        let id = peer.Value
        match! Program.send (Api.discover ctx.Config id) with
        | Reply(410, body) when namesPeer ctx id body ->
            return! refuse $"Error: workspace {id} was deleted on the platform. Pick another peer from list_peers."
        | Reply(410, body) -> return! removed ctx body
        | Reply(s, body) when is2xx s ->
            let node = Json.tryParse body
            match node |> Option.bind (Json.stringProp "status") with
            | Some st when st.Equals("offline", StringComparison.OrdinalIgnoreCase) -> return! refuse $"Error: workspace {id} is offline."
            | _ -> return found ctx peer (node |> Option.bind (Json.stringProp "name") |> Option.filter (isBlank >> not)) None
        | Reply(404, _) -> return! refuse $"Error: workspace {id} was not found on the platform. Check the ID with list_peers."
        | Reply(403, body) when not (isTokenProblem 403 (platformMessage body)) ->
            return!
                refuse
                    $"Error: you may not reach workspace {id} (access control: {platformMessage body}). Only peers listed by list_peers can be delegated to."
        | Reply(503, body) ->
            let status = Json.tryParse body |> Option.bind (Json.stringProp "status") |> Option.defaultValue "unavailable"
            return found ctx peer None (Some status)
        | Reply(s, body) -> return! refuse $"Error: could not look up workspace {id}: {httpDetail s body}"
        | TransportError m -> return! refuse (transportFailure ctx m)
        | TimedOut t -> return! refuse (timeoutFailure t)
    }

// ---------------------------------------------------------------------------------------------
// delegate_task: the activity log and this workspace's removal
// ---------------------------------------------------------------------------------------------

/// A line of the canvas's activity log about a delegation.
type private LogLine =
    { Kind: string
      Summary: string
      Status: string
      Request: JsonNode option
      Response: JsonNode option
      Error: string option }

/// A 410 about this workspace during a delegation: the call ends saying so, after `shown` (what it would have
/// answered), and the agent learns it.
let private gone (ctx: ToolContext) (shown: string option) (body: string) : Program<Result<'a, ToolOutput>> =
    let info = removedInfo ctx body
    let text =
        match shown with
        | Some t -> t + "\n\n" + Removed.text info
        | None -> Removed.text info
    Program.stopWith (failure text) [ WorkspaceRemoved info ]

/// Writes a line to the activity log. Its outcome is ignored, except that a 410 means this workspace is gone.
let private logActivity (ctx: ToolContext) (target: Target) (line: LogLine) (shown: string option) : Program<Result<unit, ToolOutput>> =
    program {
        match! Program.send (Api.reportActivity ctx.Config line.Kind target.Id.Value line.Summary line.Status line.Request line.Response line.Error) with
        | Reply(410, body) -> return! gone ctx shown body
        | _ -> return ()
    }

let private sending (target: Target) (task: string) : LogLine =
    { Kind = "a2a_send"
      Summary = $"Delegating to {target.Name}"
      Status = "ok"
      Request = Some(Json.obj [ "task", Json.str task ] :> JsonNode)
      Response = None
      Error = None }

let private received (summary: string) (status: string) (response: JsonNode option) (error: string option) : LogLine =
    { Kind = "a2a_receive"; Summary = summary; Status = status; Request = None; Response = response; Error = error }

// ---------------------------------------------------------------------------------------------
// delegate_task: sending
// ---------------------------------------------------------------------------------------------

/// Sends the task as an A2A message through the platform's proxy (retried only when no connection was made, P10).
let private throughA2a (ctx: ToolContext) (target: Target) (task: string) : Program<Result<A2aOutcome, ToolOutput>> =
    program {
        let peer = target.Id.Value
        match! Program.send (Api.a2aSend ctx.Config peer (derivedId ctx.Nonce "rpc") ctx.Nonce task) with
        | Reply(410, body) when not (namesPeer ctx peer body) -> return! gone ctx None body
        | response -> return a2aOutcome ctx peer response
    }

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

/// The entry of delegation `id` in a /delegations reply, if it lists it.
let private delegationEntry (id: string) (response: Response) : JsonNode option =
    match response with
    | Reply(s, body) when is2xx s ->
        Json.tryParse body
        |> Option.bind Json.asArray
        |> Option.defaultValue []
        |> List.tryFind (fun e -> Json.prop "delegation_id" e |> Option.bind Json.asScalarText = Some id)
    | _ -> None

/// How a listed delegation ended, if it has.
let private settled (status: string) (entry: JsonNode) : A2aOutcome option =
    match status with
    | "completed" -> Some(Answered(previewOf entry))
    | "failed" ->
        let why = [ "error"; "error_detail"; "summary" ] |> List.tryPick (fun k -> Json.stringProp k entry |> Option.filter (isBlank >> not))
        Some(Failed(defaultArg why "delegation failed"))
    | "queued" -> Some(QueuedForPoll "message/send")
    | _ -> None

/// Reads /delegations every 3 s until delegation `id` ends or DELEGATION_TIMEOUT has passed since `started`.
let rec private awaitDelegation (ctx: ToolContext) (id: string) (started: float) (now: float) (last: string) : Program<Result<A2aOutcome, ToolOutput>> =
    program {
        let timeout = ctx.Config.DelegationTimeoutSecs
        let! response = Program.send (Api.delegations ctx.Config)
        let entry = delegationEntry id response
        let status = entry |> Option.bind (Json.stringProp "status") |> Option.defaultValue last
        match response, entry |> Option.bind (settled status) with
        | Reply(410, body), _ -> return! gone ctx None body
        | _, Some outcome -> return outcome
        | _ when now - started >= timeout ->
            return
                Failed
                    $"no answer within {secs timeout} s (delegation_id={id}, last status: {status}). The platform is still working on it and nothing was re-sent: call check_task_status(task_id=\"{id}\") later."
        | _ ->
            let! later = Program.pause (Math.Max(0.0, Math.Min(pollEverySecs, started + timeout - now)))
            return! awaitDelegation ctx id started later status
    }

/// DELEGATION_SYNC_VIA_INBOX: POST /delegate, then wait for the delegation to end. Nothing is ever sent twice (P27); a
/// queued delegation ends at once.
let private throughInbox (ctx: ToolContext) (target: Target) (task: string) : Program<Result<A2aOutcome, ToolOutput>> =
    program {
        let cfg = ctx.Config
        let peer = target.Id.Value
        let key = sha256Hex32 $"{cfg.WorkspaceId.Value}:{peer}:{task}:{ctx.Nonce}"
        match! Program.send (Api.``delegate`` cfg peer task key) with
        | Reply(410, body) when namesPeer ctx peer body -> return Failed $"workspace {peer} was deleted on the platform"
        | Reply(410, body) -> return! gone ctx None body
        | Reply(s, body) when is2xx s ->
            match Json.tryParse body |> Option.bind (Json.prop "delegation_id") |> Option.bind Json.asScalarText with
            | Some id ->
                let! started = Program.pause 0.0
                return! awaitDelegation ctx id started started "pending"
            | None -> return Failed $"the platform accepted the delegation (HTTP {inv s}) but returned no delegation_id: {short body}"
        | Reply(s, body) -> return Failed $"delegate dispatch failed: {httpDetail s body}"
        | TransportError m -> return Failed $"delegate dispatch failed: could not reach the platform at {cfg.PlatformUrl}: {m}"
        | TimedOut t -> return Failed $"delegate dispatch failed: the platform did not answer within {secs t} s"
    }

// ---------------------------------------------------------------------------------------------
// delegate_task
// ---------------------------------------------------------------------------------------------

/// How a delegation ended: the answer, what the answer shows should this workspace turn out to be gone, the log line.
type private Receipt = { Answer: ToolOutput; Shown: string; Line: LogLine }

let private receiptOf (target: Target) (outcome: A2aOutcome) : Receipt =
    let name = target.Name
    match outcome with
    | Answered text ->
        // framed as the peer's words (P28); the activity log keeps the answer as it came
        { Answer = ok (A2a.framePeerResult text)
          Shown = text
          Line = received $"{name} responded ({inv text.Length} chars)" "ok" (Some(Json.obj [ "result", Json.str text ] :> JsonNode)) None }
    | QueuedForPoll meth ->
        let text =
            match target.Unavailable with
            | None ->
                $"Task delivered to {name} (poll-mode peer; queued, method={meth}). Its reply will arrive in your inbox as a peer_agent message — use wait_for_message / inbox_peek."
            | Some st ->
                $"Task queued for {name} (poll-mode peer, currently {st}; method={meth}): its agent gets it when it connects. Its reply will arrive in your inbox as a peer_agent message — use wait_for_message / inbox_peek."
        { Answer = ok text; Shown = text; Line = received $"{name} has the task queued (poll mode)" "ok" None None }
    | Failed detail ->
        let detail =
            match target.Unavailable with
            | None -> detail
            | Some st -> $"workspace {target.Id.Value} is not available right now (status: {st}) and the platform did not queue the task: {detail}"
        let text =
            $"DELEGATION FAILED to {name}: {detail}\nYou can try a different peer, do the task yourself, or tell the user that {name} is unavailable right now and give your best answer."
        { Answer = failure text; Shown = text; Line = received $"{name} failed: {trunc 120 detail}" "error" None (Some detail) }

/// Looks the peer up, logs the send, sends (A2A, or through the platform's delegations), logs and answers the outcome.
let delegateTask (ctx: ToolContext) (peer: WorkspaceId) (task: string) : Program<ToolOutput> =
    platform ctx (program {
        do! refuseNotSendable "delegate_task" ctx peer task
        let! target = discover ctx peer
        do! Program.observe [ for name in Option.toList target.Discovered -> PeerNames [ PeerId.ofWorkspace peer, name ] ]
        do! logActivity ctx target (sending target task) None
        let! outcome = if ctx.Config.DelegationSyncViaInbox then throughInbox ctx target task else throughA2a ctx target task
        let receipt = receiptOf target outcome
        do! logActivity ctx target receipt.Line (Some receipt.Shown)
        return receipt.Answer
    })

// ---------------------------------------------------------------------------------------------
// delegate_task_async
// ---------------------------------------------------------------------------------------------

/// delegate_task_async's answer: the delegation, its peer and what to do next.
let private delegated (target: string) (id: string) (note: string) : ToolOutput =
    Json.obj
        [ "delegation_id", Json.str id
          "workspace_id", Json.str target
          "status", Json.str "delegated"
          "note", Json.str note ]
    |> Json.compact
    |> ok

let delegateTaskAsync (ctx: ToolContext) (peer: WorkspaceId) (task: string) : Program<ToolOutput> =
    platform ctx (program {
        do! refuseNotSendable "delegate_task_async" ctx peer task
        let target = peer.Value
        let! status, body = call ctx (Api.``delegate`` ctx.Config target task (sha256Hex32 $"{target}:{task}:{ctx.Nonce}"))
        let node = Json.tryParse body
        let id = node |> Option.bind (Json.prop "delegation_id") |> Option.bind Json.asScalarText
        let hit = node |> Option.bind (Json.prop "idempotent_hit") |> Option.bind Json.asScalarText = Some "true"
        match id with
        | Some id when is2xx status && hit ->
            return
                delegated
                    target
                    id
                    "This task was already delegated to that peer; the existing delegation continues. Use check_task_status to poll for its result."
        | Some id when is2xx status ->
            return delegated target id "Task delegated. The platform runs it in the background. Use check_task_status to poll for results."
        | None when is2xx status ->
            return failure $"Error: delegation to {target} was accepted (HTTP {inv status}) but the platform returned no delegation_id: {short body}"
        | _ -> return failure $"Error: delegation to {target} failed: {httpDetail status body}"
    })
