module Molecule.Tests.Protocol.IdsTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Protocol

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

/// Any text, a UUID as an agent might type it (any letter case, surrounding blanks), or blanks.
let private textGen: Gen<string> =
    let uuid =
        gen {
            let! g = ArbMap.defaults |> ArbMap.generate<Guid>
            let! upper = ArbMap.defaults |> ArbMap.generate<bool>
            let! pad = Gen.elements [ ""; " "; "\n"; " \t " ]
            let text = g.ToString "D"
            return pad + (if upper then text.ToUpperInvariant() else text) + pad
        }
    Gen.oneof [ ArbMap.defaults |> ArbMap.generate<string>; uuid; Gen.elements [ null; ""; "  "; "\t\n"; " p-1 "; "beta" ] ]

[<Fact>]
let ``rule: a peer id is a workspace UUID in its normal form, any other text trimmed, none when blank`` () =
    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen textGen) (fun text ->
            match PeerId.tryParse text, WorkspaceId.tryParse text with
            | None, _ -> String.IsNullOrWhiteSpace text
            | Some peer, Some ws -> peer.Value = ws.Value && peer = PeerId.ofWorkspace ws && peer.ToString() = ws.Value
            | Some peer, None -> not (String.IsNullOrWhiteSpace text) && peer.Value = text.Trim())
    )

[<Fact>]
let ``rule: one peer named in any letter case is one peer`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (ArbMap.defaults |> ArbMap.generate<Guid>)) (fun g ->
            let lower = g.ToString "D"
            PeerId.tryParse lower = PeerId.tryParse (" " + lower.ToUpperInvariant()))
    )

[<Fact>]
let ``rule: activity and file ids are the text trimmed, none when blank`` () =
    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen textGen) (fun text ->
            let expected = if String.IsNullOrWhiteSpace text then None else Some(text.Trim())
            (ActivityId.tryParse text |> Option.map (fun a -> a.Value)) = expected
            && (FileId.tryParse text |> Option.map (fun f -> f.Value)) = expected)
    )
