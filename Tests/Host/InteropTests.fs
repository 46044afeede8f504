/// Request shapes observed from real MCP clients (docs/interop.md, 2026-11-21), replayed as raw JSON lines.
module Molecule.Tests.Host.InteropTests

open Molecule.Protocol

open System.Threading.Tasks
open System.Text.Json.Nodes
open Xunit
open Molecule.Tests.Host.Harness

let private errorCode (answer: JsonObject) : int option =
    match answer["error"] with
    | null -> None
    | e ->
        match e["code"] with
        | null -> None
        | c -> Some(c.GetValue<int>())

[<Fact>]
let ``a Codex-style session: resource and prompt listings get method-not-found and tool calls with _meta still answer`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "codex-like"
        use p = RawProcess.Start(agentEnv platform ws)
        // Codex 0.169 initialises with 2025-06-18 and a string id
        p.Send """{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"codex-like","version":"0"}}}"""
        let! init = p.WaitResponse(JsonValue.Create "init-1")
        Assert.Equal("2025-06-18", strOf init["result"] "protocolVersion")
        p.Notify "notifications/initialized"

        for m in [ "resources/list"; "resources/templates/list"; "prompts/list" ] do
            let! r = p.Request(m, JsonObject(), 5.0)
            Assert.True((errorCode r = Some -32601), $"{m} should be method-not-found: {r.ToJsonString()}")

        p.Send """{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"get_workspace_info","arguments":{},"_meta":{"threadId":"t-1","progressToken":"pt-1"}}}"""
        let! info = p.WaitResponse(JsonValue.Create "call-1", 30.0)
        Assert.Contains(ws.Id, info["result"].ToJsonString())
        // a numeric progress token and no arguments at all
        p.Send """{"jsonrpc":"2.0","id":"call-2","method":"tools/call","params":{"name":"list_peers","_meta":{"progressToken":7}}}"""
        let! peers = p.WaitResponse(JsonValue.Create "call-2", 30.0)
        Assert.True(not (isNull peers["result"]), peers.ToJsonString())

        p.CloseStdin()
        let! code = p.WaitExit 10.0
        Assert.Equal(0, code)
        assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
    }

[<Fact>]
let ``initialize asking a protocol version newer than ours is answered with 2025-11-25`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "future-version"
        use p = RawProcess.Start(agentEnv platform ws)
        let! init = p.Initialize "2026-07-28"
        Assert.Equal("2025-11-25", strOf init["result"] "protocolVersion")
    }

[<Fact>]
let ``a cancelled wait_for_message gets no answer and the server keeps answering`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "cancel-wait"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize "2025-11-25"
        p.Send """{"jsonrpc":"2.0","id":"w1","method":"tools/call","params":{"name":"wait_for_message","arguments":{"timeout_secs":2},"_meta":{"progressToken":"p1"}}}"""
        do! Task.Delay 500
        p.Send """{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"w1","reason":"user pressed Esc"}}"""
        let! ping = p.Request "ping"
        Assert.NotNull(ping["result"])
        // past the wait's own timeout: a cancelled request must stay unanswered
        do! Task.Delay 3500
        let answered =
            p.Messages
            |> List.exists (fun m -> not (isNull m["id"]) && m["id"].ToJsonString() = "\"w1\"")
        Assert.False(answered, $"the cancelled request was answered\n{p.Describe()}")
        let! tools = p.Request "tools/list"
        Assert.Equal(22, (tools["result"]["tools"]).AsArray().Count)
    }
