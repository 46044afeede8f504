/// Fault injection on the real HTTP server: 410 cursor resets, slow and hung answers, register failures.
module Molecule.Tests.Host.FaultTests

open System
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

[<Fact>]
let ``a 410 on the inbox cursor resets it without resurfacing popped messages or duplicating pending ones`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "cursor-410"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1" ])
        let first = "first " + Guid.NewGuid().ToString("N")
        let second = "second " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(ws.Id, first)
        let! n1 = agent.WaitNotification(fun n -> pushedText n = first)
        let id1 = (n1.["meta"].["activity_id"]).GetValue<string>()
        let! pop = agent.CallOk("inbox_pop", [ "activity_id", box id1 ])
        Assert.Contains("true", pop)
        let! _ = platform.CanvasMessage(ws.Id, second)
        let! _ = agent.WaitNotification(fun n -> pushedText n = second)

        // the cursor row is gone on the platform side: the next polls get 410
        let activity = $"/workspaces/{ws.Id}/activity"
        platform.Fault { FaultRule.make activity 410 with Method = Some "GET"; Times = Some 2; Body = """{"error":"since_id not found"}""" }
        let polls = platform.Requests activity
        do! waitUntil (secs 15.0) "the 410s and 4 more polls" agent.Describe (fun () -> platform.Requests activity >= polls + 6)
        let third = "third " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(ws.Id, third)
        let! _ = agent.WaitNotification(fun n -> pushedText n = third)
        let polls2 = platform.Requests activity
        do! waitUntil (secs 15.0) "3 more polls" agent.Describe (fun () -> platform.Requests activity >= polls2 + 3)

        Assert.True(agent.StderrLines |> List.exists (fun l -> l.Contains "410"), $"the 410 was not seen by the poller\n{agent.Describe()}")
        let count t = agent.Notifications |> List.filter (fun n -> pushedText n = t) |> List.length
        let ctx = agent.Describe()
        Assert.True((count first = 1), $"popped message resurfaced after the 410 reset\n{ctx}")
        Assert.True((count second = 1), $"pending message notified again after the 410 reset\n{ctx}")
        Assert.True((count third = 1), ctx)
        let! peek = agent.CallOk("inbox_peek", [ "limit", box 50 ])
        Assert.DoesNotContain(first, peek)
        Assert.Contains(second, peek)
        Assert.Contains(third, peek)
        Assert.Equal(2, (parseJson peek).AsArray().Count)
        agent.AssertNoTokenLeak [ platform.AdminToken ]
    }

[<Fact>]
let ``a slow platform answer still gives the tool result`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "slow"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        platform.Fault { FaultRule.make $"/workspaces/{ws.Id}" 0 with Method = Some "GET"; DelayMs = 2500; Times = Some 1 }
        platform.Fault { FaultRule.make $"/registry/{ws.Id}/peers" 0 with DelayMs = 2500; Times = Some 1 }
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, info)
        let! peers = agent.Call("list_peers", [])
        Assert.False(isError peers, textOf peers)
    }

[<Fact>]
let ``a hung platform gives a clear timeout error and the server keeps answering`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "hung"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        platform.Fault { FaultRule.make $"/registry/{ws.Id}/peers" 0 with Hang = true; Times = Some 1 }
        let! r = agent.Call("list_peers", [])
        let text = textOf r
        Assert.True(isError r, $"expected isError: {text}\n{agent.Describe()}")
        Assert.Contains("did not answer", text)
        let! again = agent.Call("list_peers", [])
        Assert.False(isError again, textOf again)
        let! _ = agent.Client.PingAsync()
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``register 5xx is logged and the server keeps running`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "register-503"
        platform.Fault { FaultRule.make "/registry/register" 503 with Times = Some 1; Body = """{"error":"maintenance"}""" }
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        do! waitUntil (secs 15.0) "heartbeats after the failed register" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 2)
        Assert.Contains(agent.StderrLines, fun l -> l.Contains "register" && l.Contains "503")
        let! tools = agent.Client.ListToolsAsync()
        Assert.Equal(22, tools.Count)
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, info)
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``register 403 exits 3 like a 401`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "register-403"
        platform.Fault { FaultRule.make "/registry/register" 403 with Body = """{"error":"forbidden"}""" }
        use p = RawProcess.Start(agentEnv platform ws)
        let! code = p.WaitExit 20.0
        Assert.True((code = 3), $"exit code {inv code}\n{p.Describe()}")
        Assert.Contains(p.StderrLines, fun l -> l.Contains "register rejected with HTTP 403")
        assertNoSecrets [ ws.Token ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
    }

[<Fact>]
let ``a connection dropped after delegate_task's request went out is reported, never re-sent (P10)`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "drop-lead"
        let! a = platform.CreateWorkspace("drop-a", parent = lead)
        let! b = platform.CreateWorkspace("drop-b", parent = lead)
        do! platform.RegisterPoll b
        use! alice = AgentProcess.StartAsync(agentEnv platform a)
        let a2a = $"/workspaces/{b.Id}/a2a"
        platform.Fault { FaultRule.make a2a 0 with Method = Some "POST"; Drop = true }
        let! r = alice.Call("delegate_task", [ "workspace_id", box b.Id; "task", box "do it once" ])
        Assert.True(isError r, $"expected a failure: {textOf r}\n{alice.Describe()}")
        Assert.Contains("DELEGATION FAILED", textOf r)
        Assert.Equal(1, platform.Requests a2a)
        alice.AssertNoTokenLeak()
    }
