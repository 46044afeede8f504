/// A2A routes: message delivery (poll queue or push forward), delegations, notify.
module internal Molecule.Platform.Routes.A2aRoutes

open System
open System.IO
open System.Net
open System.Net.Http
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.AspNetCore.StaticFiles
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Hosting
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Http
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- A2A delivery

type Delivery =
    | QueuedForPoll of methodName: string
    | Answered of status: int * body: string
    | Unreachable of Reply

/// Delivers a normalised envelope to a target: poll → a2a_receive row; push → forward to the agent URL.
let deliver (env: Env) (caller: Guid option) (target: Workspace) (envelope: JsonObject) : Task<Delivery> =
    task {
        if target.DeliveryMode = "poll" then
            env.Store.Atomically(fun () ->
                let m = A2a.methodOf envelope
                let saved = insertRow env (A2a.queuedRow (newId ()) (env.Now()) caller target envelope)

                if caller.IsNone && m = "message/send" then
                    let data =
                        Json.sorted
                            [ "content", Json.str (Json.prop "params" envelope |> Option.bind (Json.prop "message") |> Option.map A2a.textOfParts |> Option.defaultValue "")
                              "message_id", Json.optStr saved.MessageId
                              "workspace_id", Wire.guidNode target.Id ]

                    publishTo env WorkspaceOnly "USER_MESSAGE" (Some target.Id) [] data

                // the poll short-circuit's write collapses onto the ingest row but rings a second time (spec §1.2)
                if A2a.isIngest envelope then
                    let data = Views.activityData saved (Some(A2a.queuedSummary m target.Name))
                    publishTo env WorkspaceOnly "ACTIVITY_LOGGED" (Some target.Id) [] data)

            return QueuedForPoll(A2a.methodOf envelope)
        else
            match target.Url with
            | None
            | Some "" -> return Unreachable(Wire.errorReply 503 "workspace url not registered yet")
            | Some url ->
                let started = env.Now()

                try
                    use content = new StringContent(Json.compact envelope, Encoding.UTF8, "application/json")
                    use cts = CancellationTokenSource.CreateLinkedTokenSource env.Stopping
                    cts.CancelAfter(TimeSpan.FromMinutes 5.0)
                    use! resp = env.Http.PostAsync(url, content, cts.Token)
                    let! body = resp.Content.ReadAsStringAsync(cts.Token)
                    let code = int resp.StatusCode

                    env.Store.Atomically(fun () ->
                        insertRow
                            env
                            { Activity.row (newId ()) (env.Now()) target.Id "a2a_receive" with
                                SourceId = caller
                                TargetId = Some target.Id
                                Method = Some(A2a.methodOf envelope)
                                Summary = Some $"{A2a.methodOf envelope} → {target.Name}"
                                RequestBody = Some(Json.compact envelope)
                                ResponseBody = Json.tryParseDecoded body |> Option.map Json.compact
                                MessageId = A2a.messageIdOf envelope
                                DurationMs = Some(int (env.Now() - started).TotalMilliseconds)
                                Status = (if code < 400 then "ok" else "error") }
                        |> ignore)

                    return Answered(code, body)
                with _ ->
                    return Unreachable(Wire.errorReply 502 "failed to reach workspace agent")
    }

let a2a (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match routeGuid ctx "id", limited env ctx "a2a" "A2A sends" env.Limits.A2a with
        | None, _ -> return invalidId
        | _, Some refused -> return refused
        | Some targetId, None ->
            // who is calling?
            let callerResult =
                env.Store.Atomically(fun () ->
                    match A2a.parseCaller (header ctx "X-Workspace-ID") with
                    | Error e -> Error e
                    | Ok(Some c) -> namedCaller env ctx "missing caller auth token" "invalid caller auth token" c
                    | Ok None ->
                        match bearer ctx with
                        | None -> Error(Wire.errorReply 401 "missing caller auth token")
                        | Some t when isAdmin env t -> Ok None // canvas user
                        | Some t ->
                            match Auth.ownerOf env.Store.Tokens t with
                            | Some owner when
                                env.Store.Workspace owner |> Option.exists (fun w -> w.Status <> Status.Removed)
                                ->
                                Ok(Some owner)
                            | _ -> Error(Wire.errorReply 401 "invalid caller auth token"))

            match callerResult with
            | Error e -> return e
            | Ok caller ->
                let check =
                    env.Store.Atomically(fun () ->
                        let all = env.Store.Workspaces

                        match all.TryFind targetId with
                        | None -> Error notFound
                        | Some t when t.Status = Status.Removed -> Error(Views.removed t)
                        | Some t ->
                            match caller with
                            | Some c when c <> targetId && not (Hierarchy.canCommunicate all c targetId) ->
                                Error(Wire.errorReply 403 A2a.accessDenied)
                            | _ -> Ok t)

                match check with
                | Error e -> return e
                | Ok target ->
                    match! readBody ctx with
                    | Error e -> return e
                    | Ok text ->
                        match A2a.normalise (newId ()) (newId ()) text with
                        | Error e -> return e
                        | Ok envelope ->
                            match! deliver env caller target envelope with
                            | QueuedForPoll m -> return A2a.queuedReply m
                            | Answered(code, body) -> return { Code = code; Body = body }
                            | Unreachable r -> return r
    }

// ---------------------------------------------------------------- delegations

/// DELEGATION_* on the caller: the canvas payload is `delegation_id` + `canvas`; the stream's is `delegation_id`,
/// `target_id` + `extra` (spec §1.3).
let private delegationEvent
    (env: Env)
    (kind: string)
    (source: Guid)
    (delegationId: Guid)
    (target: Guid)
    (canvas: (string * JsonNode) list)
    (extra: (string * JsonNode) list)
    =
    publishTo
        env
        Everyone
        kind
        (Some source)
        (("delegation_id", Wire.guidNode delegationId) :: ("target_id", Wire.guidNode target) :: canvas)
        (Json.sorted ([ "delegation_id", Wire.guidNode delegationId; "target_id", Wire.guidNode target ] @ extra))

/// Previews on the stream are capped at 200 characters.
let private preview (text: string) = Json.str (cap 200 text)

let runDelegation (env: Env) (source: Guid) (target: Guid) (delegationId: Guid) (task': string) : Task =
    task {
        try
            let targetWs =
                env.Store.Atomically(fun () ->
                    env.Store.UpdateActivityStatus(source, delegationId, "dispatched")
                    env.Store.Workspace target)

            let envelope = Delegations.envelope (newId ()) delegationId task'

            let! outcome =
                task {
                    match targetWs with
                    | None -> return Delegations.Failed "target workspace not found"
                    | Some t when t.Status = Status.Removed -> return Delegations.Failed "target workspace removed"
                    | Some t ->
                        match! deliver env (Some source) t envelope with
                        | QueuedForPoll _ -> return Delegations.Queued
                        | Unreachable r -> return Delegations.Failed r.Body
                        | Answered(code, body) when code >= 200 && code < 300 ->
                            match Json.tryParseDecoded body with
                            | Some n when (Json.prop "error" n).IsSome -> return Delegations.Failed body
                            | _ -> return Delegations.Completed(A2a.answerText body)
                        | Answered(code, body) -> return Delegations.Failed $"HTTP {code}: {cap 500 body}"
                }

            env.Store.Transaction(fun () ->
                let now = env.Now()
                insertQuiet env (Delegations.resultRow (newId ()) now source target delegationId outcome) |> ignore
                env.Store.UpdateActivityStatus(source, delegationId, Delegations.statusOf outcome)
                let event kind canvas extra = delegationEvent env kind source delegationId target canvas extra

                match outcome with
                | Delegations.Completed text ->
                    insertQuiet env (Delegations.replyRow (newId ()) now source target delegationId text) |> ignore
                    event "DELEGATION_COMPLETE" [] [ "response_preview", preview text ]
                | Delegations.Queued -> event "DELEGATION_STATUS" [ "status", Json.str "queued" ] [ "status", Json.str "queued" ]
                | Delegations.Failed d -> event "DELEGATION_FAILED" [ "error", Json.str d ] [ "error", Json.str d ])
        with e ->
            env.Log $"delegation {Wire.guid delegationId} failed: {e.Message}"
    }

let delegateTask (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        task {
            match! readJson ctx with
            | Error e -> return Wire.errorReply e.Code (if e.Body.Contains "invalid JSON" then "invalid delegation request" else (Json.tryParseDecoded e.Body |> Option.bind (Json.prop "error") |> Option.bind Json.asString |> Option.defaultValue "invalid delegation request"))
            | Ok body ->
                match Delegations.parse w.Id body with
                | Error e -> return e
                | Ok req ->
                    let decision =
                        env.Store.Transaction(fun () ->
                            let all = env.Store.Workspaces

                            match all.TryFind req.TargetId with
                            | None -> Error(Wire.errorReply 404 "target workspace not found")
                            | Some _ when not (Hierarchy.canCommunicate all w.Id req.TargetId) ->
                                Error(Wire.errorReply 403 A2a.accessDenied)
                            | Some _ ->
                                match Delegations.checkIdempotency (env.Store.Activity w.Id) w.Id req.IdempotencyKey with
                                | Delegations.Hit r -> Error(Delegations.hitReply r)
                                | idem ->
                                    match idem with
                                    | Delegations.ReplaceFailed r -> env.Store.DeleteActivity(w.Id, r.Id)
                                    | _ -> ()

                                    let id = newId ()
                                    insertQuiet env (Delegations.trackingRow id (env.Now()) w.Id req) |> ignore

                                    delegationEvent
                                        env
                                        "DELEGATION_SENT"
                                        w.Id
                                        id
                                        req.TargetId
                                        []
                                        [ "task_preview", preview req.Task ]
                                    Ok id)

                    match decision with
                    | Error r -> return r
                    | Ok id ->
                        let t = Task.Run(Func<Task>(fun () -> runDelegation env w.Id req.TargetId id req.Task))
                        lock env.Background (fun () ->
                            env.Background.RemoveAll(fun x -> x.IsCompleted) |> ignore
                            env.Background.Add t)
                        return Delegations.acceptedReply id req.TargetId
        })

let delegations (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        env.Store.Atomically(fun () ->
            let rows = env.Store.Activity w.Id |> Seq.filter (fun r -> r.ActivityType = "delegation") |> List.ofSeq
            ok (Delegations.list (env.Store.Hydrate rows) w.Id)))

// ---------------------------------------------------------------- notify, uploads, memories

let notify (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictExisting env ctx (fun w ->
        match limited env ctx "notify" "notifications" env.Limits.Notify with
        | Some refused -> Task.FromResult refused
        | None when w.Status = Status.Removed -> Task.FromResult notFound // 404 here, not the 410 of strictLive
        | None ->
            withJson ctx (fun body ->
                match A2a.parseNotify body with
                | Error e -> e
                | Ok(message, atts) ->
                    env.Store.Atomically(fun () ->
                        insertQuiet env (A2a.notifyRow (newId ()) (env.Now()) w message atts) |> ignore
                        let core = [ "message", Json.str message; "workspace_id", Wire.guidNode w.Id; "name", Json.str w.Name ]
                        let attachments () = Json.arr (atts |> List.map A2a.attachmentNode) :> JsonNode

                        publishTo
                            env
                            Everyone
                            "AGENT_MESSAGE"
                            (Some w.Id)
                            (core @ [ "attachments", attachments () ])
                            (Json.sorted (
                                [ for (k, v) in core -> k, Json.clone v ]
                                @ (if atts.IsEmpty then [] else [ "attachments", attachments () ])
                            )))

                    okStatus "sent"))
