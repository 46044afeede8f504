module Molecule.Tests.Protocol.JsonTests

open Molecule.Protocol
open Xunit
open FsCheck
open FsCheck.FSharp
[<Fact>]
let ``a string property is read back`` () = Assert.Equal(Some "x", Json.tryParse "{\"a\":\"x\"}" |> Option.bind (Json.stringProp "a"))

[<Fact>]
let ``duplicate property names are rejected at parse time, so lookups never throw`` () =
    Assert.Equal(None, Json.tryParse """{"a":1,"a":2}""")
    Assert.Equal(None, Json.tryParse """[{"x":{"b":1,"b":2}}]""")
    Assert.Equal(None, Json.tryParse "not json")
    // a large object (its names are kept in a hash table, not scanned) with the repeat far from the first
    let many = [ for i in 0..99 -> sprintf "\"p%d\":%d" i i ] |> String.concat ","
    Assert.Equal(None, Json.tryParse ("{\"deep\":{" + many + ",\"p0\":0}}"))
    Assert.True((Json.tryParse ("{\"deep\":{" + many + "}}")).IsSome)
    // names compare unescaped
    Assert.Equal(None, Json.tryParse """{"a":1,"\u0061":2}""")

/// The k-th name of an object as text, each character written plain or as a \u escape (so one name can appear
/// both ways in one object).
let private nameText (escape: bool list) (k: int) (name: string) =
    name
    |> Seq.mapi (fun i c -> if not escape.IsEmpty && escape.[(k + i) % escape.Length] then sprintf "\\u%04x" (int c) else string c)
    |> String.concat ""

[<Fact>]
let ``rule: a text parses exactly when no object in it repeats a name (compared unescaped), however wide or deep`` () =
    let names = Gen.elements [ "a"; "b"; "ab"; "ba"; "é"; "a b"; "Ab" ] |> Gen.listOf
    let objectGen = Gen.zip3 names (Gen.listOf (Gen.elements [ true; false ])) (Gen.choose (0, 3))
    Check.One(
        Config.QuickThrowOnFailure.WithMaxTest 300,
        Prop.forAll (Arb.fromGen (Gen.zip objectGen (Gen.choose (0, 60)))) (fun ((names, escape, depth), width) ->
            // the generated names, plus `width` distinct ones so that wide objects are covered too
            let names = names @ [ for i in 1..width -> sprintf "w%d" i ]
            let body = names |> List.mapi (fun i n -> sprintf "\"%s\":%d" (nameText escape i n) i) |> String.concat ","
            let inner = "{" + body + "}"
            let text = List.fold (fun acc _ -> sprintf "{\"x\":[%s],\"y\":1}" acc) inner [ 1..depth ]
            let repeats = (List.distinct names).Length < names.Length
            (Json.tryParse text).IsSome = not repeats)
    )
