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
            let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Took { Messages = []; Cursor = Some "c"; Horizon = None })
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
                    let o = Intake.onResponse config (Reply(200, "[]")) ledger s
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
                let o = Intake.onResponse config (Reply(200, "[]")) ledger s
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
let ``a fresh ledger learns the floor, then replays the whole retention window for rows above it`` () =
    let s = Intake.start 600 (Ledger.empty selfId)
    let s, first = Intake.next config (Ledger.empty selfId) s
    Assert.EndsWith("/activity/ack", first.Value.Url)
    let o = Intake.onResponse config (Reply(200, "{\"last_acked_seq\":41}")) (Ledger.empty selfId) s
    Assert.Equal<Ledger.Event list>([ Ledger.Acked 41L ], o.Events)
    Assert.True(o.FetchNow)
    let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Acked 41L)
    let _, replay = Intake.next config ledger o.Intake
    Assert.Contains("since_secs=2592000", replay.Value.Url)
    Assert.Contains("limit=500", replay.Value.Url)

[<Fact>]
let ``without acknowledgements on the platform the replay window is MOLECULE_MCP_REPLAY_SECS`` () =
    let cfg = { config with ReplaySecs = 3600 }
    let s = Intake.start cfg.ReplaySecs (Ledger.empty selfId)
    let s, _ = Intake.next cfg (Ledger.empty selfId) s
    let o = Intake.onResponse cfg (Reply(404, "{\"error\":\"not found\"}")) (Ledger.empty selfId) s
    Assert.Equal(Intake.Unsupported, o.Intake.Ack)
    let _, replay = Intake.next cfg (Ledger.empty selfId) o.Intake
    Assert.Contains("since_secs=3600", replay.Value.Url)
    Assert.Contains(o.Effects, fun e -> match e with Log(Info, t) -> t.Contains "no acknowledgements" | _ -> false)

[<Fact>]
let ``a full replay page pages back with before_ts one microsecond after its oldest row`` () =
    let p = (platform false, [ 1..Intake.pageLimit + 3 ]) ||> List.fold (fun p _ -> fst (append Peer false p))
    let ledger = Ledger.empty selfId
    let s = { Intake.start 600 ledger with Ack = Intake.Unsupported; Phase = Intake.Replaying { Window = 600; Before = None; Items = []; Ids = Set.empty; Truncated = false } }
    let s, request = Intake.next config ledger s
    let _, page = answer request.Value p
    let o = Intake.onResponse config page ledger s
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
    let ledger = Ledger.evolve (Ledger.empty selfId) (Ledger.Took { Messages = []; Cursor = Some "x"; Horizon = None })
    let s = Intake.start 600 ledger
    let page = Reply(200, "[" + String.Join(",", rows |> List.map rowJson) + "]")
    let s, _ = Intake.next config ledger s
    let o = Intake.onResponse config page ledger s
    Assert.Equal(2L, o.Intake.Skipped)
    let warnings = o.Effects |> List.filter (function Log(Warning, t) -> t.Contains "skipped activity row" | _ -> false)
    Assert.Equal(2, warnings.Length)
    match o.Events with
    | [ Ledger.Took t ] ->
        Assert.Equal<string list>([ rows[2].Id; rows[3].Id ], t.Messages |> List.map (fun m -> m.ActivityId))
        Assert.Equal(Some rows[2].Id, t.Cursor)
    | other -> failwith $"unexpected events {other}"
