module Molecule.Tests.Core.LedgerTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

[<Fact>]
let ``rule: echo rows and unreadable rows are never queued, every other row once`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.listOf kindGen)) (fun kinds ->
            let _, rows = rowsOf kinds
            let items = rows |> List.map readable
            let s = takeAll items (Ledger.empty selfId)
            // the same page again changes nothing
            let s2 = takeAll items s
            let queued = Ledger.peek Int32.MaxValue s |> List.map (fun m -> m.ActivityId)
            queued = (rows |> List.filter delivers |> List.map (fun r -> r.Id)) && Ledger.peek Int32.MaxValue s2 = Ledger.peek Int32.MaxValue s)
    )

[<Fact>]
let ``rule: a row the ledger already has is taken the same read by its stamp as read whole`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.listOf kindGen) (Gen.listOf kindGen) (Gen.elements [ true; false ]))) (fun (first, later, full) ->
            let _, rows = rowsOf (first @ later)
            let had, _ = List.splitAt first.Length rows
            // the ledger took the first rows and handled every other one of them
            let s = takeAll (had |> List.map readable) (Ledger.empty selfId)
            let s =
                Ledger.peek Int32.MaxValue s
                |> List.indexed
                |> List.filter (fun (i, _) -> i % 2 = 0)
                |> List.fold (fun s (_, m) -> match Ledger.pop m.ActivityId s with Some e -> Ledger.evolve s e | None -> s) s
            // a page with all of them again (the cursor lags) and the new ones
            let whole = rows |> List.map readable
            let stamped =
                rows
                |> List.map (fun r ->
                    match Activity.stampOf (Json.tryParse (rowJson r)).Value with
                    | Some k when Ledger.knows s k.Id -> Ledger.Known k
                    | _ -> readable r)
            let knownCount = stamped |> List.filter (function Ledger.Known _ -> true | _ -> false) |> List.length
            Ledger.take full stamped s = Ledger.take full whole s
            && knownCount = (had |> List.filter delivers).Length)
    )

[<Fact>]
let ``rule: the queue is ordered by (created_at, seq, id) whatever order rows are taken in`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 30)) (Gen.choose (0, 1000)))) (fun (n, seed) ->
            let _, rows = rowsOf (List.replicate n Peer)
            let shuffled = rows |> List.sortBy (fun r -> (r.Seq * int64 seed) % 31L)
            let s = (Ledger.empty selfId, shuffled) ||> List.fold (fun s r -> takeAll [ readable r ] s)
            (Ledger.peek Int32.MaxValue s |> List.map (fun m -> m.ActivityId)) = (rows |> List.map (fun r -> r.Id)))
    )

[<Fact>]
let ``rule: a full queue holds rows back and the cursor never passes a held row`` () =
    let _, rows = rowsOf (List.replicate (Ledger.capacity + 7) Peer)
    let items = rows |> List.map readable
    match Ledger.take true items (Ledger.empty selfId) with
    | Some t, held ->
        Assert.True(held)
        Assert.Equal(Ledger.capacity, t.Messages.Length)
        let index = rows |> List.findIndex (fun r -> Some r.Id = t.Cursor)
        Assert.InRange(index, 0, Ledger.capacity - 1)
    | None, _ -> failwith "nothing taken"

[<Fact>]
let ``rule: the cursor is durable from the first row on`` () =
    let _, rows = rowsOf [ Peer ]
    match Ledger.take false (rows |> List.map readable) (Ledger.empty selfId) with
    | Some t, _ -> Assert.Equal(Some rows.Head.Id, t.Cursor)
    | None, _ -> failwith "the first row moved nothing"

[<Fact>]
let ``rule: the acknowledgement never passes a waiting message and never exceeds what was taken`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.listOf kindGen) (Gen.listOf (Gen.choose (0, 40))))) (fun (kinds, pops) ->
            let _, rows = rowsOf kinds
            let s = takeAll (rows |> List.map readable) (Ledger.empty selfId)
            let s =
                (s, pops)
                ||> List.fold (fun s i ->
                    match Ledger.peek Int32.MaxValue s |> List.tryItem i with
                    | Some m -> Ledger.evolve s (Ledger.Popped m.ActivityId)
                    | None -> s)
            match Ledger.ackTarget s with
            | None -> true
            | Some target ->
                let waiting = Ledger.peek Int32.MaxValue s |> List.choose (fun m -> m.Seq)
                waiting |> List.forall (fun q -> q > target) && target <= (rows |> List.map (fun r -> r.Seq) |> List.max))
    )

[<Fact>]
let ``rule: rows at or below the acknowledged floor are recognised as handled without remembering them`` () =
    let _, rows = rowsOf [ Peer; Peer; Peer ]
    let s = Ledger.evolve (Ledger.empty selfId) (Ledger.Acked 2L)
    let s = takeAll (rows |> List.map readable) s
    Assert.Equal<string list>([ rows[2].Id ], Ledger.peek 10 s |> List.map (fun m -> m.ActivityId))

[<Fact>]
let ``rule: remembered ids are a bounded set`` () =
    let s = (Ledger.empty selfId, [ 1 .. Ledger.seenCapacity + 50 ]) ||> List.fold (fun s i -> Ledger.remember (string i) s)
    Assert.Equal(Ledger.seenCapacity, s.Seen.Count)
    Assert.False(s.Seen.Contains "1")
    Assert.True(s.Seen.Contains(string (Ledger.seenCapacity + 50)))

