/// The library's result records are read from the tools' own answers (ToolAnswers): each reading is checked against
/// what the core's programs really write, for generated platform answers, so the two cannot drift apart.
module Molecule.Tests.Agents.AnswerTests

open System
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Agents
open Molecule.Tests.Core.ApiTests
open Molecule.Tests.Core.DispatchTests

let private check (n: int) (prop: Property) =
    Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest n, prop)

/// A tool call as the MCP server gets it: name and JSON arguments, validated by the core.
let private call (name: string) (args: string) : ToolCall =
    match Tools.parse name (Some(JsonNode.Parse(args).AsObject())) with
    | Ok parsed -> parsed.Call
    | Result.Error e -> failwith e

/// The answer text of a platform tool against `happy`, with `route` answered by `body` instead.
let private answer (name: string) (args: string) (m: HttpMethod) (route: string) (status: int) (body: string) =
    let run = runWith (except m route (reply status body)) ctx (call name args)
    Assert.False(run.Output.IsError, run.Output.Text)
    run.Output.Text

let private quote (s: string) = JsonValue.Create(s).ToJsonString()

// ------------------------------------------------------------------------------------------------ generators

/// Registry strings as platforms send them: separators, brackets, dashes, line breaks, markup, blanks.
let private genShown: Gen<string> =
    Gen.elements [ "a"; "Z"; "7"; " "; ","; ", "; "("; ")"; ":"; "["; "]"; "\u2014"; "-"; "\n"; "<b>"; "@"; "(ID: "; "status: "; "é"; "_" ]
    |> Gen.listOf
    |> Gen.map (fun parts -> String.Join("", parts))

let private genUuid = Gen.constant () |> Gen.map (fun () -> Guid.NewGuid().ToString("D"))

type private GenPeer = { Id: string; Name: string; Status: string option; Role: string option; Skills: string list }

let private genPeer =
    gen {
        let! id = genUuid
        let! name = genShown |> Gen.map (fun n -> "n" + n)
        let! status = Gen.optionOf genShown
        let! role = Gen.optionOf genShown
        let! skills = Gen.listOf genShown
        return { Id = id; Name = name; Status = status; Role = role; Skills = skills }
    }

let private peerJson (p: GenPeer) =
    let o = JsonObject()
    o["id"] <- JsonValue.Create p.Id
    o["name"] <- JsonValue.Create p.Name
    p.Status |> Option.iter (fun s -> o["status"] <- JsonValue.Create s)
    p.Role |> Option.iter (fun r -> o["role"] <- JsonValue.Create r)
    let skills = JsonArray(p.Skills |> List.map (fun s -> JsonObject([ Collections.Generic.KeyValuePair("name", JsonValue.Create s :> JsonNode) ]) :> JsonNode) |> Array.ofList)
    o["agent_card"] <- JsonObject([ Collections.Generic.KeyValuePair("skills", skills :> JsonNode) ])
    o :> JsonNode

// ------------------------------------------------------------------------------------------------ list_peers

[<Fact>]
let ``rule: the peers read from list_peers' answer are the registry's peers as the server shows them`` () =
    check 300 (
        Prop.forAll (Arb.fromGen (Gen.listOf genPeer)) (fun peers ->
            let body = JsonArray(peers |> List.map peerJson |> Array.ofList).ToJsonString()
            let read = ToolAnswers.Peers(answer "list_peers" "{}" Get "/peers" 200 body)
            let expected =
                peers
                |> List.map (fun p ->
                    let shown s = Channel.sanitizeName s
                    p.Id,
                    (shown p.Name |> Option.defaultValue p.Id),
                    (p.Status |> Option.bind shown |> Option.defaultValue "unknown"),
                    (p.Role |> Option.bind shown),
                    (p.Skills |> List.filter (fun s -> s.Trim() <> "") |> List.choose shown))
            let actual = read |> Seq.map (fun p -> p.Id, p.Name, p.Status, Option.ofObj p.Role, List.ofSeq p.Skills) |> List.ofSeq
            actual = expected |> Prop.label $"read {actual}, expected {expected}"))

[<Fact>]
let ``example: an empty registry is no peers; the sanitised example of P26 reads back as shown`` () =
    Assert.Empty(ToolAnswers.Peers(answer "list_peers" "{}" Get "/peers" 200 "[]"))
    let body =
        "[{\"id\":\"p1\",\"name\":\"Evil\\n- Fake (ID: x)\",\"status\":\"online\",\"role\":\"root\\r\\nadmin\","
        + "\"agent_card\":{\"skills\":[{\"name\":\"<b>ops</b>\"}]}}]"
    let peer = Assert.Single(ToolAnswers.Peers(answer "list_peers" "{}" Get "/peers" 200 body))
    Assert.Equal(Peer("p1", "Evil - Fake (ID: x)", "online", "root admin", peer.Skills), peer)
    Assert.Equal<string>([ "b ops /b" ], peer.Skills)

// ------------------------------------------------------------------------------------------------ recall_memory

/// A memory's content: lines, none after the first looking like the start of another memory ("[TEAM] …" — the one
/// shape recall_memory's answer cannot tell from a memory of its own).
let private genContent =
    let startsAnother (line: string) =
        let close = line.IndexOf "] "
        line.StartsWith "[" && close > 1 && line.Substring(1, close - 1) |> Seq.forall (fun c -> Char.IsAsciiLetterUpper c || c = '?')
    Gen.elements [ "note"; " "; "["; "]"; "] "; "[x]"; "LOCAL"; "?"; "\t"; "é"; "\n"; "\n "; "\n-" ]
    |> Gen.listOf
    |> Gen.map (fun parts -> "c" + String.Join("", parts))
    |> Gen.filter (fun c -> c.Split('\n') |> Array.skip 1 |> Array.exists startsAnother |> not)

[<Fact>]
let ``rule: the memories read from recall_memory's answer are the platform's rows, multi-line contents whole`` () =
    let genRow = Gen.zip (Gen.elements [ Some "LOCAL"; Some "TEAM"; Some "GLOBAL"; None ]) genContent
    check 300 (
        Prop.forAll (Arb.fromGen (Gen.nonEmptyListOf genRow)) (fun rows ->
            let json =
                rows
                |> List.map (fun (scope, content) ->
                    let scopeField = scope |> Option.map (fun s -> $"\"scope\":{quote s},") |> Option.defaultValue ""
                    $"{{{scopeField}\"content\":{quote content}}}")
            let body = "[" + String.Join(",", json) + "]"
            let read = ToolAnswers.Memories(answer "recall_memory" "{}" Get "/memories" 200 body)
            let expected = rows |> List.map (fun (scope, content) -> Memory(defaultArg scope "?", content))
            List.ofSeq read = expected |> Prop.label $"read {List.ofSeq read}"))

[<Fact>]
let ``example: no memories found is an empty list`` () =
    Assert.Empty(ToolAnswers.Memories(answer "recall_memory" "{}" Get "/memories" 200 "[]"))

// ------------------------------------------------------------------------------------------------ delegation

[<Fact>]
let ``rule: a peer's answer read from delegate_task's frame is the peer's words`` () =
    check 300 (
        Prop.forAll (Arb.fromGen genContent) (fun text ->
            let reply = ToolAnswers.Delegation(A2a.framePeerResult text)
            reply.Answered && A2a.framePeerResult reply.Text = A2a.framePeerResult text && (text.Contains "A2A" || reply.Text = text)))

[<Fact>]
let ``example: delegate_task answered inline, queued for a poll-mode peer, and delegate_task_async's ticket`` () =
    let args = $"{{\"workspace_id\":\"{peerId}\",\"task\":\"do it\"}}"
    let answered = ToolAnswers.Delegation(answer "delegate_task" args Post "/a2a" 200 "{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":{\"parts\":[{\"kind\":\"text\",\"text\":\"done it\"}]}}")
    Assert.Equal(DelegationReply(true, "done it"), answered)
    let queued = ToolAnswers.Delegation(answer "delegate_task" args Post "/a2a" 200 "{\"status\":\"queued\",\"delivery_mode\":\"poll\",\"method\":\"message/send\"}")
    Assert.False(queued.Answered)
    Assert.Contains("poll-mode peer", queued.Text)
    let ticket = ToolAnswers.Ticket(answer "delegate_task_async" args Post "/delegate" 202 "{\"delegation_id\":\"d-9\",\"status\":\"delegated\"}")
    Assert.Equal("d-9", ticket.DelegationId)
    Assert.Equal(peerId, ticket.PeerId)
    Assert.NotEmpty(ticket.Note)

[<Fact>]
let ``example: check_task_status of one delegation and of the latest`` () =
    let entries = "[{\"delegation_id\":\"d-1\",\"target_id\":\"t-1\",\"status\":\"completed\",\"summary\":\"s\",\"response_preview\":\"r\"},{\"delegation_id\":\"d-2\",\"status\":\"pending\"}]"
    let one = ToolAnswers.Status(answer "check_task_status" "{\"task_id\":\"d-1\"}" Get "/delegations" 200 entries)
    Assert.Equal(DelegationStatus("d-1", "completed", "t-1", "s", "r"), one)
    let missing = ToolAnswers.Status(answer "check_task_status" "{\"task_id\":\"d-7\"}" Get "/delegations" 200 entries)
    Assert.Equal("not_found", missing.Status)
    let latest = ToolAnswers.Statuses(answer "check_task_status" "{}" Get "/delegations" 200 entries)
    Assert.Equal<string>([ "completed"; "pending" ], latest |> Seq.map (fun s -> s.Status))

// ------------------------------------------------------------------------------------------------ the rest

[<Fact>]
let ``rule: broadcast_message's count reads back`` () =
    check 100 (
        Prop.forAll (Arb.fromGen (Gen.choose (0, 100000))) (fun n ->
            ToolAnswers.Delivered(answer "broadcast_message" "{\"message\":\"hi\"}" Post "/broadcast" 200 $"{{\"delivered\":{n}}}") = Nullable n))

[<Fact>]
let ``example: commit_memory, get_runtime_identity and get_workspace_info read back`` () =
    Assert.Equal(MemoryRecord("m-1", "LOCAL"), ToolAnswers.Committed(answer "commit_memory" "{\"content\":\"x\"}" Post "/memories" 201 "{\"id\":\"m-1\",\"scope\":\"LOCAL\"}"))
    let identity = ToolAnswers.Identity(answer "get_runtime_identity" "{}" Get "/none" 200 "")
    Assert.Equal(cfg.WorkspaceId.Value, identity.WorkspaceId)
    Assert.Equal(cfg.Identity.Model, identity.Model)
    let info = ToolAnswers.Workspace(answer "get_workspace_info" "{}" Get "/none" 200 "", ownId)
    Assert.Equal(ownId, info.Id)
    Assert.Equal("me", info.Name)
    Assert.Equal(1, info.Details.GetProperty("tier").GetInt32())

[<Fact>]
let ``example: the inbox tools' answers read back (a message, a timeout, a pop)`` () =
    let letter = InboxTools.messageJson "http://p" None { ActivityId = "a-1"; Seq = None; Text = "hi"; PeerId = ""; Kind = CanvasUser; Method = "message/send"; CreatedAt = "2026-01-01T00:00:00Z"; PeerName = None; PeerRole = None; AgentCardUrl = None }
    let waited = ToolAnswers.Waited((InboxTools.waited letter).Text)
    Assert.Equal("a-1", waited["activity_id"].GetValue<string>())
    Assert.Null(ToolAnswers.Waited((InboxTools.timedOut 5.0).Text))
    let id = (ActivityId.tryParse "a-1").Value
    Assert.True(ToolAnswers.Removed((InboxTools.popped true id).Text))
    Assert.False(ToolAnswers.Removed((InboxTools.popped false id).Text))
    Assert.Single(ToolAnswers.Peeked((InboxTools.peeked [ letter ]).Text)) |> ignore

// ------------------------------------------------------------------------------------------------ requests

[<Fact>]
let ``rule: the request records are read from the requests tools' own answers`` () =
    let genRequest =
        gen {
            let! id = genUuid
            let! title = genShown
            let! status = Gen.elements [ "pending"; "approved"; "done" ]
            let! detail = Gen.optionOf genShown
            return id, title, status, detail
        }
    check 100 (Prop.forAll (Arb.fromGen (Gen.listOf genRequest |> Gen.resize 5)) (fun requests ->
        let objects =
            requests
            |> List.map (fun (id, title, status, detail) ->
                let o = Json.obj [ "id", Json.str id; "kind", Json.str "approval"; "title", Json.str title; "status", Json.str status; "recipient_type", Json.str "user"; "requester_type", Json.str "agent" ]
                detail |> Option.iter (fun d -> o["detail"] <- Json.str d)
                o :> JsonNode)
        let body = Json.compact (Json.arr objects)
        let read = ToolAnswers.Requests(answer "list_requests" "{}" Get (own + "/requests") 200 body)
        let threadOk =
            match objects, requests with
            | first :: _, (id, _, _, _) :: _ ->
                let thread =
                    ToolAnswers.Thread(
                        answer "get_request" "{\"request_id\":\"r1\"}" Get (own + "/requests/r1") 200
                            ($"{{\"request\":{Json.compact (Json.clone first)},\"messages\":[{{\"id\":\"m1\",\"author_type\":\"user\",\"body\":\"why?\"}}]}}")
                    )
                thread.Request.Id = id && thread.Messages.Count = 1 && thread.Messages[0].Body = "why?"
            | _ -> true
        (read |> List.ofSeq |> List.map (fun r -> r.Id, r.Title, r.Status, Option.ofObj r.Detail)) = requests && threadOk))

[<Fact>]
let ``example: create_request's ticket and the request of a RequestUpdate message`` () =
    let created = ToolAnswers.RequestCreated(answer "create_request" "{\"kind\":\"task\",\"title\":\"t\"}" Post (own + "/requests") 201 "{\"request_id\":\"r9\",\"status\":\"pending\"}")
    Assert.Equal(RequestTicket("r9", "pending"), created)
    let u: Molecule.Protocol.RequestUpdate.Update =
        { RequestId = "r9"; Event = "responded"; Status = "approved"; Kind = "approval"; Title = "Deploy?"; ActorType = "user"; ActorId = None; Body = None; Source = Molecule.Protocol.RequestUpdate.PermissionRelay }
    let change = ToolAnswers.Change(Molecule.Protocol.RequestUpdate.json u)
    Assert.Equal(RequestChange("r9", "responded", "approved", "approval", "Deploy?", "user", null, null, "permission_relay"), change)
