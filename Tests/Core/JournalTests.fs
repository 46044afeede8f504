module Molecule.Tests.Core.JournalTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n


let private eventGen (rows: Row list) : Gen<Ledger.Event> =
    let ids = rows |> List.map (fun r -> r.Id)
    Gen.oneof
        [ Gen.subListOf rows |> Gen.map (fun rs ->
              Ledger.Took { Messages = rs |> List.choose (fun r -> match readable r with Ledger.Readable row when delivers r -> Some(Ledger.messageOf selfId row) | _ -> None)
                            Cursor = rs |> List.tryLast |> Option.map (fun r -> r.Id)
                            Horizon = rs |> List.tryLast |> Option.map (fun r -> r.Seq)
                            Newest = rs |> List.tryLast |> Option.map (fun r -> (epoch.AddMilliseconds(float r.At)).UtcTicks) })
          (if ids.IsEmpty then Gen.constant Ledger.CursorLost else Gen.elements ids |> Gen.map Ledger.Popped)
          Gen.choose (0, 50) |> Gen.map (int64 >> Ledger.Acked)
          Gen.constant Ledger.CursorLost
          Gen.choose (0, 50) |> Gen.map (fun n -> Ledger.Rebased(if n = 0 then None else Some(int64 n))) ]

let private same (a: Ledger.State) (b: Ledger.State) =
    a.Cursor = b.Cursor && a.Floor = b.Floor && a.Horizon = b.Horizon && a.Newest = b.Newest
    && List.ofSeq a.Queue = List.ofSeq b.Queue && a.Seen = b.Seen

[<Fact>]
let ``rule: a ledger read back from its journal is the ledger that wrote it (snapshot + any events)`` () =
    let scenario =
        gen {
            let! kinds = Gen.listOf kindGen
            let _, rows = rowsOf kinds
            let! before = Gen.listOf (eventGen rows)
            let! after = Gen.listOf (eventGen rows)
            return before, after
        }
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen scenario) (fun (before, after) ->
            let s0 = before |> List.fold Ledger.evolve (Ledger.empty selfId)
            let s1 = after |> List.fold Ledger.evolve s0
            let text = Journal.file 7L s0 + String.Join("", after |> List.map (fun e -> Journal.event e + "\n"))
            match Journal.restore selfId text with
            | Ok r -> same r.State s1 && r.Generation = 7L && r.Events = after.Length && r.Ignored = 0
            | Result.Error _ -> false)
    )

[<Fact>]
let ``rule: a line torn by a crash is skipped; a file of another workspace or no ledger at all is refused`` () =
    let _, rows = rowsOf [ Peer; Canvas ]
    let s = takeAll (rows |> List.map readable) (Ledger.empty selfId)
    let text = Journal.file 1L s + Journal.event (Ledger.Popped rows[0].Id) + "\n" + """{"e":"popped","id":"""
    match Journal.restore selfId text with
    | Ok r ->
        Assert.Equal(1, r.Ignored)
        Assert.Equal<string list>([ rows[1].Id ], Ledger.peek 10 r.State |> List.map (fun m -> m.ActivityId))
    | Result.Error e -> failwith (Journal.describeRefusal e)
    Assert.Equal(Result.Error(Journal.OtherWorkspace selfId.Value), Journal.restore otherId text |> Result.map (fun _ -> ()))
    for garbage in [ ""; "{}"; "not json\n{}"; Journal.header selfId 1L ] do
        match Journal.restore selfId garbage with
        | Result.Error(Journal.NotALedger _) -> ()
        | other -> failwith $"accepted garbage {garbage}: {other}"

[<Fact>]
let ``example: an old shared state file is read for migration; anything else is not`` () =
    let old =
        """{"version":1,"cursor":"c-1","queue":[{"activity_id":"a1","text":"hi","peer_id":"","kind":"canvas_user","method":"message/send","created_at":"2026-05-01T12:00:00Z"}],"seen":["a0","a1"]}"""
    match Journal.readLegacy old with
    | Some(cursor, queue, seen) ->
        Assert.Equal(Some "c-1", cursor)
        Assert.Equal<string list>([ "a1" ], queue |> List.map (fun m -> m.ActivityId))
        let s = Journal.ofLegacy selfId cursor queue seen
        Assert.Equal(Some "c-1", s.Cursor)
        Assert.True(s.Seen.Contains "a0")
        Assert.Equal(1, Ledger.count s)
    | None -> failwith "the old file was not read"
    Assert.Equal(None, Journal.readLegacy "{\"version\":2}")
    Assert.Equal(None, Journal.readLegacy "garbage")
    Assert.StartsWith("inbox-5e1f0000-0000-4000-8000-00000000000a", Journal.fileName selfId)
    Assert.Equal(Some selfId, WorkspaceId.tryParse (" " + selfId.Value.ToUpperInvariant() + " "))
