module Molecule.Tests.Core.JsonTests
open Xunit
[<Fact>]
let ``placeholder`` () = Assert.Equal(Some "x", Molecule.Core.Json.tryParse "{\"a\":\"x\"}" |> Option.bind (Molecule.Core.Json.stringProp "a"))
