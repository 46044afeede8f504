/// HTTP tests of the delivery routes on the real platform (127.0.0.1, port 0): the activity feed's parameters,
/// the ack floor, the mail summary, messageId idempotency, retention, the schema migration and the fault switch.
module Molecule.Tests.Platform.DeliveryHttpTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
module Json = Molecule.Protocol.Json

/// A message/send body with a chosen messageId and optional extra parts (JSON text).
let messageWithId (text: string) (messageId: string) (extraParts: string) =
    let more = if extraParts = "" then "" else "," + extraParts

    "{\"jsonrpc\":\"2.0\",\"id\":\"" + string (Guid.NewGuid()) + "\",\"method\":\"message/send\",\"params\":{\"message\":{\"role\":\"user\",\"messageId\":\""
    + messageId
    + "\",\"parts\":[{\"kind\":\"text\",\"text\":\""
    + text
    + "\"}"
    + more
    + "]}}}"

let rows (a: Answer) = a.Json.AsArray() |> List.ofSeq
let idsOf (a: Answer) = rows a |> List.map (fun r -> str r "id")

/// A platform of its own on an engine (clock, options) in a fresh data dir, with a client.
type Own(engine: string, opts: PlatformOptions -> PlatformOptions) =
    let dir = tempDir ()
    let p = (Server.start (options (named engine) dir opts)).Result
    let c = new Client(p.Url)
    member _.P = p
    member _.C = c
    member _.Dir = dir

    interface IAsyncDisposable with
        member _.DisposeAsync() =
            ValueTask(
                task {
                    (c :> IDisposable).Dispose()
                    do! p.StopAsync()

                    try
                        Directory.Delete(dir, true)
                    with :? IOException ->
                        ()
                }
            )

[<AbstractClass>]
type Delivery<'E when 'E :> IEngine and 'E: (new: unit -> 'E)>(fx: PlatformFixture<'E>) =
    let c = fx.Client
    let admin = fx.Admin

    let team () =
        task {
            let! lead = createWs c admin "lead" None []
            let! a = createWs c admin "alice" (Some lead.Id) []
            let! b = createWs c admin "bob" (Some lead.Id) []
            return lead, a, b
        }

    interface IClassFixture<PlatformFixture<'E>>

    [<Fact>]
    member _.``activity: parameter errors carry the spec's texts; a bad cursor's 410 wins over a bad source``() =
        task {
            let! _, a, _ = team ()
            let get (qs: string) = c.Send("GET", $"/workspaces/{a.Id}/activity?{qs}", token = a.Token)
            let! peer = get "peer_id=not-a-uuid"
            Assert.Equal(400, peer.Code)
            Assert.Equal("""{"error":"peer_id must be a UUID"}""", peer.Text)
            let! before = get "before_ts=2026-05-01"
            Assert.Equal(400, before.Code)
            Assert.Equal("""{"error":"before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"}""", before.Text)
            let! secs = get "since_secs=0"
            Assert.Equal("""{"error":"since_secs must be a positive integer"}""", secs.Text)
            let! gone = get $"since_id={Guid.NewGuid()}&source=robot"
            Assert.Equal(410, gone.Code)
            Assert.Equal("""{"error":"since_id cursor not found (row may have been pruned or belongs to a different workspace); omit since_id to reset"}""", gone.Text)
            let! source = get "source=robot"
            Assert.Equal("""{"error":"source must be 'canvas' or 'agent'"}""", source.Text)
            let! fine = get "before_ts=2026-05-01T00:00:00.5%2B02:00&limit=0"
            Assert.Equal(200, fine.Code)
            Assert.Equal("[]", fine.Text)
        }

    [<Fact>]
    member _.``activity: newest first, oldest first after since_id, strict before_ts, peer_id, limit, seq on every row``() =
        task {
            let! _, a, b = team ()
            let! info = c.Send("GET", "/workspaces/" + a.Id)
            let! lead2 = createWs c admin "carol" (Some(str info.Json "parent_id")) []

            for i in 1..3 do
                let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody $"from alice {i}", a.Token, a.Id)
                Assert.Equal(200, r.Code)

            let! fromCarol = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "from carol", lead2.Token, lead2.Id)
            Assert.Equal(200, fromCarol.Code)
            let! canvas = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "from the canvas", admin)
            Assert.Equal(200, canvas.Code)
            let! all = c.Send("GET", $"/workspaces/{b.Id}/activity", token = b.Token)
            let all = rows all
            Assert.Equal(5, all.Length)
            let seqs = all |> List.map (fun r -> r["seq"].GetValue<int64>())
            Assert.Equal<int64 list>(List.sortDescending seqs, seqs) // newest first
            Assert.Equal("from the canvas", at all.Head "request_body.params.message.parts.0.text")
            let oldest = List.last all
            let cursor = str oldest "id"
            let! after = c.Send("GET", $"/workspaces/{b.Id}/activity?since_id={cursor}&limit=2", token = b.Token)
            Assert.Equal<string list>([ str all[3] "id"; str all[2] "id" ], idsOf after) // oldest first
            let! byPeer = c.Send("GET", $"/workspaces/{b.Id}/activity?peer_id={a.Id}", token = b.Token)
            Assert.Equal(3, (rows byPeer).Length)
            Assert.True(rows byPeer |> List.forall (fun r -> str r "source_id" = a.Id))
            let! byTarget = c.Send("GET", $"/workspaces/{b.Id}/activity?peer_id={b.Id}", token = b.Token)
            Assert.Equal(5, (rows byTarget).Length) // target_id = b on every inbound row
            // before_ts compares created_at strictly
            let middle = all[2]
            let bound = Uri.EscapeDataString(str middle "created_at")
            let! older = c.Send("GET", $"/workspaces/{b.Id}/activity?before_ts={bound}", token = b.Token)
            let expected = all |> List.filter (fun r -> String.CompareOrdinal(str r "created_at", str middle "created_at") < 0) |> List.map (fun r -> str r "id")
            Assert.Equal<string list>(expected, idsOf older)
            Assert.DoesNotContain(str middle "id", idsOf older)
            let! limited = c.Send("GET", $"/workspaces/{b.Id}/activity?limit=2", token = b.Token)
            Assert.Equal<string list>([ str all[0] "id"; str all[1] "id" ], idsOf limited)
            let keys = [ for kv in all.Head.AsObject() -> kv.Key ]
            Assert.Equal<string list>(List.sortWith (fun x y -> String.CompareOrdinal(x, y)) keys, keys) // sorted, like Go maps
            Assert.DoesNotContain("message_id", keys)
        }

    [<Fact>]
    member _.``activity: include=peer_info adds peer_name, peer_role, agent_card_url and attachments``() =
        task {
            let! lead = createWs c admin "lead" None []
            let! r = c.Send("POST", "/workspaces", $$"""{"name":"reviewer","role":"code review","parent_id":"{{lead.Id}}"}""", admin)
            let a = { Id = str r.Json "id"; Token = str r.Json "auth_token" }
            let! b = createWs c admin "bob" (Some lead.Id) []
            let file = """{"kind":"file","file":{"uri":"http://x/f.png","mimeType":"image/png","name":"f.png"}}"""
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "see file" (string (Guid.NewGuid())) file, a.Token, a.Id)
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "hello from a person", admin)
            use req = new HttpRequestMessage(HttpMethod.Get, $"/workspaces/{b.Id}/activity?include=peer_info")
            req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", b.Token)
            req.Headers.Add("X-Forwarded-Host", "platform.example")
            req.Headers.Add("X-Forwarded-Proto", "https")
            use! resp = c.Http.SendAsync req
            let! text = resp.Content.ReadAsStringAsync()
            let list = (Json.tryParse text).Value.AsArray() |> List.ofSeq
            let canvasRow = list[0]
            let peerRow = list[1]
            Assert.Equal("reviewer", str peerRow "peer_name")
            Assert.Equal("code review", str peerRow "peer_role")
            Assert.Equal($"https://platform.example/registry/discover/{a.Id}", str peerRow "agent_card_url")
            Assert.Equal("""[{"kind":"file","uri":"http://x/f.png","mime_type":"image/png","name":"f.png"}]""", Json.compact peerRow["attachments"])
            Assert.Null(canvasRow["peer_name"])
            Assert.Null(canvasRow["agent_card_url"])
            Assert.Null(canvasRow["attachments"])
            let! plain = c.Send("GET", $"/workspaces/{b.Id}/activity", token = b.Token)
            Assert.DoesNotContain("peer_name", plain.Text)
        }

    [<Fact>]
    member _.``ack: validation texts, GREATEST semantics, ack 0 reads the floor, auth``() =
        task {
            let! _, a, b = team ()
            let ack (body: string) = c.Send("POST", $"/workspaces/{a.Id}/activity/ack", body, a.Token)

            for bad in [ "{}"; """{"acked_seq":null}"""; """{"acked_seq":"3"}"""; """{"acked_seq":2.5}"""; "not json"; "" ] do
                let! r = ack bad
                Assert.Equal(400, r.Code)
                Assert.Equal("""{"error":"acked_seq is required"}""", r.Text)

            let! negative = ack """{"acked_seq":-1}"""
            Assert.Equal("""{"error":"acked_seq must be >= 0"}""", negative.Text)
            let! zero = ack """{"acked_seq":0}"""
            Assert.Equal((200, """{"last_acked_seq":0}"""), (zero.Code, zero.Text))
            let! ten = ack """{"acked_seq":10}"""
            Assert.Equal("""{"last_acked_seq":10}""", ten.Text)
            let! stale = ack """{"acked_seq":4}"""
            Assert.Equal("""{"last_acked_seq":10}""", stale.Text)
            let! read = ack """{"acked_seq":0}"""
            Assert.Equal("""{"last_acked_seq":10}""", read.Text)
            let! more = ack """{"acked_seq":12, "workspace_id":"ignored"}"""
            Assert.Equal("""{"last_acked_seq":12}""", more.Text)
            // b's floor is its own
            let! other = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", """{"acked_seq":0}""", b.Token)
            Assert.Equal("""{"last_acked_seq":0}""", other.Text)
            let! missing = c.Send("POST", $"/workspaces/{a.Id}/activity/ack", """{"acked_seq":1}""")
            Assert.Equal((401, """{"error":"missing workspace auth token"}"""), (missing.Code, missing.Text))
            let! wrong = c.Send("POST", $"/workspaces/{a.Id}/activity/ack", """{"acked_seq":1}""", b.Token)
            Assert.Equal((401, """{"error":"invalid workspace auth token"}"""), (wrong.Code, wrong.Text))
            let! byAdmin = c.Send("POST", $"/workspaces/{a.Id}/activity/ack", """{"acked_seq":1}""", admin)
            Assert.Equal("""{"last_acked_seq":12}""", byAdmin.Text)
            let! unknown = c.Send("POST", $"/workspaces/{Guid.NewGuid()}/activity/ack", """{"acked_seq":1}""", admin)
            Assert.Equal((500, """{"error":"failed to record ack"}"""), (unknown.Code, unknown.Text))
        }

    [<Fact>]
    member _.``mail summary: queued_backlog until the first ack, then unread a2a_receive rows above the floor``() =
        task {
            let! _, a, b = team ()
            let summary (qs: string) = c.Send("GET", $"/workspaces/{b.Id}/mail/summary{qs}", token = b.Token)
            let! before = summary ""
            Assert.Equal(200, before.Code)
            Assert.Equal("queued_backlog", str before.Json "mode")
            Assert.Equal(0, before.Json["received_unread"].GetValue<int>())
            let mids = [ for i in 1..3 -> $"mid-{i}-{Guid.NewGuid()}" ]

            for m in mids do
                let! _ = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "hi" m "", a.Token, a.Id)
                ()

            let! feed = c.Send("GET", $"/workspaces/{b.Id}/activity?since_secs=60", token = b.Token)
            let oldest: JsonNode = rows feed |> List.last
            let firstSeq = oldest.["seq"].GetValue<int64>()
            let! acked = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", $$"""{"acked_seq":{{firstSeq}}}""", b.Token)
            Assert.Equal(200, acked.Code)
            let! after = summary "?overdue_after_seconds=60"
            Assert.Equal("acked_seq", str after.Json "mode")
            Assert.Equal(2, after.Json["received_unread"].GetValue<int>())
            Assert.Equal(0, after.Json["replies_unread"].GetValue<int>())
            Assert.Equal(60, after.Json["overdue_after_seconds"].GetValue<int>())
            let received = after.Json["received"].AsArray() |> List.ofSeq
            Assert.Equal<string list>([ mids[2]; mids[1] ], received |> List.map (fun r -> str r "message_id"))
            Assert.Equal(a.Id, str received.Head "sender_id")
            let! bad = summary "?overdue_after_seconds=59"
            Assert.Equal((400, """{"error":"overdue_after_seconds must be an integer >= 60"}"""), (bad.Code, bad.Text))
            let! noAuth = c.Send("GET", $"/workspaces/{b.Id}/mail/summary")
            Assert.Equal(401, noAuth.Code)
        }

    [<Fact>]
    member _.``message/send with the same messageId to one target makes one row and the same queued answer``() =
        task {
            let! _, a, b = team ()
            let mid = string (Guid.NewGuid())
            let! first = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "once" mid "", a.Token, a.Id)
            let! again = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "once" mid "", a.Token, a.Id)
            Assert.Equal(200, again.Code)
            Assert.Equal(first.Text, again.Text)
            // the same id to another target is another message
            let! elsewhere = c.Send("POST", $"/workspaces/{a.Id}/a2a", messageWithId "once" mid "", b.Token, b.Id)
            Assert.Equal(200, elsewhere.Code)
            let! other = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "another", a.Token, a.Id)
            Assert.Equal(200, other.Code)
            let! inbox = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive", token = b.Token)
            let list = rows inbox
            Assert.Equal(2, list.Length)
            Assert.Equal(1, list |> List.filter (fun r -> at r "request_body.params.message.messageId" = mid) |> List.length)
            let seqOf (n: JsonNode) = n.["seq"].GetValue<int64>()
            Assert.True(seqOf list[0] > seqOf list[1])
            Assert.EndsWith("(ingest)", str list[1] "summary")
            let! theirs = c.Send("GET", $"/workspaces/{a.Id}/activity?type=a2a_receive", token = a.Token)
            Assert.Equal(1, (rows theirs).Length)
        }

    [<Fact>]
    member _.``faults on the delivery routes: a dropped ack is retried safely, a 503 poll and a slow poll lose nothing``() =
        task {
            let! _, a, b = team ()
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "one", a.Token, a.Id)
            let! added = c.Send("POST", "/admin/faults", $$"""{"path_prefix":"/workspaces/{{b.Id}}/activity/ack","method":"POST","drop":true,"times":1}""", admin)
            Assert.Equal(200, added.Code)
            let! dropped = Assert.ThrowsAnyAsync<HttpRequestException>(fun () -> c.Send("POST", $"/workspaces/{b.Id}/activity/ack", """{"acked_seq":3}""", b.Token) :> Task)
            Assert.NotNull dropped
            let! retried = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", """{"acked_seq":3}""", b.Token)
            Assert.Equal("""{"last_acked_seq":3}""", retried.Text)
            let feed = $"/workspaces/{b.Id}/activity"
            let! _ = c.Send("POST", "/admin/faults", $$"""{"path_prefix":"{{feed}}","method":"GET","status":503,"body":{"error":"busy"},"times":1}""", admin)
            let! busy = c.Send("GET", feed, token = b.Token)
            Assert.Equal((503, """{"error":"busy"}"""), (busy.Code, busy.Text))
            let! _ = c.Send("POST", "/admin/faults", $$"""{"path_prefix":"{{feed}}","method":"GET","delay_ms":300,"times":1}""", admin)
            let sw = Diagnostics.Stopwatch.StartNew()
            let! slow = c.Send("GET", feed, token = b.Token)
            Assert.True(sw.ElapsedMilliseconds >= 280L)
            Assert.Equal(1, (rows slow).Length)
            let! counted = c.Send("GET", $"/admin/requests?method=GET&prefix={feed}", token = admin)
            Assert.Equal(2, (node counted.Json "count").GetValue<int>())
        }

type DeliveryOnSqlite(fx) =
    inherit Delivery<OnSqlite>(fx)

type DeliveryOnPostgres(fx) =
    inherit Delivery<OnPostgres>(fx)

type DeliveryLifecycle() =
    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``the ack floor survives a restart``(engine: string) =
        task {
            let dir = tempDir ()
            let opts = options (named engine) dir id
            let! p1 = Server.start opts
            let c1 = new Client(p1.Url)
            let! w = createWs c1 p1.AdminToken "durable-acks" None []
            let! r = c1.Send("POST", $"/workspaces/{w.Id}/activity/ack", """{"acked_seq":41}""", w.Token)
            Assert.Equal("""{"last_acked_seq":41}""", r.Text)
            (c1 :> IDisposable).Dispose()
            do! p1.StopAsync()
            let! p2 = Server.start opts
            use c2 = new Client(p2.Url)
            let! floor = c2.Send("POST", $"/workspaces/{w.Id}/activity/ack", """{"acked_seq":0}""", w.Token)
            Assert.Equal("""{"last_acked_seq":41}""", floor.Text)
            let! summary = c2.Send("GET", $"/workspaces/{w.Id}/mail/summary", token = w.Token)
            Assert.Equal("acked_seq", str summary.Json "mode")
            do! p2.StopAsync()
            Directory.Delete(dir, true)
        }

    // SQLite only: the databases of platforms from before schema version 3 were all SQLite
    [<Fact>]
    member _.``a version-1 SQLite database is upgraded in place: rows kept, message ids and acks work``() =
        task {
            let dir = tempDir ()
            let ws = Guid.NewGuid()
            let row = Guid.NewGuid()

            do
                use conn = new SqliteConnection(("Data Source=" + Path.Combine(dir, "platform.db") + ";Pooling=False"))
                conn.Open()

                let exec (sql: string) =
                    use cmd = conn.CreateCommand()
                    cmd.CommandText <- sql
                    cmd.ExecuteNonQuery() |> ignore

                exec "CREATE TABLE schema_version (version INTEGER NOT NULL)"

                for step in (Schema.migrations |> List.find (fun m -> m.Version = 1)).Steps do
                    match step with
                    | Schema.Sql template -> exec (Schema.Dialect.render Schema.Dialect.sqlite template)
                    | other -> failwith $"version 1 has only SQL steps, not {other}"

                exec "INSERT INTO schema_version (version) VALUES (1)"
                let t = DateTimeOffset.UtcNow.UtcTicks
                exec $"INSERT INTO workspaces (id,name,status,delivery_mode,created_at,updated_at,platform_inbound_secret) VALUES ('{ws}','old','online','poll',{t},{t},'clear-secret')"
                exec $"INSERT INTO activity_logs (id,workspace_id,activity_type,status,created_at) VALUES ('{row}','{ws}','agent_log','ok',{t})"

            let! p = Server.start (PlatformOptions.defaults dir)
            use c = new Client(p.Url)
            let! list = c.Send("GET", $"/workspaces/{ws}/activity", token = p.AdminToken)
            Assert.Equal<string list>([ string row ], idsOf list)
            let! ack = c.Send("POST", $"/workspaces/{ws}/activity/ack", """{"acked_seq":1}""", p.AdminToken)
            Assert.Equal("""{"last_acked_seq":1}""", ack.Text)
            let mid = string (Guid.NewGuid())
            let! _ = c.Send("POST", $"/workspaces/{ws}/a2a", messageWithId "x" mid "", p.AdminToken)
            let! _ = c.Send("POST", $"/workspaces/{ws}/a2a", messageWithId "x" mid "", p.AdminToken)
            let! after = c.Send("GET", $"/workspaces/{ws}/activity", token = p.AdminToken)
            Assert.Equal(2, (rows after).Length)
            do! p.StopAsync()

            do
                use conn = new SqliteConnection(("Data Source=" + Path.Combine(dir, "platform.db") + ";Pooling=False"))
                conn.Open()
                use cmd = conn.CreateCommand()
                cmd.CommandText <- "SELECT MAX(version) FROM schema_version"
                Assert.Equal(int64 Schema.latest, cmd.ExecuteScalar() :?> int64)
                // the inbound secret kept in clear by version 1 is sealed now
                cmd.CommandText <- $"SELECT platform_inbound_secret FROM workspaces WHERE id = '{ws}'"
                let stored = cmd.ExecuteScalar() :?> string
                Assert.StartsWith("v1:", stored)
                Assert.DoesNotContain("clear-secret", stored)

            Directory.Delete(dir, true)
        }

    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``retention: acked rows go after softDays, every row after hardDays, unacked young rows stay``(engine: string) =
        task {
            let mutable now = DateTimeOffset.UtcNow

            let opts (o: PlatformOptions) =
                { o with
                    Clock = Some(fun () -> now)
                    RetentionSoftDays = 2
                    RetentionHardDays = 5
                    SweepInterval = TimeSpan.FromHours 1.0 }

            use! own = task { return new Own(engine, opts) }
            let c = own.C
            let admin = own.P.AdminToken
            let! w = createWs c admin "retained" None []
            let post (text: string) = c.Send("POST", $"/workspaces/{w.Id}/a2a", messageBody text, admin)
            let! _ = post "old acked"
            let! _ = post "old unacked"
            let! list = c.Send("GET", $"/workspaces/{w.Id}/activity", token = w.Token)
            let newestFirst = rows list
            let ackedRow = List.last newestFirst
            let unackedRow = newestFirst.Head
            let! _ = c.Send("POST", $"/workspaces/{w.Id}/activity/ack", ("{\"acked_seq\":" + string (ackedRow.["seq"].GetValue<int64>()) + "}"), w.Token)
            now <- now.AddDays 1.0
            let! young = c.Send("POST", "/admin/retention", "", admin)
            Assert.Equal("""{"deleted":0}""", young.Text)
            now <- now.AddDays 2.0 // 3 days: past soft, before hard
            let! notAdmin = c.Send("POST", "/admin/retention", "", w.Token)
            Assert.Equal(401, notAdmin.Code)
            let! soft = c.Send("POST", "/admin/retention", "", admin)
            Assert.Equal("""{"deleted":1}""", soft.Text)
            let! left = c.Send("GET", $"/workspaces/{w.Id}/activity", token = w.Token)
            Assert.Equal<string list>([ str unackedRow "id" ], idsOf left)
            let cursor = str ackedRow "id"
            let! pruned = c.Send("GET", $"/workspaces/{w.Id}/activity?since_id={cursor}", token = w.Token)
            Assert.Equal(410, pruned.Code)
            now <- now.AddDays 2.5 // 5.5 days: past hard
            Assert.Equal(1, own.P.PruneNow())
            let! empty = c.Send("GET", $"/workspaces/{w.Id}/activity", token = w.Token)
            Assert.Equal("[]", empty.Text)
        }

    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``retention runs by itself one interval after start``(engine: string) =
        task {
            let mutable now = DateTimeOffset.UtcNow

            use! own =
                task { return new Own(engine, fun o -> { o with Clock = Some(fun () -> now); RetentionInterval = TimeSpan.FromMilliseconds 100.0 }) }

            let! w = createWs own.C own.P.AdminToken "swept" None []
            let! _ = own.C.Send("POST", $"/workspaces/{w.Id}/a2a", messageBody "ancient", own.P.AdminToken)
            now <- now.AddDays 31.0
            let mutable remaining = "?"
            let deadline = DateTime.UtcNow.AddSeconds 5.0

            while remaining <> "[]" && DateTime.UtcNow < deadline do
                do! Task.Delay 50
                let! r = own.C.Send("GET", $"/workspaces/{w.Id}/activity", token = w.Token)
                remaining <- r.Text

            Assert.Equal("[]", remaining)
        }

    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``fault routes answer 404 unless EnableFaults; the in-process injector works either way``(engine: string) =
        task {
            use! own = task { return new Own(engine, id) }
            let c = own.C
            let admin = own.P.AdminToken

            for (m, path, body) in
                [ "POST", "/admin/faults", """{"path_prefix":"/health","status":500}"""
                  "DELETE", "/admin/faults", ""
                  "POST", "/admin/faults/cut-streams", """{"path_prefix":"/"}"""
                  "GET", "/admin/requests", "" ] do
                let! r = c.Send(m, path, ?body = (if body = "" then None else Some body), token = admin)
                Assert.Equal((404, """{"error":"not found"}"""), (r.Code, r.Text))

            let! healthy = c.Send("GET", "/health")
            Assert.Equal(200, healthy.Code)
            own.P.Faults.Add { FaultRule.make "/health" 503 with Times = Some 1 }
            let! faulted = c.Send("GET", "/health")
            Assert.Equal(503, faulted.Code)
            let! back = c.Send("GET", "/health")
            Assert.Equal(200, back.Code)
        }
