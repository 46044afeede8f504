/// The delivery rules of issue 6 as properties over the simulated world (Sim.fs): whatever the interleaving of
/// arrivals (backlogs far beyond one page, equal timestamps, unreadable rows, echoes, rows committed late), polls,
/// doorbell rings, lost answers, pops, crashes between any two steps, restarts, pruning and 410s — every message is
/// handled exactly once, nothing handled is shown again, nothing unreadable stalls intake.
module Molecule.Tests.Core.DeliveryTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

type Op =
    | Arrive of kind: RowKind * sameMs: bool * count: int
    /// A message committed late (created up to 1.9 s before the newest row), after newer ones may have been read.
    | ArriveLate of kind: RowKind * lateMs: int64
    | Tick
    /// The event stream rings (a fetch from where this process has read to).
    | Ring
    /// 1.5 s pass without a message (rows after it are far apart: the cursor's lag spans few of them).
    | Wait
    | AnswerNext
    | LoseNext
    | Handle of count: int
    | Crash
    /// The platform prunes rows the agent has handled (what retention does to acknowledged rows): a cursor on one
    /// of them gets 410.
    | PruneHandled
    /// The acknowledgement route lies for the next answers (nonsense, absurd floors, floors below what was sent).
    | LieAck of Response list
    /// … or from now on, for good (None: it tells the truth again).
    | AlwaysAck of Response option
    /// The activity route lies for the next answers (then tells the truth again).
    | LieFetch of Response list
    /// The platform is restored from a backup holding the first `percent` % of its rows: its numbering goes back,
    /// the rows after it are gone (those the agent never took cannot be delivered any more).
    | Restore of percent: int

/// Answers of the acknowledgement route a client must not believe (or cannot use). (A plausible floor below the truth
/// is not among them: to a start without local state it is indistinguishable from the truth; to an acknowledgement
/// it is below what was sent — `0` stands for those.)
let private ackLies =
    [ Reply(500, "{\"error\":\"failed to record ack\"}")
      Reply(503, "")
      Reply(200, "{\"ok\":true}")
      Reply(200, "{}")
      Reply(200, "<html>proxy</html>")
      Reply(200, "{\"last_acked_seq\":-5}")
      Reply(200, "{\"last_acked_seq\":1e300}")
      Reply(200, "{\"last_acked_seq\":99999999999}")
      Reply(200, "{\"last_acked_seq\":0}")
      TransportError "connection reset" ]

let private fetchLies =
    [ Reply(500, "{\"error\":\"query failed\"}"); Reply(503, ""); Reply(200, "<html>proxy</html>"); Reply(200, "{}"); Reply(410, "{}"); TransportError "reset" ]

let private lieGen =
    Gen.frequency
        [ 2, Gen.nonEmptyListOf (Gen.elements ackLies) |> Gen.resize 5 |> Gen.map LieAck
          1, Gen.elements ackLies |> Gen.map (Some >> AlwaysAck)
          1, Gen.constant (AlwaysAck None)
          2, Gen.nonEmptyListOf (Gen.elements fetchLies) |> Gen.resize 4 |> Gen.map LieFetch
          1, Gen.choose (0, 100) |> Gen.map Restore ]

let private opGen (backlog: bool) : Gen<Op> =
    let count =
        if backlog then Gen.frequency [ 6, Gen.choose (1, 5); 1, Gen.choose (520, 1300) ]
        else Gen.choose (1, 5)
    let arrive =
        gen {
            let! kind = Gen.frequency [ 5, Gen.constant Peer; 3, Gen.constant Canvas; 1, Gen.constant Update; 1, Gen.constant NotifyEcho; 1, Gen.constant Garbled ]
            let! n = count
            // Rows sharing one timestamp come in small groups (a transaction's rows); a page-sized group is not real.
            let! same = if n > 5 then Gen.constant false else Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
            return Arrive(kind, same, n)
        }
    let late =
        Gen.zip (Gen.elements [ Peer; Canvas; Update ]) (Gen.choose (1, 1900)) |> Gen.map (fun (k, ms) -> ArriveLate(k, int64 ms))
    Gen.frequency
        [ 4, arrive
          1, late
          3, Gen.constant Ring
          1, Gen.constant Wait
          3, Gen.constant Tick
          4, Gen.constant AnswerNext
          1, Gen.constant LoseNext
          3, Gen.choose (1, 4) |> Gen.map Handle
          1, Gen.constant Crash
          1, Gen.constant PruneHandled ]

type Outcome =
    { /// Every row the platform ever held that the agent could still get (rows a restore took away before the agent
      /// took them are not among them).
      Rows: Row list
      Popped: string list
      /// Ids pushed after they were popped.
      PushedAfterPop: string list
      Left: string list
      /// Pushed request updates whose header or meta does not name their request.
      Unnamed: ChannelEvent list }

/// Runs a schedule, then lets the agent work until everything is handled.
let run (ackSupported: bool) (ops: Op list) : Outcome =
    let mutable w = world ackSupported
    // rows a restore took away: kept as expected when the agent had taken them, else forgotten
    let kept = Collections.Generic.List<Row>()
    let popped = Collections.Generic.List<string>()
    let poppedSet = Collections.Generic.HashSet<string>()
    let pushedAfterPop = Collections.Generic.List<string>()
    let watch (before: World) (after: World) =
        for id in after.Notified |> List.skip before.Notified.Length do
            if poppedSet.Contains id then pushedAfterPop.Add id
    let act (f: World -> World) =
        let before = w
        w <- f w
        watch before w
    let handle () =
        let before = w
        let w', id = handleOne w
        w <- w'
        watch before w
        match id with
        | Some id ->
            popped.Add id
            poppedSet.Add id |> ignore
            true
        | None -> false
    for op in ops do
        match op with
        | Arrive(kind, same, n) ->
            for _ in 1..n do
                w <- { w with Platform = fst (append kind same w.Platform) }
        | ArriveLate(kind, ms) ->
            let cursor = (Agent.primary w.Model).Ledger.Cursor
            let cursorAt = cursor |> Option.bind (fun c -> w.Platform.Rows |> List.tryFind (fun r -> r.Id = c)) |> Option.map (fun r -> r.At)
            w <- { w with Platform = fst (appendLate kind ms cursorAt w.Platform) }
        | Wait -> w <- { w with Platform = wait 1500L w.Platform }
        | Tick -> act tick
        | Ring -> act ring
        | AnswerNext -> act (answerOne false)
        | LoseNext -> act (answerOne true)
        | Handle n ->
            for _ in 1..n do
                handle () |> ignore
        | Crash -> act start
        | PruneHandled ->
            let p = w.Platform
            w <- { w with Platform = { p with Pruned = Set.union p.Pruned (Set.ofSeq poppedSet) } }
        | LieAck lies -> w <- { w with Platform = { w.Platform with Lies = w.Platform.Lies.Add(AckRoute, lies) } }
        | AlwaysAck(Some lie) -> w <- { w with Platform = { w.Platform with Always = w.Platform.Always.Add(AckRoute, lie) } }
        | AlwaysAck None -> w <- { w with Platform = { w.Platform with Always = w.Platform.Always.Remove AckRoute } }
        | LieFetch lies -> w <- { w with Platform = { w.Platform with Lies = w.Platform.Lies.Add(ActivityRoute, lies) } }
        | Restore percent ->
            let rows = w.Platform.Rows
            let keep = rows.Length * percent / 100
            let ledger = (Agent.primary w.Model).Ledger
            for r in rows |> List.skip keep do
                if Ledger.knows ledger r.Id || poppedSet.Contains r.Id then kept.Add r
            w <- { w with Platform = restore keep w.Platform }
    // Drain: answer, handle everything waiting, let time pass (long enough for any paced retry of the inbox fetch)
    // — until quiet. Lies of the activity route run out; the acknowledgement route may lie for good.
    let total = w.Platform.Rows.Length
    let mutable quiet = 0
    let mutable rounds = 0
    let busy () =
        (Agent.primary w.Model).Intake.Fetch.Failures > 0
        || w.Platform.Lies.TryFind ActivityRoute |> Option.exists (List.isEmpty >> not)
    while (quiet < 3 || busy ()) && rounds < total * 3 + 100 do
        rounds <- rounds + 1
        act settle
        let mutable any = false
        while handle () do
            any <- true
        if any then quiet <- 0 else quiet <- quiet + 1
        act (advance (Pacing.fetch.CapSecs + 1.0))
    { Rows = (List.ofSeq kept) @ w.Platform.Rows |> List.distinctBy (fun r -> r.Id)
      Popped = List.ofSeq popped
      PushedAfterPop = List.ofSeq pushedAfterPop
      Left = waiting w
      Unnamed =
        w.Envelopes
        |> List.filter (fun ev -> ev.Meta |> List.contains ("kind", "request_update"))
        |> List.filter (fun ev ->
            match ev.Meta |> List.tryFind (fun (k, _) -> k = "request_id") with
            | Some(_, rid) -> not ((ev.Content.Split('\n')).[0].Contains $"request_id={rid}") || not (ev.Content.Contains "inbox_pop")
            | None -> true) }

let private checkWith (ackSupported: bool) (backlog: bool) (lying: bool) (maxTest: int) =
    let op = if lying then Gen.frequency [ 4, opGen backlog; 1, lieGen ] else opGen backlog
    let schedule = Gen.listOf op |> Gen.resize 30
    Check.One(
        Config.QuickThrowOnFailure.WithMaxTest maxTest,
        Prop.forAll (Arb.fromGen schedule) (fun ops ->
            let o = run ackSupported ops
            let expected = o.Rows |> List.filter delivers |> List.map (fun r -> r.Id)
            let dupes = o.Popped |> List.countBy id |> List.filter (fun (_, n) -> n > 1)
            let missing = Set.difference (Set.ofList expected) (Set.ofList o.Popped)
            let foreign = Set.difference (Set.ofList o.Popped) (Set.ofList expected)
            (dupes.IsEmpty |> Prop.label $"handled twice: {dupes}")
            .&. (missing.IsEmpty |> Prop.label $"never handled ({missing.Count}): {Seq.truncate 5 missing |> List.ofSeq}")
            .&. (foreign.IsEmpty |> Prop.label $"delivered but not a message: {foreign}")
            .&. (o.PushedAfterPop.IsEmpty |> Prop.label $"pushed again after pop: {o.PushedAfterPop}")
            .&. (o.Left.IsEmpty |> Prop.label $"left waiting: {o.Left.Length}")
            .&. (o.Unnamed.IsEmpty |> Prop.label $"request updates pushed without naming their request: {o.Unnamed}"))
    )

let private check (ackSupported: bool) (backlog: bool) (maxTest: int) = checkWith ackSupported backlog false maxTest

[<Fact>]
let ``rule: every accepted message — request updates too — is handled exactly once, whatever the interleaving (platform with acknowledgements)`` () =
    check true false 150

[<Fact>]
let ``rule: every accepted message is handled exactly once, whatever the interleaving (platform without acknowledgements)`` () =
    check false false 150

[<Fact>]
let ``rule: every accepted message whose id was never handled is delivered exactly once, whatever the platform's numbers and answers say (lying and restored platforms)`` () =
    checkWith true false true 200

[<Fact>]
let ``rule: backlogs far beyond one page are delivered exactly once across crashes and 410s`` () =
    check true true 25
    check false true 25

// ---------------------------------------------------------------------------------------------
// The four reported failures, as examples
// ---------------------------------------------------------------------------------------------

let private queued (n: int) (ack: bool) =
    let mutable p = platform ack
    for _ in 1..n do
        p <- fst (append Peer false p)
    p

/// Handles messages until none is left; `watch` sees the world before each one (e.g. to measure the ledger).
let private drainWatching (watch: World -> unit) (w: World) =
    let mutable w = settle w
    let handled = Collections.Generic.List<string>()
    let mutable go = true
    while go do
        watch w
        match handleOne w with
        | w', Some id ->
            w <- settle w'
            handled.Add id
        | w', None ->
            w <- w'
            go <- false
    w, List.ofSeq handled

let private drain (w: World) = drainWatching ignore w

[<Fact>]
let ``example: 150 and 1,000 messages queued before the first start are all delivered, in order`` () =
    for n in [ 150; 1000 ] do
        for ack in [ true; false ] do
            let w0 = world ack
            let w = start { w0 with Platform = queued n ack; File = [] }
            let _, handled = drain w
            let expected = (queued n ack).Rows |> List.map (fun r -> r.Id)
            Assert.Equal<string list>(expected, handled)

[<Fact>]
let ``example: a 410 with 150 unread messages loses none`` () =
    for ack in [ true; false ] do
        let w, _ = drain (start { world ack with Platform = queued 1 ack })
        // The cursor row is pruned, then 150 messages arrive: the next poll gets 410 and replays.
        let p = { w.Platform with Pruned = w.Platform.Rows |> List.map (fun r -> r.Id) |> Set.ofList }
        let p = (p, [ 1..150 ]) ||> List.fold (fun p _ -> fst (append Canvas false p))
        let w, handled = drain (tick { w with Platform = p })
        Assert.Equal(150, handled.Length)
        Assert.Empty(waiting w)

[<Fact>]
let ``example: a popped message never comes back after a crash right after the pop answer`` () =
    for ack in [ true; false ] do
        let w = start { world ack with Platform = queued 3 ack }
        let w = settle w
        let first = (waiting w).Head
        let w, out = call "inbox_pop" [ "activity_id", Json.str first ] w
        Assert.Equal(Some("{\"removed\":true,\"activity_id\":\"" + first + "\"}"), out |> Option.map (fun o -> o.Text))
        // kill -9 right after the answer: only the file survives.
        let w = settle (start w)
        Assert.DoesNotContain(first, waiting w)
        let w = settle (tick (tick w))
        Assert.DoesNotContain(first, waiting w)

[<Fact>]
let ``example: a ledger file of another workspace is never loaded`` () =
    let w = settle (start { world true with Platform = queued 2 true })
    let text = String.Join("\n", w.File)
    match Journal.restore otherId text with
    | Ok _ -> failwith "another workspace's ledger was loaded"
    | Result.Error(Journal.OtherWorkspace owner) -> Assert.Equal(selfId.Value, owner)
    | Result.Error other -> failwith $"unexpected refusal {Journal.describeRefusal other}"

[<Fact>]
let ``example: a restart without local state takes every retained unacknowledged row, however old`` () =
    // Two messages handled and acknowledged, then the state directory is lost; three more arrived meanwhile, the
    // oldest of them long before the 600 s replay window.
    let w, handled = drain (start { world true with Platform = queued 2 true })
    Assert.Equal(2, handled.Length)
    Assert.Equal(2L, w.Platform.Floor)
    let p = (w.Platform, [ 1..3 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let p = { p with Now = p.Now + 5L * 86_400_000L }
    let w, again = drain (start { w with Platform = p; File = [] })
    Assert.Equal<string list>(p.Rows |> List.skip 2 |> List.map (fun r -> r.Id), again)
    Assert.Empty(waiting w)

[<Fact>]
let ``example: 2,500 messages at once (five pages, 2.5 times what the ledger holds) are delivered in order, exactly once, with at most 1,000 held at a time`` () =
    let most = ref 0
    let _, handled =
        drainWatching (fun w -> most.Value <- max most.Value (Ledger.count (Agent.primary w.Model).Ledger)) (start { world true with Platform = queued 2_500 true })
    Assert.Equal(2_500, handled.Length)
    Assert.Equal<string list>((queued 2_500 true).Rows |> List.map (fun r -> r.Id), handled)
    Assert.InRange(most.Value, 1, Ledger.capacity)

// ---------------------------------------------------------------------------------------------
// The reproductions of issue 14, as examples
// ---------------------------------------------------------------------------------------------

let private acksOf (w: World) = w.Sent |> List.filter (fun (_, r) -> r = AckRoute) |> List.length


[<Fact>]
let ``example: after pops, an acknowledgement route answering 500 is asked at a paced rate (it was thousands a second)`` () =
    let w, handled = drain (start { world true with Platform = queued 3 true })
    Assert.Equal(3, handled.Length)
    let p = { w.Platform with Always = Map.ofList [ AckRoute, Reply(500, "{\"error\":\"failed to record ack\"}") ] }
    let p = (p, [ 1..5 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let w = { w with Platform = p; Sent = [] }
    let w, later = drain (tick w)
    Assert.Equal(5, later.Length)
    // a minute of answers, every one of them 500
    let mutable w = w
    for _ in 1..60 do
        w <- settle (advance 1.0 w)
    Assert.InRange(acksOf w, 2, Pacing.most Pacing.ack 65.0 + 1)

[<Fact>]
let ``example: a fresh start delivers all 10 messages whatever the acknowledgement route answers (it delivered none)`` () =
    let answers =
        [ Reply(500, ""); Reply(503, ""); Reply(200, "{\"ok\":true}"); Reply(200, "{}"); Reply(200, "<html></html>")
          Reply(200, "{\"last_acked_seq\":-5}"); Reply(200, "{\"last_acked_seq\":1e300}"); Reply(200, "{\"last_acked_seq\":99999999999}") ]
    for answer in answers do
        let p = { queued 10 true with Always = Map.ofList [ AckRoute, answer ] }
        let mutable w = start { world true with Platform = p; File = [] }
        for _ in 1..10 do
            w <- settle (advance 2.0 w)
        Assert.Equal(10, Agent.unread w.Model)
        Assert.InRange(acksOf w, 1, Pacing.most Pacing.ack 25.0 + 1)

[<Fact>]
let ``example: a platform restored from a backup (new rows numbered 1 to 10 under a floor of 40) loses none and says so`` () =
    let backup = platform true
    let w, handled = drain (start { world true with Platform = queued 40 true })
    Assert.Equal(40, handled.Length)
    Assert.Equal(40L, (Agent.primary w.Model).Ledger.Floor |> Option.defaultValue 0L)
    // restored: no rows, the numbering from 1 again, a few seconds later
    let p = { backup with Now = w.Platform.Now + 5000L; NextId = w.Platform.NextId }
    let p = (p, [ 1..10 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let w, after = drain (tick { w with Platform = p })
    Assert.Equal<int64 list>([ 1L..10L ], after |> List.map (fun id -> (p.Rows |> List.find (fun r -> r.Id = id)).Seq))
    Assert.Contains(w.Logs, fun t -> t.Contains "message numbering went back" && t.Contains "restored from a backup")
    let ledger = (Agent.primary w.Model).Ledger
    Assert.True(ledger.Horizon.Value <= 10L, $"the ledger did not re-base: horizon {ledger.Horizon}")
    // the acknowledgement follows the new numbers
    Assert.Equal(10L, w.Platform.Floor)

[<Fact>]
let ``example: an acknowledgement answer of 99999999999 (or 1e300) is not taken: later messages arrive, also after a restart`` () =
    for lie in [ "99999999999"; "1e300" ] do
        let w, _ = drain (start { world true with Platform = queued 2 true })
        let w = { w with Platform = { (fst (append Peer false w.Platform)) with Lies = Map.ofList [ AckRoute, List.replicate 3 (Reply(200, $"{{\"last_acked_seq\":{lie}}}")) ] } }
        let w, first = drain (tick w)
        Assert.Equal(1, first.Length)
        Assert.True(((Agent.primary w.Model).Ledger.Floor |> Option.defaultValue 0L) < 100L, "the absurd floor was taken")
        let w, later = drain (tick { w with Platform = fst (append Peer false w.Platform) })
        Assert.Equal(1, later.Length)
        // a restart on the same ledger
        let w, again = drain (start { w with Platform = fst (append Peer false w.Platform) })
        Assert.Equal(1, again.Length)
