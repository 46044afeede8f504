/// The requests tools (Tools/Requests.fs, their arguments in Tools/Args.fs) and the request_update message kind
/// (Protocol/RequestUpdate.fs, Ledger, Journal, Channel): typed and validated calls, the platform's answers, a platform
/// without the routes, and the update's way through the ledger to a channel event.
module Molecule.Tests.Core.RequestToolsTests

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

let private parse name (fields: (string * JsonNode) list) =
    Tools.parse name (Some(Json.obj fields)) |> Result.map (fun p -> p.Call)

let private rid = (RequestId.tryParse "req-1").Value

let private requestCalls: ToolCall list =
    [ CreateRequest { Kind = ApprovalRequest; Recipient = ToUser; Title = "Deploy?"; Detail = None; Priority = None }
      ListRequests(Mine, None)
      ListRequests(AddressedToMe, Some "pending")
      GetRequest rid
      RespondToRequest(rid, Approve)
      AddRequestMessage(rid, "why?")
      CancelRequest rid ]

/// A platform that serves the requests routes.
let private served (m: HttpMethod) (path: string) (r: Request) : Response =
    match m, path with
    | Post, p when p = own + "/requests" -> reply 201 "{\"request_id\":\"req-1\",\"status\":\"pending\"}"
    | Get, p when p = own + "/requests" || p = own + "/requests/inbox" -> reply 200 "[{\"id\":\"req-1\",\"kind\":\"approval\",\"title\":\"Deploy?\",\"status\":\"pending\"}]"
    | Get, p when p = own + "/requests/req-1" -> reply 200 "{\"request\":{\"id\":\"req-1\",\"status\":\"pending\"},\"messages\":[]}"
    | Post, p when p = own + "/requests/req-1/respond" -> reply 200 "{\"request_id\":\"req-1\",\"status\":\"approved\"}"
    | Post, p when p = own + "/requests/req-1/messages" -> reply 201 "{\"message_id\":\"m-1\",\"request_id\":\"req-1\",\"status\":\"created\"}"
    | Post, p when p = own + "/requests/req-1/cancel" -> reply 200 "{\"request_id\":\"req-1\",\"status\":\"cancelled\"}"
    | _ -> happy m path r

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: create_request takes a kind, a bounded title and an agent only by its workspace UUID`` () =
    let ws = "0b7e7a2c-1111-4222-8333-944445555666"
    let texts = Gen.elements [ ""; " "; "Deploy?"; String('t', ToolSpecs.maxTitleChars); String('t', ToolSpecs.maxTitleChars + 1) ]
    let kinds = Gen.elements [ None; Some "task"; Some "approval"; Some "APPROVAL"; Some "other" ]
    let recipients = Gen.elements [ None; Some("user", None); Some("agent", Some ws); Some("agent", None); Some("agent", Some "bob"); Some("user", Some ws) ]
    Check.One(
        quick 300,
        Prop.forAll (Arb.fromGen (Gen.zip3 texts kinds recipients)) (fun (title, kind, recipient) ->
            let fields =
                [ yield "title", Json.str title
                  match kind with Some k -> yield "kind", Json.str k | None -> ()
                  match recipient with
                  | Some(t, id) ->
                      yield "recipient_type", Json.str t
                      match id with Some i -> yield "recipient_id", Json.str i | None -> ()
                  | None -> () ]
            let titleOk = title.Trim() <> "" && title.Length <= ToolSpecs.maxTitleChars
            let kindOk = match kind with Some k -> k.ToLowerInvariant() = "task" || k.ToLowerInvariant() = "approval" | None -> false
            let recipientOk =
                match recipient with
                | None | Some("user", None) -> Some ToUser
                | Some("agent", Some i) when i = ws -> Some(ToAgent (WorkspaceId.tryParse ws).Value)
                | _ -> None
            match parse "create_request" fields with
            | Ok(CreateRequest r) ->
                titleOk && kindOk && Some r.Recipient = recipientOk && r.Title = title.Trim()
                && (r.Kind = ApprovalRequest) = (kind.Value.ToLowerInvariant() = "approval")
            | Ok _ -> false
            | Result.Error e -> not (titleOk && kindOk && recipientOk.IsSome) && not (e.Contains "\n"))
    )

[<Fact>]
let ``example: create_approval is create_request for an approval of the user; the other tools take their ids and choices`` () =
    Assert.Equal(
        Ok(CreateRequest { Kind = ApprovalRequest; Recipient = ToUser; Title = "Ship it?"; Detail = Some "v2"; Priority = None }),
        parse "create_approval" [ "title", Json.str " Ship it? "; "detail", Json.str "v2" ]
    )
    Assert.Equal(Ok(ListRequests(Mine, None)), parse "list_requests" [])
    Assert.Equal(Ok(ListRequests(AddressedToMe, Some "info_requested")), parse "list_requests" [ "box", Json.str "Inbox"; "status", Json.str "INFO_REQUESTED" ])
    Assert.True(Result.isError (parse "list_requests" [ "status", Json.str "open" ]))
    Assert.Equal(Ok(RespondToRequest(rid, MarkDone)), parse "respond_to_request" [ "request_id", Json.str " req-1 "; "action", Json.str "done" ])
    Assert.True(Result.isError (parse "respond_to_request" [ "request_id", Json.str "req-1"; "action", Json.str "maybe" ]))
    Assert.True(Result.isError (parse "respond_to_request" [ "request_id", Json.str "req-1" ]))
    Assert.True(Result.isError (parse "get_request" [ "request_id", Json.str "  " ]))
    Assert.True(Result.isError (parse "add_request_message" [ "request_id", Json.str "req-1"; "body", Json.str "" ]))
    Assert.Equal(Ok(CancelRequest rid), parse "cancel_request" [ "request_id", Json.str "req-1" ])

// ---------------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: a platform without the requests routes (404 not naming a request) gets one line, after one request`` () =
    let bodies = Gen.elements [ "404 page not found"; "{\"error\":\"not found\"}"; ""; "<html>nginx</html>"; "{\"error\":\"no such route\"}" ]
    Check.One(
        quick 100,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements requestCalls) bodies)) (fun (call, body) ->
            let run = runWith (fun m p r -> if p.Contains "/requests" then reply 404 body else happy m p r) ctx call
            run.Output.IsError
            && run.Output.Text.StartsWith "Error: this platform has no requests inbox (HTTP 404 on "
            && not (run.Output.Text.Contains "\n")
            && not (run.Output.Text.Contains cfg.Token)
            && run.Requests.Length = 1)
    )

[<Fact>]
let ``rule: a request's own 404, a 5xx, a transport failure or a timeout are that call's error, words of the platform kept`` () =
    let answers =
        Gen.elements
            [ reply 404 "{\"error\":\"request not found\"}"
              reply 404 "{\"error\":\"request not found or already resolved\"}"
              reply 500 "{\"error\":\"db down\"}"
              reply 503 ""
              reply 409 "{\"error\":\"request expired\"}"
              reply 403 "{\"error\":\"not the recipient\"}"
              TransportError "connection refused"
              TimedOut 10.0 ]
    Check.One(
        quick 100,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements requestCalls) answers)) (fun (call, answer) ->
            let run = runWith (fun m p r -> if p.Contains "/requests" then answer else happy m p r) ctx call
            let words =
                match answer with
                | Reply(_, body) -> ToolKit.platformMessage body
                | TransportError m -> m
                | TimedOut _ -> "did not answer"
            run.Output.IsError
            && run.Output.Text.StartsWith "Error: "
            && not (run.Output.Text.Contains "no requests inbox")
            && run.Output.Text.Contains words)
    )

[<Fact>]
let ``example: the requests tools send the routes of §7.1 and answer the platform's JSON`` () =
    let routes =
        [ for call in requestCalls ->
              let run = runWith served ctx call
              Assert.False(run.Output.IsError, run.Output.Text)
              Assert.NotNull(Json.tryParse run.Output.Text |> Option.toObj)
              let r = run.Requests |> List.exactlyOne
              r.Method, pathOf r ]
    Assert.Equal<(HttpMethod * string) list>(
        [ Post, own + "/requests"
          Get, own + "/requests"
          Get, own + "/requests/inbox"
          Get, own + "/requests/req-1"
          Post, own + "/requests/req-1/respond"
          Post, own + "/requests/req-1/messages"
          Post, own + "/requests/req-1/cancel" ],
        routes
    )
    let created = runWith served ctx requestCalls.Head
    Assert.Equal(Some "req-1", Json.tryParse created.Output.Text |> Option.bind (Json.stringProp "request_id"))
    Assert.Contains("request_update", created.Output.Text)

[<Fact>]
let ``rule: what a request says is redacted of secret shapes before it leaves`` () =
    let secret = "ghp_" + String('A', 36)
    let r = { Kind = TaskRequest; Recipient = ToUser; Title = $"use {secret}"; Detail = Some $"key {secret}"; Priority = Some "high" }
    for call in [ CreateRequest r; AddRequestMessage(rid, $"here: {secret}") ] do
        let run = runWith served ctx call
        let body = match (List.exactlyOne run.Requests).Body with JsonBody b -> b | _ -> ""
        Assert.DoesNotContain(secret, body)
        Assert.Contains("[REDACTED]", body)

[<Fact>]
let ``example: create_request's body names the agent recipient, and an agent cannot ask itself`` () =
    let peer = (WorkspaceId.tryParse "0b7e7a2c-1111-4222-8333-944445555666").Value
    let run = runWith served ctx (CreateRequest { Kind = TaskRequest; Recipient = ToAgent peer; Title = "Review"; Detail = None; Priority = None })
    let body = match (List.exactlyOne run.Requests).Body with JsonBody b -> (Json.tryParse b).Value | _ -> null
    Assert.Equal(Some "agent", Json.stringProp "recipient_type" body)
    Assert.Equal(Some peer.Value, Json.stringProp "recipient_id" body)
    Assert.Equal(Some "task", Json.stringProp "kind" body)
    let self = runWith served ctx (CreateRequest { Kind = TaskRequest; Recipient = ToAgent cfg.WorkspaceId; Title = "x"; Detail = None; Priority = None })
    Assert.True(self.Output.IsError)
    Assert.Empty(self.Requests)

// ---------------------------------------------------------------------------------------------
// The request_update message
// ---------------------------------------------------------------------------------------------

let private updateGen: Gen<RequestUpdate.Update> =
    gen {
        let! id = Gen.elements [ "req-1"; "7c1e0000-0000-4000-8000-000000000001"; "a\"b" ]
        let! event = Gen.elements [ "created"; "responded"; "message"; "cancelled" ]
        let! status = Gen.elements [ "pending"; "info_requested"; "approved"; "rejected"; "done"; "cancelled" ]
        let! kind = Gen.elements [ "task"; "approval" ]
        let! title = Gen.elements [ "Deploy v2?"; "line\nbreak"; ""; String('t', 300) ]
        let! actor = Gen.elements [ "user"; "agent" ]
        let! body = Gen.elements [ None; Some "why?" ]
        let! source = Gen.elements [ RequestUpdate.FromAgent; RequestUpdate.PermissionRelay; RequestUpdate.LoopGuard ]
        return
            { RequestUpdate.Update.RequestId = id
              Event = event
              Status = status
              Kind = kind
              Title = title
              ActorType = actor
              ActorId = (if actor = "agent" then Some "9eea0000-0000-4000-8000-0000000000a1" else None)
              Body = body
              Source = source }
    }

let private rowOf (u: RequestUpdate.Update) =
    Json.obj
        [ "id", Json.str "act-1"
          "seq", Json.num 7
          "activity_type", Json.str "a2a_receive"
          "method", Json.str RequestUpdate.method
          "source_id", (match u.ActorId with Some a -> Json.str a | None -> Json.nul)
          "summary", Json.str $"Request \"{u.Title}\" {u.Status}"
          "created_at", Json.str "2026-12-07T12:00:00Z"
          "request_body", RequestUpdate.json u ]

[<Fact>]
let ``rule: a request_update row is a message of its own kind, kept whole by the ledger file`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen updateGen) (fun u ->
            match Activity.parseRow (rowOf u) with
            | Ok row ->
                let m = Ledger.messageOf cfg.WorkspaceId row
                let back = Journal.messageOfJson (Journal.messageJson m)
                m.Kind = RequestUpdate u && back = Some m && Ledger.kindName m.Kind = "request_update"
            | Result.Error _ -> false)
    )

[<Fact>]
let ``rule: a pushed request update names its request in the header and its reply hint names the tool that answers it`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen updateGen) (fun u ->
            let row = (Activity.parseRow (rowOf u) |> Result.toOption).Value
            let m = Ledger.messageOf cfg.WorkspaceId row
            let ev = Channel.event m
            let lines = ev.Content.Split('\n')
            let meta = Map.ofList ev.Meta
            let hint = lines[lines.Length - 1]
            let expectedTool =
                match u.Event with
                | "created" -> "respond_to_request("
                | "message" -> "add_request_message("
                | _ -> "inbox_pop("
            lines[0].Contains $"request_id={u.RequestId}"
            && lines[0].StartsWith "[request \""
            && not (lines[0].Contains "line\nbreak")
            && hint.StartsWith "\u21a9 "
            && hint.Contains expectedTool
            && meta.TryFind "kind" = Some "request_update"
            && meta.TryFind "request_id" = Some u.RequestId
            && meta.TryFind "request_status" = Some u.Status)
    )

[<Fact>]
let ``example: the inbox tools show a request update with its request`` () =
    let u: Molecule.Protocol.RequestUpdate.Update = { RequestId = "req-1"; Event = "responded"; Status = "approved"; Kind = "approval"; Title = "Deploy?"; ActorType = "user"; ActorId = None; Body = None; Source = RequestUpdate.FromAgent }
    let m = Ledger.messageOf cfg.WorkspaceId (Activity.parseRow (rowOf u) |> Result.toOption).Value
    let json = InboxTools.messageJson "" None m
    Assert.Equal(Some "request_update", Json.stringProp "kind" json)
    Assert.Equal(Some "approved", json |> Json.path [ "request"; "status" ] |> Option.bind Json.asString)
    Assert.Equal("Request \"Deploy?\" approved", m.Text)
    Assert.StartsWith("[request \"Deploy?\" \u00b7 approved by the user \u00b7 status=approved \u00b7 request_id=req-1]", (Channel.event m).Content)
