/// The local Molecule platform: ASP.NET Core minimal API over the pure rules and the store.
module Molecule.Platform.Server

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
open Microsoft.Extensions.Logging
open Molecule.Platform
open Molecule.Platform.Routes
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
module Json = Molecule.Protocol.Json

/// Where the platform keeps its team.
type Database =
    /// SQLite in the data directory (`platform.db`): the zero-set-up default, one platform process per directory.
    | Embedded
    /// A PostgreSQL database (a `postgres://` URL or an Npgsql connection string) that any number of platform
    /// processes share; the data directory keeps the admin token and the inbound-secret key (the same in each).
    | Postgres of string

type PlatformOptions =
    { DataDir: string
      Host: string
      Port: int
      /// Where the team is kept (default: Embedded).
      Database: Database
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
      /// Per-token limits of every route an agent token can drive (RateLimit.Limits.defaults).
      RateLimits: RateLimit.Limits
      /// A request open and unchanged this long on an idle agent recipient is nudged (default 10 min, spec §7.1).
      NudgeAfter: TimeSpan
      /// A request is nudged again only this long after its last nudge (default 1 h).
      NudgeEvery: TimeSpan
      /// How often the nudge sweeper runs; the first run is one interval after start (default 5 min).
      NudgeInterval: TimeSpan
      /// The platform log: start warnings, refused requests and registrations, events with names (default: none).
      Log: (string -> unit) option
      /// The molecule-mcp command printed in connection lines (default `molecule-mcp`).
      McpBinary: string
      /// This instance's name in GET /health, /ready, /metrics and the log (default: `<host name>-<pid>`).
      Instance: string option }

module PlatformOptions =
    /// 127.0.0.1, ephemeral port, SQLite in the data directory, system clock, liveness sweep every 15 s, no fault
    /// routes, retention 7 / 30 days every 6 h.
    let defaults (dataDir: string) : PlatformOptions =
        { DataDir = dataDir
          Host = "127.0.0.1"
          Port = 0
          Database = Embedded
          Clock = None
          SweepInterval = TimeSpan.FromSeconds 15.0
          EnableFaults = false
          RetentionSoftDays = Inbox.Retention.defaults.SoftDays
          RetentionHardDays = Inbox.Retention.defaults.HardDays
          RetentionInterval = TimeSpan.FromHours 6.0
          OpenRegistration = false
          AllowedHosts = []
          RateLimits = RateLimit.Limits.defaults
          NudgeAfter = Nudges.Settings.defaults.After
          NudgeEvery = Nudges.Settings.defaults.Every
          NudgeInterval = Nudges.Settings.defaultInterval
          Log = None
          McpBinary = "molecule-mcp"
          Instance = None }

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

    /// For C# hosts: these options with an instance name (null or blank: the default, `<host name>-<pid>`).
    let named (instance: string) (options: PlatformOptions) : PlatformOptions =
        { options with Instance = (if String.IsNullOrWhiteSpace instance then None else Some instance) }

    /// For C# hosts: the nudge thresholds from the environment (`MOLECULE_PLATFORM_NUDGE_AFTER_SECS`,
    /// `…_EVERY_SECS`, `…_INTERVAL_SECS`); an invalid value throws ArgumentException naming it.
    let withNudgeVariables (variable: Func<string, string>) (o: PlatformOptions) : PlatformOptions =
        let lookup name = Option.ofObj (variable.Invoke name)
        let current = { Nudges.Settings.After = o.NudgeAfter; Nudges.Settings.Every = o.NudgeEvery }

        match Nudges.ofVariables lookup current o.NudgeInterval with
        | Ok(s, interval) -> { o with NudgeAfter = s.After; NudgeEvery = s.Every; NudgeInterval = interval }
        | Error e -> invalidArg "variable" e

    /// For C# hosts: on the database `database` names (a `postgres://` URL), or SQLite in the data directory when
    /// it is null or empty.
    let onDatabase (database: string) (o: PlatformOptions) : PlatformOptions =
        if String.IsNullOrWhiteSpace database then { o with Database = Embedded }
        elif PostgresStore.isUrl database then { o with Database = Postgres database }
        else invalidArg "database" "the database is given as a postgres:// (or postgresql://) URL"

/// Request bodies are capped at 1 MiB (uploads: 25 MiB).
[<Literal>]
let MaxBody = Http.MaxBody

[<Literal>]
let MaxUploadBody = Http.MaxUploadBody

[<Literal>]
let MaxLiveTokens = AdminRoutes.MaxLiveTokens

/// The 413 texts (JSON `error`) of a body over 1 MiB and of an upload over 25 MiB.
let bodyTooLarge = Http.tooLarge
let uploadTooLarge = Http.uploadTooLarge

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
        store: Store.IStore,
        dataDir: string,
        stopping: CancellationTokenSource,
        sweeper: Task,
        background: ResizeArray<Task>,
        http: HttpClient,
        sweep: unit -> WorkspaceId list,
        prune: unit -> int,
        nudge: unit -> int,
        routes: (string * string) list,
        instance: string,
        metrics: Metrics.Registry
    ) =
    let mutable stopped = false

    /// Base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
    member _.Url = url
    member _.AdminToken = adminToken
    member _.Faults = faults
    member _.Events = hub
    member _.DataDir = dataDir
    /// The name this instance goes by (PlatformOptions.Instance).
    member _.Instance = instance
    /// The store this platform serves (tests).
    member _.Store = store

    /// Runs one liveness sweep now with the platform clock; returns the ids that became awaiting_agent.
    member _.SweepNow() : WorkspaceId list = sweep ()

    /// Every route served: (HTTP method, pattern), e.g. ("GET", "/workspaces/{id}").
    member _.Routes = routes

    /// Runs one activity retention pass now with the platform clock; returns how many rows were deleted.
    member _.PruneNow() : int = prune ()

    /// Runs one nudge pass now with the platform clock; returns how many requests were nudged.
    member _.NudgeNow() : int = nudge ()

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
                with :? OperationCanceledException ->
                    ()

                do! sweeper // its loops end on `stopping` without throwing
                let pending = lock background (fun () -> background.ToArray())

                try
                    do! Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds 5.0)
                with :? TimeoutException ->
                    () // a delegation still delivering: the store closes under it and it logs its failure

                do! app.DisposeAsync()
                http.Dispose()
                store.Dispose()
                (metrics :> IDisposable).Dispose()
        }

    interface IAsyncDisposable with
        member this.DisposeAsync() = ValueTask(this.StopAsync())

/// Reads or creates `<dataDir>/admin_token` (mode 0600).
let loadAdminToken (dataDir: string) : string =
    DataDir.adminToken dataDir adminTokenFile randomToken

/// Pool threads a PostgreSQL platform starts with. Its store holds a request's thread for each round trip while
/// requests run side by side, so a burst of senders needs a thread each; the pool starts with one per core and adds
/// about two a second (bench/README.md, issue 17). SQLite's writes take turns under one lock, where more threads
/// only spin: it keeps the default.
[<Literal>]
let private PostgresPoolThreads = 32

let private morePoolThreads () =
    let workers, io = ThreadPool.GetMinThreads()

    if workers < PostgresPoolThreads then
        ThreadPool.SetMinThreads(PostgresPoolThreads, io) |> ignore

/// Opens the store the options name; its committed events go to the hub.
let private openStore (options: PlatformOptions) (dataDir: string) (hub: EventHub) : Store.IStore =
    match options.Database with
    | Embedded ->
        // private before SQLite opens it: the database, -wal and -shm are 0600, the directory 0700 (also an old one)
        DataDir.touchPrivate (Path.Combine(dataDir, SqliteStore.DatabaseFile))
        DataDir.secure dataDir |> ignore
        let store = SqliteStore.openAt dataDir hub.Publish
        DataDir.secure dataDir |> ignore
        store
    | Postgres database ->
        DataDir.secure dataDir |> ignore
        morePoolThreads ()
        let now = defaultArg options.Clock (fun () -> DateTimeOffset.UtcNow)

        // events other processes sent while the listener was away are lost: every open workspace stream rings once
        let catchUp () =
            for ws in hub.ListeningWorkspaces do
                let a = Announcements.catchUp ws

                hub.Publish
                    { Type = a.Kind
                      WorkspaceId = a.Anchor
                      Payload = Json.obj a.Canvas
                      Data = a.Stream
                      At = now ()
                      Audience = a.Audience }

        PostgresStore.openAt database dataDir hub.Publish catchUp (defaultArg options.Log ignore)

let private build (options: PlatformOptions) (dataDir: string) : WebApplication =
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

    builder.Build()

/// The name this instance goes by (Operations.instanceName).
let instanceOf (options: PlatformOptions) : string =
    Operations.instanceName options.Instance Environment.MachineName Environment.ProcessId

/// The handler environment of a platform starting with these options.
let private environment (options: PlatformOptions) (store: Store.IStore) (admin: string) (hub: EventHub) (stopping: CancellationToken) : Env =
    { Store = store
      Now = defaultArg options.Clock (fun () -> DateTimeOffset.UtcNow)
      Admin = admin
      Faults = FaultInjector()
      Events = hub
      Http = new HttpClient(Timeout = Timeout.InfiniteTimeSpan)
      Stopping = stopping
      Background = ResizeArray<Task>()
      Retention =
        Inbox.Retention.normalise
            { SoftDays = options.RetentionSoftDays
              HardDays = options.RetentionHardDays }
      OpenRegistration = options.OpenRegistration
      Limits = options.RateLimits
      Log = defaultArg options.Log ignore
      Logging = options.Log.IsSome
      McpBinary = options.McpBinary
      Instance = instanceOf options
      Metrics = new Metrics.Registry() }

/// The URL local clients call: where it listens, a wildcard replaced by loopback.
let private listenUrl (app: WebApplication) (options: PlatformOptions) : string =
    let addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()

    addresses.Addresses
    |> Seq.tryHead
    |> Option.defaultValue $"http://{options.Host}:{options.Port}"
    |> fun u -> u.TrimEnd('/')
    |> fun u -> u.Replace("://0.0.0.0:", "://127.0.0.1:").Replace("://[::]:", "://[::1]:")

/// Starts the platform; `configure` may add endpoints (e.g. the canvas page at `/`) before it starts listening.
let startWith (configure: WebApplication -> unit) (options: PlatformOptions) : Task<RunningPlatform> =
    task {
        let dataDir = Path.GetFullPath options.DataDir
        Notices.atStart options.Host options.Port options.OpenRegistration options.EnableFaults |> List.iter (defaultArg options.Log ignore)
        let admin = loadAdminToken dataDir
        let hub = EventHub(options.Database <> Embedded) // a shared database's events reach other instances' canvases
        let store = openStore options dataDir hub
        let stopping = new CancellationTokenSource()
        let env = environment options store admin hub stopping.Token
        let app = build options dataDir
        let pipeline: RouteTable.Options =
            { Host = options.Host
              AllowedHosts = options.AllowedHosts
              EnableFaults = options.EnableFaults }

        RouteTable.mapApp app env pipeline configure

        try
            do! app.StartAsync()
        with
        | :? IOException
        | :? SocketException
        | :? InvalidOperationException as e ->
            stopping.Cancel()
            (app :> IDisposable).Dispose()
            env.Http.Dispose()
            store.Dispose()
            (env.Metrics :> IDisposable).Dispose()
            raise (InvalidOperationException($"the platform could not listen on {options.Host}:{options.Port}: {e.Message}", e))

        let nudges: Nudges.Settings = { After = options.NudgeAfter; Every = options.NudgeEvery }

        let sweeper =
            Sweepers.start env options.SweepInterval options.RetentionInterval options.NudgeInterval nudges

        return
            new RunningPlatform(
                app,
                listenUrl app options,
                admin,
                env.Faults,
                hub,
                store,
                dataDir,
                stopping,
                sweeper,
                env.Background,
                env.Http,
                (fun () -> AdminRoutes.sweepOnce env),
                (fun () -> AdminRoutes.pruneOnce env),
                (fun () -> RequestRoutes.nudgeOnce env nudges),
                RouteTable.servedRoutes app,
                env.Instance,
                env.Metrics
            )
    }

/// Starts the platform (see PlatformOptions.defaults).
let start (options: PlatformOptions) : Task<RunningPlatform> = startWith ignore options

/// Convenience for hosts (C#): start with the system clock and the default sweep interval.
let startAt (dataDir: string) (host: string) (port: int) : Task<RunningPlatform> =
    start
        { PlatformOptions.defaults dataDir with
            Host = host
            Port = port }
