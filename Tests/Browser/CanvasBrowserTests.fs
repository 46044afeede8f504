/// The canvas page in headless Chromium: the platform runs in-process, a real published `molecule-mcp` is the
/// agent (driven by an MCP client), and `node Tests/Browser/canvas.e2e.mjs` (playwright-core + Debian's
/// /usr/bin/chromium) is the user. Plus fast checks of how the page is served and written.
module Molecule.Tests.Browser.CanvasBrowserTests

open Molecule.Protocol

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open ModelContextProtocol.Client
open ModelContextProtocol.Protocol
open Xunit
open Xunit.Abstractions
open Molecule.Platform

let private chromiumPath () =
    match Environment.GetEnvironmentVariable "CHROMIUM_PATH" with
    | p when not (String.IsNullOrWhiteSpace p) -> p
    | _ -> "/usr/bin/chromium"

/// The repository root: the first ancestor of the test assembly holding Tests/Browser/canvas.e2e.mjs.
let private repoRoot () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then
            failwith "Tests/Browser/canvas.e2e.mjs not found above the test assembly; run the tests from the repository"
        elif File.Exists(Path.Combine(dir.FullName, "Tests", "Browser", "canvas.e2e.mjs")) then
            dir.FullName
        else
            up dir.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

let private browserDir () = Path.Combine(repoRoot (), "Tests", "Browser")

let private tempDir (what: string) = Molecule.Tests.Support.TempDirs.create ("canvas-" + what)

/// Runs a command to completion (short checks such as `node --version`); None when it cannot start.
let private tryRun (file: string) (args: string list) : (int * string) option =
    try
        let psi = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        args |> List.iter psi.ArgumentList.Add
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEnd()
        p.WaitForExit 20000 |> ignore
        Some(p.ExitCode, out.Trim())
    with _ ->
        None

/// What is missing to run the browser test, each with the command that fixes it (empty: ready).
let missingPrerequisites () : string list =
    [ if not (File.Exists(chromiumPath ())) then
          yield $"{chromiumPath ()} is missing: install Debian's chromium with `apt-get update && apt-get install -y chromium`"
      match tryRun "node" [ "--version" ] with
      | Some(0, _) -> ()
      | _ -> yield "node is not on PATH: install Node.js 18 or newer (e.g. `apt-get install -y nodejs npm`)"
      if not (File.Exists(Path.Combine(browserDir (), "node_modules", "playwright-core", "package.json"))) then
          yield "Tests/Browser/node_modules is missing: run `npm ci --prefix Tests/Browser` (or `dotnet fsi build.fsx test`)" ]

let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 20.0)

let private send (meth: string) (url: string) (token: string) (body: string option) : Task<int * string> =
    task {
        use req = new HttpRequestMessage(HttpMethod meth, url)
        body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
        if token <> "" then
            req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", token)
        use! resp = http.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return int resp.StatusCode, text
    }

let private str (n: JsonNode) (name: string) =
    match n with
    | :? JsonObject as o ->
        match o[name] with
        | :? JsonValue as v ->
            match v.TryGetValue<string>() with
            | true, s -> s
            | _ -> null
        | _ -> null
    | _ -> null

/// Polls until `f` holds or the time is up.
let private eventually (timeout: TimeSpan) (f: unit -> Task<bool>) : Task<bool> =
    task {
        let sw = Stopwatch.StartNew()
        let mutable ok = false

        while not ok && sw.Elapsed < timeout do
            let! r = f ()
            ok <- r
            if not ok then do! Task.Delay 100

        return ok
    }

/// A started child process whose stdout/stderr lines are collected.
type private Child(psi: ProcessStartInfo) =
    let lines = ResizeArray<string>()
    let p = new Process(StartInfo = psi, EnableRaisingEvents = true)
    let add prefix (e: DataReceivedEventArgs) = if not (isNull e.Data) then lock lines (fun () -> lines.Add(prefix + e.Data))

    do
        p.OutputDataReceived.Add(add "")
        p.ErrorDataReceived.Add(add "stderr: ")
        p.Start() |> ignore
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()

    member _.Lines = lock lines (fun () -> List.ofSeq lines)
    member _.Output = String.Join("\n", lock lines (fun () -> List.ofSeq lines))
    member _.Process = p

    member this.WaitAsync(timeout: TimeSpan) : Task<bool> =
        task {
            use cts = new CancellationTokenSource(timeout)

            try
                do! p.WaitForExitAsync cts.Token
                p.WaitForExit() // drain the async output readers
                return true
            with :? OperationCanceledException ->
                return false
        }

    interface IDisposable with
        member _.Dispose() =
            (try
                if not p.HasExited then p.Kill true
             with _ ->
                 ())

            p.Dispose()

type CanvasBrowserTests(output: ITestOutputHelper) =

    [<Fact>]
    member _.``canvas: the page and its assets are served from the binary with a strict content security policy``() =
        task {
            let! platform = Canvas.start (Server.PlatformOptions.defaults (tempDir "serve"))

            try
                let! code, html = send "GET" (platform.Url + "/") "" None
                Assert.Equal(200, code)
                Assert.Contains("<title>Molecule canvas</title>", html)

                use! resp = http.GetAsync(platform.Url + "/")
                Assert.Equal("text/html; charset=utf-8", resp.Content.Headers.ContentType.ToString())
                let csp = String.Join(";", resp.Headers.GetValues "Content-Security-Policy")
                Assert.Contains("script-src 'self'", csp)
                Assert.DoesNotContain("unsafe-inline", csp)
                Assert.Contains("frame-ancestors 'none'", csp)

                for (name, ctype) in Canvas.assets do
                    use! r = http.GetAsync(platform.Url + "/canvas/" + name)
                    Assert.Equal(200, int r.StatusCode)
                    Assert.Equal(ctype, r.Content.Headers.ContentType.ToString())
                    let! bytes = r.Content.ReadAsByteArrayAsync()
                    Assert.Equal<byte[]>((Canvas.asset name).Value, bytes)

                let! missing, body = send "GET" (platform.Url + "/canvas/nope.js") "" None
                Assert.Equal(404, missing)
                Assert.Contains("not found", body)
                // the platform's own routes are untouched
                let! health, _ = send "GET" (platform.Url + "/health") "" None
                Assert.Equal(200, health)
            finally
                platform.StopAsync().Wait()
        }

    [<Fact>]
    member _.``canvas: untrusted text never reaches an HTML parser (no innerHTML, no inline script or handlers)``() =
        let html = Encoding.UTF8.GetString((Canvas.asset "index.html").Value)
        let scripts = Canvas.assets |> List.map fst |> List.filter (fun n -> n.EndsWith ".js")
        Assert.True(scripts.Length >= 10, $"only {scripts.Length} scripts")

        for name in scripts do
            let js = Encoding.UTF8.GetString((Canvas.asset name).Value)

            for sink in [ "innerHTML"; "outerHTML"; "insertAdjacentHTML"; "document.write"; "eval("; "new Function" ] do
                Assert.False(js.Contains sink, $"{name} uses {sink}")

            // no product file over 400 lines
            Assert.True(js.Split('\n').Length <= 400, $"{name} has more than 400 lines")

        Assert.Matches(Regex "textContent", Encoding.UTF8.GetString((Canvas.asset "core.js").Value))
        // every <script> has a src (the CSP forbids inline code) and no element has an on* handler attribute
        for m in Regex.Matches(html, "<script\\b[^>]*>") do
            Assert.Contains("src=", m.Value)

        Assert.DoesNotMatch(Regex("<[^>]+\\son[a-z]+\\s*=", RegexOptions.IgnoreCase), html)

    [<Fact>]
    member _.``canvas: a user message typed in headless Chromium reaches molecule-mcp as a canvas_user channel notification and the agent's reply appears as a bubble``
        ()
        =
        task {
            match missingPrerequisites () with
            | [] -> ()
            | missing -> Assert.Fail("the browser test cannot run:\n  " + String.Join("\n  ", missing))

            let binary = Molecule.Tests.Support.Binary.path ()
            let work = tempDir "e2e"
            let! platform = Canvas.start (Server.PlatformOptions.defaults (Path.Combine(work, "platform")))

            try
                // the workspace the agent joins
                let create =
                    """{"name":"Research lead","role":"lead","skills":["summarise","web-research"],"description":"canvas e2e"}"""

                let! code, created = send "POST" (platform.Url + "/workspaces") platform.AdminToken (Some create)
                Assert.True((code = 201), $"create workspace: HTTP {code} {created}")
                let ws = JsonNode.Parse created
                let wsId = str ws "id"
                let wsToken = str ws "auth_token"

                // the agent: the real published binary, driven by an MCP client
                let notifications = Channel.CreateUnbounded<JsonRpcNotification>()
                let agentErr = ResizeArray<string>()

                let env = Dictionary<string, string>()
                env["WORKSPACE_ID"] <- wsId
                env["PLATFORM_URL"] <- platform.Url
                env["MOLECULE_WORKSPACE_TOKEN"] <- wsToken
                env["CONFIGS_DIR"] <- Path.Combine(work, "configs")
                env["MOLECULE_MCP_POLL_INTERVAL_SECS"] <- "0.3"

                let transport =
                    new StdioClientTransport(
                        StdioClientTransportOptions(
                            Name = "canvas-agent",
                            Command = binary,
                            EnvironmentVariables = env,
                            StandardErrorLines = (fun l -> lock agentErr (fun () -> agentErr.Add l))
                        )
                    )

                let handler =
                    Func<JsonRpcNotification, CancellationToken, ValueTask>(fun n _ ->
                        notifications.Writer.TryWrite n |> ignore
                        ValueTask.CompletedTask)

                let options =
                    McpClientOptions(
                        ClientInfo = Implementation(Name = "canvas-e2e", Version = "1"),
                        ProtocolVersion = "2025-06-18",
                        Handlers = McpClientHandlers(NotificationHandlers = [ KeyValuePair("notifications/claude/channel", handler) ])
                    )

                let! client = McpClient.CreateAsync(transport, options)

                try
                    let agentLog () = String.Join("\n", lock agentErr (fun () -> List.ofSeq agentErr))

                    let! online =
                        eventually (TimeSpan.FromSeconds 20.0) (fun () ->
                            task {
                                let! _, body = send "GET" (platform.Url + "/workspaces/" + wsId) "" None
                                return str (JsonNode.Parse body) "status" = "online"
                            })

                    Assert.True(online, "the agent never registered (workspace not online). molecule-mcp stderr:\n" + agentLog ())

                    // what the user types (markup must stay text) and what the agent answers
                    let userText = "Hello from the canvas <b>bold?</b> & \"quotes\" " + Guid.NewGuid().ToString("N").Substring(0, 6)
                    let replyText = "Here is the summary you asked for <script>x()</script> " + Guid.NewGuid().ToString("N").Substring(0, 6)
                    let attachment = Path.Combine(work, "summary-notes.txt")
                    File.WriteAllText(attachment, "notes for the canvas test\n")
                    let screenshotDir = tempDir "e2e-screenshots"
                    let screenshot = Path.Combine(screenshotDir, "canvas-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss") + ".png")

                    let psi =
                        ProcessStartInfo(
                            "node",
                            WorkingDirectory = browserDir (),
                            RedirectStandardOutput = true,
                            RedirectStandardError = true,
                            UseShellExecute = false
                        )

                    [ Path.Combine(browserDir (), "canvas.e2e.mjs")
                      platform.Url
                      platform.AdminToken
                      wsId
                      userText
                      replyText
                      Path.GetFileName attachment
                      screenshot ]
                    |> List.iter psi.ArgumentList.Add

                    psi.Environment["CANVAS_ATTACHMENT_TEXT"] <- File.ReadAllText attachment
                    use node = new Child(psi)

                    // the agent receives the typed message as a channel notification
                    use wait = new CancellationTokenSource(TimeSpan.FromSeconds 60.0)
                    let mutable received: JsonNode = null

                    try
                        while isNull received do
                            let! n = notifications.Reader.ReadAsync(wait.Token)
                            let p = n.Params
                            let meta = if isNull p then null else p["meta"]

                            if not (isNull p) && Molecule.Tests.Host.Harness.messageTextOf (str p "content") = userText then
                                received <- p
                            else
                                output.WriteLine("other channel notification: " + (if isNull p then "" else p.ToJsonString()))
                    with :? OperationCanceledException ->
                        Assert.Fail(
                            "no channel notification with the typed text within 60 s.\nnode output:\n"
                            + node.Output
                            + "\nmolecule-mcp stderr:\n"
                            + agentLog ()
                        )

                    Assert.Equal("canvas_user", str received["meta"] "kind")
                    Assert.Equal("", str received["meta"] "peer_id") // present and empty for the canvas user (as the reference)
                    output.WriteLine("agent got: " + received.ToJsonString())

                    // the agent answers the user
                    let args = Dictionary<string, obj>()
                    args["message"] <- box replyText
                    args["attachments"] <- box [| attachment |]
                    let! result = client.CallToolAsync("send_message_to_user", args)

                    let resultText = Molecule.Tests.Support.Tool.textOf result

                    Assert.False(result.IsError.GetValueOrDefault false, "send_message_to_user failed: " + resultText)

                    let! exited = node.WaitAsync(TimeSpan.FromSeconds 90.0)
                    output.WriteLine(node.Output)
                    Assert.True(exited, "canvas.e2e.mjs did not finish within 90 s:\n" + node.Output)
                    Assert.True((node.Process.ExitCode = 0), $"canvas.e2e.mjs exited with {node.Process.ExitCode}:\n{node.Output}")
                    let lines = node.Lines |> List.filter (fun l -> not (l.StartsWith "stderr: "))
                    Assert.Equal("OK", List.last lines)
                    Assert.Contains("SENT", lines)
                    Assert.Equal(8, lines |> List.filter (fun l -> l.StartsWith "STEP ") |> List.length)
                    Assert.True(File.Exists screenshot && FileInfo(screenshot).Length > 10000L, "no screenshot at " + screenshot)
                    output.WriteLine("screenshot: " + screenshot)
                finally
                    client.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds 10.0) |> ignore
            finally
                platform.StopAsync().Wait(TimeSpan.FromSeconds 10.0) |> ignore
        }
