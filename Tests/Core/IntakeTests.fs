module Molecule.Tests.Core.IntakeTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

type private Event =
    /// A timer tick, a doorbell ring or a pop that made room: fetch now.
    | Trigger
    /// The fetch in flight is answered.
    | Complete

[<Fact>]
let ``rule: at most one fetch is in flight, and no trigger is left unserved`` () =
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.listOf (Gen.elements [ Trigger; Complete ]))) (fun events ->
            let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Took { Messages = []; Cursor = Some "c"; Horizon = None; Newest = None })
            let mutable s = Intake.start 600 ledger
            let mutable inflight = 0
            let mutable maxInflight = 0
            // A trigger is served by a fetch that starts after it.
            let mutable unserved = false
            for e in events do
                match e with
                | Trigger ->
                    let s', request = Intake.next config ledger s
                    s <- s'
                    match request with
                    | Some _ -> inflight <- inflight + 1
                    | None -> unserved <- true
                | Complete when inflight > 0 ->
                    let o = Intake.onResponse config 0.0 0.5 (Reply(200, "[]")) ledger s
                    inflight <- inflight - 1
                    s <- o.Intake
                    if o.FetchNow then
                        let s', request = Intake.next config ledger s
                        s <- s'
                        if request.IsSome then inflight <- inflight + 1
                    unserved <- false
                | Complete -> ()
                maxInflight <- max maxInflight inflight
            // Complete what is left: every trigger ends in a fetch that began after it.
            while inflight > 0 do
                let o = Intake.onResponse config 0.0 0.5 (Reply(200, "[]")) ledger s
                inflight <- inflight - 1
                s <- o.Intake
                if o.FetchNow then
                    let s', request = Intake.next config ledger s
                    s <- s'
                    if request.IsSome then inflight <- inflight + 1
                unserved <- false
            maxInflight <= 1 && not unserved)
    )

[<Fact>]
let ``a fresh ledger learns the floor on the acknowledgement route, then replays the whole retention window for rows above it`` () =
    let s = Intake.start 600 (Ledger.empty selfId)
    Assert.Equal(Intake.LearningFloor, s.Phase)
    // intake waits for the floor: no fetch, the acknowledgement route asks for it
    let s, fetch = Intake.next config (Ledger.empty selfId) s
    Assert.True(fetch.IsNone)
    let s, ask = Acks.next config (Ledger.empty selfId) s
    Assert.EndsWith("/activity/ack", ask.Value.Url)
    Assert.Equal(Some "0", ApiTests.str [ "acked_seq" ] ask.Value)
    let o = Acks.onAnswer config 0.0 0.5 (Reply(200, "{\"last_acked_seq\":41}")) (Ledger.empty selfId) s
    Assert.Equal<Ledger.Event list>([ Ledger.Acked 41L ], o.Events)
    Assert.True(o.FetchNow)
    let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Acked 41L)
    let _, replay = Intake.next config ledger o.State
    Assert.Contains("since_secs=2592000", replay.Value.Url)
    Assert.Contains("limit=500", replay.Value.Url)

[<Fact>]
let ``without acknowledgements on the platform the replay window is MOLECULE_MCP_REPLAY_SECS`` () =
    let cfg = { config with ReplaySecs = 3600 }
    let s = Intake.start cfg.ReplaySecs (Ledger.empty selfId)
    let s, _ = Acks.next cfg (Ledger.empty selfId) s
    let o = Acks.onAnswer cfg 0.0 0.5 (Reply(404, "{\"error\":\"not found\"}")) (Ledger.empty selfId) s
    Assert.Equal(Intake.Unsupported, o.State.Ack)
    let _, replay = Intake.next cfg (Ledger.empty selfId) o.State
    Assert.Contains("since_secs=3600", replay.Value.Url)
    Assert.Contains(o.Effects, fun e -> match e with Log(Info, t) -> t.Contains "no acknowledgements" | _ -> false)

[<Fact>]
let ``a full replay page pages back with before_ts one microsecond after its oldest row`` () =
    let p = (platform false, [ 1..Intake.pageLimit + 3 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let ledger = Ledger.empty selfId
    let s = { Intake.start 600 ledger with Ack = Intake.Unsupported; Phase = Intake.Replaying { Window = 600; Before = None; Items = []; Ids = Set.empty; Truncated = false } }
    let s, request = Intake.next config ledger s
    let _, page = answer request.Value p
    let o = Intake.onResponse config 0.0 0.5 page ledger s
    Assert.True(o.FetchNow)
    Assert.Empty(o.Events)
    let _, next = Intake.next config ledger o.Intake
    let oldestOfPage = p.Rows |> List.skip 3 |> List.head
    let expected = Activity.formatTime ((epoch.AddMilliseconds(float oldestOfPage.At)).AddTicks 10L)
    Assert.Contains("before_ts=" + Uri.EscapeDataString expected, next.Value.Url)

[<Fact>]
let ``unreadable rows are skipped with one log line each and a counter, and never stall the cursor`` () =
    // Rows three seconds apart: the cursor may settle on all but the newest (see Ledger.cursorLagSecs).
    let p, rows =
        ((platform true, []), [ Garbled; Garbled; Peer; Peer ])
        ||> List.fold (fun (p, acc) k -> let p, r = append k false { p with Now = p.Now + 3000L } in p, acc @ [ r ])
    let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Took { Messages = []; Cursor = Some "x"; Horizon = None; Newest = None })
    let s = Intake.start 600 ledger
    let page = Reply(200, "[" + String.Join(",", rows |> List.map rowJson) + "]")
    let s, _ = Intake.next config ledger s
    let o = Intake.onResponse config 0.0 0.5 page ledger s
    Assert.Equal(2L, o.Intake.Skipped)
    let warnings = o.Effects |> List.filter (function Log(Warning, t) -> t.Contains "skipped activity row" | _ -> false)
    Assert.Equal(2, warnings.Length)
    match o.Events with
    | [ Ledger.Took t ] ->
        Assert.Equal<string list>([ rows[2].Id; rows[3].Id ], t.Messages |> List.map (fun m -> m.ActivityId))
        Assert.Equal(Some rows[2].Id, t.Cursor)
    | other -> failwith $"unexpected events {other}"

let private cursorOf (w: World) = (Agent.primary w.Model).Ledger.Cursor

let private sinceIdOf (w: World) =
    w.Inflight
    |> List.tryPick (fun (_, r) -> match r.Url.IndexOf "since_id=" with -1 -> None | i -> Some(r.Url.Substring(i + 9).Split('&').[0]))

[<Fact>]
let ``rule: a ring's fetch reads on from the newest row taken and moves neither cursor nor acknowledgement; the sweep does`` () =
    Check.One(
        quick 100,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 40)) (Gen.choose (1, 40)))) (fun (before, after) ->
            // rows 1.5 s apart: the cursor's 2 s lag leaves only the last one or two behind it
            let spaced n p = (p, [ 1..n ]) ||> List.fold (fun p _ -> fst (append Peer false (wait 1500L p)))
            let w = settle (start { world true with Platform = spaced before (platform true) })
            let cursor = cursorOf w
            let horizon = (Agent.primary w.Model).Ledger.Horizon
            let newest = (List.last w.Platform.Rows).Id
            let w = { w with Platform = spaced after w.Platform }
            let w = ring w
            let readFrom = sinceIdOf w
            let w = settle w
            let queued = Ledger.peek Int32.MaxValue (Agent.primary w.Model).Ledger |> List.length
            let ringKept = cursorOf w = cursor && (Agent.primary w.Model).Ledger.Horizon = horizon
            let w = settle (tick w)
            (readFrom = Some newest |> Prop.label $"the ring read from {readFrom}, not the newest row {newest}")
            .&. (ringKept |> Prop.label "the ring's fetch moved the cursor or the acknowledgement")
            .&. (queued = before + after |> Prop.label $"{queued} queued of {before + after}")
            // the sweep moves the cursor once a new row is 2 s older than the newest (rows are 1.5 s apart)
            .&. ((after < 3 || cursorOf w <> cursor) |> Prop.label "the sweep did not move the cursor"))
    )

[<Fact>]
let ``example: a row committed late, behind rows a ring already read, is taken by the next sweep and never acknowledged before`` () =
    let w = settle (start { world true with Platform = (platform true, [ 1..3 ]) ||> List.fold (fun p _ -> fst (append Peer false (wait 1500L p))) })
    let cursorAt = w.Platform.Rows |> List.tryFind (fun r -> Some r.Id = cursorOf w) |> Option.map (fun r -> r.At)
    // two newer rows, read by a ring; then one created before them commits, then a newer one the ring reads
    let p = (w.Platform, [ 1..2 ]) ||> List.fold (fun p _ -> fst (append Peer false (wait 300L p)))
    let w = settle (ring { w with Platform = p })
    let p, late = appendLate Canvas 500L cursorAt w.Platform
    let p, _ = append Peer false p
    let w = settle (ring { w with Platform = p })
    let waitingNow = Ledger.peek Int32.MaxValue (Agent.primary w.Model).Ledger |> List.map (fun m -> m.ActivityId)
    Assert.DoesNotContain(late.Id, waitingNow)
    // everything waiting is handled: the acknowledgement stays below the late row, which is not handled yet
    let rec handleAll w = match handleOne w with | w, Some _ -> handleAll (settle w) | w, None -> w
    let w = handleAll w
    Assert.True(w.Platform.Floor < late.Seq, $"acknowledged {w.Platform.Floor}, past the late row's seq {late.Seq}")
    let w = settle (tick w)
    let waitingAfterSweep = Ledger.peek Int32.MaxValue (Agent.primary w.Model).Ledger |> List.map (fun m -> m.ActivityId)
    Assert.Equal<string list>([ late.Id ], waitingAfterSweep)

[<Fact>]
let ``example: a sweep asked for while a ring's fetch is in flight runs next, whatever triggers that fetch`` () =
    let cursor = "00000001-0000-0000-0000-000000000001"
    let head = "00000009-0000-0000-0000-000000000001"
    let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Took { Messages = []; Cursor = Some cursor; Horizon = None; Newest = None })
    let s = { Intake.start 600 ledger with Head = Some head }
    let s, quick = Intake.nextFor Intake.Ring config ledger s
    Assert.Contains($"since_id={head}", quick.Value.Url)
    // the timer fires meanwhile
    let s, none = Intake.nextFor Intake.Sweep config ledger s
    Assert.True(none.IsNone)
    let o = Intake.onResponse config 0.0 0.5 (Reply(200, "[]")) ledger s
    Assert.True(o.FetchNow)
    // the follow-up is a ring's, but the owed sweep reads from the cursor
    let _, next = Intake.nextFor Intake.Ring config ledger o.Intake
    Assert.Contains($"since_id={cursor}", next.Value.Url)
