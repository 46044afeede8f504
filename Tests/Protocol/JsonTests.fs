module Molecule.Tests.Protocol.JsonTests

open Molecule.Protocol
open Xunit
[<Fact>]
let ``a string property is read back`` () = Assert.Equal(Some "x", Json.tryParse "{\"a\":\"x\"}" |> Option.bind (Json.stringProp "a"))

[<Fact>]
let ``duplicate property names are rejected at parse time, so lookups never throw`` () =
    Assert.Equal(None, Json.tryParse """{"a":1,"a":2}""")
    Assert.Equal(None, Json.tryParse """[{"x":{"b":1,"b":2}}]""")
    Assert.Equal(None, Json.tryParse "not json")
