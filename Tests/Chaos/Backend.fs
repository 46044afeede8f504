/// The platform of one schedule: in-process (the harness's `Platform` over `Server.start` with faults enabled), the
/// published `molecule-platform platform` as its own process on a fixed port, which can be kill -9'd and restarted
/// on the same data dir and port, or two such processes on one PostgreSQL database (the test process's cluster)
/// behind Debian's nginx as a round-robin proxy, one of them kill -9'd at a time. All are driven over HTTP the same
/// way (the cluster through the proxy).
module Molecule.Tests.Chaos.Backend

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Host.Harness

type Backend =
    abstract Url: string
    abstract AdminToken: string
    /// One HTTP request; throws on transport failure (connection refused, reset, timeout).
    abstract Send: meth: string * path: string * body: string option * token: string option * caller: string option -> Task<HttpAnswer>
    /// The fault injector (in-process only).
    abstract Faults: FaultInjector option
    /// kill -9 (process only); false when this platform cannot be killed.
    abstract Kill: unit -> bool
    abstract Restart: unit -> Task
    /// Everything the platform printed (process only), for the token check.
    abstract Output: string list
    /// kill -9, the data directory copied aside, started again (process only; false otherwise).
    abstract Backup: unit -> Task<bool>
    /// kill -9, the data directory replaced by the backup, started again (process only; false otherwise).
    abstract Restore: unit -> Task<bool>
    /// A rolling restart: each instance in turn stopped gracefully (SIGTERM, its exit awaited) and started again on
    /// its data dir and port (cluster only; false otherwise).
    abstract Roll: unit -> Task<bool>
    abstract Stop: unit -> Task

type private InProcessBackend(p: Platform) =
    interface Backend with
        member _.Url = p.Url
        member _.AdminToken = p.AdminToken
        member _.Send(meth, path, body, token, caller) =
            match body, token, caller with
            | Some b, Some t, Some c -> p.Send(meth, path, b, t, c)
            | Some b, Some t, None -> p.Send(meth, path, b, t)
            | Some b, None, _ -> p.Send(meth, path, b)
            | None, Some t, _ -> p.Send(meth, path, token = t)
            | None, None, _ -> p.Send(meth, path)
        member _.Faults = Some p.Faults
        member _.Kill() = false
        member _.Restart() = Task.CompletedTask
        member _.Output = []
        member _.Backup() = Task.FromResult false
        member _.Restore() = Task.FromResult false
        member _.Roll() = Task.FromResult false
        // Not the harness's DisposeAsync: that deletes the data dir, which a failed schedule keeps as evidence.
        member _.Stop() = p.Running.StopAsync()

/// One request on a client whose base address is the platform (or its proxy).
let private sendOn (http: HttpClient) (meth: string) (path: string) (body: string option) (token: string option) (caller: string option) =
    task {
        use req = new HttpRequestMessage(HttpMethod meth, path)
        body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
        token |> Option.iter (fun t -> req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", t))
        caller |> Option.iter (fun c -> req.Headers.Add("X-Workspace-ID", c))
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return { Code = int resp.StatusCode; Body = text }
    }

type private ProcessBackend(binary: string, dataDir: string, port: int, extraArgs: string list) =
    let url = $"http://127.0.0.1:{port}"
    let output = ConcurrentQueue<string>()
    let http = new HttpClient(BaseAddress = Uri url, Timeout = TimeSpan.FromSeconds 15.0)
    let mutable proc: Process = null
    let mutable admin = ""

    let launch () =
        task {
            let psi = ProcessStartInfo(binary, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
            for a in [ "platform"; "--data-dir"; dataDir; "--port"; string port ] @ extraArgs do
                psi.ArgumentList.Add a
            psi.Environment.Clear()
            for kv in baseEnv () do
                psi.Environment[kv.Key] <- kv.Value
            let p = Process.Start psi
            p.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then output.Enqueue e.Data)
            p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then output.Enqueue e.Data)
            p.BeginOutputReadLine()
            p.BeginErrorReadLine()
            proc <- p
            let sw = Stopwatch.StartNew()
            let mutable up = false
            while not up do
                if p.HasExited then
                    failwith $"""molecule-platform exited with {p.ExitCode}: {String.Join("\n", output)}"""
                if sw.Elapsed > TimeSpan.FromSeconds 30.0 then
                    failwith $"""molecule-platform not healthy after 30 s: {String.Join("\n", output)}"""
                try
                    use! r = http.GetAsync "/health"
                    up <- r.IsSuccessStatusCode
                with _ ->
                    ()
                if not up then do! Task.Delay 50
            admin <- File.ReadAllText(Path.Combine(dataDir, "admin_token")).Trim()
        }

    member _.Launch() = launch ()

    /// SIGTERM (a graceful stop: open streams end, requests in flight are answered), then waits for the exit.
    member _.Terminate() : Task =
        task {
            use term = Process.Start(ProcessStartInfo("kill", $"-TERM {proc.Id}", UseShellExecute = false))
            do! term.WaitForExitAsync()
            do! proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 30.0)
        }

    member private _.KillNow() =
        try
            proc.Kill() // SIGKILL
            proc.WaitForExit 5000 |> ignore
        with _ ->
            ()

    interface Backend with
        member _.Url = url
        member _.AdminToken = admin
        member _.Send(meth, path, body, token, caller) = sendOn http meth path body token caller
        member _.Faults = None
        member _.Kill() =
            try
                proc.Kill() // SIGKILL
                proc.WaitForExit 5000 |> ignore
            with _ ->
                ()
            true
        member _.Restart() = launch ()
        member _.Output = List.ofSeq output
        member this.Backup() =
            task {
                this.KillNow()
                let backup = dataDir + "-backup"
                if Directory.Exists backup then Directory.Delete(backup, true)
                copyDir dataDir backup
                do! launch ()
                return true
            }
        member this.Restore() =
            task {
                this.KillNow()
                Directory.Delete(dataDir, true)
                copyDir (dataDir + "-backup") dataDir
                do! launch ()
                return true
            }
        member _.Roll() = Task.FromResult false
        member _.Stop() =
            task {
                try
                    if not proc.HasExited then
                        proc.Kill()
                        do! proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 5.0)
                with _ ->
                    ()
                http.Dispose()
            }

/// nginx in the foreground, one process (no master, no workers), everything it writes in `dir`: a round-robin proxy
/// on 127.0.0.1:`port` to the `upstreams` ports, streams unbuffered, a server that refuses or drops a connection
/// skipped (the request, POST too, sent to the other).
type private Proxy(dir: string, port: int, upstreams: int list) =
    let conf = Path.Combine(dir, "nginx.conf")
    let output = ConcurrentQueue<string>()

    do
        Directory.CreateDirectory dir |> ignore
        let servers = upstreams |> List.map (fun p -> $"    server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;") |> String.concat "\n"
        let temp (name: string) = Path.Combine(dir, name)
        File.WriteAllText(
            conf,
            String.concat
                "\n"
                [ "daemon off;"
                  "master_process off;"
                  "worker_processes 1;"
                  "pid " + temp "nginx.pid" + ";"
                  "error_log " + temp "error.log" + " warn;"
                  "events { worker_connections 1024; }"
                  "http {"
                  "  access_log off;"
                  "  client_body_temp_path " + temp "body" + ";"
                  "  proxy_temp_path " + temp "proxy" + ";"
                  "  fastcgi_temp_path " + temp "fastcgi" + ";"
                  "  uwsgi_temp_path " + temp "uwsgi" + ";"
                  "  scgi_temp_path " + temp "scgi" + ";"
                  "  client_max_body_size 30m;"
                  "  upstream platform {"
                  servers
                  "  }"
                  "  server {"
                  $"    listen 127.0.0.1:{port};"
                  "    location / {"
                  "      proxy_pass http://platform;"
                  "      proxy_http_version 1.1;"
                  "      proxy_set_header Connection \"\";"
                  "      proxy_set_header Host $http_host;"
                  "      proxy_buffering off;"
                  "      proxy_request_buffering off;"
                  "      proxy_read_timeout 1h;"
                  "      proxy_connect_timeout 2s;"
                  // a POST too goes to the other server when this one closed the connection without an answer (a
                  // graceful stop closes connections whose request it had not begun): a message carries its id, so
                  // one that was stored after all is not stored twice
                  "      proxy_next_upstream error timeout non_idempotent;"
                  "    }"
                  "  }"
                  "}"
                  "" ]
        )

    let proc =
        let psi = ProcessStartInfo("nginx", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        for a in [ "-p"; dir; "-c"; conf; "-e"; Path.Combine(dir, "error.log") ] do
            psi.ArgumentList.Add a
        let p = Process.Start psi
        p.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then output.Enqueue e.Data)
        p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then output.Enqueue e.Data)
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()
        p

    member _.Url = $"http://127.0.0.1:{port}"
    member _.Exited = proc.HasExited
    member _.Output = List.ofSeq output

    member _.Stop() =
        task {
            try
                if not proc.HasExited then
                    proc.Kill()
                    do! proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 5.0)
            with
            | :? InvalidOperationException
            | :? TimeoutException -> ()
        }

/// Two platform processes on one database behind the proxy; Kill takes down one at a time (the first, then the
/// second, …), Restart brings it back on its data dir and port; Roll restarts both gracefully, one after the other.
and private ClusterBackend(proxy: Proxy, instances: ProcessBackend list, admin: string, http: HttpClient) =
    let mutable kills = 0
    let mutable down: ProcessBackend option = None

    static member Start(binary: string, dataDir: string) : Task<ClusterBackend> =
        task {
            let url = Molecule.Tests.Support.Postgres.urlFor dataDir
            let dirs = [ Path.Combine(dataDir, "instance-1"); Path.Combine(dataDir, "instance-2") ]
            let ports = [ freePort (); freePort () ]
            let instances =
                [ for i, (d, p) in List.indexed (List.zip dirs ports) -> ProcessBackend(binary, d, p, [ "--database"; url; "--instance-name"; $"cluster-{i + 1}" ]) ]
            do! instances[0].Launch()
            // the team's admin token and inbound-secret key: the same on every instance
            Directory.CreateDirectory dirs[1] |> ignore
            for f in [ "admin_token"; SecretBox.KeyFile ] do
                File.Copy(Path.Combine(dirs[0], f), Path.Combine(dirs[1], f))
            do! instances[1].Launch()
            let stopInstances () = Task.WhenAll([ for b in instances -> (b :> Backend).Stop() ])
            let proxy =
                try
                    Proxy(Path.Combine(dataDir, "proxy"), freePort (), ports)
                with _ ->
                    // no nginx: the instances started for it do not stay running
                    stopInstances().Wait()
                    reraise ()
            let http = new HttpClient(BaseAddress = Uri proxy.Url, Timeout = TimeSpan.FromSeconds 15.0)
            let sw = Stopwatch.StartNew()
            let mutable up = false
            while not up do
                if proxy.Exited || sw.Elapsed > TimeSpan.FromSeconds 30.0 then
                    do! proxy.Stop()
                    do! stopInstances ()
                    failwith $"""nginx did not start: {String.Join("\n", proxy.Output)}"""
                try
                    use! r = http.GetAsync "/health"
                    up <- r.IsSuccessStatusCode
                with :? HttpRequestException ->
                    do! Task.Delay 50
            let admin = File.ReadAllText(Path.Combine(dirs[0], "admin_token")).Trim()
            return new ClusterBackend(proxy, instances, admin, http)
        }

    interface Backend with
        member _.Url = proxy.Url
        member _.AdminToken = admin
        member _.Send(meth, path, body, token, caller) = sendOn http meth path body token caller
        member _.Faults = None
        member _.Kill() =
            let victim = instances[kills % instances.Length]
            kills <- kills + 1
            down <- Some victim
            (victim :> Backend).Kill()
        member _.Restart() =
            match down with
            | Some b ->
                down <- None
                b.Launch()
            | None -> Task.CompletedTask
        member _.Output = (instances |> List.collect (fun b -> (b :> Backend).Output)) @ proxy.Output
        member _.Backup() = Task.FromResult false
        member _.Restore() = Task.FromResult false
        member _.Roll() =
            task {
                for i, b in List.indexed instances do
                    do! b.Terminate()
                    do! b.Launch()
                    // the next one stops only once the proxy sends requests here again (nginx keeps a server that
                    // refused a connection out for fail_timeout; both out at once answers 502)
                    let name = $"\"instance\":\"cluster-{i + 1}\""
                    let sw = Stopwatch.StartNew()
                    let mutable back = false
                    while not back && sw.Elapsed < TimeSpan.FromSeconds 30.0 do
                        try
                            let! a = sendOn http "GET" "/health" None None None
                            back <- a.Body.Contains name
                        with :? HttpRequestException ->
                            ()
                        if not back then do! Task.Delay 50
                return true
            }
        member _.Stop() =
            task {
                // every process told at once (each Stop kills before it waits): a slow exit leaves none running
                do! Task.WhenAll((proxy.Stop() :> Task) :: [ for b in instances -> (b :> Backend).Stop() ])
                http.Dispose()
            }

/// Starts the platform of a schedule with its data in `dataDir`.
let start (kind: Schedule.PlatformKind) (platformBinary: string) (dataDir: string) : Task<Backend> =
    task {
        match kind with
        | Schedule.InProcess ->
            let! p = Server.start { PlatformOptions.defaults dataDir with EnableFaults = true }
            return InProcessBackend(new Platform(p)) :> Backend
        | Schedule.OwnProcess ->
            let b = ProcessBackend(platformBinary, dataDir, freePort (), [])
            do! b.Launch()
            return b :> Backend
        | Schedule.Cluster ->
            let! b = ClusterBackend.Start(platformBinary, dataDir)
            return b :> Backend
    }

/// POST /workspaces (admin) → the workspace with its token.
let createWorkspace (b: Backend) (name: string) : Task<Workspace> =
    task {
        let body = JsonObject()
        body["name"] <- JsonValue.Create name
        let! a = b.Send("POST", "/workspaces", Some(body.ToJsonString()), Some b.AdminToken, None)
        if a.Code <> 201 then failwith $"create workspace failed: HTTP {a.Code} {a.Body}"
        return { Id = strOf a.Json "id"; Token = strOf a.Json "auth_token"; Name = name }
    }

/// One message to `target`: from the canvas (admin bearer) or from workspace `from`. True when the platform
/// accepted it (HTTP 200); false on any other answer or a transport failure.
let sendMessage (b: Backend) (target: Workspace) (from: Workspace option) (text: string) : Task<bool> =
    task {
        let body = Platform.MessageBody text
        try
            let! a =
                match from with
                | None -> b.Send("POST", $"/workspaces/{target.Id}/a2a", Some body, Some b.AdminToken, None)
                | Some f -> b.Send("POST", $"/workspaces/{target.Id}/a2a", Some body, Some f.Token, Some f.Id)
            return a.Code = 200
        with _ ->
            return false
    }

/// The fault rule of a schedule fault on workspace `wsId` (the faults that are one plain rule).
let faultRule (wsId: string) (fault: Schedule.Fault) (times: int) : FaultRule =
    let poll = { FaultRule.make $"/workspaces/{wsId}/activity" 0 with Method = Some "GET"; Times = Some times }
    match fault with
    | Schedule.PollStatus s -> { poll with Status = s }
    | Schedule.PollDelay ms -> { poll with DelayMs = ms }
    | Schedule.PollHang -> { poll with Hang = true }
    | Schedule.PollDrop -> { poll with Drop = true }
    | Schedule.PollGone ->
        { poll with
            Status = 410
            Body = "{\"error\":\"since_id cursor not found (row may have been pruned or belongs to a different workspace); omit since_id to reset\"}" }
    | Schedule.AckStatus s ->
        { FaultRule.make $"/workspaces/{wsId}/activity/ack" s with Method = Some "POST"; Times = Some times }
    | Schedule.AckMode _
    | Schedule.HeartbeatRefused
    | Schedule.NoStream
    | Schedule.NoPeerInfo -> failwith "a fault mode: see inject"

/// The rules of a fault mode, on workspace `wsId` only, for `times` answers.
let private modeRules (wsId: string) (mode: FaultMode) (times: int) : FaultRule list =
    FaultMode.rules mode
    |> List.map (fun r -> { r with PathPrefix = r.PathPrefix.Replace("[^/]+", Text.RegularExpressions.Regex.Escape wsId); Times = Some times })

/// Turns a schedule fault on for workspace `wsId` (the in-process fault injector).
let inject (faults: FaultInjector) (wsId: string) (fault: Schedule.Fault) (times: int) =
    let mode name = match FaultMode.parse name with Ok m -> m | Error e -> failwith e
    match fault with
    | Schedule.AckMode name -> for r in modeRules wsId (mode name) times do faults.Add r
    | Schedule.HeartbeatRefused -> for r in modeRules wsId HeartbeatRefused times do faults.Add r
    | Schedule.NoStream ->
        for r in modeRules wsId NoStream times do
            faults.Add r
        faults.CutStreams $"/workspaces/{wsId}/events/stream" |> ignore
    | Schedule.NoPeerInfo -> faults.Mode NoPeerInfo
    | f -> faults.Add(faultRule wsId f times)
