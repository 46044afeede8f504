/// Server-sent event streams: the admin canvas stream (GET /events) and a workspace's doorbell stream
/// (GET /workspaces/:id/events/stream).
module internal Molecule.Platform.Routes.StreamRoutes

open System
open System.IO
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
module Json = Molecule.Protocol.Json

/// POST /admin/stream-ticket → {ticket, expires_in_seconds}: a one-time ticket for GET /events?ticket=… (EventSource
/// cannot send the bearer, and the admin token must not travel in a URL). Kept in the store: valid on any platform
/// process sharing it.
let streamTicket (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        let ticket = randomToken ()
        env.Store.Write(fun w -> w.IssueTicket(Tickets.issue (env.Now()) ticket))
        ok (Json.obj [ "ticket", Json.str ticket; "expires_in_seconds", Json.num (int Tickets.lifetime.TotalSeconds) ]))

let private startStream (ctx: HttpContext) =
    ctx.Response.StatusCode <- 200
    ctx.Response.ContentType <- "text/event-stream"
    ctx.Response.Headers["Cache-Control"] <- "no-cache"

/// Writes frames until the client goes, the platform stops, `cut` fires or the channel completes; `idle` (when
/// given) writes a keep-alive comment after that long without an event.
let private pump (linked: CancellationTokenSource) (ctx: HttpContext) (ch: Channel<PlatformEvent>) (first: string) (frame: PlatformEvent -> string) (idle: TimeSpan option) : Task =
    task {
        try
            do! ctx.Response.WriteAsync(first, linked.Token)
            do! ctx.Response.Body.FlushAsync(linked.Token)
            let mutable go = true

            while go do
                let wait = ch.Reader.WaitToReadAsync(linked.Token).AsTask()

                let! woke =
                    match idle with
                    | Some d -> Task.WhenAny(wait, Task.Delay(d, linked.Token))
                    | None -> Task.FromResult(wait :> Task)

                if Object.ReferenceEquals(woke, wait) then
                    let! more = wait

                    if not more then
                        go <- false
                    else
                        let mutable e = Unchecked.defaultof<PlatformEvent>

                        while ch.Reader.TryRead(&e) do
                            do! ctx.Response.WriteAsync(frame e, linked.Token)

                        do! ctx.Response.Body.FlushAsync(linked.Token)
                else
                    do! ctx.Response.WriteAsync(": keepalive\n\n", linked.Token)
                    do! ctx.Response.Body.FlushAsync(linked.Token)
        with
        | :? OperationCanceledException -> ()
        | :? IOException -> ()
    }

/// Server-sent events: every platform event as `event: <TYPE>` + `data: <json>`. The admin bearer, or a one-time
/// `?ticket=` from POST /admin/stream-ticket; the admin token itself is never accepted in the URL.
let events (env: Env) (ctx: HttpContext) : Task =
    task {
        let allowed =
            match bearer ctx, query ctx "ticket" with
            | Some t, _ -> if isAdmin env t then Ok() else Error "invalid admin token"
            | None, Some ticket ->
                if env.Store.Write(fun w -> w.RedeemTicket(Tokens.hash ticket, env.Now())) then Ok()
                else Error "invalid or used stream ticket"
            | None, None -> Error "missing admin token"

        match allowed with
        | Error message -> do! send ctx (Wire.errorReply 401 message)
        | Ok() ->
            startStream ctx
            use _open = env.Metrics.Open Metrics.Stream.Canvas
            let ch = env.Events.Subscribe()
            use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, env.Stopping)

            try
                do! pump linked ctx ch ": connected\n\n" (fun e -> $"event: {e.Type}\ndata: {PlatformEvent.toJson e}\n\n") (Some(TimeSpan.FromSeconds 15.0))
            finally
                env.Events.Unsubscribe ch
    }

/// GET /workspaces/:id/events/stream (spec §1.1): WorkspaceAuth once at connect (a later revocation does not close
/// the stream); one `: ping` comment, then per event anchored on :id one `data: <envelope>` line and a blank line;
/// no event/id lines, no keep-alive, no replay; a full 64-event buffer drops events silently. A token holds at most
/// `Limits.Streams` open.
let workspaceStream (env: Env) (ctx: HttpContext) : Task =
    task {
        match strictExisting env ctx |> Result.bind (fun w -> Limits.openStream env ctx |> Result.map (fun grant -> w, grant)) with
        | Error e -> do! send ctx e
        | Ok(w, grant) ->
            use _grant = grant
            // subscribed before the ping: whatever a client fetches after seeing it is either in that fetch or rings
            let ch = env.Events.SubscribeWorkspace w.Id
            use _open = env.Metrics.Open(Metrics.Stream.Workspace w.Id)
            startStream ctx
            ctx.Response.Headers["Connection"] <- "keep-alive"
            ctx.Response.Headers["X-Accel-Buffering"] <- "no"
            use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, env.Stopping)

            use _registration =
                env.Faults.OpenStream(
                    ctx.Request.Path.Value,
                    fun () ->
                        ctx.Abort()
                        linked.Cancel()
                )

            try
                do! pump linked ctx ch ": ping\n\n" (fun e -> $"data: {PlatformEvent.toEnvelope e}\n\n") None
            finally
                env.Events.Unsubscribe ch
    }
