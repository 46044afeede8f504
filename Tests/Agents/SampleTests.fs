/// The samples (samples/CSharp, samples/FSharp, samples/Hosted), as built with the solution, run against the real local
/// platform: they answer the user and a peer, stop cleanly on SIGINT and SIGTERM, and a restart answers nothing twice.
module Molecule.Tests.Agents.SampleTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open System.Threading.Tasks
open Xunit
open Molecule.Tests.Host.Harness
open Molecule.Tests.Agents.PublicApiTests

/// A program's build output, by its project folder under the repository (Release, as `dotnet fsi build.fsx test`
/// builds the solution).
let programDll (folder: string) (name: string) =
    let path = Path.Combine(repoRoot (), folder, "bin", "Release", "net10.0", name + ".dll")
    if not (File.Exists path) then failwith $"{path} is missing: build the solution first (dotnet build Molecule.Functional.sln -c Release)"
    path

let private sampleDll (folder: string) (name: string) = programDll (Path.Combine("samples", folder)) name

/// A .NET program run with only the base environment and `env`; its output lines collected.
type Sample(dll: string, env: (string * string) list) =
    let lines = ConcurrentQueue<string>()
    let psi = ProcessStartInfo("dotnet", $"\"{dll}\"", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    do
        psi.Environment.Clear()
        for KeyValue(k, v) in baseEnv () do psi.Environment[k] <- v
        for (k, v) in env do psi.Environment[k] <- v
    let proc = Process.Start psi
    do
        proc.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lines.Enqueue e.Data)
        proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lines.Enqueue e.Data)
        proc.BeginOutputReadLine()
        proc.BeginErrorReadLine()
    member _.Lines = List.ofSeq lines
    member this.Describe() = "sample output:\n" + String.Join("\n", this.Lines)
    /// Waits for the process to end on its own; its exit code.
    member _.WaitExit() : Task<int> =
        task {
            do! proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 60.0)
            return proc.ExitCode
        }
    /// Sends a signal (INT, TERM) and waits for the exit code.
    member _.StopWith(signal: string) : Task<int> =
        task {
            use kill = Process.Start("kill", $"-{signal} {proc.Id}")
            do! kill.WaitForExitAsync()
            let! _ = proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 15.0)
            return proc.ExitCode
        }
    /// kill -9, and waits for the process to be gone.
    member _.Kill() : Task =
        task {
            proc.Kill()
            do! proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 15.0)
        }
    member _.HasExited = proc.HasExited
    interface IDisposable with
        member _.Dispose() =
            if not proc.HasExited then proc.Kill true
            proc.Dispose()

/// Ctrl+C's signal — unless this process was started with SIGINT ignored (a background job of a script, `nohup`):
/// a child inherits that, and .NET keeps a signal ignored that it was started with, so SIGTERM stops it instead.
let private interrupt =
    let ignored =
        File.ReadAllLines "/proc/self/status"
        |> Array.tryFind (fun l -> l.StartsWith "SigIgn:")
        |> Option.map (fun l -> (Convert.ToUInt64(l.Substring(7).Trim(), 16) &&& 2UL) <> 0UL)
    if ignored = Some true then "TERM" else "INT"

let private count (pattern: string) (text: string) = Regex.Matches(text, Regex.Escape pattern).Count

/// A workspace's activity rows as one text.
let private activityOf (platform: Platform) (id: string) =
    task {
        let! rows = platform.Activity id
        return String.Join("\n", rows |> List.map (fun r -> r.ToJsonString()))
    }

/// Waits (60 s at most) until the workspace's activity shows the text; the sample's output in the failure.
let private waitForActivity (platform: Platform) (what: string) (sample: Sample) (id: string) (text: string) =
    task {
        let sw = Stopwatch.StartNew()
        let mutable found = false
        while not found && sw.Elapsed < TimeSpan.FromSeconds 60.0 do
            let! all = activityOf platform id
            found <- all.Contains text
            if not found then do! Task.Delay 200
        if not found then failwith $"timed out waiting for {what}\n{sample.Describe()}"
    }

/// Runs a sample twice against the local platform; <paramref name="configure"/> turns the agent's variables into the
/// sample's environment (the hosted sample reads them from its "Molecule" configuration section).
let private runSampleWith (configure: (string * string) list -> (string * string) list) (folder: string) (name: string) =
    task {
        let dll = sampleDll folder name
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "sample-agent"
        let! peer = platform.CreateWorkspace "sample-peer"
        do! platform.RegisterPoll peer
        let env = configure (agentEnv platform ws)
        let activity = activityOf platform
        let waitFor = waitForActivity platform
        use first = new Sample(dll, env)
        let! _ = platform.CanvasMessage(ws.Id, "hello")
        let! _ = platform.PeerMessage(peer, ws.Id, "ping")
        do! waitFor "the answer to the user" first ws.Id "Agent message: Done: hello"
        do! waitFor "the answer to the peer" first peer.Id "Done: ping"
        let! code = first.StopWith interrupt
        Assert.True((code = 0), $"exit code {code} after SIG{interrupt}\n{first.Describe()}")
        // the next start answers what is new, and nothing twice
        use second = new Sample(dll, env)
        let! _ = platform.CanvasMessage(ws.Id, "again")
        do! waitFor "the answer after a restart" second ws.Id "Agent message: Done: again"
        let! code = second.StopWith "TERM"
        Assert.True((code = 0), $"exit code {code} after SIGTERM\n{second.Describe()}")
        let! own = activity ws.Id
        let! theirs = activity peer.Id
        let runs = $"first run:\n{first.Describe()}\nsecond run:\n{second.Describe()}"
        for (text, rows) in [ "Agent message: Done: hello", own; "Agent message: Done: again", own; "Done: ping", theirs ] do
            let n = count text rows
            Assert.True((n = 1), $"'{text}' {n} times\n{runs}")
        assertNoSecrets [ ws.Token ] "the sample's output" (first.Lines @ second.Lines)
    }

let private runSample = runSampleWith id

/// The agent's variables as keys of the "Molecule" configuration section (Molecule__WORKSPACE_ID=…).
let private asMoleculeSection (env: (string * string) list) = env |> List.map (fun (k, v) -> $"Molecule__{k}", v)

[<Fact>]
let ``samples/CSharp answers the user and a peer, stops cleanly, and answers nothing twice after a restart`` () =
    runSample "CSharp" "molecule-sample-csharp"

[<Fact>]
let ``samples/FSharp answers the user and a peer, stops cleanly, and answers nothing twice after a restart`` () =
    runSample "FSharp" "molecule-sample-fsharp"

[<Fact>]
let ``samples/CSharp is the 30-line loop: no polling, no Thread.Sleep, no F# type`` () =
    let source = File.ReadAllText(Path.Combine(repoRoot (), "samples", "CSharp", "Program.cs"))
    let code = source.Split('\n') |> Array.filter (fun l -> not (l.TrimStart().StartsWith "//") && l.Trim() <> "")
    Assert.True(code.Length <= 30, $"{code.Length} lines of code")
    for banned in [ "Thread.Sleep"; "while (true)"; "Microsoft.FSharp"; "FSharp"; "Molecule.Core"; "Molecule.Protocol"; ".Item1"; "GetAwaiter().GetResult()"; "/activity" ] do
        Assert.False(source.Contains banned, $"samples/CSharp/Program.cs contains {banned}")
    Assert.Contains("ReadMessagesAsync", source)

[<Fact>]
let ``samples/Hosted (a worker service) answers the user and a peer, stops cleanly, and answers nothing twice after a restart`` () =
    runSampleWith asMoleculeSection "Hosted" "molecule-sample-hosted"

[<Fact>]
let ``samples/Hosted without its settings names every missing one, as molecule-mcp does, and exits 2`` () =
    task {
        use sample = new Sample(sampleDll "Hosted" "molecule-sample-hosted", [ "CONFIGS_DIR", tempDir "configs" ])
        let! code = sample.WaitExit()
        let out = String.Join("
", sample.Lines)
        Assert.True((code = 2), $"exit code {code}\n{sample.Describe()}")
        for variable in [ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN" ] do
            Assert.True(out.Contains variable, $"{variable} not named\n{sample.Describe()}")
    }

/// The model's settings for samples/AgentFramework: the scripted endpoint, any key.
let private modelEnv (model: ModelEndpoint.ScriptedModel) =
    [ "OPENAI_API_KEY", "sk-scripted-not-a-key"; "OPENAI_MODEL", "scripted"; "OPENAI_BASE_URL", model.BaseUrl ]

[<Fact>]
let ``samples/AgentFramework: the model's delegate_task reaches the peer, its answer is the reply, and it stops cleanly`` () =
    task {
        let dll = sampleDll "AgentFramework" "molecule-sample-agentframework"
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "sample-llm-agent"
        let! peer = platform.CreateWorkspace "sample-llm-peer"
        do! platform.RegisterPoll peer
        let task' = $"Summarise the report ({Guid.NewGuid():N})"
        use! model =
            ModelEndpoint.ScriptedModel.StartAsync(fun request ->
                match ModelEndpoint.toolResults request with
                | [] ->
                    let args = Text.Json.Nodes.JsonObject()
                    args["workspace_id"] <- Text.Json.Nodes.JsonValue.Create peer.Id
                    args["task"] <- Text.Json.Nodes.JsonValue.Create task'
                    ModelEndpoint.CallTool("delegate_task", args)
                | result :: _ ->
                    let queued = result.Contains "queued"
                    ModelEndpoint.Answer $"Done: the peer has it (queued: {queued})")
        use sample = new Sample(dll, agentEnv platform ws @ modelEnv model)
        let! _ = platform.CanvasMessage(ws.Id, "Please have the report summarised.")
        let reply = "Agent message: Done: the peer has it (queued: True)"
        do! waitForActivity platform "the model's answer as the reply" sample ws.Id reply
        let! code = sample.StopWith interrupt
        Assert.True((code = 0), $"exit code {code} after SIG{interrupt}\n{sample.Describe()}")
        // the tool call reached the platform as an A2A send to the peer
        Assert.True(platform.Faults.Requests("POST", $"/workspaces/{peer.Id}/a2a") >= 1, "no POST /workspaces/<peer>/a2a")
        let! theirs = activityOf platform peer.Id
        Assert.Contains(task', theirs)
        let! own = activityOf platform ws.Id
        Assert.Equal(1, count reply own)
        // the model was offered the team tools (the MCP server's, without the inbox's) and given the message
        let first = model.Requests.Head
        let team = Molecule.Agents.MoleculeAgent.Tools |> Seq.map (fun t -> t.Name) |> Seq.filter (fun n -> not (Seq.contains n Molecule.Agents.AI.MoleculeAIFunctions.InboxToolNames)) |> List.ofSeq
        Assert.Equal<string list>(team, ModelEndpoint.offeredTools first)
        Assert.Contains("Please have the report summarised.", first.ToJsonString())
        assertNoSecrets [ ws.Token; peer.Token; "sk-scripted-not-a-key" ] "the sample's output" sample.Lines
    }

[<Fact>]
let ``samples/AgentFramework without a model says what to set and exits 2`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "sample-llm-agent"
        use sample = new Sample(sampleDll "AgentFramework" "molecule-sample-agentframework", agentEnv platform ws)
        let! code = sample.WaitExit()
        let out = String.Join("\n", sample.Lines)
        Assert.True((code = 2), $"exit code {code}\n{sample.Describe()}")
        for variable in [ "OPENAI_API_KEY"; "OPENAI_MODEL"; "OPENAI_BASE_URL" ] do
            Assert.True(out.Contains variable, $"{variable} not named\n{sample.Describe()}")
    }
