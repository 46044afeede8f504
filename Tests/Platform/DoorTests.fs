/// "No open doors", over real HTTP (127.0.0.1, port 0): every refusal a client without the right token or from the
/// wrong place meets — foreign Host, foreign Origin, non-JSON bodies, unknown ids, revoked tokens, bodies over the
/// limit (413 even while the client is still sending), rate limits — the data directory's modes, the start warnings
/// and the platform log.
module Molecule.Tests.Platform.DoorTests

open System
open System.Collections.Concurrent
open System.IO
open System.Net.Http
open System.Net.Http.Headers
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.DeliveryHttpTests
open Molecule.Tests.Platform.StreamHttpTests

/// One request with exactly these headers (Host, Origin, Content-Type may be anything).
let raw (c: Client) (meth: string) (path: string) (headers: (string * string) list) (body: HttpContent option) : Task<Answer * HttpResponseMessage> =
    task {
        let req = new HttpRequestMessage(HttpMethod meth, path)
        body |> Option.iter (fun b -> req.Content <- b)

        for (k, v) in headers do
            match k with
            | "Host" -> req.Headers.Host <- v
            | "Content-Type" when not (isNull req.Content) -> req.Content.Headers.ContentType <- MediaTypeHeaderValue.Parse v
            | _ -> req.Headers.TryAddWithoutValidation(k, v) |> ignore

        let! resp = c.Http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return { Code = int resp.StatusCode; Text = text }, resp
    }

let json (text: string) = new StringContent(text, Encoding.UTF8, "application/json") :> HttpContent
let bearer (t: string) = "Authorization", "Bearer " + t

/// A platform of its own whose log lines are collected.
type Logged(engine: string, opts: PlatformOptions -> PlatformOptions) =
    let lines = ConcurrentQueue<string>()
    let own = new Own(engine, fun o -> opts { o with Log = Some lines.Enqueue })
    member _.P = own.P
    member _.C = own.C
    member _.Dir = own.Dir
    member _.Lines = List.ofSeq lines
    member _.Log = String.Join("\n", lines)

    interface IAsyncDisposable with
        member _.DisposeAsync() = (own :> IAsyncDisposable).DisposeAsync()

let port (url: string) = Uri(url).Port.ToString(Globalization.CultureInfo.InvariantCulture)

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: a foreign Host is refused on every route (DNS rebinding); loopback names and --allowed-host names pass`` (engine: string) =
    task {
        use fx = new Logged(engine, fun o -> { o with AllowedHosts = [ "team.example.com" ] })
        let c, admin = fx.C, fx.P.AdminToken
        let p = port fx.P.Url

        for path in [ "/health"; "/workspaces"; "/"; "/canvas/canvas.js" ] do
            let! a, _ = raw c "GET" path [ "Host", "evil.example:" + p; bearer admin ] None
            Assert.Equal(421, a.Code)
            Assert.Contains("--allowed-host", a.Error)

        let! post, _ = raw c "POST" "/workspaces" [ "Host", "rebind.attacker.test"; bearer admin ] (Some(json """{"name":"x"}"""))
        Assert.Equal(421, post.Code)

        for host in [ "127.0.0.1:" + p; "localhost:" + p; "LOCALHOST:" + p; "team.example.com"; "team.example.com:443" ] do
            let! a, _ = raw c "GET" "/health" [ "Host", host ] None
            Assert.True((a.Code = 200), $"Host {host}: {a.Code} {a.Text}")

        Assert.Contains("refused GET /health", fx.Log)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: a state change with a foreign Origin is refused; the platform's own origin (what molecule-mcp sends) passes`` (engine: string) =
    task {
        use fx = new Logged(engine, fun o -> { o with AllowedHosts = [ "team.example.com" ] })
        let c, admin = fx.C, fx.P.AdminToken
        let own = fx.P.Url // http://127.0.0.1:PORT, exactly molecule-mcp's Origin for PLATFORM_URL=<that>

        for origin in [ "http://evil.example"; "null"; "http://127.0.0.1:1"; "http://localhost:" + port own; "file://x" ] do
            let! a, _ = raw c "POST" "/workspaces" [ "Origin", origin; bearer admin ] (Some(json """{"name":"x"}"""))
            Assert.True((a.Code = 403), $"Origin {origin}: {a.Code} {a.Text}")
            Assert.Equal(Guard.foreignOrigin, a.Error)

        let! del, _ = raw c "DELETE" $"/workspaces/{Guid.NewGuid()}" [ "Origin", "http://evil.example"; bearer admin ] None
        Assert.Equal(403, del.Code)

        for origin in [ own; "https://team.example.com"; "http://team.example.com:8443" ] do
            let! a, _ = raw c "POST" "/workspaces" [ "Origin", origin; bearer admin ] (Some(json """{"name":"ok"}"""))
            Assert.True((a.Code = 201), $"Origin {origin}: {a.Code} {a.Text}")

        // reads are not state changes: a foreign Origin on GET still needs (and gets) the bearer check only
        let! read, _ = raw c "GET" "/workspaces" [ "Origin", "http://evil.example" ] None
        Assert.Equal(401, read.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: JSON routes refuse text/plain, form posts and bodies without a content type; JSON with a charset passes`` (engine: string) =
    task {
        use fx = new Logged(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! ws = createWs c admin "typed" None []

        let plain (ctype: string) =
            let b = new StringContent("""{"name":"x"}""", Encoding.UTF8)
            b.Headers.ContentType <- MediaTypeHeaderValue.Parse ctype
            b :> HttpContent

        for ctype in [ "text/plain"; "application/x-www-form-urlencoded"; "multipart/form-data; boundary=x" ] do
            let! a, _ = raw c "POST" "/workspaces" [ bearer admin ] (Some(plain ctype))
            Assert.True((a.Code = 415), $"{ctype}: {a.Code} {a.Text}")
            Assert.Equal(Guard.notJson, a.Error)

        let noType = new ByteArrayContent(Encoding.UTF8.GetBytes """{"message":"hi"}""")
        let! untyped, _ = raw c "POST" $"/workspaces/{ws.Id}/notify" [ bearer ws.Token ] (Some noType)
        Assert.Equal(415, untyped.Code)

        let! register, _ =
            raw c "POST" "/registry/register" [ bearer ws.Token ] (Some(plain "text/plain"))

        Assert.Equal(415, register.Code)

        for ctype in [ "application/json; charset=utf-8"; "application/merge-patch+json" ] do
            let! a, _ = raw c "PATCH" $"/workspaces/{ws.Id}" [ bearer admin ] (Some(plain ctype))
            Assert.True((a.Code = 200), $"{ctype}: {a.Code} {a.Text}")

        // no body and no content type: nothing to refuse (the route answers for itself)
        let! sweep, _ = raw c "POST" "/admin/sweep" [ bearer admin ] None
        Assert.Equal(200, sweep.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: registration of an unknown id is refused naming workspace create, and logged; --open-registration restores it with a warning`` (engine: string) =
    task {
        use closed = new Logged(engine, id)
        let unknown = Guid.NewGuid().ToString()
        let! a = closed.C.Send("POST", "/registry/register", registerBody unknown)
        Assert.Equal(401, a.Code)
        Assert.Equal(Auth.unknownWorkspace, a.Error)
        Assert.Contains("molecule-platform workspace create", a.Error)
        let! list = closed.C.Send("GET", "/workspaces", token = closed.P.AdminToken)
        Assert.Equal(0, list.Json.AsArray().Count)
        let line = closed.Lines |> List.find (fun l -> l.StartsWith "registration refused")
        Assert.Contains("workspace " + unknown.Replace("-", "").Substring(0, 8), line)
        Assert.Contains("127.0.0.1", line)
        // an admin-created workspace keeps working with its token
        let! ws = createWs closed.C closed.P.AdminToken "made by the admin" None []
        let! ok = closed.C.Send("POST", "/registry/register", registerBody ws.Id, ws.Token)
        Assert.Equal(200, ok.Code)

        use openReg = new Logged(engine, fun o -> { o with OpenRegistration = true })
        Assert.Contains(Notices.openRegistration, openReg.Lines)
        let! first = openReg.C.Send("POST", "/registry/register", registerBody unknown)
        Assert.Equal(200, first.Code)
        Assert.Equal(43, (str first.Json "auth_token").Length)
        let! again = openReg.C.Send("POST", "/registry/register", registerBody unknown)
        Assert.Equal(401, again.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: a revoked token is refused on register, heartbeat, activity, a2a and the event stream`` (engine: string) =
    task {
        use fx = new Logged(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "lead" None []
        let! ws = createWs c admin "revoked" (Some lead.Id) []
        let! tokens = c.Send("GET", $"/workspaces/{ws.Id}/tokens", token = admin)
        let tokenId = str (tokens.Json["tokens"].AsArray()[0]) "id"
        let! revoke = c.Send("DELETE", $"/workspaces/{ws.Id}/tokens/{tokenId}", token = admin)
        Assert.Equal(200, revoke.Code)

        let attempts =
            [ "POST", "/registry/register", Some(registerBody ws.Id)
              "POST", "/registry/heartbeat", Some(heartbeatBody ws.Id)
              "GET", $"/workspaces/{ws.Id}/activity", None
              "POST", $"/workspaces/{lead.Id}/a2a", Some(messageBody "hi")
              "GET", $"/workspaces/{ws.Id}/events/stream", None ]

        for (m, path, body) in attempts do
            let! a =
                match body with
                | Some b -> c.Send(m, path, b, ws.Token, ws.Id)
                | None -> c.Send(m, path, token = ws.Token)

            Assert.True((a.Code = 401), $"{m} {path}: {a.Code} {a.Text}")

        Assert.Contains("registration refused for revoked (", fx.Log)
        Assert.Contains($"token {tokenId} of revoked (", fx.Log)
    }

/// The body of a memory of `n` bytes.
let memoryOf (n: int) = "{\"content\":\"" + String('m', n) + "\",\"scope\":\"LOCAL\"}"

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: a body over the limit gets the platform's 413 JSON even while the client is still sending (10 MB memory, 2 MB notify, chunked, 30 MB upload)`` (engine: string) =
    task {
        use fx = new Logged(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! ws = createWs c admin "big" None []

        let! memory = c.Send("POST", $"/workspaces/{ws.Id}/memories", memoryOf 10_000_000, ws.Token)
        Assert.Equal(413, memory.Code)
        Assert.Equal(Server.bodyTooLarge, memory.Error)

        let! notify = c.Send("POST", $"/workspaces/{ws.Id}/notify", "{\"message\":\"" + String('n', 2_000_000) + "\"}", ws.Token)
        Assert.Equal(413, notify.Code)

        // no Content-Length: the platform reads to the end, drops the excess and answers 413
        let chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(memoryOf 10_000_000)))
        chunked.Headers.ContentType <- MediaTypeHeaderValue "application/json"
        let req = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{ws.Id}/memories", Content = chunked)
        req.Headers.TransferEncodingChunked <- Nullable true
        req.Headers.Authorization <- AuthenticationHeaderValue("Bearer", ws.Token)
        let! resp = c.Http.SendAsync req
        Assert.Equal(413, int resp.StatusCode)
        let! text = resp.Content.ReadAsStringAsync()
        Assert.Contains(Server.bodyTooLarge, text)

        let form = new MultipartFormDataContent()
        form.Add(new ByteArrayContent(Array.zeroCreate 30_000_000), "files", "big.bin")
        let up = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{ws.Id}/chat/uploads", Content = form)
        up.Headers.Authorization <- AuthenticationHeaderValue("Bearer", ws.Token)
        let! upResp = c.Http.SendAsync up
        Assert.Equal(413, int upResp.StatusCode)
        let! upText = upResp.Content.ReadAsStringAsync()
        Assert.Contains(Server.uploadTooLarge, upText)

        // just under the limit still works, and the connection is still good
        let! small = c.Send("POST", $"/workspaces/{ws.Id}/memories", memoryOf 1_000_000, ws.Token)
        Assert.Equal(201, small.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: per-token rate limits on registration, A2A sends and notify answer 429 with Retry-After`` (engine: string) =
    task {
        let limits: RateLimit.Limits =
            { RateLimit.Limits.defaults with
                Register = { PerMinute = 2 }
                A2a = { PerMinute = 3 }
                Notify = { PerMinute = 2 } }

        use fx = new Logged(engine, fun o -> { o with RateLimits = limits })
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "lead" None []
        let! ws = createWs c admin "chatty" (Some lead.Id) []

        let check (what: string) (send: unit -> Task<Answer * HttpResponseMessage>) (allowed: int) =
            task {
                for i in 1..allowed do
                    let! a, _ = send ()
                    Assert.True((a.Code < 400), $"{what} #{i}: {a.Code} {a.Text}")

                let! refused, resp = send ()
                Assert.Equal(429, refused.Code)
                Assert.Contains("rate limit exceeded", refused.Error)
                let retry = int (resp.Headers.RetryAfter.Delta.Value.TotalSeconds)
                Assert.InRange(retry, 1, 60)
            }

        do! check "register" (fun () -> raw c "POST" "/registry/register" [ bearer ws.Token ] (Some(json (registerBody ws.Id)))) 2
        do! check "a2a" (fun () -> raw c "POST" $"/workspaces/{lead.Id}/a2a" [ bearer ws.Token; "X-Workspace-ID", ws.Id ] (Some(json (messageBody "hi")))) 3
        do! check "notify" (fun () -> raw c "POST" $"/workspaces/{ws.Id}/notify" [ bearer ws.Token ] (Some(json """{"message":"m"}"""))) 2
        // per token: the lead's own token is not limited by the child's use
        let! other = c.Send("POST", "/registry/register", registerBody lead.Id, lead.Token)
        Assert.Equal(200, other.Code)
        // the operator (canvas, CLI: the admin token) is not limited
        for _ in 1..5 do
            let! a = c.Send("POST", $"/workspaces/{ws.Id}/a2a", messageBody "from the canvas", admin)
            Assert.Equal(200, a.Code)
        Assert.Contains("rate limit: registrations from 127.0.0.1 refused", fx.Log)
    }

/// The routes only the admin token drives, and the routes anyone may read. Every other route is an agent's.
let private adminRoutes =
    set
        [ "POST /workspaces"; "GET /workspaces"; "PATCH /workspaces/{id}"; "DELETE /workspaces/{id}"
          "POST /workspaces/{id}/tokens"; "GET /workspaces/{id}/tokens"; "DELETE /workspaces/{id}/tokens/{tokenId}"
          "PATCH /workspaces/{id}/abilities"; "GET /admin/workspaces"; "GET /admin/feed"; "GET /admin/delegations"
          "GET /admin/memories"; "POST /admin/faults"; "DELETE /admin/faults"; "POST /admin/faults/cut-streams"
          "GET /admin/requests"; "GET /admin/inbox"; "GET /admin/inbox/{requestId}"; "POST /admin/inbox/{requestId}/respond"
          "POST /admin/inbox/{requestId}/messages"; "GET /admin/approvals"; "POST /admin/approvals/{approvalId}/decide"
          "POST /admin/sweep"; "POST /admin/retention"; "GET /events"; "POST /admin/stream-ticket"
          "GET /metrics" ]

let private openRoutes = set [ "GET /health"; "GET /ready"; "GET /"; "HEAD /"; "GET /canvas/{file}"; "HEAD /canvas/{file}"; "* {*path:nonfile}" ]

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: every route an agent token can drive is limited (a bucket per group, or the streams cap); the rest refuse it`` (engine: string) =
    task {
        use fx = new Logged(engine, fun o -> { o with EnableFaults = true })
        let c, admin = fx.C, fx.P.AdminToken
        let! ws = createWs c admin "agent" None []

        for (m, pattern) in fx.P.Routes do
            let route = $"{m} {pattern}"

            if adminRoutes.Contains route then
                // the admin's routes refuse the workspace token
                let path = pattern.Replace("{id}", ws.Id).Replace("{tokenId}", string (Guid.NewGuid()))
                let! a, _ = raw c m path [ bearer ws.Token ] (if m = "GET" then None else Some(json "{}"))
                Assert.True((a.Code = 401), $"{route} with a workspace token gave {a.Code}: {a.Text}")
            elif not (openRoutes.Contains route) && pattern <> RateLimit.streamRoute then
                Assert.True((RateLimit.groupOf m pattern).IsSome, $"{route} is an agent's route without a rate limit")
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: delegate shares the A2A budget; memories, activity, registry, broadcast, files, upload bytes and open streams are limited per token, with Retry-After`` (engine: string) =
    task {
        let limits: RateLimit.Limits =
            { RateLimit.Limits.defaults with
                Registry = { PerMinute = 2 }
                A2a = { PerMinute = 3 }
                Activity = { PerMinute = 2 }
                Memories = { PerMinute = 2 }
                Broadcast = { PerMinute = 1 }
                Files = { PerMinute = 2 }
                Requests = { PerMinute = 2 }
                UploadBytes = { PerMinute = 2000 }
                Streams = 2 }

        use fx = new Logged(engine, fun o -> { o with RateLimits = limits })
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "lead" None []
        let! ws = createWs c admin "busy" (Some lead.Id) []
        let! peer = createWs c admin "peer" (Some lead.Id) []
        let auth = [ bearer ws.Token ]

        let refused (what: string) (a: Answer, resp: HttpResponseMessage) (text: string) =
            Assert.True((a.Code = 429), $"{what}: {a.Code} {a.Text}")
            Assert.Contains(text, a.Error)
            Assert.InRange(int resp.Headers.RetryAfter.Delta.Value.TotalSeconds, 1, 60)

        let fine (what: string) (a: Answer, _: HttpResponseMessage) = Assert.True((a.Code < 400), $"{what}: {a.Code} {a.Text}")

        // A2A sends and delegations: one budget (both deliver to a target's inbox)
        let send () = raw c "POST" $"/workspaces/{peer.Id}/a2a" (auth @ [ "X-Workspace-ID", ws.Id ]) (Some(json (messageBody "hi")))
        let delegation () = raw c "POST" $"/workspaces/{ws.Id}/delegate" auth (Some(json ("{\"target_id\":\"" + peer.Id + "\",\"task\":\"t\"}")))
        let! r = send () in fine "a2a 1" r
        let! r = send () in fine "a2a 2" r
        let! r = delegation () in fine "delegate 1" r
        let! r = delegation () in refused "delegate 2" r "at most 3 A2A sends a minute per token"
        do! fx.P.IdleAsync()
        // memories: writes and recalls
        let! r = raw c "POST" $"/workspaces/{ws.Id}/memories" auth (Some(json """{"content":"c","scope":"LOCAL"}""")) in fine "memory write" r
        let! r = raw c "GET" $"/workspaces/{ws.Id}/memories" auth None in fine "recall" r
        let! r = raw c "GET" $"/workspaces/{ws.Id}/memories" auth None in refused "recall 2" r "memory calls"
        // activity: reads, acks, the mail summary
        let! r = raw c "GET" $"/workspaces/{ws.Id}/activity" auth None in fine "activity" r
        let! r = raw c "POST" $"/workspaces/{ws.Id}/activity/ack" auth (Some(json """{"acked_seq":0}""")) in fine "ack" r
        let! r = raw c "GET" $"/workspaces/{ws.Id}/mail/summary" auth None in refused "mail summary" r "activity calls"
        // registry calls
        let! r = raw c "POST" "/registry/heartbeat" auth (Some(json (heartbeatBody ws.Id))) in fine "heartbeat" r
        let! r = raw c "GET" $"/workspaces/{ws.Id}" auth None in fine "workspace" r
        let! r = raw c "GET" $"/registry/{ws.Id}/peers" (auth @ [ "X-Workspace-ID", ws.Id ]) None in refused "peers" r "registry calls"
        // broadcasts
        let! _ = c.Send("PATCH", $"/workspaces/{ws.Id}/abilities", """{"broadcast_enabled":true}""", admin)
        let! r = raw c "POST" $"/workspaces/{ws.Id}/broadcast" auth (Some(json """{"message":"all hands"}""")) in fine "broadcast" r
        let! r = raw c "POST" $"/workspaces/{ws.Id}/broadcast" auth (Some(json """{"message":"again"}""")) in refused "broadcast 2" r "broadcasts"

        // requests and approvals: one budget
        let! r = raw c "POST" $"/workspaces/{ws.Id}/requests" auth (Some(json """{"kind":"task","recipient_type":"user","title":"t"}""")) in fine "request" r
        let! r = raw c "GET" $"/workspaces/{ws.Id}/approvals" auth None in fine "approvals" r
        let! r = raw c "GET" $"/workspaces/{ws.Id}/requests/inbox" auth None in refused "inbox" r "requests-inbox calls"

        // uploads: their bytes from a budget of their own, the requests from the files budget
        let upload (n: int) =
            let form = new MultipartFormDataContent()
            form.Add(new ByteArrayContent(Array.zeroCreate n), "files", "blob.bin")
            raw c "POST" $"/workspaces/{ws.Id}/chat/uploads" auth (Some(form :> HttpContent))

        let! r = upload 1200 in fine "upload 1" r
        let! r = upload 1200 in refused "upload 2" r "2000 bytes of uploads a minute per token"
        let! r = raw c "GET" $"/workspaces/{ws.Id}/chat/uploads/nothing.txt" auth None in refused "download" r "file requests"

        // open event streams per token
        let url = fx.P.Url
        let! first = openStream url ws.Id ws.Token
        let! second = openStream url ws.Id ws.Token

        match! openStreamWhen url ws.Id (Some ws.Token) Task.CompletedTask with
        | Ok _ -> failwith "a third stream was let in"
        | Error a ->
            Assert.Equal(429, a.Code)
            Assert.Contains("too many open event streams: at most 2 per token", a.Error)

        // another token has its own streams; a closed stream frees its place
        use! _other = openStream url lead.Id lead.Token
        (first :> IDisposable).Dispose()
        let mutable reopened = None
        let deadline = DateTime.UtcNow.AddSeconds 5.0

        while reopened.IsNone && DateTime.UtcNow < deadline do
            match! openStreamWhen url ws.Id (Some ws.Token) Task.CompletedTask with
            | Ok s -> reopened <- Some s
            | Error _ -> do! Task.Delay 50

        Assert.True(reopened.IsSome, "a closed stream did not free its place")
        reopened |> Option.iter (fun s -> (s :> IDisposable).Dispose())
        (second :> IDisposable).Dispose()

        // the operator (canvas, CLI) is never limited
        for _ in 1..4 do
            let! a = c.Send("GET", $"/workspaces/{ws.Id}/activity", token = admin)
            Assert.Equal(200, a.Code)

        for what in [ "A2A sends"; "memory calls"; "activity calls"; "registry calls"; "broadcasts"; "upload bytes"; "file requests"; "requests-inbox calls"; "event streams" ] do
            Assert.Contains($"rate limit: {what} from 127.0.0.1 refused", fx.Log)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: secrets at rest — no workspace token and no inbound secret in any file of the data directory`` (engine: string) =
    task {
        use fx = new Logged(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! ws = createWs c admin "keeper" None []
        let! reg = c.Send("POST", "/registry/register", registerBody ws.Id, ws.Token)
        let secret = str reg.Json "platform_inbound_secret"
        let! hb = c.Send("POST", "/registry/heartbeat", heartbeatBody ws.Id, ws.Token)
        Assert.Equal(secret, str hb.Json "platform_inbound_secret") // the same secret on every heartbeat
        let! minted = c.Send("POST", $"/workspaces/{ws.Id}/tokens", "{}", admin)
        let second = str minted.Json "auth_token"

        let scan () =
            for f in Directory.EnumerateFiles(fx.Dir, "*", SearchOption.AllDirectories) do
                if Path.GetFileName f <> "platform.lock" then
                    let text = Encoding.Latin1.GetString(File.ReadAllBytes f)

                    for (what, value) in [ "the inbound secret", secret; "a workspace token", ws.Token; "a minted token", second ] do
                        Assert.False(text.Contains value, $"{Path.GetFileName f} holds {what}")

        scan ()
        do! fx.P.StopAsync()
        scan ()
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: without a token an attacker reads only /health, the canvas assets and public cards, and changes nothing (every route)`` (engine: string) =
    task {
        use fx = new Logged(engine, fun o -> { o with EnableFaults = true })
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "lead" None []
        let! ws = createWs c admin "target" (Some lead.Id) []
        let! _ = c.Send("POST", "/registry/register", registerBody ws.Id, ws.Token)
        let routes = fx.P.Routes
        Assert.True(routes.Length >= 30, $"only {routes.Length} routes")

        let fill (pattern: string) =
            pattern.Replace("{id}", ws.Id).Replace("{tokenId}", string (Guid.NewGuid())).Replace("{file}", "x.txt").Replace("{*path:nonfile}", "anything")

        let publicReads = set [ "/health"; "/ready"; "/workspaces/{id}"; "/"; "/canvas/{file}"; "{*path:nonfile}" ]

        for (m, pattern) in routes do
            let path = fill pattern

            for body in [ None; Some(json "{}") ] do
                let read = m = "GET" || m = "HEAD"
                let! a, _ = raw c m path [ "X-Workspace-ID", ws.Id ] (if read then None else body)

                if read && publicReads.Contains pattern then
                    Assert.True((a.Code = 200 || a.Code = 404), $"{m} {pattern}: {a.Code}")
                else
                    Assert.True((a.Code = 400 || a.Code = 401 || a.Code = 404), $"{m} {pattern} without a token gave {a.Code}: {a.Text}")

        // the public card says who and whether up, not where or what it is doing
        let! card = c.Send("GET", $"/workspaces/{ws.Id}")
        Assert.Equal("target", str card.Json "name")
        Assert.Equal("online", str card.Json "status")

        for hidden in [ "url"; "last_heartbeat_at"; "uptime_seconds"; "active_tasks"; "last_error_rate" ] do
            Assert.False(card.Json.AsObject().ContainsKey hidden, $"the public card shows {hidden}")

        let! full = c.Send("GET", $"/workspaces/{ws.Id}", token = ws.Token)
        Assert.True(full.Json.AsObject().ContainsKey "last_heartbeat_at")
        // nothing changed: still one child, online, with its token
        let! still = c.Send("GET", $"/workspaces/{ws.Id}", token = admin)
        Assert.Equal("online", str still.Json "status")
        Assert.Equal("target", str still.Json "name")
    }

let modes (dir: string) =
    [ yield dir, DataDir.modeOf dir
      for f in Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories) -> f, DataDir.modeOf f ]

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: the data directory is 0700 and every file in it 0600 (database, WAL, SHM, tokens, key), also an old open one; uploads are in the store`` (engine: string) =
    task {
        if not (OperatingSystem.IsWindows()) then
            let dir = tempDir ()
            let start () = Server.start (options (named engine) dir id)
            let! p = start ()
            use c = new Client(p.Url)
            let! ws = createWs c p.AdminToken "files" None []
            let form = new MultipartFormDataContent()
            form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes "notes"), "files", "notes.txt")
            let up = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{ws.Id}/chat/uploads", Content = form)
            up.Headers.Authorization <- AuthenticationHeaderValue("Bearer", ws.Token)
            let! upResp = c.Http.SendAsync up
            Assert.Equal(200, int upResp.StatusCode)

            let check (label: string) =
                let all = modes dir
                let names = all |> List.map (fun (f, _) -> Path.GetFileName f)

                let database = if engine = "sqlite" then [ "platform.db"; "platform.db-wal"; "platform.db-shm" ] else []

                for expected in database @ [ "admin_token"; "secret_key" ] do
                    Assert.True(List.contains expected names, $"{label}: no {expected} in {names}")

                Assert.False(List.contains "uploads" names, $"{label}: uploads on disk: {names}")

                for (f, m) in all do
                    let want = if Directory.Exists f then "700" else "600"
                    Assert.True((m = want), $"{label}: {f} has mode {m}, expected {want}")

            check "running"
            do! p.StopAsync()

            // an upgrade: a data dir an older platform left group/world readable
            for (f, _) in modes dir do
                File.SetUnixFileMode(f, (if Directory.Exists f then enum<UnixFileMode> 0o755 else enum<UnixFileMode> 0o644))

            let! again = start ()
            check "after upgrade"
            do! again.StopAsync()
            Directory.Delete(dir, true)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: start warnings for a non-loopback address, open registration and fault routes; loopback says nothing`` (engine: string) =
    task {
        use quiet = new Logged(engine, id)
        Assert.Empty(quiet.Lines |> List.filter (fun l -> l.StartsWith "warning:"))
        use loud = new Logged(engine, fun o -> { o with Host = "0.0.0.0"; OpenRegistration = true; EnableFaults = true })
        let warnings = loud.Lines |> List.filter (fun l -> l.StartsWith "warning:")
        Assert.Equal(3, warnings.Length)
        Assert.Contains("0.0.0.0", warnings[0])
        Assert.Contains("reverse proxy with TLS", warnings[0])
        Assert.Contains("public card", warnings[0])
        Assert.Equal(Notices.faults, warnings[2])
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: the platform log names workspaces (name and short id) and never shows a token`` (engine: string) =
    task {
        use fx = new Logged(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "Lead" None []
        let! res = createWs c admin "Researcher" (Some lead.Id) []
        let! _ = c.Send("POST", "/registry/register", registerBody res.Id, res.Token)
        let! _ = c.Send("POST", $"/workspaces/{res.Id}/a2a", messageBody "hello", lead.Token, lead.Id)
        let! minted = c.Send("POST", $"/workspaces/{res.Id}/tokens", "{}", admin)
        let short (id: string) = id.Replace("-", "").Substring(0, 8)
        let log = fx.Log
        Assert.Contains($"Researcher ({short res.Id}) was created", log)
        Assert.Contains($"Researcher ({short res.Id}) is online", log)
        Assert.Contains($"Lead ({short lead.Id}) → Researcher ({short res.Id})", log)
        Assert.DoesNotContain("hello", log)

        for secret in [ admin; lead.Token; res.Token; str minted.Json "auth_token" ] do
            Assert.DoesNotContain(secret, log)

        // one entry, one line: a newline in a name or a (decoded) path cannot forge a log line
        let! _ = createWs c admin "Evil\nregistration refused for nobody" None []
        let! _ = raw c "GET" "/health%0Aforged" [ "Host", "evil.example" ] None
        Assert.DoesNotContain(fx.Lines, fun l -> l.Contains '\n' || l.StartsWith "registration refused for nobody" || l.StartsWith "forged")
        Assert.Contains("Evil?registration refused for nobody", fx.Log)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``doors: the newer routes — abilities only for the admin; cards, broadcasts, notify and pending uploads only with the workspace's own token`` (engine: string) =
    task {
        use fx = new Logged(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "lead" None []
        let! a = createWs c admin "a" (Some lead.Id) []
        let! b = createWs c admin "b" (Some lead.Id) []
        let! _ = c.Send("POST", "/registry/register", registerBody a.Id, a.Token)
        let refused (x: Answer) = x.Code = 401 || x.Code = 403 || x.Code = 404

        // abilities: the admin's alone
        let! byWs = c.Send("PATCH", $"/workspaces/{a.Id}/abilities", """{"broadcast_enabled":true}""", a.Token)
        Assert.True(refused byWs, $"PATCH abilities with the workspace's token: {byWs.Code} {byWs.Text}")
        let! nothing = c.Send("PATCH", $"/workspaces/{a.Id}/abilities", "{}", admin)
        Assert.Equal(400, nothing.Code)
        Assert.Contains("at least one ability field required", nothing.Text)

        // the card: only with its own token
        let card = "{\"workspace_id\":\"" + a.Id + "\",\"agent_card\":{\"name\":\"A v2\"}}"
        let! foreign = c.Send("POST", "/registry/update-card", card, b.Token)
        Assert.Equal(401, foreign.Code)
        let! own = c.Send("POST", "/registry/update-card", card, a.Token)
        Assert.Equal(200, own.Code)
        Assert.Equal("updated", str own.Json "status")

        // broadcast: not with another workspace's token; with its own, refused until the admin grants the ability
        let! asA = c.Send("POST", $"/workspaces/{a.Id}/broadcast", """{"message":"hi"}""", b.Token)
        Assert.True(refused asA, $"broadcast with another token: {asA.Code}")
        let! disabled = c.Send("POST", $"/workspaces/{a.Id}/broadcast", """{"message":"hi"}""", a.Token)
        Assert.Equal(403, disabled.Code)
        Assert.Equal("broadcast_disabled", str disabled.Json "error")
        let! _ = c.Send("PATCH", $"/workspaces/{a.Id}/abilities", """{"broadcast_enabled":true}""", admin)
        let! sent = c.Send("POST", $"/workspaces/{a.Id}/broadcast", """{"message":"hi"}""", a.Token)
        Assert.Equal(200, sent.Code)
        Assert.Equal("2", sent.Json["delivered"].ToJsonString())

        // the talk_to_user gate
        let! _ = c.Send("PATCH", $"/workspaces/{a.Id}/abilities", """{"talk_to_user_enabled":false}""", admin)
        let! gated = c.Send("POST", $"/workspaces/{a.Id}/notify", """{"message":"hello"}""", a.Token)
        Assert.Equal(403, gated.Code)
        Assert.Equal("talk_to_user_disabled", str gated.Json "error")

        // a canvas upload to a poll-mode workspace waits as a pending file that only that workspace can read and ack
        use form = new MultipartFormDataContent()
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes "data"), "files", "a.txt")
        let! up, _ = raw c "POST" $"/workspaces/{a.Id}/chat/uploads" [ bearer admin ] (Some(form :> HttpContent))
        Assert.Equal(200, up.Code)
        let files = up.Json["files"].AsArray()
        let uri = str files[0] "uri"
        let fileId = uri.Substring(uri.LastIndexOf '/' + 1)
        let content = $"/workspaces/{a.Id}/pending-uploads/{fileId}/content"
        let! byB = c.Send("GET", content, token = b.Token)
        Assert.True(refused byB, $"another workspace read the pending file: {byB.Code}")
        let! ackByB = c.Send("POST", $"/workspaces/{a.Id}/pending-uploads/{fileId}/ack", "{}", b.Token)
        Assert.True(refused ackByB, $"another workspace acked the pending file: {ackByB.Code}")
        let! mine = c.Send("GET", content, token = a.Token)
        Assert.Equal(200, mine.Code)
        Assert.Equal("data", mine.Text)
        let! acked = c.Send("POST", $"/workspaces/{a.Id}/pending-uploads/{fileId}/ack", "{}", a.Token)
        Assert.Equal(200, acked.Code)
        let! gone = c.Send("GET", content, token = a.Token)
        Assert.Equal(404, gone.Code)
        let! rows = c.Send("GET", $"/workspaces/{a.Id}/activity?limit=50", token = a.Token)
        Assert.Contains("chat_upload_receive", rows.Text)
    }
