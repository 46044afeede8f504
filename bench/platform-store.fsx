// The local platform's store, measured over HTTP against a published molecule-platform (issue 17, phase 1):
// messages accepted per second (A2A sends from 16 concurrent senders), a since_id poll near the head, a full
// 500-row page, the resident memory after the fill, and the time to a usable restart on the filled data directory.
// Usage: dotnet fsi bench/platform-store.fsx [--platform PATH] [--rows N] [--label TEXT]
// (default: artifacts/molecule-platform/molecule-platform, 20,000 rows, half of them in the polled workspace).
// Run it for two builds in a row to compare them; the numbers move with the machine's load.
#load "Common.fsx"
open System
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Common

let platformBin = argOr "--platform" (Path.Combine(root, "artifacts", "molecule-platform", "molecule-platform"))
let rows = int (argOr "--rows" "20000")
let label = argOr "--label" platformBin
let tmp = Path.Combine(Path.GetTempPath(), "molecule-store-bench-" + Guid.NewGuid().ToString("N").Substring(0, 8))
let dataDir = Path.Combine(tmp, "platform")

let start () =
    let psi = ProcessStartInfo(platformBin, $"platform --data-dir {dataDir} --port 0", RedirectStandardOutput = true, RedirectStandardError = true)
    let sw = Stopwatch.StartNew()
    let info = Path.Combine(dataDir, "platform.json")
    if File.Exists info then File.Delete info
    let p = Process.Start psi
    p.OutputDataReceived.Add ignore
    p.ErrorDataReceived.Add ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    while not (File.Exists info) && sw.Elapsed.TotalSeconds < 120.0 do Thread.Sleep 10
    Thread.Sleep 50
    let node = JsonNode.Parse(File.ReadAllText info)
    let url = node["url"].GetValue<string>()
    p, url, sw.Elapsed.TotalMilliseconds

let proc, url, firstStart = start ()
let admin = File.ReadAllText(Path.Combine(dataDir, "admin_token")).Trim()
let http = new HttpClient(BaseAddress = Uri url, Timeout = TimeSpan.FromMinutes 2.0)

let call (meth: HttpMethod) (path: string) (body: string option) (token: string) =
    task {
        use req = new HttpRequestMessage(meth, path)
        body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return int resp.StatusCode, text
    }

let create (name: string) =
    let code, text = (call HttpMethod.Post "/workspaces" (Some $"{{\"name\":\"{name}\"}}") admin).Result
    if code <> 201 then failwith $"create: {code} {text}"
    let j = JsonNode.Parse text
    j["id"].GetValue<string>(), j["auth_token"].GetValue<string>()

let polled, polledToken = create "polled"
let others = [ for i in 1..9 -> fst (create $"other {i}") ]
let text221 = String('x', 200)

let message (i: int) =
    $"{{\"jsonrpc\":\"2.0\",\"id\":\"{i}\",\"method\":\"message/send\",\"params\":{{\"message\":{{\"role\":\"user\",\"messageId\":\"m-{i}\",\"parts\":[{{\"kind\":\"text\",\"text\":\"{text221}\"}}]}}}}}}"

// ------------------------------------------------------------------ fill: accepted per second
let fill = Stopwatch.StartNew()
let next = ref 0

let sender () =
    task {
        let mutable go = true
        while go do
            let i = Interlocked.Increment next
            if i > rows then go <- false
            else
                let ws = if i % 2 = 0 then polled else others[i % others.Length]
                let! code, text = call HttpMethod.Post $"/workspaces/{ws}/a2a" (Some(message i)) admin
                if code <> 200 then failwith $"send {i}: {code} {text}"
    }

Task.WaitAll [| for _ in 1..16 -> sender () :> Task |]
let acceptedPerSec = float rows / fill.Elapsed.TotalSeconds

let median (xs: float[]) = (Array.sort xs)[xs.Length / 2]

let time (n: int) (f: unit -> unit) =
    f ()
    [| for _ in 1..n -> let sw = Stopwatch.StartNew() in f (); sw.Elapsed.TotalMilliseconds |] |> median

let get (path: string) () =
    let code, text = (call HttpMethod.Get path None polledToken).Result
    if code <> 200 then failwith $"{path}: {code} {text}"

let newestText = (call HttpMethod.Get $"/workspaces/{polled}/activity?limit=10" None polledToken).Result |> snd
let newest = (JsonNode.Parse newestText).AsArray()
let tenth = newest[newest.Count - 1]
let cursor = tenth["id"].GetValue<string>()
let sincePoll = time 300 (get $"/workspaces/{polled}/activity?since_id={cursor}&limit=100")
let fullPage = time 50 (get $"/workspaces/{polled}/activity?limit=500")
let rssMiB =
    File.ReadAllLines($"/proc/{proc.Id}/status")
    |> Array.find (fun l -> l.StartsWith "VmRSS:")
    |> fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0

proc.Kill()
proc.WaitForExit()
let again, _, restart = start ()
again.Kill()
again.WaitForExit()
let dbMiB = float (Directory.EnumerateFiles(dataDir) |> Seq.sumBy (fun f -> FileInfo(f).Length)) / 1048576.0

let f (x: float) = x.ToString("0.00", Globalization.CultureInfo.InvariantCulture)
printfn $"| {label} | {rows} | {f acceptedPerSec} | {f sincePoll} | {f fullPage} | {f rssMiB} | {f firstStart} | {f restart} | {f dbMiB} |"
try Directory.Delete(tmp, true) with :? IOException -> ()
