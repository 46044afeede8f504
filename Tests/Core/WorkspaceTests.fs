module Molecule.Tests.Core.WorkspaceTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private fileConfig = { config with TokenSource = FromTokenFile "/run/token"; Token = "first-token-0123" }

let private readGen =
    Gen.oneof
        [ Gen.elements [ "second-token-0123"; "third-token-4567"; "first-token-0123" ] |> Gen.map (fun t -> Config.Contents(t + "\n"))
          Gen.elements [ Config.NotFound; Config.Denied; Config.NotUtf8; Config.Contents "  "; Config.Contents "two tokens" ] ]

[<Fact>]
let ``rule: token-file reloads use the last valid token, keep the current one when the file is unusable, and clear the strikes`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.listOf (Gen.zip readGen (Gen.elements [ true; false ])))) (fun steps ->
            let mutable m, _ = Agent.update Agent.Start (Agent.init fileConfig (boot []))
            let mutable expected = fileConfig.Token
            let mutable ok = true
            for read, rejectFirst in steps do
                if rejectFirst then
                    m <- fst (Agent.update (Agent.Responded(Background(selfId, Heartbeat), Reply(401, ""))) m)
                let before = (Agent.primary m).Life.AuthFailures
                m <- fst (Agent.update (Agent.TokenFileChanged(selfId, read)) m)
                let after = Agent.primary m
                match Config.readTokenFile "/run/token" read with
                | Ok t when t <> expected ->
                    expected <- t
                    ok <- ok && after.Life.AuthFailures = 0
                | _ -> ok <- ok && after.Life.AuthFailures = before
                ok <- ok && after.Config.Token = expected
            ok)
    )

[<Fact>]
let ``while the platform rejects the token every platform tool answers one clear line; a new token clears it`` () =
    let m, _ = Agent.update Agent.Start (Agent.init fileConfig (boot []))
    let m, _ = Agent.update (Agent.Responded(Background(selfId, Heartbeat), Reply(401, ""))) m
    // get_workspace_info is the exception: it still asks, so a deleted workspace (410) is told apart (DispatchTests).
    let _, asks = Agent.update (Agent.ToolCalled(4L, "n", Tools.parse "get_workspace_info" None)) m
    Assert.Contains(asks, fun e -> match e with Send(ForTool 4L, _) -> true | _ -> false)
    for name in [ "list_peers"; "check_task_status"; "recall_memory" ] do
        let _, effects = Agent.update (Agent.ToolCalled(5L, "n", Tools.parse name None)) m
        match effects with
        | [ Answer(5L, o, _) ] ->
            Assert.True(o.IsError)
            Assert.StartsWith($"Error: the platform rejects the token of workspace {selfId.Value} (from /run/token", o.Text)
        | other -> failwith $"{name}: expected one answer without a request, got {other}"
    let m, logs = Agent.update (Agent.TokenFileChanged(selfId, Config.Contents "fresh-token-9876")) m
    Assert.Contains(logs, fun e -> match e with Log(Info, t) -> t.Contains "a new token from /run/token" | _ -> false)
    let _, effects = Agent.update (Agent.ToolCalled(6L, "n", Tools.parse "list_peers" None)) m
    match effects with
    | [ Send(ForTool 6L, r) ] -> Assert.Contains(("Authorization", "Bearer fresh-token-9876"), r.Headers)
    | other -> failwith $"expected the request with the new token, got {other}"
