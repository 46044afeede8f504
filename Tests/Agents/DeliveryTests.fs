/// Delivery as a library agent (MoleculeAgent, in this process) meets it against the real local platform on
/// 127.0.0.1: a backlog beyond the inbox's capacity at the first start; 410s — the workspace removed at start (the
/// agent stops as molecule-mcp exits: code 3) or while it runs (it goes on, as molecule-mcp does), the inbox cursor
/// gone; two workspaces in one agent.
module Molecule.Tests.Agents.DeliveryTests

open System
open System.Threading.Tasks
open Xunit
open Molecule.Agents
open Molecule.Platform
open Molecule.Tests.Host.Harness
open Molecule.Tests.Agents.AgentTests
open Molecule.Tests.Agents.CrashTests

[<Fact>]
let ``1,500 messages waiting at the first start: all delivered oldest first, each handled exactly once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "backlog"
        // more than the inbox holds (1,000 unread): intake pauses and resumes as messages are handled
        let sent = [ for i in 1..1500 -> $"backlog #{i:D4}" ]
        for text in sent do
            let! _ = platform.CanvasMessage(ws.Id, text)
            ()
        let dir = tempDir "lib"
        let! agent = MoleculeAgent.ConnectAsync(options platform ws dir)
        let! got = readWithin (TimeSpan.FromSeconds 240.0) agent sent.Length (fun _ -> Task.CompletedTask)
        Assert.Equal<string list>(sent, texts got)
        Assert.Equal(sent.Length, got |> List.distinctBy (fun m -> m.Id) |> List.length)
        // nothing more comes, and the ledger counts every one handled
        let! more = agent.WaitForMessageAsync(TimeSpan.FromSeconds 2.0)
        Assert.Null more
        do! agent.DisposeAsync()
        let ledger = ledgerOf dir ws
        Assert.True(ledger.Queue.IsEmpty)
        Assert.Equal<Set<string>>(got |> List.map (fun m -> m.Id) |> set, handledIn ledger)
        // a restart on the same state brings none of them back
        let! again = MoleculeAgent.ConnectAsync(options platform ws dir)
        let! none = again.WaitForMessageAsync(TimeSpan.FromSeconds 2.0)
        Assert.Null none
        do! again.DisposeAsync()
    }

/// The platform's 410 body for a removed workspace (its facts: id, when, the hint).
let private removedBody (ws: Workspace) =
    Molecule.Protocol.Json.compact (Molecule.Protocol.Removed.body ws.Id "2026-12-07T10:00:00Z")

[<Fact>]
let ``a 410 at registration (the workspace was removed) stops the agent with molecule-mcp's exit code and its words`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "removed-at-start"
        platform.Fault { FaultRule.make "/registry/register" 410 with Body = removedBody ws }
        let log = new CapturedLog()
        let! agent = MoleculeAgent.ConnectAsync(options platform ws (tempDir "lib"), log)
        let! stopped = Assert.ThrowsAsync<MoleculeAgentStoppedException>(fun () -> agent.Completion.WaitAsync(TimeSpan.FromSeconds 15.0))
        // reading ends with the same exception (or the agent is already gone)
        let! reading = Assert.ThrowsAnyAsync<Exception>(fun () -> readUntil agent 1 (fun _ -> Task.CompletedTask) :> Task)
        Assert.True(reading :? MoleculeAgentStoppedException || reading :? ObjectDisposedException, reading.ToString())
        do! agent.DisposeAsync()
        // molecule-mcp, against the same platform answer, exits with that code and logs the same sentence
        let! mcpWs = platform.CreateWorkspace "removed-at-start-mcp"
        platform.ClearFaults()
        platform.Fault { FaultRule.make "/registry/register" 410 with Body = removedBody mcpWs }
        use mcp = RawProcess.Start(agentEnv platform mcpWs)
        let! code = mcp.WaitExit 20.0
        Assert.Equal(code, stopped.ExitCode)
        Assert.Equal(3, stopped.ExitCode)
        let said (id: string) (lines: string list) = lines |> List.exists (fun l -> l.Contains $"Workspace {id} was deleted on the platform at 2026-12-07T10:00:00Z")
        Assert.True(said ws.Id log.Lines, String.Join("\n", log.Lines))
        Assert.True(said mcpWs.Id mcp.StderrLines, mcp.Describe())
        assertNoSecrets [ ws.Token ] "the log" log.Lines
    }

[<Fact>]
let ``a workspace removed while the agent runs: the agent says so once and goes on, as molecule-mcp does; waiting messages are still handled`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "removed-while-running"
        let log = new CapturedLog()
        let! agent = MoleculeAgent.ConnectAsync(options platform ws (tempDir "lib"), log)
        do! sendCanvas platform ws.Id [ "before the removal" ]
        let! waiting = agent.WaitForMessageAsync(TimeSpan.FromSeconds 15.0)
        Assert.NotNull waiting
        // the heartbeats are answered 410 from now on, and the workspace is gone
        platform.Fault { FaultRule.make "/registry/heartbeat" 410 with Body = removedBody ws }
        let! deleted = platform.DeleteWorkspace ws.Id
        Assert.Equal(200, deleted.Code)
        let removal = $"Workspace {ws.Id} was deleted on the platform"
        do! waitUntil (secs 15.0) "the removal logged" (fun () -> String.Join("\n", log.Lines)) (fun () -> log.Lines |> List.exists (fun l -> l.Contains removal))
        do! Task.Delay 1500 // several more heartbeats: still said once
        Assert.Equal(1, log.Lines |> List.filter (fun l -> l.Contains removal) |> List.length)
        Assert.False(agent.Completion.IsCompleted, "the agent stopped")
        // a tool that asks the platform says the workspace is gone; the inbox, local, still serves
        let! info = Assert.ThrowsAsync<MoleculeToolException>(fun () -> agent.GetWorkspaceInfoAsync() :> Task)
        Assert.Contains("was deleted on the platform", info.Message)
        let! handled = readUntil agent 1 (fun _ -> Task.CompletedTask)
        Assert.Equal<string list>([ "before the removal" ], texts handled)
        let! left = agent.PeekMessagesAsync()
        Assert.Empty left
        do! agent.DisposeAsync()
        Assert.True(agent.Completion.IsCompletedSuccessfully)
    }

[<Fact>]
let ``a 410 on the inbox cursor with 100 unread messages: all delivered once, in order, none handled twice`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "cursor-410"
        let dir = tempDir "lib"
        let! agent = MoleculeAgent.ConnectAsync(options platform ws dir)
        do! sendCanvas platform ws.Id [ "first"; "second" ]
        let! early = readUntil agent 2 (fun _ -> Task.CompletedTask)
        Assert.Equal<string list>([ "first"; "second" ], texts early)
        // the cursor's row is gone on the platform: the next fetches get 410 while 100 messages arrive
        platform.Fault { FaultRule.make $"/workspaces/{ws.Id}/activity" 410 with Method = Some "GET"; Times = Some 2; Body = """{"error":"since_id not found"}""" }
        let sent = [ for i in 1..100 -> $"after the 410 #{i:D3}" ]
        do! sendCanvas platform ws.Id sent
        let! rest = readWithin (TimeSpan.FromSeconds 60.0) agent sent.Length (fun _ -> Task.CompletedTask)
        Assert.Equal<string list>(sent, texts rest)
        let! more = agent.WaitForMessageAsync(TimeSpan.FromSeconds 2.0)
        Assert.Null more
        Assert.True(platform.Requests $"/workspaces/{ws.Id}/activity" > 2)
        do! agent.DisposeAsync()
        Assert.Equal(102, (handledIn (ledgerOf dir ws)).Count)
    }

[<Fact>]
let ``two workspaces in one agent: each one's messages arrive once, and every reply leaves from the workspace it is for`` () =
    task {
        use! platform = Platform.StartAsync()
        let! a = platform.CreateWorkspace "alpha"
        let! b = platform.CreateWorkspace "beta"
        let! peerA = platform.CreateWorkspace("alpha's helper", parent = a)
        let! peerB = platform.CreateWorkspace("beta's helper", parent = b)
        do! platform.RegisterPoll peerA
        do! platform.RegisterPoll peerB
        let dir = tempDir "lib"
        let twoWorkspaces () =
            let o = MoleculeOptions(PlatformUrl = platform.Url, StateDirectory = dir)
            o.Workspaces <- $"[{{\"id\":\"{a.Id}\",\"token\":\"{a.Token}\"}},{{\"id\":\"{b.Id}\",\"token\":\"{b.Token}\"}}]"
            o["MOLECULE_MCP_POLL_INTERVAL_SECS"] <- "0.3"
            o
        let! agent = MoleculeAgent.ConnectAsync(twoWorkspaces ())
        do! sendCanvas platform a.Id [ "canvas to alpha" ]
        do! sendCanvas platform b.Id [ "canvas to beta" ]
        let! _ = platform.PeerMessage(peerA, a.Id, "helper to alpha")
        let! _ = platform.PeerMessage(peerB, b.Id, "helper to beta")
        let! got = readUntil agent 4 (fun m -> m.ReplyAsync($"Done: {m.Text}"))
        Assert.Equal<(string * string) list>(
            [ "canvas to alpha", a.Id; "canvas to beta", b.Id; "helper to alpha", a.Id; "helper to beta", b.Id ],
            got |> List.map (fun m -> m.Text, m.WorkspaceId) |> List.sort)
        Assert.Equal(4, got |> List.distinctBy (fun m -> m.Id) |> List.length)
        // the user's replies are in the chat of the workspace written to, and only there
        let! ofA = activityText platform a.Id
        let! ofB = activityText platform b.Id
        Assert.Contains("Agent message: Done: canvas to alpha", ofA)
        Assert.Contains("Agent message: Done: canvas to beta", ofB)
        Assert.DoesNotContain("canvas to beta", ofA)
        Assert.DoesNotContain("canvas to alpha", ofB)
        // each helper's answer came from the workspace it wrote to
        let replyTo (peer: Workspace) (text: string) =
            task {
                let! rows = platform.Activity peer.Id
                return rows |> List.filter (fun r -> r.ToJsonString().Contains text) |> List.map (fun r -> strOf r "source_id") |> List.distinct
            }
        let! fromA = replyTo peerA "Done: helper to alpha"
        let! fromB = replyTo peerB "Done: helper to beta"
        Assert.Equal<string list>([ a.Id ], fromA)
        Assert.Equal<string list>([ b.Id ], fromB)
        do! agent.DisposeAsync()
        // a restart of the agent on the same state brings none of them back
        let! again = MoleculeAgent.ConnectAsync(twoWorkspaces ())
        let! none = again.WaitForMessageAsync(TimeSpan.FromSeconds 2.0)
        Assert.Null none
        do! again.DisposeAsync()
    }
