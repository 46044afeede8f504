/// The local Molecule platform: ASP.NET Core minimal API over the pure rules and the SQLite store.
module Molecule.Platform.Server

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
open Molecule.Platform.Validation

type PlatformOptions =
    { DataDir: string
      Host: string
      Port: int
      Clock: (unit -> DateTimeOffset) option
      SweepInterval: TimeSpan }

module PlatformOptions =
    /// 127.0.0.1, ephemeral port, system clock, sweep every 15 s.
    let defaults (dataDir: string) : PlatformOptions =
        { DataDir = dataDir
          Host = "127.0.0.1"
          Port = 0
          Clock = None
          SweepInterval = TimeSpan.FromSeconds 15.0 }

/// Request bodies are capped at 1 MiB (uploads: 25 MiB).
[<Literal>]
let MaxBody = 1048576L

[<Literal>]
let MaxUploadBody = 26214400L

[<Literal>]
let MaxLiveTokens = 50

let adminTokenFile = "admin_token"

/// Everything a handler needs.
type private Env =
    { Store: Store.Store
      Now: unit -> DateTimeOffset
      Admin: string
      Faults: FaultInjector
      Events: EventHub
      Http: HttpClient
      Stopping: CancellationToken
      Background: ResizeArray<Task> }

// ---------------------------------------------------------------- helpers

let private newId () = Guid.NewGuid()
let private randomToken () = Tokens.format (RandomNumberGenerator.GetBytes Tokens.ByteLength)

let private send (ctx: HttpContext) (r: Reply) : Task =
    ctx.Response.StatusCode <- r.Code
    ctx.Response.ContentType <- "application/json; charset=utf-8"
    ctx.Response.WriteAsync(r.Body)

let private ok (node: JsonNode) = Json.reply 200 node
let private notFound = Json.errorReply 404 "workspace not found"
let private invalidId = Json.errorReply 400 "invalid workspace ID"

let private readBody (ctx: HttpContext) : Task<Result<string, Reply>> =
    task {
        try
            use reader = new StreamReader(ctx.Request.Body, Encoding.UTF8)
            let! text = reader.ReadToEndAsync()
            return Ok text
        with
        | :? Microsoft.AspNetCore.Http.BadHttpRequestException as e when e.StatusCode = 413 ->
            return Error(Json.errorReply 413 "request body too large (max 1 MiB)")
        | :? Microsoft.AspNetCore.Http.BadHttpRequestException -> return Error(Json.errorReply 400 "invalid request body")
    }

let private readJson (ctx: HttpContext) : Task<Result<JsonObject, Reply>> =
    task {
        match! readBody ctx with
        | Ok text -> return Validation.body text
        | Error e -> return Error e
    }

let private routeGuid (ctx: HttpContext) (name: string) : Guid option =
    match ctx.Request.RouteValues.TryGetValue name with
    | true, (:? string as s) -> parseGuid s
    | _ -> None

/// `text` as a GUID, else a 400 with `message`.
let private guidOr (message: string) (text: string) : Result<Guid, Reply> =
    match parseGuid text with
    | Some g -> Ok g
    | None -> Error(bad message)

let private query (ctx: HttpContext) (name: string) : string option =
    match ctx.Request.Query.TryGetValue name with
    | true, v when v.Count > 0 -> Some(string v[0])
    | _ -> None

let private header (ctx: HttpContext) (name: string) : string option =
    match ctx.Request.Headers.TryGetValue name with
    | true, v when v.Count > 0 && not (String.IsNullOrWhiteSpace(string v[0])) -> Some(string v[0])
    | _ -> None

let private bearer (ctx: HttpContext) =
    header ctx "Authorization" |> Option.bind Auth.bearerOf

let private isAdmin (env: Env) (presented: string) = Tokens.equalSecrets env.Admin presented

let private publish (env: Env) (kind: string) (ws: Guid option) (payload: (string * JsonNode) list) =
    env.Events.Publish
        { Type = kind
          WorkspaceId = ws
          Payload = Json.obj payload
          At = env.Now() }

let private adminGate (env: Env) (ctx: HttpContext) : Result<unit, Reply> =
    match bearer ctx with
    | None -> Error(Json.errorReply 401 "missing admin token")
    | Some b when isAdmin env b -> Ok()
    | Some _ -> Error(Json.errorReply 401 "invalid admin token")

/// Marks a successful use of a token (persisted at most once a minute).
let private touch (env: Env) (p: Auth.Principal) =
    match p with
    | Auth.WorkspaceToken t ->
        let now = env.Now()

        match t.LastUsedAt with
        | Some last when now - last < TimeSpan.FromMinutes 1.0 -> ()
        | _ -> env.Store.SaveToken { t with LastUsedAt = Some now }
    | _ -> ()

/// Registry gate for workspace `id` with these 401 messages (the admin token is not accepted here); marks the
/// token used.
let private registryGate
    (env: Env)
    (missingMsg: string)
    (invalidMsg: string)
    (ws: Workspace option)
    (id: Guid)
    (presented: string option)
    : Result<unit, Reply> =
    match Auth.registryGate missingMsg invalidMsg env.Store.Tokens ws id presented with
    | Ok p ->
        touch env p
        Ok()
    | Error e -> Error e

/// A caller that names itself `c` (X-Workspace-ID): the admin token, else the registry gate for `c`.
let private namedCaller (env: Env) (ctx: HttpContext) (missingMsg: string) (invalidMsg: string) (c: Guid) : Result<Guid option, Reply> =
    match bearer ctx with
    | Some b when isAdmin env b -> Ok(Some c)
    | b -> registryGate env missingMsg invalidMsg (env.Store.Workspace c) c b |> Result.map (fun () -> Some c)

/// Strict WorkspaceAuth for /workspaces/:id/*: returns the workspace id (the workspace may be missing only for
/// the admin, who then gets a 404 from the handler).
let private strict (env: Env) (ctx: HttpContext) : Result<Guid * Workspace option, Reply> =
    match routeGuid ctx "id" with
    | None -> Error invalidId
    | Some id ->
        env.Store.Atomically(fun () ->
            let ws = env.Store.Workspace id

            match Auth.strictGate (isAdmin env) env.Store.Tokens ws id (bearer ctx) with
            | Ok p ->
                touch env p
                Ok(id, ws)
            | Error e -> Error e)

/// Strict gate + the workspace must exist (a removed one passes).
let private strictExisting (env: Env) (ctx: HttpContext) : Result<Workspace, Reply> =
    match strict env ctx with
    | Error e -> Error e
    | Ok(_, None) -> Error notFound
    | Ok(_, Some w) -> Ok w

/// Strict gate + the workspace must exist and not be removed (410 when it is).
let private strictLive (env: Env) (ctx: HttpContext) : Result<Workspace, Reply> =
    match strictExisting env ctx with
    | Error e -> Error e
    | Ok w when w.Status = Status.Removed -> Error(Views.removed w)
    | Ok w -> Ok w

/// Endpoint behind `gate`: the gate's error is the reply, else `body` answers with what the gate let through.
let private gated (gate: Env -> HttpContext -> Result<'a, Reply>) (env: Env) (ctx: HttpContext) (body: 'a -> Reply) : Task<Reply> =
    task {
        return
            match gate env ctx with
            | Error e -> e
            | Ok a -> body a
    }

/// Like `gated`, for a body that awaits (reads the request, delivers, ...).
let private gatedAsync
    (gate: Env -> HttpContext -> Result<'a, Reply>)
    (env: Env)
    (ctx: HttpContext)
    (body: 'a -> Task<Reply>)
    : Task<Reply> =
    task {
        match gate env ctx with
        | Error e -> return e
        | Ok a -> return! body a
    }

/// Admin-only endpoint: the admin gate answers first.
let private adminHandler (env: Env) (ctx: HttpContext) (body: unit -> Reply) : Task<Reply> = gated adminGate env ctx body

/// The `{id}` route value as a GUID; 400 "invalid workspace ID" otherwise.
let private withRouteId (ctx: HttpContext) (body: Guid -> Reply) : Reply =
    match routeGuid ctx "id" with
    | None -> invalidId
    | Some id -> body id

/// Admin-only endpoint on `/workspaces/{id}/...`: admin gate, route id, then the workspace under the store lock
/// (404 when it does not exist; a removed one passes).
let private adminWorkspaceHandler (env: Env) (ctx: HttpContext) (body: Workspace -> Reply) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            env.Store.Atomically(fun () ->
                match env.Store.Workspace id with
                | None -> notFound
                | Some w -> body w)))

/// Strict-auth endpoint on `/workspaces/{id}/...` whose workspace must exist (a removed one passes).
let private strictHandler (env: Env) (ctx: HttpContext) (body: Workspace -> Reply) : Task<Reply> = gated strictExisting env ctx body

/// The request body as a JSON object; its error reply otherwise.
let private withJson (ctx: HttpContext) (body: JsonObject -> Reply) : Task<Reply> =
    task {
        match! readJson ctx with
        | Error e -> return e
        | Ok o -> return body o
    }

/// `{"status": <s>}` with 200.
let private okStatus (s: string) = ok (Json.obj [ "status", Json.str s ])

/// Scheme and host this request came in on, e.g. http://127.0.0.1:41234.
let private baseUrl (ctx: HttpContext) =
    let req = ctx.Request
    $"{req.Scheme}://{req.Host.Value}"

let private handle (f: HttpContext -> Task<Reply>) : RequestDelegate =
    RequestDelegate(fun ctx ->
        task {
            let! r = f ctx
            do! send ctx r
        })

let private insertRow (env: Env) (row: ActivityRow) =
    let saved = env.Store.InsertActivity row

    publish env "ACTIVITY_LOGGED" (Some saved.WorkspaceId) [ "activity", Views.activity saved ]
    saved

// ---------------------------------------------------------------- A2A delivery

type private Delivery =
    | QueuedForPoll of methodName: string
    | Answered of status: int * body: string
    | Unreachable of Reply

/// Delivers a normalised envelope to a target: poll → a2a_receive row; push → forward to the agent URL.
let private deliver (env: Env) (caller: Guid option) (target: Workspace) (envelope: JsonObject) : Task<Delivery> =
    task {
        if target.DeliveryMode = "poll" then
            env.Store.Atomically(fun () -> insertRow env (A2a.queuedRow (newId ()) (env.Now()) caller target envelope) |> ignore)
            return QueuedForPoll(A2a.methodOf envelope)
        else
            match target.Url with
            | None
            | Some "" -> return Unreachable(Json.errorReply 503 "workspace url not registered yet")
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
                                ResponseBody = Json.tryParse body |> Option.map Json.compact
                                DurationMs = Some(int (env.Now() - started).TotalMilliseconds)
                                Status = (if code < 400 then "ok" else "error") }
                        |> ignore)

                    return Answered(code, body)
                with _ ->
                    return Unreachable(Json.errorReply 502 "failed to reach workspace agent")
    }

// ---------------------------------------------------------------- registry



let private register (env: Env) (ctx: HttpContext) : Task<Reply> =
    withJson ctx (fun body ->
        let parsed =
            result {
                let! idText =
                    match Json.prop "id" body |> Option.bind Json.asString with
                    | Some s when s <> "" -> Ok s
                    | _ -> Error(bad "invalid request body: id is required")

                let! id = guidOr "invalid request body: id must be a valid UUID" idText

                let! card =
                    match Json.prop "agent_card" body with
                    | Some(:? JsonObject as c) -> Ok c
                    | Some _ -> Error(bad "invalid request body: agent_card must be an object")
                    | None -> Error(bad "invalid request body: agent_card is required")

                let! mode = optString "delivery_mode" body

                do!
                    match mode with
                    | None
                    | Some ""
                    | Some "push"
                    | Some "poll" -> Ok()
                    | Some _ -> Error(bad "delivery_mode must be 'push' or 'poll'")

                let! url = optString "url" body
                return id, card, (mode |> Option.filter (fun m -> m <> "")), (url |> Option.filter (fun u -> u.Trim() <> ""))
            }

        match parsed with
        | Error e -> e
        | Ok(id, card, mode, url) ->
            env.Store.Transaction(fun () ->
                let ws = env.Store.Workspace id

                match registryGate env Auth.missingToken Auth.invalidToken ws id (bearer ctx) with
                | Error e -> e
                | Ok() ->
                    let now = env.Now()
                    let mode = mode |> Option.orElse (ws |> Option.map (fun w -> w.DeliveryMode)) |> Option.defaultValue "poll"

                    let urlOk =
                        match url with
                        | Some u ->
                            match Uri.TryCreate(u, UriKind.Absolute) with
                            | true, uri when uri.Scheme = "http" || uri.Scheme = "https" -> Ok(Some u)
                            | _ -> Error(bad "url must be an absolute http(s) URL")
                        | None when mode = "push" -> Error(bad "url is required for push delivery")
                        | None -> Ok None

                    match urlOk with
                    | Error e -> e
                    | Ok url ->
                        let removed = ws |> Option.exists (fun w -> w.Status = Status.Removed)

                        let saved =
                            if removed then
                                ws.Value
                            else
                                let w =
                                    match ws with
                                    | Some w ->
                                        { w with
                                            Url = (if mode = "poll" then None else url)
                                            AgentCard = Some(Views.mergeCard w.AgentCard card)
                                            Status = Liveness.statusAfterRegister w.Status
                                            LastHeartbeatAt = Some now
                                            DeliveryMode = mode
                                            UpdatedAt = now }
                                    | None ->
                                        { Workspace.fresh id now with
                                            Name = Json.guid id
                                            Tier = 1
                                            Status = Status.Online
                                            AgentCard = Some(Views.mergeCard None card)
                                            Url = (if mode = "poll" then None else url)
                                            DeliveryMode = mode
                                            LastHeartbeatAt = Some now }

                                let w =
                                    match w.InboundSecret with
                                    | Some _ -> w
                                    | None -> { w with InboundSecret = Some(randomToken ()) }

                                env.Store.SaveWorkspace w
                                w

                        let res =
                            Json.obj [ "status", Json.str "registered"; "delivery_mode", Json.str saved.DeliveryMode ]

                        let live = env.Store.TokensOf id |> List.exists Tokens.isLive

                        if not live && not removed then
                            let t = randomToken ()
                            env.Store.SaveToken(Tokens.create (newId ()) id now t)
                            res["auth_token"] <- Json.str t

                        saved.InboundSecret |> Option.iter (fun s -> res["platform_inbound_secret"] <- Json.str s)

                        publish
                            env
                            "WORKSPACE_ONLINE"
                            (Some id)
                            [ "url", Json.str (defaultArg saved.Url "")
                              "agent_card", Json.raw (defaultArg saved.AgentCard "{}")
                              "delivery_mode", Json.str saved.DeliveryMode
                              "status", Json.str saved.Status ]

                        ok res))

let private heartbeat (env: Env) (ctx: HttpContext) : Task<Reply> =
    withJson ctx (fun body ->
        let parsed =
            result {
                let! idText = reqString "workspace_id" body

                let! id = guidOr "workspace_id must be a valid UUID" idText

                let! er = optFloat "error_rate" body
                let! se = optString "sample_error" body
                let! at = optInt "active_tasks" body
                let! up = optInt "uptime_seconds" body
                let! ct = optString "current_task" body
                let! rs = optString "runtime_state" body

                return
                    id,
                    ({ ErrorRate = defaultArg er 0.0
                       SampleError = defaultArg se ""
                       ActiveTasks = max 0 (defaultArg at 0)
                       UptimeSeconds = max 0 (defaultArg up 0)
                       CurrentTask = defaultArg ct ""
                       RuntimeState = defaultArg rs "" }
                    : Liveness.HeartbeatInput)
            }

        match parsed with
        | Error e -> e
        | Ok(id, hb) ->
            env.Store.Atomically(fun () ->
                let ws = env.Store.Workspace id

                match registryGate env Auth.missingToken Auth.invalidToken ws id (bearer ctx) with
                | Error e -> e
                | Ok() ->
                    match ws with
                    | None -> notFound
                    | Some w ->
                        let res = Json.obj [ "status", Json.str "ok" ]

                        if w.Status <> Status.Removed then
                            let updated = Liveness.heartbeat (env.Now()) hb w
                            env.Store.SaveWorkspace updated

                            if updated.Status <> w.Status then
                                publish env $"WORKSPACE_{updated.Status.ToUpperInvariant()}" (Some id) [ "status", Json.str updated.Status ]

                            if updated.CurrentTask <> w.CurrentTask then
                                publish env "TASK_UPDATED" (Some id) [ "current_task", Json.str updated.CurrentTask ]

                            publish
                                env
                                "WORKSPACE_HEARTBEAT"
                                (Some id)
                                [ "status", Json.str updated.Status
                                  "active_tasks", Json.num updated.ActiveTasks
                                  "uptime_seconds", Json.num updated.UptimeSeconds ]

                        w.InboundSecret |> Option.iter (fun s -> res["platform_inbound_secret"] <- Json.str s)
                        ok res))

/// Caller of discover/peers: X-Workspace-ID (required when `required`), checked with the registry gate
/// (the admin token is accepted too).
let private registryCaller (env: Env) (ctx: HttpContext) (fallback: Guid option) : Result<Guid option, Reply> =
    let headerValue = header ctx "X-Workspace-ID"

    match headerValue, fallback with
    | None, None -> Error(bad "X-Workspace-ID header is required")
    | _ ->
        let callerId =
            match headerValue with
            | Some h -> parseGuid h
            | None -> fallback

        match callerId with
        | None -> Error(bad "X-Workspace-ID must be a valid UUID")
        | Some c -> namedCaller env ctx Auth.missingToken Auth.invalidToken c

let private discover (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun target ->
                env.Store.Atomically(fun () ->
                    match registryCaller env ctx None with
                    | Error e -> e
                    | Ok caller ->
                        let all = env.Store.Workspaces

                        match all.TryFind target with
                        | None -> notFound
                        | Some _ when not (Hierarchy.canCommunicate all caller.Value target) ->
                            Json.errorReply 403 "not authorized to discover this workspace"
                        | Some t ->
                            let entry (url: string) =
                                ok (Json.obj [ "id", Json.guidNode t.Id; "url", Json.str url; "name", Json.str t.Name ])

                            match t.Url with
                            | Some u when u <> "" && t.Status <> Status.Removed -> entry u
                            | _ when t.Status = Status.Online || t.Status = Status.Degraded ->
                                entry $"{baseUrl ctx}/workspaces/{Json.guid t.Id}/a2a"
                            | _ -> Json.reply 503 (Json.obj [ "error", Json.str "workspace not available"; "status", Json.str t.Status ])))
    }

let private peers (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun own ->
                env.Store.Atomically(fun () ->
                    match registryCaller env ctx (Some own) with
                    | Error e -> e
                    | Ok caller when caller <> Some own ->
                        Json.errorReply 403 "X-Workspace-ID must match the workspace in the path"
                    | Ok _ ->
                        let all = env.Store.Workspaces

                        match all.TryFind own with
                        | None -> notFound
                        | Some _ ->
                            let q = query ctx "q" |> Option.map (fun s -> s.ToLowerInvariant())

                            Hierarchy.peers all own
                            |> List.filter (fun w ->
                                match q with
                                | Some s when s <> "" ->
                                    w.Name.ToLowerInvariant().Contains s
                                    || (w.Role |> Option.exists (fun r -> r.ToLowerInvariant().Contains s))
                                | _ -> true)
                            |> List.map Views.peer
                            |> Json.arr
                            |> ok))
    }

// ---------------------------------------------------------------- workspaces

let private getWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun id ->
                match env.Store.Atomically(fun () -> env.Store.Workspace id) with
                | None -> notFound
                | Some w when w.Status = Status.Removed && query ctx "include_removed" <> Some "true" -> Views.removed w
                | Some w ->
                    let o = Views.workspace w
                    if w.Status = Status.Removed then o["removed_at"] <- Json.timeNode w.UpdatedAt
                    ok o)
    }

let private listActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        match Activity.parseQuery (query ctx) with
        | Error e -> e
        | Ok q ->
            let rows = env.Store.Atomically(fun () -> List.ofSeq (env.Store.Activity w.Id))

            match Activity.select (env.Now()) w.Id rows q with
            | Error e -> e
            | Ok selected -> ok (Json.arr (selected |> List.map Views.activity)))

let private postActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        withJson ctx (fun body ->
            match Activity.report (newId ()) (env.Now()) w.Id body with
            | Error e -> e
            | Ok row ->
                env.Store.Atomically(fun () -> insertRow env row |> ignore)
                okStatus "logged"))

let private a2a (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match routeGuid ctx "id" with
        | None -> return invalidId
        | Some targetId ->
            // who is calling?
            let callerResult =
                env.Store.Atomically(fun () ->
                    match A2a.parseCaller (header ctx "X-Workspace-ID") with
                    | Error e -> Error e
                    | Ok(Some c) -> namedCaller env ctx "missing caller auth token" "invalid caller auth token" c
                    | Ok None ->
                        match bearer ctx with
                        | None -> Error(Json.errorReply 401 "missing caller auth token")
                        | Some t when isAdmin env t -> Ok None // canvas user
                        | Some t ->
                            match Auth.ownerOf env.Store.Tokens t with
                            | Some owner when
                                env.Store.Workspace owner |> Option.exists (fun w -> w.Status <> Status.Removed)
                                ->
                                Ok(Some owner)
                            | _ -> Error(Json.errorReply 401 "invalid caller auth token"))

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
                                Error(Json.errorReply 403 A2a.accessDenied)
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

let private runDelegation (env: Env) (source: Guid) (target: Guid) (delegationId: Guid) (task': string) : Task =
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
                            match Json.tryParse body with
                            | Some n when (Json.prop "error" n).IsSome -> return Delegations.Failed body
                            | _ -> return Delegations.Completed(A2a.answerText body)
                        | Answered(code, body) -> return Delegations.Failed $"HTTP {code}: {cap 500 body}"
                }

            env.Store.Transaction(fun () ->
                let now = env.Now()
                insertRow env (Delegations.resultRow (newId ()) now source target delegationId outcome) |> ignore
                env.Store.UpdateActivityStatus(source, delegationId, Delegations.statusOf outcome)

                match outcome with
                | Delegations.Completed text ->
                    insertRow env (Delegations.replyRow (newId ()) now source target delegationId text) |> ignore
                    publish env "DELEGATION_COMPLETE" (Some source) [ "delegation_id", Json.guidNode delegationId ]
                | Delegations.Queued ->
                    publish env "DELEGATION_STATUS" (Some source) [ "delegation_id", Json.guidNode delegationId; "status", Json.str "queued" ]
                | Delegations.Failed d ->
                    publish env "DELEGATION_FAILED" (Some source) [ "delegation_id", Json.guidNode delegationId; "error", Json.str d ])
        with e ->
            eprintfn "[platform] delegation %s failed: %s" (Json.guid delegationId) e.Message
    }

let private delegateTask (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        task {
            match! readJson ctx with
            | Error e -> return Json.errorReply e.Code (if e.Body.Contains "invalid JSON" then "invalid delegation request" else (Json.tryParse e.Body |> Option.bind (Json.prop "error") |> Option.bind Json.asString |> Option.defaultValue "invalid delegation request"))
            | Ok body ->
                match Delegations.parse w.Id body with
                | Error e -> return e
                | Ok req ->
                    let decision =
                        env.Store.Transaction(fun () ->
                            let all = env.Store.Workspaces

                            match all.TryFind req.TargetId with
                            | None -> Error(Json.errorReply 404 "target workspace not found")
                            | Some _ when not (Hierarchy.canCommunicate all w.Id req.TargetId) ->
                                Error(Json.errorReply 403 A2a.accessDenied)
                            | Some _ ->
                                match Delegations.checkIdempotency (env.Store.Activity w.Id) w.Id req.IdempotencyKey with
                                | Delegations.Hit r -> Error(Delegations.hitReply r)
                                | idem ->
                                    match idem with
                                    | Delegations.ReplaceFailed r -> env.Store.DeleteActivity(w.Id, r.Id)
                                    | _ -> ()

                                    let id = newId ()
                                    insertRow env (Delegations.trackingRow id (env.Now()) w.Id req) |> ignore
                                    publish env "DELEGATION_SENT" (Some w.Id) [ "delegation_id", Json.guidNode id; "target_id", Json.guidNode req.TargetId ]
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

let private delegations (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w -> env.Store.Atomically(fun () -> ok (Delegations.list (env.Store.Activity w.Id) w.Id)))

// ---------------------------------------------------------------- notify, uploads, memories

let private notify (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictExisting env ctx (fun w ->
        if w.Status = Status.Removed then
            Task.FromResult notFound // 404 here, not the 410 of strictLive
        else
            withJson ctx (fun body ->
                match A2a.parseNotify body with
                | Error e -> e
                | Ok(message, atts) ->
                    env.Store.Atomically(fun () ->
                        insertRow env (A2a.notifyRow (newId ()) (env.Now()) w message atts) |> ignore

                        publish
                            env
                            "AGENT_MESSAGE"
                            (Some w.Id)
                            [ "message", Json.str message
                              "workspace_id", Json.guidNode w.Id
                              "name", Json.str w.Name
                              "attachments", Json.arr (atts |> List.map A2a.attachmentNode) ])

                    okStatus "sent"))

let private safeName (name: string) =
    let n = Path.GetFileName(if isNull name then "" else name)
    let invalid = Path.GetInvalidFileNameChars()

    let cleaned =
        String(n.ToCharArray() |> Array.map (fun c -> if Array.contains c invalid || Char.IsControl c then '_' else c))

    let cleaned = cleaned.Trim().TrimStart('.')
    let cleaned = if cleaned = "" then "file" else cleaned
    if cleaned.Length > 100 then cleaned.Substring(cleaned.Length - 100) else cleaned

let private contentTypes = FileExtensionContentTypeProvider()

let private mimeOf (name: string) =
    match contentTypes.TryGetContentType name with
    | true, t -> t
    | _ -> "application/octet-stream"

let private uploadsDir (env: Env) (ws: Guid) =
    Path.Combine(env.Store.DataDir, "uploads", Json.guid ws)

let private filesRequired =
    bad "files is required (multipart/form-data with one or more 'files' parts)"

let private upload (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        task {
            let feature = ctx.Features.Get<IHttpMaxRequestBodySizeFeature>()

            if not (isNull feature) && not feature.IsReadOnly then
                feature.MaxRequestBodySize <- Nullable MaxUploadBody

            if not ctx.Request.HasFormContentType then
                return filesRequired
            else
                try
                    let! form = ctx.Request.ReadFormAsync()
                    let files = form.Files.GetFiles "files"

                    if files.Count = 0 then
                        return filesRequired
                    else
                        let dir = uploadsDir env w.Id
                        Directory.CreateDirectory dir |> ignore
                        let entries = ResizeArray<JsonNode>()

                        for f in files do
                            let name = safeName f.FileName
                            let stored = $"{Guid.NewGuid():N}-{name}"
                            let path = Path.Combine(dir, stored)

                            do!
                                task {
                                    use fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write)
                                    do! f.CopyToAsync fs
                                    do! fs.FlushAsync()
                                    fs.Flush true
                                }

                            let mime =
                                if String.IsNullOrWhiteSpace f.ContentType || f.ContentType = "application/octet-stream" then
                                    mimeOf name
                                else
                                    f.ContentType

                            entries.Add(
                                Json.obj
                                    [ "uri", Json.str $"{baseUrl ctx}/workspaces/{Json.guid w.Id}/chat/uploads/{Uri.EscapeDataString stored}"
                                      "name", Json.str name
                                      "mimeType", Json.str mime
                                      "size", Json.num64 f.Length ]
                            )

                        return ok (Json.obj [ "files", Json.arr entries ])
                with
                | :? Microsoft.AspNetCore.Http.BadHttpRequestException as e when e.StatusCode = 413 ->
                    return Json.errorReply 413 "upload too large (max 25 MiB)"
                | :? InvalidDataException
                | :? Microsoft.AspNetCore.Http.BadHttpRequestException
                | :? IOException -> return bad "files: invalid multipart body"
        })

let private download (env: Env) (ctx: HttpContext) : Task =
    task {
        match strict env ctx with
        | Error e -> do! send ctx e
        | Ok(id, _) ->
            let file =
                match ctx.Request.RouteValues.TryGetValue "file" with
                // already percent-decoded by the server: decoding again would turn a stored name's literal
                // "%20" into a space and miss the file
                | true, (:? string as s) -> s
                | _ -> ""

            let path = Path.Combine(uploadsDir env id, Path.GetFileName file)

            if file = "" || file <> Path.GetFileName file || not (File.Exists path) then
                do! send ctx (Json.errorReply 404 "file not found")
            else
                ctx.Response.StatusCode <- 200
                ctx.Response.ContentType <- mimeOf file
                ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
                ctx.Response.Headers["Content-Disposition"] <- "attachment"
                do! ctx.Response.SendFileAsync path
    }

let private commitMemory (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        withJson ctx (fun body ->
            match Memories.parseCommit body with
            | Error e -> e
            | Ok c ->
                match Memories.commit (newId ()) (env.Now()) w c with
                | Error e -> e
                | Ok m ->
                    env.Store.Transaction(fun () ->
                        env.Store.InsertMemory m

                        if m.Scope = "GLOBAL" then
                            insertRow
                                env
                                { Activity.row (newId ()) m.CreatedAt w.Id "memory_write_global" with
                                    SourceId = Some w.Id
                                    Summary = Some(cap 256 m.Content)
                                    RequestBody = Some(Json.compact (Json.obj [ "memory_id", Json.guidNode m.Id ])) }
                            |> ignore)

                    Json.reply 201 (Json.obj [ "id", Json.guidNode m.Id; "scope", Json.str m.Scope; "namespace", Json.str m.Namespace ])))

let private recallMemory (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        let limit =
            match query ctx "limit" with
            | Some s ->
                match Int32.TryParse s with
                | true, n -> Some n
                | _ -> None
            | None -> None

        let q = query ctx "q" |> Option.filter (fun s -> s.Trim() <> "")
        let scope = query ctx "scope" |> Option.filter (fun s -> s.Trim() <> "")

        env.Store.Atomically(fun () ->
            Memories.recall env.Store.Workspaces w scope q limit env.Store.Memories
            |> List.map Memories.toJson
            |> Json.arr
            |> ok))

// ---------------------------------------------------------------- admin

let private createWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withJson ctx (fun body ->
            let parsed =
                result {
                    let! name = reqString "name" body

                    do!
                        if name.Length > 200 then
                            Error(bad "name must be at most 200 characters")
                        else
                            Ok()

                    let! role = optString "role" body
                    let! parent = optGuid "parent_id" body
                    let! skills = optStringList "skills" body
                    let! tier = optInt "tier" body

                    do!
                        match tier with
                        | Some t when t < 0 || t > 10 -> Error(bad "tier must be an integer between 0 and 10")
                        | _ -> Ok()

                    let! description = optString "description" body
                    let! mode = optString "delivery_mode" body

                    do!
                        match mode with
                        | None
                        | Some "poll"
                        | Some "push" -> Ok()
                        | Some _ -> Error(bad "delivery_mode must be 'push' or 'poll'")

                    return name.Trim(), role, parent, defaultArg skills [], tier, description, defaultArg mode "poll"
                }

            match parsed with
            | Error e -> e
            | Ok(name, role, parent, skills, tier, description, mode) ->
                env.Store.Transaction(fun () ->
                    let parentCheck =
                        match parent with
                        | None -> Ok()
                        | Some p ->
                            match env.Store.Workspace p with
                            | None -> Error(bad "parent_id: workspace not found")
                            | Some pw when pw.Status = Status.Removed -> Error(bad "parent_id: workspace is removed")
                            | Some _ -> Ok()

                    match parentCheck with
                    | Error e -> e
                    | Ok() ->
                        let now = env.Now()
                        let id = newId ()

                        let w =
                            { Workspace.fresh id now with
                                Name = name
                                Role = role |> Option.filter (fun r -> r.Trim() <> "")
                                Tier = defaultArg tier (if parent.IsNone then 0 else 1)
                                Status = Status.AwaitingAgent
                                AgentCard = Some(Views.cardOf name skills description)
                                ParentId = parent
                                DeliveryMode = mode
                                InboundSecret = Some(randomToken ()) }

                        env.Store.SaveWorkspace w
                        let token = randomToken ()
                        env.Store.SaveToken(Tokens.create (newId ()) id now token)
                        publish env "WORKSPACE_CREATED" (Some id) [ "workspace", Views.workspace w ]
                        let platformUrl = baseUrl ctx
                        let o = Views.workspace w
                        o["auth_token"] <- Json.str token
                        o["workspace_id"] <- Json.guidNode id
                        o["platform_url"] <- Json.str platformUrl

                        o["connection"] <-
                            Json.obj
                                [ "workspace_id", Json.guidNode id
                                  "auth_token", Json.str token
                                  "platform_url", Json.str platformUrl ]

                        Json.reply 201 o)))

let private listWorkspaces (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Store.Atomically(fun () ->
            env.Store.Workspaces
            |> Map.toList
            |> List.map snd
            |> List.sortBy (fun w -> w.CreatedAt, w.Id)
            |> List.map (fun w -> Views.workspace w :> JsonNode)
            |> Json.arr
            |> ok))

let private deleteWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            env.Store.Transaction(fun () ->
                let all = env.Store.Workspaces

                match all.TryFind id with
                | None -> notFound
                | Some _ ->
                    let children = Hierarchy.liveChildren all id

                    if not children.IsEmpty && query ctx "confirm" <> Some "true" then
                        Json.reply
                            409
                            (Json.obj
                                [ "status", Json.str "confirmation_required"
                                  "message",
                                  Json.str "workspace has live children; repeat with ?confirm=true to remove it and all descendants"
                                  "children",
                                  Json.arr (children |> List.map (fun c -> Json.obj [ "id", Json.guidNode c.Id; "name", Json.str c.Name ] :> JsonNode))
                                  "children_count", Json.num children.Length ])
                    else
                        let now = env.Now()
                        let descendants = Hierarchy.descendants all id
                        let targets = id :: descendants

                        for t in targets do
                            match all.TryFind t with
                            | Some x when x.Status <> Status.Removed ->
                                env.Store.SaveWorkspace
                                    { x with
                                        Status = Status.Removed
                                        UpdatedAt = now }

                                publish env "WORKSPACE_REMOVED" (Some t) [ "status", Json.str Status.Removed ]
                            | _ -> ()

                            for tok in env.Store.TokensOf t do
                                if tok.RevokedAt.IsNone then
                                    env.Store.SaveToken { tok with RevokedAt = Some now }

                        ok (
                            Json.obj
                                [ "status", Json.str "removed"
                                  "id", Json.guidNode id
                                  "cascade_deleted", Json.num descendants.Length ]
                        ))))

let private mintToken (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminWorkspaceHandler env ctx (fun w ->
        if w.Status = Status.Removed then
            Views.removed w
        else
            let live = env.Store.TokensOf w.Id |> List.filter Tokens.isLive

            if live.Length >= MaxLiveTokens then
                Json.errorReply 409 "token limit reached (50 live tokens); revoke one first"
            else
                let token = randomToken ()
                let t = Tokens.create (newId ()) w.Id (env.Now()) token
                env.Store.SaveToken t

                Json.reply
                    201
                    (Json.obj
                        [ "auth_token", Json.str token
                          "workspace_id", Json.guidNode w.Id
                          "id", Json.guidNode t.Id
                          "prefix", Json.str t.Prefix
                          "message", Json.str "Copy this token now; it is not shown again." ]))

let private listTokens (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminWorkspaceHandler env ctx (fun w ->
        let live = env.Store.TokensOf w.Id |> List.filter Tokens.isLive
        ok (Json.obj [ "tokens", Json.arr (live |> List.map Views.token); "count", Json.num live.Length ]))

let private revokeToken (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            match routeGuid ctx "tokenId" with
            | None -> Json.errorReply 404 "token not found"
            | Some tokenId ->
                env.Store.Atomically(fun () ->
                    match env.Store.TokensOf id |> List.tryFind (fun t -> t.Id = tokenId) with
                    | None -> Json.errorReply 404 "token not found"
                    | Some t ->
                        if t.RevokedAt.IsNone then
                            env.Store.SaveToken { t with RevokedAt = Some(env.Now()) }

                        ok (Json.obj [ "status", Json.str "revoked"; "id", Json.guidNode tokenId ]))))

let private addFault (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                let rules =
                    match Json.tryParse text with
                    | Some(:? JsonArray as a) -> a |> Seq.map (fun n -> match n with :? JsonObject as o -> FaultRule.parse o | _ -> Error "each rule must be an object") |> List.ofSeq
                    | Some(:? JsonObject as o) -> [ FaultRule.parse o ]
                    | _ -> [ Error "invalid JSON" ]

                match rules |> List.tryPick (function Error e -> Some e | Ok _ -> None) with
                | Some e -> return bad e
                | None ->
                    for r in rules do
                        match r with
                        | Ok rule -> env.Faults.Add rule
                        | Error _ -> ()

                    return ok (Json.obj [ "status", Json.str "added"; "count", Json.num rules.Length ])
        })

let private clearFaults (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Faults.Clear()
        okStatus "cleared")

let private requestCount (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        let prefix = defaultArg (query ctx "prefix") "/"

        let n =
            match query ctx "method" with
            | Some m when m <> "" -> env.Faults.Requests(m, prefix)
            | _ -> env.Faults.Requests prefix

        ok (Json.obj [ "prefix", Json.str prefix; "count", Json.num n ]))

/// Server-sent events: every platform event as `event: <TYPE>` + `data: <json>`. Admin token as bearer or
/// `?token=` (EventSource cannot set headers).
let private events (env: Env) (ctx: HttpContext) : Task =
    task {
        let presented = bearer ctx |> Option.orElse (query ctx "token")

        match presented with
        | Some t when isAdmin env t ->
            ctx.Response.StatusCode <- 200
            ctx.Response.ContentType <- "text/event-stream"
            ctx.Response.Headers["Cache-Control"] <- "no-cache"
            let ch = env.Events.Subscribe()
            use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, env.Stopping)

            try
                try
                    do! ctx.Response.WriteAsync(": connected\n\n", linked.Token)
                    do! ctx.Response.Body.FlushAsync(linked.Token)
                    let mutable go = true

                    while go do
                        let wait = ch.Reader.WaitToReadAsync(linked.Token).AsTask()
                        let! first = Task.WhenAny(wait, Task.Delay(TimeSpan.FromSeconds 15.0, linked.Token))

                        if Object.ReferenceEquals(first, wait) then
                            let! more = wait

                            if not more then
                                go <- false
                            else
                                let mutable e = Unchecked.defaultof<PlatformEvent>

                                while ch.Reader.TryRead(&e) do
                                    do! ctx.Response.WriteAsync($"event: {e.Type}\ndata: {PlatformEvent.toJson e}\n\n", linked.Token)

                                do! ctx.Response.Body.FlushAsync(linked.Token)
                        else
                            do! ctx.Response.WriteAsync(": keepalive\n\n", linked.Token)
                            do! ctx.Response.Body.FlushAsync(linked.Token)
                with
                | :? OperationCanceledException -> ()
                | :? IOException -> ()
            finally
                env.Events.Unsubscribe ch
        | Some _ -> do! send ctx (Json.errorReply 401 "invalid admin token")
        | None -> do! send ctx (Json.errorReply 401 "missing admin token")
    }

// ---------------------------------------------------------------- host

/// A started platform.
type RunningPlatform
    internal
    (
        app: WebApplication,
        url: string,
        adminToken: string,
        faults: FaultInjector,
        hub: EventHub,
        store: Store.Store,
        stopping: CancellationTokenSource,
        sweeper: Task,
        background: ResizeArray<Task>,
        http: HttpClient,
        sweep: unit -> Guid list
    ) =
    let mutable stopped = false

    /// Base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
    member _.Url = url
    member _.AdminToken = adminToken
    member _.Faults = faults
    member _.Events = hub
    member _.DataDir = store.DataDir

    /// Runs one liveness sweep now with the platform clock; returns the ids that became awaiting_agent.
    member _.SweepNow() : Guid list = sweep ()

    /// Waits until every background delegation started so far has finished (tests).
    member _.IdleAsync() : Task =
        let pending = lock background (fun () -> background.ToArray())
        Task.WhenAll pending

    member _.StopAsync() : Task =
        task {
            if not stopped then
                stopped <- true
                stopping.Cancel()
                hub.CompleteAll()
                faults.Clear()

                try
                    do! app.StopAsync()
                with _ ->
                    ()

                try
                    do! sweeper
                with _ ->
                    ()

                let pending = lock background (fun () -> background.ToArray())

                try
                    do! Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds 5.0)
                with _ ->
                    ()

                do! app.DisposeAsync()
                http.Dispose()
                (store :> IDisposable).Dispose()
        }

    interface IAsyncDisposable with
        member this.DisposeAsync() = ValueTask(this.StopAsync())

/// Reads or creates `<dataDir>/admin_token` (mode 0600).
let loadAdminToken (dataDir: string) : string =
    Directory.CreateDirectory dataDir |> ignore
    let path = Path.Combine(dataDir, adminTokenFile)

    let existing =
        if File.Exists path then
            let t = File.ReadAllText(path).Trim()
            if t.Length >= 32 then Some t else None
        else
            None

    match existing with
    | Some t -> t
    | None ->
        let t = randomToken ()

        if OperatingSystem.IsWindows() then
            File.WriteAllText(path, t + "\n")
        else
            let opts =
                FileStreamOptions(
                    Mode = FileMode.Create,
                    Access = FileAccess.Write,
                    UnixCreateMode = Nullable(UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
                )

            use fs = new FileStream(path, opts)
            let bytes = Encoding.UTF8.GetBytes(t + "\n")
            fs.Write(bytes, 0, bytes.Length)
            fs.Flush true
            File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite)

        t

let private faultMiddleware (faults: FaultInjector) (stopping: CancellationToken) (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        let path = ctx.Request.Path.Value
        let m = ctx.Request.Method
        faults.Record(m, path)

        match (if path.StartsWith "/admin/" then None else faults.Take(m, path)) with
        | None -> do! next.Invoke ctx
        | Some rule ->
            use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping)

            try
                if rule.DelayMs > 0 then
                    do! Task.Delay(rule.DelayMs, linked.Token)

                if rule.Hang then
                    do! Task.Delay(Timeout.Infinite, linked.Token)

                if rule.Drop then
                    ctx.Abort()
                elif rule.Status > 0 then
                    ctx.Response.StatusCode <- rule.Status
                    ctx.Response.ContentType <- "application/json; charset=utf-8"
                    let body = if rule.Body = "" then Json.error "injected fault" else rule.Body
                    do! ctx.Response.WriteAsync body
                else
                    do! next.Invoke ctx
            with :? OperationCanceledException ->
                ctx.Abort()
    }

let private errorMiddleware (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        try
            ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
            do! next.Invoke ctx
        with
        | :? Microsoft.AspNetCore.Http.BadHttpRequestException as e when not ctx.Response.HasStarted ->
            do! send ctx (Json.errorReply e.StatusCode "bad request")
        | :? OperationCanceledException -> ()
        | e when not ctx.Response.HasStarted ->
            eprintfn "[platform] %s %s failed: %s" ctx.Request.Method ctx.Request.Path.Value (e.ToString())
            do! send ctx (Json.errorReply 500 "internal error")
        | e -> eprintfn "[platform] %s %s failed after the answer started: %s" ctx.Request.Method ctx.Request.Path.Value e.Message
    }

/// One liveness sweep with the platform clock; publishes WORKSPACE_AWAITING_AGENT; returns the changed ids.
let private sweepOnce (env: Env) : Guid list =
    env.Store.Atomically(fun () ->
        let now = env.Now()

        [ for w in env.Store.Workspaces |> Map.toList |> List.map snd do
              match Liveness.sweep now w with
              | Some updated ->
                  env.Store.SaveWorkspace updated
                  publish env "WORKSPACE_AWAITING_AGENT" (Some w.Id) [ "status", Json.str updated.Status ]
                  yield w.Id
              | None -> () ])

let private sweepLoop (env: Env) (interval: TimeSpan) : Task =
    task {
        try
            while not env.Stopping.IsCancellationRequested do
                do! Task.Delay(interval, env.Stopping)

                try
                    sweepOnce env |> ignore
                with e ->
                    eprintfn "[platform] liveness sweep failed: %s" e.Message
        with :? OperationCanceledException ->
            ()
    }

let private quietly (f: unit -> unit) =
    try
        f ()
    with _ ->
        ()

/// Starts the platform; `configure` may add endpoints (e.g. the canvas page at `/`) before it starts listening.
let startWith (configure: WebApplication -> unit) (options: PlatformOptions) : Task<RunningPlatform> =
    task {
        let dataDir = Path.GetFullPath options.DataDir
        let admin = loadAdminToken dataDir
        let store = new Store.Store(dataDir)
        let faults = FaultInjector()
        let hub = EventHub()
        let stopping = new CancellationTokenSource()
        let background = ResizeArray<Task>()
        let http = new HttpClient(Timeout = Timeout.InfiniteTimeSpan)

        let env =
            { Store = store
              Now = defaultArg options.Clock (fun () -> DateTimeOffset.UtcNow)
              Admin = admin
              Faults = faults
              Events = hub
              Http = http
              Stopping = stopping.Token
              Background = background }

        let builder =
            WebApplication.CreateSlimBuilder(WebApplicationOptions(ApplicationName = "Molecule.Platform", ContentRootPath = dataDir))

        builder.Logging.ClearProviders() |> ignore

        builder.Services.Configure<HostOptions>(fun (o: HostOptions) -> o.ShutdownTimeout <- TimeSpan.FromSeconds 3.0)
        |> ignore

        builder.WebHost.ConfigureKestrel(fun (k: KestrelServerOptions) ->
            k.Limits.MaxRequestBodySize <- Nullable MaxBody
            k.AddServerHeader <- false

            match IPAddress.TryParse options.Host with
            | true, ip -> k.Listen(ip, options.Port)
            | _ when options.Host = "localhost" -> k.ListenLocalhost(options.Port)
            | _ -> k.ListenAnyIP(options.Port))
        |> ignore

        let app = builder.Build()
        app.Use(Func<HttpContext, RequestDelegate, Task>(errorMiddleware)) |> ignore
        app.Use(Func<HttpContext, RequestDelegate, Task>(fun ctx next -> faultMiddleware faults stopping.Token ctx next)) |> ignore

        let get (p: string) (h: RequestDelegate) = app.MapGet(p, h) |> ignore
        let post (p: string) (h: RequestDelegate) = app.MapPost(p, h) |> ignore
        let del (p: string) (h: RequestDelegate) = app.MapDelete(p, h) |> ignore

        get "/health" (handle (fun _ -> Task.FromResult(okStatus "ok")))
        post "/registry/register" (handle (register env))
        post "/registry/heartbeat" (handle (heartbeat env))
        get "/registry/discover/{id}" (handle (discover env))
        get "/registry/{id}/peers" (handle (peers env))
        get "/workspaces/{id}" (handle (getWorkspace env))
        get "/workspaces/{id}/activity" (handle (listActivity env))
        post "/workspaces/{id}/activity" (handle (postActivity env))
        post "/workspaces/{id}/a2a" (handle (a2a env))
        post "/workspaces/{id}/delegate" (handle (delegateTask env))
        get "/workspaces/{id}/delegations" (handle (delegations env))
        post "/workspaces/{id}/notify" (handle (notify env))
        post "/workspaces/{id}/chat/uploads" (handle (upload env))
        get "/workspaces/{id}/chat/uploads/{file}" (RequestDelegate(download env))
        post "/workspaces/{id}/memories" (handle (commitMemory env))
        get "/workspaces/{id}/memories" (handle (recallMemory env))
        post "/workspaces" (handle (createWorkspace env))
        get "/workspaces" (handle (listWorkspaces env))
        del "/workspaces/{id}" (handle (deleteWorkspace env))
        post "/workspaces/{id}/tokens" (handle (mintToken env))
        get "/workspaces/{id}/tokens" (handle (listTokens env))
        del "/workspaces/{id}/tokens/{tokenId}" (handle (revokeToken env))
        post "/admin/faults" (handle (addFault env))
        del "/admin/faults" (handle (clearFaults env))
        get "/admin/requests" (handle (requestCount env))

        post
            "/admin/sweep"
            (handle (fun ctx ->
                adminHandler env ctx (fun () ->
                    let changed = sweepOnce env
                    ok (Json.obj [ "changed", Json.arr (changed |> List.map Json.guidNode) ]))))

        get "/events" (RequestDelegate(events env))
        app.MapFallback(RequestDelegate(fun ctx -> send ctx (Json.errorReply 404 "not found"))) |> ignore
        configure app

        try
            do! app.StartAsync()
        with e ->
            stopping.Cancel()
            quietly (fun () -> (app :> IDisposable).Dispose())
            http.Dispose()
            (store :> IDisposable).Dispose()
            raise (InvalidOperationException($"the platform could not listen on {options.Host}:{options.Port}: {e.Message}", e))

        let addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()

        let url =
            addresses.Addresses
            |> Seq.tryHead
            |> Option.defaultValue $"http://{options.Host}:{options.Port}"
            |> fun u -> u.TrimEnd('/')

        let sweeper = sweepLoop env options.SweepInterval
        return new RunningPlatform(app, url, admin, faults, hub, store, stopping, sweeper, background, http, (fun () -> sweepOnce env))
    }

/// Starts the platform (see PlatformOptions.defaults).
let start (options: PlatformOptions) : Task<RunningPlatform> = startWith ignore options

/// Convenience for hosts (C#): start with the system clock and the default sweep interval.
let startAt (dataDir: string) (host: string) (port: int) : Task<RunningPlatform> =
    start
        { PlatformOptions.defaults dataDir with
            Host = host
            Port = port }
