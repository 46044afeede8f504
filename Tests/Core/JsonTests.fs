module Molecule.Tests.Core.JsonTests
open Xunit
[<Fact>]
let ``placeholder`` () = Assert.Equal(1, Molecule.Core.Json.placeholder)
