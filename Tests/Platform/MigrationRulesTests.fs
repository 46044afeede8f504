/// Properties of moving a team (Rules/Migration.fs): checksums that do not depend on an engine's row order or
/// integer width and that see any changed value, the comparison of both sides, and when a target may be copied into.
module Molecule.Tests.Platform.MigrationRulesTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
open Molecule.Platform.Migration

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private valueGen =
    Gen.oneof
        [ Gen.constant Null
          ArbMap.defaults |> ArbMap.generate<int64> |> Gen.map Int
          ArbMap.defaults |> ArbMap.generate<NormalFloat> |> Gen.map (fun f -> Real f.Get)
          ArbMap.defaults |> ArbMap.generate<string> |> Gen.map (fun s -> if isNull s then Null else Text s)
          ArbMap.defaults |> ArbMap.generate<byte[]> |> Gen.map (fun b -> if isNull b then Null else Bytes b) ]

let private rowGen = Gen.listOfLength 4 valueGen
let private tableGen = Gen.listOf rowGen

[<Fact>]
let ``rule: a table's checksum does not depend on the order its rows are read in`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip tableGen (ArbMap.defaults |> ArbMap.generate<int>))) (fun (rows, seed) ->
            let shuffled = rows |> List.sortBy (fun r -> (hash r) ^^^ seed)
            summarise "t" (List.map rowDigest rows) = summarise "t" (List.map rowDigest shuffled))
    )

[<Fact>]
let ``rule: a checksum sees any changed, added or removed value`` () =
    let changed =
        gen {
            let! rows = Gen.nonEmptyListOf rowGen
            let! i = Gen.choose (0, rows.Length - 1)
            let! j = Gen.choose (0, 3)
            let! v = valueGen
            return rows, i, j, v
        }

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen changed) (fun (rows, i, j, v) ->
            let edited = rows |> List.mapi (fun k r -> if k = i then r |> List.mapi (fun l x -> if l = j then v else x) else r)
            let before = summarise "t" (List.map rowDigest rows)
            let after = summarise "t" (List.map rowDigest edited)
            let dropped = summarise "t" (List.map rowDigest (List.tail rows))
            (rows[i][j] = v) = (before = after) && dropped <> before)
    )

[<Fact>]
let ``rule: a value digests the same whatever width or type an engine reads it at`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (ArbMap.defaults |> ArbMap.generate<int32>)) (fun n ->
            let as64 = Value.ofObj (box (int64 n))
            as64 = Value.ofObj (box n) && as64 = Some(Int(int64 n)))
    )

    Assert.Equal(Some Null, Value.ofObj (box DBNull.Value))
    Assert.Equal(Some Null, Value.ofObj null)
    Assert.Equal(Some(Int 1L), Value.ofObj (box true))
    Assert.Equal(None, Value.ofObj (box (Guid.NewGuid())))
    // a text and the same bytes are not the same value
    Assert.NotEqual<byte[]>(rowDigest [ Text "a" ], rowDigest [ Bytes [| 97uy |] ])
    Assert.NotEqual<byte[]>(rowDigest [ Text "ab"; Text "c" ], rowDigest [ Text "a"; Text "bc" ])

[<Fact>]
let ``rule: the tables that differ are exactly those whose rows or checksum differ`` () =
    let sideGen = Gen.listOfLength tables.Length tableGen

    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen (Gen.zip sideGen (Gen.listOfLength tables.Length (Gen.elements [ true; false ])))) (fun (side, keep) ->
            let source = List.map2 (fun (t: Table) rows -> summarise t.Name (List.map rowDigest rows)) tables side

            let target =
                List.map3 (fun (t: Table) rows same -> summarise t.Name (List.map rowDigest (if same then rows else [ Text "extra" ] :: rows))) tables side keep

            differences source target = [ for (t: Table), same in List.zip tables keep do if not same then t.Name ]
            && (reportLines source target |> List.filter (fun l -> l.EndsWith "DIFFERENT")).Length = (keep |> List.filter not).Length)
    )

[<Fact>]
let ``rule: a target is copied into only when empty, resumed only when it holds a copy of this very source, replaced only when told`` () =
    let stateGen =
        gen {
            let! rows = Gen.elements [ 0L; 1L; 250L ]
            let! markers = Gen.listOf (Gen.zip (Gen.elements [ "this"; "other" ]) (Gen.elements [ true; false ]))
            let! force = Gen.elements [ true; false ]
            return { Rows = rows; Markers = [ for (s, f) in markers -> { Source = s; Finished = f } ] }, force
        }

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen stateGen) (fun (state, force) ->
            let empty = state.Rows = 0L && state.Markers.IsEmpty
            let ours = not state.Markers.IsEmpty && state.Markers |> List.forall (fun m -> m.Source = "this")

            match decide "this" force state with
            | Ok Fresh -> empty
            | Ok Resume -> not empty && ours
            | Ok Replace -> force && not empty && not ours
            | Error e -> not force && not empty && not ours && e = notEmpty state.Rows)
    )

[<Fact>]
let ``the team's tables are every table of the schema but the version and the one-minute stream tickets`` () =
    let created =
        Schema.migrations
        |> List.collect (fun m -> m.Steps)
        |> List.choose (fun s ->
            match s with
            | Schema.Sql text when text.Contains "CREATE TABLE" ->
                let after = text.Substring(text.IndexOf "EXISTS" + 6).TrimStart()
                Some(after.Substring(0, after.IndexOfAny [| ' '; '(' |]))
            | _ -> None)
        |> set

    Assert.Equal<Set<string>>(created - set [ "stream_tickets" ], set [ for t in tables -> t.Name ])
