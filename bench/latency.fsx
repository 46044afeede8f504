// Send → channel-notification latency of molecule-mcp against the local platform (issue 8), in one run:
//   1. one agent, messages at random moments, default 5 s poll, with the event stream;
//   2. the same with the stream switched off (MOLECULE_MCP_DISABLE_STREAM=1) as the baseline;
//   3. load: 20 agents, 50 messages/s for 60 s, with the stream — p99, lost/duplicated, platform CPU.
// Usage (after `dotnet fsi build.fsx publish`): dotnet fsi bench/latency.fsx [--messages N] [--load-secs S]
#load "Common.fsx"
open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Common

let mcp = Path.Combine(root, "artifacts", "molecule-mcp", "molecule-mcp")
let platformBin = Path.Combine(root, "artifacts", "molecule-platform", "molecule-platform")
if not (File.Exists mcp && File.Exists platformBin) then (eprintfn "publish first: dotnet fsi build.fsx publish"; exit 2)

let messages = int (argOr "--messages" "30")
let loadSecs = int (argOr "--load-secs" "60")
let clock = Stopwatch.StartNew()
let now () = clock.Elapsed.TotalMilliseconds
let tmp = Path.Combine(Path.GetTempPath(), "molecule-latency-" + Guid.NewGuid().ToString("N").Substring(0, 8))
Directory.CreateDirectory tmp |> ignore

// ------------------------------------------------------------------ the platform, as its own process
let dataDir = Path.Combine(tmp, "platform")
let platform =
    let psi = ProcessStartInfo(platformBin, $"platform --data-dir {dataDir} --port 0", RedirectStandardOutput = true, RedirectStandardError = true)
    let p = Process.Start psi
    // drained: the platform logs every row, and a full pipe would block its writes (and every request behind them)
    p.OutputDataReceived.Add ignore
    p.ErrorDataReceived.Add ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p
let info =
    let file = Path.Combine(dataDir, "platform.json")
    let sw = Stopwatch.StartNew()
    while not (File.Exists file) && sw.Elapsed.TotalSeconds < 30.0 do Thread.Sleep 50
    Thread.Sleep 100
    JsonNode.Parse(File.ReadAllText file)
let url = info["url"].GetValue<string>()
let admin = File.ReadAllText(Path.Combine(dataDir, "admin_token")).Trim()
let http = new HttpClient(BaseAddress = Uri url)
let post (path: string) (body: string) (token: string) =
    task {
        use req = new HttpRequestMessage(HttpMethod.Post, path, Content = new StringContent(body, Encoding.UTF8, "application/json"))
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return int resp.StatusCode, text
    }
let createWorkspace (name: string) =
    let code, text = (post "/workspaces" $"{{\"name\":\"{name}\"}}" admin).Result
    if code <> 201 then failwith $"create workspace: {code} {text}"
    let j = JsonNode.Parse text
    j["id"].GetValue<string>(), j["auth_token"].GetValue<string>()
let send (ws: string) (text: string) =
    let body =
        $"{{\"jsonrpc\":\"2.0\",\"id\":\"{Guid.NewGuid()}\",\"method\":\"message/send\",\"params\":{{\"message\":{{\"role\":\"user\",\"messageId\":\"{Guid.NewGuid()}\",\"parts\":[{{\"kind\":\"text\",\"text\":\"{text}\"}}]}}}}}}"
    post $"/workspaces/{ws}/a2a" body admin

// ------------------------------------------------------------------ an agent: molecule-mcp over raw stdio
type Agent(ws: string, token: string, stream: bool) =
    let received = ConcurrentDictionary<string, ResizeArray<float>>()
    let proc =
        let psi = ProcessStartInfo(mcp, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true)
        for k, v in [ "WORKSPACE_ID", ws; "PLATFORM_URL", url; "MOLECULE_WORKSPACE_TOKEN", token; "CONFIGS_DIR", Path.Combine(tmp, ws) ] do
            psi.Environment[k] <- v
        if not stream then psi.Environment["MOLECULE_MCP_DISABLE_STREAM"] <- "1"
        Process.Start psi
    do
        proc.ErrorDataReceived.Add ignore
        proc.BeginErrorReadLine()
        Task.Run(fun () ->
            let mutable line = proc.StandardOutput.ReadLine()
            while not (isNull line) do
                let at = now ()
                if line.Contains "notifications/claude/channel" then
                    let node = JsonNode.Parse line
                    let pars = node["params"]
                    // content is "[from …]" / the text / "↩ Reply: …": the text is the middle
                    let lines = pars["content"].GetValue<string>().Split('\n')
                    let content = if lines.Length >= 3 then String.Join("\n", lines[1 .. lines.Length - 2]) else String.Join("\n", lines)
                    received.GetOrAdd(content, fun _ -> ResizeArray()).Add at
                line <- proc.StandardOutput.ReadLine()) |> ignore
        proc.StandardInput.WriteLine """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"latency","version":"1"}}}"""
        proc.StandardInput.WriteLine """{"jsonrpc":"2.0","method":"notifications/initialized"}"""
        proc.StandardInput.Flush()
    member _.Ws = ws
    member _.Received = received
    member _.Stop() = (try proc.Kill() with _ -> ()); proc.WaitForExit()

let percentile (p: float) (xs: float[]) =
    let s = Array.sort xs
    if s.Length = 0 then nan else s[min (s.Length - 1) (int (Math.Ceiling(p / 100.0 * float s.Length)) - 1 |> max 0)]

let posts = ConcurrentBag<float>()

let measure (agents: Agent list) (count: int) (gap: unit -> int) =
    let rnd = Random(42)
    let sends = ResizeArray<Task<(string * string * float) option>>()
    let mutable due = now ()
    for i in 1..count do
        // Paced by a schedule (not by sleeps after each send), so the rate holds.
        due <- due + float (gap ())
        let wait = due - now ()
        if wait > 0.0 then Thread.Sleep(TimeSpan.FromMilliseconds wait)
        let a = agents[rnd.Next agents.Length]
        let text = $"m-{a.Ws.Substring(0, 8)}-{i}"
        let t = now ()
        sends.Add(task {
            let! code, body = send a.Ws text
            posts.Add(now () - t)
            if code = 200 then return Some(a.Ws, text, t)
            else
                eprintfn $"send failed {code} {body}"
                return None })
    let sent = (Task.WhenAll sends).Result |> Array.choose id
    Thread.Sleep 8000 // let the slowest poll catch up
    let byWs = agents |> List.map (fun a -> a.Ws, a) |> Map.ofList
    let latencies = ResizeArray<float>()
    let mutable lost, dup = 0, 0
    for ws, text, t in sent do
        match byWs[ws].Received.TryGetValue text with
        | true, times ->
            latencies.Add(times[0] - t)
            if times.Count > 1 then dup <- dup + 1
        | _ -> lost <- lost + 1
    latencies.ToArray(), sent.Length, lost, dup

let cpuTicks (pid: int) =
    let f = File.ReadAllText($"/proc/{pid}/stat").Split(' ')
    int64 f[13] + int64 f[14]

let row (name: string) (l: float[]) sent lost dup extra =
    let f (x: float) = x.ToString("0", Globalization.CultureInfo.InvariantCulture)
    printfn $"| {name} | {sent} | {f (percentile 50.0 l)} | {f (percentile 95.0 l)} | {f (percentile 99.0 l)} | {f (Array.max l)} | {lost} | {dup} | {extra} |"

let startAgents (n: int) (stream: bool) =
    let agents = [ for i in 1..n -> let id, tok = createWorkspace $"latency {stream} {i}" in Agent(id, tok, stream) ]
    Thread.Sleep 3000
    agents

printfn "| scenario | sent | p50 ms | p95 ms | p99 ms | max ms | lost | duplicated | notes |"
printfn "|---|---|---|---|---|---|---|---|---|"
let rnd = Random(7)
let withStream = startAgents 1 true
let l1, s1, lost1, dup1 = measure withStream messages (fun () -> 300 + rnd.Next 2700)
row "1 agent, stream" l1 s1 lost1 dup1 ""
withStream |> List.iter (fun a -> a.Stop())
let noStream = startAgents 1 false
let l2, s2, lost2, dup2 = measure noStream messages (fun () -> 300 + rnd.Next 2700)
let ratio = percentile 50.0 l2 / percentile 50.0 l1
row "1 agent, stream off (baseline)" l2 s2 lost2 dup2 (ratio.ToString("0.0", Globalization.CultureInfo.InvariantCulture) + "× slower p50")
noStream |> List.iter (fun a -> a.Stop())
let load = startAgents 20 true
let cpu0, t0 = cpuTicks platform.Id, now ()
let l3, s3, lost3, dup3 = measure load (50 * loadSecs) (fun () -> 20)
let cpu = float (cpuTicks platform.Id - cpu0) / 100.0 / ((now () - t0) / 1000.0) * 100.0
row "20 agents, 50 msg/s, stream" l3 s3 lost3 dup3 $"platform CPU {cpu:F0} %% of one core; POST p50 {percentile 50.0 (posts.ToArray()):F0} ms p99 {percentile 99.0 (posts.ToArray()):F0} ms"
load |> List.iter (fun a -> a.Stop())
platform.Kill()
try Directory.Delete(tmp, true) with _ -> ()
