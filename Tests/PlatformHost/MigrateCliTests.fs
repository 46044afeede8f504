/// `molecule-platform migrate` on the PUBLISHED binaries into the tests' own PostgreSQL.
/// - The demo's team: `molecule-platform demo --data-dir` keeps the team its real molecule-mcp agents built on SQLite,
///   thousands of messages more go in through the platform, the copy is killed (-9) in the middle and run again to
///   completion (every table's rows and checksum equal to the source); the published platform then serves the team
///   from PostgreSQL with every agent's log (rows with their seq), acknowledgements (its mail summary) and memories
///   identical, read through the agents' own routes with their own tokens (the token hashes moved), and two
///   molecule-mcp agents keep working: one sends, the other gets it by push.
/// - A team built through the platform's API (requests, approvals, a revoked token) served exactly as it was; a
///   target holding another team refused, and replaced with --force.
module Molecule.Tests.PlatformHost.MigrateCliTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open ModelContextProtocol.Client
open ModelContextProtocol.Protocol
open Xunit
open Molecule.Tests.Platform
open Molecule.Tests.PlatformHost.CliSupport

let private tablesOk (out: string) =
    let rows = out.Split('\n') |> Array.filter (fun l -> l.EndsWith " ok" || l.EndsWith "DIFFERENT")
    Assert.Equal(Molecule.Platform.Migration.tables.Length, rows.Length)
    Assert.All(rows, fun l -> Assert.EndsWith(" ok", l))

/// Starts `migrate` and kills it (-9) once it has committed its first batch of the activity log.
let private killMidCopy (args: string list) =
    use p = Process.Start(startInfo [] args)
    p.StandardInput.Close()
    let mutable seen = false
    let sw = Stopwatch.StartNew()

    while not seen && not p.HasExited && sw.Elapsed < TimeSpan.FromSeconds 60.0 do
        match p.StandardError.ReadLine() with
        | null -> ()
        | line when line.StartsWith "activity_logs: " -> seen <- true
        | _ -> ()

    Assert.True(seen && not p.HasExited, "migrate ended before it was killed mid-copy")
    p.Kill true
    p.WaitForExit()

/// The admin token and the inbound-secret key go with the team (the README's step for every new instance).
let private carryKeys (source: string) (target: string) =
    for f in [ "admin_token"; "secret_key" ] do
        File.Copy(Path.Combine(source, f), Path.Combine(target, f), true)

[<Fact>]
let ``migrate --to postgres://: the team is served from PostgreSQL as it was; another team is refused, --force replaces it`` () =
    let source = tempDir "migrate-from"
    let target = tempDir "migrate-to"
    let team = (MigrateTests.buildTeam source 20).Result
    let url = Molecule.Tests.Support.Postgres.urlFor target
    let copied = run [ "migrate"; "--from"; source; "--to"; url ] (TimeSpan.FromSeconds 120.0)
    Assert.True((copied.Code = 0), $"migrate: {copied.Code}\n{copied.Err}")
    tablesOk copied.Out
    Assert.Contains("every table matches", copied.Out)
    carryKeys source target

    (MigrateTests.servedIdentically "postgres" target team).Wait()
    // another team into the same database: refused, nothing touched; --force replaces it
    let other = tempDir "migrate-other"
    let _ = (MigrateTests.buildTeam other 2).Result
    let refused = run [ "migrate"; "--from"; other; "--to"; url ] (TimeSpan.FromSeconds 60.0)
    Assert.Equal(1, refused.Code)
    Assert.Contains("the target database is not empty", refused.Err)
    let replaced = run [ "migrate"; "--from"; other; "--to"; url; "--force" ] (TimeSpan.FromSeconds 60.0)
    Assert.True((replaced.Code = 0), replaced.Err)
    tablesOk replaced.Out

// ---------------------------------------------------------------- the demo's team

/// A workspace of the demo's team as `demo --data-dir` lists it (demo-team.json).
type private Member = { Name: string; Id: string; Token: string }

let private membersOf (dir: string) : Member list =
    let file = Path.Combine(dir, "demo-team.json")
    Assert.True(File.Exists file, "demo --data-dir left no demo-team.json")
    Assert.Equal(UnixFileMode.UserRead ||| UnixFileMode.UserWrite, File.GetUnixFileMode file)

    let listed = JsonNode.Parse(File.ReadAllText file)

    [ for w in listed["workspaces"].AsArray() ->
          { Name = w["name"].GetValue<string>(); Id = w["id"].GetValue<string>(); Token = w["token"].GetValue<string>() } ]

let private memberNamed (team: Member list) (name: string) = team |> List.find (fun m -> m.Name = name)

/// `count` A2A messages from `from` to `target` through the platform, as the agent would send them (its token and
/// X-Workspace-ID), eight at a time.
let private sendMany (url: string) (from: Member) (target: Member) (count: int) =
    use client = new HttpClient(Timeout = TimeSpan.FromSeconds 60.0)
    let next = ref 0

    let sender () =
        task {
            while Interlocked.Increment next <= count do
                use req = new HttpRequestMessage(HttpMethod.Post, $"{url}/workspaces/{target.Id}/a2a")
                req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", from.Token)
                req.Headers.Add("X-Workspace-ID", from.Id)
                req.Content <- new StringContent(Molecule.Tests.Platform.HttpTests.messageBody "status line", Encoding.UTF8, "application/json")
                use! resp = client.SendAsync req
                Assert.Equal(200, int resp.StatusCode)
        }

    Task.WaitAll [| for _ in 1..8 -> sender () :> Task |]

/// A workspace's whole log as its agent reads it with its own token, newest page first, then each page before the
/// oldest row seen (before_ts); with its seq, bodies and everything the route answers.
let private logOf (url: string) (m: Member) : string list =
    let rec pages (before: string option) (acc: string list) =
        let q = before |> Option.map (fun b -> "&before_ts=" + Uri.EscapeDataString b) |> Option.defaultValue ""
        let code, text = http url m.Token HttpMethod.Get $"/workspaces/{m.Id}/activity?limit=500{q}" None
        Assert.True((code = 200), $"{m.Name}'s log: {code} {text}")
        let rows = JsonNode.Parse(text).AsArray()

        if rows.Count = 0 then List.rev acc
        else
            let oldest = (rows[rows.Count - 1]).["created_at"].GetValue<string>()
            pages (Some oldest) (text :: acc)

    pages None []

/// Everything the team's agents read through their own routes: each one's log, mail summary (its acknowledgement
/// floor: which rows are still unread) and memories (its own and the team's); a removed workspace's token refused.
let private agentViews (url: string) (team: Member list) : (string * string) list =
    [ for m in team do
          let get (path: string) =
              let code, text = http url m.Token HttpMethod.Get $"/workspaces/{m.Id}{path}" None
              $"{m.Name} {path}", $"{code} {text}"

          match http url m.Token HttpMethod.Get $"/workspaces/{m.Id}/mail/summary" None with
          | 200, _ ->
              yield! logOf url m |> List.mapi (fun i page -> $"{m.Name} log page {i}", page)
              yield get "/mail/summary"
              yield get "/memories"
              yield get "/memories?scope=TEAM"
          | code, text -> yield $"{m.Name} refused", $"{code} {text}" ]

let private sameViews (before: (string * string) list) (after: (string * string) list) =
    Assert.Equal<string list>(List.map fst before, List.map fst after)

    for (what, was), (_, now) in List.zip before after do
        Assert.True((was = now), $"{what} differs after the move:\nbefore: {was}\nafter:  {now}")

/// A molecule-mcp agent of `m` on the platform at `url`; the texts of the channel notifications it pushes go to
/// `pushed`.
let private agent (url: string) (m: Member) (pushed: ConcurrentQueue<string>) (stderr: StringBuilder) : Task<McpClient> =
    let env = Dictionary<string, string>()

    for (k, v) in
        [ "WORKSPACE_ID", m.Id
          "PLATFORM_URL", url
          "MOLECULE_WORKSPACE_TOKEN", m.Token
          "MOLECULE_AGENT_NAME", m.Name
          "CONFIGS_DIR", tempDir ("agent-" + m.Name.ToLowerInvariant())
          "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "1" ] do
        env[k] <- v

    let transport =
        new StdioClientTransport(
            StdioClientTransportOptions(
                Name = m.Name,
                Command = Molecule.Tests.Support.Binary.path (),
                Arguments = List<string>(),
                EnvironmentVariables = env,
                StandardErrorLines = (fun l -> lock stderr (fun () -> stderr.AppendLine l |> ignore))
            )
        )

    let handlers = McpClientHandlers()

    handlers.NotificationHandlers <-
        [ KeyValuePair<string, Func<JsonRpcNotification, CancellationToken, ValueTask>>(
              "notifications/claude/channel",
              Func<_, _, _>(fun n _ ->
                  pushed.Enqueue(if isNull n.Params then "" else n.Params.ToJsonString())
                  ValueTask.CompletedTask)
          ) ]

    McpClient.CreateAsync(
        transport,
        McpClientOptions(ClientInfo = Implementation(Name = "migrate-test", Version = "1"), ProtocolVersion = "2025-06-18", Handlers = handlers)
    )

/// The team served from PostgreSQL keeps working: the Lead's molecule-mcp delegates a task to the Researcher, whose
/// molecule-mcp pushes it as a channel notification.
let private keepsWorking (url: string) (team: Member list) =
    task {
        let lead, researcher = memberNamed team "Lead", memberNamed team "Researcher"
        let pushed = ConcurrentQueue<string>()
        let stderr = StringBuilder()
        use! leadAgent = agent url lead (ConcurrentQueue()) stderr
        use! researcherAgent = agent url researcher pushed stderr
        let task' = "After the move: check the backups " + Guid.NewGuid().ToString("N")
        let args = Dictionary<string, obj>(dict [ "workspace_id", box researcher.Id; "task", box task' ])
        let! sent = leadAgent.CallToolAsync("delegate_task", args)
        Assert.True(sent.IsError <> Nullable true, Molecule.Tests.Support.Tool.textOf sent)
        let sw = Stopwatch.StartNew()

        while not (pushed |> Seq.exists (fun p -> p.Contains task')) && sw.Elapsed < TimeSpan.FromSeconds 30.0 do
            do! Task.Delay 100

        Assert.True(pushed |> Seq.exists (fun p -> p.Contains task'), $"the Researcher's molecule-mcp never pushed the task; pushed: {String.Join('\n', pushed)}\nstderr: {stderr}")
    }

[<Fact>]
let ``migrate the demo's team: killed mid-copy, run again to completion, served from PostgreSQL with every agent's log, acks and memories identical; its agents keep working`` () =
    let source = tempDir "demo-team"
    let demo = run [ "demo"; "--data-dir"; source ] (TimeSpan.FromSeconds 120.0)
    Assert.True((demo.Code = 0), $"demo: {demo.Code}\n{demo.Out}\n{demo.Err}")
    Assert.Contains("its data is kept in", demo.Out)
    let team = membersOf source
    Assert.Equal<string list>([ "Lead"; "Researcher"; "Coder"; "Docs"; "Ops" ], team |> List.map (fun m -> m.Name))

    for m in team do
        Assert.DoesNotContain(m.Token, demo.Out)
    // thousands of messages more, so the copy of the log takes several batches
    let before =
        use p = new PlatformProcess(source, [ "--rate-a2a"; "0" ])
        sendMany p.Url (memberNamed team "Docs") (memberNamed team "Ops") 4000
        let views = agentViews p.Url team
        Assert.Equal(0, p.Stop())
        views

    let target = tempDir "demo-team-pg"
    let url = Molecule.Tests.Support.Postgres.urlFor target
    let args = [ "migrate"; "--from"; source; "--to"; url ]
    killMidCopy args
    let again = run args (TimeSpan.FromSeconds 180.0)
    Assert.True((again.Code = 0), $"migrate again: {again.Code}\n{again.Err}")
    Assert.Contains("resuming the copy", again.Err)
    tablesOk again.Out
    Assert.Contains("every table matches", again.Out)
    carryKeys source target
    use served = new PlatformProcess(target, [ "--database"; url ])
    sameViews before (agentViews served.Url team)
    (keepsWorking served.Url team).Wait()
