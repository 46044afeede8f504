/// The newest reference's surface (issue 9) end to end: the published binary over stdio against the local platform
/// on 127.0.0.1 — the 15 tools with titles and annotations, the four new tools and their platform routes, envelopes
/// with the sender and the reply call, poll-mode uploads, DELEGATION_* checks, progress and cancellation, and the
/// deleted workspace's JSON. stdout carries only JSON-RPC and no token appears anywhere.
module Molecule.Tests.Host.TeamTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Molecule.Tests.Host.Harness

let private meta (n: JsonNode) (key: string) =
    match n["params"].["meta"].[key] with
    | null -> null
    | v -> v.GetValue<string>()

/// A parent with two children: the agent runs for `a`; `b` is its sibling (a peer).
let private team (platform: Platform) =
    task {
        let! parent = platform.CreateWorkspace "Lead"
        let! a = platform.CreateWorkspace("Alpha", parent = parent)
        let! b = platform.CreateWorkspace("Beta", role = "reviewer", parent = parent)
        return parent, a, b
    }

let private finish (p: RawProcess) (secrets: string list) =
    assertJsonRpcLines (p.Describe()) p.StdoutBytes |> ignore
    assertNoSecrets secrets "stderr" p.StderrLines
    assertNoSecrets secrets "stdout" [ p.StdoutText ]

[<Fact>]
let ``tools/list: the reference's 15 tools in its order, then the requests tools, each with a title and annotations (read tools read-only)`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "lister"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let! r = p.Request("tools/list", JsonObject())
        let tools = r["result"].["tools"].AsArray() |> Seq.map (fun t -> t.AsObject()) |> List.ofSeq
        Assert.Equal<string list>(
            [ "delegate_task"; "delegate_task_async"; "check_task_status"; "list_peers"; "get_workspace_info"
              "get_runtime_identity"; "update_agent_card"; "broadcast_message"; "send_message_to_user"
              "wait_for_message"; "inbox_peek"; "inbox_pop"; "chat_history"; "commit_memory"; "recall_memory"
              "create_request"; "create_approval"; "list_requests"; "get_request"; "respond_to_request"
              "add_request_message"; "cancel_request" ],
            tools |> List.map (fun t -> strOf t "name")
        )
        let reads =
            set [ "check_task_status"; "list_peers"; "get_workspace_info"; "get_runtime_identity"; "wait_for_message"
                  "inbox_peek"; "chat_history"; "recall_memory"; "list_requests"; "get_request" ]
        for t in tools do
            let name = strOf t "name"
            Assert.False(String.IsNullOrWhiteSpace(strOf t "title"), $"{name} has no title")
            let ann = t["annotations"]
            Assert.NotNull ann
            Assert.Equal(reads.Contains name, ann["readOnlyHint"].GetValue<bool>())
            if not (reads.Contains name) then
                Assert.NotNull ann["destructiveHint"]
                Assert.NotNull ann["idempotentHint"]
        let hint (name: string) (key: string) =
            (tools |> List.find (fun t -> strOf t "name" = name)).["annotations"].[key].GetValue<bool>()
        Assert.True(hint "update_agent_card" "destructiveHint")
        Assert.True(hint "delegate_task" "openWorldHint")
        Assert.False(hint "commit_memory" "destructiveHint")
        Assert.True(hint "create_request" "openWorldHint")
        Assert.True(hint "respond_to_request" "idempotentHint")
        finish p [ ws.Token ]
    }

[<Fact>]
let ``the four new tools against the local platform: identity, agent card, broadcast (ability), chat_history`` () =
    task {
        use! platform = Platform.StartAsync()
        let! _, a, b = team platform
        use p = RawProcess.Start(agentEnv platform a @ [ "MODEL", "claude-opus"; "TIER", "3"; "ADAPTER_MODULE", "claude-code" ])
        let! _ = p.Initialize()

        let! identity = p.CallTool("get_runtime_identity", "{}")
        let id = parseJson (resultText identity)
        Assert.Equal("claude-opus", strOf id "model")
        Assert.Equal("3", strOf id "tier")
        Assert.Equal(a.Id, strOf id "workspace_id")
        Assert.Equal("", strOf id "anthropic_base_url")

        let! card = p.CallTool("update_agent_card", "{\"card\":{\"name\":\"Alpha v2\",\"skills\":[{\"name\":\"review\"}]}}")
        Assert.False(resultIsError card, resultText card)
        Assert.Equal("{\n  \"success\": true,\n  \"status\": \"updated\"\n}", resultText card)
        let! stored = platform.Send("GET", $"/workspaces/{a.Id}", token = platform.AdminToken)
        Assert.Contains("Alpha v2", stored.Body)
        let! notCard = p.CallTool("update_agent_card", "{\"card\":\"Alpha\"}")
        Assert.True(resultIsError notCard)
        Assert.Contains("\"error\": \"card must be a JSON object (dict)\"", resultText notCard)

        let! refused = p.CallTool("broadcast_message", "{\"message\":\"standup in 5\"}")
        Assert.True(resultIsError refused)
        Assert.StartsWith("Error: broadcast ability not enabled. This workspace does not have the broadcast ability.", resultText refused)
        let! patched = platform.Send("PATCH", $"/workspaces/{a.Id}/abilities", "{\"broadcast_enabled\":true}", platform.AdminToken)
        Assert.Equal(200, patched.Code)
        let! sent = p.CallTool("broadcast_message", "{\"message\":\"standup in 5\"}")
        Assert.Equal("Broadcast sent to 2 workspace(s)", resultText sent)
        let! got = platform.Activity(b.Id, "broadcast_receive")
        Assert.Contains(got, fun r -> (strOf r "summary").Contains "standup in 5")

        let! _ = platform.PeerMessage(b, a.Id, "first from Beta")
        let! _ = platform.PeerMessage(b, a.Id, "second from Beta")
        let! history = p.CallTool("chat_history", $"{{\"peer_id\":\"{b.Id}\"}}")
        Assert.False(resultIsError history, resultText history)
        let rows = (parseJson (resultText history)).AsArray()
        let texts = rows |> Seq.map (fun r -> r.ToJsonString()) |> List.ofSeq
        let first = texts |> List.findIndex (fun t -> t.Contains "first from Beta")
        let second = texts |> List.findIndex (fun t -> t.Contains "second from Beta")
        Assert.True(first < second, $"not oldest first: {resultText history}")
        let! one = p.CallTool("chat_history", $"{{\"peer_id\":\"{b.Id}\",\"limit\":1}}")
        Assert.Equal(1, (parseJson (resultText one)).AsArray().Count)
        let! badTs = p.CallTool("chat_history", $"{{\"peer_id\":\"{b.Id}\",\"before_ts\":\"yesterday\"}}")
        Assert.Equal("Error: before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)", resultText badTs)
        let! badPeer = p.CallTool("chat_history", "{\"peer_id\":\"beta\"}")
        Assert.Equal("Error: peer_id must be a UUID", resultText badPeer)
        let! none = p.CallTool("chat_history", $"{{\"peer_id\":\"{b.Id}\",\"before_ts\":\"2020-01-01T00:00:00Z\"}}")
        Assert.Equal("[]", resultText none)
        finish p [ a.Token; b.Token ]
    }

[<Fact>]
let ``a peer's message names the sender and the exact reply call; the canvas's has an empty peer_id; self-delegation refused`` () =
    task {
        use! platform = Platform.StartAsync()
        let! _, a, b = team platform
        // Other hosts' markers do not change the method (the reference switched to notifications/message, P23).
        use p = RawProcess.Start(agentEnv platform a @ [ "CURSOR_TRACE_ID", "t1"; "OPENCLAW_SESSION_ID", "s1"; "HERMES_RUNTIME", "1" ])
        let! _ = p.Initialize()
        let! _ = platform.PeerMessage(b, a.Id, "please review PR 12")
        let! _ = platform.CanvasMessage(a.Id, "hello from the canvas")
        do! waitUntil (secs 15.0) "both messages pushed" p.Describe (fun () -> p.ChannelNotifications.Length >= 2)
        let fromPeer = p.ChannelNotifications |> List.find (fun n -> pushedText n["params"] = "please review PR 12")
        Assert.Equal("notifications/claude/channel", strOf fromPeer "method")
        Assert.Equal(
            $"[from Beta (reviewer) · peer_id={b.Id}]\nplease review PR 12\n↩ Reply: delegate_task({{workspace_id: \"{b.Id}\", task: \"...\"}})",
            strOf fromPeer["params"] "content"
        )
        Assert.Equal("peer_agent", meta fromPeer "kind")
        Assert.Equal("Beta", meta fromPeer "peer_name")
        Assert.Equal("reviewer", meta fromPeer "peer_role")
        Assert.EndsWith($"/registry/discover/{b.Id}", meta fromPeer "agent_card_url")
        let fromCanvas = p.ChannelNotifications |> List.find (fun n -> pushedText n["params"] = "hello from the canvas")
        Assert.Equal("", meta fromCanvas "peer_id")
        Assert.StartsWith("[from canvas user]\n", strOf fromCanvas["params"] "content")
        for n in [ fromPeer; fromCanvas ] do
            let m = n["params"].["meta"].AsObject()
            Assert.False(m.ContainsKey "source")
            Assert.All(m, fun kv -> Assert.Equal(Text.Json.JsonValueKind.String, kv.Value.GetValueKind()))
        // The poll path shows the same sender.
        let! peek = p.CallTool("inbox_peek", "{}")
        let peerItem = (parseJson (resultText peek)).AsArray() |> Seq.find (fun m -> strOf m "peer_id" = b.Id)
        Assert.Equal("Beta", strOf peerItem "peer_name")
        // Delegating to this workspace itself, in any letter case, is refused before any request.
        let before = platform.Requests $"/workspaces/{a.Id.ToUpperInvariant()}"
        let! self = p.CallTool("delegate_task", $"{{\"workspace_id\":\"{a.Id.ToUpperInvariant()}\",\"task\":\"x\"}}")
        Assert.True(resultIsError self)
        Assert.StartsWith("Error: cannot delegate_task to your own workspace — ", resultText self)
        Assert.Equal(before, platform.Requests $"/workspaces/{a.Id.ToUpperInvariant()}")
        // talk_to_user turned off by an admin: one clear sentence.
        let! _ = platform.Send("PATCH", $"/workspaces/{a.Id}/abilities", "{\"talk_to_user_enabled\":false}", platform.AdminToken)
        let! gated = p.CallTool("send_message_to_user", "{\"message\":\"done\"}")
        Assert.True(resultIsError gated)
        Assert.StartsWith("Error: this workspace is not allowed to send messages directly to the user (talk_to_user is disabled). ", resultText gated)
        finish p [ a.Token; b.Token ]
    }

[<Fact>]
let ``a file the canvas uploads to a poll-mode workspace is downloaded into the state dir, acknowledged and announced with its path`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "uploads"
        let env = agentEnv platform ws
        let configs = env |> List.find (fun (k, _) -> k = "CONFIGS_DIR") |> snd
        use p = RawProcess.Start env
        let! _ = p.Initialize()
        do! waitUntil (secs 15.0) "registered" p.Describe (fun () -> platform.Requests "/registry/register" >= 1)
        use http = new HttpClient(BaseAddress = Uri platform.Url)
        use form = new MultipartFormDataContent()
        let bytes = Encoding.UTF8.GetBytes "quarterly numbers\n"
        let file = new ByteArrayContent(bytes)
        file.Headers.ContentType <- Headers.MediaTypeHeaderValue "text/plain"
        form.Add(file, "files", "report.txt")
        use req = new HttpRequestMessage(HttpMethod.Post, $"/workspaces/{ws.Id}/chat/uploads", Content = form)
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", platform.AdminToken)
        use! resp = http.SendAsync req
        let! body = resp.Content.ReadAsStringAsync()
        Assert.True(resp.IsSuccessStatusCode, body)
        let files = (parseJson body).["files"].AsArray()
        let uri = strOf files[0] "uri"
        Assert.StartsWith($"platform-pending:{ws.Id}/", uri)
        let fileId = uri.Substring(uri.LastIndexOf '/' + 1)
        let! waited = p.CallTool("wait_for_message", "{\"timeout_secs\":20}", 40.0)
        let message = parseJson (resultText waited)
        let text = strOf message "text"
        let expected = Path.Combine(configs, "uploads", ws.Id)
        Assert.Contains(expected, text)
        Assert.Equal("canvas_user", strOf message "kind")
        let path = text.Split('\n') |> Array.find (fun l -> l.StartsWith "- ") |> fun l -> l.Substring(2, l.IndexOf(" (") - 2)
        Assert.Equal("quarterly numbers\n", File.ReadAllText path)
        // Acknowledged: the platform no longer holds it.
        do! waitUntil (secs 10.0) "the upload acknowledged" p.Describe (fun () -> platform.Requests $"/workspaces/{ws.Id}/pending-uploads/{fileId}/ack" >= 1)
        let! gone = platform.Send("GET", $"/workspaces/{ws.Id}/pending-uploads/{fileId}/content", token = ws.Token)
        Assert.Equal(404, gone.Code)
        finish p [ ws.Token ]
    }

[<Fact>]
let ``bad DELEGATION_TIMEOUT or DELEGATION_SYNC_VIA_INBOX stop the start with exit 2 and one clear line`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "delegation env"
        for key, value in [ "DELEGATION_TIMEOUT", "abc"; "DELEGATION_TIMEOUT", "-5"; "DELEGATION_SYNC_VIA_INBOX", "maybe" ] do
            use p = RawProcess.Start(agentEnv platform ws @ [ key, value ])
            let! code = p.WaitExit 15.0
            Assert.Equal(2, code)
            Assert.Contains(p.StderrLines, fun l -> l.Contains key)
            Assert.DoesNotContain(p.StderrLines, fun l -> l.Contains "   at ")
            Assert.Equal("", p.StdoutText)
        Assert.Equal(0, platform.Requests "/registry/register")
    }

[<Fact>]
let ``DELEGATION_SYNC_VIA_INBOX=1: delegate_task goes through POST /delegate and ends within DELEGATION_TIMEOUT`` () =
    task {
        use! platform = Platform.StartAsync()
        let! _, a, b = team platform
        use p = RawProcess.Start(agentEnv platform a @ [ "DELEGATION_SYNC_VIA_INBOX", "1"; "DELEGATION_TIMEOUT", "4" ])
        let! _ = p.Initialize()
        let started = DateTime.UtcNow
        let! r = p.CallTool("delegate_task", $"{{\"workspace_id\":\"{b.Id}\",\"task\":\"summarise the logs\"}}", 30.0)
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds 20.0)
        Assert.True(platform.Requests $"/workspaces/{a.Id}/delegate" >= 1, p.Describe())
        Assert.Equal(0, platform.Requests $"/workspaces/{b.Id}/a2a")
        Assert.False(String.IsNullOrWhiteSpace(resultText r))
        finish p [ a.Token; b.Token ]
    }

[<Fact>]
let ``progress every few seconds while wait_for_message waits; a cancelled wait stops at once and takes nothing`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "patient"
        use p = RawProcess.Start(agentEnv platform ws @ [ "MOLECULE_MCP_VERBOSE", "1" ])
        let! _ = p.Initialize()
        let id = p.NextId()
        p.Send(
            $"{{\"jsonrpc\":\"2.0\",\"id\":{inv id},\"method\":\"tools/call\",\"params\":{{\"name\":\"wait_for_message\",\"arguments\":{{\"timeout_secs\":7}},\"_meta\":{{\"progressToken\":\"wait-1\"}}}}}}"
        )
        let! answer = p.WaitResponse(JsonValue.Create id, 20.0)
        Assert.False(resultIsError answer, resultText answer)
        let progress =
            p.Messages
            |> List.filter (fun m -> strOf m "method" = "notifications/progress" && strOf m["params"] "progressToken" = "wait-1")
        Assert.True(progress.Length >= 1, p.Describe())
        let values = progress |> List.map (fun m -> m["params"].["progress"].GetValue<float>())
        Assert.Equal<float list>(List.sort values, values)
        // Cancelled: no answer is needed, the wait ends, and a message arriving afterwards stays in the inbox.
        let cancelled = p.NextId()
        p.Send(
            $"{{\"jsonrpc\":\"2.0\",\"id\":{inv cancelled},\"method\":\"tools/call\",\"params\":{{\"name\":\"wait_for_message\",\"arguments\":{{\"timeout_secs\":120}}}}}}"
        )
        do! Task.Delay 500
        p.Send($"{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{{\"requestId\":{inv cancelled},\"reason\":\"user\"}}}}")
        do! waitUntil (secs 5.0) "the wait cancelled" p.Describe (fun () ->
            p.StderrLines |> List.exists (fun l -> l.Contains "wait_for_message cancelled by the client"))
        let! _ = platform.CanvasMessage(ws.Id, "after the cancel")
        do! waitUntil (secs 15.0) "the message pushed" p.Describe (fun () ->
            p.ChannelNotifications |> List.exists (fun n -> pushedText n["params"] = "after the cancel"))
        let! peek = p.CallTool("inbox_peek", "{}", 5.0)
        Assert.Contains("after the cancel", resultText peek)
        let answered =
            p.Messages |> List.exists (fun m -> not (isNull m["id"]) && m["id"].ToJsonString() = inv cancelled && not (isNull m["result"]))
        Assert.False(answered, $"the cancelled call was answered with a result\n{p.Describe()}")
        finish p [ ws.Token ]
    }

[<Fact>]
let ``get_workspace_info on a deleted workspace: the documented sentence, then the reference's JSON keys`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "doomed"
        use p = RawProcess.Start(agentEnv platform ws)
        let! _ = p.Initialize()
        let! _ = platform.DeleteWorkspace ws.Id
        let! r = p.CallTool("get_workspace_info", "{}")
        Assert.True(resultIsError r)
        let text = resultText r
        Assert.StartsWith($"Workspace {ws.Id} was deleted on the platform", text)
        let json = parseJson (text.Substring(text.IndexOf '\n' + 1))
        Assert.Equal<string list>([ "error"; "id"; "removed_at"; "hint" ], json.AsObject() |> Seq.map (fun kv -> kv.Key) |> List.ofSeq)
        Assert.Equal(ws.Id, strOf json "id")
        finish p [ ws.Token ]
    }
