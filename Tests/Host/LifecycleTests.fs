/// Heartbeat auth failures and deleted workspaces against the real platform with fault injection.
module Molecule.Tests.Host.LifecycleTests

open Molecule.Protocol

open System
open System.Text.Json.Nodes
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

let private errorLine = "3 consecutive heartbeat auth failures"
/// Any count: "3 consecutive …", "23 consecutive …".
let private anyErrorLine = "consecutive heartbeat auth failures"

[<Fact>]
let ``three consecutive heartbeat 401s log exactly one ERROR and the server keeps answering`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "heartbeat-401"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        // a good register and at least one good beat first
        do! waitUntil (secs 15.0) "register + a good heartbeat" agent.Describe (fun () ->
                platform.Requests "/registry/register" >= 1 && platform.Requests "/registry/heartbeat" >= 1)

        let before = platform.Requests "/registry/heartbeat"
        // the token is revoked: every request with it is refused (a refused heartbeat alone is not: MisbehavingTests)
        platform.Fault { FaultRule.make "^/(registry|workspaces)/" 401 with Body = """{"error":"invalid auth token"}""" }
        let failures () = platform.Requests "/registry/heartbeat" - before

        do! waitUntil (secs 20.0) "5 rejected heartbeats" agent.Describe (fun () -> failures () >= 5)
        // the warning/ERROR lines of the first three failures are logged long before the 5th request
        do! agent.WaitStderr("the ERROR line", (fun ls -> countLines errorLine ls >= 1), 10.0)
        let lines = agent.StderrLines
        let seen = failures ()
        let ctx = $"failures seen: {inv seen}\n{agent.Describe()}"
        // the ERROR repeats only every 20 further failures: meaningful while fewer than 23 were seen
        Assert.True(seen <= 22, $"too many failures to judge the once-only rule\n{ctx}")
        Assert.True((countLines anyErrorLine lines = 1), $"expected exactly one '{errorLine}' line\n{ctx}")
        Assert.True((countLines "auth failure 1/3" lines = 1), $"expected one 'auth failure 1/3' warning\n{ctx}")
        Assert.True((countLines "auth failure 2/3" lines = 1), $"expected one 'auth failure 2/3' warning\n{ctx}")
        let err = lines |> List.find (fun l -> l.Contains errorLine)
        Assert.Contains("HTTP 401", err)
        Assert.Contains("REVOKED", err)
        Assert.Contains(ws.Id, err)
        Assert.Contains("Tokens tab", err)
        // still serving
        let! tools = agent.Client.ListToolsAsync()
        Assert.Equal(22, tools.Count)
        let! _ = agent.Client.PingAsync()
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``heartbeat 403s count as auth failures too and a success resets the counter`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "heartbeat-403"
        // verbose: the recovery note is an info line; no inbox, so heartbeats are the only requests (any success of
        // another request would clear the strikes too)
        use! agent = AgentProcess.StartAsync(agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1"; "MOLECULE_MCP_DISABLE_INBOX", "1" ])
        do! waitUntil (secs 15.0) "a good heartbeat" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 1)
        // two failures, then success: no ERROR, a recovery note
        platform.Fault { FaultRule.make "/registry/heartbeat" 403 with Times = Some 2 }
        let before = platform.Requests "/registry/heartbeat"
        do! waitUntil (secs 20.0) "2 failures and 2 good beats" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" - before >= 4)
        do! agent.WaitStderr("the recovery note", (fun ls -> countLines "recovered" ls >= 1), 10.0)
        let ctx = agent.Describe()
        Assert.True((countLines "auth failure 2/3" agent.StderrLines = 1), ctx)
        Assert.True((countLines errorLine agent.StderrLines = 0), $"no ERROR after only 2 failures\n{ctx}")
        // two more failures after the reset: still no ERROR (the counter restarted at 1)
        platform.Fault { FaultRule.make "/registry/heartbeat" 403 with Times = Some 2 }
        let before2 = platform.Requests "/registry/heartbeat"
        do! waitUntil (secs 20.0) "2 more failures and a good beat" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" - before2 >= 4)
        do! agent.WaitStderr("a second recovery", (fun ls -> countLines "recovered" ls >= 2), 10.0)
        Assert.True((countLines errorLine agent.StderrLines = 0), $"the counter must reset on success\n{agent.Describe()}")
        Assert.True((countLines "auth failure 1/3" agent.StderrLines = 2), agent.Describe())
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``heartbeat 5xx answers are not auth failures and the server keeps serving`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "heartbeat-5xx"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        do! waitUntil (secs 15.0) "a good heartbeat" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 1)
        platform.Fault { FaultRule.make "/registry/heartbeat" 503 with Times = Some 4 }
        let before = platform.Requests "/registry/heartbeat"
        do! waitUntil (secs 20.0) "4 failing heartbeats" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" - before >= 5)
        Assert.True((countLines "auth failure" agent.StderrLines = 0), $"5xx is not an auth failure\n{agent.Describe()}")
        Assert.True((countLines errorLine agent.StderrLines = 0), agent.Describe())
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, info)
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``deleted workspace makes get_workspace_info return the tailored deleted message`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "to-delete"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let! before = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, before)
        let! del = platform.DeleteWorkspace ws.Id
        Assert.True((del.Code = 200), $"DELETE: HTTP {inv del.Code} {del.Body}")
        let! r = agent.Call("get_workspace_info", [])
        let text = textOf r
        Assert.True(isError r, $"expected isError, got: {text}\n{agent.Describe()}")
        Assert.Contains("was deleted on the platform", text)
        Assert.Contains("Tokens tab", text)
        // the local inbox tools keep working
        let! peek = agent.CallOk("inbox_peek", [])
        Assert.Equal("[]", peek.Trim())
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``a register answered after the workspace was deleted at runtime keeps the server serving`` () =
    // A busy machine answers the register after a tool's request: the deletion in between is a runtime one.
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "late-register"
        platform.Fault { FaultRule.make "/registry/register" 0 with DelayMs = 6000; Times = Some 1 }
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let! before = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, before)
        let! del = platform.DeleteWorkspace ws.Id
        Assert.True((del.Code = 200), $"DELETE: HTTP {inv del.Code} {del.Body}")
        // the tool sees the removal before the register's answer comes (as in the CI run that found this)
        let! seen = agent.Call("get_workspace_info", [])
        Assert.Contains("was deleted on the platform", textOf seen)
        Assert.True((platform.Requests "/registry/heartbeat" = 0), $"the register was answered too early for this test\n{agent.Describe()}")
        // The first heartbeat follows the register's answer.
        do! waitUntil (secs 20.0) "the register's answer" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 1)
        let! r = agent.Call("get_workspace_info", [])
        Assert.True(isError r, $"expected isError, got: {textOf r}\n{agent.Describe()}")
        Assert.Contains("was deleted on the platform", textOf r)
        let! peek = agent.CallOk("inbox_peek", [])
        Assert.Equal("[]", peek.Trim())
        Assert.True((countLines "register rejected" agent.StderrLines = 0), agent.Describe())
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``a process started after its workspace was deleted exits 3 with a clear message`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "deleted-before-start"
        let! del = platform.DeleteWorkspace ws.Id
        Assert.True((del.Code = 200), $"DELETE: HTTP {inv del.Code} {del.Body}")
        use p = RawProcess.Start(agentEnv platform ws)
        let! code = p.WaitExit 20.0
        let ctx = p.Describe()
        // the platform revokes the tokens of a removed workspace: register is rejected with 401
        Assert.True((code = 3), $"exit code {inv code}, expected 3\n{ctx}")
        let line = p.StderrLines |> List.tryFind (fun l -> l.Contains "register rejected with HTTP 401")
        Assert.True(line.IsSome, $"no register-rejected line\n{ctx}")
        Assert.Contains(ws.Id, line.Value)
        Assert.Contains("Regenerate", line.Value)
        Assert.True((p.StdoutBytes.Length = 0), $"nothing on stdout without a client request\n{ctx}")
        assertNoSecrets [ ws.Token ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
    }

[<Fact>]
let ``a revoked token: the ERROR is said once, and the heartbeat backs off as the pacing policy says`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "heartbeat-paced"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws @ [ "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.2" ])
        do! waitUntil (secs 15.0) "a good heartbeat" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 1)
        let before = platform.Requests "/registry/heartbeat"
        platform.Fault(FaultRule.make "^/(registry|workspaces)/" 401)
        let sw = Diagnostics.Stopwatch.StartNew()
        do! agent.WaitStderr("the ERROR line", (fun ls -> countLines anyErrorLine ls >= 1), 15.0)
        do! Threading.Tasks.Task.Delay 12000
        let seen = platform.Requests "/registry/heartbeat" - before
        let bound = Molecule.Core.Pacing.most (Molecule.Core.Pacing.heartbeat 0.2) sw.Elapsed.TotalSeconds + 1
        let ctx = $"heartbeats seen: {inv seen} (at most {inv bound})\n{agent.Describe()}"
        // unpaced, 0.2 s apart: about 70; the ERROR repeats only every 20 further failures (LifecycleTests in Core)
        Assert.True(seen >= 4 && seen <= bound, ctx)
        Assert.True((countLines anyErrorLine agent.StderrLines = 1), ctx)
        agent.AssertNoTokenLeak()
    }

