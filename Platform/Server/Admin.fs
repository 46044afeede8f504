/// Admin routes: workspaces, tokens, fault injection, request counts.
module internal Molecule.Platform.Routes.AdminRoutes

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
open Molecule.Platform.Routes.ConsoleRoutes
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- workspaces

/// GET /workspaces/:id: the full view for the admin and the workspace's own live token, the public card for anyone
/// else; 410 for a removed workspace unless `include_removed=true`.
let getWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun id ->
                env.Store.Atomically(fun () ->
                    match env.Store.Workspace id with
                    | None -> notFound
                    | Some w when w.Status = Status.Removed && query ctx "include_removed" <> Some "true" -> Views.removed w
                    | Some w ->
                        let insider =
                            match bearer ctx with
                            | Some b when isAdmin env b -> true
                            | Some b -> (Tokens.findLive env.Store.Tokens id b).IsSome
                            | None -> false

                        let o = if insider then Views.workspace w else AdminViews.publicCard w
                        if w.Status = Status.Removed then o["removed_at"] <- Wire.timeNode w.UpdatedAt
                        ok o))
    }

// ---------------------------------------------------------------- admin

let createWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
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

                    let! platformUrl = platformUrlOf ctx (Some body)
                    return name.Trim(), role, parent, defaultArg skills [], tier, description, defaultArg mode "poll", platformUrl
                }

            match parsed with
            | Error e -> e
            | Ok(name, role, parent, skills, tier, description, mode, platformUrl) ->
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
                        let o = Views.workspace w
                        o["auth_token"] <- Json.str token
                        o["workspace_id"] <- Wire.guidNode id
                        o["platform_url"] <- Json.str platformUrl

                        o["connection"] <-
                            Json.obj
                                [ "workspace_id", Wire.guidNode id
                                  "auth_token", Json.str token
                                  "platform_url", Json.str platformUrl ]

                        o["message"] <- Json.str Connection.shownOnce
                        o["connection_lines"] <- connectionLines env w platformUrl token
                        Wire.reply 201 o)))

let listWorkspaces (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Store.Atomically(fun () ->
            env.Store.Workspaces
            |> Map.toList
            |> List.map snd
            |> List.sortBy (fun w -> w.CreatedAt, w.Id)
            |> List.map (fun w -> Views.workspace w :> JsonNode)
            |> Json.arr
            |> ok))

let deleteWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            env.Store.Transaction(fun () ->
                let all = env.Store.Workspaces

                match all.TryFind id with
                | None -> notFound
                | Some _ ->
                    let children = Hierarchy.liveChildren all id

                    if not children.IsEmpty && query ctx "confirm" <> Some "true" then
                        Wire.reply
                            409
                            (Json.obj
                                [ "status", Json.str "confirmation_required"
                                  "message",
                                  Json.str "workspace has live children; repeat with ?confirm=true to remove it and all descendants"
                                  "children",
                                  Json.arr (children |> List.map (fun c -> Json.obj [ "id", Wire.guidNode c.Id; "name", Json.str c.Name ] :> JsonNode))
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

                                // the stream of the deleted root says how many went with it; descendants get {}
                                let data =
                                    if t = id then Json.obj [ "cascade_deleted", Json.num descendants.Length ] else Json.obj []

                                publishTo env Everyone "WORKSPACE_REMOVED" (Some t) [ "status", Json.str Status.Removed ] data
                            | _ -> ()

                            for tok in env.Store.TokensOf t do
                                if tok.RevokedAt.IsNone then
                                    env.Store.SaveToken { tok with RevokedAt = Some now }

                        ok (
                            Json.obj
                                [ "status", Json.str "removed"
                                  "id", Wire.guidNode id
                                  "cascade_deleted", Json.num descendants.Length ]
                        ))))

/// POST /workspaces/:id/tokens [{platform_url?}] → 201 {auth_token, id, prefix, message, connection_lines}.
let mintToken (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                let body =
                    if String.IsNullOrWhiteSpace text then Ok None
                    else Validation.body text |> Result.map Some

                return
                    match body |> Result.bind (platformUrlOf ctx) with
                    | Error e -> e
                    | Ok platformUrl ->
                        withRouteId ctx (fun id ->
                            env.Store.Atomically(fun () ->
                                match env.Store.Workspace id with
                                | None -> notFound
                                | Some w when w.Status = Status.Removed -> Views.removed w
                                | Some w ->
                                    let live = env.Store.TokensOf w.Id |> List.filter Tokens.isLive

                                    if live.Length >= MaxLiveTokens then
                                        Wire.errorReply 409 "token limit reached (50 live tokens); revoke one first"
                                    else
                                        let token = randomToken ()
                                        let t = Tokens.create (newId ()) w.Id (env.Now()) token
                                        env.Store.SaveToken t
                                        env.Log(Feed.printable $"token {Wire.guid t.Id} minted for {logNames env w.Id}")

                                        Wire.reply
                                            201
                                            (Json.obj
                                                [ "auth_token", Json.str token
                                                  "workspace_id", Wire.guidNode w.Id
                                                  "id", Wire.guidNode t.Id
                                                  "prefix", Json.str t.Prefix
                                                  "message", Json.str Connection.shownOnce
                                                  "connection_lines", connectionLines env w platformUrl token ])))
        })

let listTokens (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminWorkspaceHandler env ctx (fun w ->
        let live = env.Store.TokensOf w.Id |> List.filter Tokens.isLive
        ok (Json.obj [ "tokens", Json.arr (live |> List.map Views.token); "count", Json.num live.Length ]))

let revokeToken (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            match routeGuid ctx "tokenId" with
            | None -> Wire.errorReply 404 "token not found"
            | Some tokenId ->
                env.Store.Atomically(fun () ->
                    match env.Store.TokensOf id |> List.tryFind (fun t -> t.Id = tokenId) with
                    | None -> Wire.errorReply 404 "token not found"
                    | Some t ->
                        if t.RevokedAt.IsNone then
                            env.Store.SaveToken { t with RevokedAt = Some(env.Now()) }
                            env.Log(Feed.printable $"token {Wire.guid t.Id} of {logNames env id} revoked")

                        ok (Json.obj [ "status", Json.str "revoked"; "id", Wire.guidNode tokenId; "message", Json.str Connection.revoked ]))))

let addFault (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                let rules =
                    match Json.tryParseDecoded text with
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

let clearFaults (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Faults.Clear()
        okStatus "cleared")

let requestCount (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        let prefix = defaultArg (query ctx "prefix") "/"

        let n =
            match query ctx "method" with
            | Some m when m <> "" -> env.Faults.Requests(m, prefix)
            | _ -> env.Faults.Requests prefix

        ok (Json.obj [ "prefix", Json.str prefix; "count", Json.num n ]))

/// One liveness sweep with the platform clock; publishes WORKSPACE_AWAITING_AGENT; returns the changed ids.
let sweepOnce (env: Env) : Guid list =
    env.Store.Atomically(fun () ->
        let now = env.Now()

        [ for w in env.Store.Workspaces |> Map.toList |> List.map snd do
              match Liveness.sweep now w with
              | Some updated ->
                  env.Store.SaveWorkspace updated
                  publish env "WORKSPACE_AWAITING_AGENT" (Some w.Id) [ "status", Json.str updated.Status ]
                  yield w.Id
              | None -> () ])

/// One retention pass (spec §4.1) with the platform clock; returns how many rows were deleted.
let pruneOnce (env: Env) : int =
    env.Store.Atomically(fun () ->
        let now = env.Now()
        env.Store.PruneActivity(Inbox.prunable now env.Retention env.Store.AckFloor))

/// POST /admin/sweep: one liveness sweep now → {changed:[ids]}.
let sweepNow (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        let changed = sweepOnce env
        ok (Json.obj [ "changed", Json.arr (changed |> List.map Wire.guidNode) ]))

/// POST /admin/retention: one retention pass now → {deleted:n}.
let retentionNow (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () -> ok (Json.obj [ "deleted", Json.num (pruneOnce env) ]))

/// POST /admin/faults/cut-streams {"path_prefix"} → {cut:n}: drops every open SSE stream under the prefix.
let cutStreams (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withJson ctx (fun body ->
            match reqString "path_prefix" body with
            | Error e -> e
            | Ok prefix -> ok (Json.obj [ "cut", Json.num (env.Faults.CutStreams prefix) ])))

