/// The requests tools of molecule-mcp on the real binary against the local platform with faults injected: the routes
/// absent (404), failing (5xx) or slow — each call says so in one line, and the inbox keeps delivering.
module Molecule.Tests.Host.RequestTests

open System
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

let private createArgs : (string * obj) list = [ "kind", box "approval"; "title", box "Deploy v2?"; "detail", box "all green" ]

[<Fact>]
let ``requests routes absent, failing or slow: the tools say so in one line and the inbox keeps delivering`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "requests-faults"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let requests = $"/workspaces/{ws.Id}/requests"
        let delivered (label: string) =
            task {
                let text = $"{label} {Guid.NewGuid():N}"
                let! _ = platform.CanvasMessage(ws.Id, text)
                let! n = agent.WaitNotification(fun n -> pushedText n = text)
                // handled, so that no unread-messages notice follows the next answers
                let! _ = agent.CallOk("inbox_pop", [ "activity_id", box (n.["meta"].["activity_id"].GetValue<string>()) ])
                return ()
            }

        // absent: a platform older than the requests inbox
        platform.Fault { FaultRule.make requests 404 with Body = "404 page not found" }
        for tool, args in [ "create_request", createArgs; "list_requests", []; "get_request", [ "request_id", box "r-1" ]; "cancel_request", [ "request_id", box "r-1" ] ] do
            let! r = agent.Call(tool, args)
            let text = textOf r
            Assert.True(isError r, $"{tool}: {text}")
            Assert.StartsWith("Error: this platform has no requests inbox (HTTP 404 on ", text)
            Assert.DoesNotContain("\n", text)
        do! delivered "after 404"

        // failing
        platform.ClearFaults()
        platform.Fault { FaultRule.make requests 503 with Body = """{"error":"maintenance"}""" }
        let! failed = agent.Call("create_request", createArgs)
        Assert.True(isError failed, textOf failed)
        Assert.Equal("Error: create_request failed: platform answered HTTP 503: maintenance", textOf failed)
        do! delivered "after 503"

        // slow (then absent): the answer still comes, in one line
        platform.ClearFaults()
        platform.Fault { FaultRule.make requests 404 with DelayMs = 2500; Times = Some 1; Body = "{\"error\":\"not found\"}" }
        let! slow = agent.Call("list_requests", [ "box", box "inbox" ])
        Assert.True(isError slow, textOf slow)
        Assert.StartsWith("Error: this platform has no requests inbox", textOf slow)
        do! delivered "after slow"

        // refused arguments never reach the platform
        let before = platform.Requests requests
        let! bad = agent.Call("create_request", [ "kind", box "wish"; "title", box "x" ])
        Assert.True(isError bad)
        Assert.Equal("Error: kind must be one of task, approval", textOf bad)
        Assert.Equal(before, platform.Requests requests)
        agent.AssertNoTokenLeak [ platform.AdminToken ]
    }

let private metaOf (n: Text.Json.Nodes.JsonNode) (key: string) =
    match n.["meta"].[key] with
    | null -> ""
    | v -> v.GetValue<string>()

[<Fact>]
let ``a nudge from the platform's sweeper reaches the recipient agent as one channel event with the request header and a reply hint`` () =
    task {
        // every open request is due at once; the sweeper itself never runs in this test (NudgeNow does)
        let! running =
            Server.start
                { Server.PlatformOptions.defaults (tempDir "platform") with
                    NudgeAfter = TimeSpan.Zero
                    NudgeInterval = TimeSpan.FromHours 1.0 }

        use! platform = task { return new Platform(running) }
        let! asker = platform.CreateWorkspace "asker"
        let! ws = platform.CreateWorkspace "nudged"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws)
        let body = $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{ws.Id}}","title":"Rotate the keys","detail":"staging first"}"""
        let! created = platform.Send("POST", $"/workspaces/{asker.Id}/requests", body, asker.Token)
        Assert.Equal(201, created.Code)
        let rid = strOf created.Json "request_id"
        let! _ = agent.WaitNotification(fun n -> metaOf n "request_id" = rid && metaOf n "request_event" = "created")
        // the agent is online and idle (molecule-mcp heartbeats no active task): one nudge, then none within the hour
        Assert.Equal(1, running.NudgeNow())
        Assert.Equal(0, running.NudgeNow())
        let! nudge = agent.WaitNotification(fun n -> metaOf n "request_event" = "nudge")
        let content = strOf nudge "content"
        let lines = content.Split('\n')
        Assert.Equal($"[request \"Rotate the keys\" \u00b7 reminder: this task request still waits for your answer \u00b7 status=pending \u00b7 request_id={rid}]", lines[0])
        Assert.StartsWith("Reminder: the task request \"Rotate the keys\" from asker has waited ", lines[1])
        Assert.StartsWith($"\u21a9 Reply: respond_to_request({{request_id: \"{rid}\", action: \"done\" or \"rejected\"}})", Array.last lines)
        Assert.Equal(("request_update", rid, "pending", "task", ""), (metaOf nudge "kind", metaOf nudge "request_id", metaOf nudge "request_status", metaOf nudge "request_kind", metaOf nudge "peer_id"))
        // once: a message sent after it arrives, and the nudge has not come again
        let marker = $"after the nudge {Guid.NewGuid():N}"
        let! _ = platform.CanvasMessage(ws.Id, marker)
        let! _ = agent.WaitNotification(fun n -> pushedText n = marker)
        Assert.Equal(1, agent.Notifications |> List.filter (fun n -> metaOf n "request_event" = "nudge") |> List.length)
        agent.AssertNoTokenLeak [ platform.AdminToken ]
    }
