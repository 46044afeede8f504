module Molecule.Tests.Protocol.SecretsTests

open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Protocol

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

[<Fact>]
let ``rule: a masked text never contains any of the secrets`` () =
    let secret = Gen.elements [ "tok_0123456789abcdef"; "********"; "###~~~***"; "abcdefgh"; "[redacted]xyz" ]
    let g =
        gen {
            let! secrets = Gen.nonEmptyListOf secret
            let! parts = Gen.listOf (Gen.oneof [ Gen.elements secrets; ArbMap.defaults |> ArbMap.generate<string> ])
            return secrets, parts |> List.map (fun s -> if isNull s then "" else s) |> String.concat ""
        }
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen g) (fun (secrets, text) ->
            let masked = Secrets.mask secrets text
            secrets |> List.forall (fun s -> not (masked.Contains s)))
    )

[<Fact>]
let ``rule: redaction removes every well-known secret shape, keeps key= and Bearer prefixes`` () =
    let shapes =
        [ "sk-ant-abcdefghijklmnop1234"; "sk-abcdefghijklmnopqrstu"; "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
          "AKIAABCDEFGHIJKLMNOP"; "xoxb-1234567890-abcdef" ]
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements shapes) (Gen.elements [ ""; "see "; "(" ]))) (fun (secret, before) ->
            let text = before + secret + " end"
            let r = Secrets.redact text
            not (r.Contains secret) && r = before + "[REDACTED] end")
    )
    Assert.Equal("api_key = [REDACTED] ok", Secrets.redact "api_key = hunter2hunter2 ok")
    Assert.Equal("Authorization: Bearer [REDACTED]", Secrets.redact "Authorization: Bearer abcdefghijklmnopqrstuvwxyz")
    Assert.Equal("[REDACTED:OPENAI_KEY]", Secrets.redactLabelled "sk-abcdefghijklmnopqrstu")
    Assert.Equal("no secrets here", Secrets.redact "no secrets here")
