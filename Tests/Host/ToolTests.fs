/// Platform-backed tools end to end: delegation, messages to the user with attachments, memory scopes, peers.
module Molecule.Tests.Host.ToolTests

open Molecule.Protocol

open System
open System.IO
open System.Text.Json.Nodes
open Xunit
open Molecule.Tests.Host.Harness

let private family (platform: Platform) =
    task {
        let! parent = platform.CreateWorkspace("team-lead", role = "lead", skills = [ "planning" ])
        let! a = platform.CreateWorkspace("alice", role = "researcher", parent = parent, skills = [ "research"; "summaries" ])
        let! b = platform.CreateWorkspace("bob", parent = parent, skills = [ "code-review"; "testing" ])
        return parent, a, b
    }

[<Fact>]
let ``delegate_task to a poll-mode peer succeeds and the peer's molecule-mcp receives the task`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (_, a, b) = family platform
        use! alice = AgentProcess.StartAsync(agentEnv platform a)
        use! bob = AgentProcess.StartAsync(agentEnv platform b)
        let task' = "summarise the design doc " + Guid.NewGuid().ToString("N")
        let! r = alice.Call("delegate_task", [ "workspace_id", box b.Id; "task", box task' ])
        let text = textOf r
        let ctx = $"{text}\n{alice.Describe()}"
        Assert.False(isError r, $"delegate_task isError\n{ctx}")
        Assert.DoesNotContain("DELEGATION FAILED", text)
        Assert.Contains("queued", text)

        let! w = bob.CallOk("wait_for_message", [ "timeout_secs", box 20 ])
        let m = parseJson w
        Assert.True((strOf m "text" = task'), $"bob got: {w}\n{bob.Describe()}")
        Assert.Equal(a.Id, strOf m "peer_id")
        Assert.Equal("peer_agent", strOf m "kind")
        // and as a channel notification
        let! n = bob.WaitNotification(fun n -> pushedText n = task')
        Assert.Equal(a.Id, (n["meta"]["peer_id"]).GetValue<string>())
        // echo fix: the delegator's own delegation rows never show up in its inbox
        let activity = $"/workspaces/{a.Id}/activity"
        let polls = platform.Requests activity
        do! waitUntil (secs 10.0) "3 more polls by alice" alice.Describe (fun () -> platform.Requests activity >= polls + 3)
        let! alicePeek = alice.CallOk("inbox_peek", [])
        Assert.True(((parseJson alicePeek).AsArray().Count = 0), $"delegator saw its own delegation: {alicePeek}")
        Assert.True(alice.Notifications.IsEmpty, $"delegator notified of its own delegation\n{alice.Describe()}")
        alice.AssertNoTokenLeak [ b.Token ]
        bob.AssertNoTokenLeak [ a.Token ]
    }

[<Fact>]
let ``delegate_task to a poll-mode peer whose agent is not connected yet is queued, and the peer gets it when it starts`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (_, a, b) = family platform
        use! alice = AgentProcess.StartAsync(agentEnv platform a)
        let task' = "triage the backlog " + Guid.NewGuid().ToString("N")
        let! r = alice.Call("delegate_task", [ "workspace_id", box b.Id; "task", box task' ])
        let text = textOf r
        Assert.False(isError r, $"delegate_task isError\n{text}\n{alice.Describe()}")
        Assert.Contains("awaiting_agent", text)
        Assert.DoesNotContain("DELEGATION FAILED", text)

        use! bob = AgentProcess.StartAsync(agentEnv platform b)
        let! w = bob.CallOk("wait_for_message", [ "timeout_secs", box 20 ])
        Assert.True((strOf (parseJson w) "text" = task'), $"bob got: {w}\n{bob.Describe()}")
        alice.AssertNoTokenLeak [ b.Token ]
    }

[<Fact>]
let ``delegate_task to a peer outside the team fails clearly instead of hanging`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (_, a, _) = family platform
        let! otherRoot = platform.CreateWorkspace "other-team"
        let! stranger = platform.CreateWorkspace("stranger", parent = otherRoot)
        use! alice = AgentProcess.StartAsync(agentEnv platform a)
        let! r = alice.Call("delegate_task", [ "workspace_id", box stranger.Id; "task", box "do it" ])
        Assert.True(isError r || (textOf r).Contains "DELEGATION FAILED", $"expected a failure: {textOf r}\n{alice.Describe()}")
        alice.AssertNoTokenLeak()
    }

let private writeTemp (name: string) (content: string) =
    let d = tempDir "attachments"
    let p = Path.Combine(d, name)
    File.WriteAllText(p, content)
    p

let private notifyRows (platform: Platform) (id: string) =
    task {
        let! rows = platform.Activity(id, "a2a_receive")
        return rows |> List.filter (fun r -> strOf r "method" = "notify")
    }

[<Fact>]
let ``send_message_to_user uploads attachments and the sender does not get its own message back`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "reporter"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let f1 = writeTemp "report.md" "# Report\nall good\n"
        let f2 = writeTemp "data.csv" "a,b\n1,2\n"
        let msg = "Here is the report " + Guid.NewGuid().ToString("N")
        let! text = agent.CallOk("send_message_to_user", [ "message", box msg; "attachments", box [| f1; f2 |] ])
        Assert.Contains("Message sent to user with 2 attachment(s)", text)

        let! rows = notifyRows platform ws.Id
        let row = rows |> List.tryFind (fun r -> (match r["response_body"] with | null -> "" | n -> n.ToJsonString()).Contains msg)
        Assert.True(row.IsSome, $"no notify row with the message: {rows |> List.map (fun r -> r.ToJsonString())}")
        let body = row.Value["response_body"].ToJsonString()
        Assert.Contains("report.md", body)
        Assert.Contains("data.csv", body)
        let parts = (row.Value["response_body"]["parts"]).AsArray()
        Assert.Equal(2, parts.Count)

        // a missing attachment: error, nothing sent
        let missing = Path.Combine(tempDir "attachments", "nope.txt")
        let! r = agent.Call("send_message_to_user", [ "message", box "with a missing file"; "attachments", box [| f1; missing |] ])
        Assert.True(isError r, $"expected isError: {textOf r}")
        Assert.Contains("attachment not found", textOf r)
        let! rows2 = notifyRows platform ws.Id
        Assert.Equal(rows.Length, rows2.Length)

        // echo fix: the notify row is not delivered back to the sender's inbox
        let activity = $"/workspaces/{ws.Id}/activity"
        let polls = platform.Requests activity
        do! waitUntil (secs 10.0) "3 more polls" agent.Describe (fun () -> platform.Requests activity >= polls + 3)
        let! peek = agent.CallOk("inbox_peek", [])
        Assert.True(((parseJson peek).AsArray().Count = 0), $"own message echoed into the inbox: {peek}")
        Assert.True(agent.Notifications.IsEmpty, $"own message echoed as a notification\n{agent.Describe()}")
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``send_message_to_user without attachments says Message sent to user`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "plain-reporter"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let! text = agent.CallOk("send_message_to_user", [ "message", box "done" ])
        Assert.Equal("Message sent to user", text.Trim())
        let! rows = notifyRows platform ws.Id
        Assert.Equal(1, rows.Length)
    }

let private recall (agent: AgentProcess) (query: string) (scope: string) =
    agent.CallOk("recall_memory", [ "query", box query; "scope", box scope ])

[<Fact>]
let ``memory scopes LOCAL TEAM and GLOBAL behave per the platform rules`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (root, a, b) = family platform
        use! rootAgent = AgentProcess.StartAsync(agentEnv platform root)
        use! alice = AgentProcess.StartAsync(agentEnv platform a)
        use! bob = AgentProcess.StartAsync(agentEnv platform b)
        let tag = Guid.NewGuid().ToString("N").Substring(0, 10)
        let local = $"localfact{tag}"
        let team = $"teamfact{tag}"
        let glob = $"globalfact{tag}"

        let! _ = alice.CallOk("commit_memory", [ "content", box local; "scope", box "LOCAL" ])
        let! _ = alice.CallOk("commit_memory", [ "content", box team; "scope", box "TEAM" ])

        // LOCAL: only alice
        let! mine = recall alice local ""
        Assert.Contains(local, mine)
        let! bobLocal = recall bob local "LOCAL"
        Assert.DoesNotContain(local, bobLocal)
        let! bobAny = recall bob local ""
        Assert.DoesNotContain(local, bobAny)

        // TEAM: visible to the sibling
        let! bobTeam = recall bob team "TEAM"
        Assert.True(bobTeam.Contains team, $"bob should see alice's TEAM memory: {bobTeam}\n{bob.Describe()}")

        // GLOBAL from a non-root workspace: the platform's refusal, as an error
        let! r = alice.Call("commit_memory", [ "content", box "nope"; "scope", box "GLOBAL" ])
        Assert.True(isError r, $"GLOBAL from a child must fail: {textOf r}")
        Assert.Contains("only root workspaces can write GLOBAL memories", textOf r)

        // GLOBAL from the root: visible to others
        let! _ = rootAgent.CallOk("commit_memory", [ "content", box glob; "scope", box "GLOBAL" ])
        let! aliceGlobal = recall alice glob "GLOBAL"
        Assert.True(aliceGlobal.Contains glob, $"alice should see the root's GLOBAL memory: {aliceGlobal}")
        let! bobGlobal = recall bob glob "GLOBAL"
        Assert.Contains(glob, bobGlobal)
        for ag in [ rootAgent; alice; bob ] do
            ag.AssertNoTokenLeak [ root.Token; a.Token; b.Token ]
    }

[<Fact>]
let ``list_peers shows siblings parent and children with skills and never role None`` () =
    task {
        use! platform = Platform.StartAsync()
        let! (root, a, b) = family platform
        let! c = platform.CreateWorkspace("carol", parent = a, skills = [ "data" ])
        use! alice = AgentProcess.StartAsync(agentEnv platform a)
        let! peers = alice.CallOk("list_peers", [])
        let ctx = $"{peers}\n{alice.Describe()}"
        Assert.True(peers.Contains "bob", $"sibling missing\n{ctx}")
        Assert.True(peers.Contains b.Id, $"sibling id missing\n{ctx}")
        Assert.True(peers.Contains "team-lead", $"parent missing\n{ctx}")
        Assert.True(peers.Contains "carol", $"child missing\n{ctx}")
        Assert.True(peers.Contains "skills: [code-review, testing]", $"sibling skills missing\n{ctx}")
        Assert.True(peers.Contains "skills: [planning]", $"parent skills missing\n{ctx}")
        Assert.True(peers.Contains "skills: [data]", $"child skills missing\n{ctx}")
        Assert.DoesNotContain("role: None", peers)
        Assert.DoesNotContain("role: null", peers)
        Assert.True(peers.Contains "role: lead", $"parent role missing\n{ctx}")
        Assert.False(peers.Contains c.Token || peers.Contains b.Token || peers.Contains root.Token, "tokens in list_peers")
    }
