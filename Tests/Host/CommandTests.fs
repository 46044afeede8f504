/// `molecule-mcp doctor` and `molecule-mcp config <client>` (issue 9) with the published binary.
module Molecule.Tests.Host.CommandTests

open System
open System.IO
open System.Text.Json.Nodes
open Xunit
open Molecule.Platform
open Molecule.Tests.Host.Harness

let private run (env: (string * string) list) (args: string list) =
    task {
        use p = RawProcess.Start(env, args = args)
        p.CloseStdin()
        let! code = p.WaitExit 30.0
        return code, p.StdoutText, p.Stderr
    }

let private status (report: string) (label: string) =
    let doc = parseJson report
    let checks = doc["checks"].AsArray()
    let labelOf (c: JsonNode) = c["label"].GetValue<string>()
    let found = checks |> Seq.find (fun c -> (labelOf c).StartsWith label)
    found["status"].GetValue<string>()

[<Fact>]
let ``doctor passes against the local platform and fails clearly on a 401, a deleted workspace and an unreachable platform`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "doctor"
        let env = agentEnv platform ws @ [ "HOME", tempDir "home" ]
        let! code, out, err = run env [ "doctor"; "--json" ]
        Assert.True((code = 0), $"doctor failed:\n{out}\n{err}")
        Assert.Equal("ok", status out "Token")
        Assert.Equal("ok", status out "Platform reachability")
        Assert.DoesNotContain(ws.Token, out + err)
        // A rejected token.
        let bad = env |> List.map (fun (k, v) -> if k = "MOLECULE_WORKSPACE_TOKEN" then k, "wrong-token-0123456789" else k, v)
        let! code, out, _ = run bad [ "doctor"; "--json" ]
        Assert.Equal(1, code)
        Assert.Equal("fail", status out "Token")
        // A deleted workspace.
        let! _ = platform.DeleteWorkspace ws.Id
        let! code, out, _ = run env [ "doctor" ]
        Assert.Equal(1, code)
        Assert.Contains($"Workspace {ws.Id} was deleted on the platform", out)
        // An unreachable platform.
        let gone = env |> List.map (fun (k, v) -> if k = "PLATFORM_URL" then k, "http://127.0.0.1:9" else k, v)
        let! code, out, _ = run gone [ "doctor"; "--json" ]
        Assert.Equal(1, code)
        Assert.Equal("fail", status out "Platform reachability")
    }

[<Fact>]
let ``config prints a client's entry without the token and --write merges it into the client's file with a backup`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "config"
        let home = tempDir "home"
        let env = (agentEnv platform ws |> List.filter (fun (k, _) -> k <> "CONFIGS_DIR")) @ [ "HOME", home; "MOLECULE_AGENT_NAME", "Docs Writer" ]
        let! code, out, _ = run env [ "config"; "gemini" ]
        Assert.Equal(0, code)
        let entry = (parseJson out).["mcpServers"].["docs-writer"]
        let binary = Path.GetFullPath(Molecule.Tests.Support.Binary.path ())
        let envOf = entry["env"]
        Assert.Equal(binary, entry["command"].GetValue<string>())
        Assert.Equal(ws.Id, envOf["WORKSPACE_ID"].GetValue<string>())
        Assert.DoesNotContain(ws.Token, out)
        // --write into an existing Cursor file: other servers kept, a backup left, the entry starts a working server.
        let file = Path.Combine(home, ".cursor", "mcp.json")
        Directory.CreateDirectory(Path.GetDirectoryName file) |> ignore
        File.WriteAllText(file, """{"mcpServers":{"other":{"command":"other-server"}}}""")
        let! code, out, _ = run env [ "config"; "cursor"; "--write" ]
        Assert.Equal(0, code)
        Assert.Contains("docs-writer", out)
        Assert.DoesNotContain(ws.Token, out)
        let written = parseJson (File.ReadAllText file)
        let other = written["mcpServers"]["other"]
        Assert.Equal("other-server", other["command"].GetValue<string>())
        Assert.True(File.Exists(file + ".bak"))
        let server = written["mcpServers"]["docs-writer"]
        let serverEnv = [ for kv in server["env"].AsObject() -> kv.Key, kv.Value.GetValue<string>() ] @ [ "CONFIGS_DIR", tempDir "configs" ]
        let command = server["command"].GetValue<string>()
        use p = RawProcess.Start(serverEnv, command = command)
        let! _ = p.Initialize()
        let! info = p.CallTool("get_workspace_info", "{}")
        Assert.Contains(ws.Id, info.ToJsonString())
        // Claude Code: the push flag names the same server.
        let! _, claude, _ = run env [ "config"; "claude-code" ]
        Assert.Contains("claude mcp add docs-writer -s user -- env", claude)
        Assert.Contains("--dangerously-load-development-channels server:docs-writer", claude)
    }

[<Fact>]
let ``--help lists the environment variables`` () =
    task {
        let! code, out, _ = run [] [ "--help" ]
        Assert.Equal(0, code)
        for v in [ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN"; "MOLECULE_WORKSPACES"; "MOLECULE_MCP_REPLAY_SECS"; "doctor"; "config" ] do
            Assert.Contains(v, out)
    }
