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
          Gen.elements
              [ Config.NotFound; Config.Denied; Config.NotUtf8; Config.Contents "  "; Config.Contents "two tokens"
                Config.Contents "t\u00f6ken-non-ascii-0123"; Config.Contents "control\u0007token"; Config.TooLarge Config.tokenFileLimit
                Config.NotRegular "a named pipe (FIFO), not a regular file"; Config.IsDirectory ] ]

/// Anything a token file can hold, arbitrary text included.
let private anyRead =
    Gen.oneof [ readGen; ArbMap.defaults |> ArbMap.generate<string> |> Gen.map (fun s -> Config.Contents(if isNull s then "" else s)) ]

[<Fact>]
let ``rule: a token file is judged by the same rules at the start and on a rotation — a bad rotation keeps the token`` () =
    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen anyRead) (fun read ->
            let env = Map.ofList [ "WORKSPACE_ID", selfId.Value; "PLATFORM_URL", "https://h"; "MOLECULE_WORKSPACE_TOKEN_FILE", "/run/token" ]
            let atStart = Connections.parse env "/s" None (Some read) |> Result.map (fun cs -> cs.Head.Token)
            let m, _ = Agent.update Agent.Start (Agent.init fileConfig (boot []))
            let m, effects = Agent.update (Agent.TokenFileChanged(selfId, read)) m
            let rotated = (Agent.primary m).Config.Token
            let warned = effects |> List.exists (function Log(Warning, t) -> t.Contains "keeping the token read before" | _ -> false)
            match atStart with
            | Ok t -> rotated = t && not warned
            | Result.Error _ -> rotated = fileConfig.Token && warned)
    )

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
                    m <- fst (Agent.update (Agent.Responded(Background(selfId, Heartbeat), Reply(401, ""), 0.5)) m)
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
    let refuse m = fst (Agent.update (Agent.Responded(Background(selfId, Heartbeat), Reply(401, ""), 0.5)) m)
    // one or two refused heartbeats are not a confirmed rejection: the tools still call the platform
    let m = refuse (refuse m)
    let _, asked = Agent.update (Agent.ToolCalled(3L, "n", Tools.parse "list_peers" None)) m
    Assert.Contains(asked, fun e -> match e with Send(ForTool 3L, _) -> true | _ -> false)
    let m = refuse m
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

[<Fact>]
let ``rule: degraded means confirmed — three heartbeat strikes or a tool's own 401, and any successful request clears it at once`` () =
    let outcome =
        Gen.frequency
            [ 4, Gen.constant "hb401"
              1, Gen.constant "hb200"
              2, Gen.constant "poll200"
              1, Gen.constant "poll500"
              1, Gen.constant "tool401"
              1, Gen.constant "tool200" ]
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.listOf outcome)) (fun steps ->
            let mutable m, _ = Agent.update Agent.Start (Agent.init fileConfig (boot []))
            // the model: strikes (heartbeat refusals with no success between them) and a tool's refusal
            let mutable strikes = 0
            let mutable refused = false
            let mutable ok = true
            let mutable call = 100L
            for step in steps do
                let answer purpose response = m <- fst (Agent.update (Agent.Responded(purpose, response, 0.5)) m)
                match step with
                | "hb401" ->
                    answer (Background(selfId, Heartbeat)) (Reply(401, ""))
                    strikes <- strikes + 1
                | "hb200" ->
                    answer (Background(selfId, Heartbeat)) (Reply(200, "{}"))
                    strikes <- 0
                    refused <- false
                | "poll200" ->
                    answer (Background(selfId, WorkspaceProbe)) (Reply(200, "{}"))
                    strikes <- 0
                    refused <- false
                | "poll500" -> answer (Background(selfId, WorkspaceProbe)) (Reply(500, ""))
                | tool ->
                    call <- call + 1L
                    // get_workspace_info asks the platform even while degraded
                    m <- fst (Agent.update (Agent.ToolCalled(call, "n", Tools.parse "get_workspace_info" None)) m)
                    if tool = "tool401" then
                        answer (ForTool call) (Reply(401, "{\"error\":\"invalid workspace auth token\"}"))
                        refused <- true
                    else
                        answer (ForTool call) (Reply(200, $"{{\"id\":\"{selfId.Value}\",\"name\":\"x\"}}"))
                        strikes <- 0
                        refused <- false
                let degraded = (Agent.context m "n").Degraded.IsSome
                ok <- ok && degraded = (strikes >= 3 || refused)
            ok)
    )
