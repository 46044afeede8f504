/// The user documentation's set-up snippets (shared/seeds/runtime-mcp.md) start the published binary unchanged.
module Molecule.Tests.Host.SeedDocTests

open Molecule.Protocol

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Xunit
open Molecule.Tests.Host.Harness

/// shared/seeds/runtime-mcp.md, found by walking up from the repository root. Missing = test failure.
let seedDoc () : string =
    let rec repoRoot (d: DirectoryInfo) =
        if isNull d then failwith "repository root (Molecule.Functional.sln) not found above the test assembly"
        elif File.Exists(Path.Combine(d.FullName, "Molecule.Functional.sln")) then d
        else repoRoot d.Parent

    let rec find (d: DirectoryInfo) =
        if isNull d then
            failwith "shared/seeds/runtime-mcp.md not found above the repository root: the seed doc is required for this test"
        else
            let p = Path.Combine(d.FullName, "shared", "seeds", "runtime-mcp.md")
            if File.Exists p then p else find d.Parent

    find (repoRoot (DirectoryInfo AppContext.BaseDirectory))

let private codeBlocks (lang: string) (doc: string) =
    Regex.Matches(doc, "```" + lang + "\\s*\\n(.*?)```", RegexOptions.Singleline)
    |> Seq.map (fun m -> m.Groups[1].Value)
    |> Seq.toList

/// Shell-ish word split of one logical command: backslash-newline joins lines, quotes group words.
let shellWords (block: string) : string list =
    let joined = block.Replace("\\\r\n", " ").Replace("\\\n", " ")
    Regex.Matches(joined, "'([^']*)'|\"([^\"]*)\"|(\\S+)")
    |> Seq.map (fun m ->
        if m.Groups[1].Success then m.Groups[1].Value
        elif m.Groups[2].Success then m.Groups[2].Value
        else m.Groups[3].Value)
    |> Seq.toList

let private substitute (platform: Platform) (ws: Workspace) (s: string) =
    s.Replace("https://<your-tenant>.moleculesai.app", platform.Url)
        .Replace("<your-workspace-uuid>", ws.Id)
        .Replace("<your-token>", ws.Token)

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
        Assert.Equal(15, tools.Count)
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.True(info.Contains ws.Id, $"{info}\n{agent.Describe()}")
        agent.AssertNoTokenLeak [ ws.Token ]
    }

[<Fact>]
let ``the Claude Code snippet from the seed doc starts molecule-mcp unchanged`` () =
    task {
        let doc = File.ReadAllText(seedDoc ())

        let block =
            codeBlocks "bash" doc
            |> List.tryFind (fun b -> b.Contains "claude mcp add molecule -s user -- env" && b.Contains "<your-token>")

        Assert.True(block.IsSome, "the Claude Code `claude mcp add molecule -s user -- env …` snippet is missing from the seed doc")
        let words = shellWords block.Value
        let afterDashes = words |> List.skipWhile (fun w -> w <> "--") |> List.tail
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

[<Fact>]
let ``the JSON mcpServers config from the seed doc starts molecule-mcp unchanged`` () =
    task {
        let doc = File.ReadAllText(seedDoc ())
        let block = codeBlocks "json" doc |> List.tryFind (fun b -> b.Contains "mcpServers")
        Assert.True(block.IsSome, "the JSON `mcpServers` snippet is missing from the seed doc")
        let config = parseJson block.Value
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
