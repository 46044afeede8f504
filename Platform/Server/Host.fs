/// The local Molecule platform: ASP.NET Core minimal API over the pure rules and the SQLite store.
module Molecule.Platform.Server

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
open Molecule.Platform.Routes.RegistryRoutes
open Molecule.Platform.Routes.ActivityRoutes
open Molecule.Platform.Routes.A2aRoutes
open Molecule.Platform.Routes.FileRoutes
open Molecule.Platform.Routes.MemoryRoutes
open Molecule.Platform.Routes.AdminRoutes
open Molecule.Platform.Routes.StreamRoutes

type PlatformOptions =
    { DataDir: string
      Host: string
      Port: int
      Clock: (unit -> DateTimeOffset) option
      SweepInterval: TimeSpan }

module PlatformOptions =
    /// 127.0.0.1, ephemeral port, system clock, sweep every 15 s.
    let defaults (dataDir: string) : PlatformOptions =
        { DataDir = dataDir
          Host = "127.0.0.1"
          Port = 0
          Clock = None
          SweepInterval = TimeSpan.FromSeconds 15.0 }

/// Request bodies are capped at 1 MiB (uploads: 25 MiB).
[<Literal>]
let MaxBody = Molecule.Platform.Routes.Http.MaxBody

[<Literal>]
let MaxUploadBody = Molecule.Platform.Routes.Http.MaxUploadBody

[<Literal>]
let MaxLiveTokens = Molecule.Platform.Routes.Http.MaxLiveTokens

let adminTokenFile = "admin_token"

// ---------------------------------------------------------------- host

/// A started platform.
type RunningPlatform
    internal
    (
        app: WebApplication,
        url: string,
        adminToken: string,
        faults: FaultInjector,
        hub: EventHub,
        store: Store.Store,
        stopping: CancellationTokenSource,
        sweeper: Task,
        background: ResizeArray<Task>,
        http: HttpClient,
        sweep: unit -> Guid list
    ) =
    let mutable stopped = false

    /// Base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
    member _.Url = url
    member _.AdminToken = adminToken
    member _.Faults = faults
    member _.Events = hub
    member _.DataDir = store.DataDir

    /// Runs one liveness sweep now with the platform clock; returns the ids that became awaiting_agent.
    member _.SweepNow() : Guid list = sweep ()

    /// Waits until every background delegation started so far has finished (tests).
    member _.IdleAsync() : Task =
        let pending = lock background (fun () -> background.ToArray())
        Task.WhenAll pending

    member _.StopAsync() : Task =
        task {
            if not stopped then
                stopped <- true
                stopping.Cancel()
                hub.CompleteAll()
                faults.Clear()

                try
                    do! app.StopAsync()
                with _ ->
                    ()

                try
                    do! sweeper
                with _ ->
                    ()

                let pending = lock background (fun () -> background.ToArray())

                try
                    do! Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds 5.0)
                with _ ->
                    ()

                do! app.DisposeAsync()
                http.Dispose()
                (store :> IDisposable).Dispose()
        }

    interface IAsyncDisposable with
        member this.DisposeAsync() = ValueTask(this.StopAsync())

/// Reads or creates `<dataDir>/admin_token` (mode 0600).
let loadAdminToken (dataDir: string) : string =
    Directory.CreateDirectory dataDir |> ignore
    let path = Path.Combine(dataDir, adminTokenFile)

    let existing =
        if File.Exists path then
            let t = File.ReadAllText(path).Trim()
            if t.Length >= 32 then Some t else None
        else
            None

    match existing with
    | Some t -> t
    | None ->
        let t = randomToken ()

        if OperatingSystem.IsWindows() then
            File.WriteAllText(path, t + "\n")
        else
            let opts =
                FileStreamOptions(
                    Mode = FileMode.Create,
                    Access = FileAccess.Write,
                    UnixCreateMode = Nullable(UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
                )

            use fs = new FileStream(path, opts)
            let bytes = Encoding.UTF8.GetBytes(t + "\n")
            fs.Write(bytes, 0, bytes.Length)
            fs.Flush true
            File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite)

        t

let private faultMiddleware (faults: FaultInjector) (stopping: CancellationToken) (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        let path = ctx.Request.Path.Value
        let m = ctx.Request.Method
        faults.Record(m, path)

        match (if path.StartsWith "/admin/" then None else faults.Take(m, path)) with
        | None -> do! next.Invoke ctx
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
                    let body = if rule.Body = "" then Json.error "injected fault" else rule.Body
                    do! ctx.Response.WriteAsync body
                else
                    do! next.Invoke ctx
            with :? OperationCanceledException ->
                ctx.Abort()
    }

let private errorMiddleware (ctx: HttpContext) (next: RequestDelegate) : Task =
    task {
        try
            ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
            do! next.Invoke ctx
        with
        | :? Microsoft.AspNetCore.Http.BadHttpRequestException as e when not ctx.Response.HasStarted ->
            do! send ctx (Json.errorReply e.StatusCode "bad request")
        | :? OperationCanceledException -> ()
        | e when not ctx.Response.HasStarted ->
            eprintfn "[platform] %s %s failed: %s" ctx.Request.Method ctx.Request.Path.Value (e.ToString())
            do! send ctx (Json.errorReply 500 "internal error")
        | e -> eprintfn "[platform] %s %s failed after the answer started: %s" ctx.Request.Method ctx.Request.Path.Value e.Message
    }

/// One liveness sweep with the platform clock; publishes WORKSPACE_AWAITING_AGENT; returns the changed ids.
let private sweepOnce (env: Env) : Guid list =
    env.Store.Atomically(fun () ->
        let now = env.Now()

        [ for w in env.Store.Workspaces |> Map.toList |> List.map snd do
              match Liveness.sweep now w with
              | Some updated ->
                  env.Store.SaveWorkspace updated
                  publish env "WORKSPACE_AWAITING_AGENT" (Some w.Id) [ "status", Json.str updated.Status ]
                  yield w.Id
              | None -> () ])

let private sweepLoop (env: Env) (interval: TimeSpan) : Task =
    task {
        try
            while not env.Stopping.IsCancellationRequested do
                do! Task.Delay(interval, env.Stopping)

                try
                    sweepOnce env |> ignore
                with e ->
                    eprintfn "[platform] liveness sweep failed: %s" e.Message
        with :? OperationCanceledException ->
            ()
    }

let private quietly (f: unit -> unit) =
    try
        f ()
    with _ ->
        ()

/// Starts the platform; `configure` may add endpoints (e.g. the canvas page at `/`) before it starts listening.
let startWith (configure: WebApplication -> unit) (options: PlatformOptions) : Task<RunningPlatform> =
    task {
        let dataDir = Path.GetFullPath options.DataDir
        let admin = loadAdminToken dataDir
        let store = new Store.Store(dataDir)
        let faults = FaultInjector()
        let hub = EventHub()
        let stopping = new CancellationTokenSource()
        let background = ResizeArray<Task>()
        let http = new HttpClient(Timeout = Timeout.InfiniteTimeSpan)

        let env =
            { Store = store
              Now = defaultArg options.Clock (fun () -> DateTimeOffset.UtcNow)
              Admin = admin
              Faults = faults
              Events = hub
              Http = http
              Stopping = stopping.Token
              Background = background }

        let builder =
            WebApplication.CreateSlimBuilder(WebApplicationOptions(ApplicationName = "Molecule.Platform", ContentRootPath = dataDir))

        builder.Logging.ClearProviders() |> ignore

        builder.Services.Configure<HostOptions>(fun (o: HostOptions) -> o.ShutdownTimeout <- TimeSpan.FromSeconds 3.0)
        |> ignore

        builder.WebHost.ConfigureKestrel(fun (k: KestrelServerOptions) ->
            k.Limits.MaxRequestBodySize <- Nullable MaxBody
            k.AddServerHeader <- false

            match IPAddress.TryParse options.Host with
            | true, ip -> k.Listen(ip, options.Port)
            | _ when options.Host = "localhost" -> k.ListenLocalhost(options.Port)
            | _ -> k.ListenAnyIP(options.Port))
        |> ignore

        let app = builder.Build()
        app.Use(Func<HttpContext, RequestDelegate, Task>(errorMiddleware)) |> ignore
        app.Use(Func<HttpContext, RequestDelegate, Task>(fun ctx next -> faultMiddleware faults stopping.Token ctx next)) |> ignore

        let get (p: string) (h: RequestDelegate) = app.MapGet(p, h) |> ignore
        let post (p: string) (h: RequestDelegate) = app.MapPost(p, h) |> ignore
        let del (p: string) (h: RequestDelegate) = app.MapDelete(p, h) |> ignore

        get "/health" (handle (fun _ -> Task.FromResult(okStatus "ok")))
        post "/registry/register" (handle (register env))
        post "/registry/heartbeat" (handle (heartbeat env))
        get "/registry/discover/{id}" (handle (discover env))
        get "/registry/{id}/peers" (handle (peers env))
        get "/workspaces/{id}" (handle (getWorkspace env))
        get "/workspaces/{id}/activity" (handle (listActivity env))
        post "/workspaces/{id}/activity" (handle (postActivity env))
        post "/workspaces/{id}/a2a" (handle (a2a env))
        post "/workspaces/{id}/delegate" (handle (delegateTask env))
        get "/workspaces/{id}/delegations" (handle (delegations env))
        post "/workspaces/{id}/notify" (handle (notify env))
        post "/workspaces/{id}/chat/uploads" (handle (upload env))
        get "/workspaces/{id}/chat/uploads/{file}" (RequestDelegate(download env))
        post "/workspaces/{id}/memories" (handle (commitMemory env))
        get "/workspaces/{id}/memories" (handle (recallMemory env))
        post "/workspaces" (handle (createWorkspace env))
        get "/workspaces" (handle (listWorkspaces env))
        del "/workspaces/{id}" (handle (deleteWorkspace env))
        post "/workspaces/{id}/tokens" (handle (mintToken env))
        get "/workspaces/{id}/tokens" (handle (listTokens env))
        del "/workspaces/{id}/tokens/{tokenId}" (handle (revokeToken env))
        post "/admin/faults" (handle (addFault env))
        del "/admin/faults" (handle (clearFaults env))
        get "/admin/requests" (handle (requestCount env))

        post
            "/admin/sweep"
            (handle (fun ctx ->
                adminHandler env ctx (fun () ->
                    let changed = sweepOnce env
                    ok (Json.obj [ "changed", Json.arr (changed |> List.map Json.guidNode) ]))))

        get "/events" (RequestDelegate(events env))
        app.MapFallback(RequestDelegate(fun ctx -> send ctx (Json.errorReply 404 "not found"))) |> ignore
        configure app

        try
            do! app.StartAsync()
        with e ->
            stopping.Cancel()
            quietly (fun () -> (app :> IDisposable).Dispose())
            http.Dispose()
            (store :> IDisposable).Dispose()
            raise (InvalidOperationException($"the platform could not listen on {options.Host}:{options.Port}: {e.Message}", e))

        let addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()

        let url =
            addresses.Addresses
            |> Seq.tryHead
            |> Option.defaultValue $"http://{options.Host}:{options.Port}"
            |> fun u -> u.TrimEnd('/')

        let sweeper = sweepLoop env options.SweepInterval
        return new RunningPlatform(app, url, admin, faults, hub, store, stopping, sweeper, background, http, (fun () -> sweepOnce env))
    }

/// Starts the platform (see PlatformOptions.defaults).
let start (options: PlatformOptions) : Task<RunningPlatform> = startWith ignore options

/// Convenience for hosts (C#): start with the system clock and the default sweep interval.
let startAt (dataDir: string) (host: string) (port: int) : Task<RunningPlatform> =
    start
        { PlatformOptions.defaults dataDir with
            Host = host
            Port = port }
