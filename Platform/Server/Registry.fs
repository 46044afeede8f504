/// Registry routes: register, heartbeat, discover, peers.
module internal Molecule.Platform.Routes.RegistryRoutes

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



/// The `error` text of a reply.
let private errorText (r: Reply) =
    Json.tryParseDecoded r.Body |> Option.bind (Json.prop "error") |> Option.bind Json.asString |> Option.defaultValue r.Body

let register (env: Env) (ctx: HttpContext) : Task<Reply> =
  match limited env ctx "register" "registrations" env.Limits.Register with
  | Some refused -> Task.FromResult refused
  | None ->
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
                | Error e ->
                    env.Log(Feed.printable $"registration refused for {logNames env id} from {remoteIp ctx}: {errorText e}")
                    e
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
                                            Name = Wire.guid id
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

                        let online () =
                            [ "url", Json.str (defaultArg saved.Url "")
                              "agent_card", Json.raw (defaultArg saved.AgentCard "{}")
                              "delivery_mode", Json.str saved.DeliveryMode ]

                        publishTo env Everyone "WORKSPACE_ONLINE" (Some id) (online () @ [ "status", Json.str saved.Status ]) (Json.sorted (online ()))

                        ok res))

let heartbeat (env: Env) (ctx: HttpContext) : Task<Reply> =
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
                registryExisting env ctx id (fun w ->
                        let res = Json.obj [ "status", Json.str "ok" ]

                        if w.Status <> Status.Removed then
                            let updated = Liveness.heartbeat (env.Now()) hb w
                            env.Store.SaveWorkspace updated

                            if updated.Status <> w.Status then
                                publish env $"WORKSPACE_{updated.Status.ToUpperInvariant()}" (Some id) [ "status", Json.str updated.Status ]

                            let task () = [ "current_task", Json.str updated.CurrentTask ]
                            let load () = [ "active_tasks", Json.num updated.ActiveTasks ]
                            let uptime () = [ "uptime_seconds", Json.num updated.UptimeSeconds ]

                            if updated.CurrentTask <> w.CurrentTask then
                                publishTo env Everyone "TASK_UPDATED" (Some id) (task ()) (Json.sorted (task () @ load ()))

                            publishTo
                                env
                                Everyone
                                "WORKSPACE_HEARTBEAT"
                                (Some id)
                                ([ "status", Json.str updated.Status ] @ load () @ uptime ())
                                (Json.sorted (load () @ uptime ()))

                        w.InboundSecret |> Option.iter (fun s -> res["platform_inbound_secret"] <- Json.str s)
                        ok res)))

/// Caller of discover/peers: X-Workspace-ID (required when `required`), checked with the registry gate
/// (the admin token is accepted too).
let registryCaller (env: Env) (ctx: HttpContext) (fallback: Guid option) : Result<Guid option, Reply> =
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

let discover (env: Env) (ctx: HttpContext) : Task<Reply> =
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
                            Wire.errorReply 403 "not authorized to discover this workspace"
                        | Some t ->
                            let entry (url: string) =
                                ok (Json.obj [ "id", Wire.guidNode t.Id; "url", Json.str url; "name", Json.str t.Name ])

                            match t.Url with
                            | Some u when u <> "" && t.Status <> Status.Removed -> entry u
                            | _ when t.Status = Status.Online || t.Status = Status.Degraded ->
                                entry $"{baseUrl ctx}/workspaces/{Wire.guid t.Id}/a2a"
                            | _ -> Wire.reply 503 (Json.obj [ "error", Json.str "workspace not available"; "status", Json.str t.Status ])))
    }

let peers (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun own ->
                env.Store.Atomically(fun () ->
                    match registryCaller env ctx (Some own) with
                    | Error e -> e
                    | Ok caller when caller <> Some own ->
                        Wire.errorReply 403 "X-Workspace-ID must match the workspace in the path"
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
