module Molecule.Tests.Protocol.ClientConfigTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Protocol

let private quick n = Config.QuickThrowOnFailure.WithMaxTest n

let private env = [ "WORKSPACE_ID", "1111aaaa-0000-4000-8000-000000000001"; "PLATFORM_URL", "http://127.0.0.1:7080"; "MOLECULE_WORKSPACE_TOKEN", "tok en'\"x" ]

let private merged client existing server =
    match ClientConfig.merge client existing server "/opt/bin/molecule-mcp" env with
    | Ok text -> text
    | Error e -> failwith e

[<Fact>]
let ``example: the Claude Code line is the seed doc's form with the absolute path, quoted for the shell`` () =
    let line = ClientConfig.snippet ClientConfig.ClaudeCode "molecule" "/opt/bin/molecule-mcp" env
    Assert.Equal(
        "claude mcp add molecule -s user -- env WORKSPACE_ID=1111aaaa-0000-4000-8000-000000000001 PLATFORM_URL=http://127.0.0.1:7080 'MOLECULE_WORKSPACE_TOKEN=tok en'\\''\"x' /opt/bin/molecule-mcp",
        line
    )
    Assert.Equal("--dangerously-load-development-channels server:molecule", ClientConfig.channelFlag "molecule")

[<Fact>]
let ``rule: merging keeps every other server and setting, and merging twice changes nothing more`` () =
    let others =
        [ ClientConfig.ClaudeCode, """{"numStartups":3,"mcpServers":{"other":{"command":"x"}}}"""
          ClientConfig.Gemini, """{"theme":"dark","mcpServers":{"other":{"command":"x"}}}"""
          ClientConfig.Cursor, """{"mcpServers":{"other":{"command":"x"}}}"""
          ClientConfig.OpenCode, """{"$schema":"https://opencode.ai/config.json","mcp":{"other":{"type":"local","command":["x"]}}}"""
          ClientConfig.Codex, "model = \"o3\"\n\n[mcp_servers.other]\ncommand = \"x\"\n"
          ClientConfig.Hermes, "model: x\nmcp_servers:\n  other:\n    command: \"x\"\n    enabled: true\nterminal:\n  backend: local\n" ]
    Check.One(
        quick 50,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements others) (Gen.elements [ "molecule"; "docs-writer"; "other2" ]))) (fun ((client, text), server) ->
            let once = merged client (Some text) server
            let twice = merged client (Some once) server
            once = twice
            && once.Contains "other"
            && once.Contains "/opt/bin/molecule-mcp"
            && once.Contains server
            && (client <> ClientConfig.Hermes || (once.Contains "terminal:" && once.Contains "backend: local"))
            && (client <> ClientConfig.Codex || once.Contains "model = \"o3\""))
    )

[<Fact>]
let ``example: a client file that is not JSON is never overwritten`` () =
    match ClientConfig.merge ClientConfig.Cursor (Some "not json") "molecule" "/x" env with
    | Error e -> Assert.Contains("not a JSON object", e)
    | Ok _ -> failwith "a broken file was replaced"

[<Fact>]
let ``rule: server names are safe for every client and never empty`` () =
    Check.One(
        quick 200,
        Prop.forAll (ArbMap.defaults |> ArbMap.arbitrary<string>) (fun name ->
            let s = ClientConfig.serverName name
            s <> "" && s.Length <= 48 && s |> Seq.forall (fun c -> (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c = '-'))
    )
