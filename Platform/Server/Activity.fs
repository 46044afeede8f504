/// Activity routes: the workspace's log (spec §2), self-reports, the ack floor (§3) and the mail summary (§3.4).
module internal Molecule.Platform.Routes.ActivityRoutes

open System.Data.Common
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
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
            env.Store.Read(fun r ->
                match r.Page(w.Id, q, env.Now()) with
                | Error e -> e
                | Ok rows ->
                    let view = if q.PeerInfo then Views.activityWithPeer r.Workspace (publicBase ctx) else Views.activity
                    ok (Json.arr [ for row in rows -> view row :> JsonNode ])))

/// POST /workspaces/:id/activity: a self-report (rings ACTIVITY_LOGGED).
let postActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        withJson ctx (fun body ->
            match Activity.report (newActivityId ()) (env.Now()) w.Id body with
            | Error e -> e
            | Ok row ->
                env.Store.Write(fun tx -> insertRow env tx row |> ignore)
                okStatus "logged"))

/// Records an ack in this transaction; the inbox rows it newly covers count as delivered once it commits.
let private ack (env: Env) (w: IWriter) (id: WorkspaceId) (acked: int64) : int64 =
    let before = w.AckFloor id
    let now = env.Now()
    let floor = w.Ack(id, acked, now)

    if Some floor <> before then
        let covered = w.Rows { RowQuery.logOf id with Types = [ "a2a_receive" ]; AfterSeq = before }
        let lags = Operations.delivered before floor now covered
        w.AfterCommit(fun () -> env.Metrics.Delivered lags)

    floor

/// POST /workspaces/:id/activity/ack {"acked_seq": N} → {"last_acked_seq": GREATEST(stored, N)} (spec §3).
let ackActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strict env ctx (fun (id, ws) ->
        task {
            match! readBody ctx with
            | Error e -> return e
            | Ok text ->
                match Inbox.parseAck text, ws with
                | Error e, _ -> return e
                // the reference's foreign key refuses an ack for a workspace row that does not exist
                | Ok _, None -> return Wire.errorReply 500 Inbox.ackFailed
                | Ok acked, Some _ ->
                    try
                        return env.Store.Write(fun w -> Inbox.ackReply (ack env w id acked))
                    with :? DbException ->
                        return Wire.errorReply 500 Inbox.ackFailed
        })

/// GET /workspaces/:id/mail/summary (spec §3.4).
let mailSummary (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        match Inbox.parseOverdue (query ctx "overdue_after_seconds") with
        | Error e -> e
        | Ok overdue ->
            env.Store.Read(fun r ->
                let floor = r.AckFloor w.Id

                let unread =
                    match floor with
                    | Some f -> r.Rows { RowQuery.logOf w.Id with Types = [ "a2a_receive" ]; AfterSeq = Some f }
                    | None -> []

                ok (Inbox.mailSummary floor overdue unread)))
