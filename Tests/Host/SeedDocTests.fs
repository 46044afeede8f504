/// The reference's set-up lines (Tests/Data/reference-snippets.md: Claude Code, Hermes Agent, a JSON config, the
/// identity example) start the published binary unchanged, as each client would start it.
module Molecule.Tests.Host.SeedDocTests

open System
open System.Collections.Generic
open System.IO
open Xunit
open Molecule.Tests.Host.Harness
open Molecule.Tests.Support.TestData

let private substitute (platform: Platform) (ws: Workspace) (s: string) =
    s.Replace("https://<your-tenant>.moleculesai.app", platform.Url)
        .Replace("https://<tenant>.moleculesai.app", platform.Url)
        .Replace("<your-workspace-uuid>", ws.Id)
        .Replace("<uuid>", ws.Id)
        .Replace("<your-token>", ws.Token)
        .Replace("<token>", ws.Token)

let private pathGate = obj ()

/// A client's environment: PATH with the binary's directory first, a private HOME and state dir.
let private clientEnv () =
    let env = baseEnv ()
    let binDir = Path.GetDirectoryName(Molecule.Tests.Support.Binary.path ())
    env["PATH"] <- binDir + string Path.PathSeparator + (match env.TryGetValue "PATH" with | true, p -> p | _ -> "/usr/bin:/bin")
    // .NET resolves a bare command name through THIS process's PATH (a client resolves it through the PATH
    // it passes): put the binary's directory first here too; harmless for the other tests.
    lock pathGate (fun () ->
        let current = Environment.GetEnvironmentVariable "PATH"
        if isNull current || not (current.StartsWith(binDir + string Path.PathSeparator)) then
            Environment.SetEnvironmentVariable("PATH", binDir + string Path.PathSeparator + current))
    env["HOME"] <- tempDir "home"
    env["CONFIGS_DIR"] <- tempDir "configs"
    env

let private exercise (agent: AgentProcess) (ws: Workspace) =
    task {
        let! tools = agent.Client.ListToolsAsync()
        Assert.Equal(22, tools.Count)
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.True(info.Contains ws.Id, $"{info}\n{agent.Describe()}")
        agent.AssertNoTokenLeak [ ws.Token ]
    }

[<Fact>]
let ``the reference's Claude Code line starts molecule-mcp unchanged`` () =
    task {
        let afterDashes = Snippets.claudeCode ()
        Assert.Equal("env", afterDashes.Head)
        Assert.Equal("molecule-mcp", List.last afterDashes)

        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "from-claude-snippet"
        let args = afterDashes.Tail |> List.map (substitute platform ws)
        Assert.DoesNotContain(args, fun a -> a.Contains "<" || a.Contains ">")
        // exactly as Claude Code spawns it: command `env`, the snippet's words as arguments
        use! agent = AgentProcess.StartAsync([], command = "env", args = args, baseVars = clientEnv ())
        do! exercise agent ws
        Assert.True(platform.Requests "/registry/register" >= 1, "the snippet-started process did not register")
    }

/// `--command C --env K=V …` of `hermes mcp add`: the command and the environment.
let private hermesArgs (words: string list) =
    let rec read (ws: string list) (command: string option) (env: (string * string) list) =
        match ws with
        | "--command" :: c :: rest -> read rest (Some c) env
        | "--env" :: kv :: rest ->
            let i = kv.IndexOf '='
            read rest command (env @ [ kv.Substring(0, i), kv.Substring(i + 1) ])
        | _ :: rest -> read rest command env
        | [] -> command, env
    read words None []

[<Fact>]
let ``the reference's Hermes Agent line starts molecule-mcp unchanged`` () =
    task {
        let words = shellWords (Snippets.bash [ "hermes mcp add molecule"; "--command" ])
        Assert.Equal<string list>([ "hermes"; "mcp"; "add"; "molecule" ], List.take 4 words)
        let command, env = hermesArgs (List.skip 4 words)
        Assert.Equal(Some "molecule-mcp", command)
        Assert.Equal<string list>([ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN" ], env |> List.map fst)

        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "from-hermes-snippet"
        // as Hermes starts a stdio server: the command on PATH, the --env pairs in its environment
        let vars = env |> List.map (fun (k, v) -> k, substitute platform ws v)
        use! agent = AgentProcess.StartAsync(vars, command = command.Value, baseVars = clientEnv ())
        do! exercise agent ws
    }

[<Fact>]
let ``the reference's JSON mcpServers config starts molecule-mcp unchanged`` () =
    task {
        let config = parseJson (Snippets.json ())
        let server = config["mcpServers"]["molecule"]
        Assert.NotNull(server)
        let command = strOf server "command"
        Assert.Equal("molecule-mcp", command)

        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "from-json-snippet"

        let env =
            server["env"].AsObject()
            |> Seq.map (fun kv -> kv.Key, substitute platform ws (kv.Value.GetValue<string>()))
            |> Seq.toList

        Assert.Equal<string list>([ "MOLECULE_WORKSPACE_TOKEN"; "PLATFORM_URL"; "WORKSPACE_ID" ], env |> List.map fst |> List.sort)
        Assert.DoesNotContain(env, fun (_, v) -> v.Contains "<")
        use! agent = AgentProcess.StartAsync(env, command = command, baseVars = clientEnv ())
        do! exercise agent ws
    }

[<Fact>]
let ``the reference's identity example starts molecule-mcp with its name, description and skills`` () =
    task {
        let words = shellWords (Snippets.bash [ "MOLECULE_AGENT_SKILLS="; "<token>" ])
        let afterDashes = words |> List.skipWhile (fun w -> w <> "--") |> List.tail
        Assert.Equal("env", afterDashes.Head)
        Assert.Equal("molecule-mcp", List.last afterDashes)

        use! platform = Platform.StartAsync()
        let! lead = platform.CreateWorkspace "lead"
        let! ws = platform.CreateWorkspace("researcher", parent = lead)
        let! asker = platform.CreateWorkspace("asker", parent = lead)
        let args = afterDashes.Tail |> List.map (substitute platform ws)
        Assert.DoesNotContain(args, fun a -> a.Contains "<" || a.Contains ">")
        use! agent = AgentProcess.StartAsync([], command = "env", args = args, baseVars = clientEnv ())
        do! exercise agent ws
        use! peer = AgentProcess.StartAsync(agentEnv platform asker)
        let! peers = peer.CallOk("list_peers", [])
        // the documentation's promise: the skills reach a peer's list_peers, the name and description the agent card
        Assert.True(peers.Contains "skills: [research, summarisation, citations]", $"{peers}\n{agent.Describe()}")
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.Contains("Research Assistant", info)
        Assert.Contains("Reads, summarises, cites.", info)
    }
