module Molecule.Tests.Core.LifecycleTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol

let private check (n: int) (prop: Property) =
    Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest n, prop)

let token = "tok_Secret-0123456789abcdef"
let wsId = "0f8fad5b-d9cb-469f-a165-70867728950e"

let private mkConfig (env: (string * string) list) (file: string option) =
    match Config.parse (Map.ofList env) "/home/u/.molecule-workspace" file with
    | Ok c -> c
    | Result.Error _ -> failwith "test config must parse"

let cfg =
    mkConfig [ "WORKSPACE_ID", wsId; "PLATFORM_URL", "https://h.example"; "MOLECULE_WORKSPACE_TOKEN", token ] None

let cfgFile =
    mkConfig [ "WORKSPACE_ID", wsId; "PLATFORM_URL", "https://h.example" ] (Some token)

/// Runs commands through decide/evolve/effects; returns the final state and the effects of each command.
let run (c: Config) (commands: Lifecycle.Command list) : Lifecycle.State * Effect list list =
    let step (state, acc) cmd =
        let events = Lifecycle.decide c cmd state
        let state', effs =
            events
            |> List.fold (fun (s, es) e -> Lifecycle.evolve s e, es @ Lifecycle.effects c s e) (state, [])
        state', effs :: acc
    let final, acc = List.fold step (Lifecycle.initial, []) commands
    final, List.rev acc

let logs (level: LogLevel) (effs: Effect list) =
    effs
    |> List.choose (function
        | Log(l, t) when l = level -> Some t
        | _ -> None)

let allLogs (effs: Effect list) =
    effs
    |> List.choose (function
        | Log(_, t) -> Some t
        | _ -> None)

let exits (effs: Effect list) =
    effs
    |> List.choose (function
        | Exit code -> Some code
        | _ -> None)

let hb r = Lifecycle.HeartbeatOutcome r

let revoked n status where =
    $"molecule-mcp: {n} consecutive heartbeat auth failures (HTTP {status}) — the token in {where} has been REVOKED, likely because workspace {wsId} was deleted server-side. The MCP server is still running but every platform call will fail. Regenerate the workspace + token from the canvas (Tokens tab), update your MCP config, and restart your runtime."

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

let genBody: Gen<string> =
    Gen.oneof
        [ Gen.elements
              [ ""
                "{}"
                "{\"status\":\"ok\"}"
                "{\"error\":\"invalid workspace auth token\"}"
                $"{{\"error\":\"bad token {token}\"}}"
                $"{{\"id\":\"{token}\",\"removed_at\":\"{token}\",\"status\":\"removed\"}}"
                "not json"
                String('x', 500)
                $"{String('y', 190)}{token}" ]
          ArbMap.defaults |> ArbMap.generate<string> ]

/// Heartbeat outcomes of the 3-strike model: 200 / 401 / 403 / 500 / transport error.
let genStrikeOutcome: Gen<Response> =
    Gen.frequency
        [ 2, Gen.constant (Reply(200, "{\"status\":\"ok\"}"))
          6, Gen.constant (Reply(401, "{\"error\":\"invalid workspace auth token\"}"))
          2, Gen.constant (Reply(403, ""))
          1, Gen.constant (Reply(500, "{\"error\":\"failed to update\"}"))
          1, Gen.constant (TransportError "connection refused") ]

let genAnyResponse: Gen<Response> =
    Gen.oneof
        [ Gen.map2 (fun s b -> Reply(s, b)) (Gen.oneof [ Gen.choose (100, 599); Gen.elements [ 200; 401; 403; 404; 410; 429; 500 ] ]) genBody
          Gen.elements [ TransportError "connection refused"; TransportError $"reset by {token}"; TimedOut 10.0; TimedOut 2.5 ] ]

let genRemovedInfo: Gen<RemovedInfo> =
    Gen.elements
        [ ({ Id = wsId; RemovedAt = None; Hint = Removed.defaultHint }: Removed.Info)
          ({ Id = wsId; RemovedAt = Some "2026-01-02T03:04:05Z"; Hint = "gone" }: Removed.Info) ]

let genCommand: Gen<Lifecycle.Command> =
    Gen.oneof
        [ genAnyResponse |> Gen.map Lifecycle.RegisterOutcome
          genAnyResponse |> Gen.map Lifecycle.HeartbeatOutcome
          genAnyResponse |> Gen.map Lifecycle.ProbeOutcome
          Gen.elements
              [ Reply(200, "{\"id\":\"x\",\"status\":\"removed\"}")
                Reply(200, "{\"status\":\"online\"}")
                Reply(410, $"{{\"id\":\"{token}\"}}") ]
          |> Gen.map Lifecycle.ProbeOutcome
          genRemovedInfo |> Gen.map (WorkspaceRemoved >> Lifecycle.Observed)
          Gen.constant Lifecycle.Succeeded
          Gen.constant Lifecycle.TokenTaken
          Gen.constant (Lifecycle.ToolRefusal 401)
          Gen.constant (Lifecycle.Observed(PeerNames [ (PeerId.tryParse "a").Value, "b" ])) ]

let genConfig = Gen.elements [ cfg; cfgFile ]

/// Outcome lists made of runs (so long streaks such as 23 or 43 auth failures actually happen).
let runsOf (g: Gen<Response>) (maxRun: int) : Gen<Response list> =
    Gen.listOf (Gen.zip g (Gen.choose (1, maxRun)))
    |> Gen.resize 8
    |> Gen.map (List.collect (fun (r, n) -> List.replicate n r))

// ---------------------------------------------------------------------------------------------
// Heartbeat: 3 strikes
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: exactly one ERROR at the 3rd consecutive auth failure and every 20 after`` () =
    let g = Gen.zip genConfig (runsOf genStrikeOutcome 50)
    check 300 (
        Prop.forAll (Arb.fromGen g) (fun (c, outcomes) ->
            let _, perStep = run c (outcomes |> List.map hb)
            // Model: a strike counter; success resets it; other failures leave it alone.
            let expected =
                outcomes
                |> List.scan
                    (fun (n, _) r ->
                        match r with
                        | Reply(s, _) when s < 400 -> 0, false
                        | Reply(s, _) when s = 401 || s = 403 ->
                            let n' = n + 1
                            n', (n' = 3 || (n' > 3 && (n' - 3) % 20 = 0))
                        | _ -> n, false)
                    (0, false)
                |> List.tail
                |> List.map snd
            let actual = perStep |> List.map (fun effs -> logs Error effs |> List.length)
            actual = (expected |> List.map (fun e -> if e then 1 else 0)))
    )

[<Fact>]
let ``3 x 401 gives warnings 1/3, 2/3 then the ERROR; the 23rd gives the second ERROR`` () =
    let _, perStep = run cfg (List.replicate 23 (hb (Reply(401, ""))))
    Assert.Equal<string list>(
        [ "heartbeat HTTP 401 — auth failure 1/3; the token may have been revoked; retrying" ],
        logs Warning perStep[0]
    )
    Assert.Equal<string list>(
        [ "heartbeat HTTP 401 — auth failure 2/3; the token may have been revoked; retrying" ],
        logs Warning perStep[1]
    )
    Assert.Equal<string list>([ revoked 3 401 "MOLECULE_WORKSPACE_TOKEN" ], logs Error perStep[2])
    Assert.Empty(logs Warning perStep[2])
    for i in 3..21 do
        Assert.Empty(perStep[i])
    Assert.Equal<string list>([ revoked 23 401 "MOLECULE_WORKSPACE_TOKEN" ], logs Error perStep[22])
    // Token from the file: the message points at the file.
    let _, perStep2 = run cfgFile (List.replicate 3 (hb (Reply(403, ""))))
    Assert.Equal<string list>(
        [ revoked 3 403 "the token file /home/u/.molecule-workspace/.auth_token" ],
        logs Error perStep2[2]
    )

[<Fact>]
let ``rule: a successful heartbeat resets the strike counter`` () =
    let g = Gen.zip (Gen.listOf genStrikeOutcome) (Gen.choose (200, 399))
    check 300 (
        Prop.forAll (Arb.fromGen g) (fun (prefix, okStatus) ->
            let before, _ = run cfg (prefix |> List.map hb)
            let after, perStep = run cfg ((prefix |> List.map hb) @ [ hb (Reply(okStatus, "{}")); hb (Reply(401, "")) ])
            let recovered = perStep[perStep.Length - 2] |> logs Info
            let next = perStep[perStep.Length - 1] |> logs Warning
            after.AuthFailures = 1
            && next = [ "heartbeat HTTP 401 — auth failure 1/3; the token may have been revoked; retrying" ]
            && (before.AuthFailures = 0
                || recovered |> List.contains $"heartbeat recovered after {before.AuthFailures} auth failure(s)"))
    )

[<Fact>]
let ``rule: non-auth failures never change the strike counter`` () =
    let nonAuth =
        Gen.oneof
            [ Gen.map2 (fun s b -> Reply(s, b)) (Gen.choose (400, 599) |> Gen.filter (fun s -> s <> 401 && s <> 403)) genBody
              Gen.elements [ TransportError "connection refused"; TimedOut 10.0 ] ]
    check 300 (
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.listOf genStrikeOutcome) (Gen.listOf nonAuth))) (fun (prefix, failures) ->
            let before, _ = run cfg (prefix |> List.map hb)
            let after, _ = run cfg ((prefix @ failures) |> List.map hb)
            after.AuthFailures = before.AuthFailures)
    )

[<Fact>]
let ``rule: identical non-auth heartbeat warnings repeat only on the 1st and every 30th consecutive failure`` () =
    let failure = Gen.elements [ Reply(500, "boom"); Reply(502, ""); TransportError "refused"; TimedOut 10.0 ]
    let kind r =
        match r with
        | Reply(s, _) -> $"http {s}"
        | TransportError _ -> "unreachable"
        | TimedOut _ -> "timeout"
    let g = runsOf (Gen.frequency [ 1, Gen.constant (Reply(200, "{}")); 6, failure ]) 40
    check 200 (
        Prop.forAll (Arb.fromGen g) (fun outcomes ->
            let _, perStep = run cfg (outcomes |> List.map hb)
            let expected =
                outcomes
                |> List.scan
                    (fun (n, last, _) r ->
                        match r with
                        | Reply(s, _) when s < 400 -> 0, "", false
                        | _ ->
                            let n' = n + 1
                            n', kind r, (n = 0 || last <> kind r || n' % 30 = 0))
                    (0, "", false)
                |> List.tail
                |> List.map (fun (_, _, w) -> if w then 1 else 0)
            let actual = perStep |> List.map (fun effs -> logs Warning effs |> List.length)
            actual = expected)
    )
    let _, perStep = run cfg (List.replicate 61 (hb (Reply(500, "boom"))) @ [ hb (Reply(200, "{}")) ])
    Assert.Equal<string list>([ "heartbeat HTTP 500: boom" ], logs Warning perStep[0])
    Assert.Equal<string list>([ "heartbeat HTTP 500: boom (30 consecutive failures)" ], logs Warning perStep[29])
    Assert.Equal<string list>([ "heartbeat HTTP 500: boom (60 consecutive failures)" ], logs Warning perStep[59])
    Assert.Equal<string list>([ "heartbeat recovered after 61 failed attempt(s)" ], logs Info perStep[61])

[<Fact>]
let ``rule: heartbeat never exits`` () =
    check 300 (
        Prop.forAll (Arb.fromGen (Gen.zip genConfig (runsOf genAnyResponse 70))) (fun (c, outcomes) ->
            let _, perStep = run c (outcomes |> List.map hb)
            perStep |> List.forall (fun effs -> exits effs |> List.isEmpty))
    )

// ---------------------------------------------------------------------------------------------
// Register
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: register 401/403/410 exits with code 3 unless the run saw the workspace live then removed, and nothing else exits`` () =
    // 410 at register exits with 3 as well: a deleted workspace cannot work.
    check 500 (
        Prop.forAll (Arb.fromGen (Gen.zip3 genConfig (Gen.listOf genCommand |> Gen.resize 20) genCommand)) (fun (c, prefix, cmd) ->
            let state, _ = run c prefix
            let effs =
                Lifecycle.decide c cmd state
                |> List.fold (fun (s, acc) e -> Lifecycle.evolve s e, acc @ Lifecycle.effects c s e) (state, [])
                |> snd
            let shouldExit =
                match cmd with
                | Lifecycle.RegisterOutcome(Reply(s, _)) -> (s = 401 || s = 403 || s = 410) && not (state.Live && state.Removed.IsSome)
                | _ -> false
            if shouldExit then
                exits effs = [ 3 ] && List.last effs = Exit 3
            else
                exits effs = [])
    )

[<Fact>]
let ``register examples (spec 2.2)`` () =
    let _, ok = run cfg [ Lifecycle.RegisterOutcome(Reply(200, "{\"status\":\"registered\"}")) ]
    Assert.Equal<Effect list>([ Log(Info, $"registered workspace {wsId} with platform") ], ok[0])
    let st, _ = run cfg [ Lifecycle.RegisterOutcome(Reply(302, "")) ]
    Assert.True(st.Registered)
    let _, rej = run cfg [ Lifecycle.RegisterOutcome(Reply(401, "")) ]
    match rej[0] with
    | [ Log(Error, text); Exit 3 ] ->
        Assert.StartsWith("molecule-mcp: register rejected with HTTP 401", text)
        Assert.Contains("MOLECULE_WORKSPACE_TOKEN", text)
        Assert.Contains(wsId, text)
        Assert.Contains("Tokens tab", text)
    | other -> failwith $"unexpected {other}"
    let _, rejFile = run cfgFile [ Lifecycle.RegisterOutcome(Reply(403, "")) ]
    Assert.Contains("/home/u/.molecule-workspace/.auth_token", logs Error rejFile[0] |> List.exactlyOne)
    let long = String('b', 300)
    let st2, warn = run cfg [ Lifecycle.RegisterOutcome(Reply(500, long)) ]
    Assert.Equal<string list>([ "register POST returned HTTP 500: " + String('b', 200) ], logs Warning warn[0])
    Assert.False(st2.Registered)
    let _, tr = run cfg [ Lifecycle.RegisterOutcome(TransportError "connection refused") ]
    Assert.Equal<string list>([ "register POST failed: connection refused" ], logs Warning tr[0])
    let _, gone = run cfg [ Lifecycle.RegisterOutcome(Reply(410, "{\"id\":\"" + wsId + "\",\"removed_at\":\"2026-01-01T00:00:00Z\"}")) ]
    match gone[0] with
    | [ Log(Error, text); Exit 3 ] ->
        Assert.Equal("molecule-mcp: " + Removed.text ({ Id = wsId; RemovedAt = Some "2026-01-01T00:00:00Z"; Hint = Removed.defaultHint }: Removed.Info), text)
    | other -> failwith $"unexpected {other}"

[<Fact>]
let ``rule: a register refused after the run saw the workspace live and then removed keeps serving and says nothing more`` () =
    // The register's answer can come after a tool's (a busy machine): the deletion seen in between is a runtime one —
    // the process keeps serving and the tools tell why — not a failed start.
    let genLate = Gen.elements [ Reply(401, ""); Reply(403, "{}"); Reply(410, $"{{\"id\":\"{wsId}\"}}") ]
    check 300 (
        Prop.forAll (Arb.fromGen (Gen.zip3 genConfig (Gen.listOf genCommand |> Gen.resize 12) (Gen.zip genRemovedInfo genLate))) (fun (c, prefix, (info, late)) ->
            let seen = prefix @ [ Lifecycle.TokenTaken; Lifecycle.Observed(WorkspaceRemoved info) ]
            let state, _ = run c seen
            let after, perStep = run c (seen @ [ Lifecycle.RegisterOutcome late ])
            List.last perStep = [] && after = state)
    )

[<Fact>]
let ``example: a register refused with 401 after the inbox's poll and the workspace's removal keeps serving`` () =
    let info: RemovedInfo = { Id = wsId; RemovedAt = Some "2026-12-07T20:27:23Z"; Hint = Removed.defaultHint }
    let st, perStep =
        run cfg [ Lifecycle.TokenTaken; Lifecycle.Observed(WorkspaceRemoved info); Lifecycle.RegisterOutcome(Reply(401, "")) ]
    Assert.Equal<int list>([], exits perStep[2])
    Assert.Equal(Some info, st.Removed)
    Assert.Equal(None, Lifecycle.degraded cfg st)

[<Fact>]
let ``example: a register 410 after the inbox's poll, the removal not seen otherwise, exits 3`` () =
    let _, perStep = run cfg [ Lifecycle.TokenTaken; Lifecycle.RegisterOutcome(Reply(410, "")) ]
    Assert.Equal<int list>([ 3 ], exits perStep[1])

[<Fact>]
let ``example: a wrong token's register 401 exits 3 although a route that asks no token answered 200`` () =
    let _, perStep = run cfg [ Lifecycle.Succeeded; Lifecycle.RegisterOutcome(Reply(401, "")) ]
    Assert.Equal<int list>([ 3 ], exits perStep[1])

// ---------------------------------------------------------------------------------------------
// Removal (410)
// ---------------------------------------------------------------------------------------------

let private isRemovalSignal (c: Lifecycle.Command) =
    match c with
    | Lifecycle.RegisterOutcome(Reply(410, _))
    | Lifecycle.HeartbeatOutcome(Reply(410, _))
    | Lifecycle.ProbeOutcome(Reply(410, _))
    | Lifecycle.Observed(WorkspaceRemoved _) -> true
    | Lifecycle.ProbeOutcome(Reply(200, body)) -> body.Contains "\"status\":\"removed\""
    | _ -> false

[<Fact>]
let ``rule: 410 anywhere marks the workspace removed exactly once`` () =
    check 400 (
        Prop.forAll (Arb.fromGen (Gen.listOf genCommand |> Gen.resize 40)) (fun commands ->
            let final, perStep = run cfg commands
            let removedEvents =
                commands
                |> List.fold
                    (fun (st, n) cmd ->
                        let evs = Lifecycle.decide cfg cmd st
                        let n' =
                            n
                            + (evs
                               |> List.filter (function
                                   | Lifecycle.WorkspaceRemoved _ -> true
                                   | _ -> false)
                               |> List.length)
                        List.fold Lifecycle.evolve st evs, n')
                    (Lifecycle.initial, 0)
                |> snd
            let removedLogs =
                perStep |> List.sumBy (fun effs -> logs Error effs |> List.filter (fun t -> t.Contains "was deleted on the platform") |> List.length)
            let signalled = commands |> List.exists isRemovalSignal
            let expected = if signalled then 1 else 0
            final.Removed.IsSome = signalled && removedLogs = expected && removedEvents = expected)
    )

[<Fact>]
let ``removal examples (spec 2.14)`` () =
    let info = Lifecycle.removedInfoOfBody wsId "{\"error\":\"workspace removed\",\"id\":\"abc\",\"hint\":\"Regenerate\",\"removed_at\":\"2026-02-03T00:00:00Z\"}"
    Assert.Equal(({ Id = "abc"; RemovedAt = Some "2026-02-03T00:00:00Z"; Hint = "Regenerate" }: Removed.Info), info)
    let info2 = Lifecycle.removedInfoOfBody wsId "{\"removed_at\":null}"
    Assert.Equal(({ Id = wsId; RemovedAt = None; Hint = Removed.defaultHint }: Removed.Info), info2)
    Assert.Equal(info2, Lifecycle.removedInfoOfBody wsId "garbage")
    let st, perStep = run cfg [ Lifecycle.ProbeOutcome(Reply(200, "{\"id\":\"" + wsId + "\",\"status\":\"removed\"}")) ]
    Assert.Equal(Some info2, st.Removed)
    Assert.Equal<Effect list>([ Log(Error, "molecule-mcp: " + Removed.text info2) ], perStep[0])
    let st2, none = run cfg [ Lifecycle.ProbeOutcome(Reply(200, "{\"status\":\"online\"}")); Lifecycle.ProbeOutcome(Reply(404, "")) ]
    Assert.Equal(None, st2.Removed)
    Assert.True(none |> List.forall List.isEmpty)
    let st3, _ = run cfg [ hb (Reply(410, "{}")) ]
    Assert.Equal(Some info2, st3.Removed)

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: inbound secret is persisted but never logged`` () =
    let secretChars = [ 'a' .. 'z' ] @ [ '0' .. '9' ]
    let genSecret = Gen.listOfLength 24 (Gen.elements secretChars) |> Gen.map (List.toArray >> String)
    let g = Gen.zip3 genSecret (Gen.listOf genStrikeOutcome |> Gen.resize 30) (Gen.choose (200, 399))
    check 300 (
        Prop.forAll (Arb.fromGen g) (fun (secret, prefix, status) ->
            let body = $"{{\"status\":\"ok\",\"platform_inbound_secret\":\"{secret}\"}}"
            let _, perStep = run cfg ((prefix |> List.map hb) @ [ hb (Reply(status, body)) ])
            let last = List.last perStep
            let writes =
                perStep
                |> List.concat
                |> List.choose (function
                    | WriteStateFile(name, contents) -> Some(name, contents)
                    | _ -> None)
            writes = [ ".platform_inbound_secret", secret ]
            && last |> List.contains (WriteStateFile(".platform_inbound_secret", secret))
            && perStep |> List.concat |> allLogs |> List.forall (fun t -> not (t.Contains secret)))
    )
    let _, noSecret = run cfg [ hb (Reply(200, "{\"platform_inbound_secret\":\"\"}")); hb (Reply(200, "nope")) ]
    Assert.True(noSecret |> List.forall List.isEmpty)

[<Fact>]
let ``rule: no log line contains the token`` () =
    check 400 (
        Prop.forAll (Arb.fromGen (Gen.zip genConfig (Gen.listOf genCommand |> Gen.resize 40))) (fun (c, commands) ->
            let _, perStep = run c commands
            perStep |> List.concat |> allLogs |> List.forall (fun t -> not (t.Contains token)))
    )
    let _, perStep = run cfg [ hb (Reply(500, $"echo {token}")); Lifecycle.RegisterOutcome(TransportError $"fail {token}") ]
    Assert.Equal<string list>([ "heartbeat HTTP 500: echo ***" ], logs Warning perStep[0])
    Assert.Equal<string list>([ "register POST failed: fail ***" ], logs Warning perStep[1])
