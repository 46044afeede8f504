/// Delivery as users meet it (issue 6), with the published binary over stdio against the local platform on
/// 127.0.0.1: two workspaces under one HOME, backlogs far beyond one page, 410s, kill -9 right after a pop, a second
/// process for the same workspace, the old shared state file, oversized stdin lines.
module Molecule.Tests.Host.DeliveryTests

open System
open System.Collections.Generic
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Molecule.Protocol
open Molecule.Platform
open Molecule.Tests.Host.Harness

/// The env `workspace create` prints (no CONFIGS_DIR), fast loops, under a given HOME.
let private printedEnv (platform: Platform) (ws: Workspace) (home: string) =
    [ "WORKSPACE_ID", ws.Id
      "PLATFORM_URL", platform.Url
      "MOLECULE_WORKSPACE_TOKEN", ws.Token
      "MOLECULE_AGENT_NAME", ws.Name
      "HOME", home
      "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.3"
      "MOLECULE_MCP_POLL_INTERVAL_SECS", "0.3" ]

let private startRaw (env: (string * string) list) =
    task {
        let p = RawProcess.Start env
        let! _ = p.Initialize()
        return p
    }

let private toolText (r: JsonObject) =
    match r["result"] with
    | null -> failwith $"tool call failed: {r.ToJsonString()}"
    | res ->
        let first = (res["content"].AsArray()).[0]
        first["text"].GetValue<string>()

let private contentOf (n: JsonNode) = pushedText n["params"]

let private pushed (p: RawProcess) (text: string) = p.ChannelNotifications |> List.exists (fun n -> contentOf n = text)

let private removed (r: JsonObject) =
    let answer = parseJson (toolText r)
    answer["removed"].GetValue<bool>()

/// The waiting messages (inbox_peek).
let private peek (p: RawProcess) =
    task {
        let! r = p.CallTool("inbox_peek", "{\"limit\":1000}")
        return (parseJson (toolText r)).AsArray() |> Seq.map (fun n -> n.AsObject()) |> List.ofSeq
    }

/// Handles messages through the poll tools (peek + pop) until `count` were popped; returns their texts in order.
let private drain (p: RawProcess) (count: int) (timeout: float) =
    task {
        let texts = List<string>()
        let deadline = DateTime.UtcNow.AddSeconds timeout
        while texts.Count < count do
            if DateTime.UtcNow > deadline then
                failwith $"only {texts.Count} of {count} messages handled in {timeout} s\n{p.Stderr}"
            let! waiting = peek p
            if waiting.IsEmpty then
                do! Task.Delay 100
            for m in waiting do
                let id = strOf m "activity_id"
                let! r = p.CallTool("inbox_pop", $"{{\"activity_id\":\"{id}\"}}")
                if removed r then texts.Add(strOf m "text")
        return List.ofSeq texts
    }


let private rssKiB (pid: int) =
    File.ReadAllLines $"/proc/{pid}/status"
    |> Array.find (fun l -> l.StartsWith "VmRSS:")
    |> fun l -> int64 (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1])

[<Fact>]
let ``two workspaces under one HOME with the printed config lines never see each other's mail`` () =
    task {
        use! platform = Platform.StartAsync()
        let! a = platform.CreateWorkspace "Alpha"
        let! b = platform.CreateWorkspace "Beta"
        let home = tempDir "home"
        let forA = "for alpha only " + Guid.NewGuid().ToString("N")
        // A gets a message and stops without popping it.
        do!
            task {
                use pa = RawProcess.Start(printedEnv platform a home)
                let! _ = pa.Initialize()
                let! _ = platform.CanvasMessage(a.Id, forA)
                do! waitUntil (secs 15.0) "A's message pushed" pa.Describe (fun () ->
                    pa.ChannelNotifications |> List.exists (fun n -> contentOf n = forA))
                pa.CloseStdin()
                let! _ = pa.WaitExit()
                ()
            }
        // B starts under the same HOME: never pushed A's message, never shown it.
        use pb = RawProcess.Start(printedEnv platform b home)
        let! _ = pb.Initialize()
        let forB = "for beta only " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(b.Id, forB)
        do! waitUntil (secs 15.0) "B's message pushed" pb.Describe (fun () ->
            pb.ChannelNotifications |> List.exists (fun n -> contentOf n = forB))
        // A running at the same time gets its own again; neither sees the other's.
        use pa = RawProcess.Start(printedEnv platform a home)
        let! _ = pa.Initialize()
        do! waitUntil (secs 15.0) "A's unpopped message announced again" pa.Describe (fun () ->
            pa.ChannelNotifications |> List.exists (fun n -> contentOf n = forA))
        let! seenByB = peek pb
        let! seenByA = peek pa
        Assert.Equal<string list>([ forB ], seenByB |> List.map (fun m -> strOf m "text"))
        Assert.Equal<string list>([ forA ], seenByA |> List.map (fun m -> strOf m "text"))
        Assert.False(pushed pb forA, "B was pushed A's message")
        Assert.False(pushed pa forB, "A was pushed B's message")
        let dir = Path.Combine(home, ".molecule-workspace")
        let exists (name: string) = File.Exists(Path.Combine(dir, name))
        Assert.True(exists $"inbox-{a.Id}.jsonl")
        Assert.True(exists $"inbox-{b.Id}.jsonl")
        Assert.False(exists ".mcp_inbox_state.json")
    }

[<Fact>]
let ``150 and 1,000 messages queued before the first start are delivered exactly once, in order`` () =
    task {
        use! platform = Platform.StartAsync()
        for n in [ 150; 1000 ] do
            let! ws = platform.CreateWorkspace $"backlog {n}"
            let sent = [ for i in 1..n -> $"backlog {n} #{i:D4}" ]
            for text in sent do
                let! _ = platform.CanvasMessage(ws.Id, text)
                ()
            use p = RawProcess.Start(agentEnv platform ws)
            let! _ = p.Initialize()
            let! handled = drain p n 120.0
            Assert.Equal<string list>(sent, handled)
            do! Task.Delay 1000
            let! left = peek p
            Assert.Empty(left)
    }

[<Fact>]
let ``a 410 with 150 unread messages loses none`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "gone cursor"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let! _ = platform.CanvasMessage(ws.Id, "first")
        let! first = drain p 1 20.0
        Assert.Equal<string list>([ "first" ], first)
        // The cursor row is gone: the next poll gets 410, while 150 messages wait.
        platform.Fault(
            { FaultRule.make $"/workspaces/{ws.Id}/activity" 410 with
                Method = Some "GET"
                Body = "{\"error\":\"since_id cursor not found\"}"
                Times = Some 1 }
        )
        let sent = [ for i in 1..150 -> $"after 410 #{i:D3}" ]
        for text in sent do
            let! _ = platform.CanvasMessage(ws.Id, text)
            ()
        let! handled = drain p 150 60.0
        Assert.Equal<string list>(sent, handled)
    }

[<Fact>]
let ``kill -9 right after a pop answer, 20 times: a popped message never comes back`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "killed"
        let env = agentEnv platform ws
        let popped = HashSet<string>()
        for round in 1..20 do
            let! _ = platform.CanvasMessage(ws.Id, $"round {round}")
            use p = RawProcess.Start env
            let! _ = p.Initialize()
            do! waitUntil (secs 15.0) $"round {round} waiting" p.Describe (fun () ->
                p.ChannelNotifications |> List.exists (fun n -> contentOf n = $"round {round}"))
            let! waiting = peek p
            for m in waiting do
                let shownAgain = popped.Contains(strOf m "activity_id")
                Assert.False(shownAgain, $"round {round}: a popped message came back\n{p.Stderr}")
            let target = waiting |> List.find (fun m -> strOf m "text" = $"round {round}")
            let id = strOf target "activity_id"
            let! r = p.CallTool("inbox_pop", $"{{\"activity_id\":\"{id}\"}}")
            Assert.True(removed r)
            popped.Add id |> ignore
            p.Process.Kill() // SIGKILL, at once after the answer
            p.Process.WaitForExit()
        // One more start: nothing popped is shown or pushed.
        use last = RawProcess.Start env
        let! _ = last.Initialize()
        do! Task.Delay 1500
        let! waiting = peek last
        Assert.Empty(waiting)
        Assert.Empty(last.ChannelNotifications)
    }

[<Fact>]
let ``a second process for the same workspace does not poll; it serves the same ledger and takes over when the first stops`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "twice"
        let env = agentEnv platform ws
        use first = RawProcess.Start env
        let! _ = first.Initialize()
        do! waitUntil (secs 10.0) "the first process polls" first.Describe (fun () -> platform.Requests $"/workspaces/{ws.Id}/activity" > 0)
        use second = RawProcess.Start(env @ [ "MOLECULE_MCP_VERBOSE", "1" ])
        let! _ = second.Initialize()
        do! waitUntil (secs 10.0) "the second process says it serves the shared ledger" second.Describe (fun () ->
            second.StderrLines |> List.exists (fun l -> l.Contains "another molecule-mcp process on this machine polls"))
        let! _ = platform.CanvasMessage(ws.Id, "shared")
        do! waitUntil (secs 10.0) "both processes show it" second.Describe (fun () ->
            second.ChannelNotifications |> List.exists (fun n -> contentOf n = "shared")
            && first.ChannelNotifications |> List.exists (fun n -> contentOf n = "shared"))
        // A pop in the second process is seen by the first: the message is handled once.
        let! waiting = peek second
        let id = strOf waiting.Head "activity_id"
        let! r = second.CallTool("inbox_pop", $"{{\"activity_id\":\"{id}\"}}")
        Assert.True(removed r)
        let! again = first.CallTool("inbox_pop", $"{{\"activity_id\":\"{id}\"}}")
        Assert.False(removed again)
        // The first process dies: the second takes over polling.
        first.Process.Kill()
        first.Process.WaitForExit()
        do! waitUntil (secs 10.0) "the second process takes over" second.Describe (fun () ->
            second.StderrLines |> List.exists (fun l -> l.Contains "now polls the inbox"))
        let! _ = platform.CanvasMessage(ws.Id, "after takeover")
        let! handled = drain second 1 15.0
        Assert.Equal<string list>([ "after takeover" ], handled)
    }

[<Fact>]
let ``an old shared state file is migrated only when its cursor belongs to the workspace`` () =
    task {
        use! platform = Platform.StartAsync()
        let! a = platform.CreateWorkspace "owner"
        let! b = platform.CreateWorkspace "stranger"
        // A row of workspace A (the cursor of an old file written by A's agent).
        let! _ = platform.CanvasMessage(a.Id, "already handled")
        let! rows = platform.Activity(a.Id, "a2a_receive")
        let cursor = strOf rows.Head "id"
        let old (text: string) =
            $"{{\"version\":1,\"cursor\":\"{cursor}\",\"queue\":[{{\"activity_id\":\"11111111-0000-4000-8000-000000000001\",\"text\":\"{text}\",\"peer_id\":\"\",\"kind\":\"canvas_user\",\"method\":\"message/send\",\"created_at\":\"2026-05-01T12:00:00Z\"}}],\"seen\":[\"{cursor}\"]}}"
        // B finds A's old file: left alone, nothing of it shown.
        let configsB = tempDir "configs"
        File.WriteAllText(Path.Combine(configsB, ".mcp_inbox_state.json"), old "unread of A")
        use pb = RawProcess.Start((agentEnv platform b |> List.filter (fun (k, _) -> k <> "CONFIGS_DIR")) @ [ "CONFIGS_DIR", configsB; "MOLECULE_MCP_VERBOSE", "1" ])
        let! _ = pb.Initialize()
        do! waitUntil (secs 10.0) "B leaves the file alone" pb.Describe (fun () ->
            pb.StderrLines |> List.exists (fun l -> l.Contains "left the shared inbox state file"))
        let! seenByB = peek pb
        Assert.Empty(seenByB)
        let inB (name: string) = File.Exists(Path.Combine(configsB, name))
        Assert.True(inB ".mcp_inbox_state.json")
        // A finds its own old file: migrated, the unread message kept.
        let configsA = tempDir "configs"
        File.WriteAllText(Path.Combine(configsA, ".mcp_inbox_state.json"), old "unread of A")
        use pa = RawProcess.Start((agentEnv platform a |> List.filter (fun (k, _) -> k <> "CONFIGS_DIR")) @ [ "CONFIGS_DIR", configsA ])
        let! _ = pa.Initialize()
        let! handled = drain pa 1 15.0
        Assert.Equal<string list>([ "unread of A" ], handled)
        let inA (name: string) = File.Exists(Path.Combine(configsA, name))
        Assert.False(inA ".mcp_inbox_state.json")
        Assert.True(inA $"inbox-{a.Id}.jsonl")
        do! Task.Delay 1000
        let! left = peek pa
        Assert.Empty(left) // "already handled" was in the old seen set
    }

[<Fact>]
let ``stdin lines over the cap get -32600 naming the cap, are never buffered whole, and memory comes back`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "big lines"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let! _ = p.CallTool("inbox_peek", "{}")
        do! Task.Delay 1000
        let idle = rssKiB p.Process.Id
        let filler = String('x', 10 * 1024 * 1024)
        for i in 1..12 do
            let id = 500 + i
            p.Send($"{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"inbox_peek\",\"arguments\":{{\"pad\":\"{filler}\"}}}}}}")
            let! answer = p.WaitResponse(JsonValue.Create id, 30.0)
            let error = answer["error"]
            Assert.Equal(-32600, error["code"].GetValue<int>())
            Assert.Contains("4194304", error["message"].GetValue<string>())
        // Still serving, and memory back within 2x of idle.
        let! r = p.CallTool("inbox_peek", "{}")
        Assert.Equal("[]", toolText r)
        let after = rssKiB p.Process.Id
        Assert.True(after <= 2L * idle, $"RSS {after} KiB after the big lines, {idle} KiB idle")
        assertJsonRpcLines "stdout" p.StdoutBytes |> ignore
    }
