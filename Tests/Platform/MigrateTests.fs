/// `migrate` end to end (Store/Migrate.fs): a team built on a SQLite platform through its own API — workspaces,
/// tokens (one revoked), messages and acks, a delegation, memories, an upload, abilities — copied into each target
/// engine, then served from there: every workspace's log, ack floor, memories, delegations, tokens and file read
/// back identical over HTTP, and the tokens still work. A copy interrupted after any batch completes when run again;
/// a target holding another team is refused unless told to replace it.
module Molecule.Tests.Platform.MigrateTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.DeliveryHttpTests

/// The migration target of engine `engine` whose data directory is `dir` (the same database `Engines.options`
/// serves for that directory).
let targetFor (engine: string) (dir: string) : Migrate.Target =
    match engine with
    | "sqlite" -> Migrate.sqliteTarget dir
    | "postgres" -> Migrate.postgresTarget (Molecule.Tests.Support.Postgres.urlFor dir) dir
    | other -> failwith $"no migration target for {other}"

/// A team as an operator and its agents see it: per workspace, everything its routes answer.
type Team =
    { Workspaces: Ws list
      /// (what, answer text) in a fixed order.
      Views: (string * string) list
      /// A token revoked before the move.
      Revoked: string }

let private quiet (o: PlatformOptions) = { o with SweepInterval = TimeSpan.FromHours 1.0; RateLimits = RateLimit.Limits.off }

/// What the team looks like through the admin token (no agent token is used: nothing is touched by looking).
let views (p: RunningPlatform) (c: Client) (team: Ws list) : Task<(string * string) list> =
    task {
        let admin = p.AdminToken
        let acc = ResizeArray()

        for ws in team do
            for path in
                [ $"/workspaces/{ws.Id}"; $"/workspaces/{ws.Id}/activity?limit=500"; $"/workspaces/{ws.Id}/memories"
                  $"/workspaces/{ws.Id}/delegations"; $"/workspaces/{ws.Id}/tokens" ] do
                let! r = c.Send("GET", path, token = admin)
                Assert.True((r.Code = 200), $"{path}: {r.Code} {r.Text}")
                acc.Add(path.Replace(ws.Id, "W"), r.Text)

            let floor = p.Store.Read(fun r -> r.AckFloor(WorkspaceId(Guid.Parse ws.Id)))
            acc.Add("ack floor", string floor)

            for f in p.Store.Read(fun r -> r.Workspace(WorkspaceId(Guid.Parse ws.Id))) |> Option.toList do
                acc.Add("inbound secret", string f.InboundSecret)

        let! canvas = c.Send("GET", "/admin/workspaces", token = admin)
        // "seen N seconds ago" depends on when one looks
        acc.Add("overview", Text.RegularExpressions.Regex.Replace(canvas.Text, "\"last_seen_seconds\":[0-9]+", ""))
        return List.ofSeq acc
    }

let private upload (c: Client) (ws: Ws) (name: string) (content: string) : Task<string> =
    task {
        use form = new MultipartFormDataContent()
        let part = new ByteArrayContent(Encoding.UTF8.GetBytes content)
        part.Headers.ContentType <- Headers.MediaTypeHeaderValue("text/plain")
        form.Add(part, "files", name)
        use req = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{ws.Id}/chat/uploads", Content = form)
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", ws.Token)
        use! resp = c.Http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        Assert.Equal(200, int resp.StatusCode)
        return str (node (Molecule.Protocol.Json.tryParse text).Value "files.0") "uri"
    }

/// Builds a team on a SQLite platform in `dir` through its API, takes its views and stops it.
let buildTeam (dir: string) (messages: int) : Task<Team> =
    task {
        let! p = Server.start (options sqlite dir quiet)
        use c = new Client(p.Url)
        let admin = p.AdminToken
        let! lead = createWs c admin "lead" None [ "planning" ]
        let! a = createWs c admin "alice" (Some lead.Id) [ "python" ]
        let! b = createWs c admin "bob" (Some lead.Id) [ "rust" ]
        use agent = new FakeAgent()
        let! _ = c.Send("POST", "/registry/register", $$"""{"id":"{{lead.Id}}","url":"{{agent.Url}}/","agent_card":{"name":"lead"},"delivery_mode":"push"}""", lead.Token)
        let! _ = c.Send("POST", "/registry/register", registerBody b.Id, b.Token)

        for i in 1..messages do
            let! r = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody $"message {i}", a.Token, a.Id)
            Assert.Equal(200, r.Code)

        let! rows = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&limit=500", token = b.Token)
        let seqs = rows.Json.AsArray() |> Seq.map (fun r -> r["seq"].GetValue<int64>()) |> Seq.sort |> List.ofSeq
        let! _ = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", $$"""{"acked_seq":{{seqs[seqs.Length / 2]}}}""", b.Token)
        let! d = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{lead.Id}}","task":"plan","idempotency_key":"k1"}""", a.Token)
        Assert.Equal(202, d.Code)
        do! p.IdleAsync()
        let! m1 = c.Send("POST", $"/workspaces/{a.Id}/memories", """{"content":"alice's note","scope":"LOCAL"}""", a.Token)
        Assert.True((m1.Code < 300), m1.Text)
        let! m2 = c.Send("POST", $"/workspaces/{lead.Id}/memories", """{"content":"team plan","scope":"TEAM"}""", lead.Token)
        Assert.True((m2.Code < 300), m2.Text)
        let! _ = upload c a "notes.txt" "the file's bytes"
        let! minted = c.Send("POST", $"/workspaces/{a.Id}/tokens", "{}", admin)
        Assert.True((minted.Code < 300), minted.Text)
        let! abilities = c.Send("PATCH", $"/workspaces/{lead.Id}/abilities", """{"broadcast_enabled":true}""", admin)
        Assert.Equal(200, abilities.Code)
        let! listed = c.Send("GET", $"/workspaces/{a.Id}/tokens", token = admin)
        let revokedId = listed.Json["tokens"].AsArray() |> Seq.map (fun t -> str t "id") |> Seq.last
        let! revoke = c.Send("DELETE", $"/workspaces/{a.Id}/tokens/{revokedId}", token = admin)
        Assert.True((revoke.Code < 300), revoke.Text)
        let team = [ lead; a; b ]
        let! seen = views p c team
        do! p.StopAsync()
        return { Workspaces = team; Views = seen; Revoked = str minted.Json "auth_token" }
    }

/// The admin token and the inbound-secret key go with the team (the README's step for every new instance).
let private carryKeys (fromDir: string) (toDir: string) =
    Directory.CreateDirectory toDir |> ignore

    for f in [ "admin_token"; "secret_key" ] do
        File.Copy(Path.Combine(fromDir, f), Path.Combine(toDir, f), true)

/// Serves the target and checks it is the team: every view identical, the agents' tokens working, the revoked one not.
let servedIdentically (engine: string) (dir: string) (team: Team) : Task =
    task {
        let! p = Server.start (options (named engine) dir quiet)
        use c = new Client(p.Url)
        let! seen = views p c team.Workspaces

        for (what, was), (_, now) in List.zip team.Views seen do
            Assert.True((was = now), $"{what} differs after the move:\nbefore: {was}\nafter:  {now}")

        Assert.Equal(team.Views.Length, seen.Length)
        let lead, a, b = team.Workspaces[0], team.Workspaces[1], team.Workspaces[2]
        let! inbox = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&limit=500", token = b.Token)
        Assert.Equal(200, inbox.Code)
        let! revoked = c.Send("GET", $"/workspaces/{a.Id}/activity", token = team.Revoked)
        Assert.Equal(401, revoked.Code)
        // the team keeps working: a new message gets the next seq of b's log
        let! sent = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageBody "after the move", a.Token, a.Id)
        Assert.Equal(200, sent.Code)
        let! after = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive&limit=1", token = b.Token)
        let newest = after.Json.AsArray()[0]
        let before = inbox.Json.AsArray() |> Seq.map (fun r -> r["seq"].GetValue<int64>()) |> Seq.max
        Assert.True(newest["seq"].GetValue<int64>() > before, after.Text)
        let! memories = c.Send("GET", $"/workspaces/{lead.Id}/memories", token = lead.Token)
        Assert.Contains("team plan", memories.Text)
        do! p.StopAsync()
    }

let private run (fromDir: string) (engine: string) (toDir: string) (force: bool) (batch: int) (copied: string -> int64 -> unit) =
    Migrate.run fromDir (targetFor engine toDir) force batch ignore copied

[<Theory; ClassData(typeof<EngineCases>)>]
let ``migrate: a team built on SQLite, copied, is served from the target with every inbox, ack, memory, delegation, token and file identical`` (engine: string) =
    task {
        let source = tempDir ()
        let target = tempDir ()
        let! team = buildTeam source 5
        carryKeys source target

        match run source engine target false 500 (fun _ _ -> ()) with
        | Error e -> failwith e
        | Ok report ->
            Assert.Equal(Migration.Fresh, report.Start)
            Assert.Empty report.Differences
            Assert.Equal<Migration.Summary list>(report.Source, report.Target)
            let rows (t: string) = (report.Source |> List.find (fun s -> s.Table = t)).Rows
            Assert.Equal(3L, rows "workspaces")
            Assert.Equal(1L, rows "stored_files")
            Assert.True(rows "activity_logs" >= 5L)

        // run again: a finished copy of this source is resumed, copies nothing and still matches
        match run source engine target false 500 (fun _ _ -> ()) with
        | Ok again -> Assert.Equal((Migration.Resume, []), (again.Start, again.Differences))
        | Error e -> failwith e

        do! servedIdentically engine target team
        // once the target has served the team it holds more than the source: a run says so instead of "ok"
        match run source engine target false 500 (fun _ _ -> ()) with
        | Ok later -> Assert.Contains("activity_logs", later.Differences)
        | Error e -> failwith e
    }

exception private Interrupted

[<Theory; ClassData(typeof<EngineCases>)>]
let ``migrate: a copy interrupted after any batch is completed by running it again`` (engine: string) =
    task {
        let source = tempDir ()
        let! team = buildTeam source 7
        // batches of 3 rows: interrupt after the 1st, 4th and 7th committed batch of fresh targets
        for stopAfter in [ 1; 4; 7 ] do
            let target = tempDir ()
            carryKeys source target
            let mutable batches = 0

            let interrupted =
                try
                    run source engine target false 3 (fun _ _ ->
                        batches <- batches + 1
                        if batches = stopAfter then raise Interrupted)
                    |> ignore

                    false
                with Interrupted ->
                    true

            Assert.True(interrupted, $"the copy ended before batch {stopAfter}")

            match run source engine target false 3 (fun _ _ -> ()) with
            | Ok report -> Assert.Equal((Migration.Resume, []), (report.Start, report.Differences))
            | Error e -> failwith e

            do! servedIdentically engine target team
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``migrate: a target holding another team is refused and left alone; --force replaces it with this team`` (engine: string) =
    task {
        let first = tempDir ()
        let second = tempDir ()
        let target = tempDir ()
        let! _ = buildTeam first 2
        let! team = buildTeam second 3
        carryKeys second target

        match run first engine target false 500 (fun _ _ -> ()) with
        | Ok r -> Assert.Empty r.Differences
        | Error e -> failwith e

        match run second engine target false 500 (fun _ _ -> ()) with
        | Ok _ -> failwith "a target holding another team was copied into"
        | Error e -> Assert.Contains("the target database is not empty", e)

        match run second engine target true 500 (fun _ _ -> ()) with
        | Ok r -> Assert.Equal((Migration.Replace, []), (r.Start, r.Differences))
        | Error e -> failwith e

        do! servedIdentically engine target team
    }

[<Fact>]
let ``migrate: a running platform's data directory, or one without a database, is refused naming why`` () =
    task {
        let dir = tempDir ()

        match Migrate.run dir (Migrate.sqliteTarget (tempDir ())) false 500 ignore (fun _ _ -> ()) with
        | Error e -> Assert.Contains("no platform database", e)
        | Ok _ -> failwith "copied from nothing"

        let! p = Server.start (options sqlite dir quiet)

        match Migrate.run dir (Migrate.sqliteTarget (tempDir ())) false 500 ignore (fun _ _ -> ()) with
        | Error e -> Assert.Contains("stop the platform serving it first", e)
        | Ok _ -> failwith "copied from a running platform's directory"

        do! p.StopAsync()
    }

[<Fact>]
let ``migrate copies every column of every table of the schema`` () =
    let dir = tempDir ()
    (SqliteStore.openAt dir ignore).Dispose()
    use conn = new SqliteConnection("Data Source=" + Path.Combine(dir, "platform.db") + ";Pooling=False")
    conn.Open()

    for t in Migration.tables do
        use cmd = conn.CreateCommand()
        cmd.CommandText <- $"SELECT name FROM pragma_table_info('{t.Name}')"
        use r = cmd.ExecuteReader()
        let columns = [ while r.Read() do yield r.GetString 0 ]
        Assert.Equal<Set<string>>(set columns, set t.Columns)
