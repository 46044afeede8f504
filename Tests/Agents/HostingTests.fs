/// Molecule.Agents.Hosting in a generic host against the real local platform: the options judged at start (every
/// problem at once, in the library's words), a handler that throws gets its message again and it is handled once,
/// stopping lets the message in hand finish, and a handler cut off by the shutdown timeout leaves its message for the
/// next start.
module Molecule.Tests.Agents.HostingTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Hosting
open Xunit
open Molecule.Agents
open Molecule.Agents.Hosting
open Molecule.Tests.Host.Harness

/// What the test's handlers do, and the texts of the messages they were given, in order.
type Script(handle: MoleculeMessage -> CancellationToken -> Task) =
    let seen = ConcurrentQueue<string>()
    member _.Seen = List.ofSeq seen
    member _.Handle(message: MoleculeMessage, ct: CancellationToken) =
        seen.Enqueue message.Text
        handle message ct

/// The handler the host resolves (one per message), doing what the test's script says.
type ScriptedHandler(script: Script) =
    interface IMoleculeMessageHandler with
        member _.HandleAsync(message, _agent, ct) = script.Handle(message, ct)

let private reply (message: MoleculeMessage) (ct: CancellationToken) : Task = message.ReplyAsync($"Done: {message.Text}", ct)

/// A host running the agent of these variables (as the "Molecule" section) with the script's handler.
let private buildHost (env: (string * string) list) (script: Script) (shutdownTimeout: TimeSpan option) : IHost =
    let builder = Host.CreateApplicationBuilder(HostApplicationBuilderSettings(DisableDefaults = true))
    builder.Configuration.AddInMemoryCollection(env |> List.map (fun (k, v) -> KeyValuePair($"Molecule:{k}", v))) |> ignore
    builder.Services.AddSingleton(script) |> ignore
    builder.Services.AddMoleculeAgent<ScriptedHandler>(builder.Configuration.GetSection "Molecule") |> ignore
    shutdownTimeout |> Option.iter (fun t -> builder.Services.Configure<HostOptions>(fun (o: HostOptions) -> o.ShutdownTimeout <- t) |> ignore)
    builder.Build()

let private waitUntil (what: string) (cond: unit -> bool) =
    task {
        let sw = Stopwatch.StartNew()
        while not (cond ()) && sw.Elapsed < TimeSpan.FromSeconds 60.0 do
            do! Task.Delay 100
        if not (cond ()) then failwith $"timed out waiting for {what}"
    }

let private count (text: string) (platform: Platform) (id: string) =
    task {
        let! rows = platform.Activity id
        return Regex.Matches(String.Join("\n", rows |> List.map (fun r -> r.ToJsonString())), Regex.Escape text).Count
    }

/// Starts a host with a replying handler, sends one more message and waits for it: what that host was given.
let private restartAndSee (platform: Platform) (env: (string * string) list) (wsId: string) =
    task {
        let script = Script reply
        use host = buildHost env script None
        do! host.StartAsync()
        let! _ = platform.CanvasMessage(wsId, "next")
        do! waitUntil "the next message after the restart" (fun () -> List.contains "next" script.Seen)
        do! host.StopAsync()
        return script.Seen
    }

[<Fact>]
let ``bad options fail the host's start with every problem at once, in the words of ConnectAsync`` () =
    task {
        let env = [ "WORKSPACE_ID", "not-a-uuid"; "CONFIGS_DIR", tempDir "configs" ]
        use host = buildHost env (Script reply) None
        let! hosted = Assert.ThrowsAsync<MoleculeOptionsException>(fun () -> host.StartAsync())
        let options = MoleculeOptions.FromVariables(env |> List.map KeyValuePair)
        let! direct = Assert.ThrowsAsync<MoleculeOptionsException>(fun () -> MoleculeAgent.ConnectAsync(options) :> Task)
        Assert.Equal(direct.Message, hosted.Message)
        let settings = hosted.Problems |> Seq.map (fun p -> p.Setting) |> List.ofSeq
        Assert.True(settings.Length >= 2, $"problems: {String.Join(',', settings)}")
        Assert.Contains("WORKSPACE_ID", settings)
        Assert.Contains("PLATFORM_URL", settings)
    }

[<Fact>]
let ``a handler that throws gets its message again, the ones after it wait, and each is handled once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "hosted-agent"
        let env = agentEnv platform ws
        let failures = ref 0
        let script =
            Script(fun message ct ->
                if message.Text = "boom" && Interlocked.Increment &failures.contents = 1 then
                    Task.FromException(InvalidOperationException "the handler failed")
                else
                    reply message ct)
        do!
            task {
                use host = buildHost env script None
                do! host.StartAsync()
                let! _ = platform.CanvasMessage(ws.Id, "boom")
                let! _ = platform.CanvasMessage(ws.Id, "after")
                do! waitUntil "the message after the failing one" (fun () -> List.contains "after" script.Seen)
                do! host.StopAsync()
            }
        Assert.Equal<string list>([ "boom"; "boom"; "after" ], script.Seen)
        let! again = restartAndSee platform env ws.Id
        Assert.Equal<string list>([ "next" ], again)
        for text in [ "Agent message: Done: boom"; "Agent message: Done: after"; "Agent message: Done: next" ] do
            let! n = count text platform ws.Id
            Assert.True((n = 1), $"'{text}' {n} times")
    }

[<Fact>]
let ``stopping the host lets the message in hand finish: its reply goes out and it is not handed over again`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "hosted-agent"
        let env = agentEnv platform ws
        let entered = TaskCompletionSource()
        let release = TaskCompletionSource()
        let cancelled = ref false
        let script =
            Script(fun message ct ->
                task {
                    entered.TrySetResult() |> ignore
                    do! release.Task
                    cancelled.Value <- ct.IsCancellationRequested
                    do! reply message ct
                })
        do!
            task {
                use host = buildHost env script None
                do! host.StartAsync()
                let! _ = platform.CanvasMessage(ws.Id, "slow")
                do! entered.Task.WaitAsync(TimeSpan.FromSeconds 60.0)
                let stopping = host.StopAsync()
                do! Task.Delay 500
                Assert.False(stopping.IsCompleted, "the host stopped before the handler finished")
                release.SetResult()
                do! stopping
            }
        Assert.False(cancelled.Value, "the handler's token was cancelled when the host began to stop")
        let! again = restartAndSee platform env ws.Id
        Assert.Equal<string list>([ "next" ], again)
        let! n = count "Agent message: Done: slow" platform ws.Id
        Assert.Equal(1, n)
    }

[<Fact>]
let ``a handler cut off by the shutdown timeout leaves its message unhandled: the next start gets it`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "hosted-agent"
        let env = agentEnv platform ws
        let entered = TaskCompletionSource()
        let script =
            Script(fun _ ct ->
                task {
                    entered.TrySetResult() |> ignore
                    do! Task.Delay(Timeout.Infinite, ct)
                })
        do!
            task {
                use host = buildHost env script (Some(TimeSpan.FromSeconds 1.0))
                do! host.StartAsync()
                let! _ = platform.CanvasMessage(ws.Id, "stuck")
                do! entered.Task.WaitAsync(TimeSpan.FromSeconds 60.0)
                do! host.StopAsync()
            }
        let! again = restartAndSee platform env ws.Id
        Assert.Equal<string list>([ "stuck"; "next" ], again)
        let! n = count "Agent message: Done: stuck" platform ws.Id
        Assert.Equal(1, n)
    }
