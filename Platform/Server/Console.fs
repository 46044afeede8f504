/// Console routes (admin): the workspace overview, workspace edits, the labelled feed, the delegations view and a
/// workspace's memories — what the canvas console and the CLI read and change through the same admin API.
module internal Molecule.Platform.Routes.ConsoleRoutes

open System
open System.Text.Json.Nodes
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

let private byCreation (ws: Workspace list) = ws |> List.sortBy (fun w -> w.CreatedAt, w.Id)

/// GET /admin/workspaces: every workspace with last seen, silence, live tokens and delivery state.
let overviewList (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Store.Read(fun r ->
            let now = env.Now()

            r.Workspaces()
            |> byCreation
            |> List.map (fun w ->
                let live = r.TokensOf w.Id |> List.filter Tokens.isLive |> List.length
                let inbound = r.Rows { RowQuery.logOf w.Id with Types = [ "a2a_receive" ] }
                let d = AdminViews.delivery (r.AckFloor w.Id) inbound
                AdminViews.overview now w live d :> JsonNode)
            |> Json.arr
            |> ok))

/// PATCH /workspaces/:id {name?, role?, skills?, description?} → 200 the workspace; rings WORKSPACE_UPDATED.
let editWorkspace (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withJson ctx (fun body ->
            withRouteId ctx (fun id ->
                match AdminViews.parseEdit body with
                | Error e -> e
                | Ok edit ->
                    env.Store.Write(fun w ->
                        match w.Workspace id with
                        | None -> notFound
                        | Some ws when ws.Status = Status.Removed -> Views.removed ws
                        | Some ws ->
                            let updated = AdminViews.applyEdit (env.Now()) edit ws
                            w.SaveWorkspace updated
                            announce env w (Announcements.plain "WORKSPACE_UPDATED" (Some id) [ "workspace", Views.workspace updated ])
                            ok (Views.workspace updated)))))

let private workspaceQuery (ctx: HttpContext) (name: string) : Result<WorkspaceId option, Reply> =
    match query ctx name |> Option.filter (fun s -> s.Trim() <> "") with
    | None -> Ok None
    | Some s ->
        match parseWorkspaceId s with
        | Some g -> Ok(Some g)
        | None -> Error(bad $"{name} must be a workspace UUID")

let private limitQuery (ctx: HttpContext) (fallback: int) (most: int) =
    match query ctx "limit" |> Option.map Int32.TryParse with
    | Some(true, n) when n > 0 -> min n most
    | _ -> fallback

/// How many of the newest rows the feed reads (with their bodies) per request.
[<Literal>]
let FeedWindow = 2000

/// GET /admin/feed?workspace_id=&kind=&q=&limit= → {entries: [...]}, newest first, one entry per event.
let feedView (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match workspaceQuery ctx "workspace_id" with
        | Error e -> e
        | Ok ws ->
            match query ctx "kind" |> Option.filter (fun k -> k <> "") with
            | Some k when not (List.contains k Feed.kinds) -> bad ("kind must be one of: " + String.Join(", ", Feed.kinds))
            | kind ->
                let filter: Feed.Filter = { Workspace = ws; Kind = kind; Text = query ctx "q" }
                let limit = limitQuery ctx 100 500

                env.Store.Read(fun r ->
                    let scope = ws |> Option.map Involving |> Option.defaultValue AllLogs
                    let window = r.Rows { RowQuery.over scope with Newest = Some FeedWindow; Bodies = true }
                    let name = Feed.nameIn (Store.team r)

                    window
                    |> List.choose (Feed.ofRow name)
                    |> Feed.merge
                    |> List.filter (Feed.matches filter)
                    |> List.sortByDescending (fun e -> e.At, e.Seq)
                    |> List.truncate limit
                    |> List.map (fun e -> Feed.toJson e :> JsonNode)
                    |> fun entries -> ok (Json.obj [ "entries", Json.arr entries ])))

/// GET /admin/delegations?workspace_id= → {delegations: [...]}: every delegation once (async and an agent's sync
/// delegate_task), newest first, with names.
let delegationsView (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match workspaceQuery ctx "workspace_id" with
        | Error e -> e
        | Ok ws ->
            let limit = limitQuery ctx 200 1000

            env.Store.Read(fun r ->
                let candidates = r.Rows { RowQuery.over AllLogs with Types = [ "delegation"; "a2a_send"; "a2a_receive" ] }

                let views =
                    candidates
                    |> List.filter AdminViews.isDelegationRow
                    |> r.Hydrate
                    |> AdminViews.delegations
                    |> List.filter (fun v ->
                        match ws with
                        | Some w -> v.SourceId = w || v.TargetId = Some w
                        | None -> true)
                    |> List.truncate limit

                let name = Feed.nameIn (Store.team r)
                ok (Json.obj [ "delegations", Json.arr [ for v in views -> AdminViews.delegationJson name v :> JsonNode ] ])))

/// `connection_lines` of a create or mint answer: one snippet per MCP client (Connection.snippets).
let connectionLines (env: Env) (w: Workspace) (platformUrl: string) (token: string) : JsonNode =
    Connection.toJsonArray
        { Name = w.Name
          WorkspaceId = w.Id.Text
          PlatformUrl = platformUrl
          Token = token
          Binary = env.McpBinary }

/// GET /admin/memories?workspace_id=&scope=LOCAL|TEAM|GLOBAL&q= → {memories: [...]}: what that workspace would
/// recall in that scope (newest first, ≤ 50), with the raw content and the writer's name.
let memoriesView (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match workspaceQuery ctx "workspace_id" with
        | Error e -> e
        | Ok None -> bad "workspace_id is required"
        | Ok(Some id) ->
            let scopeText = query ctx "scope" |> Option.filter (fun s -> s.Trim() <> "")

            match scopeText |> Option.map MemoryScope.tryParse with
            | Some None -> bad Memories.badScope
            | scope ->
                match env.Store.Read(fun r -> r.Workspace id) with
                | None -> notFound
                | Some w ->
                    let q = query ctx "q" |> Option.filter (fun s -> s.Trim() <> "")
                    let found = MemoryRoutes.recallFor env w (Option.flatten scope) q None
                    let name = Feed.nameIn (env.Store.Read(fun r -> Store.team r))

                    found
                    |> List.map (fun m ->
                        Json.obj
                            [ "id", Wire.idNode m.Id
                              "workspace_id", Wire.idNode m.WorkspaceId
                              "workspace_name", Json.str (name m.WorkspaceId)
                              "scope", Json.str (MemoryScope.text m.Scope)
                              "namespace", Json.str m.Namespace
                              "content", Json.str m.Content
                              "created_at", Wire.timeNode m.CreatedAt ]
                        :> JsonNode)
                    |> fun ms -> ok (Json.obj [ "memories", Json.arr ms ]))
