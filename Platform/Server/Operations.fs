/// The operators' routes: GET /health (the process answers), GET /ready (the database answers at this binary's
/// schema version) — both open, tiny JSON — and GET /metrics (the Prometheus text format, the admin token only);
/// and the pipeline step that counts every request by route template and status.
module internal Molecule.Platform.Routes.OperationsRoutes

open System.Data.Common
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Molecule.Platform
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates

/// GET /health.
let health (env: Env) (_: HttpContext) : Task<Reply> = Task.FromResult(Operations.health env.Instance)

/// The database's schema version now, or why it did not answer.
let private probe (env: Env) : Result<int, string> =
    try
        Ok(env.Store.Read(fun r -> r.StoredSchemaVersion()))
    with
    | :? DbException as e -> Error e.Message
    | :? System.InvalidOperationException as e -> Error e.Message // the store closed, a broken connection

/// GET /ready: 200 when the database answers at this binary's schema version, else 503 with the reason.
let ready (env: Env) (_: HttpContext) : Task<Reply> =
    Task.FromResult(Operations.ready env.Instance env.Store.Engine (Operations.readiness (probe env) Schema.latest))

/// The team's workspaces by status, every status named (a status without workspaces is 0).
let private byStatus (env: Env) : (string * int) list =
    let counts = env.Store.Read(fun r -> r.Workspaces()) |> List.countBy (fun w -> w.Status) |> Map.ofList
    [ for s in Status.all -> Status.text s, Map.tryFind s counts |> Option.defaultValue 0 ]

/// GET /metrics (admin token): this instance's metrics in the Prometheus text format.
let metrics (env: Env) (ctx: HttpContext) : Task =
    match adminGate env ctx with
    | Error e -> send ctx e
    | Ok() ->
        let scrape: Metrics.Scrape =
            { Instance = env.Instance
              Engine = env.Store.Engine
              SchemaVersion = env.Store.SchemaVersion
              WorkspacesByStatus = byStatus env }

        ctx.Response.StatusCode <- 200
        ctx.Response.ContentType <- Exposition.ContentType
        ctx.Response.Headers["Cache-Control"] <- "no-store"
        ctx.Response.WriteAsync(Exposition.render (env.Metrics.Families scrape))

/// The pipeline's first step: each answered request counted by the route template it matched (not its path), its
/// method and status.
let countRequests (env: Env) (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        try
            do! next.Invoke ctx
        finally
            let pattern =
                match ctx.GetEndpoint() with
                | :? RouteEndpoint as e -> Some e.RoutePattern.RawText
                | _ -> None

            env.Metrics.Request(Operations.routeLabel pattern, Operations.methodLabel ctx.Request.Method, ctx.Response.StatusCode)
    }
