/// Locates the published executables the integration tests drive: `molecule-mcp` and `molecule-platform`.
module Molecule.Tests.Support.Binary

open System
open System.IO

/// `$variable` (set by `dotnet fsi build.fsx test`), else artifacts/<name>/<name> found by walking up from the test
/// assembly. Fails with a clear message when the executable was not published.
let private locate (variable: string) (name: string) : string =
    match Environment.GetEnvironmentVariable variable with
    | p when not (String.IsNullOrWhiteSpace p) && File.Exists p -> p
    | _ ->
        let rec up (dir: DirectoryInfo) =
            if isNull dir then
                failwith $"published {name} not found: run `dotnet fsi build.fsx publish` (or `build.fsx test`) first, or set {variable}"
            else
                let candidate = Path.Combine(dir.FullName, "artifacts", name, name)
                if File.Exists candidate then candidate else up dir.Parent
        up (DirectoryInfo AppContext.BaseDirectory)

/// The stdio server (`MOLECULE_MCP_BIN`).
let path () : string = locate "MOLECULE_MCP_BIN" "molecule-mcp"

/// The local platform and its admin commands (`MOLECULE_PLATFORM_BIN`).
let platformPath () : string = locate "MOLECULE_PLATFORM_BIN" "molecule-platform"
