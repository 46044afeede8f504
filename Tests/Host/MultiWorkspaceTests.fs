/// Several workspaces in one molecule-mcp process (MOLECULE_WORKSPACES), and a watched token file (issue 9), with
/// the published binary against the local platform on 127.0.0.1.
module Molecule.Tests.Host.MultiWorkspaceTests

open System
open System.IO
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Molecule.Tests.Host.Harness

let private meta (n: JsonNode) (key: string) =
    let m = n["params"]["meta"]
    match m[key] with
    | null -> ""
    | v -> v.GetValue<string>()

let private contentOf (n: JsonNode) = pushedText n["params"]

/// The live tokens of a workspace (admin).
let private tokenIds (platform: Platform) (ws: Workspace) =
    task {
        let! a = platform.Send("GET", $"/workspaces/{ws.Id}/tokens", token = platform.AdminToken)
        return a.Json["tokens"].AsArray() |> Seq.map (fun t -> t["id"].GetValue<string>()) |> List.ofSeq
    }

let private revokeAll (platform: Platform) (ws: Workspace) =
    task {
        let! ids = tokenIds platform ws
        for id in ids do
            let! _ = platform.Send("DELETE", $"/workspaces/{ws.Id}/tokens/{id}", token = platform.AdminToken)
            ()
    }

[<Fact>]
let ``three workspaces in one process: own ledgers, heartbeats and tokens; arrival named; 3 strikes for one only`` () =
    task {
        use! platform = Platform.StartAsync()
        let! a = platform.CreateWorkspace "Alpha"
        let! b = platform.CreateWorkspace "Beta"
        let! c = platform.CreateWorkspace "Gamma"
        let configs = tempDir "configs"
        let entries = String.Join(",", [ a; b; c ] |> List.map (fun w -> $"{{\"id\":\"{w.Id}\",\"token\":\"{w.Token}\"}}"))
        let env =
            [ "MOLECULE_WORKSPACES", $"[{entries}]"
              "PLATFORM_URL", platform.Url
              "CONFIGS_DIR", configs
              "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.3"
              "MOLECULE_MCP_POLL_INTERVAL_SECS", "0.3" ]
        use p = RawProcess.Start env
        let! _ = p.Initialize()
        for w in [ a; b; c ] do
            let! _ = platform.CanvasMessage(w.Id, $"for {w.Name}")
            ()
        do! waitUntil (secs 15.0) "three messages pushed" p.Describe (fun () -> p.ChannelNotifications.Length >= 3)
        for w in [ a; b; c ] do
            let n = p.ChannelNotifications |> List.find (fun n -> contentOf n = $"for {w.Name}")
            Assert.Equal(w.Id, meta n "arrival_workspace_id")
            Assert.True(File.Exists(Path.Combine(configs, $"inbox-{w.Id}.jsonl")), $"no ledger for {w.Name}")
        // Every workspace is online under its own token.
        let! listed = platform.Send("GET", "/workspaces", token = platform.AdminToken)
        for w in [ a; b; c ] do
            let row = listed.Json.AsArray() |> Seq.find (fun r -> r["id"].GetValue<string>() = w.Id)
            Assert.Equal("online", row["status"].GetValue<string>())
        // A reply without naming the workspace is refused; naming it works.
        let! refused = p.CallTool("send_message_to_user", "{\"message\":\"hi\"}")
        Assert.True(resultIsError refused)
        Assert.Contains("arrival_workspace_id", resultText refused)
        let! sent = p.CallTool("send_message_to_user", $"{{\"message\":\"hi from beta\",\"workspace_id\":\"{b.Id}\"}}")
        Assert.False(resultIsError sent, resultText sent)
        // Beta's token is revoked: its 3 strikes, the others keep working.
        do! revokeAll platform b
        do! waitUntil (secs 15.0) "Beta's 3-strike ERROR" p.Describe (fun () ->
            p.StderrLines |> List.exists (fun l -> l.Contains "ERROR" && l.Contains b.Id && l.Contains "REVOKED"))
        Assert.DoesNotContain(p.StderrLines, fun l -> l.Contains "REVOKED" && (l.Contains a.Id || l.Contains c.Id))
        let! _ = platform.CanvasMessage(c.Id, "still delivered")
        do! waitUntil (secs 15.0) "Gamma still receives" p.Describe (fun () ->
            p.ChannelNotifications |> List.exists (fun n -> contentOf n = "still delivered"))
        assertNoSecrets [ a.Token; b.Token; c.Token ] "stderr" p.StderrLines
        assertNoSecrets [ a.Token; b.Token; c.Token ] "stdout" [ p.StdoutText ]
    }

[<Fact>]
let ``a new token written to MOLECULE_WORKSPACE_TOKEN_FILE is used from the next request on, without a restart`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "rotated"
        let file = Path.Combine(tempDir "tokens", "token")
        File.WriteAllText(file, ws.Token + "\n")
        let env =
            (agentEnv platform ws |> List.filter (fun (k, _) -> k <> "MOLECULE_WORKSPACE_TOKEN"))
            @ [ "MOLECULE_WORKSPACE_TOKEN_FILE", file; "MOLECULE_MCP_VERBOSE", "1" ]
        use p = RawProcess.Start env
        let! _ = p.Initialize()
        let! first = p.CallTool("get_workspace_info", "{}")
        Assert.False(resultIsError first, resultText first)
        // Rotate: mint a new token, write it to the file, revoke the old one.
        let! old = tokenIds platform ws
        let! minted = platform.Send("POST", $"/workspaces/{ws.Id}/tokens", "{}", platform.AdminToken)
        let fresh = minted.Json["auth_token"].GetValue<string>()
        File.WriteAllText(file, fresh + "\n")
        for id in old do
            let! _ = platform.Send("DELETE", $"/workspaces/{ws.Id}/tokens/{id}", token = platform.AdminToken)
            ()
        let! after = p.CallTool("get_workspace_info", "{}")
        Assert.False(resultIsError after, resultText after)
        do! Task.Delay 1500 // several heartbeats under the new token
        Assert.DoesNotContain(p.StderrLines, fun l -> l.Contains "auth failure")
        Assert.Contains(p.StderrLines, fun l -> l.Contains "a new token from")
        assertNoSecrets [ ws.Token; fresh ] "stderr" p.StderrLines
    }

[<Fact>]
let ``MOLECULE_WORKSPACE_TOKEN_FILE problems stop the start with the reference's errors (exit 2)`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "bad file"
        let dir = tempDir "tokens"
        let env path =
            (agentEnv platform ws |> List.filter (fun (k, _) -> k <> "MOLECULE_WORKSPACE_TOKEN")) @ [ "MOLECULE_WORKSPACE_TOKEN_FILE", path ]
        File.WriteAllText(Path.Combine(dir, "empty"), "  \n")
        for path, expected in
            [ Path.Combine(dir, "missing"), "which does not exist"
              Path.Combine(dir, "empty"), "is empty"
              dir, "is a directory" ] do
            use p = RawProcess.Start(env path)
            let! code = p.WaitExit 15.0
            Assert.Equal(2, code)
            Assert.Contains(p.StderrLines, fun l -> l.Contains "MOLECULE_WORKSPACE_TOKEN_FILE" && l.Contains expected)
            Assert.Equal("", p.StdoutText)
    }
