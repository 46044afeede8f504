/// A library agent (MoleculeAgent, in this process) and the published `molecule-mcp` (MOLECULE_MCP_BIN, driven over
/// stdio) in one team on the real local platform on 127.0.0.1: they delegate to each other — delegate_task both
/// ways, delegate_task_async both ways with the answer coming back as a message — and both write to the user's canvas
/// chat. Both are poll-mode agents, so a delegation is queued for the other and its answer is the other's reply; a
/// push-mode peer (a scripted A2A endpoint) answers at once, and its background result is a DelegationResult message.
module Molecule.Tests.Agents.McpPeerTests

open System
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Xunit
open Molecule.Agents
open Molecule.Tests.Host.Harness
open Molecule.Tests.Agents.AgentTests

/// The next message molecule-mcp's inbox gives (wait_for_message), popped once read.
let private nextOf (mcp: AgentProcess) : Task<JsonNode> =
    task {
        let! text = mcp.CallOk("wait_for_message", [ "timeout_secs", box 30 ])
        let message = parseJson text
        if isNull message["activity_id"] then failwith $"no message within 30 s: {text}\n{mcp.Describe()}"
        let! _ = mcp.CallOk("inbox_pop", [ "activity_id", box (strOf message "activity_id") ])
        return message
    }

/// The next message the library agent reads, handled (its iteration completed) once `handle` returned.
let private nextMessage (agent: MoleculeAgent) (handle: MoleculeMessage -> Task) : Task<MoleculeMessage> =
    task {
        let! got = readUntil agent 1 handle
        return List.exactlyOne got
    }

[<Fact>]
let ``a library agent and molecule-mcp delegate to each other, sync and async, and both reach the user's chat`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "lead"
        let! lib = platform.CreateWorkspace("library-agent", parent = lead)
        let! mcpWs = platform.CreateWorkspace("mcp-agent", parent = lead)
        use! mcp = AgentProcess.StartAsync(agentEnv platform mcpWs)
        let log = new CapturedLog()
        let! agent = MoleculeAgent.ConnectAsync(options platform lib (tempDir "lib"), log)
        // each lists the other as a peer (molecule-mcp registers at start: wait until it is online)
        do! waitUntil (secs 15.0) "molecule-mcp registered" mcp.Describe (fun () -> platform.Requests "/registry/register" >= 1)
        let! peers = agent.ListPeersAsync()
        Assert.Contains(peers, fun p -> p.Id = mcpWs.Id && p.Name = "mcp-agent")
        let! theirPeers = mcp.CallOk("list_peers", [])
        Assert.Contains(lib.Id, theirPeers)

        // library → molecule-mcp, delegate_task: queued for the poll-mode peer; molecule-mcp answers with delegate_task
        let! reply = agent.DelegateAsync(mcpWs.Id, "sync task from the library")
        Assert.False(reply.Answered, reply.Text)
        let! task1 = nextOf mcp
        Assert.Equal("sync task from the library", strOf task1 "text")
        Assert.Equal(lib.Id, strOf task1 "peer_id")
        Assert.Equal("peer_agent", strOf task1 "kind")
        let! _ = mcp.CallOk("delegate_task", [ "workspace_id", box lib.Id; "task", box "answer from molecule-mcp" ])
        let! answer = nextMessage agent (fun _ -> Task.CompletedTask)
        Assert.Equal("answer from molecule-mcp", answer.Text)
        Assert.Equal(MessageKind.PeerAgent, answer.Kind)
        Assert.Equal(mcpWs.Id, answer.PeerId)

        // molecule-mcp → library, delegate_task: the library's handler replies, molecule-mcp reads the reply
        let! _ = mcp.CallOk("delegate_task", [ "workspace_id", box lib.Id; "task", box "sync task from molecule-mcp" ])
        let! asked = nextMessage agent (fun m -> m.ReplyAsync($"Done: {m.Text}"))
        Assert.Equal("sync task from molecule-mcp", asked.Text)
        Assert.Equal(mcpWs.Id, asked.PeerId)
        let! replied = nextOf mcp
        Assert.Equal("Done: sync task from molecule-mcp", strOf replied "text")
        Assert.Equal(lib.Id, strOf replied "peer_id")

        // library → molecule-mcp in the background: a delegation the platform tracks; the answer comes as a message
        let! ticket = agent.DelegateInBackgroundAsync(mcpWs.Id, "async task from the library")
        Assert.NotEmpty ticket.DelegationId
        let! task2 = nextOf mcp
        Assert.Equal("async task from the library", strOf task2 "text")
        Assert.Equal(lib.Id, strOf task2 "peer_id")
        let! status = agent.GetDelegationAsync ticket.DelegationId
        Assert.Equal(ticket.DelegationId, status.DelegationId)
        Assert.Equal("queued", status.Status)
        let! _ = mcp.CallOk("delegate_task", [ "workspace_id", box lib.Id; "task", box "async answer from molecule-mcp" ])
        let! answer2 = nextMessage agent (fun _ -> Task.CompletedTask)
        Assert.Equal("async answer from molecule-mcp", answer2.Text)
        Assert.Equal(mcpWs.Id, answer2.PeerId)

        // molecule-mcp → library in the background: the library's reply reaches molecule-mcp as a message
        let! queued = mcp.CallOk("delegate_task_async", [ "workspace_id", box lib.Id; "task", box "async task from molecule-mcp" ])
        let delegationId = strOf (parseJson queued) "delegation_id"
        Assert.False(String.IsNullOrEmpty delegationId, queued)
        let! asked2 = nextMessage agent (fun m -> m.ReplyAsync($"Done: {m.Text}"))
        Assert.Equal("async task from molecule-mcp", asked2.Text)
        Assert.Equal(mcpWs.Id, asked2.PeerId)
        let! replied2 = nextOf mcp
        Assert.Equal("Done: async task from molecule-mcp", strOf replied2 "text")
        let! tracked = mcp.CallOk("check_task_status", [ "task_id", box delegationId ])
        Assert.Contains("queued", tracked)

        // both write to the user: the lines reach each workspace's canvas chat
        do! agent.SendToUserAsync "the library agent is done"
        let! _ = mcp.CallOk("send_message_to_user", [ "message", box "molecule-mcp is done" ])
        let! libChat = activityText platform lib.Id
        let! mcpChat = activityText platform mcpWs.Id
        Assert.Contains("Agent message: the library agent is done", libChat)
        Assert.Contains("Agent message: molecule-mcp is done", mcpChat)
        // nothing left over, nothing twice
        let! left = agent.PeekMessagesAsync()
        Assert.Empty left
        let! mcpLeft = mcp.CallOk("inbox_peek", [])
        Assert.Equal("[]", mcpLeft.Trim())
        do! agent.DisposeAsync()
        assertNoSecrets [ lib.Token; mcpWs.Token ] "the library's log" log.Lines
        mcp.AssertNoTokenLeak [ lib.Token ]
    }

[<Fact>]
let ``a push-mode peer answers at once: delegate_task returns its answer, a background delegation's result arrives as a DelegationResult message`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "lead"
        let! lib = platform.CreateWorkspace("library-agent", parent = lead)
        let! pushed = platform.CreateWorkspace("push-agent", parent = lead)
        use echo = new Molecule.Tests.Platform.HttpTests.FakeAgent()
        let! registered =
            platform.Send("POST", "/registry/register", $$"""{"id":"{{pushed.Id}}","url":"{{echo.Url}}/","agent_card":{"name":"push-agent"},"delivery_mode":"push"}""", pushed.Token)
        Assert.Equal(200, registered.Code)
        let! agent = MoleculeAgent.ConnectAsync(options platform lib (tempDir "lib"))
        let! reply = agent.DelegateAsync(pushed.Id, "sync task")
        Assert.True(reply.Answered, reply.Text)
        Assert.Equal("echo: sync task", reply.Text)
        let! ticket = agent.DelegateInBackgroundAsync(pushed.Id, "background task")
        let! result = nextMessage agent (fun _ -> Task.CompletedTask)
        Assert.Equal(MessageKind.DelegationResult, result.Kind)
        Assert.Equal("echo: background task", result.Text)
        Assert.Equal(pushed.Id, result.PeerId)
        Assert.False(result.CanReply)
        let! status = agent.GetDelegationAsync ticket.DelegationId
        Assert.Equal("completed", status.Status)
        do! agent.DisposeAsync()
    }
