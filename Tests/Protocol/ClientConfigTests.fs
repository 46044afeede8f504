module Molecule.Tests.Protocol.ClientConfigTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Protocol

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

let private env = [ "WORKSPACE_ID", "1111aaaa-0000-4000-8000-000000000001"; "PLATFORM_URL", "http://127.0.0.1:7080"; "MOLECULE_WORKSPACE_TOKEN", "tok en'\"x" ]

[<Fact>]
let ``example: the Claude Code line is the seed doc's form with the absolute path, quoted for the shell`` () =
    let line = ClientConfig.snippet ClientConfig.ClaudeCode "molecule" "/opt/bin/molecule-mcp" env
    Assert.Equal(
        "claude mcp add molecule -s user -- env WORKSPACE_ID=1111aaaa-0000-4000-8000-000000000001 PLATFORM_URL=http://127.0.0.1:7080 'MOLECULE_WORKSPACE_TOKEN=tok en'\\''\"x' /opt/bin/molecule-mcp",
        line
    )
    Assert.Equal("--dangerously-load-development-channels server:molecule", ClientConfig.channelFlag "molecule")

[<Fact>]
let ``rule: server names are safe for every client and never empty`` () =
    Check.One(
        quick 200,
        Prop.forAll (ArbMap.defaults |> ArbMap.arbitrary<string>) (fun name ->
            let s = ClientConfig.serverName name
            s <> "" && s.Length <= 48 && s |> Seq.forall (fun c -> (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c = '-'))
    )

/// Launch facts: a binary (built, or installed in a tool store), its shim, and what PATH holds.
let private launches =
    gen {
        let! root = Gen.elements [ "/home/u/.dotnet/tools"; "/opt/tools" ]
        let! version = Gen.elements [ "0.6.0"; "0.7.0" ]
        let store = $"{root}/.store/molecule-mcp/{version}/molecule-mcp.linux-x64/{version}/tools/net10.0/linux-x64/molecule-mcp"
        let! installed = Gen.elements [ true; false ]
        let binary = if installed then store else "/src/app/artifacts/molecule-mcp/molecule-mcp"
        let shim = root + "/molecule-mcp"
        let! shimExists = Gen.elements [ installed; false ]
        let! shimIsLink = Gen.elements [ true; false ]
        let candidates =
            [ shim, (if shimIsLink then binary else shim)
              "/home/u/bin/molecule-mcp", binary
              "/usr/bin/molecule-mcp", "/usr/lib/other/molecule-mcp"
              $"{root}/.store/molecule-mcp/{version}/x/molecule-mcp", binary ]
        let! onPath = Gen.subListOf candidates |> Gen.bind Gen.shuffle
        let onPath = onPath |> Array.toList |> List.filter (fun (p, _) -> p <> shim || shimExists)
        return
            { ClientConfig.Launch.Binary = binary
              ClientConfig.Launch.BinaryReal = binary
              ClientConfig.Launch.OnPath = onPath
              ClientConfig.Launch.ToolShim = if shimExists then Some shim else None }
    }

[<Fact>]
let ``rule: the path that starts molecule-mcp is the stable command on PATH, else the tool's command, else the binary — never a versioned store path`` () =
    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen launches) (fun l ->
            let chosen = ClientConfig.launchCommand l
            let startsIt (p: string, real: string) = (real = l.BinaryReal || Some p = l.ToolShim) && (ClientConfig.toolStoreRoot p).IsNone
            let first = l.OnPath |> List.tryFind startsIt
            (ClientConfig.toolStoreRoot chosen).IsNone
            && (match first, l.ToolShim with
                | Some(p, _), _ -> chosen = p
                | None, Some shim -> chosen = shim
                | None, None when (ClientConfig.toolStoreRoot l.Binary).IsSome -> chosen = "molecule-mcp"
                | None, None -> chosen = l.Binary))
    )

[<Fact>]
let ``example: an installed tool is started through its shim, a build through the link the user made`` () =
    let store = "/home/u/.dotnet/tools/.store/molecule-mcp/0.7.0/molecule-mcp.linux-x64/0.7.0/tools/net10.0/linux-x64/molecule-mcp"
    Assert.Equal(Some "/home/u/.dotnet/tools", ClientConfig.toolStoreRoot store)
    let installed = { ClientConfig.Launch.Binary = store; ClientConfig.Launch.BinaryReal = store; ClientConfig.Launch.OnPath = []; ClientConfig.Launch.ToolShim = Some "/home/u/.dotnet/tools/molecule-mcp" }
    Assert.Equal("/home/u/.dotnet/tools/molecule-mcp", ClientConfig.launchCommand installed)
    let built = "/src/artifacts/molecule-mcp/molecule-mcp"
    let linked = { ClientConfig.Launch.Binary = built; ClientConfig.Launch.BinaryReal = built; ClientConfig.Launch.OnPath = [ "/usr/bin/molecule-mcp", "/opt/old/molecule-mcp"; "/home/u/bin/molecule-mcp", built ]; ClientConfig.Launch.ToolShim = None }
    Assert.Equal("/home/u/bin/molecule-mcp", ClientConfig.launchCommand linked)
    Assert.Equal(built, ClientConfig.launchCommand { linked with OnPath = [] })
