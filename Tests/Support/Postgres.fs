/// A throwaway PostgreSQL for the tests, from Debian's `postgresql` package (no system service): one cluster per
/// test process, started on first use in the process's temp folder (TempDirs) with `initdb` and `pg_ctl`, listening
/// only on a Unix socket in that folder (no TCP port at all), trusting its local connections, and stopped when the
/// process exits — or, should the process be killed, by a watchdog (a detached shell that waits for the process to go,
/// then stops the cluster). Each test gets a database of its own.
///
/// PostgreSQL refuses to run as root: when the tests run as root the cluster's programs run as the `postgres` user
/// the package creates (else `nobody`) through `runuser`, and the cluster's folder is given to that user.
///
/// The programs are those of the newest `/usr/lib/postgresql/<version>/bin`, or of `$MOLECULE_POSTGRES_BIN`.
module Molecule.Tests.Support.Postgres

open System
open System.Diagnostics
open System.IO
open System.Security.Cryptography
open System.Text
open Npgsql

/// The superuser the cluster is made with (trusted on its socket).
[<Literal>]
let User = "molecule"

/// The socket's number: only its file name (`.s.PGSQL.5432`), in a folder no other cluster uses.
[<Literal>]
let private SocketPort = 5432

let private binDir () =
    match Environment.GetEnvironmentVariable "MOLECULE_POSTGRES_BIN" with
    | null
    | "" ->
        let versions =
            if Directory.Exists "/usr/lib/postgresql" then Directory.GetDirectories "/usr/lib/postgresql" |> List.ofArray else []

        versions
        |> List.map (fun d -> Path.Combine(d, "bin"))
        |> List.filter (fun d -> File.Exists(Path.Combine(d, "initdb")))
        |> List.sortByDescending (fun d ->
            match Int32.TryParse(Path.GetFileName(Path.GetDirectoryName d)) with
            | true, n -> n
            | _ -> 0)
        |> List.tryHead
        |> Option.defaultWith (fun () ->
            failwith "no PostgreSQL found in /usr/lib/postgresql/<version>/bin (install Debian's postgresql package, or set MOLECULE_POSTGRES_BIN)")
    | dir -> dir

/// Who runs the cluster: None for the test process's own user, Some name when it is root.
let private runAs () : string option =
    if Environment.UserName <> "root" then None
    else
        let exists (name: string) =
            File.ReadAllLines "/etc/passwd" |> Array.exists (fun l -> l.StartsWith(name + ":"))

        Some(if exists "postgres" then "postgres" else "nobody")

/// Runs a program (as `user` when given) to its end; its output when it fails.
let private run (user: string option) (exe: string) (args: string list) =
    let psi =
        match user with
        | Some u -> ProcessStartInfo("runuser", ([ "-u"; u; "--"; exe ] @ args) :> seq<string>)
        | None -> ProcessStartInfo(exe, args :> seq<string>)

    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false
    // the working directory must be readable by the cluster's user
    psi.WorkingDirectory <- "/"
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEnd()

    if not (p.WaitForExit 120000) then
        p.Kill true
        failwith $"{Path.GetFileName exe} did not finish in 2 minutes"

    if p.ExitCode <> 0 then
        failwith $"{Path.GetFileName exe} {String.Join(' ', args)} failed ({p.ExitCode}): {out.Result} {err}"

type Cluster =
    { Dir: string
      User: string option
      Bin: string }

    member c.Data = Path.Combine(c.Dir, "data")

    /// The connection string of one of the cluster's databases.
    member c.ConnectionString(database: string) =
        NpgsqlConnectionStringBuilder(Host = c.Dir, Port = SocketPort, Username = User, Database = database, Pooling = true)
            .ConnectionString

    /// The `postgres://` URL of one of the cluster's databases (its socket folder as the `host` parameter).
    member c.Url(database: string) =
        $"postgres://{User}@localhost:{SocketPort}/{database}?host={Uri.EscapeDataString c.Dir}"

let private stop (c: Cluster) =
    if File.Exists(Path.Combine(c.Data, "postmaster.pid")) then
        try
            run c.User (Path.Combine(c.Bin, "pg_ctl")) [ "-D"; c.Data; "-m"; "immediate"; "-w"; "stop" ]
        with Failure _ ->
            () // already gone

/// Starts the watchdog: a shell in a session of its own (outside the test process's tree) that stops the cluster
/// once the test process is gone.
let private watch (c: Cluster) =
    let pid = Environment.ProcessId.ToString(Globalization.CultureInfo.InvariantCulture)
    let pgCtl = Path.Combine(c.Bin, "pg_ctl")
    let script = $"exec </dev/null >/dev/null 2>&1; while [ -d /proc/{pid} ]; do sleep 1; done; [ -f '{c.Data}/postmaster.pid' ] && exec '{pgCtl}' -D '{c.Data}' -m immediate stop"
    let shell = [ "setsid"; "-f"; "sh"; "-c"; script ]

    let psi =
        match c.User with
        | Some u -> ProcessStartInfo("runuser", ([ "-u"; u; "--" ] @ shell) :> seq<string>)
        | None -> ProcessStartInfo(List.head shell, List.tail shell :> seq<string>)

    psi.UseShellExecute <- false
    psi.WorkingDirectory <- "/"
    psi.RedirectStandardInput <- true
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    use p = Process.Start psi
    p.StandardInput.Close()
    p.WaitForExit 10000 |> ignore // setsid -f returns at once, leaving the shell running on its own

/// Whether the cluster keeps PostgreSQL's durability defaults (fsync, synchronous_commit and full_page_writes on,
/// shared_buffers 128MB) — for measurements (bench/cluster.fsx). The tests' cluster trades them for speed. Set before
/// the first use.
let mutable durable = false

let private start () : Cluster =
    let bin = binDir ()
    let user = runAs ()
    let dir = TempDirs.create "pg"

    match user with
    | Some u ->
        File.SetUnixFileMode(dir, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute ||| UnixFileMode.GroupExecute ||| UnixFileMode.OtherExecute)
        run None "chown" [ u; dir ]
    | None -> ()

    let c = { Dir = dir; User = user; Bin = bin }

    run user (Path.Combine(bin, "initdb")) [ "-D"; c.Data; "-U"; User; "--auth=trust"; "-E"; "UTF8"; "--no-sync"; "--no-instructions" ]

    let speed =
        if durable then [] else [ "-c fsync=off"; "-c synchronous_commit=off"; "-c full_page_writes=off"; "-c shared_buffers=32MB" ]

    let settings =
        String.Join(" ", [ "-c listen_addresses=''"; $"-k {dir}"; $"-p {SocketPort}"; "-c max_connections=500" ] @ speed)

    TempDirs.atExit (fun () -> stop c)
    run user (Path.Combine(bin, "pg_ctl")) [ "-D"; c.Data; "-l"; Path.Combine(dir, "server.log"); "-w"; "-t"; "60"; "-o"; settings; "start" ]
    watch c
    c

let private cluster = lazy (start ())

/// The test process's cluster (started on first use).
let instance () : Cluster = cluster.Force()

let private created = Collections.Generic.HashSet<string>()

/// The name of the database that belongs to `key` (e.g. a test's folder: a platform restarted on it reaches the
/// same database), created on first use.
let databaseFor (key: string) : string =
    let c = instance ()
    let name = "t" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes key)).Substring(0, 24).ToLowerInvariant()

    lock created (fun () ->
        if created.Add name then
            use conn = new NpgsqlConnection(c.ConnectionString "postgres")
            conn.Open()
            use cmd = new NpgsqlCommand($"CREATE DATABASE {name}", conn)
            cmd.ExecuteNonQuery() |> ignore)

    name

/// The URL of the database that belongs to `key` (databaseFor).
let urlFor (key: string) : string = (instance ()).Url(databaseFor key)
