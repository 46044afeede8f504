/// The library agent (MoleculeAgent) in this process against the real local platform on 127.0.0.1: the 30-line
/// loop's promises — oldest first, handled when the iteration completes, again after a failure or a restart, never
/// twice once handled — replies to the user and to a peer, several workspaces, the options judged by the core, the
/// typed team methods, logging without the token, cancellation and shutdown.
module Molecule.Tests.Agents.AgentTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Xunit
open Molecule.Platform
open Molecule.Agents
open Molecule.Tests.Host.Harness

/// Every line the agent logs (as an ILoggerFactory would get them).
type CapturedLog() =
    let lines = ConcurrentQueue<string>()
    member _.Lines = List.ofSeq lines
    interface ILoggerFactory with
        member _.CreateLogger(category: string) =
            { new ILogger with
                member _.BeginScope<'TState>(_: 'TState) : IDisposable = null
                member _.IsEnabled(_: LogLevel) = true
                member _.Log<'TState>(level: LogLevel, _: EventId, state: 'TState, ex: exn, formatter: Func<'TState, exn, string>) =
                    lines.Enqueue $"{category} {level}: {formatter.Invoke(state, ex)}" }
        member _.AddProvider _ = ()
        member _.Dispose() = ()

/// Options for one workspace of the local platform: its own state directory, fast loops.
let options (platform: Platform) (ws: Workspace) (stateDir: string) =
    let o = MoleculeOptions(WorkspaceId = ws.Id, PlatformUrl = platform.Url, Token = ws.Token, StateDirectory = stateDir)
    o["MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS"] <- "0.3"
    o["MOLECULE_MCP_POLL_INTERVAL_SECS"] <- "0.3"
    o

/// Reads messages with `handle` until `count` iterations completed (or `within` is up).
let readWithin (within: TimeSpan) (agent: MoleculeAgent) (count: int) (handle: MoleculeMessage -> Task) : Task<MoleculeMessage list> =
    task {
        use cts = new CancellationTokenSource(within)
        let seen = List<MoleculeMessage>()
        try
            use messages = agent.ReadMessagesAsync(cts.Token).GetAsyncEnumerator(cts.Token)
            let mutable go = true
            while go do
                let! more = messages.MoveNextAsync()
                if not more then go <- false
                else
                    do! handle messages.Current
                    seen.Add messages.Current
                    // the next MoveNextAsync marks this one handled, then stops on the cancelled token
                    if seen.Count >= count then cts.Cancel()
        with :? OperationCanceledException when seen.Count >= count -> ()
        if seen.Count < count then failwith $"only {seen.Count} of {count} messages within {within}"
        return List.ofSeq seen
    }

/// Reads messages with `handle` until `count` iterations completed (or 30 s are up).
let readUntil (agent: MoleculeAgent) (count: int) (handle: MoleculeMessage -> Task) = readWithin (TimeSpan.FromSeconds 30.0) agent count handle

let texts (ms: MoleculeMessage list) = ms |> List.map (fun m -> m.Text)

/// The activity rows of a workspace, as text.
let activityText (platform: Platform) (id: string) =
    task {
        let! rows = platform.Activity id
        return String.Join("\n", rows |> List.map (fun r -> r.ToJsonString()))
    }

/// Sends canvas messages one after another (each committed before the next: oldest first is well defined).
let sendCanvas (platform: Platform) (id: string) (msgs: string list) =
    task {
        for m in msgs do
            let! _ = platform.CanvasMessage(id, m)
            do! Task.Delay 5
    }

[<Fact>]
let ``a library agent gets each message once, oldest first, and answers the user in the chat and a peer directly`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "library-agent"
        let! peer = platform.CreateWorkspace "peer"
        do! platform.RegisterPoll peer
        let log = new CapturedLog()
        let! agent = MoleculeAgent.ConnectAsync(options platform ws (tempDir "lib"), log)
        do! sendCanvas platform ws.Id [ "one" ]
        let! _ = platform.PeerMessage(peer, ws.Id, "two")
        do! sendCanvas platform ws.Id [ "three" ]
        let! got = readUntil agent 3 (fun m -> m.ReplyAsync($"Done: {m.Text}"))
        Assert.Equal<string list>([ "one"; "two"; "three" ], texts got)
        Assert.Equal<MessageKind list>([ MessageKind.CanvasUser; MessageKind.PeerAgent; MessageKind.CanvasUser ], got |> List.map (fun m -> m.Kind))
        Assert.Equal(peer.Id, got[1].PeerId)
        Assert.True(got |> List.forall (fun m -> m.WorkspaceId = ws.Id && m.CreatedAt.HasValue))
        // the user's replies are in the chat, the peer's reached the peer
        let! own = activityText platform ws.Id
        Assert.Contains("Agent message: Done: one", own)
        Assert.Contains("Agent message: Done: three", own)
        let! theirs = activityText platform peer.Id
        Assert.Contains("Done: two", theirs)
        // handled: nothing waits any more, in this agent or the next
        let! left = agent.PeekMessagesAsync()
        Assert.Empty left
        do! agent.DisposeAsync()
        Assert.True(agent.Completion.IsCompletedSuccessfully)
        assertNoSecrets [ ws.Token ] "the log" log.Lines
    }

[<Fact>]
let ``a message whose handler throws, or whose process stops mid-handler, comes again; none is handled twice`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "retrying"
        let dir = tempDir "lib"
        do! sendCanvas platform ws.Id [ "m1"; "m2"; "m3"; "m4"; "m5" ]
        let handled = List<string>()
        let into = List<string>()
        let! first = MoleculeAgent.ConnectAsync(options platform ws dir)
        // m1, m2 handled; the handler throws on m3
        let! failed =
            Assert.ThrowsAsync<InvalidOperationException>(fun () ->
                readUntil first 5 (fun m ->
                    into.Add m.Text
                    if m.Text = "m3" then raise (InvalidOperationException "handler failed")
                    handled.Add m.Text
                    Task.CompletedTask) :> Task)
        Assert.Equal("handler failed", failed.Message)
        // read again: m3 first; then the agent is stopped while m4's handler runs
        let! stopped =
            Assert.ThrowsAsync<ObjectDisposedException>(fun () ->
                readUntil first 5 (fun m ->
                    task {
                        into.Add m.Text
                        if m.Text = "m4" then do! first.DisposeAsync()
                        else handled.Add m.Text
                    }) :> Task)
        Assert.NotNull stopped
        // a new agent on the same state directory: m4 again, then m5
        let! second = MoleculeAgent.ConnectAsync(options platform ws dir)
        let! rest = readUntil second 2 (fun m -> into.Add m.Text; handled.Add m.Text; Task.CompletedTask)
        Assert.Equal<string list>([ "m4"; "m5" ], texts rest)
        Assert.Equal<string>([ "m1"; "m2"; "m3"; "m4"; "m5" ], handled)
        Assert.Equal<string>([ "m1"; "m2"; "m3"; "m3"; "m4"; "m4"; "m5" ], into)
        let! left = second.PeekMessagesAsync()
        Assert.Empty left
        do! second.DisposeAsync()
        // and a third start finds the ledger consistent: nothing left, nothing back
        let! third = MoleculeAgent.ConnectAsync(options platform ws dir)
        let! none = third.WaitForMessageAsync(TimeSpan.FromSeconds 1.5)
        Assert.Null none
        do! third.DisposeAsync()
    }

[<Fact>]
let ``one agent serves two workspaces: messages of both, each answered from the workspace it arrived in`` () =
    task {
        use! platform = Platform.StartAsync()
        let! a = platform.CreateWorkspace "alpha"
        let! b = platform.CreateWorkspace "beta"
        let o = MoleculeOptions(PlatformUrl = platform.Url, StateDirectory = tempDir "lib")
        o.Workspaces <- $"[{{\"id\":\"{a.Id}\",\"token\":\"{a.Token}\"}},{{\"id\":\"{b.Id}\",\"token\":\"{b.Token}\"}}]"
        o["MOLECULE_MCP_POLL_INTERVAL_SECS"] <- "0.3"
        let! agent = MoleculeAgent.ConnectAsync o
        Assert.Equal<string>([ a.Id; b.Id ], agent.WorkspaceIds)
        do! sendCanvas platform a.Id [ "for alpha" ]
        do! sendCanvas platform b.Id [ "for beta" ]
        let! got = readUntil agent 2 (fun m -> m.ReplyAsync($"Done: {m.Text}"))
        // the two workspaces' logs are read by two intakes: their order against each other is not one log's order
        Assert.Equal<(string * string) list>([ "for alpha", a.Id; "for beta", b.Id ], got |> List.map (fun m -> m.Text, m.WorkspaceId) |> List.sort)
        let! ofA = activityText platform a.Id
        let! ofB = activityText platform b.Id
        Assert.Contains("Done: for alpha", ofA)
        Assert.DoesNotContain("Done: for beta", ofA)
        Assert.Contains("Done: for beta", ofB)
        do! agent.DisposeAsync()
    }

[<Fact>]
let ``the options are judged by the core: every problem at once, in molecule-mcp's words`` () =
    task {
        let o = MoleculeOptions(WorkspaceId = "not-a-uuid", PlatformUrl = "ftp://example.com", StateDirectory = tempDir "lib")
        let! e = Assert.ThrowsAsync<MoleculeOptionsException>(fun () -> MoleculeAgent.ConnectAsync o :> Task)
        Assert.Equal<string * bool>(
            [ "WORKSPACE_ID", true; "PLATFORM_URL", true; "MOLECULE_WORKSPACE_TOKEN", false ],
            e.Problems |> Seq.map (fun p -> p.Setting, not (isNull p.Reason)) |> List.ofSeq)
        let env = Map.ofSeq (o.Variables |> Seq.map (fun kv -> kv.Key, kv.Value))
        match Molecule.Core.Connections.parse env (o.StateDirectory) None None with
        | Ok _ -> failwith "the core accepted it"
        | Result.Error errors -> Assert.Equal(Molecule.Core.Connections.helpText errors, e.Message)
        Assert.Equal<MoleculeOptionsProblem>(e.Problems, o.Validate())
        Assert.Contains("Currently missing: MOLECULE_WORKSPACE_TOKEN", e.Message)
        Assert.DoesNotContain("example.com", e.Message)
    }

/// A configuration section from key/value pairs (what configuration.GetSection("Molecule") hands over).
type private Section(path: string, values: (string * string) list) =
    let key = path.Substring(path.LastIndexOf ':' + 1)
    interface Microsoft.Extensions.Configuration.IConfigurationSection with
        member _.Key = key
        member _.Path = path
        member _.Value with get () = null and set _ = ()
        member _.Item with get k = (values |> List.tryFind (fun (n, _) -> n = k) |> Option.map snd |> Option.toObj) and set _ _ = ()
        member this.GetSection k = Section(path + ":" + k, []) :> _
        member _.GetChildren() = values |> Seq.map (fun (k, v) -> Leaf(path + ":" + k, v) :> Microsoft.Extensions.Configuration.IConfigurationSection)
        member _.GetReloadToken() = null
and private Leaf(path: string, value: string) =
    interface Microsoft.Extensions.Configuration.IConfigurationSection with
        member _.Key = path.Substring(path.LastIndexOf ':' + 1)
        member _.Path = path
        member _.Value with get () = value and set _ = ()
        member _.Item with get _ = null and set _ _ = ()
        member _.GetSection k = Leaf(path + ":" + k, null) :> _
        member _.GetChildren() = Seq.empty
        member _.GetReloadToken() = null

[<Fact>]
let ``options bind from configuration by property or variable name, and from variables`` () =
    let section =
        Section("Molecule", [ "WorkspaceId", "w"; "PlatformUrl", "http://p"; "token", "t"; "StateDirectory", "/s"; "MOLECULE_MCP_POLL_INTERVAL_SECS", "1"; "Verbose", "1" ])
    let o = MoleculeOptions.FromConfiguration section
    Assert.Equal<KeyValuePair<string, string>>(
        [ "CONFIGS_DIR", "/s"; "MOLECULE_MCP_POLL_INTERVAL_SECS", "1"; "MOLECULE_MCP_VERBOSE", "1"; "MOLECULE_WORKSPACE_TOKEN", "t"; "PLATFORM_URL", "http://p"; "WORKSPACE_ID", "w" ]
        |> List.map KeyValuePair,
        o.Variables |> Seq.sortBy (fun kv -> kv.Key) |> List.ofSeq)
    Assert.Equal("w", o.WorkspaceId)
    Assert.DoesNotContain("=t", o.ToString())
    let v = MoleculeOptions.FromVariables(dict [ "WORKSPACE_ID", "x"; "PATH", "/bin" ])
    Assert.Equal("x", v.WorkspaceId)
    Assert.Equal("/bin", v["PATH"])

[<Fact>]
let ``the team tools as typed methods: peers, memories, delegation in the background, the user's chat, info`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace("typed", role = "lead")
        let! child = platform.CreateWorkspace("helper", role = "writer", parent = ws, skills = [ "drafts" ])
        do! platform.RegisterPoll child
        let! agent = MoleculeAgent.ConnectAsync(options platform ws (tempDir "lib"))
        let! peers = agent.ListPeersAsync()
        let peer = Assert.Single peers
        Assert.Equal(child.Id, peer.Id)
        Assert.Equal("helper", peer.Name)
        Assert.Equal("writer", peer.Role)
        let! kept = agent.CommitMemoryAsync("the build is green", MemoryScope.Local)
        Assert.NotEmpty kept.Id
        Assert.Equal("LOCAL", kept.Scope)
        let! found = agent.RecallMemoriesAsync("green")
        Assert.Contains(found, fun m -> m.Content = "the build is green" && m.Scope = "LOCAL")
        let! ticket = agent.DelegateInBackgroundAsync(child.Id, "draft the notes")
        Assert.NotEmpty ticket.DelegationId
        let! status = agent.GetDelegationAsync ticket.DelegationId
        Assert.Equal(ticket.DelegationId, status.DelegationId)
        Assert.NotEqual<string>("not_found", status.Status)
        let file = Path.Combine(tempDir "attach", "notes.txt")
        File.WriteAllText(file, "notes")
        do! agent.SendToUserAsync("here are the notes", [ file ])
        let! own = activityText platform ws.Id
        Assert.Contains("Agent message: here are the notes", own)
        let! info = agent.GetWorkspaceInfoAsync()
        Assert.Equal(ws.Id, info.Id)
        Assert.Equal("typed", info.Name)
        let! identity = agent.GetRuntimeIdentityAsync()
        Assert.Equal(ws.Id, identity.WorkspaceId)
        let! history = agent.GetChatHistoryAsync(child.Id)
        Assert.NotNull history
        // a failure is the tool's own answer, as an exception
        let! refused = Assert.ThrowsAsync<MoleculeToolException>(fun () -> agent.DelegateAsync(ws.Id, "to myself") :> Task)
        Assert.Equal("delegate_task", refused.ToolName)
        Assert.StartsWith("Error: cannot delegate_task to your own workspace", refused.Message)
        // the MCP path answers the same tool without throwing
        let! raw = agent.CallToolAsync("delegate_task", JsonObject(dict [ "workspace_id", JsonValue.Create(ws.Id) :> JsonNode; "task", JsonValue.Create("x") ]))
        Assert.True(raw.IsError)
        Assert.Equal(refused.Message, raw.Text)
        do! agent.DisposeAsync()
    }

[<Fact>]
let ``the token never reaches the logger, even in a platform answer that quotes it`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "masked"
        platform.Fault { FaultRule.make "/registry/register" 500 with Body = $"{{\"error\":\"bad token {ws.Token}\"}}"; Times = Some 1 }
        let log = new CapturedLog()
        let o = options platform ws (tempDir "lib")
        o["MOLECULE_MCP_VERBOSE"] <- "1"
        let! agent = MoleculeAgent.ConnectAsync(o, log)
        do! waitUntil (secs 15.0) "the register failure logged, with the platform's answer" (fun () -> String.Join("\n", log.Lines)) (fun () ->
            log.Lines |> List.exists (fun l -> l.Contains "HTTP 500" && l.Contains "bad token"))
        Assert.All(log.Lines, fun l -> Assert.StartsWith("Molecule.Agents ", l))
        assertNoSecrets [ ws.Token ] "the log" log.Lines
        Assert.DoesNotContain(ws.Token, agent.Redact($"x {ws.Token} y"))
        do! agent.DisposeAsync()
    }

[<Fact>]
let ``a workspace the platform refuses stops the agent: Completion and ReadMessagesAsync end with exit code 3`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "refused"
        let wrong = { ws with Token = String('x', 43) }
        let! agent = MoleculeAgent.ConnectAsync(options platform wrong (tempDir "lib"))
        let! stopped = Assert.ThrowsAsync<MoleculeAgentStoppedException>(fun () -> agent.Completion.WaitAsync(TimeSpan.FromSeconds 15.0))
        Assert.Equal(3, stopped.ExitCode)
        let! again = Assert.ThrowsAnyAsync<Exception>(fun () -> readUntil agent 1 (fun _ -> Task.CompletedTask) :> Task)
        Assert.True(again :? MoleculeAgentStoppedException || (again :? ObjectDisposedException), again.ToString())
        do! agent.DisposeAsync()
    }

[<Fact>]
let ``a cancelled call ends at once and the agent goes on; disposing ends a waiting call and the reading`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "cancelled"
        let! agent = MoleculeAgent.ConnectAsync(options platform ws (tempDir "lib"))
        use cts = new CancellationTokenSource(TimeSpan.FromMilliseconds 300.0)
        let started = Diagnostics.Stopwatch.StartNew()
        let! _ = Assert.ThrowsAnyAsync<OperationCanceledException>(fun () -> agent.WaitForMessageAsync(TimeSpan.FromSeconds 60.0, cts.Token) :> Task)
        Assert.True(started.Elapsed < TimeSpan.FromSeconds 10.0, $"cancelling took {started.Elapsed}")
        let! info = agent.GetWorkspaceInfoAsync()
        Assert.Equal(ws.Id, info.Id)
        // a reader waiting on an empty inbox ends when the agent is disposed
        let reading =
            task {
                let e = agent.ReadMessagesAsync().GetAsyncEnumerator()
                let! more = e.MoveNextAsync()
                return more
            }
        let waiting = agent.WaitForMessageAsync(TimeSpan.FromSeconds 60.0)
        do! Task.Delay 300
        do! agent.DisposeAsync()
        let! more = reading.WaitAsync(TimeSpan.FromSeconds 5.0)
        Assert.False(more, "the reading should end when the agent is disposed")
        let! _ = Assert.ThrowsAsync<ObjectDisposedException>(fun () -> waiting.WaitAsync(TimeSpan.FromSeconds 5.0) :> Task)
        ()
    }
