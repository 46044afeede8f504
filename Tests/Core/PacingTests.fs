/// The one pacing policy (Pacing.fs) and its bound over the whole agent: against a platform that answers nonsense on
/// any route — 5xx, 429, a catch-all 200 `{"ok":true}`, `{}`, HTML, a negative or absurd floor, a string, a dropped
/// connection — no route is asked again sooner than the policy allows, and no answer makes a request loop run without
/// time passing.
module Molecule.Tests.Core.PacingTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

[<Fact>]
let ``rule: the delay after the n-th failure in a row lies between half its ceiling and the ceiling, which doubles up to the cap`` () =
    let policies = [ Pacing.fetch; Pacing.ack; Pacing.stream; Pacing.upload; Pacing.heartbeat 20.0; Pacing.heartbeat 0.3 ]
    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.elements policies) (Gen.choose (1, 60)) (Gen.choose (0, 1000)))) (fun (policy, n, k) ->
            let d = Pacing.delay policy n (float k / 1000.0)
            let ceiling = Math.Min(policy.CapSecs, policy.BaseSecs * Math.Pow(2.0, float (n - 1)))
            d >= ceiling / 2.0 && d <= ceiling && d <= policy.CapSecs && d >= Pacing.least policy n
            && Pacing.delay policy n Double.NaN = ceiling * 0.75)
    )

[<Fact>]
let ``rule: a failing route logs its first failure, then at most once per five minutes saying since when; a success says it works again`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose (0, 400)))) (fun gaps ->
            let mutable s = Pacing.ready
            let mutable now = 0.0
            let mutable lines = []
            for gap in gaps do
                now <- now + float gap
                let s', _, logs = Pacing.failed Pacing.ack Warning "acks" "HTTP 500" now 0.5 s
                s <- s'
                lines <- lines @ (logs |> List.map (fun e -> now, e))
            let times = lines |> List.map fst
            let spaced = List.pairwise times |> List.forall (fun (a, b) -> b - a >= Pacing.logEverySecs)
            let first = match gaps, lines with [], [] -> true | _ :: _, (t, _) :: _ -> t = float gaps.Head | _ -> false
            let since = lines |> List.skip (min 1 lines.Length) |> List.forall (fun (_, e) -> match e with Log(Warning, t) -> t.Contains "has been failing for" | _ -> false)
            let _, back = Pacing.succeeded "acks" now s
            let recovered = if gaps.IsEmpty then back.IsEmpty else (match back with [ Log(Info, t) ] -> t.Contains "works again" | _ -> false)
            spaced && first && since && recovered)
    )

// ---------------------------------------------------------------------------------------------
// The bound over the whole agent, against a lying platform
// ---------------------------------------------------------------------------------------------

/// What a route may answer that no client can use (each one a failure for that route, whatever was asked).
let nonsenseAck =
    [ Reply(500, "{\"error\":\"failed to record ack\"}")
      Reply(503, "{\"code\":\"platform_unavailable\"}")
      Reply(429, "")
      Reply(200, "{\"ok\":true}")
      Reply(200, "{}")
      Reply(200, "<html><body>Welcome to nginx!</body></html>")
      Reply(200, "{\"last_acked_seq\":-5}")
      Reply(200, "{\"last_acked_seq\":1e300}")
      Reply(200, "{\"last_acked_seq\":\"12\"}")
      Reply(200, "\"ok\"")
      TransportError "connection reset"
      TimedOut 10.0 ]

let nonsenseActivity =
    [ Reply(500, "{\"error\":\"query failed\"}")
      Reply(503, "")
      Reply(429, "")
      Reply(404, "{\"error\":\"not found\"}")
      Reply(200, "{\"ok\":true}")
      Reply(200, "{}")
      Reply(200, "<html><body>Welcome to nginx!</body></html>")
      TransportError "connection refused"
      TimedOut 10.0 ]

let nonsenseStream =
    [ Reply(500, ""); Reply(503, ""); Reply(401, "{\"error\":\"invalid workspace auth token\"}"); Reply(403, ""); Reply(502, "") ]

type Step =
    | Arrive of int
    | Tick
    | Later of secs: float
    | Ring
    | AnswerNext
    | AnswerStream
    | Handle of int

let private stepGen =
    Gen.frequency
        [ 2, Gen.choose (1, 3) |> Gen.map Arrive
          3, Gen.constant Tick
          2, Gen.choose (1, 120) |> Gen.map (float >> (fun ms -> ms / 10.0) >> Later)
          3, Gen.constant Ring
          6, Gen.constant AnswerNext
          2, Gen.constant AnswerStream
          2, Gen.choose (1, 3) |> Gen.map Handle ]

/// Which routes lie (at least one), and how: a list of nonsense answers each, then one of them for ever.
let private liesGen =
    let one (pool: Response list) = Gen.zip (Gen.listOf (Gen.elements pool) |> Gen.resize 6) (Gen.elements pool)
    gen {
        let! which = Gen.elements [ [ AckRoute ]; [ ActivityRoute ]; [ StreamRoute ]; [ AckRoute; StreamRoute ]; [ AckRoute; ActivityRoute; StreamRoute ] ]
        let! ack = one nonsenseAck
        let! activity = one nonsenseActivity
        let! stream = one nonsenseStream
        let pick route = match route with AckRoute -> ack | ActivityRoute -> activity | _ -> stream
        return which |> List.map (fun r -> r, pick r)
    }

let private policyOf (route: Route) =
    match route with
    | AckRoute -> Pacing.ack
    | ActivityRoute -> Pacing.fetch
    | _ -> Pacing.stream

/// The requests of a route, oldest first, and the gaps the policy demands: after the i-th request (all answered with
/// failures) the next one comes no sooner than the least delay after i failures.
let private violations (w: World) (route: Route) : string list =
    let times = w.Sent |> List.rev |> List.filter (fun (_, r) -> r = route) |> List.map fst
    times
    |> List.pairwise
    |> List.indexed
    |> List.choose (fun (i, (a, b)) ->
        let least = Pacing.least (policyOf route) (i + 1)
        if b - a < least - 1e-9 then Some $"{route}: request {i + 2} came {b - a:F3} s after the one before, under the least delay {least:F3} s after {i + 1} failures" else None)

[<Fact>]
let ``rule: whatever a lying platform answers, no route is asked again sooner than the pacing policy allows`` () =
    Check.One(
        quick 150,
        Prop.forAll (Arb.fromGen (Gen.zip liesGen (Gen.listOf stepGen |> Gen.resize 60))) (fun (lies, steps) ->
            let p = platform true
            let p =
                { p with
                    Lies = lies |> List.map (fun (r, (xs, _)) -> r, xs) |> Map.ofList
                    Always = lies |> List.map (fun (r, (_, x)) -> r, x) |> Map.ofList }
            let mutable w = start { world true with Platform = p; File = []; Sent = [] }
            for step in steps do
                w <-
                    match step with
                    | Arrive n -> { w with Platform = (w.Platform, [ 1..n ]) ||> List.fold (fun p _ -> fst (append Peer false p)) }
                    | Tick -> tick w
                    | Later secs -> advance secs w
                    | Ring -> ring w
                    | AnswerNext -> answerOne false w
                    | AnswerStream -> streamAnswer w
                    | Handle n -> (w, [ 1..n ]) ||> List.fold (fun w _ -> fst (handleOne w))
            // and then a long while with every answer given
            for _ in 1..40 do
                w <- settle (streamAnswer (advance 7.0 w))
            let bad = lies |> List.collect (fun (r, _) -> violations w r)
            bad.IsEmpty |> Prop.label (String.Join("\n", bad |> List.truncate 5)))
    )

/// Requests sent without any time passing, per route.
let private burst (w: World) (route: Route) =
    w.Sent |> List.filter (fun (_, r) -> r = route) |> List.countBy fst |> List.map snd |> List.fold max 0

[<Fact>]
let ``example: a platform that answers the same full page again (it ignores since_id) is not asked again at once`` () =
    // 500 rows: one full page, answered for every fetch
    let p = (platform true, [ 1..500 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let page = Reply(200, "[" + String.Join(",", p.Rows |> List.map rowJson) + "]")
    let w = settle (start { world true with Platform = p; File = [] })
    let w = { w with Platform = { w.Platform with Always = Map.ofList [ ActivityRoute, page ] } }
    let mutable w = w
    for _ in 1..20 do
        w <- settle (ring (tick w))
    Assert.InRange(burst w ActivityRoute, 1, 3)
    Assert.Equal(500, Agent.unread w.Model)

[<Fact>]
let ``example: a platform that loses every cursor (410 for every since_id) is asked at a paced rate, and still delivers`` () =
    let p = (platform true, [ 1..3 ]) ||> List.fold (fun p _ -> fst (append Peer false (wait 3000L p)))
    let w = settle (start { world true with Platform = p; File = [] })
    Assert.Equal(3, Agent.unread w.Model)
    // from now on every since_id answers 410 (the window still answers)
    let gone = Reply(410, "{\"error\":\"since_id cursor not found\"}")
    let mutable w = { w with Sent = [] }
    let lie (w: World) =
        match w.Inflight with
        | (purpose, r) :: rest when r.Url.Contains "since_id=" ->
            let w, jitter = sample { w with Inflight = rest }
            dispatch (Agent.Responded(purpose, gone, jitter)) w
        | _ -> answerOne false w
    for _ in 1..300 do
        w <- lie w
        if w.Inflight.IsEmpty then w <- advance 1.0 w
    let fetches = w.Sent |> List.filter (fun (_, r) -> r = ActivityRoute) |> List.length
    // 300 s: backing off to one try every 15–30 s, a few dozen fetches at most (unpaced: thousands)
    Assert.InRange(fetches, 4, 60)
    Assert.Equal(3, Agent.unread w.Model)

[<Fact>]
let ``example: a platform that ignores before_ts (the same full page for every replay page) ends the replay instead of looping`` () =
    let p = (platform false, [ 1..500 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let page = Reply(200, "[" + String.Join(",", p.Rows |> List.rev |> List.map rowJson) + "]")
    let w = start { world false with Platform = { p with Always = Map.ofList [ ActivityRoute, page ] }; File = [] }
    let w = settle w
    // the first page, the same again (its oldest instant), the end; then one `since_id` read that gets nowhere
    Assert.InRange(burst w ActivityRoute, 1, 4)
    Assert.Equal(500, Agent.unread w.Model)

[<Fact>]
let ``example: replay pages of rows one microsecond apart page back through all of them`` () =
    // 1,200 rows 1 µs apart (the simulated platform keeps milliseconds: seen through the activity route's page
    // answers, built here with microsecond timestamps)
    let stampUs (us: int64) = Activity.formatTime (epoch.AddTicks(us * 10L))
    let rowAt (i: int) =
        let id = Guid(i, 0s, 0s, [| 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 3uy |]).ToString("D")
        $"{{\"id\":\"{id}\",\"seq\":{i},\"workspace_id\":\"{selfId}\",\"activity_type\":\"a2a_receive\",\"source_id\":null,\"method\":\"message/send\",\"summary\":null,\"created_at\":\"{stampUs (int64 i)}\",\"request_body\":{{\"params\":{{\"message\":{{\"parts\":[{{\"kind\":\"text\",\"text\":\"m{i}\"}}]}}}}}}}}"
    let all = [ 1..1200 ]
    let answerReplay (before: DateTimeOffset option) =
        let rows = all |> List.rev |> List.filter (fun i -> match before with Some b -> epoch.AddTicks(int64 i * 10L) < b | None -> true) |> List.truncate 500
        Reply(200, "[" + String.Join(",", rows |> List.map rowAt) + "]")
    let ledger = Ledger.empty selfId
    let mutable s = { Intake.start 600 ledger with Ack = Intake.Unsupported; Phase = Intake.Replaying { Window = 600; Before = None; Items = []; Ids = Set.empty; Truncated = false } }
    let mutable events = []
    let mutable pages = 0
    let mutable go = true
    while go && pages < 20 do
        let s', request = Intake.next config ledger s
        match request with
        | None -> go <- false
        | Some r ->
            pages <- pages + 1
            let before = (Uri r.Url).Query.Split('&') |> Array.tryPick (fun kv -> if kv.StartsWith "before_ts=" then Activity.parseTime (Uri.UnescapeDataString(kv.Substring 10)) else None)
            let o = Intake.onResponse config 0.0 0.5 (answerReplay before) ledger s'
            s <- o.Intake
            events <- events @ o.Events
            go <- o.FetchNow && (match s.Phase with Intake.Replaying _ -> true | _ -> false)
    // the ledger holds 1,000: the replay read back beyond two pages and kept the oldest 1,000 (the rest wait)
    let taken = events |> List.collect (function Ledger.Took t -> t.Messages | _ -> [])
    Assert.Equal(Ledger.capacity, taken.Length)
    Assert.Equal("m1", (List.head taken).Text)
    Assert.InRange(pages, 3, 6)
