/// The requests inbox and approvals over HTTP on the real platform (127.0.0.1, port 0): every route of spec §7.1–7.2
/// with its errors and statuses, the local extensions (expires_at, source, expired), the doorbells on the right
/// streams, the request_update rows delivered to the agents, and the console's own routes through which the user
/// answers.
module Molecule.Tests.Platform.RequestsHttpTests

open System
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Molecule.Platform
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.DeliveryHttpTests
open Molecule.Tests.Platform.StreamHttpTests
module Json = Molecule.Protocol.Json

let private requestFields =
    [ "id"; "kind"; "requester_type"; "requester_id"; "org_id"; "recipient_type"; "recipient_id"; "title"; "detail"; "status"
      "responder_type"; "responder_id"; "priority"; "created_at"; "updated_at"; "responded_at"; "expires_at"; "source" ]

/// The request_update rows of a workspace's log, oldest first, with their request bodies parsed.
let private updates (c: Client) (ws: Ws) : Task<JsonObject list> =
    task {
        let! log = c.Send("GET", $"/workspaces/{ws.Id}/activity?type=a2a_receive", token = ws.Token)
        Assert.Equal(200, log.Code)

        return
            rows log
            |> List.filter (fun r -> str r "method" = "request_update")
            |> List.rev
            |> List.map (fun r -> r.AsObject())
    }

let private eq (expected: 'a list) (actual: 'a list) = Assert.Equal<'a list>(expected, actual)

let private bodyOf (row: JsonObject) = row["request_body"].AsObject()

[<AbstractClass>]
type RequestRoutes<'E when 'E :> IEngine and 'E: (new: unit -> 'E)>(fx: PlatformFixture<'E>) =
    let c = fx.Client
    let admin = fx.Admin
    let url = fx.Platform.Url

    let team () =
        task {
            let! lead = createWs c admin "lead" None []
            let! a = createWs c admin "alpha" (Some lead.Id) []
            let! b = createWs c admin "beta" (Some lead.Id) []
            return lead, a, b
        }

    let raise (ws: Ws) (body: string) =
        task {
            let! r = c.Send("POST", $"/workspaces/{ws.Id}/requests", body, ws.Token)
            Assert.True((r.Code = 201), r.Text)
            Assert.Equal("pending", str r.Json "status")
            return str r.Json "request_id"
        }

    interface IClassFixture<PlatformFixture<'E>>

    [<Fact>]
    member _.``requests: create answers 201 pending; bad bodies give the reference's texts``() =
        task {
            let! _, a, b = team ()
            let post body = c.Send("POST", $"/workspaces/{a.Id}/requests", body, a.Token)
            let! r = post """{"kind":"approval","recipient_type":"user","title":"Deploy v2?","detail":"to prod","priority":"high"}"""
            Assert.Equal(201, r.Code)
            eq [ "request_id"; "status" ] ([ for kv in r.Json.AsObject() -> kv.Key ])
            let! garbage = post "{"
            Assert.Equal((400, Requests.invalidBody), (garbage.Code, garbage.Error))
            let! noTitle = post """{"kind":"task","recipient_type":"user"}"""
            Assert.Equal((400, Requests.invalidBody), (noTitle.Code, noTitle.Error))
            let! kind = post """{"kind":"chore","recipient_type":"user","title":"t"}"""
            Assert.Equal((400, "request: kind must be 'task' or 'approval'"), (kind.Code, kind.Error))
            let! typ = post """{"kind":"task","recipient_type":"robot","title":"t"}"""
            Assert.Equal((400, "request: type must be 'user' or 'agent'"), (typ.Code, typ.Error))
            let! noAgent = post """{"kind":"task","recipient_type":"agent","title":"t"}"""
            Assert.Equal((400, Requests.badRecipient), (noAgent.Code, noAgent.Error))
            let! unknown = post $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{Guid.NewGuid()}}","title":"t"}"""
            Assert.Equal((404, Requests.unknownRecipient), (unknown.Code, unknown.Error))
            let! expiry = post """{"kind":"task","recipient_type":"user","title":"t","expires_at":"tomorrow"}"""
            Assert.Equal((400, Requests.badExpiry), (expiry.Code, expiry.Error))
            let! source = post """{"kind":"task","recipient_type":"user","title":"t","source":"cron"}"""
            Assert.Equal((400, Requests.Source.invalid), (source.Code, source.Error))
            let! noToken = c.Send("POST", $"/workspaces/{a.Id}/requests", """{"kind":"task","recipient_type":"user","title":"t"}""")
            Assert.Equal((401, "missing workspace auth token"), (noToken.Code, noToken.Error))
            let! otherToken = c.Send("POST", $"/workspaces/{a.Id}/requests", """{"kind":"task","recipient_type":"user","title":"t"}""", b.Token)
            Assert.Equal(401, otherToken.Code)
        }

    [<Fact>]
    member _.``requests: lists of raised and addressed ones, newest first, the reference's fields, status filter``() =
        task {
            let! _, a, b = team ()
            let! first = raise a """{"kind":"approval","recipient_type":"user","title":"one"}"""
            let! second = raise a $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{b.Id}}","title":"two","detail":"d"}"""
            let! mine = c.Send("GET", $"/workspaces/{a.Id}/requests", token = a.Token)
            Assert.Equal(200, mine.Code)
            eq [ second; first ] (idsOf mine)
            let one = (List.head (rows mine)).AsObject()
            Assert.Equal<string list>(requestFields, [ for kv in one -> kv.Key ])
            Assert.Equal(("agent", a.Id, "agent", b.Id), (str one "requester_type", str one "requester_id", str one "recipient_type", str one "recipient_id"))
            Assert.Equal(("normal", "agent", "pending"), (str one "priority", str one "source", str one "status"))
            Assert.Null(one["responded_at"])
            let! inbox = c.Send("GET", $"/workspaces/{b.Id}/requests/inbox", token = b.Token)
            eq [ second ] (idsOf inbox)
            let! bRaised = c.Send("GET", $"/workspaces/{b.Id}/requests", token = b.Token)
            Assert.Equal<string list>([], idsOf bRaised)
            let! approvals = c.Send("GET", $"/workspaces/{a.Id}/requests?status=pending", token = a.Token)
            Assert.Equal(2, (rows approvals).Length)
            let! done' = c.Send("GET", $"/workspaces/{a.Id}/requests?status=done", token = a.Token)
            Assert.Equal<string list>([], idsOf done')
            let! bad = c.Send("GET", $"/workspaces/{a.Id}/requests?status=maybe", token = a.Token)
            Assert.Equal((400, Requests.RequestStatus.invalid), (bad.Code, bad.Error))
        }

    [<Fact>]
    member _.``requests: an agent's answer — only the recipient, the kind's actions, once; the requester hears it once``() =
        task {
            let! _, a, b = team ()
            let! task' = raise a $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{b.Id}}","title":"Review PR 7"}"""
            let respond (ws: Ws) (rid: string) (action: string) = c.Send("POST", $"/workspaces/{ws.Id}/requests/{rid}/respond", $$"""{"action":"{{action}}"}""", ws.Token)
            let! byRequester = respond a task' "done"
            Assert.Equal((403, Requests.notRecipient), (byRequester.Code, byRequester.Error))
            let! wrongAction = respond b task' "approved"
            Assert.Equal((400, Requests.invalidAction), (wrongAction.Code, wrongAction.Error))
            let! nonsense = respond b task' "maybe"
            Assert.Equal((400, Requests.invalidAction), (nonsense.Code, nonsense.Error))
            let! noAction = c.Send("POST", $"/workspaces/{b.Id}/requests/{task'}/respond", "{}", b.Token)
            Assert.Equal((400, Requests.invalidBody), (noAction.Code, noAction.Error))
            let! done' = respond b task' "done"
            Assert.Equal(200, done'.Code)
            Assert.Equal(Json.compact (Json.obj [ "request_id", Json.str task'; "status", Json.str "done" ]), done'.Text)
            let! again = respond b task' "rejected"
            Assert.Equal((404, Requests.notFoundOrResolved), (again.Code, again.Error))
            let! missing = respond b (string (Guid.NewGuid())) "done"
            Assert.Equal((404, Requests.notFoundOrResolved), (missing.Code, missing.Error))
            // self-addressed: the recipient is the requester
            let! self = raise a $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{a.Id}}","title":"note to self"}"""
            let! selfAnswer = respond a self "done"
            Assert.Equal((400, Requests.responderIsRequester), (selfAnswer.Code, selfAnswer.Error))
            // a request for the user is not an agent's to answer
            let! forUser = raise a """{"kind":"approval","recipient_type":"user","title":"Deploy?"}"""
            let! byAgent = respond b forUser "approved"
            Assert.Equal((403, Requests.notRecipient), (byAgent.Code, byAgent.Error))
            let! got = c.Send("GET", $"/workspaces/{a.Id}/requests/{task'}", token = a.Token)
            Assert.Equal(("done", "agent", b.Id), (at got.Json "request.status", at got.Json "request.responder_type", at got.Json "request.responder_id"))
            let! rowsA = updates c a
            Assert.Equal(1, rowsA.Length)
            let row = rowsA[0]
            Assert.Equal((b.Id, "Request \"Review PR 7\" marked done by beta"), (str row "source_id", str row "summary"))
            let body = bodyOf row
            Assert.Equal((task', "responded", "done", "task"), (str body "request_id", str body "event", str body "status", str body "kind"))
            Assert.Equal(("agent", b.Id, "agent"), (str body "actor_type", str body "actor_id", str body "source"))
            // the recipient heard of the request when it was created
            let! rowsB = updates c b
            eq [ "created" ] (rowsB |> List.map (fun r -> str (bodyOf r) "event"))
            Assert.Equal(Some a.Id, Option.ofObj (str rowsB[0] "source_id"))
        }

    [<Fact>]
    member _.``requests: thread — participants only; a non-requester's message flips it to info_requested; cancel by the requester``() =
        task {
            let! lead, a, b = team ()
            let! rid = raise a $$"""{"kind":"approval","recipient_type":"agent","recipient_id":"{{b.Id}}","title":"Merge?"}"""
            let say (ws: Ws) body = c.Send("POST", $"/workspaces/{ws.Id}/requests/{rid}/messages", body, ws.Token)
            let! ask = say b """{"body":"which branch?","author_type":"user"}"""
            Assert.Equal(201, ask.Code)
            Assert.Equal(("created", rid), (str ask.Json "status", str ask.Json "request_id"))
            let! noAuthorType = say b """{"body":"x"}"""
            Assert.Equal((400, Requests.invalidBody), (noAuthorType.Code, noAuthorType.Error))
            let! outsider = say lead """{"body":"me too","author_type":"agent"}"""
            Assert.Equal((403, Requests.notParticipant), (outsider.Code, outsider.Error))
            let! reply = say a """{"body":"main","author_type":"agent"}"""
            Assert.Equal(201, reply.Code)
            let! got = c.Send("GET", $"/workspaces/{b.Id}/requests/{rid}", token = b.Token)
            Assert.Equal("info_requested", at got.Json "request.status")
            let msgs = (node got.Json "messages").AsArray() |> List.ofSeq
            eq [ "which branch?"; "main" ] (msgs |> List.map (fun m -> str m "body"))
            // author bound to the caller whatever author_type says
            eq [ "agent", b.Id; "agent", a.Id ] (msgs |> List.map (fun m -> str m "author_type", str m "author_id"))
            Assert.Equal<string list>([ "id"; "request_id"; "author_type"; "author_id"; "body"; "created_at" ], [ for kv in msgs[0].AsObject() -> kv.Key ])
            let! notParticipant = c.Send("GET", $"/workspaces/{lead.Id}/requests/{rid}", token = lead.Token)
            Assert.Equal((403, Requests.notParticipant), (notParticipant.Code, notParticipant.Error))
            let! missing = c.Send("GET", $"/workspaces/{a.Id}/requests/{Guid.NewGuid()}", token = a.Token)
            Assert.Equal((404, Requests.notFound), (missing.Code, missing.Error))
            let! byRecipient = c.Send("POST", $"/workspaces/{b.Id}/requests/{rid}/cancel", "{}", b.Token)
            Assert.Equal((403, Requests.notRequester), (byRecipient.Code, byRecipient.Error))
            let! cancelled = c.Send("POST", $"/workspaces/{a.Id}/requests/{rid}/cancel", "{}", a.Token)
            Assert.Equal(Json.compact (Json.obj [ "request_id", Json.str rid; "status", Json.str "cancelled" ]), cancelled.Text)
            let! twice = c.Send("POST", $"/workspaces/{a.Id}/requests/{rid}/cancel", "{}", a.Token)
            Assert.Equal((404, Requests.notFoundOrResolved), (twice.Code, twice.Error))
            let! late = say b """{"body":"still there?","author_type":"agent"}"""
            Assert.Equal((409, Requests.alreadyResolved), (late.Code, late.Error))
            // a heard b's question; b heard the request, a's reply and the cancellation
            let! rowsA = updates c a
            eq [ "message", "which branch?" ] (rowsA |> List.map (fun r -> str (bodyOf r) "event", str (bodyOf r) "body"))
            let! rowsB = updates c b
            eq [ "created"; "message"; "cancelled" ] (rowsB |> List.map (fun r -> str (bodyOf r) "event"))
        }

    [<Fact>]
    member _.``requests: past expires_at an open request reads expired and its answer is 409; source is echoed``() =
        task {
            let! _, a, _ = team ()
            let past = DateTimeOffset.UtcNow.AddSeconds(-1.0).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'")
            let! created = c.Send("POST", $"/workspaces/{a.Id}/requests", $$"""{"kind":"approval","recipient_type":"user","title":"Allow Bash?","source":"permission_relay","expires_at":"{{past}}"}""", a.Token)
            Assert.Equal((201, "expired"), (created.Code, str created.Json "status"))
            let rid = str created.Json "request_id"
            let! got = c.Send("GET", $"/workspaces/{a.Id}/requests/{rid}", token = a.Token)
            Assert.Equal(("expired", "permission_relay"), (at got.Json "request.status", at got.Json "request.source"))
            Assert.StartsWith(past.TrimEnd 'Z', at got.Json "request.expires_at")
            let! expired = c.Send("GET", $"/workspaces/{a.Id}/requests?status=expired", token = a.Token)
            eq [ rid ] (idsOf expired)
            let! pending = c.Send("GET", $"/workspaces/{a.Id}/requests?status=pending", token = a.Token)
            Assert.DoesNotContain(rid, idsOf pending)
            let! answer = c.Send("POST", $"/admin/inbox/{rid}/respond", """{"action":"approved"}""", admin)
            Assert.Equal((409, Requests.expired), (answer.Code, answer.Error))
        }

    [<Fact>]
    member _.``requests: the user answers through the console's routes; the requester gets one request_update per answer``() =
        task {
            let! lead, a, b = team ()
            let! rid = raise a """{"kind":"approval","recipient_type":"user","title":"Deploy v2?"}"""
            let! ask = raise b """{"kind":"task","recipient_type":"user","title":"Rotate keys"}"""
            let! inbox = c.Send("GET", "/admin/inbox", token = admin)
            Assert.Equal(200, inbox.Code)
            Assert.Contains(rid, (node inbox.Json "requests").AsArray() |> Seq.map (fun r -> str r "id"))
            let! forA = c.Send("GET", $"/admin/inbox?workspace_id={a.Id}", token = admin)
            eq [ rid ] ((node forA.Json "requests").AsArray() |> Seq.map (fun r -> str r "id") |> List.ofSeq)
            Assert.Equal(1, (node forA.Json "counts.pending").GetValue<int>())
            Assert.Equal(0, (node forA.Json "counts.approved").GetValue<int>())
            let! badWs = c.Send("GET", "/admin/inbox?workspace_id=nope", token = admin)
            Assert.Equal(400, badWs.Code)
            let! byAgent = c.Send("GET", "/admin/inbox", token = a.Token)
            Assert.Equal(401, byAgent.Code)
            let! details = c.Send("POST", $"/admin/inbox/{ask}/messages", """{"body":"Which keys?"}""", admin)
            Assert.Equal(201, details.Code)
            let! approve = c.Send("POST", $"/admin/inbox/{rid}/respond", """{"action":"approved"}""", admin)
            Assert.Equal(200, approve.Code)
            Assert.Equal("approved", str approve.Json "status")
            let! again = c.Send("POST", $"/admin/inbox/{rid}/respond", """{"action":"rejected"}""", admin)
            Assert.Equal((404, Requests.notFoundOrResolved), (again.Code, again.Error))
            let! noBody = c.Send("POST", $"/admin/inbox/{ask}/messages", "{}", admin)
            Assert.Equal((400, Requests.invalidBody), (noBody.Code, noBody.Error))
            let! unknown = c.Send("GET", $"/admin/inbox/{Guid.NewGuid()}", token = admin)
            Assert.Equal((404, Requests.notFound), (unknown.Code, unknown.Error))
            // a request between agents (here: the lead's note to itself) is not the user's to answer or join
            let! betweenAgents = raise lead $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{lead.Id}}","title":"theirs"}"""
            let! notTheUsers = c.Send("POST", $"/admin/inbox/{betweenAgents}/respond", """{"action":"done"}""", admin)
            Assert.Equal((403, Requests.notRecipient), (notTheUsers.Code, notTheUsers.Error))
            let! notAParticipant = c.Send("POST", $"/admin/inbox/{betweenAgents}/messages", """{"body":"hello"}""", admin)
            Assert.Equal((403, Requests.notParticipant), (notAParticipant.Code, notAParticipant.Error))
            let! thread = c.Send("GET", $"/admin/inbox/{ask}", token = admin)
            Assert.Equal(("info_requested", "user"), (at thread.Json "request.status", at thread.Json "messages.0.author_type"))
            Assert.Null(node thread.Json "messages.0.author_id")
            let! rowsA = updates c a
            Assert.Equal(1, rowsA.Length)
            Assert.Null(rowsA[0]["source_id"])
            Assert.Equal("Request \"Deploy v2?\" approved by the user", str rowsA[0] "summary")
            Assert.Equal(("responded", "approved", "user"), (str (bodyOf rowsA[0]) "event", str (bodyOf rowsA[0]) "status", str (bodyOf rowsA[0]) "actor_type"))
            Assert.Null((bodyOf rowsA[0])["actor_id"])
            let! rowsB = updates c b
            eq [ "message", "Which keys?" ] (rowsB |> List.map (fun r -> str (bodyOf r) "event", str (bodyOf r) "body"))
            // the rows are ordinary inbound rows: seq'd, and the ack floor covers them
            let first = List.head rowsB
            let seq = first["seq"].GetValue<int64>()
            let! ack = c.Send("POST", $"/workspaces/{b.Id}/activity/ack", $$"""{"acked_seq":{{seq}}}""", b.Token)
            Assert.Equal(seq, ack.Json["last_acked_seq"].GetValue<int64>())
        }

    [<Fact>]
    member _.``requests: doorbells — REQUEST_CREATED on the recipient (or the requester for the user), RESPONDED and MESSAGE on the requester``() =
        task {
            let! _, a, b = team ()
            use! sa = openStream url a.Id a.Token
            use! sb = openStream url b.Id b.Token
            let! _ = sa.Next(TimeSpan.FromSeconds 5.0)
            let! _ = sb.Next(TimeSpan.FromSeconds 5.0)
            let! forUser = raise a """{"kind":"approval","recipient_type":"user","title":"Ship?"}"""
            let! onA = framesUntil sa (fun e -> typeOf e = "REQUEST_CREATED")
            let created = dataOf (List.last onA)
            Assert.Equal<string list>([ "kind"; "recipient_id"; "recipient_type"; "request_id"; "title" ], keysOf created)
            Assert.Equal((forUser, "user", "Ship?"), (sv created "request_id", sv created "recipient_type", sv created "title"))
            let! forB = raise a $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{b.Id}}","title":"Check logs"}"""
            let! onB = framesUntil sb (fun e -> typeOf e = "REQUEST_CREATED")
            Assert.Equal(forB, sv (dataOf (List.last onB)) "request_id")
            // the recipient's request_update row rang ACTIVITY_LOGGED on b before or after the doorbell
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/requests/{forB}/messages", """{"body":"which ones?","author_type":"agent"}""", b.Token)
            let! msg = framesUntil sa (fun e -> typeOf e = "REQUEST_MESSAGE")
            let m = dataOf (List.last msg)
            Assert.Equal<string list>([ "author_id"; "author_type"; "message_id"; "request_id" ], keysOf m)
            Assert.Equal((b.Id, "agent"), (sv m "author_id", sv m "author_type"))
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/requests/{forB}/respond", """{"action":"done"}""", b.Token)
            let! responded = framesUntil sa (fun e -> typeOf e = "REQUEST_RESPONDED")
            let r = dataOf (List.last responded)
            Assert.Equal<string list>([ "kind"; "request_id"; "responder_id"; "responder_type"; "status"; "title" ], keysOf r)
            Assert.Equal(("done", b.Id), (sv r "status", sv r "responder_id"))
            Assert.Contains(msg @ responded, fun e -> typeOf e = "ACTIVITY_LOGGED")
        }

    [<Fact>]
    member _.``approvals: create, list, decide once, withdraw by the creator only, with their events``() =
        task {
            let! lead, a, b = team ()
            use! sa = openStream url a.Id a.Token
            use! sl = openStream url lead.Id lead.Token
            let! _ = sa.Next(TimeSpan.FromSeconds 5.0)
            let! _ = sl.Next(TimeSpan.FromSeconds 5.0)
            let post (ws: Ws) path body = c.Send("POST", $"/workspaces/{ws.Id}/approvals{path}", body, ws.Token)
            let! created = post a "" """{"action":"deploy","reason":"release","task_id":"t-1","context":{"env":"prod"}}"""
            Assert.Equal(201, created.Code)
            let aid = str created.Json "approval_id"
            Assert.Equal("pending", str created.Json "status")
            let! noAction = post a "" """{"reason":"x"}"""
            Assert.Equal((400, Approvals.invalidBody), (noAction.Code, noAction.Error))
            let! requested = framesUntil sa (fun e -> typeOf e = "APPROVAL_REQUESTED")
            Assert.Equal<string list>([ "action"; "approval_id"; "reason"; "task_id" ], keysOf (dataOf (List.last requested)))
            let! escalated = framesUntil sl (fun e -> typeOf e = "APPROVAL_ESCALATED")
            Assert.Equal(a.Id, sv (dataOf (List.last escalated)) "from_workspace_id")
            let! list = c.Send("GET", $"/workspaces/{a.Id}/approvals", token = a.Token)
            Assert.Equal<string list>([ "id"; "task_id"; "action"; "reason"; "status"; "decided_by"; "decided_at"; "created_at" ], [ for kv in (List.head (rows list)).AsObject() -> kv.Key ])
            let! badDecision = post a $"/{aid}/decide" """{"decision":"maybe"}"""
            Assert.Equal((400, Approvals.badDecision), (badDecision.Code, badDecision.Error))
            let! otherWs = post b $"/{aid}/decide" """{"decision":"approved"}"""
            Assert.Equal((404, Approvals.notFoundOrDecided), (otherWs.Code, otherWs.Error))
            let! withdrawOther = post b $"/{aid}/withdraw" "{}"
            Assert.Equal((403, Approvals.notRequester), (withdrawOther.Code, withdrawOther.Error))
            let! decided = post a $"/{aid}/decide" """{"decision":"denied","decided_by":"ops"}"""
            Assert.Equal(Json.compact (Json.obj [ "approval_id", Json.str aid; "status", Json.str "denied" ]), decided.Text)
            let! denied = framesUntil sa (fun e -> typeOf e = "APPROVAL_DENIED")
            Assert.Equal(("denied", "ops"), (sv (dataOf (List.last denied)) "decision", sv (dataOf (List.last denied)) "decided_by"))
            let! twice = post a $"/{aid}/decide" """{"decision":"approved"}"""
            Assert.Equal((404, Approvals.notFoundOrDecided), (twice.Code, twice.Error))
            let! withdrawDecided = post a $"/{aid}/withdraw" "{}"
            Assert.Equal((409, Approvals.notPending), (withdrawDecided.Code, withdrawDecided.Error))
            let! missing = post a $"/{Guid.NewGuid()}/withdraw" "{}"
            Assert.Equal((404, Approvals.notFound), (missing.Code, missing.Error))
            let! second = post a "" """{"action":"rollback"}"""
            let! withdrawn = post a $"""/{str second.Json "approval_id"}/withdraw""" "{}"
            Assert.Equal("withdrawn", str withdrawn.Json "status")
            let! events = framesUntil sa (fun e -> typeOf e = "APPROVAL_WITHDRAWN")
            Assert.Equal(a.Id, sv (dataOf (List.last events)) "decided_by")
            let! after = c.Send("GET", $"/workspaces/{a.Id}/approvals", token = a.Token)
            eq [ "withdrawn"; "denied" ] (rows after |> List.map (fun r -> str r "status"))
        }

    [<Fact>]
    member _.``approvals: the console lists the team's approvals with their workspace and counts, and the user decides them``() =
        task {
            let! lead, a, b = team ()
            use! sa = openStream url a.Id a.Token
            let! _ = sa.Next(TimeSpan.FromSeconds 5.0)
            let ask (ws: Ws) body =
                task {
                    let! r = c.Send("POST", $"/workspaces/{ws.Id}/approvals", body, ws.Token)
                    Assert.Equal(201, r.Code)
                    return str r.Json "approval_id"
                }

            let! first = ask a """{"action":"deploy","reason":"release","context":{"env":"prod"}}"""
            let! second = ask b """{"action":"rollback"}"""
            let! agentToken = c.Send("GET", "/admin/approvals", token = a.Token)
            Assert.Equal(401, agentToken.Code)
            let! bad = c.Send("GET", "/admin/approvals?workspace_id=nope", token = admin)
            Assert.Equal((400, "workspace_id must be a workspace UUID"), (bad.Code, bad.Error))
            let! all = c.Send("GET", $"/admin/approvals?workspace_id={a.Id}", token = admin)
            Assert.Equal(200, all.Code)
            let listed = [ for r in all.Json["approvals"].AsArray() -> r.AsObject() ]
            eq [ first ] [ for r in listed -> str r "id" ]
            let one = List.head listed
            Assert.Equal<string list>(
                [ "id"; "task_id"; "action"; "reason"; "status"; "decided_by"; "decided_at"; "created_at"; "workspace_id"; "context" ],
                [ for kv in one -> kv.Key ]
            )
            Assert.Equal((a.Id, "{\"env\":\"prod\"}", "pending"), (str one "workspace_id", str one "context", str one "status"))
            Assert.Equal("""{"pending":1,"approved":0,"denied":0,"withdrawn":0}""", all.Json["counts"].ToJsonString())
            let! team' = c.Send("GET", "/admin/approvals", token = admin)
            let ids = [ for r in team'.Json["approvals"].AsArray() -> str r "id" ]
            Assert.True(List.contains first ids && List.contains second ids, team'.Text)
            let decide (id: string) body = c.Send("POST", $"/admin/approvals/{id}/decide", body, admin)
            let! maybe = decide first """{"decision":"maybe"}"""
            Assert.Equal((400, Approvals.badDecision), (maybe.Code, maybe.Error))
            let! missing = decide (string (Guid.NewGuid())) """{"decision":"approved"}"""
            Assert.Equal((404, Approvals.notFoundOrDecided), (missing.Code, missing.Error))
            let! byAgent = c.Send("POST", $"/admin/approvals/{first}/decide", """{"decision":"approved"}""", a.Token)
            Assert.Equal(401, byAgent.Code)
            let! approved = decide first """{"decision":"approved"}"""
            Assert.Equal(Json.compact (Json.obj [ "approval_id", Json.str first; "status", Json.str "approved" ]), approved.Text)
            let! rung = framesUntil sa (fun e -> typeOf e = "APPROVAL_APPROVED")
            Assert.Equal(("approved", "user"), (sv (dataOf (List.last rung)) "decision", sv (dataOf (List.last rung)) "decided_by"))
            let! twice = decide first """{"decision":"denied"}"""
            Assert.Equal((404, Approvals.notFoundOrDecided), (twice.Code, twice.Error))
            let! named = decide second """{"decision":"denied","decided_by":"Ada"}"""
            Assert.Equal("denied", str named.Json "status")
            let! bList = c.Send("GET", $"/workspaces/{b.Id}/approvals", token = b.Token)
            Assert.Equal(("denied", "Ada"), (str (List.head (rows bList)) "status", str (List.head (rows bList)) "decided_by"))
            ignore lead
        }

type RequestRoutesOnSqlite(fx) =
    inherit RequestRoutes<OnSqlite>(fx)

type RequestRoutesOnPostgres(fx) =
    inherit RequestRoutes<OnPostgres>(fx)

/// The nudge sweeper (spec §7.1) on a platform of its own per engine, with short thresholds (2 min open, 5 min
/// between nudges) on the platform clock the test moves, and the sweep every 100 ms.
type RequestNudges() =
    let nudges (c: Client) (ws: Ws) =
        task {
            let! rows = updates c ws
            return rows |> List.filter (fun r -> str (bodyOf r) "event" = "nudge")
        }

    /// Waits (at most 10 s) until the background sweeper has left `count` nudges on `ws`.
    let waitNudges (c: Client) (ws: Ws) (count: int) =
        task {
            let deadline = DateTime.UtcNow.AddSeconds 10.0
            let! first = nudges c ws
            let mutable seen = first

            while seen.Length < count && DateTime.UtcNow < deadline do
                do! Task.Delay 50
                let! again = nudges c ws
                seen <- again

            Assert.True(seen.Length >= count, $"{count} nudge(s) expected on {ws.Id}, {seen.Length} seen")
            return seen
        }

    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``nudges: an idle agent recipient gets one nudge per open request past the threshold, again only after the interval; busy, user and resolved ones none``
        (engine: string)
        =
        task {
            let mutable now = DateTimeOffset.UtcNow

            let opts (o: Server.PlatformOptions) : Server.PlatformOptions =
                { o with
                    Clock = Some(fun () -> now)
                    SweepInterval = TimeSpan.FromHours 1.0
                    NudgeAfter = TimeSpan.FromMinutes 2.0
                    NudgeEvery = TimeSpan.FromMinutes 5.0
                    NudgeInterval = TimeSpan.FromMilliseconds 100.0 }

            use! own = task { return new Own(engine, opts) }
            let c, admin = own.C, own.P.AdminToken
            let! a = createWs c admin "asker" None []
            let! b = createWs c admin "idle-one" None []
            let! busy = createWs c admin "busy-one" None []

            for w in [ b; busy ] do
                let! r = c.Send("POST", "/registry/register", registerBody w.Id, w.Token)
                Assert.Equal(200, r.Code)

            let beat (w: Ws) (active: int) (current: string) =
                task {
                    let body = $$"""{"workspace_id":"{{w.Id}}","error_rate":0.0,"active_tasks":{{active}},"current_task":"{{current}}","uptime_seconds":5}"""
                    let! r = c.Send("POST", "/registry/heartbeat", body, w.Token)
                    Assert.Equal(200, r.Code)
                }

            do! beat busy 1 "deploying"

            let raise (body: string) =
                task {
                    let! r = c.Send("POST", $"/workspaces/{a.Id}/requests", body, a.Token)
                    Assert.True((r.Code = 201), r.Text)
                    return str r.Json "request_id"
                }

            let! open' = raise $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{b.Id}}","title":"Rotate the keys","detail":"staging first"}"""
            let! resolved = raise $$"""{"kind":"task","recipient_type":"agent","recipient_id":"{{b.Id}}","title":"Old one"}"""
            let! forBusy = raise $$"""{"kind":"approval","recipient_type":"agent","recipient_id":"{{busy.Id}}","title":"Ship it?"}"""
            let! _ = raise """{"kind":"task","recipient_type":"user","title":"For the user"}"""
            let! doneIt = c.Send("POST", $"/workspaces/{b.Id}/requests/{resolved}/respond", """{"action":"done"}""", b.Token)
            Assert.Equal(200, doneIt.Code)

            // not yet past the threshold
            Assert.Equal(0, own.P.NudgeNow())
            now <- now.AddMinutes 3.0
            // the sweeper nudges by itself; a pass right after finds nothing more to do
            let! first = waitNudges c b 1
            Assert.Equal(0, own.P.NudgeNow())
            let! onB = nudges c b
            Assert.Equal(1, onB.Length)
            let row = List.head first
            let body = bodyOf row
            Assert.Equal((open', "nudge", "pending", "task"), (str body "request_id", str body "event", str body "status", str body "kind"))
            Assert.Equal(("Rotate the keys", "platform", "agent", "staging first"), (str body "title", str body "actor_type", str body "source", str body "body"))
            Assert.Null(row["source_id"])
            Assert.StartsWith("Reminder: the task request \"Rotate the keys\" from asker has waited 3 min for your answer", str row "summary")
            let! onBusy = nudges c busy
            Assert.Empty(onBusy)
            let! onA = nudges c a
            Assert.Empty(onA)

            // within the interval: nothing; past it: one more, for the same request only
            now <- now.AddMinutes 4.0
            Assert.Equal(0, own.P.NudgeNow())
            now <- now.AddMinutes 2.0
            let! twice = waitNudges c b 2
            Assert.Equal<string list>([ open'; open' ], [ for r in twice -> str (bodyOf r) "request_id" ])

            // the busy recipient, once idle, is nudged too
            do! beat busy 0 ""
            let! busyNow = waitNudges c busy 1
            Assert.Equal(forBusy, str (bodyOf (List.head busyNow)) "request_id")

            // answered: never again
            let! answered = c.Send("POST", $"/workspaces/{b.Id}/requests/{open'}/respond", """{"action":"done"}""", b.Token)
            Assert.Equal(200, answered.Code)
            now <- now.AddHours 2.0
            // a pass ran after the move (the busy one's approval, still open, is nudged again) and left b none
            let! _ = waitNudges c busy 2
            let! final = nudges c b
            Assert.Equal(2, final.Length)
        }
