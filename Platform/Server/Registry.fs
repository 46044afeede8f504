/// Registry routes: register, heartbeat, discover, peers.
module internal Molecule.Platform.Routes.RegistryRoutes

open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
module Json = Molecule.Protocol.Json

/// POST /registry/register: the gate, then Registry.register; a token minted when the workspace has no live one.
let register (env: Env) (ctx: HttpContext) : Task<Reply> =
    withJson ctx (fun body ->
        match Registry.parseRegistration body with
        | Error e -> e
        | Ok reg ->
            env.Store.Write(fun w ->
                let id = reg.Id

                match registryGate env w Auth.missingToken Auth.invalidToken id (bearer ctx) with
                | Error e ->
                    let name = Feed.nameWithId (Store.team w) id
                    logAfter env w $"registration refused for {name} from {remoteIp ctx}: {Wire.errorText e}"
                    e
                | Ok principal ->
                    touchIn env w principal
                    let now = env.Now()
                    let live = w.TokensOf id |> List.exists Tokens.isLive

                    match Registry.register now (randomToken ()) (w.Workspace id) live reg with
                    | Error e -> e
                    | Ok r ->
                        if r.Save then w.SaveWorkspace r.Workspace

                        let token =
                            if r.MintToken then
                                let t = randomToken ()
                                w.SaveToken(Tokens.create (TokenId(newGuid ())) id now t)
                                Some t
                            else
                                None

                        announce env w r.Announcement
                        Registry.registeredReply r.Workspace token))

/// POST /registry/heartbeat: the gate, then Registry.heartbeat (a removed workspace still gets 200).
let heartbeat (env: Env) (ctx: HttpContext) : Task<Reply> =
    withJson ctx (fun body ->
        match Registry.parseHeartbeat body with
        | Error e -> e
        | Ok(id, hb) ->
            env.Store.Write(fun w ->
                let gate =
                    registryGate env w Auth.missingToken Auth.invalidToken id (bearer ctx)
                    |> Result.bind (fun p ->
                        match w.Workspace id with
                        | Some ws -> Ok(p, ws)
                        | None -> Error notFound)

                match gate with
                | Error e -> e
                | Ok(principal, ws) ->
                    touchIn env w principal

                    match Registry.heartbeat (env.Now()) hb ws with
                    | Some(updated, announcements) ->
                        w.SaveWorkspace updated
                        announcements |> List.iter (announce env w)
                    | None -> ()

                    Registry.heartbeatReply ws))

/// Caller of discover/peers: X-Workspace-ID (required unless `fallback`), checked with the registry gate (the admin
/// token is accepted too).
let registryCaller (env: Env) (ctx: HttpContext) (fallback: WorkspaceId option) : Result<WorkspaceId option, Reply> =
    let headerValue = header ctx "X-Workspace-ID"

    match headerValue, fallback with
    | None, None -> Error(bad "X-Workspace-ID header is required")
    | _ ->
        let callerId =
            match headerValue with
            | Some h -> parseWorkspaceId h
            | None -> fallback

        match callerId with
        | None -> Error(bad "X-Workspace-ID must be a valid UUID")
        | Some c -> namedCaller env ctx Auth.missingToken Auth.invalidToken c

let private teamOf (env: Env) = env.Store.Read Store.team

/// GET /registry/discover/:id: where a peer is reached, if the caller may talk to it.
let discover (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun target ->
                match registryCaller env ctx None with
                | Error e -> e
                | Ok caller ->
                    let all = teamOf env

                    match all.TryFind target with
                    | None -> notFound
                    | Some _ when not (Hierarchy.canCommunicate all caller.Value target) ->
                        Wire.errorReply 403 "not authorized to discover this workspace"
                    | Some t ->
                        let entry (url: string) =
                            ok (Json.obj [ "id", Wire.idNode t.Id; "url", Json.str url; "name", Json.str t.Name ])

                        match t.Url with
                        | Some u when u <> "" && t.Status <> Status.Removed -> entry u
                        | _ when t.Status = Status.Online || t.Status = Status.Degraded -> entry $"{baseUrl ctx}/workspaces/{t.Id.Text}/a2a"
                        | _ -> Wire.reply 503 (Json.obj [ "error", Json.str "workspace not available"; "status", Json.str (Status.text t.Status) ]))
    }

/// GET /registry/:id/peers[?q=]: the workspace's peers (Hierarchy.peers), filtered by name or role.
let peers (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun own ->
                match registryCaller env ctx (Some own) with
                | Error e -> e
                | Ok caller when caller <> Some own -> Wire.errorReply 403 "X-Workspace-ID must match the workspace in the path"
                | Ok _ ->
                    let all = teamOf env

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
                        |> ok)
    }
