/// A2A routes: message delivery (poll queue or push forward), delegations, notify.
module internal Molecule.Platform.Routes.A2aRoutes

open System
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- A2A delivery

type Delivery =
    | QueuedForPoll of methodName: string
    | Answered of status: int * body: string
    | Unreachable of Reply

/// A poll-mode target: the a2a_receive row (rings), `USER_MESSAGE` for a canvas message, and the poll
/// short-circuit's second ring for a message/send with a message id (spec §1.2).
let private queue (env: Env) (w: IWriter) (caller: WorkspaceId option) (target: Workspace) (envelope: JsonObject) =
    let m = A2a.methodOf envelope
    let saved = insertRow env w (A2a.queuedRow (newActivityId ()) (env.Now()) caller target envelope)

    if caller.IsNone && m = "message/send" then
        let text =
            Json.prop "params" envelope |> Option.bind (Json.prop "message") |> Option.map A2a.textOfParts |> Option.defaultValue ""

        let data =
            Json.sorted [ "content", Json.str text; "message_id", Json.optStr saved.MessageId; "workspace_id", Wire.idNode target.Id ]

        announce env w (Announcements.event WorkspaceOnly "USER_MESSAGE" (Some target.Id) [] data)

    if A2a.isIngest envelope then
        let data = Views.activityData saved (Some(A2a.queuedSummary m target.Name))
        announce env w (Announcements.event WorkspaceOnly "ACTIVITY_LOGGED" (Some target.Id) [] data)

/// A push-mode target: the envelope forwarded to its URL (5 minutes at most), the exchange logged on the target.
let private forward (env: Env) (caller: WorkspaceId option) (target: Workspace) (url: string) (envelope: JsonObject) : Task<Delivery> =
    task {
        let started = env.Now()

        try
            use content = new StringContent(Json.compact envelope, Encoding.UTF8, "application/json")
            use cts = CancellationTokenSource.CreateLinkedTokenSource env.Stopping
            cts.CancelAfter(TimeSpan.FromMinutes 5.0)
            use! resp = env.Http.PostAsync(url, content, cts.Token)
            let! body = resp.Content.ReadAsStringAsync(cts.Token)
            let code = int resp.StatusCode
            let m = A2a.methodOf envelope

            env.Store.Write(fun w ->
                insertRow
                    env
                    w
                    { Activity.row (newActivityId ()) (env.Now()) target.Id "a2a_receive" with
                        SourceId = caller
                        TargetId = Some target.Id
                        Method = Some m
                        Summary = Some $"{m} → {target.Name}"
                        RequestBody = Some(Json.compact envelope)
                        ResponseBody = Json.tryParseDecoded body |> Option.map Json.compact
                        MessageId = A2a.messageIdOf envelope
                        DurationMs = Some(int (env.Now() - started).TotalMilliseconds)
                        Status = (if code < 400 then "ok" else "error") }
                |> ignore)

            return Answered(code, body)
        with
        | :? HttpRequestException
        | :? UriFormatException
        | :? OperationCanceledException -> return Unreachable(Wire.errorReply 502 "failed to reach workspace agent")
    }

/// Delivers a normalised envelope to a target: poll → a2a_receive row; push → forward to the agent URL.
let deliver (env: Env) (caller: WorkspaceId option) (target: Workspace) (envelope: JsonObject) : Task<Delivery> =
    match target.DeliveryMode, target.Url with
    | DeliveryMode.Poll, _ ->
        env.Store.Write(fun w -> queue env w caller target envelope)
        Task.FromResult(QueuedForPoll(A2a.methodOf envelope))
    | DeliveryMode.Push, (None | Some "") -> Task.FromResult(Unreachable(Wire.errorReply 503 "workspace url not registered yet"))
    | DeliveryMode.Push, Some url -> forward env caller target url envelope

/// Who is calling /workspaces/:id/a2a, read in the write `w`: X-Workspace-ID checked with the registry gate, else
/// the bearer's owner; the admin without X-Workspace-ID is the canvas user (None).
let private callerIn (env: Env) (w: IWriter) (ctx: HttpContext) : Result<WorkspaceId option, Reply> =
    match A2a.parseCaller (header ctx "X-Workspace-ID") with
    | Error e -> Error e
    | Ok(Some c) -> namedCallerIn env w ctx "missing caller auth token" "invalid caller auth token" c
    | Ok None ->
        match bearer ctx with
        | None -> Error(Wire.errorReply 401 "missing caller auth token")
        | Some t when isAdmin env t -> Ok None
        | Some t ->
            match Auth.ownerOf (Tokens.named w.TokenByHash t) with
            | Some owner when w.Workspace owner |> Option.exists (fun ws -> ws.Status <> Status.Removed) -> Ok(Some owner)
            | _ -> Error(Wire.errorReply 401 "invalid caller auth token")

/// The target, if it exists, is not removed, and the caller may talk to it (`all`: the team).
let private reachable (all: Map<WorkspaceId, Workspace>) (caller: WorkspaceId option) (targetId: WorkspaceId) : Result<Workspace, Reply> =
    match all.TryFind targetId with
    | None -> Error notFound
    | Some t when t.Status = Status.Removed -> Error(Views.removed t)
    | Some t ->
        match caller with
        | Some c when c <> targetId && not (Hierarchy.canCommunicate all c targetId) -> Error(Wire.errorReply 403 A2a.accessDenied)
        | _ -> Ok t

/// What POST /workspaces/:id/a2a decided in its transaction: the message queued for a poll-mode target (in that
/// transaction), or to be forwarded to a push-mode target after it.
type private Accepted =
    | Queued of methodName: string
    | ToForward of caller: WorkspaceId option * target: Workspace * envelope: JsonObject

/// The caller, the target and the message checked (in the reference's order: caller, target, body) and a poll-mode
/// target's row written — one transaction for the whole accept path of a queued message.
let private acceptMessage (env: Env) (ctx: HttpContext) (targetId: WorkspaceId) (envelope: Result<JsonObject, Reply>) (w: IWriter) =
    // the team read first: the caller's row comes from the same read (one read of the workspaces for the path)
    let team = Store.team w

    callerIn env w ctx
    |> Result.bind (fun caller -> reachable team caller targetId |> Result.map (fun t -> caller, t))
    |> Result.bind (fun (caller, target) ->
        envelope
        |> Result.map (fun envelope ->
            match target.DeliveryMode with
            | DeliveryMode.Poll ->
                queue env w caller target envelope
                Queued(A2a.methodOf envelope)
            | DeliveryMode.Push -> ToForward(caller, target, envelope)))

/// POST /workspaces/:id/a2a.
let a2a (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match routeId ctx with
        | None -> return invalidId
        | Some targetId ->
            let! body = readBody ctx
            // normalised ahead (its errors still answered after the caller's and the target's): its message id is
            // the foresight's, with the bearer's token — what the accept asks the store first
            let envelope = body |> Result.bind (A2a.normalise (newGuid ()) (newGuid ()))

            let foresight =
                { Tokens = bearer ctx |> Option.filter (isAdmin env >> not) |> Option.map Tokens.hash |> Option.toList
                  FirstAppend = Some(targetId, envelope |> Result.toOption |> Option.bind A2a.messageIdOf) }

            match! env.Store.WriteAhead(foresight, acceptMessage env ctx targetId envelope) with
            | Error e -> return e
            | Ok(Queued m) -> return A2a.queuedReply m
            | Ok(ToForward(caller, target, envelope)) ->
                match! deliver env caller target envelope with
                | QueuedForPoll m -> return A2a.queuedReply m
                | Answered(code, body) -> return { Code = code; Body = body }
                | Unreachable r -> return r
    }

// ---------------------------------------------------------------- delegations

/// DELEGATION_* on the caller: the canvas payload is `delegation_id`, `target_id` + `canvas`; the stream's is
/// `delegation_id`, `target_id` + `extra` (spec §1.3).
let private delegationEvent (kind: string) (source: WorkspaceId) (delegationId: ActivityId) (target: WorkspaceId) canvas extra =
    let ids () = [ "delegation_id", Wire.idNode delegationId; "target_id", Wire.idNode target ]
    Announcements.event Everyone kind (Some source) (ids () @ canvas) (Json.sorted (ids () @ extra))

/// Previews on the stream are capped at 200 characters.
let private preview (text: string) = Json.str (cap 200 text)

/// What a delivery of a delegation came to.
let private outcomeOf (delivery: Delivery) : Delegations.Outcome =
    match delivery with
    | QueuedForPoll _ -> Delegations.Queued
    | Unreachable r -> Delegations.Failed r.Body
    | Answered(code, body) when code >= 200 && code < 300 ->
        match Json.tryParseDecoded body with
        | Some n when (Json.prop "error" n).IsSome -> Delegations.Failed body
        | _ -> Delegations.Completed(A2a.answerText body)
    | Answered(code, body) -> Delegations.Failed $"HTTP {code}: {cap 500 body}"

/// The outcome recorded on the caller: a result row, the tracking row's status, a reply row for an answer, and the
/// DELEGATION_* event.
let private record (env: Env) (source: WorkspaceId) (target: WorkspaceId) (delegationId: ActivityId) (outcome: Delegations.Outcome) =
    env.Store.Write(fun w ->
        let now = env.Now()
        insertQuiet env w (Delegations.resultRow (newActivityId ()) now source target delegationId outcome) |> ignore
        w.SetRowStatus(delegationId, Delegations.statusOf outcome)
        let event kind canvas extra = announce env w (delegationEvent kind source delegationId target canvas extra)

        match outcome with
        | Delegations.Completed text ->
            insertQuiet env w (Delegations.replyRow (newActivityId ()) now source target delegationId text) |> ignore
            event "DELEGATION_COMPLETE" [] [ "response_preview", preview text ]
        | Delegations.Queued -> event "DELEGATION_STATUS" [ "status", Json.str "queued" ] [ "status", Json.str "queued" ]
        | Delegations.Failed d -> event "DELEGATION_FAILED" [ "error", Json.str d ] [ "error", Json.str d ])

/// The background part of a delegation: dispatched, delivered, recorded. A failure to record is logged.
let runDelegation (env: Env) (source: WorkspaceId) (target: WorkspaceId) (delegationId: ActivityId) (task': string) : Task =
    task {
        try
            let targetWs =
                env.Store.Write(fun w ->
                    w.SetRowStatus(delegationId, "dispatched")
                    w.Workspace target)

            let! outcome =
                match targetWs with
                | None -> Task.FromResult(Delegations.Failed "target workspace not found")
                | Some t when t.Status = Status.Removed -> Task.FromResult(Delegations.Failed "target workspace removed")
                | Some t ->
                    task {
                        let! d = deliver env (Some source) t (Delegations.envelope (newGuid ()) delegationId task')
                        return outcomeOf d
                    }

            record env source target delegationId outcome
        with
        | :? Data.Common.DbException
        | :? ObjectDisposedException as e -> env.Log $"delegation {delegationId.Text} failed: {e.Message}"
    }

/// The decision of POST /workspaces/:id/delegate: the target reachable, the idempotency key honoured; the tracking
/// row and DELEGATION_SENT written. Ok the new delegation's id.
let private accept (env: Env) (w: IWriter) (source: WorkspaceId) (req: Delegations.Request) : Result<ActivityId, Reply> =
    let all = Store.team w

    match all.TryFind req.TargetId with
    | None -> Error(Wire.errorReply 404 "target workspace not found")
    | Some _ when not (Hierarchy.canCommunicate all source req.TargetId) -> Error(Wire.errorReply 403 A2a.accessDenied)
    | Some _ ->
        match Delegations.idempotency (req.IdempotencyKey |> Option.bind (fun k -> w.TrackingRow(source, k))) with
        | Delegations.Hit r -> Error(Delegations.hitReply r)
        | idem ->
            match idem with
            | Delegations.ReplaceFailed r -> w.DeleteRow r.Id
            | _ -> ()

            let id = newActivityId ()
            insertQuiet env w (Delegations.trackingRow id (env.Now()) source req) |> ignore
            announce env w (delegationEvent "DELEGATION_SENT" source id req.TargetId [] [ "task_preview", preview req.Task ])
            Ok id

/// The 400 text of a delegate body that is not a JSON object.
let private delegationBodyError (e: Reply) =
    if e.Body.Contains "invalid JSON" then "invalid delegation request" else Wire.errorText e

/// POST /workspaces/:id/delegate → 202, delivery in the background.
let delegateTask (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        task {
            match! readJson ctx with
            | Error e -> return Wire.errorReply e.Code (delegationBodyError e)
            | Ok body ->
                match Delegations.parse ws.Id body with
                | Error e -> return e
                | Ok req ->
                    match env.Store.Write(fun w -> accept env w ws.Id req) with
                    | Error r -> return r
                    | Ok id ->
                        let t = Task.Run(Func<Task>(fun () -> runDelegation env ws.Id req.TargetId id req.Task))

                        lock env.Background (fun () ->
                            env.Background.RemoveAll(fun x -> x.IsCompleted) |> ignore
                            env.Background.Add t)

                        return Delegations.acceptedReply id req.TargetId
        })

/// GET /workspaces/:id/delegations: the caller's newest delegation rows.
let delegations (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun ws ->
        env.Store.Read(fun r ->
            let rows = r.Rows { RowQuery.logOf ws.Id with Types = [ "delegation" ]; Newest = Some 50; Bodies = true }
            ok (Delegations.list rows ws.Id)))

// ---------------------------------------------------------------- notify

/// POST /workspaces/:id/notify: the agent's message to the user (a quiet row, AGENT_MESSAGE).
let notify (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictExisting env ctx (fun ws ->
        if ws.Status = Status.Removed then
            Task.FromResult notFound // 404 here, not the 410 of strictLive
        else
            withJson ctx (fun body ->
                match A2a.parseNotify body with
                | Error e -> e
                | Ok(message, atts) ->
                    env.Store.Write(fun w ->
                        insertQuiet env w (A2a.notifyRow (newActivityId ()) (env.Now()) ws message atts) |> ignore
                        let core () = [ "message", Json.str message; "workspace_id", Wire.idNode ws.Id; "name", Json.str ws.Name ]
                        let attachments () = Json.arr (atts |> List.map A2a.attachmentNode)
                        let stream = core () @ (if atts.IsEmpty then [] else [ "attachments", attachments () ])
                        announce env w (Announcements.event Everyone "AGENT_MESSAGE" (Some ws.Id) (core () @ [ "attachments", attachments () ]) (Json.sorted stream)))

                    okStatus "sent"))
