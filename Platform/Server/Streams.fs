/// Server-sent event streams: the admin canvas stream (GET /events) and a workspace's doorbell stream
/// (GET /workspaces/:id/events/stream).
module internal Molecule.Platform.Routes.StreamRoutes

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

/// POST /admin/stream-ticket → {ticket, expires_in_seconds}: a one-time ticket for GET /events?ticket=… (EventSource
/// cannot send the bearer, and the admin token must not travel in a URL).
let streamTicket (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        let ticket = randomToken ()
        env.Tickets.Issue(env.Now(), ticket)
        ok (Json.obj [ "ticket", Json.str ticket; "expires_in_seconds", Json.num (int Tickets.lifetime.TotalSeconds) ]))

/// Server-sent events: every platform event as `event: <TYPE>` + `data: <json>`. The admin bearer, or a one-time
/// `?ticket=` from POST /admin/stream-ticket; the admin token itself is never accepted in the URL.
let events (env: Env) (ctx: HttpContext) : Task =
    task {
        let allowed =
            match bearer ctx, query ctx "ticket" with
            | Some t, _ -> if isAdmin env t then Ok() else Error "invalid admin token"
            | None, Some ticket -> if env.Tickets.Redeem(env.Now(), ticket) then Ok() else Error "invalid or used stream ticket"
            | None, None -> Error "missing admin token"

        match allowed with
        | Ok() ->
            ctx.Response.StatusCode <- 200
            ctx.Response.ContentType <- "text/event-stream"
            ctx.Response.Headers["Cache-Control"] <- "no-cache"
            let ch = env.Events.Subscribe()
            use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, env.Stopping)

            try
                try
                    do! ctx.Response.WriteAsync(": connected\n\n", linked.Token)
                    do! ctx.Response.Body.FlushAsync(linked.Token)
                    let mutable go = true

                    while go do
                        let wait = ch.Reader.WaitToReadAsync(linked.Token).AsTask()
                        let! first = Task.WhenAny(wait, Task.Delay(TimeSpan.FromSeconds 15.0, linked.Token))

                        if Object.ReferenceEquals(first, wait) then
                            let! more = wait

                            if not more then
                                go <- false
                            else
                                let mutable e = Unchecked.defaultof<PlatformEvent>

                                while ch.Reader.TryRead(&e) do
                                    do! ctx.Response.WriteAsync($"event: {e.Type}\ndata: {PlatformEvent.toJson e}\n\n", linked.Token)

                                do! ctx.Response.Body.FlushAsync(linked.Token)
                        else
                            do! ctx.Response.WriteAsync(": keepalive\n\n", linked.Token)
                            do! ctx.Response.Body.FlushAsync(linked.Token)
                with
                | :? OperationCanceledException -> ()
                | :? IOException -> ()
            finally
                env.Events.Unsubscribe ch
        | Error message -> do! send ctx (Wire.errorReply 401 message)
    }

/// Writes the SSE frames of `ch` until the client goes, the platform stops, the stream is cut (fault injection)
/// or the channel completes.
let private pump (env: Env) (ctx: HttpContext) (ch: Channels.Channel<PlatformEvent>) (first: string) (frame: PlatformEvent -> string) : Task =
    task {
        use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, env.Stopping)

        use _registration =
            env.Faults.OpenStream(
                ctx.Request.Path.Value,
                fun () ->
                    ctx.Abort()
                    linked.Cancel()
            )

        try
            try
                do! ctx.Response.WriteAsync(first, linked.Token)
                do! ctx.Response.Body.FlushAsync(linked.Token)
                let mutable go = true

                while go do
                    let! more = ch.Reader.WaitToReadAsync(linked.Token)

                    if not more then
                        go <- false
                    else
                        let mutable e = Unchecked.defaultof<PlatformEvent>

                        while ch.Reader.TryRead(&e) do
                            do! ctx.Response.WriteAsync(frame e, linked.Token)

                        do! ctx.Response.Body.FlushAsync(linked.Token)
            with
            | :? OperationCanceledException -> ()
            | :? IOException -> ()
        finally
            env.Events.Unsubscribe ch
    }

/// GET /workspaces/:id/events/stream (spec §1.1): WorkspaceAuth once at connect (a later revocation does not close
/// the stream); one `: ping` comment, then per event anchored on :id one `data: <envelope>` line and a blank line;
/// no event/id lines, no keep-alive, no replay; a full 64-event buffer drops events silently.
let workspaceStream (env: Env) (ctx: HttpContext) : Task =
    task {
        match strictExisting env ctx with
        | Error e -> do! send ctx e
        | Ok w ->
            // subscribed before the ping: whatever a client fetches after seeing it is either in that fetch or rings
            let ch = env.Events.SubscribeWorkspace w.Id
            ctx.Response.StatusCode <- 200
            ctx.Response.ContentType <- "text/event-stream"
            ctx.Response.Headers["Cache-Control"] <- "no-cache"
            ctx.Response.Headers["Connection"] <- "keep-alive"
            ctx.Response.Headers["X-Accel-Buffering"] <- "no"
            do! pump env ctx ch ": ping\n\n" (fun e -> $"data: {PlatformEvent.toEnvelope e}\n\n")
    }
