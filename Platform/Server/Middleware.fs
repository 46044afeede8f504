/// Request pipeline pieces (the doors, fault injection, error answers) and the periodic background passes.
module internal Molecule.Platform.Routes.Middleware

open System
open System.Data.Common
open System.IO
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http

let faultMiddleware (faults: FaultInjector) (stopping: CancellationToken) (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        let path = ctx.Request.Path.Value
        let m = ctx.Request.Method
        faults.Record(m, path)

        match (if path.StartsWith "/admin/" then None else faults.Take(m, path)) with
        | None -> do! faults.Invoke(ctx, next)
        | Some rule ->
            use linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping)

            try
                if rule.DelayMs > 0 then
                    do! Task.Delay(rule.DelayMs, linked.Token)

                if rule.Hang then
                    do! Task.Delay(Timeout.Infinite, linked.Token)

                if rule.Drop then
                    ctx.Abort()
                elif rule.Status > 0 then
                    ctx.Response.StatusCode <- rule.Status
                    ctx.Response.ContentType <- "application/json; charset=utf-8"
                    let body = if rule.Body = "" then Wire.error "injected fault" else rule.Body
                    do! ctx.Response.WriteAsync body
                else
                    do! faults.Invoke(ctx, next)
            with :? OperationCanceledException ->
                ctx.Abort()
    }

let private uploadPath = Regex("^/workspaces/[^/]+/chat/uploads/?$", RegexOptions.Compiled)

/// POST /workspaces/:id/chat/uploads: the one state-changing route whose body is not JSON (multipart).
let isUpload (ctx: HttpContext) =
    HttpMethods.IsPost ctx.Request.Method && uploadPath.IsMatch(ctx.Request.Path.Value)

/// The doors: a foreign Host (DNS rebinding), a state change with a foreign Origin, a JSON route with another
/// content type are refused (Guard.check); a declared body over the route's limit gets the 413 answer at once
/// (Kestrel then reads and drops the rest, up to DrainLimit, so the sender sees the answer).
let guardMiddleware (names: Guard.Names) (log: string -> unit) (ctx: HttpContext) (next: RequestDelegate) : Task =
    let req = ctx.Request

    let h (name: string) =
        match req.Headers.TryGetValue name with
        | true, v when v.Count > 0 && not (String.IsNullOrEmpty(string v[0])) -> Some(string v[0])
        | _ -> None

    let facts: Guard.Request =
        { Method = req.Method
          Host = h "Host"
          Origin = h "Origin"
          ContentType = h "Content-Type"
          HasBody = (req.ContentLength.HasValue && req.ContentLength.Value > 0L) || (h "Transfer-Encoding").IsSome
          JsonRoute = not (isUpload ctx) }

    match Guard.check names facts with
    | Some refused ->
        log (Feed.printable $"refused {req.Method} {req.Path.Value} from {remoteIp ctx}: {Wire.errorText refused}")
        send ctx refused
    | None ->
        let limit, text = if isUpload ctx then MaxUploadBody, uploadTooLarge else MaxBody, tooLarge

        if req.ContentLength.HasValue && req.ContentLength.Value > limit then
            send ctx (Wire.errorReply 413 text)
        else
            next.Invoke ctx

/// The answer to a request the store turned away (Store.Busy).
let busy = "the platform is busy: try again in a second"

/// The pipeline's boundary: a bad request is a 400, a store at its capacity a 503 with Retry-After, a client gone is
/// nothing, and any other failure of a handler is logged and answered 500 (the one place every exception is caught; no
/// handler catches what it did not expect).
let errorMiddleware (log: string -> unit) (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        try
            ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
            do! next.Invoke ctx
        with
        | :? BadHttpRequestException as e when not ctx.Response.HasStarted -> do! send ctx (Wire.errorReply e.StatusCode "bad request")
        | :? OperationCanceledException -> ()
        | Store.Busy when not ctx.Response.HasStarted ->
            ctx.Response.Headers.RetryAfter <- "1"
            do! send ctx (Wire.errorReply 503 busy)
        | failure when not ctx.Response.HasStarted ->
            log (Feed.printable $"{ctx.Request.Method} {ctx.Request.Path.Value} failed: " + failure.ToString())
            do! send ctx (Wire.errorReply 500 "internal error")
        | failure -> log (Feed.printable $"{ctx.Request.Method} {ctx.Request.Path.Value} failed after the answer started: {failure.Message}")
    }

/// Runs `pass` every `interval` (the first run one interval after start) until the platform stops. A pass that fails
/// on the store (a database error, the store closing: ObjectDisposedException is an InvalidOperationException) is logged and the loop goes on.
let every (env: Env) (interval: TimeSpan) (name: string) (pass: unit -> unit) : Task =
    task {
        try
            while not env.Stopping.IsCancellationRequested do
                do! Task.Delay(interval, env.Stopping)

                try
                    pass ()
                with
                | :? DbException
                | :? IOException
                | :? InvalidOperationException as e -> env.Log $"{name} failed: {e.Message}"
                | Store.Busy -> env.Log $"{name} waits for its next turn: the store is busy"
        with :? OperationCanceledException ->
            ()
    }
