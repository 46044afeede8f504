module Molecule.Tests.Platform.HttpTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Logging
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
module Json = Molecule.Protocol.Json

type Answer =
    { Code: int
      Text: string }

    member a.Json: JsonNode =
        match Json.tryParse a.Text with
        | Some n -> n
        | None -> failwith $"not JSON (HTTP {a.Code}): {a.Text}"

    member a.Error = a.Json.["error"].GetValue<string>()

/// Node at a dotted path ("a.b.0.c"; numbers index arrays).
let node (n: JsonNode) (path: string) : JsonNode =
    path.Split('.')
    |> Array.fold
        (fun (cur: JsonNode) (k: string) ->
            match cur with
            | null -> null
            | :? JsonArray as a -> (match Int32.TryParse k with | true, i when i < a.Count -> a.[i] | _ -> null)
            | :? JsonObject as o ->
                let mutable v: JsonNode = null
                if o.TryGetPropertyValue(k, &v) then v else null
            | _ -> null)
        n

let at (n: JsonNode) (path: string) : string =
    match node n path with
    | null -> failwith ("missing " + path)
    | v -> v.GetValue<string>()

let str (n: JsonNode) (name: string) =
    match n[name] with
    | null -> null
    | v -> v.GetValue<string>()

/// A small client for the platform.
type Client(baseUrl: string) =
    let http = new HttpClient(BaseAddress = Uri baseUrl, Timeout = TimeSpan.FromSeconds 20.0)

    member _.Http = http

    member _.Send(meth: string, path: string, ?body: string, ?token: string, ?caller: string) : Task<Answer> =
        task {
            use req = new HttpRequestMessage(HttpMethod meth, path)

            match body with
            | Some b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json")
            | None -> ()

            token |> Option.iter (fun t -> req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", t))
            caller |> Option.iter (fun c -> req.Headers.Add("X-Workspace-ID", c))
            use! resp = http.SendAsync req
            let! text = resp.Content.ReadAsStringAsync()
            return { Code = int resp.StatusCode; Text = text }
        }

    interface IDisposable with
        member _.Dispose() = http.Dispose()

type Ws = { Id: string; Token: string }

let createWs (c: Client) (admin: string) (name: string) (parent: string option) (skills: string list) : Task<Ws> =
    task {
        let body = JsonObject()
        body["name"] <- JsonValue.Create name
        parent |> Option.iter (fun p -> body["parent_id"] <- JsonValue.Create p)
        body["skills"] <- Json.arr (skills |> List.map (fun s -> Json.str s))
        let! r = c.Send("POST", "/workspaces", Json.compact body, admin)
        Assert.True((r.Code = 201), r.Text)
        return { Id = str r.Json "id"; Token = str r.Json "auth_token" }
    }

let registerBody (id: string) =
    $$"""{"id":"{{id}}","url":"","agent_card":{"name":"agent","skills":[]},"delivery_mode":"poll"}"""

let heartbeatBody (id: string) =
    $$"""{"workspace_id":"{{id}}","error_rate":0.0,"sample_error":"","active_tasks":0,"uptime_seconds":5}"""

let messageBody (text: string) =
    "{\"jsonrpc\":\"2.0\",\"id\":\"" + string (Guid.NewGuid()) + "\",\"method\":\"message/send\",\"params\":{\"message\":{\"role\":\"user\",\"messageId\":\"" + string (Guid.NewGuid()) + "\",\"parts\":[{\"kind\":\"text\",\"text\":\"" + text + "\"}]}}}"

/// A fake push-mode agent answering every JSON-RPC call with a result echoing the text.
type FakeAgent() =
    let app =
        let b = WebApplication.CreateSlimBuilder()
        b.Logging.ClearProviders() |> ignore
        b.WebHost.UseUrls("http://127.0.0.1:0") |> ignore
        let a = b.Build()

        a.MapPost(
            "/",
            RequestDelegate(fun ctx ->
                task {
                    use r = new StreamReader(ctx.Request.Body)
                    let! body = r.ReadToEndAsync()
                    let n = (Json.tryParse body).Value
                    let text = A2a.textOfParts (node n "params.message")
                    ctx.Response.ContentType <- "application/json"

                    do!
                        ctx.Response.WriteAsync(
                            "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{\"role\":\"agent\",\"parts\":[{\"kind\":\"text\",\"text\":\"echo: " + text + "\"}]}}"
                        )
                })
        )
        |> ignore

        a

    do app.StartAsync().Wait()
    member _.Url = app.Urls |> Seq.head

    interface IAsyncDisposable with
        member _.DisposeAsync() = app.DisposeAsync()

/// One platform on engine 'E shared by a test class (its tests make their own workspaces).
type PlatformFixture<'E when 'E :> IEngine and 'E: (new: unit -> 'E)>() =
    let engine = (new 'E() :> IEngine).Engine
    let dir = tempDir ()

    let platform =
        // many tests share this platform and its per-address bucket of token-less registrations: no rate limits here
        // (DoorTests cover them)
        (Server.start (
            options engine dir (fun o ->
                { o with
                    SweepInterval = TimeSpan.FromHours 1.0
                    EnableFaults = true
                    RateLimits = RateLimit.Limits.off })
        ))
            .Result

    let client = new Client(platform.Url)
    member _.Engine = engine
    member _.Platform = platform
    member _.Client = client
    member _.Admin = platform.AdminToken
    member _.Dir = dir

    interface IDisposable with
        member _.Dispose() =
            (client :> IDisposable).Dispose()
            platform.StopAsync().Wait()

            try
                Directory.Delete(dir, true)
            with :? IOException ->
                ()

[<AbstractClass>]
type Routes<'E when 'E :> IEngine and 'E: (new: unit -> 'E)>(fx: PlatformFixture<'E>) =
    let c = fx.Client
    let admin = fx.Admin
    let team () =
        task {
            let! lead = createWs c admin "lead" None [ "planning" ]
            let! a = createWs c admin "alice" (Some lead.Id) [ "python" ]
            let! b = createWs c admin "bob" (Some lead.Id) [ "rust" ]
            return lead, a, b
        }

    interface IClassFixture<PlatformFixture<'E>>

    [<Fact>]
    member _.``admin: create workspace returns 201 with a token, bad input names the field``() =
        task {
            let! r = c.Send("POST", "/workspaces", """{"name":"w1","role":"dev","skills":["a","b"],"tier":2}""", admin)
            Assert.Equal(201, r.Code)
            Assert.Equal("awaiting_agent", str r.Json "status")
            Assert.Equal(43, (str r.Json "auth_token").Length)
            Assert.Equal("b", (at r.Json "agent_card.skills.1.name"))
            let! noAdmin = c.Send("POST", "/workspaces", """{"name":"x"}""")
            Assert.Equal(401, noAdmin.Code)
            let! wrongAdmin = c.Send("POST", "/workspaces", """{"name":"x"}""", "nope")
            Assert.Equal(401, wrongAdmin.Code)
            let! noName = c.Send("POST", "/workspaces", """{"role":"x"}""", admin)
            Assert.Equal(400, noName.Code)
            Assert.Contains("name", noName.Error)
            let! badParent = c.Send("POST", "/workspaces", """{"name":"x","parent_id":"zzz"}""", admin)
            Assert.Contains("parent_id", badParent.Error)
            let! unknownParent = c.Send("POST", "/workspaces", $$"""{"name":"x","parent_id":"{{Guid.NewGuid()}}"}""", admin)
            Assert.Equal(400, unknownParent.Code)
            Assert.Contains("parent_id", unknownParent.Error)
            let! badSkills = c.Send("POST", "/workspaces", """{"name":"x","skills":"a"}""", admin)
            Assert.Contains("skills", badSkills.Error)
            let! badTier = c.Send("POST", "/workspaces", """{"name":"x","tier":"high"}""", admin)
            Assert.Contains("tier", badTier.Error)
            let! malformed = c.Send("POST", "/workspaces", """{"name":""", admin)
            Assert.Equal(400, malformed.Code)
            let! list = c.Send("GET", "/workspaces", token = admin)
            Assert.Equal(200, list.Code)
            Assert.True(list.Json.AsArray() |> Seq.exists (fun w -> str w "id" = str r.Json "id"))
        }

    [<Fact>]
    member _.``register and heartbeat: token gate, statuses and bodies``() =
        task {
            let! w = createWs c admin "reg" None []
            let! ok = c.Send("POST", "/registry/register", (registerBody w.Id), w.Token)
            Assert.Equal(200, ok.Code)
            Assert.Equal("registered", str ok.Json "status")
            Assert.Equal("poll", str ok.Json "delivery_mode")
            Assert.Null(ok.Json["auth_token"]) // it already has a live token
            Assert.False(String.IsNullOrEmpty(str ok.Json "platform_inbound_secret"))
            let! info = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal("online", str info.Json "status")
            let! missing = c.Send("POST", "/registry/register", registerBody w.Id)
            Assert.Equal(401, missing.Code)
            Assert.Equal("missing workspace auth token", missing.Error)
            let! wrong = c.Send("POST", "/registry/register", (registerBody w.Id), wrongToken w.Token)
            Assert.Equal("invalid workspace auth token", wrong.Error)
            let! badMode = c.Send("POST", "/registry/register", (registerBody w.Id).Replace("\"poll\"", "\"carrier\""), w.Token)
            Assert.Equal("delivery_mode must be 'push' or 'poll'", badMode.Error)
            let! noCard = c.Send("POST", "/registry/register", $$"""{"id":"{{w.Id}}"}""", w.Token)
            Assert.Equal(400, noCard.Code)
            Assert.Contains("agent_card", noCard.Error)
            let! garbage = c.Send("POST", "/registry/register", "not json", w.Token)
            Assert.Equal(400, garbage.Code)
            let! hb = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(200, hb.Code)
            Assert.Equal("ok", str hb.Json "status")
            let! hbBad = c.Send("POST", "/registry/heartbeat", """{"error_rate":"high"}""", w.Token)
            Assert.Equal(400, hbBad.Code)
            Assert.Contains("workspace_id", hbBad.Error)
            let! hbType = c.Send("POST", "/registry/heartbeat", $$"""{"workspace_id":"{{w.Id}}","error_rate":"high"}""", w.Token)
            Assert.Contains("error_rate", hbType.Error)
            let! hbWrong = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), "wrong")
            Assert.Equal(401, hbWrong.Code)
            // an unknown id is refused, with or without a bearer, naming the command that creates one (no open
            // registration here; DoorTests cover --open-registration)
            let fresh = Guid.NewGuid().ToString()
            let! mistyped = c.Send("POST", "/registry/register", (registerBody fresh), w.Token)
            Assert.Equal(401, mistyped.Code)
            let! first = c.Send("POST", "/registry/register", registerBody fresh)
            Assert.Equal(401, first.Code)
            Assert.Contains("molecule-platform workspace create", first.Error)
            let! hbUnknown = c.Send("POST", "/registry/heartbeat", heartbeatBody fresh)
            Assert.Equal(401, hbUnknown.Code)
        }

    [<Fact>]
    member _.``GET workspace: 200, 400 for non-UUID, 404 unknown, 410 removed, include_removed``() =
        task {
            let! w = createWs c admin "info" None []
            let! r = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal(200, r.Code)
            Assert.Equal("info", str r.Json "name")
            Assert.Equal(w.Id, str r.Json "id")
            let! bad = c.Send("GET", "/workspaces/not-a-uuid")
            Assert.Equal(400, bad.Code)
            Assert.Equal("invalid workspace ID", bad.Error)
            let! unknown = c.Send("GET", $"/workspaces/{Guid.NewGuid()}")
            Assert.Equal(404, unknown.Code)
            Assert.Equal("workspace not found", unknown.Error)
            let! del = c.Send("DELETE", $"/workspaces/{w.Id}", token = admin)
            Assert.Equal(200, del.Code)
            let! gone = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal(410, gone.Code)
            Assert.Equal("workspace removed", gone.Error)
            Assert.Equal(w.Id, str gone.Json "id")
            Assert.False(String.IsNullOrEmpty(str gone.Json "hint"))
            Assert.False(String.IsNullOrEmpty(str gone.Json "removed_at"))
            let! audit = c.Send("GET", $"/workspaces/{w.Id}?include_removed=true")
            Assert.Equal(200, audit.Code)
            Assert.Equal("removed", str audit.Json "status")
        }

    [<Fact>]
    member _.``peers and discover follow the hierarchy``() =
        task {
            let! lead, a, b = team ()
            let! other = createWs c admin "other-root" None []
            let! stranger = createWs c admin "stranger" (Some other.Id) []
            let! peers = c.Send("GET", $"/registry/{a.Id}/peers", token = a.Token, caller = a.Id)
            Assert.Equal(200, peers.Code)
            let ids = peers.Json.AsArray() |> Seq.map (fun p -> str p "id") |> set
            Assert.Equal<Set<string>>(set [ lead.Id; b.Id ], ids)
            let bob = peers.Json.AsArray() |> Seq.find (fun p -> str p "id" = b.Id)
            Assert.Equal("rust", (at bob "agent_card.skills.0.name"))
            let! noToken = c.Send("GET", $"/registry/{a.Id}/peers", caller = a.Id)
            Assert.Equal(401, noToken.Code)
            let! unknown = c.Send("GET", $"/registry/{Guid.NewGuid()}/peers")
            Assert.Equal(401, unknown.Code)
            // discover
            let! noHeader = c.Send("GET", $"/registry/discover/{b.Id}", token = a.Token)
            Assert.Equal(400, noHeader.Code)
            Assert.Contains("X-Workspace-ID", noHeader.Error)
            let! forbidden = c.Send("GET", $"/registry/discover/{stranger.Id}", token = a.Token, caller = a.Id)
            Assert.Equal(403, forbidden.Code)
            Assert.Equal("not authorized to discover this workspace", forbidden.Error)
            let! notYet = c.Send("GET", $"/registry/discover/{b.Id}", token = a.Token, caller = a.Id)
            Assert.Equal(503, notYet.Code)
            Assert.Equal("awaiting_agent", str notYet.Json "status")
            let! _ = c.Send("POST", "/registry/register", (registerBody b.Id), b.Token)
            let! found = c.Send("GET", $"/registry/discover/{b.Id}", token = a.Token, caller = a.Id)
            Assert.Equal(200, found.Code)
            Assert.Equal(b.Id, str found.Json "id")
            Assert.Equal("bob", str found.Json "name")
            Assert.Null(found.Json["status"])
            // removed peers disappear
            let! _ = c.Send("DELETE", $"/workspaces/{b.Id}", token = admin)
            let! after = c.Send("GET", $"/registry/{a.Id}/peers", token = a.Token, caller = a.Id)
            let ids2 = after.Json.AsArray() |> Seq.map (fun p -> str p "id") |> set
            Assert.Equal<Set<string>>(set [ lead.Id ], ids2)
        }

    [<Fact>]
    member _.``a2a to a poll-mode workspace queues an a2a_receive row; access rules``() =
        task {
            let! lead, a, b = team ()
            let! other = createWs c admin "outsider" None []
            let! outsiderChild = createWs c admin "outsider-child" (Some other.Id) []
            let! _ = c.Send("POST", "/registry/register", (registerBody b.Id), b.Token)
            let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody "hello bob"), a.Token, a.Id)
            Assert.Equal(200, r.Code)
            Assert.Equal("queued", str r.Json "status")
            Assert.Equal("poll", str r.Json "delivery_mode")
            Assert.Equal("message/send", str r.Json "method")
            let! rows = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive", token = b.Token)
            let row = rows.Json.AsArray() |> Seq.head
            Assert.Equal(a.Id, str row "source_id")
            Assert.Equal("hello bob", (at row "request_body.params.message.parts.0.text"))
            Assert.Equal("2.0", (at row "request_body.jsonrpc"))
            // canvas user: admin bearer, no X-Workspace-ID → source NULL; v0.2 content normalised
            let! canvas =
                c.Send("POST", $"/workspaces/{b.Id}/a2a", """{"method":"message/send","params":{"message":{"role":"user","content":"from the user"}}}""", admin)

            Assert.Equal(200, canvas.Code)
            let! rows2 = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&source=canvas", token = b.Token)
            let crow = rows2.Json.AsArray() |> Seq.head
            Assert.Null(crow["source_id"])
            Assert.Equal("from the user", (at crow "request_body.params.message.parts.0.text"))
            // caller derived from the bearer when X-Workspace-ID is absent
            let! byToken = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody "by token"), lead.Token)
            Assert.Equal(200, byToken.Code)
            let! rows3 = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&source=agent&limit=1", token = b.Token)
            Assert.Equal(lead.Id, str (rows3.Json.AsArray() |> Seq.head) "source_id")
            // hierarchy
            let! denied = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody "hi"), outsiderChild.Token, outsiderChild.Id)
            Assert.Equal(403, denied.Code)
            Assert.Equal("access denied: workspaces cannot communicate per hierarchy rules", denied.Error)
            let! badJson = c.Send("POST", $"/workspaces/{b.Id}/a2a", "{oops", a.Token, a.Id)
            Assert.Equal(400, badJson.Code)
            Assert.Equal("invalid JSON", badJson.Error)
            let! noAuth = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "hi")
            Assert.Equal(401, noAuth.Code)
            let! badCaller = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody "hi"), a.Token, "system:x")
            Assert.Equal(403, badCaller.Code)
            let! unknown = c.Send("POST", $"/workspaces/{Guid.NewGuid()}/a2a", (messageBody "hi"), a.Token, a.Id)
            Assert.Equal(404, unknown.Code)
        }

    [<Fact>]
    member _.``a2a to a push-mode workspace forwards to the agent and returns its answer``() =
        task {
            let! lead, a, b = team ()
            ignore lead
            use agent = new FakeAgent()
            let body = $$"""{"id":"{{b.Id}}","url":"{{agent.Url}}/","agent_card":{"name":"bob"},"delivery_mode":"push"}"""
            let! reg = c.Send("POST", "/registry/register", body, b.Token)
            Assert.Equal(200, reg.Code)
            let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody "ping"), a.Token, a.Id)
            Assert.Equal(200, r.Code)
            Assert.Equal("echo: ping", (at r.Json "result.parts.0.text"))
            // delegation to the push agent completes
            let! d = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"compute","idempotency_key":"k1"}""", a.Token)
            Assert.Equal(202, d.Code)
            Assert.Equal("delegated", str d.Json "status")
            let did = str d.Json "delegation_id"
            do! fx.Platform.IdleAsync()
            let! list = c.Send("GET", $"/workspaces/{a.Id}/delegations", token = a.Token)
            Assert.Equal(200, list.Code)
            let rows = list.Json.AsArray() |> List.ofSeq
            let result = rows |> List.find (fun x -> str x "type" = "delegate_result")
            Assert.Equal("completed", str result "status")
            Assert.Equal("echo: compute", str result "response_preview")
            Assert.Equal(did, str result "delegation_id")
            let tracking = rows |> List.find (fun x -> str x "type" = "delegate")
            Assert.Equal("completed", str tracking "status")
            // the answer also reaches a's inbox
            let! inbox = c.Send("GET", $"/workspaces/{a.Id}/activity?type=a2a_receive", token = a.Token)
            let reply = inbox.Json.AsArray() |> Seq.find (fun x -> str x "method" = "delegate_result")
            Assert.Equal(b.Id, str reply "source_id")
            // idempotent hit
            let! again = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"compute","idempotency_key":"k1"}""", a.Token)
            Assert.Equal(200, again.Code)
            Assert.True((node again.Json "idempotent_hit").GetValue<bool>())
            Assert.Equal(did, str again.Json "delegation_id")
        }

    [<Fact>]
    member _.``push-mode agent unreachable: a2a gives 502 and the delegation fails``() =
        task {
            let! _, a, b = team ()
            let body = $$"""{"id":"{{b.Id}}","url":"http://127.0.0.1:1/","agent_card":{"name":"bob"},"delivery_mode":"push"}"""
            let! reg = c.Send("POST", "/registry/register", body, b.Token)
            Assert.Equal(200, reg.Code)
            let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody "ping"), a.Token, a.Id)
            Assert.Equal(502, r.Code)
            Assert.Equal("failed to reach workspace agent", r.Error)
            let! d = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"x","idempotency_key":"dead"}""", a.Token)
            Assert.Equal(202, d.Code)
            do! fx.Platform.IdleAsync()
            let! list = c.Send("GET", $"/workspaces/{a.Id}/delegations", token = a.Token)
            let result = list.Json.AsArray() |> Seq.find (fun x -> str x "type" = "delegate_result")
            Assert.Equal("failed", str result "status")
            Assert.Contains("failed to reach", str result "error")
            // a failed delegation frees its idempotency key
            let! again = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"x","idempotency_key":"dead"}""", a.Token)
            Assert.Equal(202, again.Code)
            do! fx.Platform.IdleAsync()
            let! noUrl = c.Send("POST", "/registry/register", $$"""{"id":"{{b.Id}}","agent_card":{},"delivery_mode":"push"}""", b.Token)
            Assert.Equal(400, noUrl.Code)
            Assert.Contains("url", noUrl.Error)
        }

    [<Fact>]
    member _.``delegate: validation, poll-mode target queued``() =
        task {
            let! _, a, b = team ()
            let! self = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{a.Id}}","task":"x"}""", a.Token)
            Assert.Equal(400, self.Code)
            Assert.Equal("self-delegation not permitted", self.Error)
            let! bad = c.Send("POST", $"/workspaces/{a.Id}/delegate", """{"target_id":"nope","task":"x"}""", a.Token)
            Assert.Equal("target_id must be a valid UUID", bad.Error)
            let! noTask = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}"}""", a.Token)
            Assert.Contains("task", noTask.Error)
            let! garbage = c.Send("POST", $"/workspaces/{a.Id}/delegate", "[", a.Token)
            Assert.Equal(400, garbage.Code)
            let! noAuth = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"x"}""")
            Assert.Equal(401, noAuth.Code)
            let! d = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"review this"}""", a.Token)
            Assert.Equal(202, d.Code)
            do! fx.Platform.IdleAsync()
            let! list = c.Send("GET", $"/workspaces/{a.Id}/delegations", token = a.Token)
            let result = list.Json.AsArray() |> Seq.find (fun x -> str x "type" = "delegate_result")
            Assert.Equal("queued", str result "status")
            let! inbox = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive", token = b.Token)
            let row = inbox.Json.AsArray() |> Seq.head
            Assert.Equal(a.Id, str row "source_id")
            Assert.Equal("review this", (at row "request_body.params.message.parts.0.text"))
            Assert.Equal((str d.Json "delegation_id"), (at row "request_body.params.message.metadata.delegation_id"))
        }

    [<Fact>]
    member _.``activity: cursor paging, 410, since_secs, filters, POST``() =
        task {
            let! _, a, b = team ()

            for i in 1..5 do
                let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", (messageBody $"m{i}"), a.Token, a.Id)
                Assert.Equal(200, r.Code)

            let! newest = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&since_secs=600", token = b.Token)
            let texts (n: JsonNode) =
                n.AsArray() |> Seq.map (fun r -> (at r "request_body.params.message.parts.0.text")) |> List.ofSeq

            Assert.Equal<string list>([ "m5"; "m4"; "m3"; "m2"; "m1" ], texts newest.Json)
            let oldest = newest.Json.AsArray() |> Seq.last
            let oldestId = str oldest "id"
            let! page = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&since_id={oldestId}&limit=2", token = b.Token)
            Assert.Equal<string list>([ "m2"; "m3" ], texts page.Json)
            let! gone = c.Send("GET", $"/workspaces/{b.Id}/activity?since_id={Guid.NewGuid()}", token = b.Token)
            Assert.Equal(410, gone.Code)
            Assert.Equal(Activity.cursorGone, gone.Error)
            // a cursor from another workspace is foreign → 410
            let! foreign = c.Send("GET", $"/workspaces/{a.Id}/activity?since_id={oldestId}", token = a.Token)
            Assert.Equal(410, foreign.Code)
            let! badSecs = c.Send("GET", $"/workspaces/{b.Id}/activity?since_secs=0", token = b.Token)
            Assert.Equal("since_secs must be a positive integer", badSecs.Error)
            let! badSource = c.Send("GET", $"/workspaces/{b.Id}/activity?source=robot", token = b.Token)
            Assert.Equal(400, badSource.Code)
            let! garbageLimit = c.Send("GET", $"/workspaces/{b.Id}/activity?limit=abc", token = b.Token)
            Assert.Equal(200, garbageLimit.Code)
            let! noToken = c.Send("GET", $"/workspaces/{b.Id}/activity")
            Assert.Equal(401, noToken.Code)
            Assert.Equal("missing workspace auth token", noToken.Error)
            let! otherToken = c.Send("GET", $"/workspaces/{b.Id}/activity", token = a.Token)
            Assert.Equal("invalid workspace auth token", otherToken.Error)
            let! adminRead = c.Send("GET", $"/workspaces/{b.Id}/activity", token = admin)
            Assert.Equal(200, adminRead.Code)
            // POST activity
            let! logged =
                c.Send("POST", $"/workspaces/{a.Id}/activity", $$"""{"activity_type":"a2a_send","source_id":"{{a.Id}}","target_id":"{{b.Id}}","summary":"sent","request_body":{"task":"t"} }""", a.Token)

            Assert.Equal(200, logged.Code)
            Assert.Equal("logged", str logged.Json "status")
            let! mine = c.Send("GET", $"/workspaces/{a.Id}/activity?type=a2a_send", token = a.Token)
            Assert.Equal("t", (at (mine.Json.AsArray() |> Seq.head) "request_body.task"))
            let! badType = c.Send("POST", $"/workspaces/{a.Id}/activity", """{"activity_type":"bogus"}""", a.Token)
            Assert.Equal(400, badType.Code)
            Assert.Contains("activity_type", badType.Error)
            let! spoof = c.Send("POST", $"/workspaces/{a.Id}/activity", $$"""{"activity_type":"a2a_send","source_id":"{{b.Id}}"}""", a.Token)
            Assert.Equal(403, spoof.Code)
            Assert.Equal("source_id must match authenticated workspace", spoof.Error)
        }

    [<Fact>]
    member _.``notify writes an a2a_receive notify row with NULL source``() =
        task {
            let! w = createWs c admin "notifier" None []
            let! r = c.Send("POST", $"/workspaces/{w.Id}/notify", """{"message":"done!","attachments":[{"uri":"u","name":"n.txt"}]}""", w.Token)
            Assert.Equal(200, r.Code)
            Assert.Equal("sent", str r.Json "status")
            let! rows = c.Send("GET", $"/workspaces/{w.Id}/activity?type=a2a_receive", token = w.Token)
            let row = rows.Json.AsArray() |> Seq.head
            Assert.Equal("notify", str row "method")
            Assert.Null(row["source_id"])
            Assert.Null(row["request_body"])
            Assert.Equal("done!", (at row "response_body.result"))
            Assert.Equal("n.txt", (at row "response_body.parts.0.file.name"))
            Assert.StartsWith("Agent message: ", str row "summary")
            let! noMsg = c.Send("POST", $"/workspaces/{w.Id}/notify", "{}", w.Token)
            Assert.Equal("message is required", noMsg.Error)
            let! badAtt = c.Send("POST", $"/workspaces/{w.Id}/notify", """{"message":"x","attachments":[{"name":"a"}]}""", w.Token)
            Assert.Equal("attachment[0]: uri and name are required", badAtt.Error)
            let! unknown = c.Send("POST", $"/workspaces/{Guid.NewGuid()}/notify", """{"message":"x"}""", admin)
            Assert.Equal(404, unknown.Code)
        }

    [<Fact>]
    member _.``chat uploads are stored and served back with auth``() =
        task {
            let! w = createWs c admin "uploader" None []
            use form = new MultipartFormDataContent()
            let bytes = Encoding.UTF8.GetBytes "hello file"
            let part = new ByteArrayContent(bytes)
            part.Headers.ContentType <- Headers.MediaTypeHeaderValue("text/plain")
            form.Add(part, "files", "../notes.txt")
            use req = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{w.Id}/chat/uploads", Content = form)
            req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", w.Token)
            use! resp = c.Http.SendAsync req
            let! text = resp.Content.ReadAsStringAsync()
            Assert.Equal(200, int resp.StatusCode)
            let file = node (Json.tryParse text).Value "files.0"
            Assert.Equal("notes.txt", str file "name")
            Assert.Equal("text/plain", str file "mimeType")
            Assert.Equal(10L, (node file "size").GetValue<int64>())
            let uri = str file "uri"
            use get = new HttpRequestMessage(HttpMethod.Get, uri)
            get.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", w.Token)
            use! got = c.Http.SendAsync get
            let! content = got.Content.ReadAsStringAsync()
            Assert.Equal("hello file", content)
            use! anon = c.Http.GetAsync(uri)
            Assert.Equal(401, int anon.StatusCode)
            let! notMultipart = c.Send("POST", $"/workspaces/{w.Id}/chat/uploads", "{}", w.Token)
            Assert.Equal(400, notMultipart.Code)
            Assert.Contains("files", notMultipart.Error)
            let! missingFile = c.Send("GET", $"/workspaces/{w.Id}/chat/uploads/nothing.txt", token = w.Token)
            Assert.Equal(404, missingFile.Code)
        }

    [<Fact>]
    member _.``chat uploads whose names hold percent signs or unicode are served back by their uri``() =
        task {
            let! w = createWs c admin "percent" None []

            for name in [ "rate%20card.txt"; "50%25 off.txt"; "a%2Fb.txt"; "naïve 日本.txt" ] do
                use form = new MultipartFormDataContent()
                let part = new ByteArrayContent(Encoding.UTF8.GetBytes("body of " + name))
                part.Headers.ContentType <- Headers.MediaTypeHeaderValue("text/plain")
                form.Add(part, "files", name)
                use req = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{w.Id}/chat/uploads", Content = form)
                req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", w.Token)
                use! resp = c.Http.SendAsync req
                let! text = resp.Content.ReadAsStringAsync()
                Assert.Equal(200, int resp.StatusCode)
                let file = node (Json.tryParse text).Value "files.0"
                Assert.Equal(name, str file "name")
                use get = new HttpRequestMessage(HttpMethod.Get, str file "uri")
                get.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", w.Token)
                use! got = c.Http.SendAsync get
                let! content = got.Content.ReadAsStringAsync()
                Assert.True((200 = int got.StatusCode), $"{name}: HTTP {int got.StatusCode} {content}")
                Assert.Equal("body of " + name, content)
        }

    [<Fact>]
    member _.``memories: scopes, GLOBAL only from roots, search, redaction``() =
        task {
            let! lead, a, b = team ()
            let post (w: Ws) (content: string) (scope: string) =
                c.Send("POST", $"/workspaces/{w.Id}/memories", $$"""{"content":"{{content}}","scope":"{{scope}}","workspace_id":"{{w.Id}}"}""", w.Token)

            let! local = post a "alice private note" "LOCAL"
            Assert.Equal(201, local.Code)
            Assert.Equal("LOCAL", str local.Json "scope")
            Assert.Equal("general", str local.Json "namespace")
            let! team = post a "deploy happens on Fridays" "TEAM"
            Assert.Equal(201, team.Code)
            let! denied = post a "global from child" "GLOBAL"
            Assert.Equal(403, denied.Code)
            Assert.Equal("only root workspaces can write GLOBAL memories", denied.Error)
            let! glob = post lead "company style guide" "GLOBAL"
            Assert.Equal(201, glob.Code)
            let! secret = post a "the key is sk-abcdefghijklmnopqrstuvwxyz123456" "LOCAL"
            Assert.Equal(201, secret.Code)
            let! badScope = post a "x" "PLANET"
            Assert.Equal(400, badScope.Code)
            Assert.Contains("scope", badScope.Error)
            let! noContent = c.Send("POST", $"/workspaces/{a.Id}/memories", """{"scope":"LOCAL"}""", a.Token)
            Assert.Contains("content", noContent.Error)
            let! bobTeam = c.Send("GET", "/workspaces/" + b.Id + "/memories?scope=TEAM&q=DEPLOY%20friday", token = b.Token)
            Assert.Equal(200, bobTeam.Code)
            Assert.Equal("deploy happens on Fridays", str (bobTeam.Json.AsArray() |> Seq.exactlyOne) "content")
            let! bobLocal = c.Send("GET", $"/workspaces/{b.Id}/memories?scope=LOCAL", token = b.Token)
            Assert.Empty(bobLocal.Json.AsArray())
            let! bobGlobal = c.Send("GET", $"/workspaces/{b.Id}/memories?scope=GLOBAL&q=style", token = b.Token)
            let g = bobGlobal.Json.AsArray() |> Seq.exactlyOne
            let globId = str glob.Json "id"
            Assert.StartsWith($"[MEMORY id={globId} scope=GLOBAL from={lead.Id}]: ", str g "content")
            let! aliceAll = c.Send("GET", $"/workspaces/{a.Id}/memories", token = a.Token)
            let contents = aliceAll.Json.AsArray() |> Seq.map (fun m -> str m "content") |> List.ofSeq
            Assert.Equal(3, contents.Length)
            Assert.DoesNotContain(contents, fun s -> s.Contains "sk-abcdefghij")
            Assert.Contains(contents, fun s -> s.Contains "[REDACTED:")
            let! noToken = c.Send("GET", $"/workspaces/{a.Id}/memories")
            Assert.Equal(401, noToken.Code)
        }

    [<Fact>]
    member _.``delete: confirmation, cascade, token revocation and 401 afterwards``() =
        task {
            let! lead, a, b = team ()
            let! child = createWs c admin "grandchild" (Some a.Id) []
            let! _ = c.Send("POST", "/registry/register", (registerBody a.Id), a.Token)
            let! needsConfirm = c.Send("DELETE", $"/workspaces/{lead.Id}", token = admin)
            Assert.Equal(409, needsConfirm.Code)
            Assert.Equal("confirmation_required", str needsConfirm.Json "status")
            Assert.Equal(2, (node needsConfirm.Json "children_count").GetValue<int>())
            let! noAdmin = c.Send("DELETE", $"/workspaces/{a.Id}?confirm=true", token = a.Token)
            Assert.Equal(401, noAdmin.Code)
            let! del = c.Send("DELETE", $"/workspaces/{a.Id}?confirm=true", token = admin)
            Assert.Equal(200, del.Code)
            Assert.Equal("removed", str del.Json "status")
            Assert.Equal(1, (node del.Json "cascade_deleted").GetValue<int>())
            let! childInfo = c.Send("GET", $"/workspaces/{child.Id}")
            Assert.Equal(410, childInfo.Code)
            // the revoked token of the removed workspace: 401 everywhere (no grandfathering)
            let! hb = c.Send("POST", "/registry/heartbeat", (heartbeatBody a.Id), a.Token)
            Assert.Equal(401, hb.Code)
            let! reg = c.Send("POST", "/registry/register", (registerBody a.Id), a.Token)
            Assert.Equal(401, reg.Code)
            let! hbNoToken = c.Send("POST", "/registry/heartbeat", heartbeatBody a.Id)
            Assert.Equal(401, hbNoToken.Code)
            let! act = c.Send("GET", $"/workspaces/{a.Id}/activity", token = a.Token)
            Assert.Equal(401, act.Code)
            let! childHb = c.Send("POST", "/registry/heartbeat", (heartbeatBody child.Id), child.Token)
            Assert.Equal(401, childHb.Code)
            let! sibling = c.Send("GET", $"/workspaces/{b.Id}")
            Assert.Equal("awaiting_agent", str sibling.Json "status")
            let! unknown = c.Send("DELETE", $"/workspaces/{Guid.NewGuid()}", token = admin)
            Assert.Equal(404, unknown.Code)
        }

    [<Fact>]
    member _.``tokens: mint, list, revoke``() =
        task {
            let! w = createWs c admin "tokens" None []
            let! minted = c.Send("POST", $"/workspaces/{w.Id}/tokens", token = admin)
            Assert.Equal(201, minted.Code)
            let second = str minted.Json "auth_token"
            Assert.Equal(43, second.Length)
            let! list = c.Send("GET", $"/workspaces/{w.Id}/tokens", token = admin)
            Assert.Equal(2, (node list.Json "count").GetValue<int>())
            Assert.DoesNotContain(second, list.Text)
            let tokenId = str minted.Json "id"
            let! ok = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), second)
            Assert.Equal(200, ok.Code)
            let! revoked = c.Send("DELETE", $"/workspaces/{w.Id}/tokens/{tokenId}", token = admin)
            Assert.Equal(200, revoked.Code)
            let! after = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), second)
            Assert.Equal(401, after.Code)
            let! stillOk = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(200, stillOk.Code)
            let! list2 = c.Send("GET", $"/workspaces/{w.Id}/tokens", token = admin)
            Assert.Equal(1, (node list2.Json "count").GetValue<int>())
            let! unknown = c.Send("DELETE", $"/workspaces/{w.Id}/tokens/{Guid.NewGuid()}", token = admin)
            Assert.Equal(404, unknown.Code)
            let! notAdmin = c.Send("POST", $"/workspaces/{w.Id}/tokens", token = w.Token)
            Assert.Equal(401, notAdmin.Code)
        }

    [<Fact>]
    member _.``fault injection: status, body, delay, drop, times, admin endpoint, request counts``() =
        task {
            let! w = createWs c admin "faulty" None []
            let faults = fx.Platform.Faults
            let before = faults.Requests "/registry/heartbeat"
            faults.Add { FaultRule.make "/registry/heartbeat" 503 with Times = Some 1 }
            let! r1 = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(503, r1.Code)
            let! r2 = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(200, r2.Code)
            Assert.Equal(before + 2, faults.Requests "/registry/heartbeat")
            faults.Add { FaultRule.make $"/workspaces/{w.Id}" 410 with Method = Some "GET"; Body = """{"error":"workspace removed"}""" }
            let! r3 = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal(410, r3.Code)
            Assert.Equal("workspace removed", r3.Error)
            faults.Clear()
            let! r4 = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal(200, r4.Code)
            faults.Add { FaultRule.make "/registry/register" 401 with Times = Some 1 }
            let! r5 = c.Send("POST", "/registry/register", (registerBody w.Id), w.Token)
            Assert.Equal(401, r5.Code)
            faults.Add { FaultRule.make "/health" 0 with DelayMs = 300; Times = Some 1 }
            let sw = Diagnostics.Stopwatch.StartNew()
            let! r6 = c.Send("GET", "/health")
            Assert.Equal(200, r6.Code)
            Assert.True(sw.ElapsedMilliseconds >= 280L, $"delay was {sw.ElapsedMilliseconds} ms")
            faults.Add { FaultRule.make "/health" 0 with Drop = true; Times = Some 1 }
            let! dropped = Assert.ThrowsAnyAsync<HttpRequestException>(fun () -> c.Send("GET", "/health") :> Task)
            Assert.NotNull dropped
            faults.Add { FaultRule.make "/health" 0 with Hang = true; Times = Some 1 }
            use impatient = new HttpClient(Timeout = TimeSpan.FromMilliseconds 400.0)
            let! hung = Assert.ThrowsAnyAsync<TaskCanceledException>(fun () -> impatient.GetAsync(fx.Platform.Url + "/health") :> Task)
            Assert.NotNull hung
            let! afterHang = c.Send("GET", "/health")
            Assert.Equal(200, afterHang.Code)
            Assert.True(faults.Requests("GET", "/health") >= 4)
            // scripted from outside the process
            let! added = c.Send("POST", "/admin/faults", """{"path_prefix":"/registry/heartbeat","status":500,"times":2}""", admin)
            Assert.Equal(200, added.Code)
            let! f1 = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(500, f1.Code)
            let! cleared = c.Send("DELETE", "/admin/faults", token = admin)
            Assert.Equal(200, cleared.Code)
            let! f2 = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(200, f2.Code)
            let! notAdmin = c.Send("POST", "/admin/faults", """{"path_prefix":"/","status":500}""", w.Token)
            Assert.Equal(401, notAdmin.Code)
            let! counted = c.Send("GET", "/admin/requests?method=POST&prefix=/registry/heartbeat", token = admin)
            Assert.Equal(faults.Requests("POST", "/registry/heartbeat"), (node counted.Json "count").GetValue<int>())
            let! sweep = c.Send("POST", "/admin/sweep", token = admin)
            Assert.Equal(200, sweep.Code)
            Assert.Empty((node sweep.Json "changed").AsArray())
            let! badRule = c.Send("POST", "/admin/faults", """{"status":500}""", admin)
            Assert.Equal(400, badRule.Code)
            Assert.Contains("path_prefix", badRule.Error)
            // a status no HTTP answer can carry is refused up front, instead of turning every matching request into a 500
            for bad in [ """{"path_prefix":"/health","status":42}"""; """{"path_prefix":"/health","status":1000}"""; """{"path_prefix":"/health","status":-1}""" ] do
                let! r = c.Send("POST", "/admin/faults", bad, admin)
                Assert.True((r.Code = 400), $"{bad} gave {r.Code}: {r.Text}")
                Assert.Contains("status", r.Error)

            let! health = c.Send("GET", "/health")
            Assert.Equal(200, health.Code)
        }

    [<Fact>]
    member _.``client mistakes never give a 500: malformed JSON, wrong types, non-UUID ids``() =
        task {
            let! lead, a, b = team ()
            ignore lead
            let jsonRoutes =
                [ "POST", "/registry/register", a.Token
                  "POST", "/registry/heartbeat", a.Token
                  "POST", $"/workspaces/{a.Id}/activity", a.Token
                  "POST", $"/workspaces/{b.Id}/a2a", a.Token
                  "POST", $"/workspaces/{a.Id}/delegate", a.Token
                  "POST", $"/workspaces/{a.Id}/notify", a.Token
                  "POST", $"/workspaces/{a.Id}/memories", a.Token
                  "POST", "/workspaces", admin
                  "POST", "/admin/faults", admin ]

            for (m, path, token) in jsonRoutes do
                for body in [ "{"; "[1,2]"; "\"text\""; "null"; """{"id":5,"workspace_id":[],"activity_type":1,"message":{},"content":2,"name":3,"target_id":4}"""; """{"name":"a","name":"b","id":"x","id":"y","message":"m","message":"n"}""" ] do
                    let! r = c.Send(m, path, body, token, a.Id)
                    Assert.True((r.Code = 400), $"{m} {path} with {body} gave {r.Code}: {r.Text}")
                    Assert.False(String.IsNullOrEmpty r.Error)

            let idRoutes =
                [ "GET", "/workspaces/not-a-uuid"
                  "GET", "/workspaces/not-a-uuid/activity"
                  "POST", "/workspaces/not-a-uuid/activity"
                  "POST", "/workspaces/not-a-uuid/a2a"
                  "POST", "/workspaces/not-a-uuid/delegate"
                  "GET", "/workspaces/not-a-uuid/delegations"
                  "POST", "/workspaces/not-a-uuid/notify"
                  "POST", "/workspaces/not-a-uuid/memories"
                  "GET", "/workspaces/not-a-uuid/memories"
                  "GET", "/registry/discover/not-a-uuid"
                  "GET", "/registry/not-a-uuid/peers"
                  "DELETE", "/workspaces/not-a-uuid"
                  "POST", "/workspaces/not-a-uuid/tokens"
                  "GET", "/workspaces/not-a-uuid/tokens"
                  "DELETE", $"/workspaces/{a.Id}/tokens/not-a-uuid" ]

            for (m, path) in idRoutes do
                let! r = c.Send(m, path, "{}", admin, a.Id)
                Assert.True((r.Code = 400 || r.Code = 404), $"{m} {path} gave {r.Code}: {r.Text}")
                Assert.False(String.IsNullOrEmpty r.Error)
        }

    [<Fact>]
    member _.``client mistakes never give a 500: lone UTF-16 surrogates in JSON strings``() =
        task {
            let! lead, a, b = team ()
            ignore lead
            // "\ud800" is valid JSON syntax but not a valid string: every route must answer 400 (or accept it), never 500
            let lone = "\\ud800"
            let cases =
                [ "POST", "/workspaces", $$"""{"name":"x{{lone}}"}""", admin
                  "POST", "/registry/register", $$"""{"id":"{{a.Id}}{{lone}}","agent_card":{ } }""", a.Token
                  "POST", "/registry/heartbeat", $$"""{"workspace_id":"{{a.Id}}","current_task":"{{lone}}"}""", a.Token
                  "POST", $"/workspaces/{a.Id}/activity", $$"""{"activity_type":"a2a_send","summary":"{{lone}}"}""", a.Token
                  "POST", $"/workspaces/{a.Id}/notify", $$"""{"message":"hi {{lone}}"}""", a.Token
                  "POST", $"/workspaces/{a.Id}/memories", $$"""{"content":"{{lone}}","scope":"LOCAL"}""", a.Token
                  "POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"{{lone}}"}""", a.Token
                  "POST", $"/workspaces/{b.Id}/a2a", messageBody lone, a.Token
                  "POST", "/admin/faults", $$"""{"path_prefix":"/x{{lone}}","status":500}""", admin ]

            for (m, path, body, token) in cases do
                let! r = c.Send(m, path, body, token, a.Id)
                Assert.True((r.Code < 500), $"{m} {path} with {body} gave {r.Code}: {r.Text}")

            do! fx.Platform.IdleAsync()
            // the platform still answers normally afterwards
            let! list = c.Send("GET", $"/workspaces/{a.Id}/activity", token = a.Token)
            Assert.Equal(200, list.Code)
            let! ws = c.Send("GET", "/workspaces", token = admin)
            Assert.Equal(200, ws.Code)
            let! faults = c.Send("DELETE", "/admin/faults", token = admin)
            Assert.Equal(200, faults.Code)
        }

    [<Fact>]
    member _.``oversized bodies get 413 and unknown routes 404 JSON``() =
        task {
            let! w = createWs c admin "big" None []
            let big = String('x', 1100000)
            let! r = c.Send("POST", $"/workspaces/{w.Id}/notify", $$"""{"message":"{{big}}"}""", w.Token)
            Assert.Equal(413, r.Code)
            let! nf = c.Send("GET", "/nope")
            Assert.Equal(404, nf.Code)
            Assert.Equal("not found", nf.Error)
        }

    [<Fact>]
    member _.``events stream publishes platform events (opened with a one-time ticket, never the admin token in the URL)``() =
        task {
            use http = new HttpClient(Timeout = TimeSpan.FromSeconds 10.0)
            let! ticket = c.Send("POST", "/admin/stream-ticket", token = admin)
            Assert.Equal(60, (node ticket.Json "expires_in_seconds").GetValue<int>())
            let t = str ticket.Json "ticket"
            use req = new HttpRequestMessage(HttpMethod.Get, $"{fx.Platform.Url}/events?ticket={Uri.EscapeDataString t}")
            use! resp = http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead)
            Assert.Equal(200, int resp.StatusCode)
            use! stream = resp.Content.ReadAsStreamAsync()
            use reader = new StreamReader(stream)
            let! _ = reader.ReadLineAsync() // ": connected"
            let! w = createWs c admin "evented" None []
            let mutable found = false
            let deadline = DateTime.UtcNow.AddSeconds 5.0

            while not found && DateTime.UtcNow < deadline do
                let! line = reader.ReadLineAsync()
                if not (isNull line) && line.Contains "WORKSPACE_CREATED" then found <- true

            Assert.True(found)
            ignore w
            // the ticket is used up; the admin token in the URL is refused; a ticket needs the admin
            let! again = c.Send("GET", $"/events?ticket={Uri.EscapeDataString t}")
            Assert.Equal((401, "invalid or used stream ticket"), (again.Code, again.Error))
            let! inUrl = c.Send("GET", $"/events?token={Uri.EscapeDataString admin}")
            Assert.Equal(401, inUrl.Code)
            let! noAdmin = c.Send("POST", "/admin/stream-ticket", token = w.Token)
            Assert.Equal(401, noAdmin.Code)
        }

type RoutesOnSqlite(fx) =
    inherit Routes<OnSqlite>(fx)

type RoutesOnPostgres(fx) =
    inherit Routes<OnPostgres>(fx)

type Lifecycle() =
    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``restart: workspaces, tokens, activity and memories survive; admin token reused with mode 0600``(engine: string) =
        task {
            let dir = tempDir ()
            let opts = options (named engine) dir id
            let! p1 = Server.start opts
            let c1 = new Client(p1.Url)
            let! w = createWs c1 p1.AdminToken "durable" None [ "x" ]
            let! _ = c1.Send("POST", "/registry/register", (registerBody w.Id), w.Token)
            let! _ = c1.Send("POST", $"/workspaces/{w.Id}/notify", """{"message":"persisted"}""", w.Token)
            let! m = c1.Send("POST", $"/workspaces/{w.Id}/memories", """{"content":"remember me","scope":"LOCAL"}""", w.Token)
            Assert.Equal(201, m.Code)
            let! rows1 = c1.Send("GET", $"/workspaces/{w.Id}/activity", token = w.Token)
            let cursor = str (rows1.Json.AsArray() |> Seq.head) "id"
            let admin1 = p1.AdminToken
            // one platform per data dir; a busy port is a clear error
            let! second = Assert.ThrowsAnyAsync<InvalidOperationException>(fun () -> Server.start opts :> Task)
            Assert.Contains("in use", second.Message)
            let port = Uri(p1.Url).Port
            let otherDir = tempDir ()
            let! busy = Assert.ThrowsAnyAsync<InvalidOperationException>(fun () -> Server.start (options (named engine) otherDir (fun o -> { o with Port = port })) :> Task)
            Assert.Contains("could not listen", busy.Message)
            Directory.Delete(otherDir, true)
            (c1 :> IDisposable).Dispose()
            do! p1.StopAsync()

            if not (OperatingSystem.IsWindows()) then
                let mode = File.GetUnixFileMode(Path.Combine(dir, "admin_token"))
                Assert.Equal(UnixFileMode.UserRead ||| UnixFileMode.UserWrite, mode)

            let! p2 = Server.start opts
            use c2 = new Client(p2.Url)
            Assert.Equal(admin1, p2.AdminToken)
            let! info = c2.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal(200, info.Code)
            Assert.Equal("durable", str info.Json "name")
            let! hb = c2.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            Assert.Equal(200, hb.Code)
            let! rows2 = c2.Send("GET", $"/workspaces/{w.Id}/activity?since_id={cursor}", token = w.Token)
            Assert.Equal(200, rows2.Code) // the cursor row survived
            let! all = c2.Send("GET", $"/workspaces/{w.Id}/activity", token = w.Token)
            Assert.Contains("persisted", all.Text)
            let! mems = c2.Send("GET", $"/workspaces/{w.Id}/memories", token = w.Token)
            Assert.Equal("remember me", str (mems.Json.AsArray() |> Seq.exactlyOne) "content")
            let! list = c2.Send("GET", "/workspaces", token = admin1)
            Assert.Equal(200, list.Code)
            do! p2.StopAsync()
            Directory.Delete(dir, true)
        }

    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``liveness sweep: stale workspaces become awaiting_agent, heartbeat brings them back``(engine: string) =
        task {
            let dir = tempDir ()
            let mutable now = DateTimeOffset.UtcNow
            let! p = Server.start (options (named engine) dir (fun o -> { o with Clock = Some(fun () -> now); SweepInterval = TimeSpan.FromHours 1.0 }))
            use c = new Client(p.Url)
            let! w = createWs c p.AdminToken "sleepy" None []
            let! _ = c.Send("POST", "/registry/register", (registerBody w.Id), w.Token)
            now <- now.AddSeconds 60.0
            Assert.Empty(p.SweepNow())
            now <- now.AddSeconds 31.0
            Assert.Equal<WorkspaceId list>([ WorkspaceId(Guid.Parse w.Id) ], p.SweepNow())
            let! info = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal("awaiting_agent", str info.Json "status")
            let! _ = c.Send("POST", "/registry/heartbeat", (heartbeatBody w.Id), w.Token)
            let! back = c.Send("GET", $"/workspaces/{w.Id}")
            Assert.Equal("online", str back.Json "status")
            do! p.StopAsync()
            // the background loop does the same on its own
            let! p2 = Server.start (options (named engine) dir (fun o -> { o with Clock = Some(fun () -> now); SweepInterval = TimeSpan.FromMilliseconds 50.0 }))
            use c2 = new Client(p2.Url)
            now <- now.AddSeconds 120.0
            let mutable status = ""
            let deadline = DateTime.UtcNow.AddSeconds 5.0

            while status <> "awaiting_agent" && DateTime.UtcNow < deadline do
                do! Task.Delay 50
                let! i = c2.Send("GET", $"/workspaces/{w.Id}")
                status <- str i.Json "status"

            Assert.Equal("awaiting_agent", status)
            do! p2.StopAsync()
            Directory.Delete(dir, true)
        }

    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``since_id paging is exactly-once even when the clock steps back between two rows``(engine: string) =
        task {
            let dir = tempDir ()
            let mutable now = DateTimeOffset.UtcNow
            let! p = Server.start (options (named engine) dir (fun o -> { o with Clock = Some(fun () -> now); SweepInterval = TimeSpan.FromHours 1.0 }))
            use c = new Client(p.Url)
            let! w = createWs c p.AdminToken "poller" None []
            let! first = c.Send("POST", $"/workspaces/{w.Id}/notify", """{"message":"one"}""", w.Token)
            Assert.Equal(200, first.Code)
            let! page1 = c.Send("GET", $"/workspaces/{w.Id}/activity?type=a2a_receive", token = w.Token)
            let cursor = at page1.Json "0.id"
            // an NTP correction (or a row whose time was taken before another's insert) puts the next row earlier
            now <- now.AddSeconds -5.0
            let! second = c.Send("POST", $"/workspaces/{w.Id}/notify", """{"message":"two"}""", w.Token)
            Assert.Equal(200, second.Code)
            let! page2 = c.Send("GET", $"/workspaces/{w.Id}/activity?type=a2a_receive&since_id={cursor}", token = w.Token)
            Assert.Equal(200, page2.Code)
            let rows = page2.Json.AsArray()
            Assert.Equal(1, rows.Count)
            Assert.NotEqual<string>(cursor, at page2.Json "0.id")
            do! p.StopAsync()
            Directory.Delete(dir, true)
        }

type Durability() =
    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``rule: an acknowledged write is never lost (concurrent writes survive a restart)``(engine: string) =
        task {
            let dir = tempDir ()
            let opts = options (named engine) dir id
            let! p1 = Server.start opts
            let c1 = new Client(p1.Url)
            let! lead = createWs c1 p1.AdminToken "lead" None []
            let! a = createWs c1 p1.AdminToken "a" (Some lead.Id) []
            let! b = createWs c1 p1.AdminToken "b" (Some lead.Id) []

            let! answers =
                Task.WhenAll(
                    [ for i in 1..40 ->
                          if i % 2 = 0 then
                              c1.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody $"msg {i}", a.Token, a.Id)
                          else
                              c1.Send("POST", $"/workspaces/{b.Id}/memories", $$"""{"content":"memo {{i}}","scope":"TEAM"}""", b.Token) ]
                )

            let acknowledged = answers |> Array.filter (fun r -> r.Code = 200 || r.Code = 201) |> Array.length
            Assert.Equal(40, acknowledged)
            (c1 :> IDisposable).Dispose()
            do! p1.StopAsync()
            let! p2 = Server.start opts
            use c2 = new Client(p2.Url)
            let! rows = c2.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&limit=500", token = b.Token)
            Assert.Equal(20, rows.Json.AsArray().Count)
            let! mems = c2.Send("GET", $"/workspaces/{a.Id}/memories?scope=TEAM", token = a.Token)
            Assert.Equal(20, mems.Json.AsArray().Count)
            do! p2.StopAsync()
            Directory.Delete(dir, true)
        }

