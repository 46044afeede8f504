/// stdout hygiene and robustness at the byte level (RawProcess), and token hygiene over busy sessions.
module Molecule.Tests.Host.ProtocolTests

open Molecule.Protocol

open System
open System.IO
open System.Text.Json.Nodes
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

[<Fact>]
let ``raw garbage on stdin does not stop the server and every stdout line is JSON-RPC`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "garbage"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()

        for line in
            [ "hello, this is not JSON"
              "[1,2,3]"
              """{"jsonrpc":"2.0","id":5,"method":"""
              "{}"
              "null"
              "42"
              "\"just a string\""
              """{"jsonrpc":"1.0","id":6,"method":"ping"}"""
              """{"jsonrpc":"2.0","id":7,"method":"no/such/method","params":{}}"""
              """{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}"""
              """{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"inbox_pop","arguments":{"activity_id":42}}}"""
              """{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"wait_for_message","arguments":"oops"}}""" ] do
            p.Send line

        // a request with a string id is answered with the same string id
        p.Send """{"jsonrpc":"2.0","id":"abc-1","method":"ping"}"""
        let! strIdAnswer = p.WaitResponse(JsonValue.Create "abc-1")
        Assert.NotNull(strIdAnswer["result"])
        let! unknown = p.WaitResponse(JsonValue.Create 7)
        Assert.True(not (isNull unknown["error"]), $"unknown method must get an error: {unknown.ToJsonString()}")
        let! badArg = p.WaitResponse(JsonValue.Create 9)
        Assert.True(
            not (isNull badArg["error"]) || (badArg["result"]["isError"]).GetValue<bool>(),
            $"a non-string activity_id must be refused: {badArg.ToJsonString()}"
        )

        // still answering
        let! ping = p.Request "ping"
        Assert.NotNull(ping["result"])
        let! tools = p.Request "tools/list"
        Assert.Equal(22, (tools["result"]["tools"]).AsArray().Count)
        let! info = p.CallTool("get_workspace_info", "{}")
        Assert.Contains(ws.Id, info.ToJsonString())

        p.CloseStdin()
        let! code = p.WaitExit 10.0
        Assert.True((code = 0), $"exit code {inv code}\n{p.Describe()}")
        assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
        assertNoSecrets [ ws.Token ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
    }

[<Fact>]
let ``every stdout byte is JSON-RPC over a whole session with notifications and tool calls`` () =
    task {
        use! platform = Platform.StartAsync()
        let! parent = platform.CreateWorkspace("lead", role = "lead")
        let! ws = platform.CreateWorkspace("worker", parent = parent, skills = [ "x" ])
        let! peer = platform.CreateWorkspace("peer", parent = parent)
        let env = agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1" ]
        use p = RawProcess.Start env
        let! _ = p.Initialize()
        let! _ = p.Request "tools/list"
        let tricky = "line one\nline two with unicode ✓, \"quotes\", <tags> & a \u2028 separator"
        let! _ = platform.CanvasMessage(ws.Id, tricky)
        let! _ = platform.PeerMessage(peer, ws.Id, "from the peer")
        do! waitUntil (secs 15.0) "two channel notifications" p.Describe (fun () -> p.ChannelNotifications.Length >= 2)
        let contents = p.ChannelNotifications |> List.map (fun n -> pushedText n.["params"])
        Assert.Contains(tricky, contents)
        Assert.Contains("from the peer", contents)
        let file = Path.Combine(tempDir "att", "notes.txt")
        File.WriteAllText(file, "attached")

        for (name, args) in
            [ "get_workspace_info", "{}"
              "list_peers", "{}"
              "inbox_peek", "{\"limit\":5}"
              "wait_for_message", "{\"timeout_secs\":1}"
              "commit_memory", "{\"content\":\"remember this\",\"scope\":\"LOCAL\"}"
              "recall_memory", "{\"query\":\"remember\"}"
              "send_message_to_user", "{\"message\":\"progress\",\"attachments\":[" + JsonValue.Create(file).ToJsonString() + "]}"
              "delegate_task_async", $"{{\"workspace_id\":\"{peer.Id}\",\"task\":\"t\"}}"
              "check_task_status", "{}"
              "delegate_task", $"{{\"workspace_id\":\"{peer.Id}\",\"task\":\"t2\"}}" ] do
            let! r = p.CallTool(name, args)
            Assert.True(not (isNull r["result"]), $"{name} did not answer with a result: {r.ToJsonString()}\n{p.Describe()}")

        // a heartbeat failure burst in the middle: logs go to stderr, never stdout
        platform.Fault { FaultRule.make "/registry/heartbeat" 401 with Times = Some 4 }
        let hb = platform.Requests "/registry/heartbeat"
        do! waitUntil (secs 15.0) "5 more heartbeats" p.Describe (fun () -> platform.Requests "/registry/heartbeat" >= hb + 5)
        let! _ = p.Request "ping"
        p.CloseStdin()
        let! code = p.WaitExit 10.0
        Assert.True((code = 0), $"exit code {inv code}\n{p.Describe()}")
        let msgs = assertJsonRpcLines (p.Describe()) p.StdoutBytes
        Assert.True(msgs.Length >= 15, $"expected a busy session on stdout\n{p.Describe()}")
        Assert.Contains(p.StderrLines, fun l -> l.Contains "auth failure 1/3")
        assertNoSecrets [ ws.Token; peer.Token; parent.Token; platform.AdminToken ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
    }

[<Fact>]
let ``token strings never appear in stdout or stderr, also with verbose logs, failures and a rejected register`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "hygiene"
        let! peer = platform.CreateWorkspace "hygiene-peer"
        let env = agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1" ]
        // a busy session through the SDK client with faults on every route family
        use! agent = AgentProcess.StartAsync env
        // register runs alongside the handshake: with a native start (~5 ms) it may still be in flight here, and a
        // 403 fault on it would (rightly) end the process with exit 3. The faults below are for later requests.
        do! waitUntil (secs 15.0) "the first heartbeat (register done)" agent.Describe (fun () -> platform.Requests "/registry/heartbeat" >= 1)
        platform.Fault { FaultRule.make "/workspaces/" 500 with Times = Some 3; Body = """{"error":"boom"}""" }
        platform.Fault { FaultRule.make "/registry/" 403 with Times = Some 3 }
        let! _ = agent.Call("get_workspace_info", [])
        let! _ = agent.Call("list_peers", [])
        let! _ = agent.Call("recall_memory", [ "query", box "x" ])
        let! _ = agent.Call("delegate_task", [ "workspace_id", box peer.Id; "task", box "hi" ])
        let! _ = agent.Call("send_message_to_user", [ "message", box "m" ])
        let! _ = platform.CanvasMessage(ws.Id, "ping from canvas")
        let! _ = agent.WaitNotification(fun n -> pushedText n = "ping from canvas")
        agent.AssertNoTokenLeak [ peer.Token; platform.AdminToken ]

        // a process whose register is rejected: the wrong token must not be echoed either
        let wrong = "leaky-" + Guid.NewGuid().ToString("N")
        let envBad = env |> List.map (fun (k, v) -> if k = "MOLECULE_WORKSPACE_TOKEN" then k, wrong else k, v)
        use bad = RawProcess.Start envBad
        let! code = bad.WaitExit 20.0
        Assert.True((code = 3), $"exit code {inv code}\n{bad.Describe()}")
        assertNoSecrets [ wrong; ws.Token ] "stdout/stderr of the rejected process" [ bad.StdoutText; bad.Stderr ]

        // a token given through the state-dir token file (no env token) is not printed either
        let configs = tempDir "configs-file"
        File.WriteAllText(Path.Combine(configs, ".auth_token"), wrong + "\n")
        let envFile =
            env
            |> List.filter (fun (k, _) -> k <> "MOLECULE_WORKSPACE_TOKEN")
            |> List.map (fun (k, v) -> if k = "CONFIGS_DIR" then k, configs else k, v)
        use fromFile = RawProcess.Start envFile
        let! code2 = fromFile.WaitExit 20.0
        assertNoSecrets [ wrong ] "stdout/stderr with a token file" [ fromFile.StdoutText; fromFile.Stderr ]
        Assert.True((code2 = 3 || code2 = 2), $"exit code {inv code2}\n{fromFile.Describe()}")
    }

/// The stdout checker itself must be able to fail.
[<Fact>]
let ``the stdout checker rejects non-JSON-RPC output, partial lines and leaked secrets`` () =
    let bytes (s: string) = Text.Encoding.UTF8.GetBytes s
    let rejects (s: string) =
        Assert.ThrowsAny<exn>(fun () -> assertJsonRpcLines "self-test" (bytes s) |> ignore) |> ignore

    rejects "hello\n"
    rejects "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}" // no final newline
    rejects "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}\n"
    rejects "{\"jsonrpc\":\"2.0\",\"id\":1}\n"
    rejects "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}\n"
    rejects "[1,2,3]\n"
    rejects "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n[molecule-mcp] log line\n"

    let ok =
        assertJsonRpcLines
            "self-test"
            (bytes "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/claude/channel\",\"params\":{}}\n{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}\n")

    Assert.Equal(3, ok.Length)
    Assert.ThrowsAny<exn>(fun () -> assertNoSecrets [ "s3cret-token" ] "self-test" [ "ok"; "Bearer s3cret-token" ]) |> ignore
    assertNoSecrets [ "s3cret-token" ] "self-test" [ "ok"; "Bearer s3cr…" ]

[<Fact>]
let ``the end of stdin: the requests already sent are answered, a last line without a newline too, then exit 0 (P37)`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "eof"
        use p = RawProcess.Start(agentEnv platform ws)
        // what `printf '…' | molecule-mcp` does: everything at once, no newline after the last request, then EOF
        let init =
            """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"pipe","version":"1"}}}"""
        let stdin = p.Process.StandardInput
        stdin.Write(init + "\n")
        stdin.Write("""{"jsonrpc":"2.0","method":"notifications/initialized"}""" + "\n")
        stdin.Write("""{"jsonrpc":"2.0","id":2,"method":"tools/list"}""" + "\n")
        stdin.Write("""{"jsonrpc":"2.0","id":3,"method":"ping"}""")
        stdin.Flush()
        p.CloseStdin()
        let answered () =
            p.Messages |> List.choose (fun m -> match m["id"] with null -> None | id -> Some(id.ToJsonString())) |> List.sort
        do! waitUntil (secs 15.0) "answers to the three requests sent before EOF" p.Describe (fun () -> answered () = [ "1"; "2"; "3" ])
        Assert.True(p.Process.WaitForExit(TimeSpan.FromSeconds 15.0), $"did not exit after EOF\n{p.Describe()}")
        Assert.Equal(0, p.Process.ExitCode)
        assertJsonRpcLines "eof" p.StdoutBytes |> ignore
    }
