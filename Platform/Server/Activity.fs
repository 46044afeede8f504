/// Activity routes: the workspace activity feed and self-reports.
module internal Molecule.Platform.Routes.ActivityRoutes

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

/// Base of `agent_card_url` (spec §2.3): X-Forwarded-Proto / X-Forwarded-Host when a proxy set them, else the
/// scheme and Host this request came in on.
let private publicBase (ctx: HttpContext) =
    let scheme = header ctx "X-Forwarded-Proto" |> Option.defaultValue ctx.Request.Scheme
    let host = header ctx "X-Forwarded-Host" |> Option.defaultValue ctx.Request.Host.Value
    $"{scheme}://{host}"

/// GET /workspaces/:id/activity (spec §2).
let listActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        match Activity.parseQuery (query ctx) with
        | Error e -> e
        | Ok q ->
            env.Store.Atomically(fun () ->
                let rows = env.Store.Activity w.Id

                match Activity.select (env.Now()) w.Id rows env.Store.ActivityRow q with
                | Error e -> e
                | Ok selected ->
                    let view =
                        if q.PeerInfo then
                            Views.activityWithPeer env.Store.Workspace (publicBase ctx)
                        else
                            Views.activity

                    ok (Json.arr [ for r in env.Store.Hydrate selected -> view r :> JsonNode ])))

let postActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        withJson ctx (fun body ->
            match Activity.report (newId ()) (env.Now()) w.Id body with
            | Error e -> e
            | Ok row ->
                env.Store.Atomically(fun () -> insertRow env row |> ignore)
                okStatus "logged"))

/// POST /workspaces/:id/activity/ack {"acked_seq": N} → {"last_acked_seq": GREATEST(stored, N)} (spec §3).
let ackActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strict env ctx (fun (id, ws) ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                match Inbox.parseAck text with
                | Error e -> return e
                | Ok acked ->
                    match ws with
                    // the reference's foreign key refuses an ack for a workspace row that does not exist
                    | None -> return Wire.errorReply 500 Inbox.ackFailed
                    | Some _ ->
                        try
                            return env.Store.Atomically(fun () -> Inbox.ackReply (env.Store.Ack(id, acked, env.Now())))
                        with :? Microsoft.Data.Sqlite.SqliteException ->
                            return Wire.errorReply 500 Inbox.ackFailed
        })

/// GET /workspaces/:id/mail/summary (spec §3.4).
let mailSummary (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        match Inbox.parseOverdue (query ctx "overdue_after_seconds") with
        | Error e -> e
        | Ok overdue -> env.Store.Atomically(fun () -> ok (Inbox.mailSummary (env.Store.AckFloor w.Id) overdue (env.Store.Activity w.Id))))
