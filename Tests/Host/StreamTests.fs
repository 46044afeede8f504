/// The event stream as a doorbell (issue 8), with the published binary against the local platform on 127.0.0.1:
/// delivery without a poll tick, poll-only fallback and recovery, reconnect with catch-up, floods of rings, and 401s
/// on the stream counted on their own (never as heartbeat strikes).
module Molecule.Tests.Host.StreamTests

open System
open System.Threading.Tasks
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

/// Fast heartbeats, and a poll so slow that only the doorbell can deliver within a test.
let private doorbellEnv (platform: Platform) (ws: Workspace) =
    (agentEnv platform ws |> List.filter (fun (k, _) -> k <> "MOLECULE_MCP_POLL_INTERVAL_SECS"))
    @ [ "MOLECULE_MCP_POLL_INTERVAL_SECS", "60"; "MOLECULE_MCP_VERBOSE", "1" ]

let private content (n: System.Text.Json.Nodes.JsonNode) = pushedText n["params"]

let private pushed (p: RawProcess) (text: string) = p.ChannelNotifications |> List.exists (fun n -> content n = text)

let private streamPath (ws: Workspace) = $"/workspaces/{ws.Id}/events/stream"

/// Waits until the agent has its stream open (the platform saw the request and the initial fetch happened).
let private streamOpen (platform: Platform) (ws: Workspace) (p: RawProcess) =
    waitUntil (secs 15.0) "the event stream open" p.Describe (fun () -> platform.Requests(streamPath ws) > 0)

[<Fact>]
let ``a message arrives without a poll tick: the doorbell fetches it`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "doorbell"
        use p = RawProcess.Start(doorbellEnv platform ws)
        let! _ = p.Initialize()
        do! streamOpen platform ws p
        do! Task.Delay 500
        let polls = platform.Requests $"/workspaces/{ws.Id}/activity"
        let! _ = platform.CanvasMessage(ws.Id, "ring ring")
        // The poll interval is 60 s: only the stream can deliver this within the wait.
        do! waitUntil (secs 10.0) "the message pushed" p.Describe (fun () -> pushed p "ring ring")
        Assert.True(platform.Requests $"/workspaces/{ws.Id}/activity" > polls)
    }

[<Fact>]
let ``a refused stream falls back to polling, says so, and comes back`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "refused"
        platform.Fault(FaultRule.make (streamPath ws) 503)
        let env = (agentEnv platform ws) @ [ "MOLECULE_MCP_VERBOSE", "1" ]
        use p = RawProcess.Start env
        let! _ = p.Initialize()
        do! waitUntil (secs 10.0) "the fallback said" p.Describe (fun () ->
            p.StderrLines |> List.exists (fun l -> l.Contains "event stream" && l.Contains "unavailable"))
        // Delivery goes on by polling.
        let! _ = platform.CanvasMessage(ws.Id, "by polling")
        do! waitUntil (secs 10.0) "delivered by polling" p.Describe (fun () -> pushed p "by polling")
        platform.ClearFaults()
        do! waitUntil (secs 20.0) "the stream back" p.Describe (fun () ->
            p.StderrLines |> List.exists (fun l -> l.Contains "event stream" && l.Contains "is back"))
        let warnings = p.StderrLines |> List.filter (fun l -> l.Contains "unavailable") |> List.length
        Assert.True(warnings <= 2, $"the fallback was logged {warnings} times\n{p.Stderr}")
    }

[<Fact>]
let ``a dropped stream reconnects and the catch-up fetch delivers what was sent in between`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "dropped"
        use p = RawProcess.Start(doorbellEnv platform ws)
        let! _ = p.Initialize()
        do! streamOpen platform ws p
        do! Task.Delay 500
        let cut = platform.Faults.CutStreams(streamPath ws)
        Assert.True(cut > 0, "no stream was open to cut")
        // Sent while the stream is down: no ring reaches the agent for it.
        let! _ = platform.CanvasMessage(ws.Id, "while disconnected")
        do! waitUntil (secs 15.0) "delivered after the reconnect" p.Describe (fun () -> pushed p "while disconnected")
        Assert.True(platform.Requests(streamPath ws) >= 2)
    }

[<Fact>]
let ``a flood of rings costs a bounded number of fetches and every message arrives once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "flood"
        use p = RawProcess.Start(doorbellEnv platform ws)
        let! _ = p.Initialize()
        do! streamOpen platform ws p
        do! Task.Delay 500
        let before = platform.Requests $"/workspaces/{ws.Id}/activity"
        // 1,000 messages as fast as the platform takes them: 2,000 rings (every poll-mode message rings twice).
        let texts = [ for i in 1..1000 -> $"flood {i:D4}" ]
        let! _ = Task.WhenAll(texts |> List.chunkBySize 50 |> List.map (fun chunk -> task { for t in chunk do let! _ = platform.CanvasMessage(ws.Id, t) in () } :> Task))
        do! waitUntil (secs 60.0) "all 1,000 pushed" p.Describe (fun () -> (p.ChannelNotifications |> List.length) >= 1000)
        do! Task.Delay 1000
        let contents = p.ChannelNotifications |> List.map content
        Assert.Equal(1000, contents.Length)
        Assert.Equal<string list>(List.sort texts, List.sort contents)
        let fetches = platform.Requests $"/workspaces/{ws.Id}/activity" - before
        Assert.True(fetches <= 400, $"{fetches} fetches for 2,000 rings")
    }

[<Fact>]
let ``401s on the stream have their own count and words: no strikes, the tools keep working, the stream is asked at a paced rate`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "stream 401"
        platform.Fault(FaultRule.make (streamPath ws) 401)
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let sw = Diagnostics.Stopwatch.StartNew()
        do! waitUntil (secs 15.0) "the stream's refusal said" p.Describe (fun () ->
            p.StderrLines |> List.exists (fun l -> l.Contains "refuses the token for the stream"))
        do! Task.Delay 8000
        Assert.DoesNotContain(p.StderrLines, fun l -> l.Contains "consecutive heartbeat auth failures" || l.Contains "auth failure")
        let! r = p.CallTool("list_peers", "{}")
        Assert.DoesNotContain("rejects the token", resultText r)
        let opens = platform.Requests(streamPath ws)
        let bound = Molecule.Core.Pacing.most Molecule.Core.Pacing.stream sw.Elapsed.TotalSeconds + 1
        Assert.True(opens <= bound, $"{opens} stream opens (at most {bound})\n{p.Describe()}")
        assertNoSecrets [ ws.Token ] "stderr" p.StderrLines
    }
