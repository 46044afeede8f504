module Molecule.Tests.Core.JsonTests
open Xunit
[<Fact>]
let ``placeholder`` () = Assert.Equal(Some "x", Molecule.Core.Json.tryParse "{\"a\":\"x\"}" |> Option.bind (Molecule.Core.Json.stringProp "a"))

[<Fact>]
let ``duplicate property names are rejected at parse time, so lookups never throw`` () =
    Assert.Equal(None, Molecule.Core.Json.tryParse """{"a":1,"a":2}""")
    Assert.Equal(None, Molecule.Core.Json.tryParse """[{"x":{"b":1,"b":2}}]""")
    Assert.Equal(None, Molecule.Core.Json.tryParse "not json")
