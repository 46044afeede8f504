module Molecule.Core.Json
let placeholder = 1
