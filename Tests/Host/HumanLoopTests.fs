/// The human in the loop on the real binaries: molecule-mcp against the local platform's requests inbox, the user
/// acting through the console's routes (/admin/inbox) — an agent's approval decided and delivered back as a channel
/// event; Claude Code's permission prompt (sent by a raw stdio client) relayed, denied and answered with its
/// request_id, an expired one never answered; two agents ping-ponging paused by the loop guard and resumed by the user.
module Molecule.Tests.Host.HumanLoopTests

open System
open System.Text.Json.Nodes
open Xunit
open Molecule.Tests.Host.Harness

/// The team's requests as the console reads them.
let private inbox (platform: Platform) : Threading.Tasks.Task<JsonObject list> =
    task {
        let! a = platform.Send("GET", "/admin/inbox", token = platform.AdminToken)
        Assert.True((a.Code = 200), $"GET /admin/inbox: HTTP {a.Code} {a.Body}")
        return a.Json.["requests"].AsArray() |> Seq.map (fun n -> n.AsObject()) |> List.ofSeq
    }

/// The one request of `source` the console lists, once there is one.
let private awaitRequest (platform: Platform) (source: string) (describe: unit -> string) : Threading.Tasks.Task<JsonObject> =
    task {
        let mutable found: JsonObject option = None
        do!
            waitUntil (secs 15.0) $"a {source} request in the console" describe (fun () ->
                let all = (inbox platform).Result
                found <- all |> List.tryFind (fun r -> strOf r "source" = source)
                found.IsSome)
        return found.Value
    }

/// The user answers a request from the console.
let private userResponds (platform: Platform) (rid: string) (action: string) =
    platform.Send("POST", $"/admin/inbox/{rid}/respond", $"{{\"action\":\"{action}\"}}", platform.AdminToken)

let private permissionAnswers (p: RawProcess) =
    p.Messages |> List.filter (fun m -> strOf m "method" = "notifications/claude/channel/permission") |> List.map (fun m -> m["params"])

let private prompt (id: string) =
    parseJson $"{{\"request_id\":\"{id}\",\"tool_name\":\"Bash\",\"description\":\"run the test suite\",\"input_preview\":\"{{\\\"command\\\":\\\"make test\\\"}}\"}}"

[<Fact>]
let ``an agent's approval decided in the console comes back to it as a request_update channel event`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "asker"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let! created = agent.CallOk("create_request", [ "kind", box "approval"; "title", box "Deploy v2 to production?"; "detail", box "all checks green" ])
        let rid = strOf (parseJson created) "request_id"
        Assert.False(String.IsNullOrEmpty rid, created)
        let! listed = agent.CallOk("list_requests", [ "status", box "pending" ])
        Assert.Contains(rid, listed)
        let! answer = userResponds platform rid "approved"
        Assert.True((answer.Code = 200), answer.Body)
        let! ev = agent.WaitNotification(fun n -> strOf n.["meta"] "kind" = "request_update" && strOf n.["meta"] "request_id" = rid)
        let content = strOf ev "content"
        Assert.StartsWith("[request \"Deploy v2 to production?\" \u00b7 approved by the user", content)
        Assert.Equal("approved", strOf ev.["meta"] "request_status")
        Assert.Contains("inbox_pop", content)
        let! thread = agent.CallOk("get_request", [ "request_id", box rid ])
        Assert.Contains("approved", thread)
        agent.AssertNoTokenLeak [ platform.AdminToken ]
    }

[<Fact>]
let ``a permission prompt from the client becomes an approval; denied in the console, the client gets behavior deny with its request_id; an expired one is never answered`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "relay"
        use p = RawProcess.Start(agentEnv platform ws @ [ "MOLECULE_MCP_PERMISSION_TIMEOUT_SECS", "10" ])
        let! init = p.Initialize()
        Assert.NotNull(init.["result"].["capabilities"].["experimental"].["claude/channel/permission"])
        Assert.Contains("PERMISSION PROMPTS", strOf init.["result"] "instructions")

        p.Notify("notifications/claude/channel/permission_request", prompt "abcde")
        let! request = awaitRequest platform "permission_relay" p.Describe
        Assert.Contains("Bash", strOf request "title")
        Assert.False(String.IsNullOrEmpty(strOf request "expires_at"), request.ToJsonString())
        let! denied = userResponds platform (strOf request "id") "rejected"
        Assert.True((denied.Code = 200), denied.Body)
        do! waitUntil (secs 15.0) "the permission answer" p.Describe (fun () -> not (permissionAnswers p).IsEmpty)
        let answer = (permissionAnswers p).Head
        Assert.Equal("abcde", strOf answer "request_id")
        Assert.Equal("deny", strOf answer "behavior")

        // a prompt left unanswered past its timeout: the console cannot answer it any more, and nothing is sent
        p.Notify("notifications/claude/channel/permission_request", prompt "fghij")
        do! waitUntil (secs 15.0) "the second prompt's approval" p.Describe (fun () ->
            (inbox platform).Result |> List.filter (fun r -> strOf r "source" = "permission_relay") |> List.length = 2)
        let! all = inbox platform
        let late = all |> List.find (fun r -> strOf r "source" = "permission_relay" && strOf r "id" <> strOf request "id")
        do! Threading.Tasks.Task.Delay(TimeSpan.FromSeconds 11.0)
        let! refused = userResponds platform (strOf late "id") "approved"
        Assert.Equal(409, refused.Code)
        do! Threading.Tasks.Task.Delay(TimeSpan.FromSeconds 2.0)
        Assert.Equal(1, (permissionAnswers p).Length)
        assertNoSecrets [ ws.Token; platform.AdminToken ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
    }

[<Fact>]
let ``the permission relay switched off declares nothing and relays nothing`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "no-relay"
        use p = RawProcess.Start(agentEnv platform ws @ [ "MOLECULE_MCP_PERMISSION_RELAY", "0" ])
        let! init = p.Initialize()
        Assert.Null(init.["result"].["capabilities"].["experimental"].["claude/channel/permission"])
        Assert.NotNull(init.["result"].["capabilities"].["experimental"].["claude/channel"])
        p.Notify("notifications/claude/channel/permission_request", prompt "abcde")
        do! Threading.Tasks.Task.Delay(TimeSpan.FromSeconds 2.0)
        let! all = inbox platform
        Assert.Empty(all)
        let! _ = p.Request("ping", JsonObject())
        ()
    }

[<Fact>]
let ``two agents ping-ponging through the platform are paused by the loop guard and resumed from the console`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "lead"
        let! a = platform.CreateWorkspace("ping", parent = lead)
        let! b = platform.CreateWorkspace("pong", parent = lead)
        let guard = [ "MOLECULE_MCP_LOOP_MAX_REPEATS", "3" ]
        use! alice = AgentProcess.StartAsync(agentEnv platform a @ guard)
        use! bob = AgentProcess.StartAsync(agentEnv platform b @ guard)
        // each answers the other with the same stale result, as the reference's incident did
        for i in 1..6 do
            let! _ = bob.CallOk("delegate_task", [ "workspace_id", box a.Id; "task", box $"Result posted at 10:{i:D2}:00: the build is green" ])
            let! _ = alice.CallOk("delegate_task", [ "workspace_id", box b.Id; "task", box $"Noted at 10:{i:D2}:30, the build is green" ])
            ()
        let pushed (agent: AgentProcess) = agent.Notifications |> List.filter (fun n -> strOf n.["meta"] "kind" = "peer_agent")
        let guardLines (agent: AgentProcess) = agent.Notifications |> List.filter (fun n -> strOf n.["meta"] "kind" = "loop_guard")
        do! waitUntil (secs 20.0) "both agents paused" alice.Describe (fun () -> guardLines alice <> [] && guardLines bob <> [])
        Assert.Equal(3, (pushed alice).Length)
        Assert.Equal(3, (pushed bob).Length)
        // nothing lost: all six wait in alice's inbox
        let! peek = alice.CallOk("inbox_peek", [ "limit", box 50 ])
        Assert.Equal(6, (parseJson peek).AsArray().Count)
        do! waitUntil (secs 15.0) "two loop_guard requests" alice.Describe (fun () ->
            (inbox platform).Result |> List.filter (fun r -> strOf r "source" = "loop_guard") |> List.length = 2)
        let! all = inbox platform
        let alicePause = all |> List.find (fun r -> strOf r "source" = "loop_guard" && strOf r "requester_id" = a.Id)
        Assert.Contains(b.Id, strOf alicePause "title")
        let! resumed = userResponds platform (strOf alicePause "id") "approved"
        Assert.True((resumed.Code = 200), resumed.Body)
        do! waitUntil (secs 15.0) "alice resumed" alice.Describe (fun () ->
            alice.Notifications |> List.exists (fun n -> (strOf n "content").StartsWith "[loop guard] The user resumed"))
        let! _ = bob.CallOk("delegate_task", [ "workspace_id", box a.Id; "task", box "A different question now" ])
        let! _ = alice.WaitNotification(fun n -> (strOf n "content").Contains "A different question now")
        alice.AssertNoTokenLeak [ platform.AdminToken ]
        bob.AssertNoTokenLeak [ platform.AdminToken ]
    }

/// The channel notifications of a raw process of one `kind` (peer_agent, loop_guard).
let private rawOfKind (p: RawProcess) (kind: string) =
    p.ChannelNotifications |> List.map (fun n -> n["params"]) |> List.filter (fun n -> strOf n.["meta"] "kind" = kind)

let private peeked (p: RawProcess) : Threading.Tasks.Task<JsonNode list> =
    task {
        let! r = p.CallTool("inbox_peek", "{\"limit\":50}")
        return (parseJson (resultText r)).AsArray() |> List.ofSeq
    }

[<Fact>]
let ``a pair paused before molecule-mcp is killed -9 stays paused after the restart: nothing of it pushed, inbox_peek shows it, the user's resume releases it`` () =
    task {
        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "lead"
        let! a = platform.CreateWorkspace("held", parent = lead)
        let! b = platform.CreateWorkspace("looper", parent = lead)
        // the same CONFIGS_DIR for every run of a's process: its ledger survives the kill
        let env = agentEnv platform a @ [ "MOLECULE_MCP_LOOP_MAX_REPEATS", "3"; "MOLECULE_MCP_VERBOSE", "1" ]
        use! bob = AgentProcess.StartAsync(agentEnv platform b)
        let stale (i: int) = bob.CallOk("delegate_task", [ "workspace_id", box a.Id; "task", box $"Result posted at 10:{i:D2}:00: the build is green" ])
        use first = RawProcess.Start env
        let! _ = first.Initialize()
        for i in 1..5 do
            let! _ = stale i
            ()
        do! waitUntil (secs 20.0) "the pair paused" first.Describe (fun () -> rawOfKind first "loop_guard" <> [])
        let! request = awaitRequest platform "loop_guard" first.Describe
        Assert.Contains(b.Id, strOf request "title")
        Assert.Equal(3, (rawOfKind first "peer_agent").Length)
        first.Process.Kill() // SIGKILL
        first.Process.WaitForExit()

        // the restart: the platform still holds the pause open; nothing of the peer is pushed, all of it waits
        use second = RawProcess.Start env
        let! _ = second.Initialize()
        let! _ = stale 6
        do! waitUntil (secs 20.0) "six messages waiting" second.Describe (fun () -> (peeked second).Result.Length = 6)
        do! waitUntil (secs 10.0) "the pause restored" second.Describe (fun () ->
            second.StderrLines |> List.exists (fun l -> l.Contains "stays paused"))
        do! Threading.Tasks.Task.Delay(TimeSpan.FromSeconds 1.5)
        Assert.Empty(rawOfKind second "peer_agent")

        // the user resumes the pair: the agent is told, the peer's next message is pushed
        let! resumed = userResponds platform (strOf request "id") "approved"
        Assert.True((resumed.Code = 200), resumed.Body)
        do! waitUntil (secs 15.0) "the pair resumed" second.Describe (fun () ->
            rawOfKind second "loop_guard" |> List.exists (fun n -> (strOf n "content").StartsWith "[loop guard] The user resumed"))
        let! _ = bob.CallOk("delegate_task", [ "workspace_id", box a.Id; "task", box "A different question now" ])
        do! waitUntil (secs 15.0) "the next message pushed" second.Describe (fun () ->
            rawOfKind second "peer_agent" |> List.exists (fun n -> (strOf n "content").Contains "A different question now"))
        second.Process.Kill()
        second.Process.WaitForExit()

        // released for good: a later start holds nothing back (the backlog of seven is pushed)
        use third = RawProcess.Start env
        let! _ = third.Initialize()
        do! waitUntil (secs 20.0) "the backlog pushed" third.Describe (fun () -> (rawOfKind third "peer_agent").Length = 7)
        assertNoSecrets [ a.Token; b.Token; platform.AdminToken ] "stdout/stderr" [ first.StdoutText; first.Stderr; second.StdoutText; second.Stderr; third.StdoutText; third.Stderr ]
    }
