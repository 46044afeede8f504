/// Inbound messages: channel notifications, inbox_peek / inbox_pop / wait_for_message, stdin EOF.
module Molecule.Tests.Host.InboxTests

open Molecule.Protocol

open System
open System.Text.Json
open System.Text.Json.Nodes
open Xunit
open Molecule.Tests.Host.Harness

let private meta (n: JsonNode) = n["meta"].AsObject()

let private metaString (n: JsonNode) (key: string) =
    match meta n with
    | m when m.ContainsKey key -> m[key].GetValue<string>()
    | _ -> null

let private assertMetaShape (ctx: string) (n: JsonNode) =
    let m = meta n

    for kv in m do
        Assert.True(
            not (isNull kv.Value) && kv.Value.GetValueKind() = JsonValueKind.String,
            $"meta.{kv.Key} is not a string: {n.ToJsonString()}\n{ctx}"
        )

        Assert.True(kv.Key |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '_'), $"bad meta key {kv.Key}\n{ctx}")

    Assert.False(m.ContainsKey "source", $"meta must not carry 'source' (the client adds it): {n.ToJsonString()}")

/// A parent with two children; the agent runs for child A.
let private family (platform: Platform) =
    task {
        let! parent = platform.CreateWorkspace("parent", role = "lead")
        let! a = platform.CreateWorkspace("child-a", role = "worker", parent = parent)
        let! b = platform.CreateWorkspace("child-b", role = "worker", parent = parent)
        return parent, a, b
    }

[<Fact>]
let ``inbound peer message becomes a channel notification, shows in inbox_peek and inbox_pop removes it`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (_, a, b) = family platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        let text = "please review PR 42 " + Guid.NewGuid().ToString("N")
        let! _ = platform.PeerMessage(b, a.Id, text)
        let! n = agent.WaitNotification(fun n -> pushedText n = text)
        let ctx = agent.Describe()
        assertMetaShape ctx n
        Assert.Equal("peer_agent", metaString n "kind")
        Assert.Equal(b.Id, metaString n "peer_id")
        let activityId = metaString n "activity_id"
        Assert.False(String.IsNullOrEmpty activityId, $"no activity_id\n{ctx}")

        let! peek = agent.CallOk("inbox_peek", [])
        let items = (parseJson peek).AsArray()
        Assert.True((items.Count = 1), $"expected one pending message: {peek}\n{ctx}")
        Assert.Equal(activityId, strOf items[0] "activity_id")
        Assert.Equal(text, strOf items[0] "text")
        Assert.Equal(b.Id, strOf items[0] "peer_id")
        Assert.Equal("peer_agent", strOf items[0] "kind")

        let! pop = agent.CallOk("inbox_pop", [ "activity_id", box activityId ])
        Assert.True(((parseJson pop)["removed"]).GetValue<bool>(), $"first pop: {pop}")
        let! peek2 = agent.CallOk("inbox_peek", [])
        Assert.Equal(0, (parseJson peek2).AsArray().Count)
        let! pop2 = agent.CallOk("inbox_pop", [ "activity_id", box activityId ])
        Assert.False(((parseJson pop2)["removed"]).GetValue<bool>(), $"second pop: {pop2}")

        // a popped message never comes back, even after more polls
        let polls = platform.Requests $"/workspaces/{a.Id}/activity"
        do! waitUntil (secs 10.0) "3 more polls" agent.Describe (fun () -> platform.Requests $"/workspaces/{a.Id}/activity" >= polls + 3)
        let! peek3 = agent.CallOk("inbox_peek", [])
        Assert.Equal(0, (parseJson peek3).AsArray().Count)
        Assert.Equal(1, agent.Notifications |> List.filter (fun n -> pushedText n = text) |> List.length)
        agent.AssertNoTokenLeak [ b.Token; platform.AdminToken ]
    }

[<Fact>]
let ``canvas user message is notified with kind canvas_user and no peer_id`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "canvas"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let text = "hello from the canvas " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(ws.Id, text)
        let! n = agent.WaitNotification(fun n -> pushedText n = text)
        assertMetaShape (agent.Describe()) n
        Assert.Equal("canvas_user", metaString n "kind")
        Assert.True(String.IsNullOrEmpty(metaString n "peer_id"), $"canvas message must not carry a peer_id: {n.ToJsonString()}")
        // wait_for_message returns it (without removing it)
        let! w = agent.CallOk("wait_for_message", [ "timeout_secs", box 5 ])
        let m = parseJson w
        Assert.Equal(text, strOf m "text")
        Assert.Equal("canvas_user", strOf m "kind")
        let! w2 = agent.CallOk("wait_for_message", [ "timeout_secs", box 0 ])
        Assert.Equal(strOf m "activity_id", strOf (parseJson w2) "activity_id")
        agent.AssertNoTokenLeak [ platform.AdminToken ]
    }

[<Fact>]
let ``a message queued before the agent starts is notified once, only after notifications initialized`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "queued-before-start"
        let text = "queued while offline " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(ws.Id, text)
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize(sendInitialized = false)
        // the poller runs (several polls) but no notification may be sent before `initialized`
        let activity = $"/workspaces/{ws.Id}/activity"
        do! waitUntil (secs 15.0) "3 inbox polls before initialized" p.Describe (fun () -> platform.Requests activity >= 3)
        Assert.True(p.ChannelNotifications.IsEmpty, $"channel notification before notifications/initialized\n{p.Describe()}")
        p.Notify "notifications/initialized"
        do! waitUntil (secs 10.0) "the channel notification" p.Describe (fun () -> not p.ChannelNotifications.IsEmpty)
        let polls = platform.Requests activity
        do! waitUntil (secs 10.0) "3 more polls" p.Describe (fun () -> platform.Requests activity >= polls + 3)
        let mine = p.ChannelNotifications |> List.filter (fun n -> pushedText n.["params"] = text)
        Assert.True((mine.Length = 1), $"expected exactly one notification for the queued message\n{p.Describe()}")
        let kindNode = mine.Head.["params"].["meta"].["kind"]
        let kind = kindNode.GetValue<string>()
        Assert.Equal("canvas_user", kind)
        p.CloseStdin()
        let! _ = p.WaitExit 10.0
        assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
        assertNoSecrets [ ws.Token; platform.AdminToken ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
    }

[<Fact>]
let ``stdin EOF while wait_for_message is in flight ends the process with code 0 within seconds`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "eof"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        p.Send """{"jsonrpc":"2.0","id":"wait-1","method":"tools/call","params":{"name":"wait_for_message","arguments":{"timeout_secs":60}}}"""
        // give the call time to be in flight (the platform sees polls meanwhile)
        let polls = platform.Requests $"/workspaces/{ws.Id}/activity"
        do! waitUntil (secs 10.0) "2 more polls" p.Describe (fun () -> platform.Requests $"/workspaces/{ws.Id}/activity" >= polls + 2)
        p.CloseStdin()
        let! code = p.WaitExit 10.0
        Assert.True((code = 0), $"exit code {inv code}, expected 0\n{p.Describe()}")
        assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
    }

[<Fact>]
let ``inbox keeps working through transient 5xx and slow activity answers without duplicates`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "flaky-inbox"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let activity = $"/workspaces/{ws.Id}/activity"
        platform.Fault { Molecule.Platform.FaultRule.make activity 500 with Times = Some 3; Method = Some "GET" }
        platform.Fault { Molecule.Platform.FaultRule.make activity 0 with Times = Some 2; DelayMs = 1500; Method = Some "GET" }
        let texts = [ for i in 1..3 -> $"flaky {inv i} " + Guid.NewGuid().ToString("N") ]

        for t in texts do
            let! _ = platform.CanvasMessage(ws.Id, t)
            ()

        for t in texts do
            let! _ = agent.WaitNotification((fun n -> pushedText n = t), 30.0)
            ()

        let polls = platform.Requests activity
        do! waitUntil (secs 10.0) "3 more polls" agent.Describe (fun () -> platform.Requests activity >= polls + 3)

        for t in texts do
            Assert.True(
                (agent.Notifications |> List.filter (fun n -> pushedText n = t) |> List.length) = 1,
                $"'{t}' must be notified exactly once\n{agent.Describe()}"
            )

        let! peek = agent.CallOk("inbox_peek", [ "limit", box 50 ])
        Assert.Equal(3, (parseJson peek).AsArray().Count)
        agent.AssertNoTokenLeak [ platform.AdminToken ]
    }

[<Fact>]
let ``wait_for_message returns a message that arrives while it waits`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "waiter"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let text = "arrives later " + Guid.NewGuid().ToString("N")
        let waiting = agent.CallOk("wait_for_message", [ "timeout_secs", box 60 ])
        do! Threading.Tasks.Task.Delay 500
        Assert.False(waiting.IsCompleted, "wait_for_message returned before any message was sent")
        let! _ = platform.CanvasMessage(ws.Id, text)
        // liveness: well before the 60 s timeout
        let! finished = Threading.Tasks.Task.WhenAny(waiting, Threading.Tasks.Task.Delay(TimeSpan.FromSeconds 15.0))
        Assert.True(Object.ReferenceEquals(finished, waiting), $"wait_for_message did not wake up\n{agent.Describe()}")
        let! w = waiting
        Assert.Equal(text, strOf (parseJson w) "text")
    }

[<Fact>]
let ``a burst of messages from several senders is delivered exactly once each, oldest first`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (parent, a, b) = family platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        let tag = Guid.NewGuid().ToString("N").Substring(0, 8)

        let send (i: int) =
            task {
                let text = $"burst {tag} #{inv i}"
                match i % 3 with
                | 0 -> let! _ = platform.CanvasMessage(a.Id, text) in ()
                | 1 -> let! _ = platform.PeerMessage(b, a.Id, text) in ()
                | _ -> let! _ = platform.PeerMessage(parent, a.Id, text) in ()
                return text
            }

        let! texts = Threading.Tasks.Task.WhenAll [ for i in 1..24 -> send i ]
        do! waitUntil (secs 20.0) "24 notifications" agent.Describe (fun () ->
                texts |> Array.forall (fun t -> agent.Notifications |> List.exists (fun n -> pushedText n = t)))
        let activity = $"/workspaces/{a.Id}/activity"
        let polls = platform.Requests activity
        do! waitUntil (secs 10.0) "3 more polls" agent.Describe (fun () -> platform.Requests activity >= polls + 3)

        for t in texts do
            let c = agent.Notifications |> List.filter (fun n -> pushedText n = t) |> List.length
            Assert.True((c = 1), $"'{t}' notified {inv c} times\n{agent.Describe()}")

        // inbox order = the platform's order of the rows
        let! rows = platform.Activity(a.Id, "a2a_receive")
        let platformOrder =
            rows
            |> List.sortBy (fun r -> r["seq"].GetValue<int64>())
            |> List.map (fun r -> strOf r "id")

        let! peek = agent.CallOk("inbox_peek", [ "limit", box 200 ])
        let inboxOrder = (parseJson peek).AsArray() |> Seq.map (fun m -> strOf m "activity_id") |> Seq.toList
        Assert.Equal<string list>(platformOrder, inboxOrder)
    }
