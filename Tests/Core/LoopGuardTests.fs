/// The loop guard (LoopGuard.fs) as a decider against an oracle written from the whole history, and the agent's use of
/// it in the simulated world: a pair that loops is paused (its messages held in the inbox, one line to the agent, one
/// loop_guard approval to the user) and resumed by the user's approval.
module Molecule.Tests.Core.LoopGuardTests

open System
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

type private Event =
    | Human
    | Resume of peer: string
    | Message of peer: string * text: string * atSecs: int

let private peers = [ "p1"; "p2" ]

let private eventGen (texts: string list) =
    Gen.frequency
        [ 12, Gen.map3 (fun p t a -> Message(p, t, a)) (Gen.elements peers) (Gen.elements texts) (Gen.choose (0, 40))
          1, Gen.constant Human
          1, Gen.elements peers |> Gen.map Resume ]

/// The oracle: for each message, whether it must be suppressed — its peer's pair was paused since a resume (or the
/// start), or this message is past a bound among the peer's messages since the pair last started (the later of the
/// last resume and the last human turn while the pair ran).
let private oracle (bounds: LoopBounds) (events: Event list) : bool list =
    let over bound n = bound > 0 && n > bound
    // per peer: (messages since the pair started: (normalised text, time) newest first, paused)
    let step (state: Map<string, (string * int64) list * bool>, clock: int64, out: bool list) (e: Event) =
        match e with
        | Human -> state |> Map.map (fun _ (msgs, paused) -> (if paused then msgs else []), paused), clock, out
        | Resume p -> state.Add(p, ([], false)), clock, out
        | Message(p, text, secs) ->
            let at = clock + int64 secs * TimeSpan.TicksPerSecond
            let msgs, paused = defaultArg (state.TryFind p) ([], false)
            let msgs = (LoopGuard.normalise text, at) :: msgs
            let copies = msgs |> List.filter (fun (t, _) -> t = fst msgs.Head) |> List.length
            let inMinute = msgs |> List.filter (fun (_, t) -> t > at - TimeSpan.TicksPerMinute && t <= at) |> List.length
            let suppress =
                paused || over bounds.MaxRepeats copies || over bounds.MaxPerMinute inMinute || over bounds.MaxExchanges msgs.Length
            state.Add(p, (msgs, suppress)), at, out @ [ suppress ]
    let _, _, out = events |> List.fold step (Map.empty, 0L, [])
    out

let private run (bounds: LoopBounds) (events: Event list) : bool list =
    let step (s: LoopGuard.State, clock: int64, out: bool list) (e: Event) =
        match e with
        | Human -> LoopGuard.humanTurn s, clock, out
        | Resume p -> LoopGuard.resume p s, clock, out
        | Message(p, text, secs) ->
            let at = clock + int64 secs * TimeSpan.TicksPerSecond
            let verdict, s = LoopGuard.judge bounds p text (Some(DateTimeOffset(at, TimeSpan.Zero))) s
            s, at, out @ [ (match verdict with LoopGuard.Pass -> false | LoopGuard.Suppress _ -> true) ]
    let _, _, out = events |> List.fold step (LoopGuard.empty, DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero).UtcTicks, [])
    out

[<Fact>]
let ``rule: the loop guard never suppresses a message that is not a repeat or past a bound, and always suppresses one that is`` () =
    let bounds = Gen.map3 (fun e m r -> { MaxExchanges = e; MaxPerMinute = m; MaxRepeats = r }) (Gen.choose (0, 12)) (Gen.choose (0, 8)) (Gen.choose (0, 4))
    let texts = [ "result: 42 done"; "result:  7 done"; "Result: 1234 DONE"; "new idea"; "task 9eea0000-0000-4000-8000-0000000000a1 ok"; "task 07e00000-0000-4000-8000-00000000000b ok" ]
    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen (Gen.zip bounds (Gen.listOf (eventGen texts) |> Gen.resize 60))) (fun (b, events) ->
            let expected = oracle b events
            let got = run b events
            got = expected |> Prop.label $"guard {got}\noracle {expected}")
    )

let private two (g: Gen<'a>) = Gen.zip g g

let private timeGen =
    Gen.map3 (fun h m s -> $"{h:D2}:{m:D2}:{s:D2}") (Gen.choose (0, 23)) (Gen.choose (0, 59)) (Gen.choose (0, 59))

let private dateGen =
    Gen.map3 (fun y m d -> $"{y}-{m:D2}-{d:D2}") (Gen.choose (2000, 2099)) (Gen.choose (1, 12)) (Gen.choose (1, 28))

[<Fact>]
let ``rule: a re-post differing only in ids, times, dates, long numbers, whitespace and letter case is a repeat`` () =
    let ids = Gen.constant () |> Gen.map (fun () -> Guid.NewGuid().ToString("D"))
    let parts = Gen.zip (Gen.zip3 (two ids) (two timeGen) (two dateGen)) (two (Gen.choose (1000, 9_999_999)))
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen parts) (fun (((a, b), (t, u), (d, e)), (n, m)) ->
            let one = $"Delegation {a} finished at {t} on {d}:\n  {n} files"
            let other = $"delegation   {b.ToUpperInvariant()} finished at {u} on {e}: {m} FILES "
            LoopGuard.normalise one = LoopGuard.normalise other
            && LoopGuard.normalise $"posted {d}T{t}.123Z" = LoopGuard.normalise $"posted {e}T{u}.9Z")
    )

[<Fact>]
let ``rule: a counter that changes is not a repeat`` () =
    let templates: (int -> string) list =
        [ (fun i -> $"batch {i} done"); (fun i -> $"batch {i} of 12 done"); (fun i -> $"step {i}")
          (fun i -> $"#{i} processed"); (fun i -> $"part {i}/12 uploaded"); (fun i -> $"(attempt {i}) the build is green") ]
    let counters = two (Gen.choose (0, 999)) |> Gen.filter (fun (i, j) -> i <> j)
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.elements templates) counters (two timeGen))) (fun (text, (i, j), (t, u)) ->
            // a new time alone does not make it new; a new counter does
            LoopGuard.normalise $"{text i} at {t}" = LoopGuard.normalise $"{text i} at {u}"
            && LoopGuard.normalise $"{text i} at {t}" <> LoopGuard.normalise $"{text j} at {t}")
    )

[<Fact>]
let ``rule: normalising keeps every word: payloads that differ in a word differ`` () =
    Assert.NotEqual<string>(LoopGuard.normalise "deploy the staging stack", LoopGuard.normalise "deploy the prod stack")
    Assert.NotEqual<string>(LoopGuard.normalise "the build is green", LoopGuard.normalise "the build is red")

[<Fact>]
let ``example: the defaults never trip on a working pair — 60 different messages at 2 a minute, or 20 in a burst`` () =
    let steady = [ for i in 1..60 -> Message("p1", $"step {i}: {String('x', i)}", 30) ]
    Assert.DoesNotContain(true, run Config.defaultLoopBounds steady)
    let burst = [ for i in 1..20 -> Message("p1", $"part {String('y', i)}", 1) ]
    Assert.DoesNotContain(true, run Config.defaultLoopBounds burst)
    // numbered progress reports of a worker are not repeats
    let progress = [ for i in 1..60 -> Message("p1", $"batch {i} of 60 done", 30) ]
    Assert.DoesNotContain(true, run Config.defaultLoopBounds progress)

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------

/// The reference's incident of 2026-06-29: a peer re-posts the same stale delegation result over and over.
[<Fact>]
let ``example: a peer re-posting one result is paused after the bound, held in the inbox, told once, raised to the user, and resumed by an approval`` () =
    let mutable w = worldWith { config with LoopGuard = Config.defaultLoopBounds }
    for i in 1..20 do
        w <- { w with Platform = fst (appendText Peer $"Delegation result (posted 2026-06-29T10:{i:D2}:00Z): the build is green" w.Platform) }
    w <- settle (tick w) |> settle
    let bound = Config.defaultLoopBounds.MaxRepeats
    let pushed = w.Envelopes |> List.filter (fun ev -> ev.Meta |> List.contains ("kind", "peer_agent"))
    let guardLines = w.Envelopes |> List.filter (fun ev -> ev.Meta |> List.contains ("kind", "loop_guard"))
    Assert.Equal(bound, pushed.Length)
    Assert.Equal(1, guardLines.Length)
    Assert.StartsWith("[loop guard] ", guardLines.Head.Content)
    Assert.Contains("inbox_peek", guardLines.Head.Content)
    // nothing is lost: all 20 wait in the inbox
    Assert.Equal(20, (waiting w).Length)
    let raised = w.Platform.Raised |> List.filter (fun (_, body) -> Json.stringProp "source" body = Some "loop_guard")
    Assert.Equal(1, raised.Length)
    let rid, body = raised.Head
    Assert.Equal(Some "user", Json.stringProp "recipient_type" body)
    Assert.Contains(peerId, (Json.stringProp "title" body).Value)
    // the user keeps it paused: nothing changes
    w <- { w with Platform = fst (decide rid "rejected" w.Platform) }
    w <- { w with Platform = fst (appendText Peer "Delegation result (posted 2026-06-29T10:21:00Z): the build is green" w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Equal(bound, (w.Envelopes |> List.filter (fun ev -> ev.Meta |> List.contains ("kind", "peer_agent"))).Length)
    // the user resumes the pair: a new message of the peer is pushed again; the update itself is handled, never shown
    w <- { w with Platform = fst (decide rid "approved" w.Platform) }
    w <- settle (tick w) |> settle
    w <- { w with Platform = fst (appendText Peer "a new question" w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Contains(w.Envelopes, fun ev -> ev.Content.Contains "a new question")
    Assert.Contains(w.Envelopes, fun ev -> ev.Content.StartsWith "[loop guard] The user resumed")
    Assert.DoesNotContain(w.Envelopes, fun ev -> ev.Meta |> List.contains ("kind", "request_update"))
    Assert.Equal(22, (waiting w).Length)

[<Fact>]
let ``example: a human turn lets a working pair go on`` () =
    let bounds = { Config.defaultLoopBounds with MaxExchanges = 5 }
    let mutable w = worldWith { config with LoopGuard = bounds } |> settle
    for round in 1..3 do
        for i in 1..5 do
            w <- { w with Platform = fst (appendText Peer $"round {String('r', round)} part {String('p', i)}" w.Platform) }
        w <- { w with Platform = fst (append Canvas false w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Empty(w.Envelopes |> List.filter (fun ev -> ev.Meta |> List.contains ("kind", "loop_guard")))
    Assert.Equal(18, (w.Envelopes |> List.filter (fun ev -> not (ev.Meta |> List.contains ("kind", "loop_guard")))).Length)

// ---------------------------------------------------------------------------------------------
// A restart: the platform holds the pauses
// ---------------------------------------------------------------------------------------------

/// The process is killed (-9) and started again on the same ledger file and platform, with `cfg`.
let private restartWith (cfg: Config) (w: World) : World =
    { w with Model = Agent.init cfg (boot w.File); Inflight = []; Timers = []; Downloads = []; Listening = false }
    |> dispatch Agent.Start
    |> dispatch Agent.ClientInitialized

let private peerPushes (envelopes: ChannelEvent list) =
    envelopes |> List.filter (fun ev -> ev.Meta |> List.contains ("kind", "peer_agent"))

/// Envelopes pushed since there were `before` (Envelopes are newest first).
let private since (before: int) (w: World) = w.Envelopes |> List.take (w.Envelopes.Length - before)

let private repeatsOf3 = { config with LoopGuard = { Config.defaultLoopBounds with MaxRepeats = 3 } }

/// A peer re-posts one stale result six times (new timestamps): three pushed, the pair paused, three held.
let private pausedWorld () =
    let mutable w = worldWith repeatsOf3 |> settle
    for i in 1..6 do
        w <- { w with Platform = fst (appendText Peer $"Delegation result (posted 2026-06-29T10:{i:D2}:00Z): the build is green" w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Equal(3, (peerPushes w.Envelopes).Length)
    Assert.Equal(1, w.Platform.Raised.Length)
    w

[<Fact>]
let ``example: a pair paused before a kill -9 stays paused after the restart — nothing of its peer pushed, all in the inbox — until the user resumes it`` () =
    let mutable w = pausedWorld ()
    let before = w.Envelopes.Length
    w <- restartWith repeatsOf3 w |> settle
    w <- settle (tick w) |> settle
    Assert.Empty(peerPushes (since before w))
    Assert.Equal(6, (waiting w).Length)
    Assert.Contains(w.Logs, fun l -> l.Contains "stays paused")
    // a new message of the peer is held too
    w <- { w with Platform = fst (appendText Peer "a new question" w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Empty(peerPushes (since before w))
    // the user resumes the pair: the agent is told; the peer's next message is pushed
    w <- { w with Platform = fst (decide (fst w.Platform.Raised.Head) "approved" w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Contains(since before w, fun ev -> ev.Content.StartsWith "[loop guard] The user resumed")
    w <- { w with Platform = fst (appendText Peer "another question" w.Platform) }
    w <- settle (tick w) |> settle
    let pushed = peerPushes (since before w)
    Assert.Equal(1, pushed.Length)
    Assert.Contains("another question", pushed.Head.Content)
    Assert.Equal(8, (waiting w).Length)

[<Fact>]
let ``rule: after a restart a pair stays paused exactly when the platform holds its loop_guard request open; an unreadable answer changes nothing else and is not asked again`` () =
    let decisions = Gen.elements [ None; Some "approved"; Some "rejected"; Some "info_requested" ]
    let answers =
        Gen.elements
            [ None
              Some(Reply(404, "{\"error\":\"not found\"}"))
              Some(Reply(500, "{\"error\":\"boom\"}"))
              Some(Reply(503, "<html>bad gateway</html>"))
              Some(TimedOut 5.0)
              Some(TransportError "connection refused")
              Some(Reply(200, "{\"status\":\"ok\"}"))
              Some(Reply(200, "[1, \"two\", null]")) ]
    Check.One(
        quick 40,
        Prop.forAll (Arb.fromGen (Gen.zip decisions answers)) (fun (decision, answer) ->
            let mutable w = pausedWorld ()
            match decision with
            | Some status ->
                w <- { w with Platform = fst (decide (fst w.Platform.Raised.Head) status w.Platform) }
                w <- settle (tick w) |> settle
            | None -> ()
            match answer with
            | Some a -> w <- { w with Platform = { w.Platform with Always = w.Platform.Always.Add(RequestsRoute, a) } }
            | None -> ()
            let before = w.Envelopes.Length
            let asked = w.Sent |> List.filter (fun (_, r) -> r = RequestsRoute) |> List.length
            w <- restartWith repeatsOf3 w
            // nothing is pushed before the reads are answered
            let early = peerPushes (since before w)
            w <- settle w
            for _ in 1..3 do
                w <- settle (tick w) |> settle
            let pushed = peerPushes (since before w)
            let paused = answer.IsNone && (decision.IsNone || decision = Some "info_requested")
            let reads = (w.Sent |> List.filter (fun (_, r) -> r = RequestsRoute) |> List.length) - asked
            let expected = if paused then 0 else 6
            (early.IsEmpty && pushed.Length = expected && (waiting w).Length = 6 && reads = LoopGuard.openStatuses.Length)
            |> Prop.label $"decision {decision}, answer {answer}: pushed {pushed.Length} (expected {expected}) early {early.Length}, waiting {(waiting w).Length}, reads {reads}")
    )
