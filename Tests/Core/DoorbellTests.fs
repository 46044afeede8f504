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
let ``rule: the reconnect backoff doubles from 1 s to 30 s with ±25 % jitter`` () =
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 40)) (Gen.choose (0, 1000)))) (fun (n, k) ->
            let sample = float k / 1000.0
            let b = Doorbell.backoff n sample
            let nominal = Math.Min(30.0, Math.Pow(2.0, float (n - 1)))
            b >= nominal * 0.75 && b <= nominal * 1.25)
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
let ``rule: degrading to poll-only and recovering are each said once (repeated every 20th failure)`` () =
    let step (s: Doorbell.State) news = Doorbell.onNews config 1.0 news 0.5 s
    let mutable s = Doorbell.initial
    let mutable warnings = 0
    let mutable infos = 0
    let count (o: Doorbell.Outcome) =
        for e in o.Effects do
            match e with
            | Log(Warning, t) when t.Contains "unavailable" -> warnings <- warnings + 1
            | Log(Info, t) when t.Contains "is back" -> infos <- infos + 1
            | _ -> ()
        s <- o.Doorbell
    for _ in 1..25 do
        count (step s (Doorbell.Refused(Reply(503, ""))))
    Assert.Equal(2, warnings) // the 1st and the 20th
    count (step s Doorbell.Opened)
    count (step s (Doorbell.Frame(ring "a2a_receive")))
    Assert.Equal(1, infos)
    count (step s (Doorbell.Ended "reset"))
    Assert.Equal(3, warnings)
    Assert.Equal(Doorbell.Waiting, s.Status)

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
    Assert.Equal<float list>([ 1.0 ], waits)
    let _, reopened = Agent.update (Agent.TimerFired(StreamTimer selfId, 2.0)) m
    Assert.Equal(1, listens reopened)

[<Fact>]
let ``rule: auth refusals of the stream count towards the same 3 strikes as heartbeats`` () =
    let m, _ = Agent.update Agent.Start (Agent.init config (boot []))
    let m, _ = stream (Doorbell.Refused(Reply(401, "{\"error\":\"invalid workspace auth token\"}"))) m
    let m, _ = Agent.update (Agent.Responded(Background(selfId, Heartbeat), Reply(401, ""))) m
    let _, third = stream (Doorbell.Refused(Reply(401, ""))) m
    Assert.Contains(third, fun e -> match e with Log(Error, t) -> t.Contains "3 consecutive heartbeat auth failures" | _ -> false)

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
