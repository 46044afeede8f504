/// Server-sent event streams.
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

/// Server-sent events: every platform event as `event: <TYPE>` + `data: <json>`. Admin token as bearer or
/// `?token=` (EventSource cannot set headers).
let events (env: Env) (ctx: HttpContext) : Task =
    task {
        let presented = bearer ctx |> Option.orElse (query ctx "token")

        match presented with
        | Some t when isAdmin env t ->
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
        | Some _ -> do! send ctx (Json.errorReply 401 "invalid admin token")
        | None -> do! send ctx (Json.errorReply 401 "missing admin token")
    }
