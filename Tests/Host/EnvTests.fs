/// Environment-driven behaviour of the real binary: agent card, token file, disabled loops, persisted state.
module Molecule.Tests.Host.EnvTests

open System
open System.IO
open Xunit
open Molecule.Tests.Host.Harness

[<Fact>]
let ``agent name description and skills from env show up in a peer's list_peers as the docs promise`` () =
    task {
        use! platform = Platform.StartAsync()
        let! parent = platform.CreateWorkspace "lead"
        let! a = platform.CreateWorkspace("researcher", parent = parent)
        let! b = platform.CreateWorkspace("asker", parent = parent)

        let env =
            agentEnv platform a
            @ [ "MOLECULE_AGENT_NAME", "Research Assistant"
                "MOLECULE_AGENT_DESCRIPTION", "Reads, summarises, cites."
                "MOLECULE_AGENT_SKILLS", " research, summarisation ,,citations " ]

        use! researcher = AgentProcess.StartAsync env
        do! waitUntil (secs 15.0) "the register" researcher.Describe (fun () -> platform.Requests "/registry/register" >= 1)
        use! asker = AgentProcess.StartAsync(agentEnv platform b)
        let! peers = asker.CallOk("list_peers", [])
        Assert.True(
            peers.Contains "skills: [research, summarisation, citations]",
            $"expected the env skills on the researcher's entry:\n{peers}\n{researcher.Describe()}"
        )
        let! info = researcher.CallOk("get_workspace_info", [])
        Assert.Contains("Research Assistant", info)
        Assert.Contains("Reads, summarises, cites.", info)
    }

[<Fact>]
let ``the token file in the state dir is used when MOLECULE_WORKSPACE_TOKEN is unset`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "token-file"
        let configs = tempDir "configs-token"
        File.WriteAllText(Path.Combine(configs, ".auth_token"), ws.Token + "\n")

        let env =
            agentEnv platform ws
            |> List.filter (fun (k, _) -> k <> "MOLECULE_WORKSPACE_TOKEN")
            |> List.map (fun (k, v) -> if k = "CONFIGS_DIR" then k, configs else k, v)

        use! agent = AgentProcess.StartAsync env
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, info)
        agent.AssertNoTokenLeak [ ws.Token ]
    }

[<Fact>]
let ``disabled heartbeat and inbox make no such requests and the inbox tools say so`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "quiet"

        let env =
            agentEnv platform ws @ [ "MOLECULE_MCP_DISABLE_HEARTBEAT", "1"; "MOLECULE_MCP_DISABLE_INBOX", "1" ]

        use! agent = AgentProcess.StartAsync env
        // time for several 0.3 s cycles: liveness window, not a performance assertion
        do! Threading.Tasks.Task.Delay 2000
        Assert.Equal(0, platform.Requests "/registry/heartbeat")
        Assert.Equal(0, platform.Requests $"/workspaces/{ws.Id}/activity")
        let! r = agent.Call("inbox_peek", [])
        Assert.True(isError r, $"expected isError: {textOf r}")
        Assert.Contains("MOLECULE_MCP_DISABLE_INBOX", textOf r)
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.Contains(ws.Id, info)
    }

[<Fact>]
let ``inbox state survives a restart, private and atomic, and popped messages never come back`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "restart"
        let env = agentEnv platform ws
        let configs = env |> List.find (fun (k, _) -> k = "CONFIGS_DIR") |> snd
        let first = "before restart " + Guid.NewGuid().ToString("N")

        do!
            task {
                use! agent = AgentProcess.StartAsync env
                let! _ = platform.CanvasMessage(ws.Id, first)
                let! n = agent.WaitNotification(fun n -> pushedText n = first)
                let id = (n.["meta"].["activity_id"]).GetValue<string>()
                // The pop is on disk before its answer: stop at once (the process is killed when disposed).
                let! _ = agent.CallOk("inbox_pop", [ "activity_id", box id ])
                ()
            }

        let files = Directory.GetFiles configs |> Array.map Path.GetFileName
        Assert.DoesNotContain(files, fun f -> f.EndsWith ".tmp")
        let state = Path.Combine(configs, $"inbox-{ws.Id}.jsonl")
        let listing = String.Join(", ", files)
        Assert.True(File.Exists state, $"no inbox state file in {configs}: {listing}")

        if not (OperatingSystem.IsWindows()) then
            let mode = File.GetUnixFileMode state
            let expected = UnixFileMode.UserRead ||| UnixFileMode.UserWrite
            Assert.True((mode = expected), $"state file mode {int mode} is not 0600")

        let text = File.ReadAllText state
        Assert.DoesNotContain(ws.Token, text)
        Assert.StartsWith($"{{\"molecule_inbox\":2,\"workspace_id\":\"{ws.Id}\"", text)

        let second = "after restart " + Guid.NewGuid().ToString("N")
        use! again = AgentProcess.StartAsync env
        let! _ = platform.CanvasMessage(ws.Id, second)
        let! _ = again.WaitNotification(fun n -> pushedText n = second)
        let polls = platform.Requests $"/workspaces/{ws.Id}/activity"
        do! waitUntil (secs 10.0) "3 more polls" again.Describe (fun () -> platform.Requests $"/workspaces/{ws.Id}/activity" >= polls + 3)
        Assert.False(again.Notifications |> List.exists (fun n -> pushedText n = first), $"popped message came back after restart\n{again.Describe()}")
        let! peek = again.CallOk("inbox_peek", [])
        Assert.DoesNotContain(first, peek)
        Assert.Contains(second, peek)
    }
