// Benchmarks: `dotnet fsi bench/bench.fsx` after `dotnet fsi build.fsx publish` and `publish-fd` (what
// `dotnet fsi build.fsx bench` runs). Every number is compared with a baseline measured in the same run, as a ratio.
// Part A compares three MCP stdio servers: molecule-mcp native (NativeAOT), molecule-mcp framework-dependent (the
// "any" tool package: `dotnet molecule-mcp.dll`) and @modelcontextprotocol/server-memory on Node.js (bench/node).
// Part B keeps the earlier in-process measurements. Part C starts a library agent (samples/CSharp, native and
// framework-dependent) beside molecule-mcp native, each with a message waiting for it (BENCH_ONLY=library: only C).
#r "../artifacts/molecule-mcp-fd/Molecule.Protocol.dll"
#r "../artifacts/molecule-mcp-fd/Molecule.Core.dll"

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Text.Json.Nodes
open System.Threading
open Molecule.Core
open Molecule.Protocol

let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))
/// BENCH_NATIVE: another native build to measure instead of artifacts/molecule-mcp (experiments).
let native =
    match Environment.GetEnvironmentVariable "BENCH_NATIVE" with
    | null | "" -> Path.Combine(root, "artifacts", "molecule-mcp", "molecule-mcp")
    | p -> p
let fdDll = Path.Combine(root, "artifacts", "molecule-mcp-fd", "molecule-mcp.dll")
let platformBin = Path.Combine(root, "artifacts", "molecule-platform", "molecule-platform")
/// bench/floor published: the least a NativeAOT server doing the same I/O costs (no SDK, F#, logging, CLI, Polly).
let floorBin = Path.Combine(root, "artifacts", "floor", "floor")
let nodeDir = Path.Combine(__SOURCE_DIRECTORY__, "node")
let nodeServer = Path.Combine(nodeDir, "node_modules", "@modelcontextprotocol", "server-memory", "dist", "index.js")
/// samples/CSharp (the README's loop with a console logger) published NativeAOT and framework-dependent (part C).
let sampleNative = Path.Combine(root, "artifacts", "molecule-sample-csharp", "molecule-sample-csharp")
let sampleFdDll = Path.Combine(root, "artifacts", "molecule-sample-csharp-fd", "molecule-sample-csharp.dll")
/// BENCH_ONLY=load: only the load measurement (A2); BENCH_ONLY=library: only the library agent (C).
let onlyLoad = Environment.GetEnvironmentVariable "BENCH_ONLY" = "load"
let onlyLibrary = Environment.GetEnvironmentVariable "BENCH_ONLY" = "library"

for f in (if onlyLibrary then [ native; platformBin; sampleNative; sampleFdDll ] else [ native; fdDll; platformBin; floorBin; sampleNative; sampleFdDll ]) do
    if not (File.Exists f) then (eprintfn "missing %s: run `dotnet fsi build.fsx bench`" f; exit 2)

if not onlyLibrary && not (File.Exists nodeServer) then
    eprintfn "[bench] npm ci --prefix bench/node (the Node.js baseline)"
    let p = Process.Start(ProcessStartInfo("npm", $"ci --prefix \"{nodeDir}\" --no-audit --no-fund", UseShellExecute = false))
    p.WaitForExit()
    if p.ExitCode <> 0 then (eprintfn "npm ci failed: install Node.js 18+ and npm"; exit 2)

let inv = Globalization.CultureInfo.InvariantCulture
let median (xs: float list) = let s = List.sort xs in s.[s.Length / 2]
let ratio (a: float) (b: float) = (a / b).ToString("0.000", inv)
/// Spawns of each server (A1) and starts of each agent (C), after one warm-up.
let runs = 15
let ms (t: TimeSpan) = t.TotalMilliseconds
let fmt (x: float) = x.ToString("0.00", inv)
let fmt1 (x: float) = x.ToString("0.0", inv)
let tmp = Path.Combine(Path.GetTempPath(), "molecule-bench-" + Guid.NewGuid().ToString("N").Substring(0, 8))
Directory.CreateDirectory tmp |> ignore

// ------------------------------------------------------------------------------------------------ local platform

let freePort () =
    let l = new TcpListener(IPAddress.Loopback, 0)
    l.Start()
    let p = (l.LocalEndpoint :?> IPEndPoint).Port
    l.Stop()
    p

let platformDir = Path.Combine(tmp, "platform")
let port = freePort ()
let platformUrl = $"http://127.0.0.1:{port}"

let platformProc =
    let psi = ProcessStartInfo(platformBin, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    // A2 sends 50 messages/s from one peer token: above the platform's default limit of 600 A2A sends a minute
    for a in [ "platform"; "--data-dir"; platformDir; "--port"; string port; "--rate-a2a"; "0" ] do psi.ArgumentList.Add a
    let p = Process.Start psi
    p.OutputDataReceived.Add ignore
    p.ErrorDataReceived.Add ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p

let http = new HttpClient(BaseAddress = Uri platformUrl, Timeout = TimeSpan.FromSeconds 30.0)

let rec waitPlatform n =
    let up = try http.GetAsync("/health").Result.StatusCode <> HttpStatusCode.ServiceUnavailable with _ -> false
    if not up && n > 0 then (Thread.Sleep 100; waitPlatform (n - 1))
    elif not up then failwith "the local platform did not start"

waitPlatform 200
let adminToken = File.ReadAllText(Path.Combine(platformDir, "admin_token")).Trim()

let post (path: string) (body: string) (token: string) (caller: string option) =
    use req = new HttpRequestMessage(System.Net.Http.HttpMethod.Post, path, Content = new StringContent(body, Encoding.UTF8, "application/json"))
    req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
    caller |> Option.iter (fun c -> req.Headers.Add("X-Workspace-ID", c))
    use resp = http.Send req
    int resp.StatusCode, resp.Content.ReadAsStringAsync().Result

/// An A2A `message/send` body carrying one text.
let a2aBody (id: string) (text: string) =
    $"{{\"jsonrpc\":\"2.0\",\"id\":\"{id}\",\"method\":\"message/send\",\"params\":{{\"message\":{{\"role\":\"user\",\"messageId\":\"{Guid.NewGuid()}\",\"parts\":[{{\"kind\":\"text\",\"text\":\"{text}\"}}]}}}}}}"

let createWorkspace (name: string) =
    let code, body = post "/workspaces" $"{{\"name\":\"{name}\"}}" adminToken None
    if code <> 201 then failwith $"create workspace: HTTP {code} {body}"
    let j = JsonNode.Parse body
    j["id"].GetValue<string>(), j["auth_token"].GetValue<string>()

// ------------------------------------------------------------------------------------------------ a stdio server

/// One server process: lines in; stdout lines read on a thread and timestamped.
type Server(file: string, args: string list, env: (string * string) list) =
    let sw = Stopwatch.StartNew()
    let proc =
        let psi = ProcessStartInfo(file, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        for a in args do psi.ArgumentList.Add a
        for (k, v) in env do psi.Environment.[k] <- v
        Process.Start psi
    let spawned = sw.Elapsed
    let lines = new BlockingCollection<TimeSpan * string>()
    let notifications = ConcurrentQueue<JsonNode>()
    let mutable onNotification : JsonNode -> unit = ignore
    let reader =
        Thread((fun () ->
            let mutable go = true
            while go do
                match proc.StandardOutput.ReadLine() with
                | null -> go <- false
                | l ->
                    let t = sw.Elapsed
                    let isNote = l.Contains "\"method\":\"notifications/"
                    if isNote then
                        let n = JsonNode.Parse l
                        notifications.Enqueue n
                        onNotification n
                    else lines.Add((t, l))
            lines.CompleteAdding()), IsBackground = true)
    do
        proc.ErrorDataReceived.Add ignore
        proc.BeginErrorReadLine()
        reader.Start()
    let mutable nextId = 0
    member _.SinceSpawn = sw.Elapsed
    member _.Notifications = notifications
    member _.OnNotification with set f = onNotification <- f
    member _.Send(line: string) =
        lock proc (fun () ->
            proc.StandardInput.Write(line + "\n")
            proc.StandardInput.Flush())
    /// Sends a request and waits for its response; returns (time of the response since spawn, round trip, line).
    member this.Request(methodName: string, ?pars: string) =
        let id = Interlocked.Increment &nextId
        let p = defaultArg pars "{}"
        let started = sw.Elapsed
        this.Send $"{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{methodName}\",\"params\":{p}}}"
        let key = $"\"id\":{id}"
        let rec wait () =
            let mutable item = Unchecked.defaultof<TimeSpan * string>
            if lines.TryTake(&item, TimeSpan.FromSeconds 30.0) then
                let t, l = item
                if l.Contains key then t, t - started, l else wait ()
            else failwith $"no answer to {methodName} from {file}"
        wait ()
    member this.Initialize() =
        let t, _, _ =
            this.Request("initialize", """{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}""")
        this.Send """{"jsonrpc":"2.0","method":"notifications/initialized"}"""
        t
    member this.Call(tool: string, arguments: string) =
        let _, rt, l = this.Request("tools/call", $"{{\"name\":\"{tool}\",\"arguments\":{arguments}}}")
        if l.Contains "\"isError\":true" then failwith $"{tool} failed: {l}"
        rt
    /// Peak resident set size so far (VmHWM), MiB.
    member _.PeakRssMiB =
        File.ReadAllLines($"/proc/{proc.Id}/status")
        |> Array.find (fun l -> l.StartsWith "VmHWM:")
        |> fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries).[1]) / 1024.0
    /// Waits for a stdout line that `pred` accepts (a program that logs rather than serves); its time since spawn.
    member _.WaitLine(pred: string -> bool) =
        let rec wait () =
            let mutable item = Unchecked.defaultof<TimeSpan * string>
            if lines.TryTake(&item, TimeSpan.FromSeconds 30.0) then
                let t, l = item
                if pred l then t else wait ()
            else failwith $"no such line from {file}"
        wait ()
    member _.Kill() = proc.Kill true
    member _.Spawned = spawned
    /// CPU time so far (ms): the sum over the process's live threads of /proc/<pid>/task/<tid>/schedstat (ns on CPU).
    /// Independent of how busy the machine is, unlike the wall-clock times.
    member _.CpuMs =
        Directory.GetDirectories($"/proc/{proc.Id}/task")
        |> Array.sumBy (fun t -> try float (File.ReadAllText(Path.Combine(t, "schedstat")).Split(' ').[0]) with _ -> 0.0)
        |> fun ns -> ns / 1e6
    member _.Pid = proc.Id
    interface IDisposable with
        member _.Dispose() =
            try proc.StandardInput.Close() with _ -> ()
            if not (proc.WaitForExit 5000) then proc.Kill true
            proc.Dispose()

type Kind =
    { Name: string
      Start: (string * string) list -> Server
      /// A tool call: name, arguments, and what it does.
      Tool: string * string * string }

/// Extra environment for every molecule-mcp process, e.g. BENCH_AGENT_ENV="DOTNET_GCgen0size=0x200000" (GC experiments).
let benchAgentEnv =
    match Environment.GetEnvironmentVariable "BENCH_AGENT_ENV" with
    | null | "" -> []
    | s -> s.Split(' ', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun kv -> let i = kv.IndexOf '=' in kv.Substring(0, i), kv.Substring(i + 1)) |> Array.toList

let agentEnv (id: string, token: string) extra =
    benchAgentEnv @
    [ "WORKSPACE_ID", id
      "PLATFORM_URL", platformUrl
      "MOLECULE_WORKSPACE_TOKEN", token
      "CONFIGS_DIR", Path.Combine(tmp, "configs-" + Guid.NewGuid().ToString("N")) ] @ extra

let kinds =
    [ { Name = "molecule-mcp native (NativeAOT)"
        Start = fun env -> new Server(native, [], env)
        Tool = "get_workspace_info", "{}", "GET /workspaces/:id through the local platform" }
      { Name = "molecule-mcp framework-dependent (`dotnet molecule-mcp.dll`)"
        Start = fun env -> new Server("dotnet", [ fdDll ], env)
        Tool = "get_workspace_info", "{}", "GET /workspaces/:id through the local platform" }
      { Name = "@modelcontextprotocol/server-memory (Node.js)"
        Start = fun _ -> new Server("node", [ nodeServer ], [ "MEMORY_FILE_PATH", Path.Combine(tmp, "memory-" + Guid.NewGuid().ToString("N") + ".jsonl") ])
        Tool = "read_graph", "{}", "read_graph (its own JSON file)" }
      { Name = "floor (bench/floor, NativeAOT)"
        Start = fun env -> new Server(floorBin, [], env)
        Tool = "get_workspace_info", "{}", "GET /workspaces/:id through the local platform" } ]

// ------------------------------------------------------------------------------------------------ C: a library agent

/// Whether a workspace's activity (the admin's view: the chat and the messages) holds `text`.
let activityHas (id: string) (text: string) =
    use req = new HttpRequestMessage(System.Net.Http.HttpMethod.Get, $"/workspaces/{id}/activity?limit=50")
    req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", adminToken)
    use resp = http.Send req
    resp.Content.ReadAsStringAsync().Result.Contains text

/// Proportional set size (MiB): the resident pages, each shared page divided among the processes that map it.
let pssMiB (pid: int) =
    File.ReadAllLines($"/proc/{pid}/smaps_rollup")
    |> Array.find (fun l -> l.StartsWith "Pss:")
    |> fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries).[1]) / 1024.0

type AgentRun = { InHand: float; Answered: float; Rss: float; Pss: float; Cpu: float }

/// One start of an agent with a canvas message waiting for it: spawn → the message in hand (`inHand`, which also
/// has it answered) and spawn → the answer in the workspace's chat; then its peak RSS, PSS and CPU time.
let agentOnce (start: (string * string) list -> Server) (inHand: Server -> string -> TimeSpan) =
    let workspace = createWorkspace "bench-library"
    let text = "bench message " + Guid.NewGuid().ToString("N")
    let code, body = post $"/workspaces/{fst workspace}/a2a" (a2aBody "1" text) adminToken None
    if code <> 200 then failwith $"canvas message: HTTP {code} {body}"
    use s = start (agentEnv workspace [])
    let hand = inHand s text
    let limit = Stopwatch.StartNew()
    while not (activityHas (fst workspace) ("Agent message: Done: " + text)) do
        if limit.Elapsed > TimeSpan.FromSeconds 30.0 then failwith "no answer in the chat within 30 s"
        Thread.Sleep 2
    let run = { InHand = ms hand; Answered = ms s.SinceSpawn; Rss = s.PeakRssMiB; Pss = pssMiB s.Pid; Cpu = s.CpuMs }
    s.Kill()
    run

/// samples/CSharp logs "Handling <message>" when its loop body starts, then answers.
let sampleInHand (s: Server) (_: string) = s.WaitLine(fun l -> l.Contains "Handling")

/// molecule-mcp pushes the message after the handshake; its client answers as an agent would (send_message_to_user,
/// inbox_pop).
let mcpInHand (s: Server) (text: string) =
    let pushed = new BlockingCollection<TimeSpan * JsonNode>()
    s.OnNotification <- fun n -> if string n["method"] = "notifications/claude/channel" then pushed.Add((s.SinceSpawn, n))
    s.Initialize() |> ignore
    let mutable item = Unchecked.defaultof<TimeSpan * JsonNode>
    if not (pushed.TryTake(&item, TimeSpan.FromSeconds 30.0)) then failwith "molecule-mcp pushed nothing within 30 s"
    let at, n = item
    s.Call("send_message_to_user", $"{{\"message\":\"Done: {text}\"}}") |> ignore
    let id = n["params"].["meta"].["activity_id"].GetValue<string>()
    s.Call("inbox_pop", $"{{\"activity_id\":\"{id}\"}}") |> ignore
    at

let libraryKinds =
    [ "samples/CSharp native (NativeAOT)", (fun env -> new Server(sampleNative, [], env)), sampleInHand
      "samples/CSharp framework-dependent", (fun env -> new Server("dotnet", [ sampleFdDll ], env)), sampleInHand
      "molecule-mcp native (NativeAOT)", (fun env -> new Server(native, [], env)), mcpInHand ]

/// Every kind once a round, interleaved (so the machine's load is shared alike); the first round is a warm-up.
let measureLibrary () =
    eprintfn "[bench] C: %d rounds of a library agent and molecule-mcp, each with a message waiting" (runs + 1)
    let rounds = [ for _ in 0..runs -> [ for (_, start, inHand) in libraryKinds -> agentOnce start inHand ] ]
    List.tail rounds |> List.transpose

let printLibrary (measured: AgentRun list list) =
    let med f (xs: AgentRun list) = xs |> List.map f |> median
    let size (f: string) = float (FileInfo(f).Length) / 1048576.0
    printfn ""
    printfn "C. A library agent: samples/CSharp (the README's loop with a console logger) beside molecule-mcp, %d starts each" runs
    printfn "after a warm-up round, interleaved; each start finds one canvas message waiting and answers it in the chat"
    printfn "(molecule-mcp as its client tells it: send_message_to_user, inbox_pop). Medians."
    printfn ""
    printfn "| measurement | %s | sample native / molecule-mcp | sample native / framework-dependent |" (String.Join(" | ", libraryKinds |> List.map (fun (n, _, _) -> n)))
    printfn "|---|---|---|---|---|---|"
    let row name unit' (f: AgentRun -> float) =
        match measured |> List.map (med f) with
        | [ n; d; m ] -> printfn "| %s (%s) | %s | %s | %s | %s | %s |" name unit' (fmt n) (fmt d) (fmt m) (ratio n m) (ratio n d)
        | _ -> ()
    row "spawn → the waiting message in hand" "ms" (fun r -> r.InHand)
    row "spawn → its answer in the chat" "ms" (fun r -> r.Answered)
    row "CPU time to the answer" "ms" (fun r -> r.Cpu)
    row "max RSS (VmHWM) at the answer" "MiB" (fun r -> r.Rss)
    row "PSS at the answer" "MiB" (fun r -> r.Pss)
    printfn "| executable (MiB) | %s | (dll + the shared runtime) | %s | %s | |" (fmt (size sampleNative)) (fmt (size native)) (ratio (size sampleNative) (size native))

let library = if onlyLoad then [] else measureLibrary ()
if onlyLibrary then
    printLibrary library
    platformProc.Kill true
    try Directory.Delete(tmp, true) with _ -> ()
    exit 0

// ------------------------------------------------------------------------------------------------ A1: start, list, call, RSS

let ws = createWorkspace "bench-agent"

type Sample = { Init: float; List: float; FirstCall: float; Rss: float; Cpu: float }

let measure (k: Kind) =
    let once () =
        use s = k.Start(agentEnv ws [])
        let init = ms (s.Initialize())
        let _, list, _ = s.Request "tools/list"
        let tool, args, _ = k.Tool
        let call = s.Call(tool, args)
        { Init = init; List = ms list; FirstCall = ms call; Rss = s.PeakRssMiB; Cpu = s.CpuMs }
    once () |> ignore // warm-up (file cache)
    let samples = [ for _ in 1..runs -> once () ]
    let steady =
        use s = k.Start(agentEnv ws [])
        s.Initialize() |> ignore
        let tool, args, _ = k.Tool
        for _ in 1..20 do s.Call(tool, args) |> ignore
        [ for _ in 1..200 -> ms (s.Call(tool, args)) ]
    k, samples, median steady

let results =
    if onlyLoad then []
    else
        eprintfn "[bench] A1: %d spawns of each server" (runs + 1)
        kinds |> List.map measure

// ------------------------------------------------------------------------------------------------ A2: RSS under load

/// One agent receiving `rate` messages/s for `secs` s from a peer, popping each one as its channel notification
/// arrives (what an agent does); peak RSS and how many messages came through.
let load (k: Kind) (rate: int) (secs: int) =
    let receiver = createWorkspace "bench-receiver"
    let senderId, senderToken = createWorkspace "bench-sender"
    let total = rate * secs
    use s = k.Start(agentEnv receiver [ "MOLECULE_MCP_POLL_INTERVAL_SECS", "1" ])
    s.Initialize() |> ignore
    let popped = ref 0
    let pops = new BlockingCollection<string>()
    s.OnNotification <- fun n ->
        match n["params"] with
        | null -> ()
        | p ->
            match p["meta"] with
            | null -> ()
            | m -> match m["activity_id"] with null -> () | a -> pops.Add(a.GetValue<string>())
    let popper =
        Thread((fun () ->
            for id in pops.GetConsumingEnumerable() do
                s.Call("inbox_pop", $"{{\"activity_id\":\"{id}\"}}") |> ignore
                Interlocked.Increment popped |> ignore), IsBackground = true)
    popper.Start()
    let body i = a2aBody (string i) $"load message {i}: please look at item {i} of the backlog"
    let sw = Stopwatch.StartNew()
    for i in 0 .. total - 1 do
        let due = float i * 1000.0 / float rate
        let wait = due - sw.Elapsed.TotalMilliseconds
        if wait > 0.0 then Thread.Sleep(int wait)
        let code, b = post $"/workspaces/{fst receiver}/a2a" (body i) senderToken (Some senderId)
        if code <> 200 then failwith $"send {i}: HTTP {code} {b}"
    let sent = sw.Elapsed.TotalSeconds
    let deadline = Stopwatch.StartNew()
    while popped.Value < total && deadline.Elapsed < TimeSpan.FromSeconds 30.0 do Thread.Sleep 100
    let rss = s.PeakRssMiB
    let cpu = s.CpuMs / 1000.0
    if Environment.GetEnvironmentVariable "BENCH_SMAPS" = "1" then
        // where the resident memory is: the largest mappings (KiB) and the status lines
        let mutable name = ""
        let sizes = Collections.Generic.Dictionary<string, int>()
        for l in File.ReadAllLines($"/proc/{s.Pid}/smaps") do
            let parts = l.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            if parts.Length > 0 && parts.[0].Contains "-" && not (parts.[0].EndsWith ":") then
                name <- (if parts.Length >= 6 then parts.[5] else "[anon]")
            elif parts.Length > 1 && parts.[0] = "Rss:" then
                sizes.[name] <- (match sizes.TryGetValue name with | true, v -> v | _ -> 0) + int parts.[1]
        for KeyValue(n, v) in sizes |> Seq.sortByDescending (fun kv -> kv.Value) |> Seq.truncate 6 do eprintfn "[smaps] %s: %d KiB" n v
        // the largest anonymous mappings one by one (GC regions, thread stacks, native heap)
        let mutable range = ""
        let mutable anon = false
        let ranges = Collections.Generic.List<string * int>()
        for l in File.ReadAllLines($"/proc/{s.Pid}/smaps") do
            let parts = l.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            if parts.Length > 0 && parts.[0].Contains "-" && not (parts.[0].EndsWith ":") then
                range <- parts.[0]
                anon <- parts.Length < 6
            elif anon && parts.Length > 1 && parts.[0] = "Rss:" then ranges.Add((range, int parts.[1]))
        for (r, v) in ranges |> Seq.sortByDescending snd |> Seq.truncate 8 do
            let a = r.Split('-')
            let size = (Convert.ToInt64(a.[1], 16) - Convert.ToInt64(a.[0], 16)) / 1024L
            eprintfn "[smaps] anon %s (%d KiB mapped): %d KiB resident" r size v
        for l in File.ReadAllLines($"/proc/{s.Pid}/status") do
            if l.StartsWith "Rss" || l.StartsWith "VmHWM" || l.StartsWith "Threads" then eprintfn "[status] %s" l
    pops.CompleteAdding()
    k.Name, rss, cpu, popped.Value, total, sent, sw.Elapsed.TotalSeconds

let rate, loadSecs = 50, 20
eprintfn "[bench] A2: %d messages/s for %d s into one agent" rate loadSecs
let loads = kinds |> List.take 2 |> List.map (fun k -> load k rate loadSecs)

let printLoads () =
    let extra = if benchAgentEnv.IsEmpty then "" else " with " + String.Join(" ", benchAgentEnv |> List.map (fun (k, v) -> k + "=" + v))
    printfn ""
    printfn "A2. One agent receiving %d messages/s for %d s (a peer's A2A messages through the local platform; poll" rate loadSecs
    printfn "interval 1 s; the client pops each message when its channel notification arrives)%s." extra
    printfn ""
    printfn "| build | max RSS (MiB) | CPU time (s) | messages popped / sent | sending took (s) | all popped after (s) |"
    printfn "|---|---|---|---|---|---|"
    for (name, rss, cpu, popped, total, sent, all) in loads do
        printfn "| %s | %s | %s | %d / %d | %s | %s |" name (fmt1 rss) (fmt cpu) popped total (fmt1 sent) (fmt1 all)
    match loads with
    | [ (_, a, ca, _, _, _, _); (_, b, cb, _, _, _, _) ] ->
        printfn "\nnative / framework-dependent under load: max RSS %s, CPU time %s" ((a / b).ToString("0.000", inv)) ((ca / cb).ToString("0.000", inv))
    | _ -> ()

if onlyLoad then
    printLoads ()
    platformProc.Kill true
    exit 0

// ------------------------------------------------------------------------------------------------ B: earlier measurements

let rows = Collections.Generic.List<string * string * string * string>()

// B1. Startup: spawn → initialize answered, vs spawn → exit of `molecule-mcp --version` (bare process start).
let bare =
    [ for _ in 1..runs ->
        let sw = Stopwatch.StartNew()
        let p = Process.Start(ProcessStartInfo(native, "--version", RedirectStandardOutput = true, UseShellExecute = false))
        p.StandardOutput.ReadToEnd() |> ignore
        p.WaitForExit(); ms sw.Elapsed ]
let (_, nativeSamples, _) = results.Head
let nativeInit = nativeSamples |> List.map (fun s -> s.Init) |> median
rows.Add("spawn → initialize answered, native (ms, median of 15)", fmt nativeInit, $"`--version` run: {fmt (median bare)}", fmt (nativeInit / median bare))

// B2. Tool round trip: tools/call inbox_peek vs ping on the same running native server.
let peek, ping =
    use s = new Server(native, [], agentEnv ws [])
    s.Initialize() |> ignore
    for _ in 1..50 do s.Request "ping" |> ignore
    let peek = [ for _ in 1..300 -> ms (s.Call("inbox_peek", """{"limit":10}""")) ]
    let ping = [ for _ in 1..300 -> (let _, rt, _ = s.Request "ping" in ms rt) ]
    peek, ping
rows.Add("tools/call inbox_peek round trip, native (ms, median of 300)", fmt (median peek), $"`ping`: {fmt (median ping)}", fmt (median peek / median ping))

// B3. Core: one inbox poll of a full page (100 rows) vs parsing that page's JSON alone.
let self = "0f8fad5b-d9cb-469f-a165-70867728950e"
let page =
    let arr = JsonArray()
    for i in 0..99 do
        let ts = DateTimeOffset(2026, 11, 21, 12, 0, 0, TimeSpan.Zero).AddMilliseconds(float (i * 250))
        arr.Add(Json.obj [ "id", Json.str (Guid(i, 1s, 1s, Array.zeroCreate 8).ToString())
                           "seq", (JsonValue.Create(int64 (i + 1)) :> JsonNode)
                           "activity_type", Json.str "a2a_receive"
                           "source_id", Json.str "99999999-8888-7777-6666-555555555555"
                           "method", Json.str "message/send"
                           "created_at", Json.str (ts.ToString("O"))
                           "request_body", Json.obj [ "params", Json.obj [ "message", Json.obj [ "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str $"message {i}" ] ] ] ] ] ])
    arr.ToJsonString()
let config =
    match Config.parse (Map [ "WORKSPACE_ID", self; "PLATFORM_URL", "http://127.0.0.1:9"; "MOLECULE_WORKSPACE_TOKEN", "bench-token-123456" ]) tmp None with
    | Ok c -> c
    | Result.Error _ -> failwith "bench config"
let ledger = Ledger.empty (WorkspaceId.tryParse self |> Option.get)
let following = { Intake.start 600 ledger with Phase = Intake.Following }
let timeIt n (f: unit -> unit) =
    for _ in 1..20 do f ()
    let sw = Stopwatch.StartNew()
    for _ in 1..n do f ()
    ms sw.Elapsed * 1000.0 / float n
let pollUs =
    timeIt 500 (fun () ->
        let o = Intake.onResponse config 0.0 0.5 (Reply(200, page)) ledger following
        o.Events |> List.fold Ledger.evolve ledger |> ignore)
let parseUs = timeIt 500 (fun () -> Json.tryParse page |> ignore)
rows.Add("Intake.onResponse + Ledger.evolve, 100-row page (µs per poll)", fmt pollUs, $"JSON parse of the page: {fmt parseUs}", fmt (pollUs / parseUs))

// ------------------------------------------------------------------------------------------------ report

let med f (samples: Sample list) = samples |> List.map f |> median
let (_, nat, natSteady) = results.[0]
let (_, fd, fdSteady) = results.[1]
let (_, node, nodeSteady) = results.[2]
let (_, floor, floorSteady) = results.[3]

printfn ""
printfn "A1. Median of %d spawns each (after a warm-up spawn); steady calls: median of 200 on one process." runs
printfn ""
printfn "| measurement | native | framework-dependent | Node.js server-memory | floor | native / node | native / fd | native / floor |"
printfn "|---|---|---|---|---|---|---|---|"
let line name (n: float) (f: float) (o: float) (b: float) unit' =
    printfn "| %s (%s) | %s | %s | %s | %s | %s | %s | %s |" name unit' (fmt n) (fmt f) (fmt o) (fmt b) (ratio n o) (ratio n f) (ratio n b)
let each (f: Sample -> float) = med f nat, med f fd, med f node, med f floor
let lineOf name (f: Sample -> float) unit' = let n, d, o, b = each f in line name n d o b unit'
lineOf "spawn → `initialize` answered" (fun s -> s.Init) "ms"
lineOf "first `tools/list` round trip" (fun s -> s.List) "ms"
lineOf "first `tools/call` round trip" (fun s -> s.FirstCall) "ms"
line "steady `tools/call` round trip" natSteady fdSteady nodeSteady floorSteady "ms"
lineOf "CPU time of spawn + handshake + list + call" (fun s -> s.Cpu) "ms"
lineOf "max RSS after handshake + list + call" (fun s -> s.Rss) "MiB"
printfn ""
printfn "Tool calls: molecule-mcp `get_workspace_info` (GET /workspaces/:id through the local platform on 127.0.0.1);"
printfn "server-memory `read_graph` (its own JSON file); floor: the same GET as get_workspace_info."
printLoads ()
printLibrary library
printfn ""
printfn "B. In-process and single-server measurements."
printfn ""
printfn "| measurement | value | baseline (same run) | ratio |"
printfn "|---|---|---|---|"
for (a, b, c, d) in rows do printfn "| %s | %s | %s | %s× |" a b c d

platformProc.Kill true
try Directory.Delete(tmp, true) with _ -> ()
