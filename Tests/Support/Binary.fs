/// Locates the published `molecule-mcp` binary the integration tests drive.
module Molecule.Tests.Support.Binary

open System
open System.IO

/// MOLECULE_MCP_BIN (set by `dotnet fsi build.fsx test`), else artifacts/molecule-mcp/molecule-mcp found by
/// walking up from the test assembly. Fails with a clear message when the binary was not published.
let path () : string =
    match Environment.GetEnvironmentVariable "MOLECULE_MCP_BIN" with
    | p when not (String.IsNullOrWhiteSpace p) && File.Exists p -> p
    | _ ->
        let rec up (dir: DirectoryInfo) =
            if isNull dir then
                failwith "published molecule-mcp not found: run `dotnet fsi build.fsx publish` (or `build.fsx test`) first, or set MOLECULE_MCP_BIN"
            else
                let candidate = Path.Combine(dir.FullName, "artifacts", "molecule-mcp", "molecule-mcp")
                if File.Exists candidate then candidate else up dir.Parent
        up (DirectoryInfo AppContext.BaseDirectory)
