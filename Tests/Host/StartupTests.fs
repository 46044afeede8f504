/// Start-up contract of the published binary: env validation, register rejection, protocol negotiation.
module Molecule.Tests.Host.StartupTests

open Molecule.Protocol

open System
open System.Text.Json.Nodes
open Xunit
open Molecule.Tests.Host.Harness

[<Fact>]
let ``missing env exits 2 with help naming the missing vars and nothing on stdout`` () =
    task {
        use p = RawProcess.Start([ "CONFIGS_DIR", tempDir "configs" ])
        let! code = p.WaitExit 15.0
        Assert.True((code = 2), $"exit code {inv code}, expected 2\n{p.Describe()}")
        Assert.True((p.StdoutBytes.Length = 0), $"stdout must be empty\n{p.Describe()}")

        for v in [ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN" ] do
            Assert.True(p.Stderr.Contains v, $"help text does not name {v}\n{p.Describe()}")
    }

[<Fact>]
let ``missing token only exits 2 naming just the token variable`` () =
    task {
        use p =
            RawProcess.Start(
                [ "WORKSPACE_ID", Guid.NewGuid().ToString()
                  "PLATFORM_URL", "http://127.0.0.1:9"
                  "CONFIGS_DIR", tempDir "configs" ]
            )

        let! code = p.WaitExit 15.0
        Assert.True((code = 2), $"exit code {inv code}, expected 2\n{p.Describe()}")
        Assert.True((p.StdoutBytes.Length = 0), $"stdout must be empty\n{p.Describe()}")
        Assert.True(p.Stderr.Contains "MOLECULE_WORKSPACE_TOKEN", p.Describe())
    }

[<Fact>]
let ``register 401 exits 3 with the rejection line and never prints the token`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "rejected"
        let wrong = "wrong-token-" + Guid.NewGuid().ToString("N")

        let env =
            agentEnv platform ws
            |> List.map (fun (k, v) -> if k = "MOLECULE_WORKSPACE_TOKEN" then k, wrong else k, v)

        use p = RawProcess.Start env
        // a client would initialize right away; the process must still exit 3
        p.Send """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"""
        let! code = p.WaitExit 20.0
        Assert.True((code = 3), $"exit code {inv code}, expected 3\n{p.Describe()}")

        let line =
            p.StderrLines |> List.tryFind (fun l -> l.Contains "register rejected with HTTP 401")

        Assert.True(line.IsSome, $"no 'register rejected with HTTP 401' line\n{p.Describe()}")
        Assert.Contains(ws.Id, line.Value)
        Assert.Contains("Tokens", line.Value)
        assertNoSecrets [ wrong; ws.Token ] "stdout/stderr" [ p.StdoutText; p.Stderr ]
        assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
    }

let private initializeWith (version: string) =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "versions"
        use p = RawProcess.Start(agentEnv platform ws)
        let! r = p.Initialize(version)
        let result = r["result"]
        p.CloseStdin()
        let! _ = p.WaitExit 15.0
        assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
        return result, p.Describe()
    }

[<Fact>]
let ``initialize asking 2024-11-05 is answered with 2024-11-05`` () =
    task {
        let! (result, log) = initializeWith "2024-11-05"
        Assert.True((strOf result "protocolVersion" = "2024-11-05"), $"{result.ToJsonString()}\n{log}")
    }

[<Fact>]
let ``initialize asking 2025-06-18 is answered with 2025-06-18, tools and claude channel capabilities and instructions`` () =
    task {
        let! (result, log) = initializeWith "2025-06-18"
        let ctx = $"{result.ToJsonString()}\n{log}"
        Assert.True((strOf result "protocolVersion" = "2025-06-18"), ctx)
        let caps = result["capabilities"]
        Assert.True(not (isNull caps) && not (isNull caps["tools"]), $"no tools capability\n{ctx}")
        let exp = caps["experimental"]
        Assert.True(not (isNull exp) && exp.AsObject().ContainsKey "claude/channel", $"no experimental claude/channel\n{ctx}")
        let instructions = strOf result "instructions"
        Assert.False(String.IsNullOrWhiteSpace instructions, $"no instructions\n{ctx}")
        Assert.Contains("wait_for_message", instructions)
    }

[<Fact>]
let ``the SDK client pinned to 2024-11-05 connects and lists the 22 tools`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "old-client"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws, protocolVersion = "2024-11-05")
        Assert.Equal("2024-11-05", agent.Client.NegotiatedProtocolVersion)
        let! tools = agent.Client.ListToolsAsync()
        Assert.Equal(22, tools.Count)
        Assert.True(agent.Client.ServerCapabilities.Experimental.ContainsKey "claude/channel", agent.Describe())
        agent.AssertNoTokenLeak()
    }

/// What the MCP C# SDK 2.3.1 client sends first when no protocol version is pinned.
let private discoverProbe =
    """{"jsonrpc":"2.0","id":"probe-1","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"probe","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"""

[<Fact>]
let ``initialize after a rejected server discover probe still succeeds`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "discover-fallback"
        use p = RawProcess.Start(agentEnv platform ws)
        p.Send discoverProbe
        let! probe = p.WaitResponse(JsonValue.Create "probe-1")
        Assert.True(not (isNull probe["error"]), $"the host answers server/discover with an error so clients fall back: {probe.ToJsonString()}")
        // the client's fallback: a classic initialize with the newest initialize-capable version
        p.Send """{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"""
        let! init = p.WaitResponse(JsonValue.Create 2)
        Assert.True(not (isNull init["result"]), $"initialize after the discover probe failed: {init.ToJsonString()}\n{p.Describe()}")
        Assert.Equal("2025-11-25", strOf init["result"] "protocolVersion")
    }

[<Fact>]
let ``the SDK client with default options connects via the initialize fallback`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "default-client"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws, protocolVersion = null)
        let! tools = agent.Client.ListToolsAsync()
        Assert.Equal(22, tools.Count)
        let text = "default client " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(ws.Id, text)
        let! _ = agent.WaitNotification(fun n -> pushedText n = text)
        agent.AssertNoTokenLeak()
    }

[<Fact>]
let ``a PLATFORM_URL host invalid under IDN rules is a config error or accepted, never an exception`` () =
    // Uri.IdnHost throws for this host under ICU (found by the core token-hygiene property).
    for url in [ "https://Pdé0AaotN10Ox6x6tJholX-"; "https://é-"; "https://-é.example" ] do
        match Molecule.Core.Config.normaliseUrl url with
        | Ok _ -> ()
        | Result.Error reason -> Assert.DoesNotContain("é", reason)

[<Fact>]
let ``against an http platform no TLS library is loaded: handshake, a pushed message, a tool call`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "footprint"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let text = "footprint " + Guid.NewGuid().ToString("N")
        let! _ = platform.CanvasMessage(ws.Id, text)
        do! waitUntil (secs 15.0) "the message pushed" p.Describe (fun () ->
            p.ChannelNotifications |> List.exists (fun n -> pushedText n["params"] = text))
        let! info = p.CallTool("get_workspace_info", "{}")
        Assert.False(resultIsError info, info.ToJsonString())
        // OpenSSL is 3.6 MiB resident once loaded (a JSON parse once loaded it for a hash seed); only https needs it.
        let maps = IO.File.ReadAllText($"/proc/{p.Process.Id}/maps")
        Assert.DoesNotContain("libssl", maps)
        Assert.DoesNotContain("libcrypto", maps)
    }
