module Molecule.Tests.Core.DoctorTests

open System
open Xunit
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim
open Molecule.Core.Doctor

let private facts (token: Response) (workspace: Response) : Doctor.Facts =
    { Version = "0.7.0"
      Binary = "/opt/bin/molecule-mcp"
      OnPath = Some "/opt/bin/molecule-mcp"
      Config = Ok [ config ]
      StateDirWritable = true
      Health = Some(Reply(200, "{\"status\":\"ok\"}"))
      ClockSkewSecs = Some 0.4
      Token = [ selfId, token ]
      Workspace = [ selfId, workspace ]
      Stream = Some(Reply(200, ": ping"))
      ClaudeConfig = None }

let private statusOf (label: string) (checks: Doctor.Check list) =
    (checks |> List.find (fun c -> c.Label.StartsWith label)).Status

[<Fact>]
let ``a healthy setup passes every check (exit 0)`` () =
    let checks = Doctor.checks (facts (Reply(200, "[]")) (Reply(200, "{\"name\":\"Sim\",\"status\":\"online\"}")))
    Assert.All(checks, fun c -> Assert.Equal(Doctor.Pass, c.Status))
    Assert.Equal(0, Doctor.exitCode checks)
    Assert.EndsWith("All checks passed.\n", Doctor.render checks)

[<Fact>]
let ``a rejected token, a deleted workspace, an unreachable platform and a wrong clock each fail or warn with a next step`` () =
    let rejected = Doctor.checks (facts (Reply(401, "{\"error\":\"invalid workspace auth token\"}")) (Reply(200, "{}")))
    Assert.Equal(Doctor.Fail, statusOf "Token" rejected)
    Assert.Equal(1, Doctor.exitCode rejected)
    Assert.Contains("next: " + Texts.regenerate, Doctor.render rejected)
    let deleted = Doctor.checks (facts (Reply(401, "")) (Reply(410, $"{{\"id\":\"{selfId.Value}\",\"removed_at\":\"2026-11-01T00:00:00Z\"}}")))
    Assert.Contains(deleted, fun c -> c.Status = Doctor.Fail && c.Message.StartsWith $"Workspace {selfId.Value} was deleted on the platform at 2026-11-01")
    let unreachable =
        Doctor.checks { facts (TransportError "connection refused") (TransportError "connection refused") with Health = Some(TransportError "connection refused") }
    Assert.Equal(Doctor.Fail, statusOf "Platform reachability" unreachable)
    let noStream = Doctor.checks { facts (Reply(200, "[]")) (Reply(200, "{}")) with Stream = Some(Reply(404, "")) }
    Assert.Contains(noStream, fun c -> c.Label = "Event stream" && c.Status = Doctor.Warn && c.Message.Contains "polling every 5 s")
    let skewed = Doctor.checks { facts (Reply(200, "[]")) (Reply(200, "{}")) with ClockSkewSecs = Some -300.0 }
    Assert.Contains(skewed, fun c -> c.Label = "Clock" && c.Status = Doctor.Warn && c.Message.Contains "300 s behind")

[<Fact>]
let ``missing environment fails the Env vars check and skips the platform; the JSON report says ok false`` () =
    let f: Doctor.Facts =
        { facts (Reply(200, "[]")) (Reply(200, "{}")) with
            Config = Result.Error [ Config.Missing "WORKSPACE_ID" ]
            Token = []
            Workspace = [] }
    let checks = Doctor.checks f
    Assert.Equal(Doctor.Fail, statusOf "Env vars" checks)
    Assert.Equal(Doctor.Warn, statusOf "Platform reachability" checks)
    let json = (Json.tryParse (Doctor.renderJson checks)).Value
    Assert.Equal(Some "false", Json.prop "ok" json |> Option.bind Json.asScalarText)

[<Fact>]
let ``the Claude Code check names the server the channels flag must name, from ~/.claude.json`` () =
    let claude =
        $"""{{"mcpServers":{{"team-bot":{{"command":"molecule-mcp","env":{{"WORKSPACE_ID":"{selfId.Value.ToUpperInvariant()}"}}}}}},
            "projects":{{"/src/app":{{"mcpServers":{{"molecule":{{"command":"env","args":["WORKSPACE_ID={selfId.Value}","molecule-mcp"]}}}}}}}}}}"""
    Assert.Equal<string list>([ "team-bot"; "molecule" ], Doctor.claudeServers claude selfId)
    let checks = Doctor.checks { facts (Reply(200, "[]")) (Reply(200, "{}")) with ClaudeConfig = Some claude }
    let c = checks |> List.find (fun c -> c.Label.StartsWith "Claude Code push")
    Assert.Contains("claude --dangerously-load-development-channels server:team-bot", c.Message)
    let none = Doctor.checks { facts (Reply(200, "[]")) (Reply(200, "{}")) with ClaudeConfig = Some "{}" }
    Assert.Equal(Doctor.Warn, statusOf "Claude Code push" none)
