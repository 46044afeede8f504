/// The tools added at CORE@0520 (addendum §2.6–2.8, §2.11), self-delegation (P29), DELEGATION_SYNC_VIA_INBOX
/// (§2.1, P27, P30), the talk_to_user gate (§2.9, P45), tool metadata, and the agent's progress and cancellation.
module Molecule.Tests.Core.TeamToolsTests

open System
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.ApiTests
open Molecule.Tests.Core.DispatchTests

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private parsed name (args: (string * JsonNode) list) =
    match Tools.parse name (Some(Json.obj args)) with
    | Ok c -> c.Call
    | Result.Error e -> failwith e

// ---------------------------------------------------------------------------------------------
// get_runtime_identity
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``get_runtime_identity reports the env values, 2-space JSON, without a request`` () =
    let identity =
        { Model = "claude-opus"
          ModelProvider = "anthropic"
          MoleculeModel = ""
          AnthropicBaseUrl = "https://api.anthropic.com"
          Tier = "2"
          Runtime = "claude_code" }
    let c = { ctx with Config = { cfg with Identity = identity } }
    let run = runWith happy c GetRuntimeIdentity
    Assert.Empty(run.Requests)
    Assert.False(run.Output.IsError)
    Assert.Equal(
        $"{{\n  \"model\": \"claude-opus\",\n  \"model_provider\": \"anthropic\",\n  \"molecule_model\": \"\",\n  \"anthropic_base_url\": \"https://api.anthropic.com\",\n  \"tier\": \"2\",\n  \"workspace_id\": \"{ownId}\",\n  \"runtime\": \"claude_code\"\n}}",
        run.Output.Text
    )
    // answers even when the workspace is gone
    let gone = runWith happy { c with Removed = Some { Id = ownId; RemovedAt = None; Hint = "h" } } GetRuntimeIdentity
    Assert.False(gone.Output.IsError)
    Assert.Equal(GetRuntimeIdentity, parsed "get_runtime_identity" [])

[<Fact>]
let ``config: get_runtime_identity's env values are read, trimmed, "" when unset`` () =
    let env =
        Map.ofList
            [ "WORKSPACE_ID", ownId
              "PLATFORM_URL", "https://p.example"
              "MOLECULE_WORKSPACE_TOKEN", "tok_0123456789"
              "MODEL", " m1 "
              "TIER", "3"
              "WORKSPACE_TIER", "0"
              "ADAPTER_MODULE", "adapters.claude" ]
    match Config.parse env "/tmp/s" None with
    | Ok c ->
        Assert.Equal({ Model = "m1"; ModelProvider = ""; MoleculeModel = ""; AnthropicBaseUrl = ""; Tier = "3"; Runtime = "adapters.claude" }, c.Identity)
        Assert.False(c.DelegationSyncViaInbox)
        Assert.Equal(300.0, c.DelegationTimeoutSecs)
    | Result.Error e -> failwith $"{e}"

// ---------------------------------------------------------------------------------------------
// update_agent_card
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``update_agent_card posts the card with this workspace's own token and answers the reference's JSON`` () =
    let call = parsed "update_agent_card" [ "card", (Json.obj [ "name", Json.str "Docs Writer" ] :> JsonNode) ]
    let run = runWith happy ctx call
    Assert.Equal("{\n  \"success\": true,\n  \"status\": \"updated\"\n}", run.Output.Text)
    Assert.False(run.Output.IsError)
    let r = run.Requests.Head
    Assert.Equal("/registry/update-card", pathOf r)
    Assert.Equal<string list>([ $"Bearer {cfg.Token}" ], header "Authorization" r)
    Assert.Equal(Some "Docs Writer", bodyJson r |> Option.bind (Json.path [ "agent_card"; "name" ]) |> Option.bind Json.asString)
    Assert.Equal(Some ownId, bodyJson r |> Option.bind (Json.stringProp "workspace_id"))

[<Fact>]
let ``update_agent_card refusals are flagged errors with the reference's JSON`` () =
    let notObject = runWith happy ctx (parsed "update_agent_card" [ "card", Json.str "{\"name\":\"x\"}" ])
    Assert.True(notObject.Output.IsError)
    Assert.Empty(notObject.Requests)
    Assert.Equal("{\n  \"success\": false,\n  \"error\": \"card must be a JSON object (dict)\"\n}", notObject.Output.Text)
    Assert.Equal("{\n  \"success\": false,\n  \"error\": \"card must be a JSON object (dict)\"\n}", (runWith happy ctx (parsed "update_agent_card" [])).Output.Text)
    let card = parsed "update_agent_card" [ "card", (Json.obj [] :> JsonNode) ]
    let rejected = runWith (except Post "/update-card" (reply 401 "{\"error\":\"invalid workspace auth token\"}")) ctx card
    Assert.True(rejected.Output.IsError)
    Assert.Equal("{\n  \"success\": false,\n  \"status_code\": 401,\n  \"error\": \"invalid workspace auth token\"\n}", rejected.Output.Text)
    let down = runWith (except Post "/update-card" (TransportError "connection refused")) ctx card
    Assert.Equal("{\n  \"success\": false,\n  \"error\": \"network error: connection refused\"\n}", down.Output.Text)

// ---------------------------------------------------------------------------------------------
// broadcast_message
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``broadcast_message: sent, refused without the ability, platform errors`` () =
    let call = parsed "broadcast_message" [ "message", Json.str "standup in 5" ]
    let run = runWith happy ctx call
    Assert.Equal("Broadcast sent to 2 workspace(s)", run.Output.Text)
    Assert.Equal(Some "standup in 5", bodyJson run.Requests.Head |> Option.bind (Json.stringProp "message"))
    Assert.Equal("Broadcast sent to ? workspace(s)", (runWith (except Post "/broadcast" (reply 200 "{\"status\":\"sent\"}")) ctx call).Output.Text)
    let hint = "This workspace does not have the broadcast ability. Ask a user or admin to enable it via PATCH /workspaces/:id/abilities."
    let refused = runWith (except Post "/broadcast" (reply 403 $"{{\"error\":\"broadcast_disabled\",\"hint\":\"{hint}\"}}")) ctx call
    Assert.True(refused.Output.IsError)
    Assert.Equal($"Error: broadcast ability not enabled. {hint}", refused.Output.Text)
    Assert.Equal("Error: broadcast ability not enabled.", (runWith (except Post "/broadcast" (reply 403 "{\"error\":\"broadcast_disabled\"}")) ctx call).Output.Text)
    let broken = runWith (except Post "/broadcast" (reply 500 "{\"error\":\"internal error\"}")) ctx call
    Assert.Equal("Error: platform answered HTTP 500: internal error", broken.Output.Text)
    Assert.Equal(Result.Error "message is required", Tools.parse "broadcast_message" (Some(Json.obj [ "message", Json.str " " ])))

// ---------------------------------------------------------------------------------------------
// chat_history
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``chat_history returns the raw rows oldest first, [] when there are none, and pages with before_ts`` () =
    let call = parsed "chat_history" [ "peer_id", Json.str peerId; "before_ts", Json.str "2026-05-01T00:00:00Z" ]
    let rows = "[{\"id\":\"b\",\"created_at\":\"2026-04-30T02:00:00Z\"},{\"id\":\"a\",\"created_at\":\"2026-04-30T01:00:00Z\"}]"
    let run = runWith (except Get "/activity" (reply 200 rows)) ctx call
    Assert.Equal("[{\"id\":\"a\",\"created_at\":\"2026-04-30T01:00:00Z\"},{\"id\":\"b\",\"created_at\":\"2026-04-30T02:00:00Z\"}]", run.Output.Text)
    Assert.EndsWith($"?peer_id={peerId}&limit=20&before_ts=" + "2026-05-01T00%3A00%3A00Z", run.Requests.Head.Url)
    Assert.Equal("[]", (runWith happy ctx call).Output.Text)

[<Fact>]
let ``chat_history errors: the platform's 400 message, other statuses, not JSON, not a list, no peer`` () =
    let call = parsed "chat_history" [ "peer_id", Json.str "nope" ]
    let text (resp: Response) = (runWith (except Get "/activity" resp) ctx call).Output
    Assert.Equal({ Text = "Error: peer_id must be a UUID"; IsError = true }, text (reply 400 "{\"error\":\"peer_id must be a UUID\"}"))
    Assert.Equal("Error: bad request", (text (reply 400 "")).Text)
    Assert.Equal("Error: chat_history returned HTTP 500: boom", (text (reply 500 "{\"error\":\"boom\"}")).Text)
    Assert.Equal("Error: chat_history response was not JSON", (text (reply 200 "<html>")).Text)
    Assert.Equal("Error: chat_history response was not a list", (text (reply 200 "{\"rows\":[]}")).Text)
    Assert.Equal(Result.Error "peer_id is required", Tools.parse "chat_history" None)
    Assert.Equal(Result.Error "peer_id is required", Tools.parse "chat_history" (Some(Json.obj [ "peer_id", Json.num 5 ])))

[<Fact>]
let ``rule: chat_history's limit is 20 unless a whole number from 1, and at most 500`` () =
    Check.One(
        quick 300,
        Prop.forAll (ArbMap.defaults |> ArbMap.arbitrary<float>) (fun f ->
            let limit =
                match Tools.parse "chat_history" (Some(Json.obj [ "peer_id", Json.str "p"; "limit", (if Double.IsFinite f then Json.numf f else Json.str "x") ])) with
                | Ok { Call = ChatHistory(_, n, _) } -> n
                | _ -> -1
            let expected = if Double.IsFinite f && f = Math.Floor f && f >= 1.0 then int (min f 500.0) else 20
            limit = expected)
    )

// ---------------------------------------------------------------------------------------------
// Self-delegation (P29)
// ---------------------------------------------------------------------------------------------

let private otherServed = (WorkspaceId.tryParse "22222222-3333-4444-5555-666666666666").Value

[<Fact>]
let ``rule: delegating to a workspace this process serves — in any letter case — is refused without a request`` () =
    let variants (id: string) = Gen.elements [ id; id.ToUpperInvariant(); " " + id + " "; id.Substring(0, 8).ToUpperInvariant() + id.Substring 8 ]
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.oneof [ variants ownId; variants otherServed.Value ]) (Gen.elements [ true; false ]) (Gen.elements [ "x"; "do it" ]))) (fun (target, sync, task) ->
            let c = { ctx with Served = [ cfg.WorkspaceId; otherServed ] }
            let tool = if sync then "delegate_task" else "delegate_task_async"
            let call = parsed tool [ "workspace_id", Json.str target; "task", Json.str task ]
            let run = runWith happy c call
            run.Requests.IsEmpty && run.Output.IsError && run.Output.Text.StartsWith $"Error: cannot {tool} to your own workspace — ")
    )

[<Fact>]
let ``example: self-delegation texts`` () =
    let own = runWith happy ctx (parsed "delegate_task" [ "workspace_id", Json.str (ownId.ToUpperInvariant()); "task", Json.str "x" ])
    Assert.Equal(
        "Error: cannot delegate_task to your own workspace — a task sent to yourself only comes back to you as a message, and a delegate_task waiting for your own answer would never get it. Do the work yourself, or use commit_memory to keep a note or send_message_to_user to tell the user.",
        own.Output.Text
    )
    let served = runWith happy { ctx with Served = [ cfg.WorkspaceId; otherServed ] } (DelegateTaskAsync(otherServed, "x"))
    Assert.Equal(
        $"Error: cannot delegate_task_async to your own workspace — {otherServed.Value} is also served by this molecule-mcp process (MOLECULE_WORKSPACES), so the task would come back to you. Do the work yourself, or use commit_memory / send_message_to_user.",
        served.Output.Text
    )

// ---------------------------------------------------------------------------------------------
// DELEGATION_SYNC_VIA_INBOX (§2.1, P27, P30)
// ---------------------------------------------------------------------------------------------

let private viaInbox = { ctx with Config = { cfg with DelegationSyncViaInbox = true; DelegationTimeoutSecs = 10.0 } }

/// A platform whose delegation list shows `entries` on the n-th read (the last one from then on).
let private delegationsSeen (entries: string list) =
    let mutable reads = 0
    fun (m: HttpMethod) (p: string) (r: Request) ->
        match m, p with
        | Get, p when p.EndsWith "/delegations" ->
            let shown = entries[min reads (entries.Length - 1)]
            reads <- reads + 1
            reply 200 shown
        | _ -> happy m p r

let private entry (status: string) (extra: string) =
    $"[{{\"delegation_id\":\"d-1\",\"status\":\"{status}\",\"target_id\":\"{peerId}\"{extra}}}]"

[<Fact>]
let ``sync via inbox: POST /delegate once, read /delegations every 3 s until completed`` () =
    let run = runWith (delegationsSeen [ "[]"; entry "pending" ""; entry "completed" ",\"response_preview\":\"42 it is\"" ]) viaInbox (DelegateTask(wsOf peerId, "compute"))
    Assert.False(run.Output.IsError, run.Output.Text)
    Assert.Equal(A2a.framePeerResult "42 it is", run.Output.Text)
    Assert.Equal(1, paths run |> List.filter (fun p -> p.EndsWith "/delegate") |> List.length)
    Assert.Empty(paths run |> List.filter (fun p -> p.EndsWith "/a2a"))
    Assert.Equal(3, paths run |> List.filter (fun p -> p.EndsWith "/delegations") |> List.length)

[<Fact>]
let ``sync via inbox: failed reads the list's error (P30), queued ends at once (P27), the budget ends with check_task_status`` () =
    let failed = runWith (delegationsSeen [ entry "failed" ",\"error\":\"peer crashed\",\"summary\":\"Delegating to x\"" ]) viaInbox (DelegateTask(wsOf peerId, "t"))
    Assert.True(failed.Output.IsError)
    Assert.StartsWith("DELEGATION FAILED to Bob: peer crashed\n", failed.Output.Text)
    let queued = runWith (delegationsSeen [ entry "queued" "" ]) viaInbox (DelegateTask(wsOf peerId, "t"))
    Assert.False(queued.Output.IsError)
    Assert.StartsWith("Task delivered to Bob (poll-mode peer; queued, method=message/send).", queued.Output.Text)
    let slow = runWith (delegationsSeen [ entry "dispatched" "" ]) viaInbox (DelegateTask(wsOf peerId, "t"))
    Assert.True(slow.Output.IsError)
    Assert.StartsWith(
        "DELEGATION FAILED to Bob: no answer within 10 s (delegation_id=d-1, last status: dispatched). The platform is still working on it and nothing was re-sent: call check_task_status(task_id=\"d-1\") later.",
        slow.Output.Text
    )
    // 0, 3, 6, 9, 10 s: the last read at the deadline
    Assert.Equal(5, paths slow |> List.filter (fun p -> p.EndsWith "/delegations") |> List.length)
    Assert.Equal(1, paths slow |> List.filter (fun p -> p.EndsWith "/delegate") |> List.length)

[<Fact>]
let ``config: DELEGATION_TIMEOUT and DELEGATION_SYNC_VIA_INBOX values are checked at start`` () =
    let env extra =
        Map.ofList ([ "WORKSPACE_ID", ownId; "PLATFORM_URL", "https://p.example"; "MOLECULE_WORKSPACE_TOKEN", "tok_0123456789" ] @ extra)
    let errors extra =
        match Config.parse (env extra) "/tmp/s" None with
        | Ok _ -> []
        | Result.Error es -> es
    Assert.Equal<Config.ConfigError list>(
        [ Config.Invalid("DELEGATION_TIMEOUT", "must be a number of seconds greater than 0 and at most 86400, e.g. 300") ],
        errors [ "DELEGATION_TIMEOUT", "abc" ]
    )
    Assert.NotEmpty(errors [ "DELEGATION_TIMEOUT", "0" ])
    Assert.NotEmpty(errors [ "DELEGATION_TIMEOUT", "-3" ])
    Assert.NotEmpty(errors [ "DELEGATION_TIMEOUT", "NaN" ])
    Assert.Equal<Config.ConfigError list>(
        [ Config.Invalid("DELEGATION_SYNC_VIA_INBOX", "must be 1 (on) or 0 (off)") ],
        errors [ "DELEGATION_SYNC_VIA_INBOX", "maybe" ]
    )
    match Config.parse (env [ "DELEGATION_TIMEOUT", "12.5"; "DELEGATION_SYNC_VIA_INBOX", "1" ]) "/tmp/s" None with
    | Ok c ->
        Assert.Equal(12.5, c.DelegationTimeoutSecs)
        Assert.True(c.DelegationSyncViaInbox)
    | Result.Error e -> failwith $"{e}"
    Assert.Contains("Invalid DELEGATION_TIMEOUT: must be a number", Config.helpText (errors [ "DELEGATION_TIMEOUT", "abc" ]))

// ---------------------------------------------------------------------------------------------
// send_message_to_user: talk_to_user disabled (§2.9, P45)
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``send_message_to_user when talk_to_user is disabled says so once`` () =
    let goHint = "This workspace is not allowed to send messages directly to the user. Forward your update to a parent workspace using delegate_task — they may be able to reach the user."
    let run = runWith (except Post "/notify" (reply 403 $"{{\"error\":\"talk_to_user_disabled\",\"hint\":\"{goHint}\"}}")) ctx (SendMessageToUser("hi", []))
    Assert.True(run.Output.IsError)
    Assert.Equal($"Error: this workspace is not allowed to send messages directly to the user (talk_to_user is disabled). {goHint}", run.Output.Text)
    let bare = runWith (except Post "/notify" (reply 403 "{\"error\":\"talk_to_user_disabled\"}")) ctx (SendMessageToUser("hi", []))
    Assert.Equal(
        "Error: this workspace is not allowed to send messages directly to the user (talk_to_user is disabled). Use delegate_task to forward your update to a parent or supervisor workspace; it may be able to reach the user.",
        bare.Output.Text
    )

// ---------------------------------------------------------------------------------------------
// Tool metadata
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``example: read tools are annotated read-only, every tool has a title and its hints`` () =
    let readOnly = Tools.specs |> List.filter (fun s -> s.Annotations.ReadOnly) |> List.map (fun s -> s.Name) |> Set.ofList
    Assert.Equal<Set<string>>(
        Set.ofList
            [ "list_peers"; "get_workspace_info"; "check_task_status"; "get_runtime_identity"; "chat_history"; "inbox_peek"; "wait_for_message"; "recall_memory"; "list_requests"; "get_request" ],
        readOnly
    )
    for s in Tools.specs do
        Assert.False(String.IsNullOrWhiteSpace s.Title, s.Name)
        Assert.Equal(s.Annotations.ReadOnly, s.Annotations.Destructive.IsNone)
        Assert.Equal(s.Annotations.ReadOnly, s.Annotations.Idempotent.IsNone)
    let find n = (Tools.specs |> List.find (fun s -> s.Name = n)).Annotations
    Assert.Equal(Some true, (find "inbox_pop").Destructive)
    Assert.Equal(Some true, (find "inbox_pop").Idempotent)
    Assert.Equal(Some true, (find "update_agent_card").Destructive)
    Assert.True((find "delegate_task").OpenWorld)
    Assert.True((find "broadcast_message").OpenWorld)
    Assert.Equal(Some false, (find "commit_memory").Destructive)
    Assert.Equal(Tools.specs.Length, Tools.specs |> List.map (fun s -> s.Title) |> List.distinct |> List.length)

// ---------------------------------------------------------------------------------------------
// Progress and cancellation in the agent
// ---------------------------------------------------------------------------------------------

let private agent () =
    let boot: Workspace.Boot =
        { Ledger = Ledger.empty cfg.WorkspaceId; Generation = 0L; Events = 0; FileExists = false; Leader = true; Legacy = None }
    fst (Agent.update Agent.ClientInitialized (Agent.init cfg boot))

let private progress (effects: Effect list) =
    effects |> List.choose (function Effect.Progress(c, p) -> Some(c, p) | _ -> None)

[<Fact>]
let ``rule: a waiting call the client wants progress for gets a report every 5 s, increasing, until it is answered`` () =
    Check.One(
        quick 50,
        Prop.forAll (Arb.fromGen (Gen.choose (1, 12))) (fun ticks ->
            let m = agent ()
            let m, _ = Agent.update (Agent.ToolCalled(1L, "n", Tools.parse "wait_for_message" (Some(Json.obj [ "timeout_secs", Json.num 120 ])))) m
            let m, first = Agent.update (Agent.ProgressRequested(1L, "wait_for_message")) m
            let mutable model = m
            let mutable reports = []
            let mutable ok = List.contains (After(Agent.progressEverySecs, ProgressTimer 1L)) first
            for i in 1..ticks do
                let next, effects = Agent.update (Agent.TimerFired(ProgressTimer 1L, float i * 5.0)) model
                model <- next
                reports <- reports @ progress effects
                ok <- ok && List.contains (After(Agent.progressEverySecs, ProgressTimer 1L)) effects
            let values = reports |> List.map (fun (_, p) -> p.Progress)
            // answered: no further report
            let answered, _ = Agent.update (Agent.TimerFired(WaitDeadline 1L, 200.0)) model
            let _, after = Agent.update (Agent.TimerFired(ProgressTimer 1L, 205.0)) answered
            ok
            && reports.Length = ticks
            && values = List.sort values && List.distinct values = values
            && reports |> List.forall (fun (_, p) -> p.Total = Some 120.0 && p.Message.StartsWith "no message yet after")
            && progress after |> List.isEmpty)
    )

[<Fact>]
let ``example: a cancelled wait is forgotten at once (logged), gets no progress and no answer`` () =
    let m = agent ()
    let m, _ = Agent.update (Agent.ToolCalled(1L, "n", Tools.parse "wait_for_message" (Some(Json.obj [ "timeout_secs", Json.num 60 ])))) m
    let m, _ = Agent.update (Agent.ProgressRequested(1L, "wait_for_message")) m
    let m, cancelled = Agent.update (Agent.ToolCancelled 1L) m
    Assert.Contains(Log(Info, "wait_for_message cancelled by the client"), cancelled)
    let m, tick = Agent.update (Agent.TimerFired(ProgressTimer 1L, 5.0)) m
    Assert.Empty(progress tick)
    let _, deadline = Agent.update (Agent.TimerFired(WaitDeadline 1L, 60.0)) m
    Assert.Empty(deadline |> List.filter (function Answer _ -> true | _ -> false))

[<Fact>]
let ``example: arguments a tool cannot take are refused with "Error: "`` () =
    let _, effects = Agent.update (Agent.ToolCalled(1L, "n", Tools.parse "chat_history" None)) (agent ())
    match effects with
    | [ Answer(1L, output, _) ] -> Assert.Equal({ Text = "Error: peer_id is required"; IsError = true }, output)
    | other -> failwith $"unexpected effects: {other.Length}"
