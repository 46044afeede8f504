/// End-to-end tests of the interactive commands (platform, workspace, token, demo) on the PUBLISHED binary
/// (`dotnet fsi build.fsx publish`), plus the stdout hygiene of the stdio-server mode.
module Molecule.Tests.PlatformHost.CliTests

open Molecule.Protocol

open System
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading
open Xunit
open Molecule.Tests.Support
open Molecule.Tests.PlatformHost.CliSupport

let private contains (needle: string) (hay: string) =
    Assert.True(hay.Contains(needle, StringComparison.Ordinal), $"expected to find \"{needle}\" in:\n{hay}")

// ------------------------------------------------------------------ demo

[<Fact>]
let ``demo: exits 0 with every numbered step marked done, in well under a minute, tokens masked`` () =
    let sw = Stopwatch.StartNew()
    let r = run [ "demo" ] (TimeSpan.FromSeconds 90.0)
    sw.Stop()
    let out = r.Out
    Assert.True((r.Code = 0), $"demo exit {r.Code}\nstdout:\n{out}\nstderr:\n{r.Err}")

    // steps 1..8 are numbered headers, each followed by ✔ lines and no ✘ anywhere
    for n in 1..8 do
        Assert.Matches($"(?m)^{n}\\. \\S", out)

    Assert.DoesNotContain("✘", out)
    let checks = out.Split('\n') |> Array.filter (fun l -> l.TrimStart().StartsWith("✔ ", StringComparison.Ordinal))
    Assert.True(checks.Length >= 15, $"only {checks.Length} ✔ lines:\n{out}")
    contains "All 8 steps passed" out

    // what each step must show
    contains "list_peers from Lead shows Researcher [research, summaries] and Coder [csharp, testing]" out
    contains "Researcher wait_for_message → the task from Lead" out
    contains "Lead wait_for_message → \"Answer:" out
    contains "notifications/claude/channel" out
    contains "send_message_to_user" out
    contains "recall_memory" out
    contains "Lead chat_history(peer_id=" out
    contains "with MOLECULE_WORKSPACES" out
    contains "(arrival_workspace_id " out
    contains "each line saying via which one" out
    contains "was deleted on the platform" out
    contains "3 consecutive heartbeat auth failures" out
    contains "temporary directory removed" out
    // where the binaries are, and how to put them on PATH (they are not on the test's PATH)
    contains $"molecule-mcp at {Binary.path ()}" out
    contains "export PATH=" out

    // the transcript never shows a token: the masked form appears, no 43-char base64url secret does
    contains "***" out
    Assert.DoesNotMatch("[A-Za-z0-9_-]{43}", out)
    Assert.True(sw.Elapsed < TimeSpan.FromSeconds 60.0, $"demo took {sw.Elapsed}")

/// Issue 18: the loop guard's defaults never trip in normal work. The demo's agents run with the guard at its defaults
/// (the runner's own MOLECULE_MCP_LOOP_* are removed) and the demo checks the platform for loop_guard requests; its
/// busiest pair sends one message with no human turn in between, so even every bound at 1 pauses nothing
/// (bench/README.md, "Loop guard bounds, measured").
[<Fact>]
let ``demo: with the loop guard at its defaults, or every bound at 1, no pair of agents is paused`` () =
    let bounds1 = [ "MOLECULE_MCP_LOOP_MAX_EXCHANGES", "1"; "MOLECULE_MCP_LOOP_MAX_PER_MINUTE", "1"; "MOLECULE_MCP_LOOP_MAX_REPEATS", "1" ]
    for env in [ []; bounds1 ] do
        let r = runEnv env [ "demo" ] (TimeSpan.FromSeconds 90.0)
        Assert.True((r.Code = 0), $"demo {env} exit {r.Code}\nstdout:\n{r.Out}\nstderr:\n{r.Err}")
        contains "✔ loop guard: no pair of agents paused (no loop_guard request on the platform)" r.Out

[<Fact>]
let ``demo: a failure is reported with ✘ and exit 1, not a crash`` () =
    // TMPDIR names a regular file, so the demo cannot create its temporary directory.
    let blocker = Path.Combine(tempDir "demo-fail", "not-a-dir")
    File.WriteAllText(blocker, "")
    let r = runEnv [ "TMPDIR", blocker ] [ "demo" ] (TimeSpan.FromSeconds 60.0)
    Assert.True((r.Code = 1), $"exit {r.Code}\nstdout:\n{r.Out}\nstderr:\n{r.Err}")
    contains "✘ Demo FAILED at" r.Out
    Assert.DoesNotContain("Unhandled exception", r.Err)

[<Fact>]
let ``demo: a missing molecule-mcp is reported with every place searched, not as a transport error`` () =
    let r = runEnv [ "MOLECULE_MCP_BIN", "/nonexistent/molecule-mcp" ] [ "demo" ] (TimeSpan.FromSeconds 30.0)
    Assert.True((r.Code = 1), $"exit {r.Code}\nstdout:\n{r.Out}\nstderr:\n{r.Err}")
    contains "molecule-mcp was not found. Looked at:" r.Out
    contains "/nonexistent/molecule-mcp ($MOLECULE_MCP_BIN)" r.Out
    // unset: beside molecule-platform, a sibling molecule-mcp/ folder, then every PATH folder
    let copy = Path.Combine(tempDir "demo-alone", "molecule-platform")
    let source = Path.GetDirectoryName(Binary.platformPath ())
    Directory.CreateDirectory copy |> ignore
    for f in Directory.GetFiles(source, "*", SearchOption.AllDirectories) do
        let target = Path.Combine(copy, Path.GetRelativePath(source, f))
        Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
        File.Copy(f, target)
    let psi = startInfo [ "MOLECULE_MCP_BIN", ""; "PATH", "/usr/local/bin:/usr/bin:/bin" ] [ "demo" ]
    psi.FileName <- "dotnet"
    psi.ArgumentList.Insert(0, Path.Combine(copy, "molecule-platform.dll"))
    use p = Process.Start psi
    p.StandardInput.Close()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    Assert.True((p.ExitCode = 1), $"exit {p.ExitCode}\n{out}")
    for place in [ Path.Combine(copy, "molecule-mcp"); Path.Combine(Path.GetDirectoryName copy, "molecule-mcp", "molecule-mcp"); "/usr/bin/molecule-mcp" ] do
        contains $"  - {place}" out
    Assert.DoesNotContain("IOException", out)
    Assert.DoesNotContain("transport", out)

// ------------------------------------------------------------------ operators: instance name, JSON log

[<Fact>]
let ``platform --instance-name --log-format json: every stderr line is one {time, instance, message} object; /health and /ready name the instance`` () =
    let dir = tempDir "jsonlog"
    use platform = new PlatformProcess(dir, [ "--instance-name"; "green-2"; "--log-format"; "json" ])
    let code, health = http platform.Url "" HttpMethod.Get "/health" None
    Assert.Equal((200, """{"status":"ok","instance":"green-2"}"""), (code, health))
    let readyCode, ready = http platform.Url "" HttpMethod.Get "/ready" None
    Assert.Equal(200, readyCode)
    contains "\"instance\":\"green-2\"" ready
    let token = platform.AdminToken
    Assert.Equal(0, platform.Stop())
    let lines = platform.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    Assert.True(lines.Length >= 2, platform.Stderr)

    for line in lines do
        let o = JsonNode.Parse(line).AsObject()
        Assert.Equal<string list>([ "time"; "instance"; "message" ], [ for kv in o -> kv.Key ])
        Assert.Equal("green-2", o["instance"].GetValue<string>())
        Assert.True(DateTimeOffset.TryParse(o["time"].GetValue<string>()) |> fst, line)

    contains "instance green-2 starting on" platform.Stderr
    contains "listening on" platform.Stderr
    Assert.DoesNotContain(token, platform.Stderr)

// ------------------------------------------------------------------ platform + workspace + connection lines

[<Fact>]
let ``platform + workspace create: the printed JSON config starts a working molecule-mcp; workspace delete gives it the 410 message`` () =
    let dir = tempDir "ws"
    use platform = new PlatformProcess(dir)
    let banner = platform.StdoutWith "Press Ctrl+C to stop."
    contains platform.Url banner
    contains $"Canvas:      {platform.Url}/" banner
    Assert.DoesNotContain(platform.AdminToken, banner)
    contains (Path.Combine(dir, "admin_token")) banner
    Assert.DoesNotContain(platform.AdminToken, platform.Stderr)

    let created =
        run20 [ "workspace"; "create"; "--name"; "Docs Writer"; "--role"; "writer"; "--skills"; "docs, markdown"; "--data-dir"; dir ]

    Assert.True((created.Code = 0), $"create: {created.Code} {created.Err}")
    let id = field "id" created.Out
    let token = field "token" created.Out

    // the JSON config: server name = slug, absolute command = the binary, env with the connection
    let cfg = jsonConfig created.Out
    let server = cfg["mcpServers"].["docs-writer"].AsObject()
    let command = server["command"].GetValue<string>()
    Assert.True(Path.IsPathRooted command, command)
    Assert.Equal(Path.GetFullPath(Binary.path ()), command)
    let env = server["env"].AsObject() |> Seq.map (fun kv -> kv.Key, kv.Value.GetValue<string>()) |> List.ofSeq
    Assert.Contains(("WORKSPACE_ID", id), env)
    Assert.Contains(("PLATFORM_URL", platform.Url), env)
    Assert.Contains(("MOLECULE_WORKSPACE_TOKEN", token), env)
    Assert.Contains(("MOLECULE_AGENT_NAME", "Docs Writer"), env)

    // the Claude Code line names the same server and binary
    let line = claudeLine created.Out
    Assert.StartsWith("claude mcp add docs-writer -s user -- env WORKSPACE_ID=" + id, line)
    Assert.EndsWith(command, line)

    let stderr = StringBuilder()
    let state = Path.Combine(dir, "agent-state")
    Directory.CreateDirectory state |> ignore

    let client =
        (connect command (env @ [ "CONFIGS_DIR", state; "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "1" ]) stderr).Result

    try
        let info = (callText client "get_workspace_info").Result
        contains id info
        contains "Docs Writer" info

        // the list shows it, with its skills, and (after its first register) online
        let sw = Stopwatch.StartNew()

        let rec online () =
            let l = run20 [ "workspace"; "list"; "--data-dir"; dir ]
            Assert.Equal(0, l.Code)

            if l.Out.Contains("online") || sw.Elapsed > TimeSpan.FromSeconds 10.0 then
                l.Out
            else
                Thread.Sleep 200
                online ()

        let listed = online ()
        contains "ID" listed
        contains "SKILLS" listed
        let row = listed.Split('\n') |> Array.find (fun l -> l.StartsWith id)
        contains "Docs Writer" row
        contains "writer" row
        contains "online" row
        contains "docs,markdown" row

        let deleted = run20 [ "workspace"; "delete"; id; "--data-dir"; dir ]
        Assert.True((deleted.Code = 0), $"delete: {deleted.Err}")
        contains "deleted" deleted.Out

        let after = (callText client "get_workspace_info").Result
        contains "was deleted on the platform" after
    finally
        client.DisposeAsync().AsTask().Wait(5000) |> ignore

    // Ctrl+C / SIGTERM stops the platform cleanly and removes platform.json
    Assert.Equal(0, platform.Stop())
    contains "stopped" platform.Stderr
    Assert.False(File.Exists(Path.Combine(dir, "platform.json")), "platform.json left behind")

    // with the platform stopped, admin commands say how to start it (exit 1)
    let down = run20 [ "workspace"; "list"; "--data-dir"; dir ]
    Assert.Equal(1, down.Code)
    contains "molecule-platform platform" down.Err
    Assert.Equal("", down.Out)

[<Fact>]
let ``workspace create: connection lines survive awkward names (shell-quoted, JSON-escaped)`` () =
    let dir = tempDir "quote"
    use platform = new PlatformProcess(dir)

    for name in [ "O'Brien \"the\" $HOME `x`"; "Ünïcödé ✓ agent"; "back\\slash; rm -rf /" ] do
        let r = run20 [ "workspace"; "create"; "--name"; name; "--data-dir"; dir ]
        Assert.True((r.Code = 0), $"create {name}: {r.Err}")

        // JSON: parses, and the env holds the exact name
        let cfg = jsonConfig r.Out
        let servers = cfg["mcpServers"].AsObject()
        Assert.Equal(1, servers.Count)
        let slug = (servers |> Seq.head).Key
        Assert.Matches("^[a-z0-9]+(-[a-z0-9]+)*$", slug)
        let env = (servers |> Seq.head).Value["env"]
        Assert.Equal(name, env["MOLECULE_AGENT_NAME"].GetValue<string>())

        // shell: /bin/sh splits the line into exactly the intended words
        let line = claudeLine r.Out
        let psi = ProcessStartInfo("/bin/sh", UseShellExecute = false, RedirectStandardOutput = true)
        psi.ArgumentList.Add "-c"
        psi.ArgumentList.Add("set -- " + line + "; for w in \"$@\"; do printf '%s\\n' \"$w\"; done")
        use sh = Process.Start psi
        let words = sh.StandardOutput.ReadToEnd().TrimEnd('\n').Split('\n')
        sh.WaitForExit()
        Assert.Equal<string>([| "claude"; "mcp"; "add"; slug; "-s"; "user"; "--"; "env" |], words[0..7])
        Assert.Contains("MOLECULE_AGENT_NAME=" + name, words)
        Assert.Equal(Path.GetFullPath(Binary.path ()), words[words.Length - 1])

// ------------------------------------------------------------------ tokens

[<Fact>]
let ``token mint, list and revoke: a minted token works until it is revoked`` () =
    let dir = tempDir "tok"
    use platform = new PlatformProcess(dir)
    let created = run20 [ "workspace"; "create"; "--name"; "Tokens"; "--data-dir"; dir ]
    let id = field "id" created.Out

    let minted = run20 [ "token"; "mint"; id; "--data-dir"; dir ]
    Assert.True((minted.Code = 0), $"mint: {minted.Err}")
    let token = field "token" minted.Out
    let tokenId = field "token id" minted.Out
    Assert.NotEqual<string>(field "token" created.Out, token)
    let cfg = jsonConfig minted.Out
    Assert.Equal(token, cfg["mcpServers"].["tokens"].["env"].["MOLECULE_WORKSPACE_TOKEN"].GetValue<string>())
    contains "claude mcp add tokens -s user -- env" minted.Out

    // the token authenticates the workspace's own strict routes
    let activity = $"/workspaces/{id}/activity"
    Assert.Equal(200, fst (http platform.Url token HttpMethod.Get activity None))

    let listed = run20 [ "token"; "list"; id; "--data-dir"; dir ]
    Assert.Equal(0, listed.Code)
    contains tokenId listed.Out
    contains (token.Substring(0, 8)) listed.Out
    Assert.DoesNotContain(token, listed.Out)

    let revoked = run20 [ "token"; "revoke"; id; tokenId; "--data-dir"; dir ]
    Assert.True((revoked.Code = 0), $"revoke: {revoked.Err}")
    contains "revoked" revoked.Out
    Assert.Equal(401, fst (http platform.Url token HttpMethod.Get activity None))
    Assert.DoesNotContain(tokenId, (run20 [ "token"; "list"; id; "--data-dir"; dir ]).Out)

    // a 4xx from the platform → exit 1 with the platform's message
    let unknown = run20 [ "token"; "mint"; Guid.NewGuid().ToString(); "--data-dir"; dir ]
    Assert.Equal(1, unknown.Code)
    contains "workspace not found" unknown.Err

    // a wrong admin token → exit 1, says so
    let bad = run20 [ "workspace"; "list"; "--data-dir"; dir; "--admin-token"; "nope-nope-nope" ]
    Assert.Equal(1, bad.Code)
    contains "admin token" bad.Err

// ------------------------------------------------------------------ usage errors

[<Fact>]
let ``usage errors exit 2 with the message on stderr and nothing on stdout`` () =
    let cases =
        [ [ "bogus" ]
          [ "--bogus" ]
          [ "workspace" ]
          [ "workspace"; "create" ]
          [ "workspace"; "delete" ]
          [ "workspace"; "delete"; "not-a-uuid"; "--platform-url"; "http://127.0.0.1:1"; "--admin-token"; "x" ]
          [ "token"; "revoke"; Guid.NewGuid().ToString() ]
          [ "token"; "mint"; "123"; "--platform-url"; "http://127.0.0.1:1"; "--admin-token"; "x" ]
          [ "workspace"; "list"; "--platform-url"; "not a url"; "--admin-token"; "x" ]
          [ "platform"; "--port"; "70000" ]
          [ "platform"; "--port"; "abc" ] ]

    for args in cases do
        let r = run20 args
        let shown = String.Join(' ', args)
        Assert.True((r.Code = 2), $"'{shown}' exited {r.Code}; stderr: {r.Err}")
        Assert.True((r.Out = ""), $"'{shown}' wrote to stdout: {r.Out}")
        Assert.True(r.Err.Trim().Length > 0, $"'{shown}' printed no error")

[<Fact>]
let ``admin commands without a running platform exit 1 and say how to start it`` () =
    let dir = tempDir "none"
    let r = run20 [ "workspace"; "list"; "--data-dir"; dir ]
    Assert.Equal(1, r.Code)
    contains "molecule-platform platform --data-dir" r.Err
    Assert.Equal("", r.Out)

// ------------------------------------------------------------------ stdio mode hygiene

[<Fact>]
let ``stdio mode (no arguments): stdout carries nothing but JSON-RPC, also with heartbeats and a channel push`` () =
    let dir = tempDir "stdio"
    use platform = new PlatformProcess(dir)
    let created = run20 [ "workspace"; "create"; "--name"; "Stdio"; "--data-dir"; dir ]
    let id = field "id" created.Out
    let token = field "token" created.Out

    let psi =
        ProcessStartInfo(Binary.path (), UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true)

    for (k, v) in
        [ "WORKSPACE_ID", id
          "PLATFORM_URL", platform.Url
          "MOLECULE_WORKSPACE_TOKEN", token
          "CONFIGS_DIR", Path.Combine(dir, "stdio-state")
          "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.5"
          "MOLECULE_MCP_POLL_INTERVAL_SECS", "0.3"
          "MOLECULE_MCP_VERBOSE", "1" ] do
        psi.Environment[k] <- v

    Directory.CreateDirectory(Path.Combine(dir, "stdio-state")) |> ignore
    use p = Process.Start psi
    let err = p.StandardError.ReadToEndAsync()
    let lines = Collections.Concurrent.ConcurrentQueue<string>()

    let reader =
        Threading.Tasks.Task.Run(fun () ->
            let mutable l = p.StandardOutput.ReadLine()

            while not (isNull l) do
                lines.Enqueue l
                l <- p.StandardOutput.ReadLine())

    let send (s: string) =
        p.StandardInput.WriteLine s
        p.StandardInput.Flush()

    send """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"""
    Thread.Sleep 300
    send """{"jsonrpc":"2.0","method":"notifications/initialized"}"""
    send """{"jsonrpc":"2.0","id":2,"method":"tools/list"}"""
    send """{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_workspace_info","arguments":{}}}"""

    // a canvas message → the server pushes notifications/claude/channel
    let msg =
        """{"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"ping from the canvas"}]}}}"""

    Assert.Equal(200, fst (http platform.Url platform.AdminToken HttpMethod.Post $"/workspaces/{id}/a2a" (Some msg)))
    let sw = Stopwatch.StartNew()

    while sw.Elapsed < TimeSpan.FromSeconds 10.0
          && not (lines |> Seq.exists (fun l -> l.Contains "notifications/claude/channel")) do
        Thread.Sleep 100

    Thread.Sleep 1500 // a few heartbeats and polls more
    p.StandardInput.Close()
    Assert.True(p.WaitForExit 10000, "server did not exit on stdin EOF")
    reader.Wait 5000 |> ignore
    let all = lines.ToArray()

    for l in all do
        let node =
            try
                JsonNode.Parse l
            with e ->
                failwith $"non-JSON line on stdout: {l}"

        Assert.Equal("2.0", node["jsonrpc"].GetValue<string>())

    let ids = all |> Array.choose (fun l -> match JsonNode.Parse(l)["id"] with null -> None | v -> Some(v.ToJsonString()))
    Assert.Contains("1", ids)
    Assert.Contains("2", ids)
    Assert.Contains("3", ids)
    Assert.True(all |> Array.exists (fun l -> l.Contains "notifications/claude/channel" && l.Contains "ping from the canvas"), String.Join("\n", all))
    Assert.Equal(0, p.ExitCode)
    Assert.DoesNotContain(token, err.Result)
