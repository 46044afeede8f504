/// The operators' routes over real HTTP (127.0.0.1, port 0) on every engine: /health and /ready without a token,
/// /metrics behind the admin token (from loopback too), its text read by the strict reader (PrometheusText), and
/// its counters and gauges moving with real sends, acknowledgements and streams.
module Molecule.Tests.Platform.OperationsHttpTests

open System
open System.IO
open System.Net.Http
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.DeliveryHttpTests
open Molecule.Tests.Platform.StreamHttpTests
module P = Molecule.Tests.Platform.PrometheusText

/// GET /metrics with the admin token, read strictly.
let scrape (c: Client) (admin: string) : Task<P.Family list> =
    task {
        let! r = c.Send("GET", "/metrics", token = admin)
        Assert.True((r.Code = 200), $"/metrics: {r.Code} {r.Text}")
        return P.parse r.Text
    }

/// The seq of the newest inbox row of a workspace.
let private newestInboxSeq (c: Client) (ws: Ws) : Task<int64> =
    task {
        let! rows = c.Send("GET", $"/workspaces/{ws.Id}/activity?type=a2a_receive", token = ws.Token)
        return rows.Json.AsArray() |> Seq.map (fun r -> r["seq"].GetValue<int64>()) |> Seq.max
    }

/// Polls `read` until `ok` holds (the server notices a closed stream on its own time), at most 5 s.
let private eventually (read: unit -> Task<'a>) (ok: 'a -> bool) : Task<'a> =
    task {
        let deadline = DateTime.UtcNow.AddSeconds 5.0
        let! first = read ()
        let mutable last = first

        while not (ok last) && DateTime.UtcNow < deadline do
            do! Task.Delay 50
            let! next = read ()
            last <- next

        return last
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``operators: /health and /ready answer without a token, tiny JSON naming the instance, engine and schema version`` (engine: string) =
    task {
        use fx = new Own(engine, fun o -> { o with Instance = Some "  blue-1\n" })
        let! health = fx.C.Send("GET", "/health")
        Assert.Equal((200, """{"status":"ok","instance":"blue-1"}"""), (health.Code, health.Text))
        Assert.Equal("blue-1", fx.P.Instance)
        let! ready = fx.C.Send("GET", "/ready")
        Assert.Equal(200, ready.Code)
        Assert.Equal("ready", str ready.Json "status")
        Assert.Equal("blue-1", str ready.Json "instance")
        Assert.Equal(engine, str ready.Json "engine")
        Assert.Equal(Schema.latest, ready.Json["schema_version"].GetValue<int>())
        // without a name: host name and process id
        use unnamed = new Own(engine, id)
        let! h = unnamed.C.Send("GET", "/health")
        Assert.Equal($"{Environment.MachineName}-{Environment.ProcessId}", str h.Json "instance")
    }

/// Sets the SQLite database's stored schema version behind the running platform's back.
let private setVersion (dir: string) (v: int) =
    use conn = new SqliteConnection("Data Source=" + Path.Combine(dir, "platform.db") + ";Pooling=False")
    conn.Open()
    use cmd = conn.CreateCommand()
    cmd.CommandText <- $"UPDATE schema_version SET version = {v}"
    Assert.Equal(1, cmd.ExecuteNonQuery())

// SQLite only: the version is changed through the database file
[<Fact>]
let ``operators: /ready is 503 with the reason while the database is at another schema version, 200 again once it is not`` () =
    task {
        use fx = new Own("sqlite", id)
        setVersion fx.Dir (Schema.latest + 1)
        let! newer = fx.C.Send("GET", "/ready")
        Assert.Equal(503, newer.Code)
        Assert.Equal("not ready", str newer.Json "status")
        Assert.Contains($"schema version {Schema.latest + 1}, newer than this platform's {Schema.latest}", str newer.Json "reason")
        setVersion fx.Dir (Schema.latest - 1)
        let! older = fx.C.Send("GET", "/ready")
        Assert.Equal(503, older.Code)
        Assert.Contains("migrations not applied", str older.Json "reason")
        // /health says only that the process answers
        let! health = fx.C.Send("GET", "/health")
        Assert.Equal(200, health.Code)
        setVersion fx.Dir Schema.latest
        let! back = fx.C.Send("GET", "/ready")
        Assert.Equal(200, back.Code)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``operators: /metrics needs the admin token, also from loopback; a workspace token is refused`` (engine: string) =
    task {
        use fx = new Own(engine, id)
        let! ws = createWs fx.C fx.P.AdminToken "agent" None []
        let! none = fx.C.Send("GET", "/metrics")
        Assert.Equal((401, """{"error":"missing admin token"}"""), (none.Code, none.Text))
        let! wrong = fx.C.Send("GET", "/metrics", token = wrongToken fx.P.AdminToken)
        Assert.Equal(401, wrong.Code)
        let! agent = fx.C.Send("GET", "/metrics", token = ws.Token)
        Assert.Equal(401, agent.Code)
        use req = new HttpRequestMessage(HttpMethod.Get, "/metrics")
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", fx.P.AdminToken)
        use! resp = fx.C.Http.SendAsync req
        Assert.Equal(200, int resp.StatusCode)
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", resp.Content.Headers.ContentType.ToString())
        let! text = resp.Content.ReadAsStringAsync()
        let families = P.parse text
        Assert.Equal(1.0, P.value families "molecule_instance_info" [ "instance", fx.P.Instance; "engine", engine ])
        // the database pool where the engine has one (Npgsql's), and no pool family on SQLite
        let pool = families |> List.filter (fun f -> f.Name.StartsWith "molecule_db_client_connection")
        Assert.Equal((engine = "postgres"), not pool.IsEmpty)
        // no secret in the text
        Assert.DoesNotContain(fx.P.AdminToken, text)
        Assert.DoesNotContain(ws.Token, text)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``operators: messages accepted and delivered, the delivery lag and requests by route template move with sends and acks`` (engine: string) =
    task {
        use fx = new Own(engine, fun o -> { o with RateLimits = RateLimit.Limits.off })
        let c, admin = fx.C, fx.P.AdminToken
        let! lead = createWs c admin "lead" None []
        let! a = createWs c admin "alice" (Some lead.Id) []
        let! b = createWs c admin "bob" (Some lead.Id) []
        let! reg = c.Send("POST", "/registry/register", registerBody b.Id, b.Token)
        Assert.Equal(200, reg.Code)
        let! before = scrape c admin
        let a2a = [ "route", "/workspaces/{id}/a2a"; "method", "POST"; "status", "200" ]
        let mid = string (Guid.NewGuid())

        for i in 1..3 do
            let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId $"hello {i}" (if i = 1 then mid else string (Guid.NewGuid())) "", a.Token, a.Id)
            Assert.Equal(200, r.Code)

        // the same message id again: no new row, not accepted twice
        let! again = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "hello 1" mid "", a.Token, a.Id)
        Assert.Equal(200, again.Code)
        let! _ = c.Send("GET", "/no/such/path")
        let! sent = scrape c admin
        let delta (name: string) (labels: (string * string) list) (now: P.Family list) (was: P.Family list) = P.value now name labels - P.value was name labels
        Assert.Equal(3.0, delta "molecule_messages_accepted_total" [] sent before)
        Assert.Equal(4.0, delta "molecule_http_requests_total" a2a sent before)
        Assert.Equal(1.0, delta "molecule_http_requests_total" [ "route", "unmatched"; "method", "GET"; "status", "404" ] sent before)
        Assert.Equal(0.0, delta "molecule_messages_delivered_total" [] sent before)
        Assert.Equal(0.0, delta "molecule_delivery_lag_seconds_count" [] sent before)
        let! top = newestInboxSeq c b
        let! acked = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", $$"""{"acked_seq":{{top}}}""", b.Token)
        Assert.Equal(200, acked.Code)
        // the same floor again delivers nothing more
        let! _ = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", $$"""{"acked_seq":{{top}}}""", b.Token)
        let! after = scrape c admin
        Assert.Equal(3.0, delta "molecule_messages_delivered_total" [] after sent)
        Assert.Equal(3.0, delta "molecule_delivery_lag_seconds_count" [] after sent)
        Assert.Equal(3.0, delta "molecule_delivery_lag_seconds_bucket" [ "le", "+Inf" ] after sent)
        Assert.True(delta "molecule_delivery_lag_seconds_sum" [] after sent >= 0.0)
        Assert.Equal(2.0, delta "molecule_http_requests_total" [ "route", "/workspaces/{id}/activity/ack"; "method", "POST"; "status", "200" ] after sent)
        Assert.Equal(1.0, P.value after "molecule_workspaces" [ "status", "online" ])
        Assert.Equal(2.0, P.value after "molecule_workspaces" [ "status", "awaiting_agent" ])
        // route templates only: no raw path, no workspace id
        let! text = c.Send("GET", "/metrics", token = admin)
        Assert.DoesNotContain("/no/such/path", text.Text)
        Assert.DoesNotContain(b.Id, text.Text)
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``operators: connected agents and open streams follow the doorbell and canvas streams`` (engine: string) =
    task {
        use fx = new Own(engine, id)
        let c, admin = fx.C, fx.P.AdminToken
        let! a = createWs c admin "alice" None []
        let! b = createWs c admin "bob" None []
        let gauges () =
            task {
                let! f = scrape c admin
                return
                    P.value f "molecule_agents_connected" [],
                    P.value f "molecule_streams_open" [ "kind", "workspace" ],
                    P.value f "molecule_streams_open" [ "kind", "canvas" ]
            }

        let! idle = gauges ()
        Assert.Equal((0.0, 0.0, 0.0), idle)
        let! s1 = openStream fx.P.Url a.Id a.Token
        let! s2 = openStream fx.P.Url a.Id a.Token
        let! s3 = openStream fx.P.Url b.Id b.Token
        use http = new HttpClient()
        use req = new HttpRequestMessage(HttpMethod.Get, fx.P.Url + "/events")
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", admin)
        use! canvas = http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead)
        Assert.Equal(200, int canvas.StatusCode)
        let! open' = eventually gauges (fun g -> g = (2.0, 3.0, 1.0))
        Assert.Equal((2.0, 3.0, 1.0), open')
        (s1 :> IDisposable).Dispose()
        (s3 :> IDisposable).Dispose()
        let! fewer = eventually gauges (fun (agents, streams, _) -> agents = 1.0 && streams = 1.0)
        Assert.Equal((1.0, 1.0, 1.0), fewer)
        (s2 :> IDisposable).Dispose()
        canvas.Dispose()
        let! closed = eventually gauges (fun g -> g = (0.0, 0.0, 0.0))
        Assert.Equal((0.0, 0.0, 0.0), closed)
    }
