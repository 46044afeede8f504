module Molecule.Tests.Core.AgentTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private fresh (cfg: Config) = Agent.init cfg (boot [])

let private afterTimers (effects: Effect list) =
    effects |> List.choose (function After(s, t) -> Some(s, t) | _ -> None)

let private sends (effects: Effect list) =
    effects |> List.choose (function Send(p, r) -> Some(p, r) | _ -> None)

let private answers (effects: Effect list) =
    effects |> List.choose (function Answer(c, o, n) -> Some(c, o, n) | _ -> None)

let private bg job = Background(selfId, job)

/// A world whose agent has not finished the MCP handshake yet.
let private preHandshake (p: Platform) =
    let w = { world true with Platform = p; File = [] }
    let model = Agent.init config (boot [])
    { w with Model = model; Inflight = []; Timers = []; Notified = [] } |> dispatch Agent.Start

let private queued2 () = (platform true, [ 1; 2 ]) ||> List.fold (fun p _ -> fst (append Peer false p))

[<Fact>]
let ``rule: channel notifications flow only after notifications/initialized, each message exactly once`` () =
    let steps = Gen.listOf (Gen.oneof [ Gen.choose (0, 3) |> Gen.map Some; Gen.constant None ])
    Check.One(
        quick 100,
        Prop.forAll (Arb.fromGen steps) (fun steps ->
            let mutable w = preHandshake (platform true)
            let mutable initialized = false
            for step in steps do
                match step with
                | None ->
                    w <- dispatch Agent.ClientInitialized w
                    initialized <- true
                | Some n ->
                    for _ in 1..n do
                        w <- { w with Platform = fst (append Peer false w.Platform) }
                    let before = w.Notified.Length
                    w <- settle (tick w)
                    if not initialized && w.Notified.Length > before then failwith "notification before initialized"
            let delivered = w.Platform.Rows |> List.map (fun r -> r.Id)
            let expected = if initialized then delivered else []
            List.sort w.Notified = List.sort expected |> Prop.label $"notified {w.Notified} expected {expected}")
    )

[<Fact>]
let ``rule: heartbeats repeat one interval (20 s) after every answer`` () =
    let responses =
        Gen.oneof [ Gen.choose (100, 599) |> Gen.map (fun s -> Reply(s, "")); Gen.constant (TransportError "refused"); Gen.constant (TimedOut 10.0) ]
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen responses) (fun response ->
            let _, effects = Agent.update (Agent.Responded(bg Heartbeat, response)) (fresh config)
            afterTimers effects = [ config.HeartbeatIntervalSecs, HeartbeatTimer selfId ])
    )

[<Fact>]
let ``rule: the poll timer repeats one interval (5 s) after every tick, whatever the answers`` () =
    let responses =
        Gen.oneof [ Gen.choose (100, 599) |> Gen.map (fun s -> Reply(s, "[]")); Gen.constant (TransportError "refused"); Gen.constant (TimedOut 10.0) ]
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen responses) (fun response ->
            let m, _ = Agent.update Agent.Start (fresh config)
            let m, answered = Agent.update (Agent.Responded(bg Poll, response)) m
            let _, ticked = Agent.update (Agent.TimerFired(PollTimer selfId, 5.0)) m
            afterTimers answered = [] && afterTimers ticked = [ config.PollIntervalSecs, PollTimer selfId ])
    )

[<Fact>]
let ``rule: a rejected register exits 3 and starts no heartbeat`` () =
    for status in [ 401; 403 ] do
        let _, effects = Agent.update (Agent.Responded(bg Register, Reply(status, "{}"))) (fresh config)
        Assert.Contains(Exit 3, effects)
        Assert.Empty(afterTimers effects)

[<Fact>]
let ``rule: an accepted register starts the heartbeat at once`` () =
    let _, effects = Agent.update (Agent.Responded(bg Register, Reply(200, "{}"))) (fresh config)
    Assert.Equal<(float * Timer) list>([ 0.0, HeartbeatTimer selfId ], afterTimers effects)
    Assert.DoesNotContain(Exit 3, effects)

[<Fact>]
let ``start registers, probes the workspace and starts intake; disabled parts send nothing`` () =
    let jobs cfg = Agent.update Agent.Start (fresh cfg) |> snd |> sends |> List.map fst
    Assert.Equal<Purpose list>([ bg Register; bg WorkspaceProbe; bg Poll ], jobs config)
    Assert.Equal<Purpose list>([ bg WorkspaceProbe; bg Poll ], jobs { config with HeartbeatEnabled = false })
    Assert.Equal<Purpose list>([ bg Register; bg WorkspaceProbe ], jobs { config with InboxEnabled = false })

[<Fact>]
let ``a fresh ledger reads the platform's acknowledged floor before it replays`` () =
    let _, effects = Agent.update Agent.Start (fresh config)
    let _, poll = sends effects |> List.find (fun (p, _) -> p = bg Poll)
    Assert.EndsWith("/activity/ack", poll.Url)
    Assert.Equal(JsonBody "{\"acked_seq\":0}", poll.Body)

[<Fact>]
let ``inbox tools: wait answers at once or when a message arrives, peek lists, pop removes`` () =
    let w = settle (world true)
    let w, out = call "wait_for_message" [ "timeout_secs", Json.num 30 ] w
    Assert.True(out.IsNone, "wait_for_message answered without a message")
    let w = { w with Platform = fst (append Canvas false w.Platform) }
    let w = settle (tick w)
    let answered = w.Answers.TryFind w.NextCall
    let id = (waiting w).Head
    Assert.Equal(Some id, answered |> Option.bind (fun o -> Json.tryParse o.Text) |> Option.bind (Json.stringProp "activity_id"))
    let w, peek = call "inbox_peek" [] w
    Assert.Equal(Some [ id ], peek |> Option.bind (fun o -> Json.tryParse o.Text) |> Option.bind Json.asArray |> Option.map (List.choose (Json.stringProp "activity_id")))
    let w, pop = call "inbox_pop" [ "activity_id", Json.str id ] w
    Assert.Equal(Some $"{{\"removed\":true,\"activity_id\":\"{id}\"}}", pop |> Option.map (fun o -> o.Text))
    let _, again = call "inbox_pop" [ "activity_id", Json.str id ] w
    Assert.Equal(Some $"{{\"removed\":false,\"activity_id\":\"{id}\"}}", again |> Option.map (fun o -> o.Text))

[<Fact>]
let ``wait_for_message times out at its deadline, and a cancelled wait is forgotten`` () =
    let w = settle (world true)
    let w, _ = call "wait_for_message" [ "timeout_secs", Json.num 999 ] w
    let call1 = w.NextCall
    Assert.Contains(WaitDeadline call1, w.Timers)
    let w = dispatch (Agent.TimerFired(WaitDeadline call1, 300.0)) w
    let t = w.Answers[call1] |> fun o -> Json.tryParse o.Text
    Assert.Equal(Some "true", t |> Option.bind (Json.prop "timeout") |> Option.bind Json.asScalarText)
    Assert.Equal(Some 300.0, t |> Option.bind (Json.prop "timeout_secs") |> Option.bind Json.asFloat)
    let w, _ = call "wait_for_message" [ "timeout_secs", Json.num 5 ] w
    let call2 = w.NextCall
    let w = dispatch (Agent.ToolCancelled call2) w
    let w = { w with Platform = fst (append Peer false w.Platform) }
    let w = settle (tick w)
    Assert.False(w.Answers.ContainsKey call2, "a cancelled wait was answered")

[<Fact>]
let ``inbox tools report a disabled inbox as an error`` () =
    let m = fresh { config with InboxEnabled = false }
    for name, args in [ "wait_for_message", [ "timeout_secs", Json.num 1 ]; "inbox_peek", []; "inbox_pop", [ "activity_id", Json.str "a" ] ] do
        let _, effects = Agent.update (Agent.ToolCalled(1L, "n", Tools.parse name (Some(Json.obj args)))) m
        match answers effects with
        | [ _, output, _ ] ->
            Assert.True(output.IsError)
            Assert.Contains("MOLECULE_MCP_DISABLE_INBOX", output.Text)
        | other -> failwith $"expected one answer, got {other.Length}"

[<Fact>]
let ``rule: a pop is made durable before its answer leaves`` () =
    let w = settle (start { world true with Platform = queued2 () })
    let id = (waiting w).Head
    let _, effects = Agent.update (Agent.ToolCalled(99L, "n", Tools.parse "inbox_pop" (Some(Json.obj [ "activity_id", Json.str id ])))) w.Model
    let persist = effects |> List.findIndex (function Persist _ -> true | _ -> false)
    let answer = effects |> List.findIndex (function Answer _ -> true | _ -> false)
    Assert.True(persist < answer, "the answer came before the durable write")

[<Fact>]
let ``rule: a new message is made durable before it is pushed or handed to a waiting call`` () =
    let w = settle (world true)
    let w, _ = call "wait_for_message" [ "timeout_secs", Json.num 30 ] w
    let w = { w with Platform = fst (append Peer false w.Platform) }
    let w = tick w
    let purpose, request = w.Inflight.Head
    let _, response = answer request w.Platform
    let _, effects = Agent.update (Agent.Responded(purpose, response)) w.Model
    let persist = effects |> List.findIndex (function Persist _ -> true | _ -> false)
    let firstOut = effects |> List.findIndex (function Notify _ | Answer _ -> true | _ -> false)
    Assert.True(persist < firstOut, "a message left before it was durable")

[<Fact>]
let ``other tools' results carry a pending notice while messages wait; inbox tools do not`` () =
    let w = settle (start { world true with Platform = queued2 () })
    let m, listed = Agent.update (Agent.ToolCalled(7L, "n", Tools.parse "list_peers" None)) w.Model
    let request = sends listed |> List.head |> snd
    Assert.Contains("/peers", request.Url)
    let _, done' = Agent.update (Agent.Responded(ForTool 7L, Reply(200, "[]"))) m
    match answers done' with
    | [ _, output, notice ] ->
        Assert.DoesNotContain("unread", output.Text)
        Assert.Equal(Some "📬 2 unread messages — inbox_peek to read them", notice)
    | other -> failwith $"expected one answer, got {other.Length}"
    let _, peeked = Agent.update (Agent.ToolCalled(8L, "n", Tools.parse "inbox_peek" None)) w.Model
    Assert.True(answers peeked |> List.forall (fun (_, _, n) -> n.IsNone))

[<Fact>]
let ``rule: an unpopped message is pushed once more after the re-notify delay, and never again`` () =
    let w = settle (start { world true with Platform = queued2 () })
    Assert.Equal(2, w.Notified.Length)
    let mutable w = w
    for _ in 1..59 do
        w <- settle (tick w)
    Assert.Equal(2, w.Notified.Length) // 295 s: not yet
    for _ in 1..200 do
        w <- settle (tick w)
    Assert.Equal(4, w.Notified.Length)
    let off = Agent.init { config with RenotifySecs = 0.0 } (boot w.File)
    let _, effects = Agent.update (Agent.TimerFired(PollTimer selfId, 10_000.0)) (fst (Agent.update Agent.ClientInitialized off))
    Assert.Empty(effects |> List.filter (function Notify _ -> true | _ -> false))

[<Fact>]
let ``a removed workspace observed by a tool reaches the tool context`` () =
    let info = ({ Id = selfId.Value; RemovedAt = Some "2026-11-21T12:00:00Z"; Hint = Removed.defaultHint }: Removed.Info)
    let m = fresh config
    let m, _ = Agent.update (Agent.ToolCalled(3L, "n", Tools.parse "get_workspace_info" None)) m
    let m, _ = Agent.update (Agent.Responded(ForTool 3L, Reply(410, $"{{\"id\":\"{selfId}\",\"removed_at\":\"2026-11-21T12:00:00Z\"}}"))) m
    Assert.Equal(Some info, (Agent.context m "n").Removed)

[<Fact>]
let ``rule: unread messages restored from the ledger are announced once after notifications/initialized`` () =
    Check.One(
        quick 50,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 6)) (Gen.choose (0, 6)))) (fun (n, popped) ->
            let p = (platform true, [ 1..n ]) ||> List.fold (fun p _ -> fst (append Peer false p))
            let earlier = settle (start { world true with Platform = p })
            // The process stops; a new one starts and the agent pops some messages before the handshake completes.
            let w = { earlier with Model = Agent.init config (boot earlier.File); Notified = [] } |> dispatch Agent.Start
            let ids = waiting w
            let w = (w, ids |> List.truncate popped) ||> List.fold (fun w id -> fst (call "inbox_pop" [ "activity_id", Json.str id ] w))
            let w = dispatch Agent.ClientInitialized w
            let w = dispatch Agent.ClientInitialized w
            w.Notified = (ids |> List.skip (min popped ids.Length)))
    )
