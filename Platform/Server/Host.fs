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
open Molecule.Platform.Routes.Limits
open Molecule.Platform.Routes.RegistryRoutes
open Molecule.Platform.Routes.ActivityRoutes
open Molecule.Platform.Routes.A2aRoutes
open Molecule.Platform.Routes.FileRoutes
open Molecule.Platform.Routes.MemoryRoutes
open Molecule.Platform.Routes.AdminRoutes
open Molecule.Platform.Routes.StreamRoutes
open Molecule.Platform.Routes.ConsoleRoutes
open Molecule.Platform.Routes.Middleware
open Molecule.Platform.Routes

type PlatformOptions =
    { DataDir: string
      Host: string
      Port: int
      Clock: (unit -> DateTimeOffset) option
      SweepInterval: TimeSpan
      /// Serve POST/DELETE /admin/faults, POST /admin/faults/cut-streams and GET /admin/requests (tests); when false
      /// those routes answer 404. The in-process `RunningPlatform.Faults` works either way.
      EnableFaults: bool
      /// Acked activity rows older than this many days are pruned (default 7; non-positive → 7).
      RetentionSoftDays: int
      /// Every activity row older than this many days is pruned (default 30; never below the soft days).
      RetentionHardDays: int
      /// How often the retention pass runs; the first run is one interval after start (default 6 h).
      RetentionInterval: TimeSpan
      /// Let unknown workspace ids register and get a token (the reference's behaviour; default false: 401).
      OpenRegistration: bool
      /// Extra names the platform answers to (`Host`, and `Origin` on any scheme/port), e.g. a reverse proxy's.
      AllowedHosts: string list
      /// Per-token limits of registration, A2A sends and notify (RateLimit.Limits.defaults).
      RateLimits: RateLimit.Limits
      /// The platform log: start warnings, refused requests and registrations, events with names (default: none).
      Log: (string -> unit) option
      /// The molecule-mcp command printed in connection lines (default `molecule-mcp`).
      McpBinary: string }

module PlatformOptions =
    /// 127.0.0.1, ephemeral port, system clock, liveness sweep every 15 s, no fault routes, retention 7 / 30 days
    /// every 6 h.
    let defaults (dataDir: string) : PlatformOptions =
        { DataDir = dataDir
          Host = "127.0.0.1"
          Port = 0
          Clock = None
          SweepInterval = TimeSpan.FromSeconds 15.0
          EnableFaults = false
          RetentionSoftDays = Inbox.Retention.defaults.SoftDays
          RetentionHardDays = Inbox.Retention.defaults.HardDays
          RetentionInterval = TimeSpan.FromHours 6.0
          OpenRegistration = false
          AllowedHosts = []
          RateLimits = RateLimit.Limits.defaults
          Log = None
          McpBinary = "molecule-mcp" }

    /// For C# hosts: the defaults with a listen address, switches, extra names, limits, a log and the molecule-mcp
    /// command.
    let create
        (dataDir: string)
        (host: string)
        (port: int)
        (enableFaults: bool)
        (openRegistration: bool)
        (allowedHosts: string seq)
        (limits: RateLimit.Limits)
        (log: Action<string>)
        (mcpBinary: string)
        : PlatformOptions =
        { defaults dataDir with
            Host = host
            Port = port
            EnableFaults = enableFaults
            OpenRegistration = openRegistration
            AllowedHosts = List.ofSeq allowedHosts
            RateLimits = limits
            Log = (if isNull log then None else Some log.Invoke)
            McpBinary = (if String.IsNullOrWhiteSpace mcpBinary then "molecule-mcp" else mcpBinary) }

/// Request bodies are capped at 1 MiB (uploads: 25 MiB).
[<Literal>]
let MaxBody = Molecule.Platform.Routes.Http.MaxBody

[<Literal>]
let MaxUploadBody = Molecule.Platform.Routes.Http.MaxUploadBody

[<Literal>]
let MaxLiveTokens = Molecule.Platform.Routes.Http.MaxLiveTokens

/// The 413 texts (JSON `error`) of a body over 1 MiB and of an upload over 25 MiB.
let bodyTooLarge = Molecule.Platform.Routes.Http.tooLarge
let uploadTooLarge = Molecule.Platform.Routes.Http.uploadTooLarge

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
        sweep: unit -> Guid list,
        prune: unit -> int,
        routes: (string * string) list
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

    /// Every route served: (HTTP method, pattern), e.g. ("GET", "/workspaces/{id}").
    member _.Routes = routes

    /// Runs one activity retention pass now with the platform clock; returns how many rows were deleted.
    member _.PruneNow() : int = prune ()

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
    DataDir.adminToken dataDir adminTokenFile randomToken

/// The names of this machine: the listen address (unless a wildcard), the host name (also as `<name>.local`) and
/// every interface address (no DNS lookups: other names are given with `AllowedHosts`).
let private ownNames (listen: string) : string list =
    let wildcard = [ "0.0.0.0"; "::"; "[::]"; "*"; "+" ]
    let attempt (f: unit -> string list) = try f () with _ -> []

    (if List.contains listen wildcard then [] else [ listen ])
    @ attempt (fun () ->
        let h = Dns.GetHostName()
        [ h; h + ".local" ])
    @ attempt (fun () ->
        [ for ni in NetworkInformation.NetworkInterface.GetAllNetworkInterfaces() do
              for a in ni.GetIPProperties().UnicastAddresses do
                  a.Address.ToString().Split('%').[0] ])

let private quietly (f: unit -> unit) =
    try
        f ()
    with _ ->
        ()

/// Starts the platform; `configure` may add endpoints (e.g. the canvas page at `/`) before it starts listening.
let startWith (configure: WebApplication -> unit) (options: PlatformOptions) : Task<RunningPlatform> =
    task {
        let dataDir = Path.GetFullPath options.DataDir
        let log = defaultArg options.Log ignore
        Notices.atStart options.Host options.Port options.OpenRegistration options.EnableFaults |> List.iter log
        let admin = loadAdminToken dataDir
        // private before SQLite opens it: the database, -wal and -shm are 0600, the directory 0700 (also an old one)
        DataDir.touchPrivate (Path.Combine(dataDir, "platform.db"))
        DataDir.secure dataDir |> ignore
        let store = new Store.Store(dataDir)
        DataDir.secure dataDir |> ignore
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
              Background = background
              Retention =
                Inbox.Retention.normalise
                    { SoftDays = options.RetentionSoftDays
                      HardDays = options.RetentionHardDays }
              OpenRegistration = options.OpenRegistration
              Limits = options.RateLimits
              Limiter = Limiter()
              Tickets = TicketBook()
              Log = log
              Logging = options.Log.IsSome
              McpBinary = options.McpBinary }

        let names = Guard.Names.create (ownNames options.Host) options.AllowedHosts

        let builder =
            WebApplication.CreateSlimBuilder(WebApplicationOptions(ApplicationName = "Molecule.Platform", ContentRootPath = dataDir))

        builder.Logging.ClearProviders() |> ignore

        builder.Services.Configure<HostOptions>(fun (o: HostOptions) -> o.ShutdownTimeout <- TimeSpan.FromSeconds 3.0)
        |> ignore

        builder.WebHost.ConfigureKestrel(fun (k: KestrelServerOptions) ->
            // each route enforces its own limit (readBody, guardMiddleware); Kestrel's is only where it stops reading
            k.Limits.MaxRequestBodySize <- Nullable DrainLimit
            k.AddServerHeader <- false

            match IPAddress.TryParse options.Host with
            | true, ip -> k.Listen(ip, options.Port)
            | _ when options.Host = "localhost" -> k.ListenLocalhost(options.Port)
            | _ -> k.ListenAnyIP(options.Port))
        |> ignore

        let app = builder.Build()
        app.Use(Func<HttpContext, RequestDelegate, Task>(errorMiddleware log)) |> ignore
        app.Use(Func<HttpContext, RequestDelegate, Task>(guardMiddleware names log)) |> ignore
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
        post "/workspaces/{id}/notify" (handle (TeamRoutes.notifyGated env))
        post "/workspaces/{id}/chat/uploads" (handle (TeamRoutes.upload env))
        get "/workspaces/{id}/chat/uploads/{file}" (RequestDelegate(download env))
        post "/workspaces/{id}/memories" (handle (commitMemory env))
        get "/workspaces/{id}/memories" (handle (recallMemory env))
        post "/workspaces" (handle (createWorkspace env))
        get "/workspaces" (handle (listWorkspaces env))
        del "/workspaces/{id}" (handle (deleteWorkspace env))
        post "/workspaces/{id}/tokens" (handle (mintToken env))
        get "/workspaces/{id}/tokens" (handle (listTokens env))
        del "/workspaces/{id}/tokens/{tokenId}" (handle (revokeToken env))
        post "/workspaces/{id}/activity/ack" (handle (ackActivity env))
        get "/workspaces/{id}/mail/summary" (handle (mailSummary env))
        get "/workspaces/{id}/events/stream" (RequestDelegate(workspaceStream env))
        TeamRoutes.map app env
        app.MapPatch("/workspaces/{id}", handle (editWorkspace env)) |> ignore
        get "/admin/workspaces" (handle (overviewList env))
        get "/admin/feed" (handle (feedView env))
        get "/admin/delegations" (handle (delegationsView env))
        get "/admin/memories" (handle (memoriesView env))

        // fault injection over HTTP only when asked for (tests); otherwise these paths fall through to 404
        if options.EnableFaults then
            post "/admin/faults" (handle (addFault env))
            del "/admin/faults" (handle (clearFaults env))
            post "/admin/faults/cut-streams" (handle (cutStreams env))
            get "/admin/requests" (handle (requestCount env))

        post "/admin/sweep" (handle (sweepNow env))
        post "/admin/retention" (handle (retentionNow env))
        get "/events" (RequestDelegate(events env))
        post "/admin/stream-ticket" (handle (streamTicket env))
        app.MapFallback(RequestDelegate(fun ctx -> send ctx (Wire.errorReply 404 "not found"))) |> ignore
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
            // a wildcard is where it listens, not an address to call: local clients use loopback
            |> fun u -> u.Replace("://0.0.0.0:", "://127.0.0.1:").Replace("://[::]:", "://[::1]:")

        let sweeper =
            Task.WhenAll(
                every env options.SweepInterval "liveness sweep" (fun () -> sweepOnce env |> ignore),
                every env options.RetentionInterval "activity retention" (fun () -> pruneOnce env |> ignore)
            )

        let routes =
            (app :> Microsoft.AspNetCore.Routing.IEndpointRouteBuilder).DataSources
            |> Seq.collect (fun ds -> ds.Endpoints)
            |> Seq.choose (fun e -> match e with :? Microsoft.AspNetCore.Routing.RouteEndpoint as r -> Some r | _ -> None)
            |> Seq.collect (fun r ->
                match r.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>() with
                | null -> [ "*", r.RoutePattern.RawText ]
                | m -> [ for v in m.HttpMethods -> v, r.RoutePattern.RawText ])
            |> List.ofSeq

        return
            new RunningPlatform(app, url, admin, faults, hub, store, stopping, sweeper, background, http, (fun () -> sweepOnce env), (fun () -> pruneOnce env), routes)
    }

/// Starts the platform (see PlatformOptions.defaults).
let start (options: PlatformOptions) : Task<RunningPlatform> = startWith ignore options

/// Convenience for hosts (C#): start with the system clock and the default sweep interval.
let startAt (dataDir: string) (host: string) (port: int) : Task<RunningPlatform> =
    start
        { PlatformOptions.defaults dataDir with
            Host = host
            Port = port }
