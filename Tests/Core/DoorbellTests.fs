module Molecule.Tests.Core.DoorbellTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

let private ring (activityType: string) =
    $"{{\"type\":\"ACTIVITY_LOGGED\",\"timestamp\":1786741873123,\"data\":{{\"activity_type\":\"{activityType}\",\"method\":\"message/send\",\"summary\":\"message/send → W (ingest)\"}}}}"

let private listens (effects: Effect list) = effects |> List.filter (function Listen _ -> true | _ -> false) |> List.length

let private stream news (m: Agent.Model) = Agent.update (Agent.Stream(selfId, news, 0.5)) m

[<Fact>]
let ``rule: the reconnect backoff doubles from 1 s to 30 s, jittered within its upper half (the one pacing policy)`` () =
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 40)) (Gen.choose (0, 1000)))) (fun (n, k) ->
            let sample = float k / 1000.0
            let b = Doorbell.backoff n sample
            let nominal = Math.Min(30.0, Math.Pow(2.0, float (n - 1)))
            b >= nominal * 0.5 && b <= nominal && b = Pacing.delay Pacing.stream n sample)
    )

[<Fact>]
let ``rule: only rings that may mean a new inbox row fetch; a connect always fetches`` () =
    let cases =
        [ ring "a2a_receive", true
          ring "chat_upload_receive", true
          ring "a2a_send", false
          "{\"type\":\"WORKSPACE_HEARTBEAT\",\"timestamp\":1,\"data\":{\"active_tasks\":0}}", false
          "not json", false ]
    for data, fetches in cases do
        let o = Doorbell.onNews config 1.0 (Doorbell.Frame data) 0.5 { Doorbell.initial with Status = Doorbell.Open }
        Assert.Equal(fetches, o.Fetch)
    let opened = Doorbell.onNews config 1.0 Doorbell.Opened 0.5 { Doorbell.initial with Status = Doorbell.Connecting }
    Assert.True(opened.Fetch)
    let removed = Doorbell.onNews config 1.0 (Doorbell.Frame "{\"type\":\"WORKSPACE_REMOVED\",\"timestamp\":1,\"data\":{}}") 0.5 opened.Doorbell
    Assert.True(removed.Probe)

[<Fact>]
let ``rule: degrading to poll-only is said at once and then at most every five minutes with since when; recovering once`` () =
    let mutable s = Doorbell.initial
    let mutable warnings = []
    let mutable infos = 0
    let step (uptime: float) news =
        let o = Doorbell.onNews config uptime news 0.5 s
        for e in o.Effects do
            match e with
            | Log(Warning, t) when t.Contains "unavailable" -> warnings <- warnings @ [ t ]
            | Log(Info, t) when t.Contains "is back" -> infos <- infos + 1
            | _ -> ()
        s <- o.Doorbell
    for i in 1..25 do
        step (float i * 10.0) (Doorbell.Refused(Reply(503, "")))
    Assert.Equal(1, warnings.Length) // 240 s of failures: the first only
    step 320.0 (Doorbell.Refused(Reply(503, "")))
    Assert.Equal(2, warnings.Length)
    Assert.Contains("unavailable for 5 min (26 attempts", warnings[1])
    // an open that ends before any frame is no recovery: still failing, still quiet
    step 330.0 Doorbell.Opened
    step 331.0 (Doorbell.Ended "reset")
    Assert.Equal(2, warnings.Length)
    Assert.Equal(27, s.Pace.Failures)
    step 340.0 Doorbell.Opened
    step 341.0 (Doorbell.Frame(ring "a2a_receive"))
    Assert.Equal(1, infos)
    Assert.Equal(0, s.Pace.Failures)
    step 400.0 (Doorbell.Ended "reset")
    Assert.Equal(3, warnings.Length)
    Assert.Equal(Doorbell.Waiting, s.Status)

[<Fact>]
let ``a platform without the event stream (404) is said once at info and asked again only rarely`` () =
    let mutable s = Doorbell.initial
    let mutable logs = []
    let mutable waits = []
    for _ in 1..3 do
        let o = Doorbell.onNews config 1.0 (Doorbell.Refused(Reply(404, "{\"error\":\"not found\"}"))) 0.5 s
        s <- o.Doorbell
        logs <- logs @ (o.Effects |> List.choose (function Log(level, t) -> Some(level, t) | _ -> None))
        waits <- waits @ (o.Effects |> List.choose (function After(secs, StreamTimer _) -> Some secs | _ -> None))
    match logs with
    | [ Info, text ] -> Assert.Contains("has no event stream", text)
    | other -> failwith $"expected one info line, got {other}"
    Assert.Equal<float list>(List.replicate 3 Pacing.streamMissingSecs, waits)

[<Fact>]
let ``the agent listens at start, fetches on a ring, and opens the stream again after a drop`` () =
    let m, started = Agent.update Agent.Start (Agent.init config (boot []))
    Assert.Equal(1, listens started)
    let noStream, offEffects = Agent.update Agent.Start (Agent.init { config with StreamEnabled = false } (boot []))
    Assert.Equal(0, listens offEffects)
    ignore noStream
    // The first fetch (the floor) is in flight; the connect and a ring coalesce into one more.
    let m, _ = stream Doorbell.Opened m
    let m, ringed = stream (Doorbell.Frame(ring "a2a_receive")) m
    Assert.Empty(ringed |> List.filter (function Send _ -> true | _ -> false))
    let m, dropped = stream (Doorbell.Ended "connection reset") m
    let waits = dropped |> List.choose (function After(s, StreamTimer _) -> Some s | _ -> None)
    Assert.Equal<float list>([ Doorbell.backoff 1 0.5 ], waits)
    let _, reopened = Agent.update (Agent.TimerFired(StreamTimer selfId, 2.0)) m
    Assert.Equal(1, listens reopened)

[<Fact>]
let ``rule: the stream's refusals of the token have their own count and words, and never strike or block the tools`` () =
    let m, _ = Agent.update Agent.Start (Agent.init config (boot []))
    let mutable m = m
    let mutable logs = []
    for i in 1..6 do
        let m', effects = stream (Doorbell.Refused(Reply(401, "{\"error\":\"invalid workspace auth token\"}"))) m
        m <- fst (Agent.update (Agent.TimerFired(StreamTimer selfId, float i * 100.0)) m')
        logs <- logs @ (effects |> List.choose (function Log(_, t) -> Some t | _ -> None))
    let ws = Agent.primary m
    Assert.Equal(0, ws.Life.AuthFailures)
    Assert.Equal(6, ws.Doorbell.Refusals)
    Assert.Equal(None, (Agent.context m "n").Degraded)
    Assert.DoesNotContain(logs, fun t -> t.Contains "consecutive heartbeat auth failures")
    Assert.Contains(logs, fun t -> t.Contains "refuses the token for the stream")
    // one heartbeat refusal more is the heartbeat's first strike, not the third
    let m, effects = Agent.update (Agent.Responded(Background(selfId, Heartbeat), Reply(401, ""), 0.5)) m
    Assert.Contains(effects, fun e -> match e with Log(Warning, t) -> t.Contains "auth failure 1/3" | _ -> false)
    Assert.Equal(None, (Agent.context m "n").Degraded)

[<Fact>]
let ``a deleted workspace's stream is closed for good`` () =
    let m, _ = Agent.update Agent.Start (Agent.init config (boot []))
    let m, _ = stream Doorbell.Opened m
    let m, effects = stream (Doorbell.Refused(Reply(410, $"{{\"id\":\"{selfId.Value}\"}}"))) m
    Assert.Contains(Unlisten selfId, effects)
    let _, later = Agent.update (Agent.TimerFired(StreamTimer selfId, 30.0)) m
    Assert.Equal(0, listens later)

[<Fact>]
let ``a quiet stream (no frame for three heartbeat intervals) is opened again`` () =
    let m, _ = Agent.update Agent.Start (Agent.init config (boot []))
    let m, _ = stream Doorbell.Opened m
    let m, early = Agent.update (Agent.TimerFired(HeartbeatTimer selfId, 40.0)) m
    Assert.Equal(0, listens early)
    let _, late = Agent.update (Agent.TimerFired(HeartbeatTimer selfId, 90.0)) m
    Assert.Equal(1, listens late)
