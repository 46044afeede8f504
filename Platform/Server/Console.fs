/// Console routes (admin): the workspace overview, workspace edits, the labelled feed and the delegations view —
/// what the canvas console and the CLI read and change through the same admin API.
module internal Molecule.Platform.Routes.ConsoleRoutes

open System
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Http
module Json = Molecule.Protocol.Json

/// GET /admin/workspaces: every workspace with last seen, silence, live tokens and delivery state.
let overviewList (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Store.Atomically(fun () ->
            let now = env.Now()

            env.Store.Workspaces
            |> Map.toList
            |> List.map snd
            |> List.sortBy (fun w -> w.CreatedAt, w.Id)
            |> List.map (fun w ->
                let live = env.Store.TokensOf w.Id |> List.filter Tokens.isLive |> List.length
                let d = AdminViews.delivery (env.Store.AckFloor w.Id) (env.Store.Activity w.Id)
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
                    env.Store.Transaction(fun () ->
                        match env.Store.Workspace id with
                        | None -> notFound
                        | Some w when w.Status = Status.Removed -> Views.removed w
                        | Some w ->
                            let updated = AdminViews.applyEdit (env.Now()) edit w
                            env.Store.SaveWorkspace updated
                            publish env "WORKSPACE_UPDATED" (Some id) [ "workspace", Views.workspace updated ]
                            ok (Views.workspace updated)))))

let private guidQuery (ctx: HttpContext) (name: string) : Result<Guid option, Reply> =
    match query ctx name |> Option.filter (fun s -> s.Trim() <> "") with
    | None -> Ok None
    | Some s ->
        match parseGuid s with
        | Some g -> Ok(Some g)
        | None -> Error(bad $"{name} must be a workspace UUID")

let private limitQuery (ctx: HttpContext) (fallback: int) (most: int) =
    match query ctx "limit" |> Option.map Int32.TryParse with
    | Some(true, n) when n > 0 -> min n most
    | _ -> fallback

/// Rows of every workspace (removed ones too), oldest first.
let private allRows (env: Env) (keep: ActivityRow -> bool) : ActivityRow list =
    env.Store.Workspaces
    |> Map.toList
    |> List.collect (fun (id, _) -> env.Store.Activity id |> Seq.filter keep |> List.ofSeq)
    |> List.sortBy Activity.orderKey

/// How many of the newest rows the feed reads (with their bodies) per request.
[<Literal>]
let FeedWindow = 2000

/// GET /admin/feed?workspace_id=&kind=&q=&limit= → {entries: [...]}, newest first, one entry per event.
let feedView (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match guidQuery ctx "workspace_id" with
        | Error e -> e
        | Ok ws ->
            let kind = query ctx "kind" |> Option.filter (fun k -> k <> "")

            match kind with
            | Some k when not (List.contains k Feed.kinds) ->
                bad ("kind must be one of: " + String.Join(", ", Feed.kinds))
            | _ ->
                let filter: Feed.Filter = { Workspace = ws; Kind = kind; Text = query ctx "q" }
                let limit = limitQuery ctx 100 500

                env.Store.Atomically(fun () ->
                    let related (r: ActivityRow) =
                        match ws with
                        | Some w -> r.WorkspaceId = w || r.SourceId = Some w || r.TargetId = Some w
                        | None -> true

                    let rows = allRows env related
                    let window = rows |> List.skip (max 0 (rows.Length - FeedWindow))
                    let name = names env

                    env.Store.Hydrate window
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
        match guidQuery ctx "workspace_id" with
        | Error e -> e
        | Ok ws ->
            let limit = limitQuery ctx 200 1000

            env.Store.Atomically(fun () ->
                let relevant (r: ActivityRow) =
                    r.ActivityType = "delegation" || (r.SourceId = Some r.WorkspaceId && (r.ActivityType = "a2a_send" || r.ActivityType = "a2a_receive"))

                let views =
                    AdminViews.delegations (env.Store.Hydrate(allRows env relevant))
                    |> List.filter (fun v ->
                        match ws with
                        | Some w -> v.SourceId = w || v.TargetId = Some w
                        | None -> true)
                    |> List.truncate limit

                ok (Json.obj [ "delegations", Json.arr [ for v in views -> AdminViews.delegationJson (names env) v :> JsonNode ] ])))

/// The platform URL for connection lines: `platform_url` of the request body (the canvas sends the address it was
/// opened at, e.g. behind a proxy), else the scheme and Host of this request.
let platformUrlOf (ctx: HttpContext) (body: JsonObject option) : Result<string, Reply> =
    match body |> Option.bind (Json.prop "platform_url") |> Option.bind Json.asString |> Option.filter (fun s -> s.Trim() <> "") with
    | None -> Ok(baseUrl ctx)
    | Some u ->
        match Uri.TryCreate(u.Trim().TrimEnd('/'), UriKind.Absolute) with
        | true, uri when (uri.Scheme = "http" || uri.Scheme = "https") && uri.AbsolutePath = "/" && uri.Query = "" && uri.UserInfo = "" ->
            Ok(u.Trim().TrimEnd('/'))
        | _ -> Error(bad "platform_url must be an http(s) URL without a path")

/// `connection_lines` of a create or mint answer: one snippet per MCP client (Connection.snippets).
let connectionLines (env: Env) (w: Workspace) (platformUrl: string) (token: string) : JsonNode =
    Connection.toJsonArray
        { Name = w.Name
          WorkspaceId = Wire.guid w.Id
          PlatformUrl = platformUrl
          Token = token
          Binary = env.McpBinary }

/// GET /admin/memories?workspace_id=&scope=LOCAL|TEAM|GLOBAL&q= → {memories: [...]}: what that workspace would
/// recall in that scope (newest first, ≤ 50), with the raw content and the writer's name.
let memoriesView (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match guidQuery ctx "workspace_id" with
        | Error e -> e
        | Ok None -> bad "workspace_id is required"
        | Ok(Some id) ->
            let scope = query ctx "scope" |> Option.map (fun s -> s.Trim().ToUpperInvariant()) |> Option.filter (fun s -> s <> "")

            match scope with
            | Some s when not (List.contains s [ "LOCAL"; "TEAM"; "GLOBAL" ]) -> bad "scope must be LOCAL, TEAM or GLOBAL"
            | _ ->
                env.Store.Atomically(fun () ->
                    match env.Store.Workspace id with
                    | None -> notFound
                    | Some w ->
                        let q = query ctx "q" |> Option.filter (fun s -> s.Trim() <> "")
                        let name = names env

                        Memories.recall env.Store.Workspaces w scope q None env.Store.Memories
                        |> List.map (fun m ->
                            Json.obj
                                [ "id", Wire.guidNode m.Id
                                  "workspace_id", Wire.guidNode m.WorkspaceId
                                  "workspace_name", Json.str (name m.WorkspaceId)
                                  "scope", Json.str m.Scope
                                  "namespace", Json.str m.Namespace
                                  "content", Json.str m.Content
                                  "created_at", Wire.timeNode m.CreatedAt ]
                            :> JsonNode)
                        |> fun ms -> ok (Json.obj [ "memories", Json.arr ms ])))
