namespace Molecule.Tests.Support

/// xunit collections of the suite.
module Collections =
    /// Tests in this collection run alone, after every parallel collection (they compile, or load the machine).
    [<Literal>]
    let Alone = "alone: after the parallel tests"

/// A type of this assembly (for reflection over the suite).
type Marker = class end

[<Xunit.CollectionDefinition(Collections.Alone, DisableParallelization = true)>]
type AloneCollection() =
    class
    end
