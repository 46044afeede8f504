/// Delegation answers scripted through the fault injector: multi-part results (P9), proxy error bodies (P8),
/// repeated async delegations (P7).
module Molecule.Tests.Host.DelegationTests

open System
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

let private pair (platform: Platform) =
    task {
        let! parent = platform.CreateWorkspace "lead"
        let! a = platform.CreateWorkspace("asker", parent = parent)
        let! b = platform.CreateWorkspace("answerer", parent = parent)
        // the peer is online (registered, poll mode) without running a second molecule-mcp
        do! platform.RegisterPoll b
        return a, b
    }

/// The peer's A2A endpoint answers with `body` (HTTP `status`) once.
let private scriptPeer (platform: Platform) (peer: Workspace) (status: int) (body: string) =
    platform.Fault { FaultRule.make $"/workspaces/{peer.Id}/a2a" status with Method = Some "POST"; Body = body; Times = Some 1 }

[<Fact>]
let ``delegate_task returns every text part of a Message result`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (a, b) = pair platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        scriptPeer platform b 200 """{"jsonrpc":"2.0","id":"1","result":{"kind":"message","role":"agent","messageId":"m1","parts":[{"kind":"text","text":"PART-ONE"},{"kind":"data","data":{"x":1}},{"kind":"text","text":"PART-TWO"}]}}"""
        let! r = agent.Call("delegate_task", [ "workspace_id", box b.Id; "task", box "answer in two parts" ])
        let text = textOf r
        Assert.False(isError r, $"{text}\n{agent.Describe()}")
        Assert.Contains("PART-ONE", text)
        Assert.Contains("PART-TWO", text)
    }

[<Fact>]
let ``delegate_task returns the text of every artifact of a Task result`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (a, b) = pair platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        scriptPeer platform b 200 """{"jsonrpc":"2.0","id":"1","result":{"kind":"task","id":"t1","status":{"state":"completed"},"artifacts":[{"artifactId":"x","parts":[{"kind":"text","text":"ARTIFACT-A"}]},{"artifactId":"y","parts":[{"kind":"text","text":"ARTIFACT-B"}]}]}}"""
        let! r = agent.Call("delegate_task", [ "workspace_id", box b.Id; "task", box "make artifacts" ])
        let text = textOf r
        Assert.False(isError r, $"{text}\n{agent.Describe()}")
        Assert.Contains("ARTIFACT-A", text)
        Assert.Contains("ARTIFACT-B", text)
    }

[<Fact>]
let ``a proxy error body surfaces its message in DELEGATION FAILED`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (a, b) = pair platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        scriptPeer platform b 502 """{"error":"peer agent unreachable: connection refused"}"""
        let! r = agent.Call("delegate_task", [ "workspace_id", box b.Id; "task", box "anyone there?" ])
        let text = textOf r
        Assert.True(isError r, $"expected isError: {text}")
        Assert.Contains("DELEGATION FAILED", text)
        Assert.Contains("peer agent unreachable: connection refused", text)
        agent.AssertNoTokenLeak [ b.Token ]
    }

[<Fact>]
let ``a JSON-RPC error from the peer is a clear failure with its message`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (a, b) = pair platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        scriptPeer platform b 200 """{"jsonrpc":"2.0","id":"1","error":{"code":-32603,"message":"model overloaded, try later"}}"""
        let! r = agent.Call("delegate_task", [ "workspace_id", box b.Id; "task", box "busy?" ])
        let text = textOf r
        Assert.True(isError r, $"expected isError: {text}")
        Assert.Contains("model overloaded, try later", text)
    }

[<Fact>]
let ``sending the same async delegation twice is not an error`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (a, b) = pair platform
        use! agent = AgentProcess.StartAsync(agentEnv platform a)
        let args = [ "workspace_id", box b.Id; "task", box "the very same task" ]
        let! first = agent.Call("delegate_task_async", args)
        let! second = agent.Call("delegate_task_async", args)
        Assert.False(isError first, textOf first)
        Assert.False(isError second, $"a legitimate re-send must not fail: {textOf second}")
        let id1 = strOf (parseJson (textOf first)) "delegation_id"
        Assert.False(String.IsNullOrEmpty id1, textOf first)
        let! status = agent.CallOk("check_task_status", [ "workspace_id", box b.Id; "task_id", box id1 ])
        Assert.Contains(id1, status)
    }
