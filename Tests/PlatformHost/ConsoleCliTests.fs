/// The published molecule-platform's new switches and commands (--enable-faults, --host with its warning,
/// --open-registration, workspace update, LAST SEEN, the named log, platform.json's mode), and what a real
/// molecule-mcp shows when its body is over the platform's limit (the 413 message, not "Broken pipe").
module Molecule.Tests.PlatformHost.ConsoleCliTests

open System
open System.Collections.Generic
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open Xunit
open Molecule.Tests.Support
open Molecule.Tests.PlatformHost.CliSupport
open Molecule.Platform

let private contains (needle: string) (hay: string) =
    Assert.True(hay.Contains(needle, StringComparison.Ordinal), $"expected to find {needle} in:\n{hay}")

let private eventually (what: string) (f: unit -> string) (needle: string) =
    let sw = Diagnostics.Stopwatch.StartNew()
    let mutable text = f ()

    while not (text.Contains needle) && sw.Elapsed < TimeSpan.FromSeconds 10.0 do
        Thread.Sleep 100
        text <- f ()

    Assert.True(text.Contains needle, $"{what}: no '{needle}' in:\n{text}")

[<Fact>]
let ``platform: a stderr nobody reads never stops it (its log is written in the background; 2,000 logged rows, far beyond a pipe's 64 KiB)`` () =
    use p = new PlatformProcess(tempDir "unread-stderr", [], false)
    let code, created = http p.Url p.AdminToken HttpMethod.Post "/workspaces" (Some """{"name":"Unread Log"}""")
    Assert.Equal(201, code)
    let node = JsonNode.Parse created
    let id = node["id"].GetValue<string>()

    for i in 1..2000 do
        let body =
            $"{{\"jsonrpc\":\"2.0\",\"id\":\"{i}\",\"method\":\"message/send\",\"params\":{{\"message\":{{\"role\":\"user\",\"messageId\":\"m-{i}\",\"parts\":[{{\"kind\":\"text\",\"text\":\"message {i} of a long run that the platform logs\"}}]}}}}}}"
        // each answer within the client's 15 s timeout, or http throws
        let code, answer = http p.Url p.AdminToken HttpMethod.Post $"/workspaces/{id}/a2a" (Some body)
        Assert.True((code = 200), $"message {i}: {code} {answer}")

    Assert.Equal(0, p.Stop())

[<Fact>]
let ``platform --enable-faults serves the fault routes with a warning; without it they are 404`` () =
    let dir = tempDir "faults"
    use on = new PlatformProcess(dir, [ "--enable-faults" ])
    eventually "stderr" (fun () -> on.Stderr) Notices.faults
    let code, _ = http on.Url on.AdminToken HttpMethod.Post "/admin/faults" (Some """{"path_prefix":"/nothing","status":500}""")
    Assert.Equal(200, code)
    Assert.Equal(0, on.Stop())

    use off = new PlatformProcess(tempDir "nofaults")
    let code, _ = http off.Url off.AdminToken HttpMethod.Post "/admin/faults" (Some """{"path_prefix":"/nothing","status":500}""")
    Assert.Equal(404, code)
    Assert.DoesNotContain("warning:", off.Stderr)

[<Fact>]
let ``platform --host 0.0.0.0 warns what is exposed, still refuses a foreign Host, and the admin commands work`` () =
    let dir = tempDir "lan"
    use platform = new PlatformProcess(dir, [ "--host"; "0.0.0.0"; "--allowed-host"; "team.example.com"; "--open-registration" ])
    eventually "stderr" (fun () -> platform.Stderr) "reverse proxy with TLS"
    contains "0.0.0.0:" platform.Stderr
    contains Notices.openRegistration platform.Stderr
    contains "http://127.0.0.1:" platform.Url

    use c = new HttpClient()
    use req = new HttpRequestMessage(HttpMethod.Get, platform.Url + "/health")
    req.Headers.Host <- "rebind.attacker.test"
    use resp = c.Send req
    Assert.Equal(421, int resp.StatusCode)
    use named = new HttpRequestMessage(HttpMethod.Get, platform.Url + "/health")
    named.Headers.Host <- "team.example.com"
    use ok = c.Send named
    Assert.Equal(200, int ok.StatusCode)

    let created = run20 [ "workspace"; "create"; "--name"; "LAN agent"; "--data-dir"; dir ]
    Assert.Equal(0, created.Code)

[<Fact>]
let ``workspace update changes name, role and skills; list shows LAST SEEN; the log names workspaces; platform.json is 0600`` () =
    let dir = tempDir "update"
    use platform = new PlatformProcess(dir)
    let created = run20 [ "workspace"; "create"; "--name"; "Docs Writer"; "--skills"; "docs"; "--data-dir"; dir ]
    Assert.Equal(0, created.Code)
    let id = field "id" created.Out
    let token = field "token" created.Out
    contains "Hermes Agent (run once):" created.Out
    contains "hermes mcp add docs-writer --command " created.Out

    let updated = run20 [ "workspace"; "update"; id; "--name"; "Docs Editor"; "--role"; "editor"; "--skills"; "docs,review"; "--data-dir"; dir ]
    Assert.True((updated.Code = 0), updated.Err)
    contains "Docs Editor (editor); skills docs,review" updated.Out
    let nothing = run20 [ "workspace"; "update"; id; "--data-dir"; dir ]
    Assert.Equal(2, nothing.Code)
    contains "nothing to change" nothing.Err

    let listed = run20 [ "workspace"; "list"; "--data-dir"; dir ]
    contains "LAST SEEN" listed.Out
    contains "never" listed.Out
    contains "Docs Editor" listed.Out

    let short = id.Replace("-", "").Substring(0, 8)
    eventually "log" (fun () -> platform.Stderr) $"Docs Writer ({short}) was created"
    eventually "log" (fun () -> platform.Stderr) $"Docs Editor ({short}) was edited"
    Assert.DoesNotContain(token, platform.Stderr)
    Assert.DoesNotContain(platform.AdminToken, platform.Stderr)

    if not (OperatingSystem.IsWindows()) then
        Assert.Equal("600", DataDir.modeOf (Path.Combine(dir, "platform.json")))
        Assert.Equal("700", DataDir.modeOf dir)

/// Calls a tool with arguments; the text of its answer.
let private call (client: ModelContextProtocol.Client.McpClient) (tool: string) (args: (string * obj) list) =
    task {
        let d = Dictionary<string, obj>()

        for (k, v) in args do
            d[k] <- v

        let! r = client.CallToolAsync(tool, d)
        return Tool.textOf r
    }

[<Fact>]
let ``molecule-mcp: a 10 MB commit_memory and a 2 MB send_message_to_user show the platform's 413 message, not Broken pipe`` () =
    task {
        let dir = tempDir "wheel413"
        let! platform = Server.start (Server.PlatformOptions.defaults (Path.Combine(dir, "platform")))

        try
            use admin = new HttpClient()
            admin.DefaultRequestHeaders.Authorization <- Headers.AuthenticationHeaderValue("Bearer", platform.AdminToken)
            use! created = admin.PostAsync(platform.Url + "/workspaces", new StringContent("""{"name":"big writer"}""", Encoding.UTF8, "application/json"))
            let! text = created.Content.ReadAsStringAsync()
            let ws = JsonNode.Parse text
            let stderr = StringBuilder()

            let env =
                [ "WORKSPACE_ID", ws["id"].GetValue<string>()
                  "PLATFORM_URL", platform.Url
                  "MOLECULE_WORKSPACE_TOKEN", ws["auth_token"].GetValue<string>()
                  "CONFIGS_DIR", Path.Combine(dir, "state")
                  // molecule-mcp drops stdin lines over 4 MiB itself; let the 10 MB call through to the platform
                  "MOLECULE_MCP_MAX_LINE_BYTES", "33554432" ]

            let! client = connect (Binary.path ()) env stderr

            try
                let! memory = call client "commit_memory" [ "content", box (String('m', 10_000_000)); "scope", box "LOCAL" ]
                contains Server.bodyTooLarge memory
                contains "413" memory
                Assert.DoesNotContain("Broken pipe", memory)
                let! notify = call client "send_message_to_user" [ "message", box (String('n', 2_000_000)) ]
                contains Server.bodyTooLarge notify
                let! small = call client "commit_memory" [ "content", box "still fine"; "scope", box "LOCAL" ]
                Assert.DoesNotContain("413", small)
            finally
                client.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds 10.0) |> ignore
        finally
            platform.StopAsync().Wait(TimeSpan.FromSeconds 10.0) |> ignore
    }

[<Fact>]
let ``platform: a database newer than this binary stops the start with one line naming both versions (exit 1); the limit switches are accepted`` () =
    let dir = tempDir "too-new"
    (SqliteStore.openAt dir ignore).Dispose()

    do
        use conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(dir, SqliteStore.DatabaseFile)};Pooling=False")
        conn.Open()
        use cmd = conn.CreateCommand()
        cmd.CommandText <- $"UPDATE schema_version SET version = {Schema.latest + 5}"
        cmd.ExecuteNonQuery() |> ignore

    let r = run20 [ "platform"; "--data-dir"; dir; "--port"; "0" ]
    Assert.Equal(1, r.Code)
    contains $"schema version {Schema.latest + 5}" r.Err
    contains $"up to version {Schema.latest}" r.Err
    Assert.DoesNotContain("   at ", r.Err) // a message, not a stack trace
    Assert.Equal("", r.Out.Trim())
    Directory.Delete(dir, true)

    let help = run20 [ "platform"; "--help" ]

    for flag in [ "--rate-registry"; "--rate-activity"; "--rate-memories"; "--rate-broadcast"; "--rate-files"; "--rate-requests"; "--upload-mib"; "--streams-per-token" ] do
        contains flag help.Out

    use p = new PlatformProcess(tempDir "limits", [ "--rate-memories"; "1"; "--streams-per-token"; "1"; "--upload-mib"; "1" ])
    let code, created = http p.Url p.AdminToken HttpMethod.Post "/workspaces" (Some """{"name":"Limited"}""")
    Assert.Equal(201, code)
    let node = JsonNode.Parse created
    let id, token = node["id"].GetValue<string>(), node["auth_token"].GetValue<string>()
    let first, _ = http p.Url token HttpMethod.Get $"/workspaces/{id}/memories" None
    let second, answer = http p.Url token HttpMethod.Get $"/workspaces/{id}/memories" None
    Assert.Equal((200, 429), (first, second))
    contains "at most 1 memory calls a minute per token" answer
    Assert.Equal(0, p.Stop())

