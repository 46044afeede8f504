/// A platform that misbehaves as real deployments do (issue 14), each fault a deterministic mode of the fault-injecting
/// platform (Platform/Faults.fs) against the published binary: an acknowledgement route that fails or lies, a platform
/// restored from a backup, a duplicated upload row, a refused heartbeat, no event stream, no peer info. Each test
/// asserts delivery AND request rates: requests are counted per route at the platform, and no route is asked more
/// often than the pacing policy allows.
module Molecule.Tests.Host.MisbehavingTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Text
open System.Threading.Tasks
open Xunit
open Molecule.Core
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Host.Harness

let private ackPath (ws: Workspace) = $"/workspaces/{ws.Id}/activity/ack"
let private activityPath (ws: Workspace) = $"/workspaces/{ws.Id}/activity"
let private streamPath (ws: Workspace) = $"/workspaces/{ws.Id}/events/stream"

let private acks (platform: Platform) (ws: Workspace) = platform.Faults.Requests("POST", ackPath ws)

/// The most requests a route that fails all along may get within `secs` (Pacing.most).
let private allowed (policy: Pacing.Policy) (secs: float) = Pacing.most policy secs

/// The highest number of requests one route (method and path) got in one second.
let private highest (platform: Platform) (key: string) =
    platform.Faults.HighestRates |> List.tryFind (fun (k, _) -> k = key) |> Option.map snd |> Option.defaultValue 0

/// No route of the workspace got more than `most` requests in any one second: an unpaced loop made thousands; the
/// busiest legitimate route, the inbox fetch, polls every 0.3 s here and fetches once per ring of a burst.
let private assertNoStorm (platform: Platform) (ws: Workspace) (most: int) (context: unit -> string) =
    let mine = platform.Faults.HighestRates |> List.filter (fun (k, _) -> k.Contains ws.Id)
    for key, n in mine do
        Assert.True(n <= most, $"{key} got {n} requests in one second (at most {most} expected)\n{context ()}")

let private pushedTexts (p: RawProcess) = p.ChannelNotifications |> List.map (fun n -> pushedText n["params"])

let private waitPushed (p: RawProcess) (texts: string list) (timeout: float) =
    waitUntil (secs timeout) $"{texts.Length} messages pushed" p.Describe (fun () ->
        let seen = Set.ofList (pushedTexts p)
        texts |> List.forall seen.Contains)

let private popAll (p: RawProcess) (texts: string list) =
    task {
        for t in texts do
            let n = p.ChannelNotifications |> List.find (fun n -> pushedText n["params"] = t)
            let id = strOf n["params"].["meta"] "activity_id"
            let! r = p.CallTool("inbox_pop", $"{{\"activity_id\":\"{id}\"}}")
            Assert.Contains("\"removed\":true", resultText r)
    }

let private texts (prefix: string) (n: int) = [ for i in 1..n -> $"{prefix} {i} {Guid.NewGuid():N}" ]

let private send (platform: Platform) (ws: Workspace) (messages: string list) =
    task {
        for m in messages do
            let! _ = platform.CanvasMessage(ws.Id, m)
            ()
    }

let private finish (p: RawProcess) (secrets: string list) =
    assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
    assertNoSecrets secrets "stderr" p.StderrLines
    assertNoSecrets secrets "stdout" [ p.StdoutText ]

let private mode (platform: Platform) (name: string) =
    match FaultMode.parse name with
    | Ok m -> platform.Faults.Mode m
    | Result.Error e -> failwith e

// ---------------------------------------------------------------------------------------------
// 1, 2: the acknowledgement route fails or lies
// ---------------------------------------------------------------------------------------------

[<Theory>]
[<InlineData("ack-500")>]
[<InlineData("ack-503")>]
[<InlineData("ack-catch-all")>]
[<InlineData("ack-empty")>]
[<InlineData("ack-html")>]
[<InlineData("ack-negative")>]
[<InlineData("ack-1e300")>]
[<InlineData("ack-huge-floor")>]
let ``a fresh start delivers everything while the acknowledgement route fails or lies, and asks it at a paced rate`` (name: string) =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace $"fresh {name}"
        let queued = texts "queued" 10
        do! send platform ws queued
        mode platform name
        let sw = Stopwatch.StartNew()
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        do! waitPushed p queued 30.0
        let! peek = p.CallTool("inbox_peek", "{\"limit\":50}")
        Assert.Equal(10, (parseJson (resultText peek)).AsArray().Count)
        do! Task.Delay 3000
        let elapsed = sw.Elapsed.TotalSeconds
        let asked = acks platform ws
        Assert.True(asked <= allowed Pacing.ack elapsed + 1, $"{asked} acknowledgement requests in {elapsed:F1} s\n{p.Describe()}")
        Assert.True(highest platform ("POST " + ackPath ws) <= 3, p.Describe())
        assertNoStorm platform ws 60 p.Describe
        // one warning says what happened (the default level shows it)
        let said =
            p.StderrLines
            |> List.filter (fun l -> l.Contains "acknowledged position could not be read" || l.Contains "its acknowledged position cannot be right")
        Assert.True(said.Length = 1, $"expected one warning about the floor\n{p.Describe()}")
        Assert.StartsWith("[molecule-mcp] WARNING: ", said.Head)
        finish p [ ws.Token ]
    }

[<Theory>]
[<InlineData("ack-500")>]
[<InlineData("ack-catch-all")>]
let ``acknowledgements that keep failing after pops are paced and said at the default level; delivery goes on`` (name: string) =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace $"storm {name}"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let first = texts "before" 2
        do! send platform ws first
        do! waitPushed p first 15.0
        do! popAll p first
        // counts and rates from here on (the acknowledgements of the first pops succeeded, one per pop)
        platform.Faults.ResetLog()
        mode platform name
        let before = acks platform ws
        let sw = Stopwatch.StartNew()
        let later = texts "during" 5
        do! send platform ws later
        do! waitPushed p later 15.0
        do! popAll p later
        do! Task.Delay 10000
        let elapsed = sw.Elapsed.TotalSeconds
        let asked = acks platform ws - before
        // unpaced, this was 6,000–8,000 requests a second
        Assert.True(asked <= allowed Pacing.ack elapsed + 1, $"{asked} acknowledgement requests in {elapsed:F1} s\n{p.Describe()}")
        Assert.True(asked >= 2, $"the acknowledgement was not tried again ({asked})\n{p.Describe()}")
        Assert.True(highest platform ("POST " + ackPath ws) <= 3, p.Describe())
        assertNoStorm platform ws 60 p.Describe
        Assert.Contains(p.StderrLines, fun l -> l.StartsWith "[molecule-mcp] WARNING: " && l.Contains "acknowledgements of workspace" && l.Contains "failed")
        let! peek = p.CallTool("inbox_peek", "{}")
        Assert.Equal("[]", (resultText peek).Trim())
        finish p [ ws.Token ]
    }

[<Theory>]
[<InlineData("ack-huge-floor")>]
[<InlineData("ack-1e300")>]
let ``an absurd floor in an acknowledgement answer is not taken: later messages arrive, also after a restart`` (name: string) =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace $"absurd {name}"
        let env = agentEnv platform ws
        let first = texts "first" 2
        let later = texts "later" 3
        let last = texts "after restart" 3
        let firstRun () =
            task {
                use p = RawProcess.Start env
                let! _ = p.Initialize()
                do! send platform ws first
                do! waitPushed p first 15.0
                mode platform name
                do! popAll p first
                do! waitUntil (secs 10.0) "the acknowledgement answered" p.Describe (fun () -> acks platform ws >= 2)
                do! Task.Delay 1000
                platform.Faults.ClearAll()
                do! send platform ws later
                do! waitPushed p later 20.0
                do! popAll p later
                assertNoStorm platform ws 60 p.Describe
                finish p [ ws.Token ]
            }
        do! firstRun ()
        // kill and start again on the same ledger
        use p2 = RawProcess.Start env
        let! _ = p2.Initialize()
        do! send platform ws last
        do! waitPushed p2 last 20.0
        Assert.DoesNotContain(pushedTexts p2, fun t -> List.contains t first || List.contains t later)
        finish p2 [ ws.Token ]
    }

// ---------------------------------------------------------------------------------------------
// 3: a platform restored from a backup (its message numbering goes back)
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``a platform restored from a backup (numbers going back, the cursor gone) loses nothing new, and says what happened`` () =
    task {
        let dir = tempDir "restored"
        let backup = tempDir "backup"
        let options = { PlatformOptions.defaults dir with Port = freePort (); EnableFaults = true }
        let! running = start options
        let platform = new Platform(running)
        let! ws = platform.CreateWorkspace "restored"
        // the backup: the workspace and its token, no messages yet
        do! running.StopAsync()
        copyDir dir backup
        let! running = start options
        let platform = new Platform(running)
        use p = RawProcess.Start(agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1" ])
        let! _ = p.Initialize()
        let before = texts "before the restore" 40
        do! send platform ws before
        do! waitPushed p before 30.0
        do! popAll p before
        // the platform recorded the acknowledgement of all 40
        let floor () =
            let a = (platform.Send("POST", ackPath ws, "{\"acked_seq\":0}", ws.Token)).Result
            match Molecule.Protocol.Json.tryParse a.Body |> Option.bind (Molecule.Protocol.Json.prop "last_acked_seq") |> Option.bind Molecule.Protocol.Json.asInt with
            | Some n -> n
            | None -> -1
        do! waitUntil (secs 15.0) "the acknowledgement of all 40" p.Describe (fun () -> floor () >= 40)
        // restored from the backup: rows, numbering and acknowledgements as they were then
        do! running.StopAsync()
        Directory.Delete(dir, true)
        copyDir backup dir
        let! running = start options
        let platform = new Platform(running)
        do! Task.Delay 2500
        let after = texts "after the restore" 10
        do! send platform ws after
        do! waitPushed p after 45.0
        do! popAll p after
        Assert.Contains(p.StderrLines, fun l -> l.Contains "message numbering went back" && l.Contains "restored from a backup")
        Assert.Equal(50, p.ChannelNotifications.Length)
        assertNoStorm platform ws 60 p.Describe
        finish p [ ws.Token ]
        do! running.StopAsync()
    }

// ---------------------------------------------------------------------------------------------
// 4: a refused heartbeat alone never blocks the tools
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``heartbeats refused while every other request succeeds: all platform tools still call the platform`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "hb lead"
        let! ws = platform.CreateWorkspace("hb alone", parent = lead)
        let! peer = platform.CreateWorkspace("hb peer", parent = lead)
        do! platform.RegisterPoll peer
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        do! waitUntil (secs 15.0) "registered" p.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 1)
        mode platform "heartbeat-401"
        let hb = platform.Requests "/registry/heartbeat"
        do! waitUntil (secs 15.0) "three refused heartbeats" p.Describe (fun () -> platform.Requests "/registry/heartbeat" >= hb + 3)
        let calls =
            [ "list_peers", "{}"
              "get_workspace_info", "{}"
              "delegate_task_async", $"{{\"workspace_id\":\"{peer.Id}\",\"task\":\"t\"}}"
              "check_task_status", "{}"
              "commit_memory", "{\"content\":\"remember this\"}"
              "recall_memory", "{\"query\":\"remember\"}"
              "send_message_to_user", "{\"message\":\"progress\"}"
              "delegate_task", $"{{\"workspace_id\":\"{peer.Id}\",\"task\":\"t2\"}}" ]
        for name, args in calls do
            let before = platform.Requests "/" - platform.Requests "/registry/heartbeat"
            let! r = p.CallTool(name, args, 60.0)
            let text = resultText r
            Assert.DoesNotContain("rejects the token", text)
            Assert.True(platform.Requests "/" - platform.Requests "/registry/heartbeat" > before, $"{name} did not call the platform: {text}")
        Assert.Contains(p.StderrLines, fun l -> l.Contains "refuses its heartbeats" && l.Contains "other requests with the same token succeed")
        Assert.DoesNotContain(p.StderrLines, fun l -> l.Contains "REVOKED")
        assertNoStorm platform ws 60 p.Describe
        finish p [ ws.Token; peer.Token ]
    }

// ---------------------------------------------------------------------------------------------
// 5: a duplicated upload row
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``a duplicated upload row is one file: downloaded once, acknowledged once, announced once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "duplicated upload"
        mode platform "duplicate-uploads"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        do! waitUntil (secs 15.0) "registered" p.Describe (fun () -> platform.Requests "/registry/register" >= 1)
        use http = new HttpClient(BaseAddress = Uri platform.Url)
        use form = new MultipartFormDataContent()
        let file = new ByteArrayContent(Encoding.UTF8.GetBytes "numbers\n")
        file.Headers.ContentType <- Headers.MediaTypeHeaderValue "text/plain"
        form.Add(file, "files", "report.txt")
        use req = new HttpRequestMessage(System.Net.Http.HttpMethod.Post, $"/workspaces/{ws.Id}/chat/uploads", Content = form)
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", platform.AdminToken)
        use! resp = http.SendAsync req
        let! body = resp.Content.ReadAsStringAsync()
        Assert.True(resp.IsSuccessStatusCode, body)
        let uri = strOf ((parseJson body).["files"].AsArray().[0]) "uri"
        let fileId = uri.Substring(uri.LastIndexOf '/' + 1)
        do! waitUntil (secs 20.0) "the file announced" p.Describe (fun () -> pushedTexts p |> List.exists (fun t -> t.Contains "report.txt"))
        do! Task.Delay 5000
        let announced = pushedTexts p |> List.filter (fun t -> t.Contains "report.txt")
        Assert.True(announced.Length = 1, $"announced {announced.Length} times\n{p.Describe()}")
        Assert.Equal(1, platform.Requests $"/workspaces/{ws.Id}/pending-uploads/{fileId}/content")
        Assert.Equal(1, platform.Requests $"/workspaces/{ws.Id}/pending-uploads/{fileId}/ack")
        let! peek = p.CallTool("inbox_peek", "{}")
        Assert.Equal(1, (parseJson (resultText peek)).AsArray().Count)
        assertNoStorm platform ws 60 p.Describe
        finish p [ ws.Token ]
    }

// ---------------------------------------------------------------------------------------------
// 6: no event stream; no peer info
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``a platform without the event stream is said once at info (no warning); messages arrive by polling; the route is asked rarely`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "no stream"
        mode platform "no-stream"
        use p = RawProcess.Start(agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1" ])
        let! _ = p.Initialize()
        let messages = texts "polled" 3
        do! send platform ws messages
        do! waitPushed p messages 15.0
        do! Task.Delay 8000
        let said = p.StderrLines |> List.filter (fun l -> l.Contains "event stream")
        Assert.True(said.Length = 1, $"expected one line about the event stream\n{p.Describe()}")
        Assert.DoesNotContain("WARNING", said.Head)
        Assert.Contains("has no event stream", said.Head)
        Assert.Equal(1, platform.Requests(streamPath ws))
        assertNoStorm platform ws 60 p.Describe
        finish p [ ws.Token ]
    }

[<Fact>]
let ``without include=peer_info a peer's first message is named by one registry lookup`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "names lead"
        let! a = platform.CreateWorkspace("Alpha", parent = lead)
        let! b = platform.CreateWorkspace("Beta", role = "reviewer", parent = lead)
        do! platform.RegisterPoll b
        mode platform "no-peer-info"
        use p = RawProcess.Start(agentEnv platform a)
        let! _ = p.Initialize()
        do! waitUntil (secs 15.0) "registered" p.Describe (fun () -> platform.Requests "/registry/register" >= 1)
        let messages = [ "first from Beta"; "second from Beta"; "third from Beta" ]
        for m in messages do
            let! _ = platform.PeerMessage(b, a.Id, m)
            ()
        do! waitPushed p messages 15.0
        for n in p.ChannelNotifications do
            let content = strOf n["params"] "content"
            Assert.StartsWith($"[from Beta · peer_id={b.Id}]", content)
            Assert.Equal("Beta", strOf n["params"].["meta"] "peer_name")
        Assert.Equal(1, platform.Requests $"/registry/discover/{b.Id}")
        assertNoStorm platform a 60 p.Describe
        finish p [ a.Token; b.Token ]
    }
