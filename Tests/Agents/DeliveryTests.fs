/// Delivery as a library agent (MoleculeAgent, in this process) meets it against the real local platform on
/// 127.0.0.1: a backlog beyond the inbox's capacity at the first start.
module Molecule.Tests.Agents.DeliveryTests

open System
open System.Threading.Tasks
open Xunit
open Molecule.Agents
open Molecule.Tests.Host.Harness
open Molecule.Tests.Agents.AgentTests
open Molecule.Tests.Agents.CrashTests

[<Fact>]
let ``1,500 messages waiting at the first start: all delivered oldest first, each handled exactly once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "backlog"
        // more than the inbox holds (1,000 unread): intake pauses and resumes as messages are handled
        let sent = [ for i in 1..1500 -> $"backlog #{i:D4}" ]
        for text in sent do
            let! _ = platform.CanvasMessage(ws.Id, text)
            ()
        let dir = tempDir "lib"
        let! agent = MoleculeAgent.ConnectAsync(options platform ws dir)
        let! got = readWithin (TimeSpan.FromSeconds 240.0) agent sent.Length (fun _ -> Task.CompletedTask)
        Assert.Equal<string list>(sent, texts got)
        Assert.Equal(sent.Length, got |> List.distinctBy (fun m -> m.Id) |> List.length)
        // nothing more comes, and the ledger counts every one handled
        let! more = agent.WaitForMessageAsync(TimeSpan.FromSeconds 2.0)
        Assert.Null more
        do! agent.DisposeAsync()
        let ledger = ledgerOf dir ws
        Assert.True(ledger.Queue.IsEmpty)
        Assert.Equal<Set<string>>(got |> List.map (fun m -> m.Id) |> set, handledIn ledger)
        // a restart on the same state brings none of them back
        let! again = MoleculeAgent.ConnectAsync(options platform ws dir)
        let! none = again.WaitForMessageAsync(TimeSpan.FromSeconds 2.0)
        Assert.Null none
        do! again.DisposeAsync()
    }
