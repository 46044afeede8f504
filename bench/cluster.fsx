// The platform on one SQLite instance, one PostgreSQL instance and two PostgreSQL instances on one database
// (issue 17), measured over HTTP against the published molecule-platform, all in the same run. Per set-up:
// - a team of N agents (default 20): workspaces at the root (each may talk to each), registered for poll delivery,
//   each holding its event stream (the agent's doorbell) on the FIRST instance;
// - accepted per second: S concurrent senders (default 16) send A2A messages flat out for a fixed time, each from an
//   agent to another with the sender's own token and X-Workspace-ID (as molecule-mcp sends), the senders spread over
//   the instances;
// - the load: R messages per second (default 50) spread over the agents for L seconds (default 30), sent on a fixed
//   schedule (open loop: a slow answer does not slow the sender) to the LAST instance; send → push is the time from
//   the send to its ring (ACTIVITY_LOGGED with its message id) on the recipient's stream. On two instances every ring
//   crosses between them (commit → NOTIFY → the other instance's LISTEN → its stream).
// Ratios to SQLite are of this run. Settings are production-like and the same for every set-up: the platform's own
// defaults (its log on, drained), `--rate-a2a 0` (the flat-out phase is above the default 600 a minute per token);
// SQLite in WAL with synchronous=FULL (the platform's); PostgreSQL from Debian's package as a throwaway cluster on a
// Unix socket with its durability defaults (fsync, synchronous_commit, full_page_writes on; shared_buffers 128MB).
// Usage: dotnet fsi bench/cluster.fsx [--platform PATH] [--agents N] [--senders S] [--accept-secs A] [--rate R]
//        [--warmup-secs W] [--load-secs L] [--only sqlite,pg1,pg2] [--pg-settings durable|tests] [--platform-env "K=V …"]
//        [--cpus C [--db-cpus D]] [--logs DIR]
#r "../artifacts/molecule-platform/Npgsql.dll"
#load "Common.fsx" "../Tests/Support/TempDirs.fs" "../Tests/Support/Postgres.fs"

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Molecule.Tests.Support
open Common

let platformBin = argOr "--platform" (Path.Combine(root, "artifacts", "molecule-platform", "molecule-platform"))
let agents = int (argOr "--agents" "20")
let senders = int (argOr "--senders" "16")
let acceptSecs = float (argOr "--accept-secs" "15")
/// Seconds of the same flat-out sending before the measured phase (each process's code past its first tiers).
let warmupSecs = float (argOr "--warmup-secs" "10")
let rate = float (argOr "--rate" "50")
let loadSecs = float (argOr "--load-secs" "30")
let only = (argOr "--only" "sqlite,pg1,pg2").Split(',') |> Set.ofArray
/// `--platform-env "K=V K2=V2"`: environment variables for the platform processes (runtime settings to compare).
let platformEnv =
    (argOr "--platform-env" "").Split(' ', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun kv -> let i = kv.IndexOf '=' in kv.Substring(0, i), kv.Substring(i + 1))
let inv = Globalization.CultureInfo.InvariantCulture
let f1 (x: float) = x.ToString("0.0", inv)
/// `--cpus C`: each platform process gets C cores of CPU time of its own (a cgroup with a CFS quota), and
/// PostgreSQL's processes `--db-cpus` (default C) together — as if each ran on a machine of its own that size; the
/// senders and streams (the agents' machines) are not limited. Without it every process shares the machine's cores.
let cpus = argOr "--cpus" "" |> fun t -> if t = "" then None else Some(float t)
let dbCpus = argOr "--db-cpus" "" |> fun t -> if t = "" then cpus else Some(float t)
/// `--logs DIR`: each platform process's output kept in DIR/platform-<pid>.log (else it is read and dropped).
let logsDir = argOr "--logs" ""
/// The platform processes started and not stopped yet: stopped however the run ends.
let running = ResizeArray<Process>()
/// `--pg-settings tests`: the tests' cluster instead (fsync, synchronous_commit, full_page_writes off) — to see what
/// the disk costs, not to compare with SQLite.
Postgres.durable <- argOr "--pg-settings" "durable" <> "tests"

/// The cgroup (v1 `cpu` controller) that limits its processes to `share` cores, created for `name`.
let cgroupRoot = "/sys/fs/cgroup/cpu"
let made = ResizeArray<string>()

let limit (name: string) (share: float) (pids: int list) =
    let dir = Path.Combine(cgroupRoot, $"molecule-bench-{Environment.ProcessId}-{name}")

    if not (Directory.Exists dir) then
        Directory.CreateDirectory dir |> ignore
        made.Add dir
        File.WriteAllText(Path.Combine(dir, "cpu.cfs_period_us"), "100000")
        File.WriteAllText(Path.Combine(dir, "cpu.cfs_quota_us"), string (int (share * 100000.0)))

    // each process with all its threads; threads and processes it starts later are born in the group
    for pid in pids do
        try File.AppendAllText(Path.Combine(dir, "cgroup.procs"), string pid) with :? IOException -> ()

/// The groups emptied (their processes back to the root group) and removed — again while a process was born in
/// one meanwhile (PostgreSQL starts its workers now and then).
let unlimitAll () =
    for dir in made do
        let mutable tries = 0

        while Directory.Exists dir && tries < 50 do
            for pid in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")) do
                try File.AppendAllText(Path.Combine(cgroupRoot, "cgroup.procs"), pid) with :? IOException -> ()

            try Directory.Delete dir with :? IOException -> Thread.Sleep 100
            tries <- tries + 1

    made.Clear()

if cpus.IsSome && not (File.Exists(Path.Combine(cgroupRoot, "cpu.cfs_quota_us"))) then
    failwith $"--cpus needs the cgroup v1 cpu controller at {cgroupRoot} (and the right to create groups there)"

let http =
    new HttpClient(new SocketsHttpHandler(MaxConnectionsPerServer = 256, PooledConnectionLifetime = TimeSpan.FromMinutes 10.0), Timeout = TimeSpan.FromMinutes 2.0)

/// A platform process on `dir` (extra arguments: its database), its URL once platform.json says it listens. Its
/// output is drained (a platform that cannot write its log would stall).
let start (dir: string) (extra: string list) =
    let psi = ProcessStartInfo(platformBin, RedirectStandardOutput = true, RedirectStandardError = true)

    for a in [ "platform"; "--data-dir"; dir; "--port"; "0"; "--rate-a2a"; "0" ] @ extra do
        psi.ArgumentList.Add a

    for (k, v) in platformEnv do
        psi.Environment[k] <- v

    let p = Process.Start psi
    running.Add p
    cpus |> Option.iter (fun c -> limit $"platform-{p.Id}" c [ p.Id ])

    if logsDir = "" then
        p.OutputDataReceived.Add ignore
        p.ErrorDataReceived.Add ignore
    else
        let log = new StreamWriter(Path.Combine(Directory.CreateDirectory(logsDir).FullName, $"platform-{p.Id}.log"), AutoFlush = true)
        let keep (e: DataReceivedEventArgs) = if not (isNull e.Data) then lock log (fun () -> log.WriteLine e.Data)
        p.OutputDataReceived.Add keep
        p.ErrorDataReceived.Add keep

    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    let info = Path.Combine(dir, "platform.json")
    let sw = Stopwatch.StartNew()

    while not (File.Exists info) && sw.Elapsed.TotalSeconds < 120.0 do
        Thread.Sleep 10

    Thread.Sleep 50
    let node = JsonNode.Parse(File.ReadAllText info)
    p, node["url"].GetValue<string>()

let call (url: string) (meth: HttpMethod) (path: string) (body: string option) (token: string) (caller: string option) =
    task {
        use req = new HttpRequestMessage(meth, url + path)
        body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
        caller |> Option.iter (fun c -> req.Headers.Add("X-Workspace-ID", c))
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return int resp.StatusCode, text
    }

let message (id: string) =
    $"{{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"method\":\"message/send\",\"params\":{{\"message\":{{\"role\":\"user\",\"messageId\":\"{id}\",\"parts\":[{{\"kind\":\"text\",\"text\":\"{String('x', 200)}\"}}]}}}}}}"

let percentile (p: float) (xs: float[]) =
    if xs.Length = 0 then nan
    else
        let s = Array.sort xs
        s[min (s.Length - 1) (max 0 (int (Math.Ceiling(p * float s.Length)) - 1))]

/// CPU time (ms) a process has used, from /proc (0 once it is gone).
let cpuMs (pid: int) =
    try
        let stat = File.ReadAllText $"/proc/{pid}/stat"
        let fields = stat.Substring(stat.LastIndexOf ')' + 2).Split(' ')
        float (int64 fields[11] + int64 fields[12]) * 10.0 // utime + stime, in ticks of 10 ms
    with :? IOException -> 0.0

/// The PostgreSQL cluster's processes: its postmaster and every process it started (the backends).
let clusterPids () =
    let pidFile = Path.Combine((Postgres.instance ()).Data, "postmaster.pid")
    let master = int ((File.ReadAllLines pidFile)[0])

    master
    :: [ for d in Directory.GetDirectories "/proc" do
             match Int32.TryParse(Path.GetFileName d) with
             | true, pid ->
                 try
                     let stat = File.ReadAllText(Path.Combine(d, "stat"))
                     if int (stat.Substring(stat.LastIndexOf ')' + 2).Split(' ')[1]) = master then yield pid
                 with :? IOException -> ()
             | _ -> () ]

type Agent = { Id: string; Token: string }

let createAgent (url: string) (admin: string) (i: int) =
    let code, text = (call url HttpMethod.Post "/workspaces" (Some $"{{\"name\":\"agent {i}\"}}") admin None).Result
    if code <> 201 then failwith $"create: {code} {text}"
    let j = JsonNode.Parse text
    let a = { Id = j["id"].GetValue<string>(); Token = j["auth_token"].GetValue<string>() }
    let body = $$"""{"id":"{{a.Id}}","url":"","agent_card":{"name":"agent {{i}}"},"delivery_mode":"poll"}"""
    let code, text = (call url HttpMethod.Post "/registry/register" (Some body) a.Token None).Result
    if code <> 200 then failwith $"register: {code} {text}"
    a

/// The agent's event stream on `url`: each ring's message id with its arrival time (ms on `clock`); `ready` is set
/// once the stream has answered.
let listen (url: string) (a: Agent) (clock: Stopwatch) (arrived: ConcurrentDictionary<string, float>) (ready: CountdownEvent) (stop: CancellationToken) =
    task {
        use req = new HttpRequestMessage(HttpMethod.Get, url + $"/workspaces/{a.Id}/events/stream")
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", a.Token)
        use! resp = http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, stop)
        use! body = resp.Content.ReadAsStreamAsync(stop)
        use lines = new StreamReader(body)
        let mutable signalled = false

        try
            let mutable go = true

            while go && not stop.IsCancellationRequested do
                let! line = lines.ReadLineAsync(stop)

                if isNull line then go <- false
                elif line.StartsWith ":" && not signalled then
                    signalled <- true
                    ready.Signal() |> ignore
                elif line.StartsWith "data: " && line.Contains "\"message_id\"" then
                    let frame = JsonNode.Parse(line.Substring 6)

                    match frame["data"]["message_id"] with
                    | null -> ()
                    | m -> arrived.TryAdd(m.GetValue<string>(), clock.Elapsed.TotalMilliseconds) |> ignore
        with :? OperationCanceledException ->
            ()
    }

type Measured =
    { Label: string
      Accepted: float
      Sent: int
      /// Load messages the platform did not take (an answer other than 200, or none in the client's time).
      Refused: int
      /// Load messages taken (200) whose ring never came.
      Lost: int
      P50: float
      P99: float
      Max: float
      PostP99: float
      /// CPU ms per accepted message in the flat-out phase: the platform process(es), PostgreSQL's.
      PlatformCpu: float
      DatabaseCpu: float
      /// The same at the load's fixed rate (the platform's cost of a message when it is not saturated).
      LoadPlatformCpu: float
      LoadDatabaseCpu: float }

/// One set-up: the team, its streams on the first instance, the flat-out phase, the load.
let measure (label: string) (urls: string list) (pids: int list) (postgres: bool) (admin: string) : Measured =
    let team = [| for i in 1..agents -> createAgent urls.Head admin i |]
    let clock = Stopwatch.StartNew()
    let arrived = ConcurrentDictionary<string, float>()
    use stop = new CancellationTokenSource()
    use ready = new CountdownEvent(team.Length)
    let streams = [| for a in team -> listen urls.Head a clock arrived ready stop.Token |]

    if not (ready.Wait(TimeSpan.FromSeconds 30.0)) then failwith "the agents' streams did not open"

    let send (url: string) (from: int) (toward: int) (id: string) =
        let a, b = team[from], team[toward]
        call url HttpMethod.Post $"/workspaces/{b.Id}/a2a" (Some(message id)) a.Token (Some a.Id)

    let peer (rnd: Random) (from: int) = (from + 1 + rnd.Next(team.Length - 1)) % team.Length
    // accepted per second: flat out for warmupSecs (not counted), then for acceptSecs
    let count = ref 0
    let snapshot (ps: int list) = [ for p in ps -> p, cpuMs p ]
    /// CPU ms used since `before` (a snapshot) by its processes still alive: a backend that ended meanwhile takes
    /// its time with it (counted as none, not as minus what it had used before).
    let spent (before: (int * float) list) = before |> List.sumBy (fun (p, b) -> max 0.0 (cpuMs p - b))

    let flatOut (secs: float) (phase: string) =
        let until = clock.Elapsed.TotalSeconds + secs

        let sender (n: int) =
            task {
                let rnd = Random(n)

                while clock.Elapsed.TotalSeconds < until do
                    let from = rnd.Next team.Length
                    let i = Interlocked.Increment count
                    let! code, text = send urls[n % urls.Length] from (peer rnd from) $"{label}-{phase}-{i}"
                    if code <> 200 then failwith $"send: {code} {text}"
            }

        Task.WaitAll [| for n in 1..senders -> sender n :> Task |]

    flatOut warmupSecs "w"
    count.Value <- 0
    // the database's processes now (its pool's backends are open after the warm-up)
    let dbPids = if postgres then clusterPids () else []
    let platformBefore, dbBefore = snapshot pids, snapshot dbPids
    let began = clock.Elapsed.TotalSeconds
    flatOut acceptSecs "a"
    let accepted = float count.Value / (clock.Elapsed.TotalSeconds - began)
    let platformCpu, dbCpu = spent platformBefore / float count.Value, spent dbBefore / float count.Value
    Thread.Sleep 1000 // the rings of the flat-out phase drain
    // the load: rate messages a second on a fixed schedule, to the last instance
    let total = int (rate * loadSecs)
    let loadPlatformBefore, loadDbBefore = snapshot pids, snapshot dbPids
    let sentAt = ConcurrentDictionary<string, float>()
    let posts = ConcurrentBag<float>()
    let refused = ConcurrentDictionary<string, string>()
    let rnd = Random(7)
    let t0 = clock.Elapsed.TotalMilliseconds

    let inflight =
        [| for k in 0 .. total - 1 do
               let due = t0 + float k * 1000.0 / rate
               let wait = due - clock.Elapsed.TotalMilliseconds
               if wait > 1.0 then Thread.Sleep(TimeSpan.FromMilliseconds wait)
               let from = rnd.Next team.Length
               let toward = peer rnd from
               let id = $"{label}-load-{k}"

               yield
                   task {
                       let at = clock.Elapsed.TotalMilliseconds

                       try
                           let! code, _ = send (List.last urls) from toward id
                           posts.Add(clock.Elapsed.TotalMilliseconds - at)
                           if code = 200 then sentAt[id] <- at else refused[id] <- $"HTTP {code}"
                       with
                       | :? HttpRequestException
                       | :? TaskCanceledException as e -> refused[id] <- e.GetType().Name
                   }
                   :> Task |]

    Task.WaitAll inflight

    for reason, n in refused.Values |> Seq.countBy id do
        eprintfn $"{label}: {n} load message(s) refused: {reason}"
    let loadPlatformCpu, loadDbCpu = spent loadPlatformBefore / float total, spent loadDbBefore / float total
    let deadline = Stopwatch.StartNew()

    while sentAt.Keys |> Seq.exists (fun id -> not (arrived.ContainsKey id)) && deadline.Elapsed.TotalSeconds < 10.0 do
        Thread.Sleep 50

    stop.Cancel()
    (try Task.WaitAll(streams |> Array.map (fun t -> t :> Task), 5000) |> ignore with :? AggregateException -> ())

    let latencies =
        [| for KeyValue(id, at) in sentAt do
               match arrived.TryGetValue id with
               | true, got -> yield got - at
               | _ -> () |]

    { Label = label
      Accepted = accepted
      Sent = total
      Refused = refused.Count
      Lost = sentAt.Count - latencies.Length
      P50 = percentile 0.5 latencies
      P99 = percentile 0.99 latencies
      Max = (if latencies.Length = 0 then nan else Array.max latencies)
      PostP99 = percentile 0.99 (posts.ToArray())
      PlatformCpu = platformCpu
      DatabaseCpu = dbCpu
      LoadPlatformCpu = loadPlatformCpu
      LoadDatabaseCpu = loadDbCpu }

let stop (ps: Process list) =
    for p in ps do
        if not p.HasExited then p.Kill()
        p.WaitForExit()
        running.Remove p |> ignore

let adminOf (d: string) = File.ReadAllText(Path.Combine(d, "admin_token")).Trim()
let results = ResizeArray<Measured>()
let sw = Stopwatch.StartNew()
let load () = (File.ReadAllText "/proc/loadavg").Split(' ')[0]
printfn $"load average at the start: {load ()}"

try
    if only.Contains "sqlite" then
        let d = TempDirs.create "sqlite"
        let p, url = start d []
        results.Add(measure "SQLite, 1 instance" [ url ] [ p.Id ] false (adminOf d))
        stop [ p ]

    if only.Contains "pg1" then
        let d = TempDirs.create "pg1"
        let db = Postgres.urlFor d
        dbCpus |> Option.iter (fun c -> limit "db" c (clusterPids ()))
        let p, url = start d [ "--database"; db ]
        results.Add(measure "PostgreSQL, 1 instance" [ url ] [ p.Id ] true (adminOf d))
        stop [ p ]

    if only.Contains "pg2" then
        let d1, d2 = TempDirs.create "pg2a", TempDirs.create "pg2b"
        let db = Postgres.urlFor d1
        dbCpus |> Option.iter (fun c -> limit "db" c (clusterPids ()))
        let p1, url1 = start d1 [ "--database"; db ]

        for f in [ "admin_token"; "secret_key" ] do
            File.Copy(Path.Combine(d1, f), Path.Combine(d2, f))

        let p2, url2 = start d2 [ "--database"; db ]
        results.Add(measure "PostgreSQL, 2 instances (every ring crosses)" [ url1; url2 ] [ p1.Id; p2.Id ] true (adminOf d1))
        stop [ p1; p2 ]
finally
    // however the run ends (a set-up that failed too): no platform process or CPU group left behind
    stop (List.ofSeq running)
    unlimitAll ()

let shares =
    match cpus with
    | Some c -> $"CPU: each platform process {c} cores of its own, PostgreSQL {dbCpus.Value} cores (cgroup quotas)"
    | None -> "CPU: every process shares the machine's cores"

let baseline = results |> Seq.tryFind (fun r -> r.Label.StartsWith "SQLite") |> Option.map (fun r -> r.Accepted)
let ratio (a: float) = baseline |> Option.map (fun b -> (a / b).ToString("0.00", inv) + "×") |> Option.defaultValue "—"
printfn $"{agents} agents, {senders} senders flat out for {f1 warmupSecs} s (warm-up) and {f1 acceptSecs} s, then {f1 rate} msg/s for {f1 loadSecs} s; load average at the end: {load ()}; whole run {f1 sw.Elapsed.TotalSeconds} s; {shares}"
printfn "| set-up | accepted/s | × SQLite | CPU ms per accepted message: platform / database | load: sent | CPU ms per message at the load's rate: platform / database | refused | lost | send→push p50 (ms) | p99 (ms) | max (ms) | POST p99 (ms) |"
printfn "|---|---|---|---|---|---|---|---|---|---|---|---|"
let f2 (x: float) = x.ToString("0.00", inv)

for r in results do
    printfn $"| {r.Label} | {f1 r.Accepted} | {ratio r.Accepted} | {f2 r.PlatformCpu} / {f2 r.DatabaseCpu} | {r.Sent} | {f2 r.LoadPlatformCpu} / {f2 r.LoadDatabaseCpu} | {r.Refused} | {r.Lost} | {f1 r.P50} | {f1 r.P99} | {f1 r.Max} | {f1 r.PostP99} |"
