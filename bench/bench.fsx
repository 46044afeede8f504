// Benchmarks: `dotnet fsi bench/bench.fsx` after `dotnet fsi build.fsx publish`.
// Every number is compared with a baseline measured in the same run, and reported as a ratio.
#r "../artifacts/molecule-mcp/Molecule.Core.dll"
#r "../artifacts/molecule-mcp/FSharp.SystemTextJson.dll"

open System
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes
open Molecule.Core

let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))
let binary = Path.Combine(root, "artifacts", "molecule-mcp", "molecule-mcp")
if not (File.Exists binary) then (eprintfn "publish first: dotnet fsi build.fsx publish"; exit 2)

let median (xs: float list) = let s = List.sort xs in s.[s.Length / 2]
let ms (t: TimeSpan) = t.TotalMilliseconds
let fmt (x: float) = x.ToString("0.00", Globalization.CultureInfo.InvariantCulture)
let rows = Collections.Generic.List<string * string * string * string>()

let startServer () =
    let psi = ProcessStartInfo(binary, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    psi.Environment.["WORKSPACE_ID"] <- "0f8fad5b-d9cb-469f-a165-70867728950e"
    psi.Environment.["PLATFORM_URL"] <- "http://127.0.0.1:9"   // nothing listens: register/poll fail in the background
    psi.Environment.["MOLECULE_WORKSPACE_TOKEN"] <- "bench-token"
    psi.Environment.["CONFIGS_DIR"] <- Path.Combine(Path.GetTempPath(), "molecule-bench")
    let p = Process.Start psi
    p.ErrorDataReceived.Add ignore
    p.BeginErrorReadLine()
    p

let request (p: Process) (line: string) =
    p.StandardInput.WriteLine line
    p.StandardInput.Flush()
    p.StandardOutput.ReadLine() |> ignore

let initialize = """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"""

// 1. Startup: spawn → initialize answered, vs spawn → exit of `molecule-mcp --version` (bare runtime start).
let runs = 15
let startup =
    [ for _ in 1..runs ->
        let sw = Stopwatch.StartNew()
        let p = startServer ()
        request p initialize
        let t = ms sw.Elapsed
        p.StandardInput.Close(); p.WaitForExit(); t ]
let bare =
    [ for _ in 1..runs ->
        let sw = Stopwatch.StartNew()
        let p = Process.Start(ProcessStartInfo(binary, "--version", RedirectStandardOutput = true, UseShellExecute = false))
        p.StandardOutput.ReadToEnd() |> ignore
        p.WaitForExit(); ms sw.Elapsed ]
rows.Add("spawn → initialize answered (ms, median of 15)", fmt (median startup), $"`--version` run: {fmt (median bare)}", fmt (median startup / median bare))

// 2. Tool round trip: tools/call inbox_peek vs ping on the same running server.
let server = startServer ()
request server initialize
server.StandardInput.WriteLine """{"jsonrpc":"2.0","method":"notifications/initialized"}"""
let timeCalls n (line: int -> string) =
    [ for i in 1..n ->
        let sw = Stopwatch.StartNew()
        request server (line i)
        ms sw.Elapsed ]
timeCalls 50 (fun i -> $"{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}") |> ignore // warm-up
let peek = timeCalls 300 (fun i -> $"{{\"jsonrpc\":\"2.0\",\"id\":{1000 + i},\"method\":\"tools/call\",\"params\":{{\"name\":\"inbox_peek\",\"arguments\":{{\"limit\":10}}}}}}")
let ping = timeCalls 300 (fun i -> $"{{\"jsonrpc\":\"2.0\",\"id\":{5000 + i},\"method\":\"ping\"}}")
server.StandardInput.Close(); server.WaitForExit()
rows.Add("tools/call inbox_peek round trip (ms, median of 300)", fmt (median peek), $"`ping`: {fmt (median ping)}", fmt (median peek / median ping))

// 3. Core: one inbox poll of a full page (100 rows) vs parsing that page's JSON alone.
let self = "0f8fad5b-d9cb-469f-a165-70867728950e"
let page =
    let arr = JsonArray()
    for i in 0..99 do
        let ts = DateTimeOffset(2026, 11, 21, 12, 0, 0, TimeSpan.Zero).AddMilliseconds(float (i * 250))
        arr.Add(Json.obj [ "id", Json.str (Guid(i, 1s, 1s, Array.zeroCreate 8).ToString())
                           "source_id", Json.str "99999999-8888-7777-6666-555555555555"
                           "method", Json.str "message/send"
                           "created_at", Json.str (ts.ToString("O"))
                           "request_body", Json.obj [ "params", Json.obj [ "message", Json.obj [ "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str $"message {i}" ] ] ] ] ] ])
    arr.ToJsonString()
let timeIt n (f: unit -> unit) =
    for _ in 1..20 do f ()
    let sw = Stopwatch.StartNew()
    for _ in 1..n do f ()
    ms sw.Elapsed * 1000.0 / float n
let pollUs = timeIt 500 (fun () -> Inbox.onPoll self (Reply(200, page)) Inbox.empty |> ignore)
let parseUs = timeIt 500 (fun () -> Json.tryParse page |> ignore)
rows.Add("Inbox.onPoll, 100-row page (µs per poll)", fmt pollUs, $"JSON parse of the page: {fmt parseUs}", fmt (pollUs / parseUs))

printfn "| measurement | value | baseline (same run) | ratio |"
printfn "|---|---|---|---|"
for (a, b, c, d) in rows do printfn "| %s | %s | %s | %s× |" a b c d
