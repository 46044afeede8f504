/// Admin routes: workspaces, tokens, fault injection, request counts, the periodic passes on demand.
module internal Molecule.Platform.Routes.AdminRoutes

open System
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
open Molecule.Platform.Routes.ConsoleRoutes
module Json = Molecule.Protocol.Json

[<Literal>]
let MaxLiveTokens = 50

let private logName (w: Store.IReader) (id: WorkspaceId) =
    Feed.nameWithId (Store.team w) id

// ---------------------------------------------------------------- workspaces

/// GET /workspaces/:id: the full view for the admin and the workspace's own live token, the public card for anyone
/// else; 410 for a removed workspace unless `include_removed=true`.
let getWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        return
            withRouteId ctx (fun id ->
                env.Store.Read(fun r ->
                    match r.Workspace id with
                    | None -> notFound
                    | Some w when w.Status = Status.Removed && query ctx "include_removed" <> Some "true" -> Views.removed w
                    | Some w ->
                        let insider =
                            match bearer ctx with
                            | Some b when isAdmin env b -> true
                            | Some b -> Tokens.named r.TokenByHash b |> Option.exists (fun t -> t.WorkspaceId = id && Tokens.isLive t)
                            | None -> false

                        let o = if insider then Views.workspace w else AdminViews.publicCard w
                        if w.Status = Status.Removed then o["removed_at"] <- Wire.timeNode w.UpdatedAt
                        ok o))
    }

/// POST /workspaces: Workspaces.create, its first token and the connection lines (201).
let createWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withJson ctx (fun body ->
            let parsed =
                Workspaces.parseCreate body
                |> Result.bind (fun req -> Connection.platformUrl req.PlatformUrl (baseUrl ctx) |> Result.map (fun url -> req, url))

            match parsed with
            | Error e -> e
            | Ok(req, platformUrl) ->
                env.Store.Write(fun w ->
                    let now = env.Now()
                    let parent = req.Parent |> Option.bind w.Workspace

                    match Workspaces.create (WorkspaceId(newGuid ())) now (randomToken ()) parent req with
                    | Error e -> e
                    | Ok ws ->
                        w.SaveWorkspace ws
                        let token = randomToken ()
                        w.SaveToken(Tokens.create (TokenId(newGuid ())) ws.Id now token)
                        announce env w (Workspaces.created ws)
                        Workspaces.createdReply ws token platformUrl (connectionLines env ws platformUrl token))))

/// GET /workspaces: every workspace, oldest first.
let listWorkspaces (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Store.Read(fun r -> r.Workspaces())
        |> List.sortBy (fun w -> w.CreatedAt, w.Id)
        |> List.map (fun w -> Views.workspace w :> JsonNode)
        |> Json.arr
        |> ok)

/// DELETE /workspaces/:id[?confirm=true]: Workspaces.remove.
let deleteWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            env.Store.Write(fun w ->
                let all = Store.team w

                match Workspaces.remove (env.Now()) all id (query ctx "confirm" = Some "true") with
                | None -> notFound
                | Some(Error e) -> e
                | Some(Ok removal) ->
                    removal.Removed |> List.iter w.SaveWorkspace
                    removal.Announcements |> List.iter (announce env w)
                    removal.Revoke |> List.iter (fun t -> w.RevokeTokens(t, env.Now()))
                    removal.Reply)))

// ---------------------------------------------------------------- tokens

/// The request's `{platform_url?}` (an empty body is fine) → the URL for connection lines.
let private mintBody (ctx: HttpContext) (text: string) : Result<string, Reply> =
    let body = if String.IsNullOrWhiteSpace text then Ok None else Validation.body text |> Result.map Some

    body
    |> Result.bind (fun b ->
        let given = b |> Option.bind (Json.prop "platform_url") |> Option.bind Json.asString
        Connection.platformUrl given (baseUrl ctx))

/// POST /workspaces/:id/tokens [{platform_url?}] → 201 {auth_token, id, prefix, message, connection_lines}.
let mintToken (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                return
                    match mintBody ctx text with
                    | Error e -> e
                    | Ok platformUrl ->
                        withRouteId ctx (fun id ->
                            env.Store.Write(fun w ->
                                match w.Workspace id with
                                | None -> notFound
                                | Some ws when ws.Status = Status.Removed -> Views.removed ws
                                | Some ws when (w.TokensOf id |> List.filter Tokens.isLive).Length >= MaxLiveTokens ->
                                    Wire.errorReply 409 "token limit reached (50 live tokens); revoke one first"
                                | Some ws ->
                                    let token = randomToken ()
                                    let t = Tokens.create (TokenId(newGuid ())) ws.Id (env.Now()) token
                                    w.SaveToken t
                                    logAfter env w $"token {t.Id.Text} minted for {logName w ws.Id}"

                                    Wire.reply
                                        201
                                        (Json.obj
                                            [ "auth_token", Json.str token
                                              "workspace_id", Wire.idNode ws.Id
                                              "id", Wire.idNode t.Id
                                              "prefix", Json.str t.Prefix
                                              "message", Json.str Connection.shownOnce
                                              "connection_lines", connectionLines env ws platformUrl token ])))
        })

/// GET /workspaces/:id/tokens: the live ones (id, prefix, times; never the text).
let listTokens (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminWorkspaceHandler env ctx (fun r ws ->
        let live = r.TokensOf ws.Id |> List.filter Tokens.isLive
        ok (Json.obj [ "tokens", Json.arr (live |> List.map Views.token); "count", Json.num live.Length ]))

/// DELETE /workspaces/:id/tokens/:tokenId.
let revokeToken (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            match routeGuid ctx "tokenId" |> Option.map TokenId with
            | None -> Wire.errorReply 404 "token not found"
            | Some tokenId ->
                env.Store.Write(fun w ->
                    match w.TokensOf id |> List.tryFind (fun t -> t.Id = tokenId) with
                    | None -> Wire.errorReply 404 "token not found"
                    | Some t ->
                        if t.RevokedAt.IsNone then
                            w.SaveToken { t with RevokedAt = Some(env.Now()) }
                            logAfter env w $"token {t.Id.Text} of {logName w id} revoked"

                        ok (Json.obj [ "status", Json.str "revoked"; "id", Wire.idNode tokenId; "message", Json.str Connection.revoked ]))))

// ---------------------------------------------------------------- faults (only with EnableFaults)

let addFault (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                let rules =
                    match Json.tryParseDecoded text with
                    | Some(:? JsonArray as a) ->
                        a
                        |> Seq.map (fun n ->
                            match n with
                            | :? JsonObject as o -> FaultRule.parse o
                            | _ -> Error "each rule must be an object")
                        |> List.ofSeq
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

/// POST /admin/faults/cut-streams {"path_prefix"} → {cut:n}: drops every open SSE stream under the prefix.
let cutStreams (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withJson ctx (fun body ->
            match reqString "path_prefix" body with
            | Error e -> e
            | Ok prefix -> ok (Json.obj [ "cut", Json.num (env.Faults.CutStreams prefix) ])))

// ---------------------------------------------------------------- periodic passes

/// One liveness sweep with the platform clock (each change a compare-and-set on what it read); publishes
/// WORKSPACE_AWAITING_AGENT; returns the changed ids.
let sweepOnce (env: Env) : WorkspaceId list =
    env.Store.Write(fun w ->
        let now = env.Now()

        [ for ws in w.Workspaces() do
              match Liveness.sweep now ws with
              // a heartbeat that committed since the read (another instance's) wins: the workspace stays as it made it
              | Some updated when w.SaveWorkspaceIf(updated, ws) ->
                  announce env w (Announcements.statusChanged ws.Id updated.Status)
                  yield ws.Id
              | _ -> () ])

/// One retention pass (spec §4.1) with the platform clock; returns how many rows were deleted.
let pruneOnce (env: Env) : int =
    env.Store.Write(fun w -> w.Prune(Inbox.cutoffs (env.Now()) env.Retention))

/// POST /admin/sweep: one liveness sweep now → {changed:[ids]}.
let sweepNow (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () -> ok (Json.obj [ "changed", Json.arr (sweepOnce env |> List.map Wire.idNode) ]))

/// POST /admin/retention: one retention pass now → {deleted:n}.
let retentionNow (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () -> ok (Json.obj [ "deleted", Json.num (pruneOnce env) ]))
