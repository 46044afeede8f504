// The platform on one SQLite instance, one PostgreSQL instance and two PostgreSQL instances on one database
// (issue 17), measured over HTTP against the published molecule-platform, all in the same run:
// - messages accepted per second: A2A sends from 16 concurrent senders to 20 poll-mode workspaces (on two instances
//   the senders alternate between them);
// - send → push latency: the time from a send to its ring (ACTIVITY_LOGGED with its message id) on the workspace's
//   event stream, the stream held on the first instance and the sends made to the last one (on two instances every
//   ring crosses between them through NOTIFY/LISTEN); one send at a time, 20 ms apart.
// PostgreSQL is a throwaway cluster from Debian's package (the tests' Support/Postgres.fs), in a temp folder.
// Usage: dotnet fsi bench/cluster.fsx [--platform PATH] [--messages N] [--pings N]
#r "../artifacts/molecule-platform/Npgsql.dll"
#load "../Tests/Support/TempDirs.fs" "../Tests/Support/Postgres.fs"

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

let args = fsi.CommandLineArgs |> Array.tail

let argOr (name: string) (d: string) =
    match Array.tryFindIndex ((=) name) args with
    | Some i when i + 1 < args.Length -> args[i + 1]
    | _ -> d

let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))
let platformBin = argOr "--platform" (Path.Combine(root, "artifacts", "molecule-platform", "molecule-platform"))
let messages = int (argOr "--messages" "4000")
let pings = int (argOr "--pings" "300")
let http = new HttpClient(Timeout = TimeSpan.FromMinutes 2.0)

/// A platform process on `dir` (extra arguments: its database), its URL once platform.json says it listens.
let start (dir: string) (extra: string list) =
    let psi = ProcessStartInfo(platformBin, RedirectStandardOutput = true, RedirectStandardError = true)
    for a in [ "platform"; "--data-dir"; dir; "--port"; "0" ] @ extra do
        psi.ArgumentList.Add a
    let p = Process.Start psi
    p.OutputDataReceived.Add ignore
    p.ErrorDataReceived.Add ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    let info = Path.Combine(dir, "platform.json")
    let sw = Stopwatch.StartNew()
    while not (File.Exists info) && sw.Elapsed.TotalSeconds < 120.0 do
        Thread.Sleep 10
    Thread.Sleep 50
    let node = JsonNode.Parse(File.ReadAllText info)
    let url = node["url"].GetValue<string>()
    p, url

let call (url: string) (meth: HttpMethod) (path: string) (body: string option) (token: string) =
    task {
        use req = new HttpRequestMessage(meth, url + path)
        body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return int resp.StatusCode, text
    }

let message (id: string) =
    $"{{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"method\":\"message/send\",\"params\":{{\"message\":{{\"role\":\"user\",\"messageId\":\"{id}\",\"parts\":[{{\"kind\":\"text\",\"text\":\"{String('x', 200)}\"}}]}}}}}}"

let percentile (p: float) (xs: float[]) =
    let s = Array.sort xs
    s[min (s.Length - 1) (int (Math.Ceiling(p * float s.Length)) - 1)]

/// One configuration: instances started by `launch` (URLs, admin token, processes), measured, stopped.
let measure (label: string) (urls: string list) (admin: string) =
    let create (i: int) =
        let code, text = (call urls.Head HttpMethod.Post "/workspaces" (Some $"{{\"name\":\"bench {i}\"}}") admin).Result
        if code <> 201 then failwith $"create: {code} {text}"
        let j = JsonNode.Parse text
        let id, token = j["id"].GetValue<string>(), j["auth_token"].GetValue<string>()
        let body = $$"""{"id":"{{id}}","url":"","agent_card":{"name":"bench"},"delivery_mode":"poll"}"""
        let code, text = (call urls.Head HttpMethod.Post "/registry/register" (Some body) token).Result
        if code <> 200 then failwith $"register: {code} {text}"
        id, token

    let workspaces = [| for i in 1..20 -> create i |]
    // accepted per second
    let next = ref 0
    let sw = Stopwatch.StartNew()

    let sender (n: int) =
        task {
            let url = urls[n % urls.Length]
            let mutable go = true
            while go do
                let i = Interlocked.Increment next
                if i > messages then go <- false
                else
                    let ws, _ = workspaces[i % workspaces.Length]
                    let! code, text = call url HttpMethod.Post $"/workspaces/{ws}/a2a" (Some(message $"{label}-{i}")) admin
                    if code <> 200 then failwith $"send {i}: {code} {text}"
        }

    Task.WaitAll [| for n in 1..16 -> sender n :> Task |]
    let accepted = float messages / sw.Elapsed.TotalSeconds
    // send → push: the stream on the first instance, the sends to the last
    let ws, token = workspaces[0]
    let arrived = ConcurrentDictionary<string, float>()
    let clock = Stopwatch.StartNew()
    use cts = new CancellationTokenSource()
    let streamed = TaskCompletionSource()

    let reader =
        task {
            use req = new HttpRequestMessage(HttpMethod.Get, urls.Head + $"/workspaces/{ws}/events/stream")
            req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
            use! resp = http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token)
            use! body = resp.Content.ReadAsStreamAsync(cts.Token)
            use lines = new StreamReader(body)
            try
                while not cts.IsCancellationRequested do
                    let! line = lines.ReadLineAsync(cts.Token)
                    if isNull line then cts.Cancel()
                    elif line.StartsWith ":" then streamed.TrySetResult() |> ignore
                    elif line.StartsWith "data: " then
                        let frame = JsonNode.Parse(line.Substring 6)
                        match frame["data"]["message_id"] with
                        | null -> ()
                        | m -> arrived.TryAdd(m.GetValue<string>(), clock.Elapsed.TotalMilliseconds) |> ignore
            with :? OperationCanceledException -> ()
        }

    streamed.Task.Wait(TimeSpan.FromSeconds 30.0) |> ignore

    let latencies =
        [| for i in 1..pings do
               let id = $"{label}-ping-{i}"
               let sent = clock.Elapsed.TotalMilliseconds
               let code, _ = (call (List.last urls) HttpMethod.Post $"/workspaces/{ws}/a2a" (Some(message id)) admin).Result
               if code <> 200 then failwith $"ping {i}: {code}"
               let deadline = Stopwatch.StartNew()
               while not (arrived.ContainsKey id) && deadline.Elapsed.TotalSeconds < 10.0 do
                   Thread.Sleep 1
               match arrived.TryGetValue id with
               | true, at -> yield at - sent
               | _ -> failwith $"ping {i} never rang"
               Thread.Sleep 20 |]

    cts.Cancel()
    (try reader.Wait(5000) |> ignore with :? AggregateException -> ())
    let f (x: float) = x.ToString("0.0", Globalization.CultureInfo.InvariantCulture)
    accepted, percentile 0.5 latencies, percentile 0.99 latencies, f

let stop (ps: Process list) =
    for p in ps do
        p.Kill()
        p.WaitForExit()

let dir (name: string) = TempDirs.create name
let adminOf (d: string) = File.ReadAllText(Path.Combine(d, "admin_token")).Trim()

let results = ResizeArray<string * float * float * float>()

let sqlite =
    let d = dir "sqlite"
    let p, url = start d []
    let a, p50, p99, _ = measure "sqlite" [ url ] (adminOf d)
    stop [ p ]
    results.Add("SQLite, 1 instance", a, p50, p99)

let pg1 =
    let d = dir "pg1"
    let p, url = start d [ "--database"; Postgres.urlFor d ]
    let a, p50, p99, _ = measure "pg1" [ url ] (adminOf d)
    stop [ p ]
    results.Add("PostgreSQL, 1 instance", a, p50, p99)

let pg2 =
    let d1, d2 = dir "pg2a", dir "pg2b"
    let db = Postgres.urlFor d1
    let p1, url1 = start d1 [ "--database"; db ]
    for f in [ "admin_token"; "secret_key" ] do
        File.Copy(Path.Combine(d1, f), Path.Combine(d2, f))
    let p2, url2 = start d2 [ "--database"; db ]
    let a, p50, p99, _ = measure "pg2" [ url1; url2 ] (adminOf d1)
    stop [ p1; p2 ]
    results.Add("PostgreSQL, 2 instances (rings cross instances)", a, p50, p99)

let f (x: float) = x.ToString("0.0", Globalization.CultureInfo.InvariantCulture)
let _, baseline, _, _ = results[0]
printfn "| configuration | accepted/s | × SQLite | send→push p50 (ms) | p99 (ms) |"
printfn "|---|---|---|---|---|"
for (label, a, p50, p99) in results do
    let ratio = (a / baseline).ToString("0.00", Globalization.CultureInfo.InvariantCulture)
    printfn $"| {label} | {f a} | {ratio}× | {f p50} | {f p99} |"
