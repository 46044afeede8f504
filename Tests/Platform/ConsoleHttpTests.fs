/// The console's admin API over real HTTP: the workspace overview (last seen, silence, tokens, delivery), edits,
/// connection lines in the create and mint answers, the labelled feed with its filters, the delegations view, and
/// feed entries on the canvas event stream.
module Molecule.Tests.Platform.ConsoleHttpTests

open System
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.DeliveryHttpTests

let private overviewOf (c: Client) (admin: string) (id: string) =
    task {
        let! all = c.Send("GET", "/admin/workspaces", token = admin)
        Assert.Equal(200, all.Code)
        return all.Json.AsArray() |> Seq.find (fun w -> str w "id" = id)
    }

let private num (n: JsonNode) (path: string) = (node n path).GetValue<int>()

[<Theory; ClassData(typeof<EngineCases>)>]
let ``console: /admin/workspaces shows last seen, silence after 45 s, live tokens and delivery (queued, then acknowledged)`` (engine: string) =
    task {
        let mutable now = DateTimeOffset(2026, 5, 1, 10, 0, 0, TimeSpan.Zero)
        use fx = new Own(engine, fun o -> { o with Clock = Some(fun () -> now) })
        let c, admin = fx.C, fx.P.AdminToken
        let! ws = createWs c admin "Researcher" None []
        let! before = overviewOf c admin ws.Id
        Assert.Null(before["last_seen_seconds"])
        Assert.Equal(1, num before "live_tokens")
        let! _ = c.Send("POST", "/registry/register", registerBody ws.Id, ws.Token)
        let! _ = c.Send("POST", $"/workspaces/{ws.Id}/a2a", messageBody "one", admin)
        let! _ = c.Send("POST", $"/workspaces/{ws.Id}/a2a", messageBody "two", admin)
        let! queued = overviewOf c admin ws.Id
        Assert.Equal(2, num queued "delivery.inbound")
        Assert.Equal(2, num queued "delivery.queued")
        Assert.Null(node queued "delivery.acked_seq")
        Assert.False((node queued "silent").GetValue<bool>())

        let! rows = c.Send("GET", $"/workspaces/{ws.Id}/activity?type=a2a_receive", token = ws.Token)
        let first = rows.Json.AsArray() |> Seq.map (fun r -> (node r "seq").GetValue<int64>()) |> Seq.min
        let! _ = c.Send("POST", $"/workspaces/{ws.Id}/activity/ack", $$"""{"acked_seq":{{first}}}""", ws.Token)
        now <- now.AddSeconds 60.0
        let! later = overviewOf c admin ws.Id
        Assert.Equal(1, num later "delivery.acknowledged")
        Assert.Equal(1, num later "delivery.queued")
        Assert.Equal(60, num later "last_seen_seconds")
        // online, but no heartbeat for 60 s: shown as silent long before the 90 s sweep says awaiting_agent
        Assert.Equal("online", str later "status")
        Assert.True((node later "silent").GetValue<bool>())
        let! noAdmin = c.Send("GET", "/admin/workspaces", token = ws.Token)
        Assert.Equal(401, noAdmin.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``console: PATCH /workspaces/:id edits name, role, skills and description; bad input names the field; removed → 410`` (engine: string) =
    task {
        use fx = new Own(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let events = fx.P.Events.Subscribe()
        let! ws = createWs c admin "Draft" None [ "a" ]
        let! r = c.Send("PATCH", $"/workspaces/{ws.Id}", """{"name":"Editor","role":"reviewer","skills":["docs"," docs ","review"],"description":"reads"}""", admin)
        Assert.Equal(200, r.Code)
        Assert.Equal("Editor", str r.Json "name")
        Assert.Equal("reviewer", str r.Json "role")
        Assert.Equal("review", at r.Json "agent_card.skills.1.name")
        Assert.Equal(2, (node r.Json "agent_card.skills").AsArray().Count)
        Assert.Equal("reads", at r.Json "agent_card.description")
        let! cleared = c.Send("PATCH", $"/workspaces/{ws.Id}", """{"role":"","description":""}""", admin)
        Assert.Null(cleared.Json["role"])
        Assert.Null(node cleared.Json "agent_card.description")

        for (body, field) in [ """{}""", "nothing to change"; """{"name":""}""", "name"; """{"skills":"x"}""", "skills"; """{"role":5}""", "role" ] do
            let! bad = c.Send("PATCH", $"/workspaces/{ws.Id}", body, admin)
            Assert.Equal(400, bad.Code)
            Assert.Contains(field, bad.Error)

        let! noAdmin = c.Send("PATCH", $"/workspaces/{ws.Id}", """{"name":"x"}""", ws.Token)
        Assert.Equal(401, noAdmin.Code)
        let! unknown = c.Send("PATCH", $"/workspaces/{Guid.NewGuid()}", """{"name":"x"}""", admin)
        Assert.Equal(404, unknown.Code)
        let! _ = c.Send("DELETE", $"/workspaces/{ws.Id}", token = admin)
        let! gone = c.Send("PATCH", $"/workspaces/{ws.Id}", """{"name":"x"}""", admin)
        Assert.Equal(410, gone.Code)

        let mutable e = Unchecked.defaultof<PlatformEvent>
        let mutable updated = None

        while events.Reader.TryRead(&e) do
            if e.Type = "WORKSPACE_UPDATED" && updated.IsNone then updated <- Some e

        Assert.Equal("Editor was edited", (node updated.Value.Payload "feed.text").GetValue<string>())
        fx.P.Events.Unsubscribe events
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``console: create and mint answers carry one connection line per client, for the address the canvas was opened at`` (engine: string) =
    task {
        use fx = new Own(engine, fun o -> { o with McpBinary = "/opt/molecule/molecule-mcp" })
        let c, admin = fx.C, fx.P.AdminToken
        let! created = c.Send("POST", "/workspaces", """{"name":"Docs Writer"}""", admin)
        let lines = node created.Json "connection_lines"
        Assert.Equal<string list>([ "claude"; "hermes"; "json" ], [ for l in lines.AsArray() -> str l "key" ])
        let claude = at lines "0.text"
        Assert.StartsWith("claude mcp add docs-writer -s user -- env WORKSPACE_ID=" + str created.Json "id", claude)
        Assert.Contains("PLATFORM_URL=" + fx.P.Url, claude)
        Assert.Contains("MOLECULE_WORKSPACE_TOKEN=" + str created.Json "auth_token", claude)
        Assert.EndsWith("/opt/molecule/molecule-mcp", claude)
        let id = str created.Json "id"

        let! minted = c.Send("POST", $"/workspaces/{id}/tokens", """{"platform_url":"https://team.example.com/"}""", admin)
        Assert.Equal(201, minted.Code)
        let json = JsonNode.Parse(at minted.Json "connection_lines.2.text")
        Assert.Equal("https://team.example.com", at json "mcpServers.docs-writer.env.PLATFORM_URL")
        Assert.Equal(str minted.Json "auth_token", at json "mcpServers.docs-writer.env.MOLECULE_WORKSPACE_TOKEN")
        let connection: Connection.Connection =
            { Name = "Docs Writer"
              WorkspaceId = id
              PlatformUrl = "https://team.example.com"
              Token = str minted.Json "auth_token"
              Binary = "/opt/molecule/molecule-mcp" }
        // the same text the CLI prints
        Assert.Contains(at minted.Json "connection_lines.1.text", Connection.block connection)

        let! noBody = c.Send("POST", $"/workspaces/{id}/tokens", token = admin)
        Assert.Equal(201, noBody.Code)
        Assert.Contains("PLATFORM_URL=" + fx.P.Url, at noBody.Json "connection_lines.0.text")
        let! badUrl = c.Send("POST", $"/workspaces/{id}/tokens", """{"platform_url":"javascript:alert(1)"}""", admin)
        Assert.Equal(400, badUrl.Code)
        Assert.Contains("platform_url", badUrl.Error)
    }

let private team (c: Client) (admin: string) =
    task {
        let! lead = createWs c admin "Lead" None []
        let! res = createWs c admin "Researcher" (Some lead.Id) []
        let! writer = createWs c admin "Writer" (Some lead.Id) []

        for w in [ lead; res; writer ] do
            let! _ = c.Send("POST", "/registry/register", registerBody w.Id, w.Token)
            ()

        return lead, res, writer
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``console: /admin/feed labels events with names, lists a delegation once, attributes messages to the sender, and filters`` (engine: string) =
    task {
        use fx = new Own(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! lead, res, writer = team c admin
        let! _ = c.Send("POST", $"/workspaces/{lead.Id}/delegate", $$"""{"target_id":"{{res.Id}}","task":"find three sources"}""", lead.Token)
        do! fx.P.IdleAsync()
        let! _ = c.Send("POST", $"/workspaces/{res.Id}/a2a", messageBody "sources attached", writer.Token, writer.Id)
        let! _ = c.Send("POST", $"/workspaces/{lead.Id}/memories", """{"content":"g","scope":"GLOBAL"}""", lead.Token)
        let! _ = c.Send("POST", $"/workspaces/{writer.Id}/a2a", messageBody "hello writer", admin)
        let! _ = c.Send("POST", $"/workspaces/{writer.Id}/notify", """{"message":"draft ready"}""", writer.Token)

        let! all = c.Send("GET", "/admin/feed", token = admin)
        Assert.Equal(200, all.Code)
        let entries = all.Json["entries"].AsArray() |> List.ofSeq
        let texts = entries |> List.map (fun e -> str e "text")
        let delegation = entries |> List.filter (fun e -> str e "kind" = "delegation")
        Assert.Equal(1, delegation.Length)
        Assert.Equal("Lead delegated a task to Researcher", str delegation.Head "text")
        Assert.Equal("queued", str delegation.Head "status")
        Assert.Equal("find three sources", str delegation.Head "detail")
        Assert.Contains("Writer → Researcher", texts)
        Assert.Contains("Lead wrote a GLOBAL memory", texts)
        Assert.Contains("user → Writer", texts)
        Assert.Contains("Writer → user", texts)

        for e in entries do
            for w in [ lead; res; writer ] do
                Assert.DoesNotContain(w.Id, str e "text" + str e "detail" + str e "result")

        let message = entries |> List.find (fun e -> str e "text" = "Writer → Researcher")
        Assert.Equal(writer.Id, str message "actor_id")

        let! byWs = c.Send("GET", $"/admin/feed?workspace_id={writer.Id}", token = admin)
        Assert.Equal<string list>([ "Writer → user"; "user → Writer"; "Writer → Researcher" ], [ for e in byWs.Json["entries"].AsArray() -> str e "text" ])
        let! byKind = c.Send("GET", "/admin/feed?kind=memory", token = admin)
        Assert.Equal(1, byKind.Json["entries"].AsArray().Count)
        let! byText = c.Send("GET", "/admin/feed?q=THREE%20sources", token = admin)
        Assert.Equal<string list>([ "Lead delegated a task to Researcher" ], [ for e in byText.Json["entries"].AsArray() -> str e "text" ])
        let! badKind = c.Send("GET", "/admin/feed?kind=gossip", token = admin)
        Assert.Equal(400, badKind.Code)
        let! badWs = c.Send("GET", "/admin/feed?workspace_id=nope", token = admin)
        Assert.Equal(400, badWs.Code)
        let! limited = c.Send("GET", "/admin/feed?limit=2", token = admin)
        Assert.Equal(2, limited.Json["entries"].AsArray().Count)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``console: /admin/delegations shows who asked whom, the status and the result, once per delegation`` (engine: string) =
    task {
        use fx = new Own(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! lead, res, writer = team c admin
        let! _ = c.Send("POST", $"/workspaces/{lead.Id}/delegate", $$"""{"target_id":"{{res.Id}}","task":"find three sources"}""", lead.Token)
        let! _ = c.Send("POST", $"/workspaces/{lead.Id}/delegate", $$"""{"target_id":"{{writer.Id}}","task":"write the intro"}""", lead.Token)
        do! fx.P.IdleAsync()
        // an agent's synchronous delegate_task, as molecule-mcp reports it
        let report (body: string) = c.Send("POST", $"/workspaces/{writer.Id}/activity", body, writer.Token)
        let! _ = report $$$"""{"activity_type":"a2a_send","source_id":"{{{writer.Id}}}","target_id":"{{{res.Id}}}","method":"message/send","summary":"Delegating to Researcher","request_body":{"task":"check a quote"}}"""
        let! _ = report $$$"""{"activity_type":"a2a_receive","source_id":"{{{writer.Id}}}","target_id":"{{{res.Id}}}","method":"message/send","summary":"Researcher responded (5 chars)","response_body":{"result":"it is"}}"""

        let! all = c.Send("GET", "/admin/delegations", token = admin)
        let views = all.Json["delegations"].AsArray() |> List.ofSeq
        Assert.Equal(3, views.Length)
        let sync = views |> List.find (fun v -> str v "mode" = "sync")
        Assert.Equal(("Writer", "Researcher", "completed", "it is", "check a quote"), (str sync "source_name", str sync "target_name", str sync "status", str sync "result_preview", str sync "task_preview"))
        let intro = views |> List.find (fun v -> str v "task_preview" = "write the intro")
        Assert.Equal(("Lead", "Writer", "queued"), (str intro "source_name", str intro "target_name", str intro "status"))
        let! forWriter = c.Send("GET", $"/admin/delegations?workspace_id={writer.Id}", token = admin)
        Assert.Equal(2, forWriter.Json["delegations"].AsArray().Count)
        let! noAdmin = c.Send("GET", "/admin/delegations", token = lead.Token)
        Assert.Equal(401, noAdmin.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``console: canvas events carry their feed entry (names, one key per delegation)`` (engine: string) =
    task {
        use fx = new Own(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! lead, res, _ = team c admin
        let events = fx.P.Events.Subscribe()
        let! d = c.Send("POST", $"/workspaces/{lead.Id}/delegate", $$"""{"target_id":"{{res.Id}}","task":"t"}""", lead.Token)
        do! fx.P.IdleAsync()
        do! Task.Delay 100
        let mutable e = Unchecked.defaultof<PlatformEvent>
        let feeds = ResizeArray<JsonNode>()

        while events.Reader.TryRead(&e) do
            match e.Payload["feed"] with
            | null -> ()
            | f -> feeds.Add f

        fx.P.Events.Unsubscribe events
        let delegationId = str d.Json "delegation_id"
        let keys = feeds |> Seq.filter (fun f -> str f "kind" = "delegation") |> Seq.map (fun f -> str f "key") |> Seq.distinct |> List.ofSeq
        Assert.Equal<string list>([ delegationId ], keys)
        Assert.True(feeds |> Seq.exists (fun f -> str f "status" = "queued"))
        Assert.True(feeds |> Seq.forall (fun f -> not ((str f "text").Contains lead.Id)))
    }
