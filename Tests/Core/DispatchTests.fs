module Molecule.Tests.Core.DispatchTests

open Molecule.Protocol

open System
open System.Text.Json
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Tests.Core.ApiTests

// ---------------------------------------------------------------------------------------------
// A tiny pure interpreter for Step programs against a scripted fake
// ---------------------------------------------------------------------------------------------

type Fake =
    { Http: Request -> Response
      Files: string list -> FileCheck list }

type Run =
    { Output: ToolOutput
      Observations: Observation list
      Requests: Request list
      FileChecks: string list list }

let interpret (fake: Fake) (program: Program<ToolOutput>) : Run =
    let requests = ResizeArray()
    let fileChecks = ResizeArray()
    let mutable clock = 0.0

    let rec go (n: int) (program: Program<ToolOutput>) =
        if n > 100 then
            failwith "program did not finish within 100 steps"

        match program with
        | Done(o, obs) -> o, obs
        | Call(r, k) ->
            requests.Add r
            go (n + 1) (k (fake.Http r))
        | CheckFiles(paths, k) ->
            fileChecks.Add paths
            go (n + 1) (k (fake.Files paths))
        // a pause is over at once; the clock advances by it (uptime starts at 0)
        | Pause(seconds, k) ->
            clock <- clock + seconds
            go (n + 1) (k clock)

    let o, obs = go 0 program

    { Output = o
      Observations = obs
      Requests = List.ofSeq requests
      FileChecks = List.ofSeq fileChecks }

/// The program of a platform tool (the inbox tools have none: the agent serves them).
let programOf (c: ToolContext) (call: ToolCall) : Program<ToolOutput> =
    match Dispatch.run c call with
    | Some p -> p
    | None -> failwith "not a platform tool"

let nonce = "00000000-0000-4000-8000-000000000001"

/// The workspace a UUID text names (tests build calls from known-good ids).
let wsOf (text: string) : WorkspaceId = (WorkspaceId.tryParse text).Value

/// The peer a text names.
let peerOf (text: string) : PeerId = (PeerId.tryParse text).Value

let ctx: ToolContext =
    { Config = cfg
      Removed = None
      PeerNames = Map.empty
      Nonce = nonce
      Via = false
      Degraded = None
      Served = [ cfg.WorkspaceId ] }

/// The path of a request (URL without base and query).
let pathOf (r: Request) =
    let tail = r.Url.Substring(cfg.PlatformUrl.Length)
    match tail.IndexOf '?' with
    | -1 -> tail
    | i -> tail.Substring(0, i)

let reply status (body: string) = Reply(status, body)

let allFilesOk (paths: string list) = paths |> List.map (fun _ -> FileOk 10L)

let withHttp (f: HttpMethod -> string -> Request -> Response) =
    { Http = (fun r -> f r.Method (pathOf r) r)
      Files = allFilesOk }

let own = $"/workspaces/{ownId}"

/// A platform that answers every request successfully.
let happy (m: HttpMethod) (path: string) (r: Request) : Response =
    match m, path with
    | Get, p when p = own -> reply 200 $"{{\"id\":\"{ownId}\",\"name\":\"me\",\"tier\":1}}"
    | Get, p when p = $"/registry/{ownId}/peers" ->
        reply 200 $"[{{\"id\":\"{peerId}\",\"name\":\"Bob\",\"status\":\"online\",\"role\":\"writer\",\"agent_card\":null}}]"
    | Get, p when p.StartsWith "/registry/discover/" -> reply 200 $"{{\"id\":\"{peerId}\",\"name\":\"Bob\",\"url\":\"\"}}"
    | Post, p when p = own + "/activity" -> reply 200 "{\"status\":\"logged\"}"
    | Post, p when p.EndsWith "/a2a" -> reply 200 "{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":{\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}"
    | Post, p when p = own + "/delegate" -> reply 202 "{\"delegation_id\":\"d-1\",\"status\":\"delegated\"}"
    | Get, p when p = own + "/delegations" -> reply 200 "[]"
    | Post, p when p = own + "/chat/uploads" ->
        let n =
            match r.Body with
            | Multipart fs -> fs.Length
            | _ -> 0

        let entries = String.Join(",", List.init n (fun i -> $"{{\"uri\":\"workspace:/f{i}\",\"name\":\"f{i}\"}}"))
        reply 200 $"{{\"files\":[{entries}]}}"
    | Post, p when p = own + "/notify" -> reply 200 "{\"status\":\"sent\"}"
    | Post, p when p = own + "/memories" -> reply 201 "{\"id\":\"m-1\",\"scope\":\"LOCAL\",\"namespace\":\"general\"}"
    | Get, p when p = own + "/memories" -> reply 200 "[]"
    | Post, "/registry/update-card" -> reply 200 "{\"status\":\"updated\"}"
    | Post, p when p = own + "/broadcast" -> reply 200 "{\"status\":\"sent\",\"delivered\":2}"
    | Get, p when p = own + "/activity" -> reply 200 "[]"
    | _ -> reply 404 "{\"error\":\"no such route\"}"

let runWith (f: HttpMethod -> string -> Request -> Response) (c: ToolContext) (call: ToolCall) = interpret (withHttp f) (programOf c call)

/// `happy`, except for requests whose path ends with `suffix` (and method matches).
let except (m: HttpMethod) (suffix: string) (resp: Response) =
    fun m' (p: string) r -> if m' = m && p.EndsWith suffix then resp else happy m' p r

let paths (run: Run) = run.Requests |> List.map pathOf

let isSuccess (run: Run) = not run.Output.IsError
let isError (run: Run) = run.Output.IsError

// ---------------------------------------------------------------------------------------------
// get_workspace_info
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``get_workspace_info pretty-prints the workspace`` () =
    let run = runWith happy ctx GetWorkspaceInfo
    Assert.True(isSuccess run)
    Assert.Equal(Json.indented (Json.tryParse $"{{\"id\":\"{ownId}\",\"name\":\"me\",\"tier\":1}}").Value, run.Output.Text)
    Assert.Contains("\n  \"name\": \"me\"", run.Output.Text)

[<Fact>]
let ``get_workspace_info 404 says the workspace is not found`` () =
    let run = runWith (except Get own (reply 404 "{\"error\":\"workspace not found\"}")) ctx GetWorkspaceInfo
    Assert.True(isError run)
    Assert.Equal($"Error: workspace {ownId} not found on the platform", run.Output.Text)

[<Fact>]
let ``get_workspace_info 410 gives the tailored removed message`` () =
    let body = $"{{\"error\":\"workspace removed\",\"id\":\"{ownId}\",\"hint\":\"Regenerate\",\"removed_at\":\"2026-01-02T03:04:05Z\"}}"
    let run = runWith (except Get own (reply 410 body)) ctx GetWorkspaceInfo
    let info = ({ Id = ownId; RemovedAt = Some "2026-01-02T03:04:05Z"; Hint = "Regenerate" }: Removed.Info)
    Assert.True(isError run)
    // the documented sentence, then the reference's JSON keys on the next lines (addendum §2.5, brief item 6)
    let sentence, json =
        match run.Output.Text.IndexOf '\n' with
        | -1 -> run.Output.Text, ""
        | i -> run.Output.Text.Substring(0, i), run.Output.Text.Substring(i + 1)
    Assert.Equal(Removed.text info, sentence)
    Assert.StartsWith($"Workspace {ownId} was deleted on the platform", sentence)
    let facts = (Json.tryParse json).Value
    Assert.Equal(Some "removed", Json.stringProp "error" facts)
    Assert.Equal(Some ownId, Json.stringProp "id" facts)
    Assert.Equal(Some "2026-01-02T03:04:05Z", Json.stringProp "removed_at" facts)
    Assert.Equal(Some "Regenerate", Json.stringProp "hint" facts)
    Assert.Equal<Observation list>([ WorkspaceRemoved info ], run.Observations)

[<Fact>]
let ``example: get_workspace_info still asks while the token is rejected: 410 says deleted, 401 the degraded line`` () =
    let degraded = { ctx with Degraded = Some "Error: the platform rejects the token of this workspace." }
    let gone = runWith (except Get own (reply 410 $"{{\"error\":\"workspace removed\",\"id\":\"{ownId}\"}}")) degraded GetWorkspaceInfo
    Assert.Equal(1, gone.Requests.Length)
    Assert.StartsWith($"Workspace {ownId} was deleted on the platform", gone.Output.Text)
    let rejected = runWith (except Get own (reply 401 "{\"error\":\"invalid workspace auth token\"}")) degraded GetWorkspaceInfo
    Assert.True(isError rejected)
    Assert.Equal("Error: the platform rejects the token of this workspace.", rejected.Output.Text)
    // every other platform tool answers the degraded line without a request
    let peers = runWith happy degraded ListPeers
    Assert.Empty(peers.Requests)

[<Fact>]
let ``get_workspace_info of a workspace known to be deleted answers the same without a request`` () =
    let info = ({ Id = ownId; RemovedAt = None; Hint = Removed.defaultHint }: Removed.Info)
    let run = runWith happy { ctx with Removed = Some info } GetWorkspaceInfo
    Assert.Empty(run.Requests)
    Assert.True(isError run)
    Assert.Equal(
        Removed.text info + "\n{\n  \"error\": \"removed\",\n  \"id\": \"" + ownId + "\",\n  \"removed_at\": null,\n  \"hint\": \"" + Removed.defaultHint + "\"\n}",
        run.Output.Text
    )

// ---------------------------------------------------------------------------------------------
// list_peers
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``list_peers shows one line per peer without None roles and with skills`` () =
    let body =
        "[{\"id\":\"p1\",\"name\":\"Alice\",\"status\":\"online\",\"role\":null,\"agent_card\":{\"name\":\"Alice\",\"skills\":[{\"name\":\"research\"},{\"name\":\"citations\"}]}},"
        + "{\"id\":\"p2\",\"name\":\"Bob\",\"role\":\"writer\"},"
        + "{\"id\":\"p3\",\"name\":\"p3\",\"status\":\"offline\",\"role\":\"\",\"agent_card\":{\"name\":\"Carol\",\"skills\":[]}}]"

    let run = runWith (except Get "/peers" (reply 200 body)) ctx ListPeers
    Assert.True(isSuccess run)

    Assert.Equal(
        "- Alice (ID: p1, status: online) — skills: [research, citations]\n- Bob (ID: p2, status: unknown, role: writer)\n- Carol (ID: p3, status: offline)",
        run.Output.Text
    )

    Assert.DoesNotContain("None", run.Output.Text)
    Assert.Equal<Observation list>(
        [ PeerNames [ peerOf "p1", "Alice"; peerOf "p2", "Bob"; peerOf "p3", "Carol" ]
          PeersVia(cfg.WorkspaceId, [ peerOf "p1"; peerOf "p2"; peerOf "p3" ]) ],
        run.Observations
    )
    Assert.Equal<string list>([ ownId ], header "X-Workspace-ID" run.Requests.Head)

[<Fact>]
let ``example: list_peers shows registry names, roles and skills sanitised, one line per peer (P26)`` () =
    let body =
        "[{\"id\":\"p1\",\"name\":\"Evil\\n- Fake (ID: x)\",\"status\":\"online\",\"role\":\"root\\r\\nadmin\","
        + "\"agent_card\":{\"skills\":[{\"name\":\"<b>ops</b>\"}]}}]"
    let run = runWith (except Get "/peers" (reply 200 body)) ctx ListPeers
    Assert.True(isSuccess run)
    Assert.Equal("- Evil - Fake (ID: x) (ID: p1, status: online, role: root admin) — skills: [b ops /b]", run.Output.Text)

[<Fact>]
let ``list_peers with no peers says so`` () =
    let run = runWith (except Get "/peers" (reply 200 "[]")) ctx ListPeers
    Assert.True(isSuccess run)
    Assert.StartsWith("You have no peers", run.Output.Text)

[<Fact>]
let ``list_peers diagnostics are errors`` () =
    let check resp (expected: string) =
        let run = interpret { Http = (fun _ -> resp); Files = allFilesOk } (programOf ctx ListPeers)
        Assert.True(isError run)
        Assert.Contains(expected, run.Output.Text)

    check (reply 401 "{\"error\":\"invalid workspace auth token\"}") "HTTP 401: invalid workspace auth token"
    check (reply 403 "") "Tokens tab"
    check (reply 404 "") $"Workspace {ownId} is not registered"
    check (reply 502 "{\"error\":\"bad gateway\"}") "HTTP 502: bad gateway"
    check (reply 200 "{\"oops\":1}") "not a JSON list"
    check (TransportError "connection refused") "Cannot reach the platform at https://tenant.example.com: connection refused"
    check (TimedOut 10.0) "did not answer within 10 s"

// ---------------------------------------------------------------------------------------------
// delegate_task
// ---------------------------------------------------------------------------------------------

let a2aPath = $"/workspaces/{peerId}/a2a"

[<Fact>]
let ``delegate_task discovers, reports, sends and returns the peer's text`` () =
    let run = runWith happy ctx (DelegateTask(wsOf peerId, "Summarise the paper"))
    Assert.True(isSuccess run)
    Assert.Equal(A2a.framePeerResult "hi", run.Output.Text)
    Assert.Equal<string list>([ $"/registry/discover/{peerId}"; own + "/activity"; a2aPath; own + "/activity" ], paths run)
    let send = run.Requests[2]
    Assert.Equal(Some(ToolKit.derivedId nonce "rpc"), str [ "id" ] send)
    Assert.Equal(Some nonce, str [ "params"; "message"; "messageId" ] send)
    Assert.Equal(Some "Summarise the paper", bodyJson send |> Option.bind (Json.path [ "params"; "message"; "parts" ]) |> Option.bind Json.asArray |> Option.bind List.tryHead |> Option.bind (Json.stringProp "text"))
    Assert.Equal(Some "Delegating to Bob", str [ "summary" ] run.Requests[1])
    Assert.Equal(Some "a2a_send", str [ "activity_type" ] run.Requests[1])
    Assert.Equal(Some "Summarise the paper", str [ "request_body"; "task" ] run.Requests[1])
    Assert.Equal(Some "Bob responded (2 chars)", str [ "summary" ] run.Requests[3])
    Assert.Equal(Some "a2a_receive", str [ "activity_type" ] run.Requests[3])
    Assert.Equal<Observation list>([ PeerNames [ peerOf peerId, "Bob" ] ], run.Observations)

[<Fact>]
let ``delegate_task joins every text part and reads Task-shaped results`` () =
    let msg = "{\"result\":{\"parts\":[{\"kind\":\"text\",\"text\":\"one\"},{\"kind\":\"file\",\"file\":{}},{\"type\":\"text\",\"text\":\"two\"}]}}"
    let run = runWith (except Post "/a2a" (reply 200 msg)) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.Equal(A2a.framePeerResult "one\ntwo", run.Output.Text)

    let task =
        "{\"result\":{\"kind\":\"task\",\"artifacts\":[{\"parts\":[{\"kind\":\"text\",\"text\":\"a1\"}]},{\"parts\":[{\"kind\":\"text\",\"text\":\"a2\"}]}],\"status\":{\"state\":\"completed\",\"message\":{\"parts\":[{\"kind\":\"text\",\"text\":\"done\"}]}}}}"

    let run2 = runWith (except Post "/a2a" (reply 200 task)) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isSuccess run2)
    Assert.Equal(A2a.framePeerResult "a1\na2\ndone", run2.Output.Text)

[<Fact>]
let ``delegate_task to a poll-mode peer is a queued success`` () =
    let run = runWith (except Post "/a2a" (reply 200 "{\"status\":\"queued\",\"delivery_mode\":\"poll\",\"method\":\"message/send\"}")) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isSuccess run)

    Assert.Equal(
        "Task delivered to Bob (poll-mode peer; queued, method=message/send). Its reply will arrive in your inbox as a peer_agent message — use wait_for_message / inbox_peek.",
        run.Output.Text
    )

[<Fact>]
let ``delegate_task surfaces the proxy's access denied message`` () =
    let run =
        runWith (except Post "/a2a" (reply 403 "{\"error\":\"access denied: workspaces cannot communicate per hierarchy rules\"}")) ctx (DelegateTask(wsOf peerId, "t"))

    Assert.True(isError run)
    Assert.StartsWith("DELEGATION FAILED to Bob: platform answered HTTP 403: access denied: workspaces cannot communicate per hierarchy rules\n", run.Output.Text)
    Assert.Contains("Bob is unavailable", run.Output.Text)
    Assert.Equal(Some "error", str [ "status" ] (List.last run.Requests))
    Assert.StartsWith("Bob failed: platform answered HTTP 403", (str [ "summary" ] (List.last run.Requests)).Value)

[<Fact>]
let ``delegate_task reports JSON-RPC errors and agent errors as failures`` () =
    let rpc = runWith (except Post "/a2a" (reply 200 "{\"error\":{\"code\":-32000,\"message\":\"boom\"}}")) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isError rpc)
    Assert.StartsWith("DELEGATION FAILED to Bob: boom (code=-32000)", rpc.Output.Text)
    let agent = runWith (except Post "/a2a" (reply 200 "{\"result\":{\"parts\":[{\"kind\":\"text\",\"text\":\"Agent error: out of tokens\"}]}}")) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isError agent)
    Assert.StartsWith("DELEGATION FAILED to Bob: Agent error: out of tokens", agent.Output.Text)

[<Fact>]
let ``delegate_task timeout is a failure that is not re-sent`` () =
    let run = runWith (except Post "/a2a" (TimedOut 300.0)) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isError run)
    Assert.Contains("did not answer within 300 s", run.Output.Text)
    Assert.Contains("may still be running", run.Output.Text)
    Assert.Equal(1, paths run |> List.filter ((=) a2aPath) |> List.length)

[<Fact>]
let ``delegate_task discover failures name the peer and send nothing`` () =
    let check resp (expected: string) =
        let run = runWith (except Get $"/registry/discover/{peerId}" resp) ctx (DelegateTask(wsOf peerId, "t"))
        Assert.True(isError run)
        Assert.Contains(expected, run.Output.Text)
        Assert.Contains(peerId, run.Output.Text)
        Assert.Equal(1, run.Requests.Length)

    check (reply 404 "") "was not found"
    check (reply 403 "{\"error\":\"not authorized to discover this workspace\"}") "not authorized to discover this workspace"

[<Fact>]
let ``rule: a peer that is not connected right now still gets the task when the platform queues it`` () =
    // discover answers 503 (e.g. a poll-mode peer whose agent has not connected yet): the send is still tried.
    let unavailable = reply 503 "{\"error\":\"workspace not available\",\"status\":\"awaiting_agent\"}"
    let queued = reply 200 "{\"status\":\"queued\",\"delivery_mode\":\"poll\",\"method\":\"message/send\"}"

    let platformWith (a2a: Response) m (p: string) r =
        if m = Get && p.EndsWith $"/registry/discover/{peerId}" then unavailable
        elif m = Post && p.EndsWith "/a2a" then a2a
        else happy m p r

    let delivered = runWith (platformWith queued) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isSuccess delivered, delivered.Output.Text)
    Assert.Contains("currently awaiting_agent", delivered.Output.Text)
    Assert.Contains("inbox", delivered.Output.Text)
    Assert.Equal(1, paths delivered |> List.filter (fun p -> p.EndsWith "/a2a") |> List.length)

    let refused = runWith (platformWith (reply 503 "{\"error\":\"workspace agent unreachable\"}")) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isError refused)
    Assert.Contains("not available right now (status: awaiting_agent)", refused.Output.Text)
    Assert.Contains("workspace agent unreachable", refused.Output.Text)

[<Fact>]
let ``delegate_task display name falls back to the cached name then to the id prefix`` () =
    let noName = except Get $"/registry/discover/{peerId}" (reply 200 $"{{\"id\":\"{peerId}\",\"url\":\"\"}}")
    let cached = runWith noName { ctx with PeerNames = Map [ peerId, "Cached Bob" ] } (DelegateTask(wsOf peerId, "t"))
    Assert.Equal(Some "Delegating to Cached Bob", str [ "summary" ] cached.Requests[1])
    let fallback = runWith noName ctx (DelegateTask(wsOf peerId, "t"))
    Assert.Equal(Some "Delegating to aaaaaaaa", str [ "summary" ] fallback.Requests[1])

[<Fact>]
let ``delegate_task rejects a non-UUID target without any request`` () =
    // The type of a delegation's target admits only workspace ids: the agent refuses the call as it arrives.
    for tool in [ "delegate_task"; "delegate_task_async" ] do
        let parsed = Tools.parse tool (Some(Json.obj [ "workspace_id", Json.str "not-a-uuid"; "task", Json.str "t" ]))
        let _, effects = Agent.update (Agent.ToolCalled(1L, nonce, parsed)) (Agent.init cfg (Sim.boot []))
        Assert.Equal<Effect list>(
            [ Answer(1L, { Text = "Error: workspace_id must be a workspace UUID (from list_peers)"; IsError = true }, None) ],
            effects
        )

// ---------------------------------------------------------------------------------------------
// delegate_task_async / check_task_status
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``delegate_task_async returns the delegation id`` () =
    let run = runWith happy ctx (DelegateTaskAsync(wsOf peerId, "t"))
    Assert.True(isSuccess run)
    let out = Json.tryParse run.Output.Text
    Assert.Equal(Some "d-1", out |> Option.bind (Json.stringProp "delegation_id"))
    Assert.Equal(Some peerId, out |> Option.bind (Json.stringProp "workspace_id"))
    Assert.Equal(Some "delegated", out |> Option.bind (Json.stringProp "status"))
    let key = (str [ "idempotency_key" ] run.Requests.Head).Value
    Assert.Equal(32, key.Length)
    Assert.True(key |> Seq.forall (fun c -> Char.IsDigit c || (c >= 'a' && c <= 'f')))

[<Fact>]
let ``delegate_task_async failure surfaces the platform message`` () =
    let run = runWith (except Post "/delegate" (reply 400 "{\"error\":\"self-delegation not permitted\"}")) ctx (DelegateTaskAsync(wsOf peerId, "t"))
    Assert.True(isError run)
    Assert.Equal($"Error: delegation to {peerId} failed: platform answered HTTP 400: self-delegation not permitted", run.Output.Text)

let delegationsBody =
    "[{\"id\":\"r2\",\"type\":\"delegate_result\",\"delegation_id\":\"d-1\",\"target_id\":\"p\",\"status\":\"completed\",\"summary\":\"s\",\"created_at\":\"2026-01-01T00:00:02Z\",\"response_preview\":\"{\\\"status\\\":\\\"queued\\\",\\\"delivery_mode\\\":\\\"poll\\\",\\\"method\\\":\\\"message/send\\\"}\"},"
    + "{\"id\":\"r1\",\"type\":\"delegate\",\"delegation_id\":\"d-1\",\"target_id\":\"p\",\"status\":\"pending\",\"summary\":\"s\",\"created_at\":\"2026-01-01T00:00:01Z\"},"
    + "{\"id\":\"r0\",\"type\":\"delegate_result\",\"delegation_id\":\"d-0\",\"target_id\":\"q\",\"status\":\"completed\",\"summary\":\"s0\",\"created_at\":\"2026-01-01T00:00:00Z\",\"response_preview\":\"the answer\"}]"

[<Fact>]
let ``check_task_status finds the newest entry and reports poll-mode envelopes as queued`` () =
    let run = runWith (except Get "/delegations" (reply 200 delegationsBody)) ctx (CheckTaskStatus(Some "d-1"))
    Assert.True(isSuccess run)
    let out = Json.tryParse run.Output.Text
    Assert.Equal(Some "r2", out |> Option.bind (Json.stringProp "id"))
    Assert.Equal(Some "queued", out |> Option.bind (Json.stringProp "status"))
    Assert.Contains("inbox", (out |> Option.bind (Json.stringProp "note")).Value)
    let done0 = runWith (except Get "/delegations" (reply 200 delegationsBody)) ctx (CheckTaskStatus(Some "d-0"))
    Assert.Equal(Some "completed", Json.tryParse done0.Output.Text |> Option.bind (Json.stringProp "status"))

[<Fact>]
let ``check_task_status unknown id is not_found and no id lists a summary`` () =
    let missing = runWith (except Get "/delegations" (reply 200 delegationsBody)) ctx (CheckTaskStatus(Some "zzz"))
    Assert.Equal("{\"status\":\"not_found\",\"delegation_id\":\"zzz\"}", missing.Output.Text)
    let all = runWith (except Get "/delegations" (reply 200 delegationsBody)) ctx (CheckTaskStatus(None))
    let out = (Json.tryParse all.Output.Text).Value
    Assert.Equal(Some "3", Json.prop "count" out |> Option.bind Json.asScalarText)
    let items = (Json.prop "delegations" out |> Option.bind Json.asArray).Value
    Assert.Equal<string list>([ "queued"; "pending"; "completed" ], items |> List.choose (Json.stringProp "status"))
    Assert.Equal(Some "", Json.stringProp "response_preview" items[1])
    let failed = runWith (except Get "/delegations" (reply 500 "{\"error\":\"db down\"}")) ctx (CheckTaskStatus(None))
    Assert.True(isError failed)
    Assert.Contains("HTTP 500: db down", failed.Output.Text)

// ---------------------------------------------------------------------------------------------
// send_message_to_user
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``send_message_to_user without attachments notifies`` () =
    let run = runWith happy ctx (SendMessageToUser("Working on it", []))
    Assert.Equal("Message sent to user", run.Output.Text)
    Assert.Equal<string list>([ own + "/notify" ], paths run)
    Assert.Equal(Some "Working on it", str [ "message" ] run.Requests.Head)

[<Fact>]
let ``send_message_to_user uploads then notifies with the entries`` () =
    let run = runWith happy ctx (SendMessageToUser("Report", [ "/tmp/a.png"; ""; "C:\\docs\\b.pdf" ]))
    Assert.Equal("Message sent to user with 2 attachment(s)", run.Output.Text)
    Assert.Equal<string list list>([ [ "/tmp/a.png"; "C:\\docs\\b.pdf" ] ], run.FileChecks)
    Assert.Equal<string list>([ own + "/chat/uploads"; own + "/notify" ], paths run)

    Assert.Equal(
        Multipart
            [ { Path = "/tmp/a.png"; FileName = "a.png"; ContentType = "image/png" }
              { Path = "C:\\docs\\b.pdf"; FileName = "b.pdf"; ContentType = "application/pdf" } ],
        run.Requests.Head.Body
    )

    let atts = bodyJson run.Requests[1] |> Option.bind (Json.prop "attachments") |> Option.bind Json.asArray
    Assert.Equal<string list>([ "workspace:/f0"; "workspace:/f1" ], atts.Value |> List.choose (Json.stringProp "uri"))

[<Fact>]
let ``send_message_to_user attachment problems send nothing`` () =
    let files checks =
        { withHttp happy with Files = fun _ -> checks }

    let missing = interpret (files [ FileOk 1L; FileMissing ]) (programOf ctx (SendMessageToUser("m", [ "/a"; "/b" ])))
    Assert.True(isError missing)
    Assert.StartsWith("Error: attachment not found: /b", missing.Output.Text)
    Assert.Empty(missing.Requests)
    let big = interpret (files [ FileOk(26L * 1024L * 1024L) ]) (programOf ctx (SendMessageToUser("m", [ "/a" ])))
    Assert.True(isError big)
    Assert.Contains("25 MB", big.Output.Text)
    Assert.Empty(big.Requests)
    let unreadable = interpret (files [ FileUnreadable "permission denied" ]) (programOf ctx (SendMessageToUser("m", [ "/a" ])))
    Assert.Contains("permission denied", unreadable.Output.Text)
    Assert.Empty(unreadable.Requests)

[<Fact>]
let ``send_message_to_user upload failure does not notify`` () =
    let run = runWith (except Post "/chat/uploads" (reply 503 "{\"error\":\"workspace url not registered yet\"}")) ctx (SendMessageToUser("m", [ "/a.txt" ]))
    Assert.True(isError run)
    Assert.StartsWith("Error: chat/uploads returned 503: workspace url not registered yet", run.Output.Text)
    Assert.Equal<string list>([ own + "/chat/uploads" ], paths run)
    let short = runWith (except Post "/chat/uploads" (reply 200 "{\"files\":[]}")) ctx (SendMessageToUser("m", [ "/a.txt" ]))
    Assert.True(isError short)
    Assert.Equal(1, short.Requests.Length)

// ---------------------------------------------------------------------------------------------
// Memories
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``commit_memory returns success JSON and leaves the GLOBAL decision to the platform`` () =
    let run = runWith happy { ctx with Config = { cfg with Tier = 3 } } (CommitMemory("The deploy key lives in vault", Global))
    Assert.True(isSuccess run)
    Assert.Equal("{\"success\":true,\"id\":\"m-1\",\"scope\":\"LOCAL\"}", run.Output.Text)
    Assert.Equal(Some "GLOBAL", str [ "scope" ] run.Requests.Head)
    let denied = runWith (except Post "/memories" (reply 403 "{\"error\":\"only root workspaces can write GLOBAL memories\"}")) ctx (CommitMemory("x", Global))
    Assert.True(isError denied)
    Assert.Equal("Error: platform answered HTTP 403: only root workspaces can write GLOBAL memories", denied.Output.Text)

[<Fact>]
let ``commit_memory redacts the reference secret shapes`` () =
    let secret = "sk-" + String('a', 24)
    let run = runWith happy ctx (CommitMemory($"use {secret} and api_key = {String('Q', 44)} for AKIA{String('Z', 16)}", Local))
    Assert.Equal(Some "use [REDACTED] and api_key = [REDACTED] for [REDACTED]", str [ "content" ] run.Requests.Head)

[<Fact>]
let ``recall_memory lists rows or says none were found`` () =
    let rows = "[{\"id\":\"1\",\"content\":\"alpha\",\"scope\":\"LOCAL\"},{\"id\":\"2\",\"content\":\"beta\",\"scope\":\"TEAM\"},{\"id\":\"3\",\"content\":\"gamma\"}]"
    let run = runWith (except Get "/memories" (reply 200 rows)) ctx (RecallMemory("a", Some Team))
    Assert.Equal("[LOCAL] alpha\n[TEAM] beta\n[?] gamma", run.Output.Text)
    Assert.EndsWith("&q=a&scope=TEAM", run.Requests.Head.Url)
    let none = runWith happy ctx (RecallMemory("", None))
    Assert.Equal("No memories found.", none.Output.Text)
    Assert.True(isSuccess none)

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

let private chars (alphabet: string) (lo: int) (hi: int) =
    gen {
        let! n = Gen.choose (lo, hi)
        let! cs = Gen.listOfLength n (Gen.elements (alphabet.ToCharArray()))
        return String(List.toArray cs)
    }

let private words = chars "abcdefghijklmnopqrstuvwxyz " 1 30 |> Gen.map (fun s -> "w" + s.Trim())

let private uuidGen = ArbMap.defaults |> ArbMap.generate<Guid> |> Gen.map (fun g -> g.ToString())

let private scopeGen = Gen.elements [ Local; Team; Global ]

/// Every tool that talks to the platform.
let private platformCallGen: Gen<ToolCall> =
    gen {
        let! peer = uuidGen
        let! task = words
        let! n = Gen.choose (0, 3)
        let! scope = scopeGen
        let! atts = Gen.listOfLength n (words |> Gen.map (fun w -> "/tmp/" + w.Replace(' ', '_')))

        return!
            Gen.elements
                [ ListPeers
                  GetWorkspaceInfo
                  DelegateTask(wsOf peer, task)
                  DelegateTaskAsync(wsOf peer, task)
                  CheckTaskStatus(Some task)
                  CheckTaskStatus(None)
                  SendMessageToUser(task, atts)
                  CommitMemory(task, scope)
                  RecallMemory(task, Some scope)
                  RecallMemory("", None)
                  UpdateAgentCard(Some "{\"name\":\"x\"}")
                  BroadcastMessage task
                  ChatHistory(peerOf peer, 20, None) ]
    }

let private removedInfoGen =
    gen {
        let! id = uuidGen
        let! at = Gen.elements [ None; Some "2026-03-04T05:06:07Z" ]
        let! hint = Gen.elements [ None; Some "Regenerate from the Tokens tab" ]
        return id, at, hint
    }

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

[<Fact>]
let ``rule: poll-mode queued answer is a delegation success`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip3 uuidGen words (chars "abc/_" 1 12))) (fun (peer, task, meth) ->
            let body = $"{{\"status\":\"queued\",\"delivery_mode\":\"poll\",\"method\":\"{meth}\"}}"
            let run = runWith (except Post "/a2a" (reply 200 body)) ctx (DelegateTask(wsOf peer, task))

            isSuccess run
            && run.Output.Text.Contains $"method={meth}"
            && run.Output.Text.Contains "inbox"
            && not (run.Output.Text.Contains "FAILED")
            && (paths run |> List.filter (fun p -> p.EndsWith "/a2a") |> List.length) = 1)
    )

/// Tools and the suffix of the request whose failure the tool must surface.
let private failingSurface (peer: string) : (ToolCall * HttpMethod * string) list =
    [ DelegateTask(wsOf peer, "t"), Post, "/a2a"
      DelegateTaskAsync(wsOf peer, "t"), Post, "/delegate"
      CheckTaskStatus(None), Get, "/delegations"
      SendMessageToUser("m", []), Post, "/notify"
      SendMessageToUser("m", [ "/f.txt" ]), Post, "/chat/uploads"
      CommitMemory("c", Local), Post, "/memories"
      RecallMemory("q", None), Get, "/memories"
      ListPeers, Get, "/peers"
      GetWorkspaceInfo, Get, own ]

[<Fact>]
let ``rule: proxy error bodies surface their message`` () =
    let statusGen = Gen.elements [ 400; 401; 402; 403; 409; 422; 429; 500; 502; 503 ]
    let msgGen = chars "abcdefghijklmnopqrstuvwxyz :-'" 3 60 |> Gen.map (fun s -> "m" + s.Trim())

    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip3 statusGen msgGen uuidGen)) (fun (status, msg, peer) ->
            failingSurface peer
            |> List.forall (fun (call, m, suffix) ->
                let run = runWith (except m suffix (reply status (Json.compact (Json.obj [ "error", Json.str msg ])))) ctx call
                isError run && run.Output.Text.Contains msg && run.Output.Text.Contains(status.ToString())))
    )

[<Fact>]
let ``rule: every text part of an A2A result is returned`` () =
    let textGen = words |> Gen.map (fun w -> "t" + w)

    let shaped =
        gen {
            let! parts = Gen.nonEmptyListOf textGen
            let! taskShaped = Gen.elements [ true; false ]
            return parts, taskShaped
        }

    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen shaped) (fun (texts, taskShaped) ->
            let part (t: string) = Json.obj [ "kind", Json.str "text"; "text", Json.str t ] :> Nodes.JsonNode
            let partsOf ts = Json.arr (ts |> List.map part)

            let result =
                if taskShaped then
                    let art = texts |> List.take (texts.Length - 1)
                    let last = List.last texts

                    Json.obj
                        [ "kind", Json.str "task"
                          "artifacts", Json.arr (art |> List.map (fun t -> Json.obj [ "parts", partsOf [ t ] ] :> Nodes.JsonNode))
                          "status", Json.obj [ "state", Json.str "completed"; "message", Json.obj [ "parts", partsOf [ last ] ] :> Nodes.JsonNode ] :> Nodes.JsonNode ]
                else
                    Json.obj [ "role", Json.str "agent"; "parts", partsOf texts ]

            let body = Json.compact (Json.obj [ "jsonrpc", Json.str "2.0"; "id", Json.str "1"; "result", result :> Nodes.JsonNode ])
            let run = runWith (except Post "/a2a" (reply 200 body)) ctx (DelegateTask(wsOf peerId, "task"))
            isSuccess run && run.Output.Text = A2a.framePeerResult (String.Join("\n", texts)))
    )

[<Fact>]
let ``rule: a known-removed workspace makes no platform request`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip platformCallGen removedInfoGen)) (fun (call, (id, at, hint)) ->
            let info = ({ Id = id; RemovedAt = at; Hint = defaultArg hint Removed.defaultHint }: Removed.Info)
            let run = runWith happy { ctx with Removed = Some info } call
            // get_workspace_info adds the facts as JSON on the next line
            run.Requests.IsEmpty && isError run
            && (run.Output.Text = Removed.text info || run.Output.Text.StartsWith(Removed.text info + "\n")))
    )

[<Fact>]
let ``rule: any 410 yields the tailored removed message and a WorkspaceRemoved observation`` () =
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip3 platformCallGen removedInfoGen (Gen.choose (0, 5)))) (fun (call, (id, at, hint), nth) ->
            let body =
                Json.obj
                    [ yield "error", Json.str "workspace removed"
                      yield "id", Json.str id
                      match at with
                      | Some a -> yield "removed_at", Json.str a
                      | None -> yield "removed_at", Json.nul
                      match hint with
                      | Some h -> yield "hint", Json.str h
                      | None -> () ]
                |> Json.compact

            let expected = ({ Id = id; RemovedAt = at; Hint = defaultArg hint Removed.defaultHint }: Removed.Info)
            // how many requests does the happy run make? answer 410 on one of them
            let total = (runWith happy ctx call).Requests.Length
            let target = nth % total
            let mutable i = -1

            let http (r: Request) =
                i <- i + 1
                if i = target then reply 410 body else happy r.Method (pathOf r) r

            let run = interpret { Http = http; Files = allFilesOk } (programOf ctx call)

            isError run
            && run.Output.Text.Contains(Removed.text expected)
            && List.contains (WorkspaceRemoved expected) run.Observations
            && run.Requests.Length = target + 1)
    )

let private failureGen: Gen<Response> =
    Gen.oneof
        [ Gen.elements [ 400; 401; 403; 404; 409; 429; 500; 502; 503 ]
          |> Gen.map (fun s -> reply s "{\"error\":\"nope\"}")
          Gen.constant (reply 500 "")
          Gen.constant (reply 502 "<html>bad gateway</html>")
          Gen.constant (TransportError "connection refused")
          Gen.constant (TimedOut 10.0) ]

[<Fact>]
let ``rule: failures are flagged isError`` () =
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip platformCallGen failureGen)) (fun (call, failure) ->
            let run = interpret { Http = (fun _ -> failure); Files = allFilesOk } (programOf ctx call)
            isError run && run.Output.Text <> "")
    )

[<Fact>]
let ``rule: async delegation re-send is never an error`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip uuidGen words)) (fun (peer, task) ->
            let first = runWith happy ctx (DelegateTaskAsync(wsOf peer, task))

            let hit =
                except Post "/delegate" (reply 200 "{\"delegation_id\":\"d-1\",\"status\":\"pending\",\"target_id\":\"x\",\"idempotent_hit\":true}")

            // the second run gets a different nonce from the host
            let second = interpret (withHttp hit) (programOf { ctx with Nonce = "another-nonce" } (DelegateTaskAsync(wsOf peer, task)))

            let key (run: Run) = str [ "idempotency_key" ] run.Requests.Head

            let keyFor nonce =
                match programOf { ctx with Nonce = nonce } (DelegateTaskAsync(wsOf peer, task)) with
                | Call(r, _) -> str [ "idempotency_key" ] r
                | _ -> None

            isSuccess first
            && isSuccess second
            && Json.tryParse second.Output.Text |> Option.bind (Json.stringProp "delegation_id") = Some "d-1"
            && key first <> key second
            && key first <> keyFor "a-third-nonce"
            && key first = keyFor nonce)
    )

let private secretGen: Gen<string * string> =
    let alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    let b64 = alnum + "+/"

    Gen.oneof
        [ chars (alnum + "_-") 20 40 |> Gen.map (fun s -> "sk-" + s, "")
          Gen.zip (Gen.elements [ "ghp_"; "ghs_" ]) (chars alnum 36 36) |> Gen.map (fun (p, s) -> p + s, "")
          chars (alnum + "_") 82 82 |> Gen.map (fun s -> "github_pat_" + s, "")
          chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" 16 16 |> Gen.map (fun s -> "AKIA" + s, "")
          Gen.zip3 (Gen.elements [ "api_key"; "key"; "token"; "secret"; "password"; "API_KEY" ]) (Gen.elements [ "="; ": "; " = "; ":" ]) (chars b64 40 60)
          |> Gen.map (fun (k, sep, v) -> v, k + sep) ]

[<Fact>]
let ``rule: secrets are redacted before commit_memory leaves the process`` () =
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip3 words secretGen words)) (fun (before, (secret, prefix), after) ->
            let run = runWith happy ctx (CommitMemory($"{before} {prefix}{secret} {after}", Local))
            let sent = run.Requests.Head

            not ((bodyText sent).Contains secret)
            && str [ "content" ] sent = Some $"{before} {prefix}[REDACTED] {after}")
    )

let private anyBodyGen: Gen<string> =
    Gen.oneof
        [ ArbMap.defaults |> ArbMap.generate<string>
          Gen.elements
              [ ""
                "null"
                "[]"
                "{}"
                "[1,\"a\",null,{}]"
                "{\"error\":{}}"
                "{\"error\":42}"
                "{\"result\":null}"
                "{\"result\":{\"parts\":7}}"
                "{\"result\":{\"parts\":[{\"kind\":\"text\",\"text\":5}]}}"
                "{\"result\":\"plain\"}"
                "{\"status\":\"queued\"}"
                "{\"queued\":true}"
                "{\"files\":[1,2]}"
                "{\"files\":{}}"
                "{\"delegation_id\":7,\"idempotent_hit\":\"yes\"}"
                "[{\"delegation_id\":null,\"created_at\":5,\"response_preview\":[]}]"
                "[{\"id\":1,\"name\":[],\"agent_card\":{\"skills\":{}}}]"
                "[{\"scope\":1,\"content\":{}}]"
                "{\"id\":{},\"removed_at\":3,\"hint\":[]}"
                "{\"a\":1,\"a\":2}"
                "{\"error\":\"x\"" ] ]

let private anyResponseGen: Gen<Response> =
    Gen.oneof
        [ Gen.zip (Gen.oneof [ Gen.choose (100, 599); Gen.elements [ 200; 201; 202; 401; 403; 404; 410; 503 ] ]) anyBodyGen
          |> Gen.map Reply
          ArbMap.defaults |> ArbMap.generate<string> |> Gen.map TransportError
          ArbMap.defaults |> ArbMap.generate<float> |> Gen.map TimedOut ]

let private anyCallGen: Gen<ToolCall> =
    let s = ArbMap.defaults |> ArbMap.generate<string>

    Gen.oneof
        [ platformCallGen
          Gen.zip (uuidGen |> Gen.map wsOf) s |> Gen.map DelegateTask
          Gen.zip (uuidGen |> Gen.map wsOf) s |> Gen.map DelegateTaskAsync
          Gen.optionOf s |> Gen.map CheckTaskStatus
          Gen.zip3 s (Gen.choose (1, 500)) (Gen.optionOf s)
          |> Gen.map (fun (peer, n, before) -> ChatHistory(defaultArg (PeerId.tryParse peer) (peerOf "p"), n, before))
          Gen.optionOf s |> Gen.map (Option.map (fun name -> Json.compact (Json.obj [ "name", Json.str name ])) >> UpdateAgentCard)
          Gen.zip s (Gen.listOf s) |> Gen.map SendMessageToUser
          Gen.zip s scopeGen |> Gen.map CommitMemory
          Gen.zip s (Gen.optionOf scopeGen) |> Gen.map RecallMemory ]

let private fileCheckGen: Gen<FileCheck list> =
    Gen.listOf (
        Gen.oneof
            [ Gen.constant FileMissing
              Gen.constant (FileUnreadable "denied")
              Gen.elements [ 0L; 10L; 30L * 1024L * 1024L; -1L ] |> Gen.map FileOk ]
    )

[<Fact>]
let ``rule: dispatch never throws for any response`` () =
    let scenario =
        gen {
            let! call = anyCallGen
            let! responses = Gen.nonEmptyListOf anyResponseGen
            let! files = fileCheckGen
            let! removed = Gen.elements [ None; Some ({ Id = ownId; RemovedAt = None; Hint = "h" }: Removed.Info) ]
            return call, responses, files, removed
        }

    Check.One(
        quick 500,
        Prop.forAll (Arb.fromGen scenario) (fun (call, responses, files, removed) ->
            let mutable i = -1
            let http (_: Request) =
                i <- i + 1
                responses[i % responses.Length]

            let run =
                interpret { Http = http; Files = (fun _ -> files) } (programOf { ctx with Removed = removed } call)

            not (isNull run.Output.Text))
    )

[<Fact>]
let ``rule: the files send_message_to_user uploads for its own workspace are its own, whatever notify answers (P35)`` () =
    let scenario = Gen.zip (Gen.nonEmptyListOf (Gen.elements [ true; false ]) |> Gen.map (List.truncate 4)) anyResponseGen

    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen scenario) (fun (pending, notified) ->
            let entry i isPending =
                if isPending then $"{{\"uri\":\"platform-pending:{ownId}/file-{i}\"}}" else $"{{\"uri\":\"workspace:/f{i}\"}}"
            let uploaded = reply 200 ("{\"files\":[" + String.Join(",", pending |> List.mapi entry) + "]}")
            let platform m p r =
                match m with
                | Post when p = own + "/chat/uploads" -> uploaded
                | Post when p = own + "/notify" -> notified
                | _ -> happy m p r
            let run = runWith platform ctx (SendMessageToUser("m", pending |> List.mapi (fun i _ -> $"/tmp/f{i}")))
            let ownFiles = pending |> List.indexed |> List.filter snd |> List.map (fun (i, _) -> (FileId.tryParse $"file-{i}").Value)
            match run.Observations |> List.filter (function OwnUploads _ -> true | _ -> false), List.tryLast run.Observations with
            | [], _ -> ownFiles.IsEmpty
            | [ only ], Some last -> only = last && only = OwnUploads(cfg.WorkspaceId, ownFiles) && not ownFiles.IsEmpty
            | _ -> false)
    )

[<Fact>]
let ``rule: a timed-out A2A send is a failure and is never re-sent`` () =
    Check.One(
        quick 100,
        Prop.forAll (Arb.fromGen (Gen.zip uuidGen words)) (fun (peer, task) ->
            let run = runWith (except Post "/a2a" (TimedOut 300.0)) ctx (DelegateTask(wsOf peer, task))

            isError run
            && run.Output.Text.StartsWith "DELEGATION FAILED"
            && run.Output.Text.Contains "300 s"
            && (paths run |> List.filter (fun p -> p.EndsWith "/a2a") |> List.length) = 1
            && run.Requests |> List.filter (fun r -> r.Url.EndsWith "/a2a") |> List.length = 1)
    )

[<Fact>]
let ``rule: list_peers never prints None for a missing role`` () =
    let peerGen =
        gen {
            let! id = uuidGen
            let! name = words
            let! role = Gen.elements [ Json.nul; Json.str ""; Json.str "  "; Json.str "writer" ]
            let! skills = Gen.listOf words
            return id, name, role, skills
        }

    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.nonEmptyListOf peerGen)) (fun peers ->
            let body =
                peers
                |> List.map (fun (id, name, role, skills) ->
                    Json.obj
                        [ "id", Json.str id
                          "name", Json.str name
                          "status", Json.str "online"
                          "role", Json.clone role
                          "agent_card", Json.obj [ "skills", Json.arr (skills |> List.map (fun s -> Json.obj [ "name", Json.str s ] :> Nodes.JsonNode)) ] :> Nodes.JsonNode ]
                    :> Nodes.JsonNode)
                |> Json.arr
                |> Json.compact

            let run = runWith (except Get "/peers" (reply 200 body)) ctx ListPeers
            let lines = run.Output.Text.Split('\n') |> List.ofArray

            isSuccess run
            && lines.Length = peers.Length
            && List.forall2
                (fun (line: string) (id, name, role: Nodes.JsonNode, skills: string list) ->
                    // Registry strings are shown sanitised (P26): runs of spaces become one.
                    let name = Channel.sanitizeName name |> Option.defaultValue id
                    let skills = skills |> List.choose Channel.sanitizeName
                    let roleText = Json.asString role |> Option.bind Channel.sanitizeName
                    line.StartsWith $"- {name} (ID: {id}, status: online"
                    && not (line.Contains "None")
                    && (match roleText with
                        | Some r -> line.Contains $", role: {r})"
                        | None -> not (line.Contains "role:"))
                    && (skills.IsEmpty || line.EndsWith("— skills: [" + String.Join(", ", skills) + "]")))
                lines
                peers
            && run.Observations
               = [ PeerNames(peers |> List.map (fun (id, name, _, _) -> peerOf id, Channel.sanitizeName name |> Option.defaultValue id))
                   PeersVia(cfg.WorkspaceId, peers |> List.map (fun (id, _, _, _) -> peerOf id)) ])
    )

[<Fact>]
let ``rule: a poll-mode queued envelope is never reported as a completed delegation`` () =
    let entryGen =
        gen {
            let! id = words
            let! queued = Gen.elements [ true; false ]
            let! spaced = Gen.elements [ true; false ]
            return id, queued, spaced
        }

    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.nonEmptyListOf entryGen)) (fun entries ->
            let preview queued spaced =
                if queued then
                    (if spaced then "{\"status\": \"queued\", \"delivery_mode\": \"poll\"}" else "{\"status\":\"queued\",\"delivery_mode\":\"poll\",\"method\":\"message/send\"}")
                else
                    "the real answer"

            let body =
                entries
                |> List.map (fun (id, queued, spaced) ->
                    Json.obj
                        [ "delegation_id", Json.str id
                          "status", Json.str "completed"
                          "response_preview", Json.str (preview queued spaced) ]
                    :> Nodes.JsonNode)
                |> Json.arr
                |> Json.compact

            let run = runWith (except Get "/delegations" (reply 200 body)) ctx (CheckTaskStatus(None))
            let items = Json.tryParse run.Output.Text |> Option.bind (Json.prop "delegations") |> Option.bind Json.asArray

            isSuccess run
            && (items.Value |> List.map (Json.stringProp "status"))
               = (entries |> List.truncate 10 |> List.map (fun (_, q, _) -> Some(if q then "queued" else "completed"))))
    )

[<Fact>]
let ``a 410 that names the peer is about the peer, not this workspace`` () =
    let gone = reply 410 $"{{\"error\":\"workspace removed\",\"id\":\"{peerId}\"}}"
    let viaDiscover = runWith (except Get $"/registry/discover/{peerId}" gone) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.True(isError viaDiscover)
    Assert.Contains($"workspace {peerId} was deleted", viaDiscover.Output.Text)
    Assert.Empty(viaDiscover.Observations)
    let viaSend = runWith (except Post "/a2a" gone) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.StartsWith($"DELEGATION FAILED to Bob: workspace {peerId} was deleted", viaSend.Output.Text)
    Assert.DoesNotContain(viaSend.Observations, fun o -> match o with WorkspaceRemoved _ -> true | _ -> false)
    let own410 = runWith (except Post "/a2a" (reply 410 "{}")) ctx (DelegateTask(wsOf peerId, "t"))
    Assert.Contains(WorkspaceRemoved ({ Id = ownId; RemovedAt = None; Hint = Removed.defaultHint }: Removed.Info), own410.Observations)

// ---------------------------------------------------------------------------------------------
// Token hygiene of tool results (issue: the token string never appears on stdout)
// ---------------------------------------------------------------------------------------------

/// Platform answers that quote the bearer token back (a proxy's 401 page, an error message, a memory row, a peer's reply).
let private echoingBodies (token: string) : Gen<string> =
    Gen.elements
        [ $"invalid token {token}"
          Json.compact (Json.obj [ "error", Json.str $"token {token} was revoked" ])
          Json.compact (Json.arr [ Json.obj [ "content", Json.str $"the key is {token}"; "scope", Json.str "LOCAL" ] :> System.Text.Json.Nodes.JsonNode ])
          Json.compact (
              Json.obj
                  [ "jsonrpc", Json.str "2.0"
                    "result", Json.obj [ "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str $"echo {token}" ] :> System.Text.Json.Nodes.JsonNode ] ] ]
          )
          Json.compact (Json.obj [ "files", Json.str token ]) ]

[<Fact>]
let ``rule: tool results never contain the workspace token`` () =
    let statusGen = Gen.elements [ 200; 201; 202; 400; 401; 403; 404; 500; 502 ]

    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip3 platformCallGen statusGen (echoingBodies cfg.Token))) (fun (call, status, body) ->
            let run = runWith (fun _ _ _ -> reply status body) ctx call
            not (run.Output.Text.Contains cfg.Token))
    )

[<Fact>]
let ``example: a token too short to be a platform token does not mangle tool results`` () =
    // A grandfathered workspace needs no token, so users may set a placeholder such as "x".
    let short = { ctx with Config = { cfg with Token = "x" } }
    let rows = """[{"scope":"LOCAL","content":"max exit codes"}]"""
    let run = runWith (except Get "/memories" (reply 200 rows)) short (RecallMemory("", None))
    Assert.Equal("[LOCAL] max exit codes", run.Output.Text)
