/// The library agent as a process of its own (Tests/TestAgent: the README's loop, answering every message, each
/// handler entry and completion written to a file) against the real local platform on 127.0.0.1, killed -9 at random
/// points over and over: in the end every message is handled exactly once and none is lost; the handler is entered
/// at least once per message. "Handled" is what the library counts: the message's loop body completed and the inbox
/// ledger marked it (read back from the ledger file between the kills).
module Molecule.Tests.Agents.CrashTests

open System
open System.IO
open System.Threading.Tasks
open Xunit
open Xunit.Abstractions
open Molecule.Protocol
open Molecule.Core
open Molecule.Tests.Host.Harness
open Molecule.Tests.Agents.AgentTests
open Molecule.Tests.Agents.SampleTests

/// One line of the handler's file: `enter` when a loop body started, `done` when it was about to complete.
type HandlerStep =
    { Step: string
      Id: string
      Workspace: string
      Text: string }

/// The handler's file, complete lines only (the program may be writing the last one).
let handlerSteps (path: string) : HandlerStep list =
    if not (File.Exists path) then
        []
    else
        use file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite ||| FileShare.Delete)
        use reader = new StreamReader(file)
        let text = reader.ReadToEnd()
        text.Substring(0, text.LastIndexOf '\n' + 1).Split('\n', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun line ->
            match line.Split '\t' with
            | [| step; id; ws; text |] -> { Step = step; Id = id; Workspace = ws; Text = text }
            | _ -> failwith $"not a handler line: {line}")
        |> List.ofArray

let entries (steps: HandlerStep list) = steps |> List.filter (fun s -> s.Step = "enter")
let completions (steps: HandlerStep list) = steps |> List.filter (fun s -> s.Step = "done")

/// The test agent program's build output.
let testAgentDll () = programDll (Path.Combine("Tests", "TestAgent")) "test-agent"

/// The test agent's environment: the workspace's, fast loops, the handler's file.
let testAgentEnv (platform: Platform) (ws: Workspace) (handlerLog: string) (pauseMs: int) =
    agentEnv platform ws @ [ "MOLECULE_TEST_HANDLER_LOG", handlerLog; "MOLECULE_TEST_HANDLER_PAUSE_MS", inv pauseMs ]

/// The inbox ledger of a workspace as the library left it on disk (its state directory, CONFIGS_DIR).
let ledgerOf (stateDir: string) (ws: Workspace) : Ledger.State =
    let id = (WorkspaceId.tryParse ws.Id).Value
    let path = Path.Combine(stateDir, Journal.fileName id)
    if not (File.Exists path) then
        Ledger.empty id
    else
        use file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite ||| FileShare.Delete)
        use reader = new StreamReader(file)
        match Journal.restore id (reader.ReadToEnd()) with
        | Ok restored -> restored.State
        | Result.Error refusal -> failwith $"{path}: {Journal.describeRefusal refusal}"

/// The ids the ledger counts handled: delivered (remembered) and no longer waiting.
let handledIn (ledger: Ledger.State) : Set<string> =
    ledger.Seen |> Set.filter (fun id -> not (ledger.Keys.ContainsKey id) && not (id.StartsWith "file:"))

/// The seed and what the kills hit are written to the test's output (`dotnet test --logger "console;verbosity=detailed"`).
type KillTests(output: ITestOutputHelper) =

    [<Fact>]
    member _.``kill -9 of the library agent at random points of its handler, 24 times: every message handled exactly once, none lost``() : Task =
        task {
            use! platform = Platform.StartAsync()
            let! ws = platform.CreateWorkspace "crashing"
            let handlerLog = Path.Combine(tempDir "handler", "steps.tsv")
            let env = testAgentEnv platform ws handlerLog 40
            let stateDir = env |> List.find (fun (k, _) -> k = "CONFIGS_DIR") |> snd
            let dll = testAgentDll ()
            let seed = Random.Shared.Next()
            let rng = Random seed
            let sent = [ for i in 1..60 -> $"crash #{i:D2}" ]
            do! sendCanvas platform ws.Id (List.take 40 sent)
            let kills = 24
            let mutable handled = Set.empty
            let mutable midHandler = 0
            let mutable kill = 1
            // a run can only enter as many handlers as messages wait: the kills stop when none does
            let waiting () = (if kill <= 8 then 40 else sent.Length) - handled.Count
            while kill <= kills && waiting () > 0 do
                let before = (handlerSteps handlerLog).Length
                let ran () = handlerSteps handlerLog |> List.skip before
                let agent = new Sample(dll, env)
                try
                    // a random point: after the 1st to 3rd handler entry of this run (no more than wait), 0–60 ms on
                    let enters = min (rng.Next(1, 4)) (waiting ())
                    let context () = $"seed {seed}, kill {kill}\n{agent.Describe()}"
                    do! waitUntil (secs 60.0) $"{enters} handler entries" context (fun () -> (entries (ran ())).Length >= enters || agent.HasExited)
                    do! Task.Delay(rng.Next(0, 61))
                    do! agent.Kill()
                    Assert.True((entries (ran ())).Length >= enters, $"the agent ended before it was killed\n{context ()}")
                finally
                    (agent :> IDisposable).Dispose()
                // the rest of the messages arrive while the agent is down
                if kill = 8 then do! sendCanvas platform ws.Id (List.skip 40 sent)
                let steps = ran ()
                let now = handledIn (ledgerOf stateDir ws)
                let named (ids: Set<string>) = String.Join(", ", ids |> Seq.map (fun id -> id.Substring(0, 8)))
                let stepsText = String.Join(", ", steps |> List.map (fun s -> $"{s.Step} {s.Text} ({s.Id.Substring(0, 8)})"))
                let context = $"seed {seed}, kill {kill}: this run's steps: {stepsText}\nhandled before: {named handled}\nhandled now: {named now}"
                // exactly once: a message the library counted handled never reaches the handler again
                Assert.True(entries steps |> List.forall (fun s -> not (handled.Contains s.Id)), $"a handled message came again\n{context}")
                // handled means its loop body completed; nothing handled is ever unhandled again
                let completed = completions (handlerSteps handlerLog) |> List.map (fun s -> s.Id) |> set
                Assert.True(Set.isSubset now completed, $"counted handled before its handler completed\n{context}")
                Assert.True(Set.isSubset handled now, $"a handled message is waiting again\n{context}")
                // oldest first within a run (the texts are numbered in sending order)
                let order = entries steps |> List.map (fun s -> s.Text)
                Assert.True((order = List.sort order && List.distinct order = order), $"not oldest first\n{context}")
                match List.tryLast steps with
                | Some last when last.Step = "enter" -> midHandler <- midHandler + 1
                | _ -> ()
                handled <- now
                kill <- kill + 1
            if kill <= 8 then do! sendCanvas platform ws.Id (List.skip 40 sent)
            // the last start runs until everything is handled, then stops cleanly
            use last = new Sample(dll, env)
            do! waitUntil (secs 120.0) "every message handled" last.Describe (fun () -> (handledIn (ledgerOf stateDir ws)).Count >= sent.Length)
            let! code = last.StopWith "TERM"
            Assert.True((code = 0), $"exit code {code}\n{last.Describe()}")
            let steps = handlerSteps handlerLog
            let ledger = ledgerOf stateDir ws
            let final = handledIn ledger
            let textOf = steps |> List.map (fun s -> s.Id, s.Text) |> Map.ofList
            let context = $"seed {seed}: handled {final.Count}, entries {(entries steps).Length}, {midHandler} kills mid-handler\n{last.Describe()}"
            // none lost, none twice: the handled ids are the sent messages, one each; nothing waits
            Assert.Equal<string list>(sent, final |> Seq.map (fun id -> textOf[id]) |> Seq.sort |> List.ofSeq)
            Assert.True(ledger.Queue.IsEmpty, context)
            Assert.Equal(sent.Length, final.Count)
            Assert.True(entries steps |> List.forall (fun s -> s.Workspace = ws.Id), context)
            // at least once into the handler: every message entered, some more than once (the kills cut handlers short)
            let entered = entries steps |> List.countBy (fun s -> s.Text) |> Map.ofList
            Assert.True(sent |> List.forall entered.ContainsKey, context)
            Assert.True((entries steps).Length >= final.Count, context)
            Assert.True(midHandler >= 1 && (entries steps).Length > final.Count, $"no kill landed inside a handler\n{context}")
            // every message was answered (at least once: an answer sent just before a kill is sent again)
            let! own = activityText platform ws.Id
            for text in sent do
                Assert.Contains($"Agent message: Done: {text}", own)
            assertNoSecrets [ ws.Token ] "the agent's output" last.Lines
            output.WriteLine $"seed {seed}: {kill - 1} kills, {midHandler} inside a handler; {final.Count} messages handled once each, {(entries steps).Length} handler entries"
        }
