/// The console screens clicked through in headless Chromium (`node Tests/Browser/console.e2e.mjs`): create a
/// workspace, the tree's keyboard, the Tokens tab (mint, copy, revoke) — with a REAL molecule-mcp started from the
/// copied line —, Details (liveness, delivery, edit), Memories, the feed's filters, the Delegations view, delete with
/// the cascade confirmation (the agent then reports the deletion), and 420 px. Screenshots go to
/// $CONSOLE_SCREENSHOTS (the ones in docs/console/ come from this test).
module Molecule.Tests.Browser.ConsoleBrowserTests

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open ModelContextProtocol.Client
open ModelContextProtocol.Protocol
open Xunit
open Xunit.Abstractions
open Molecule.Platform

let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 20.0)

/// One JSON call with a bearer (and X-Workspace-ID when `caller` is given); fails the test on a non-2xx answer.
let call (meth: string) (url: string) (token: string) (caller: string option) (body: string option) : Task<JsonNode> =
    task {
        use req = new HttpRequestMessage(HttpMethod meth, url)
        body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
        caller |> Option.iter (fun c -> req.Headers.Add("X-Workspace-ID", c))
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        Assert.True(resp.IsSuccessStatusCode, $"{meth} {url}: {int resp.StatusCode} {text}")
        return (if text = "" then null else JsonNode.Parse text)
    }

let private str (n: JsonNode) (name: string) = n[name].GetValue<string>()

/// The repository's Tests/Browser directory (above the test assembly).
let private browserDir () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwith "Tests/Browser/console.e2e.mjs not found above the test assembly"
        elif File.Exists(Path.Combine(dir.FullName, "Tests", "Browser", "console.e2e.mjs")) then Path.Combine(dir.FullName, "Tests", "Browser")
        else up dir.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

/// Starts molecule-mcp exactly as an MCP client would from a JSON config entry {command, env}.
let private startAgent (server: JsonNode) (extra: (string * string) list) (stderr: ResizeArray<string>) : Task<McpClient> =
    let env = Dictionary<string, string>()

    for kv in server["env"].AsObject() do
        env[kv.Key] <- kv.Value.GetValue<string>()

    for (k, v) in extra do
        env[k] <- v

    let transport =
        new StdioClientTransport(
            StdioClientTransportOptions(
                Name = "console-agent",
                Command = str server "command",
                EnvironmentVariables = env,
                StandardErrorLines = (fun l -> lock stderr (fun () -> stderr.Add l))
            )
        )

    McpClient.CreateAsync(transport, McpClientOptions(ClientInfo = Implementation(Name = "console-e2e", Version = "1"), ProtocolVersion = "2025-06-18"))

type ConsoleBrowserTests(output: ITestOutputHelper) =

    [<Fact>]
    member _.``console: every screen clicked through in Chromium; a molecule-mcp started from the line copied in the Tokens tab comes online and reports its deletion``() =
        task {
            match CanvasBrowserTests.missingPrerequisites () with
            | [] -> ()
            | missing -> Assert.Fail("the browser test cannot run:\n  " + String.Join("\n  ", missing))

            let work = Molecule.Tests.Support.TempDirs.create "console"
            let binary = Molecule.Tests.Support.Binary.path ()

            let! platform =
                Canvas.start
                    { Server.PlatformOptions.defaults (Path.Combine(work, "platform")) with
                        McpBinary = Path.GetFullPath binary }

            let agentErr = ResizeArray<string>()
            let mutable agent: McpClient = null

            try
                // the team the screens show: Lead → Researcher, a delegation, a reply, memories
                let admin = platform.AdminToken
                let u (p: string) = platform.Url + p
                let! lead = call "POST" (u "/workspaces") admin None (Some """{"name":"Lead","role":"lead"}""")
                let! res = call "POST" (u "/workspaces") admin None (Some $$"""{"name":"Researcher","parent_id":"{{str lead "id"}}","skills":["research"]}""")
                let leadId, leadToken, resId, resToken = str lead "id", str lead "auth_token", str res "id", str res "auth_token"

                for (id, token) in [ leadId, leadToken; resId, resToken ] do
                    let! _ = call "POST" (u "/registry/register") token None (Some $$"""{"id":"{{id}}","agent_card":{"name":"x"},"delivery_mode":"poll"}""")
                    ()

                let! _ = call "POST" (u $"/workspaces/{leadId}/delegate") leadToken None (Some $$"""{"target_id":"{{resId}}","task":"find three sources"}""")
                do! platform.IdleAsync()
                let message = """{"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"here are the sources"}]}}}"""
                let! _ = call "POST" (u $"/workspaces/{leadId}/a2a") resToken (Some resId) (Some message)
                let! _ = call "POST" (u $"/workspaces/{leadId}/memories") leadToken None (Some """{"content":"the team ships on Fridays","scope":"GLOBAL"}""")
                let! _ = call "POST" (u $"/workspaces/{resId}/memories") resToken None (Some """{"content":"sources live in /notes","scope":"TEAM"}""")

                let shots =
                    match Environment.GetEnvironmentVariable "CONSOLE_SCREENSHOTS" with
                    | s when not (String.IsNullOrWhiteSpace s) -> Path.GetFullPath s
                    | _ -> Path.Combine(work, "screenshots")

                let config = JsonObject()
                config["url"] <- JsonValue.Create platform.Url
                config["token"] <- JsonValue.Create admin
                config["leadId"] <- JsonValue.Create leadId
                config["researcherId"] <- JsonValue.Create resId
                config["screenshots"] <- JsonValue.Create shots
                let configFile = Path.Combine(work, "console.json")
                File.WriteAllText(configFile, config.ToJsonString())

                let psi = ProcessStartInfo("node", WorkingDirectory = browserDir (), RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
                psi.ArgumentList.Add(Path.Combine(browserDir (), "console.e2e.mjs"))
                psi.ArgumentList.Add configFile
                let lines = Channel.CreateUnbounded<string>()
                let all = ResizeArray<string>()
                use node = new Process(StartInfo = psi)
                node.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lines.Writer.TryWrite e.Data |> ignore)
                node.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock all (fun () -> all.Add("stderr: " + e.Data)))
                node.Exited.Add(fun _ -> ())
                node.Start() |> ignore
                node.BeginOutputReadLine()
                node.BeginErrorReadLine()

                use deadline = new CancellationTokenSource(TimeSpan.FromSeconds 150.0)
                let mutable finished = false
                let describe () = String.Join("\n", lock all (fun () -> List.ofSeq all)) + "\nmolecule-mcp stderr:\n" + String.Join("\n", lock agentErr (fun () -> List.ofSeq agentErr))

                try
                    while not finished do
                        let! line = lines.Reader.ReadAsync(deadline.Token)
                        lock all (fun () -> all.Add line)

                        if line.StartsWith "COPIED " then
                            // what a user pastes into an MCP client: the JSON config copied from the Tokens tab
                            let copied = Encoding.UTF8.GetString(Convert.FromBase64String(line.Substring 7))
                            let servers = (JsonNode.Parse copied).["mcpServers"].AsObject()
                            let server = (Seq.head servers).Value
                            Assert.Equal(Path.GetFullPath binary, str server "command")

                            let! client =
                                startAgent
                                    server
                                    [ "CONFIGS_DIR", Path.Combine(work, "agent-state")
                                      "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "1"
                                      "MOLECULE_MCP_POLL_INTERVAL_SECS", "0.5" ]
                                    agentErr

                            agent <- client
                        elif line.StartsWith "DELETED " then
                            Assert.NotNull agent
                            let! r = agent.CallToolAsync("get_workspace_info", Dictionary<string, obj>())
                            let text = Molecule.Tests.Support.Tool.textOf r
                            Assert.Contains("was deleted on the platform", text)
                            output.WriteLine("the agent after the deletion: " + text)
                        elif line = "OK" || line.StartsWith "FAIL" then
                            finished <- true
                with :? OperationCanceledException ->
                    Assert.Fail("console.e2e.mjs did not finish within 150 s:\n" + describe ())

                node.WaitForExit(20000) |> ignore
                let out = describe ()
                output.WriteLine out
                Assert.True((node.ExitCode = 0), $"console.e2e.mjs exited with {node.ExitCode}:\n{out}")
                Assert.Equal(9, lock all (fun () -> all |> Seq.filter (fun l -> l.StartsWith "STEP ") |> Seq.length))

                for name in [ "create"; "tokens"; "details"; "memories"; "feed"; "delegations"; "delete"; "420"; "420-tokens" ] do
                    let f = Path.Combine(shots, $"console-{name}.png")
                    Assert.True(File.Exists f && FileInfo(f).Length > 10000L, "no screenshot " + f)
            finally
                if not (isNull agent) then agent.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds 10.0) |> ignore
                platform.StopAsync().Wait(TimeSpan.FromSeconds 10.0) |> ignore
        }
