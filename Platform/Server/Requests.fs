/// Requests and approvals (spec §7.1–7.2): the workspace routes an agent drives with its token, and the console's own
/// routes through which the user answers (admin token, actor "user"). Every change is one transaction: the request
/// saved, its doorbell announced, one `request_update` row on each agent it concerns.
module internal Molecule.Platform.Routes.RequestRoutes

open System
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Requests
open Molecule.Platform.RequestsDecider
open Molecule.Platform.RequestsWire
open Molecule.Platform.Store
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
module Json = Molecule.Protocol.Json

/// The body as a JSON object; a malformed one is the reference's 400 `invalid request body` (a 413 stays).
let private withBody (ctx: HttpContext) (body: JsonObject -> Reply) : Task<Reply> =
    task {
        match! readJson ctx with
        | Error e when e.Code = 400 -> return bad invalidBody
        | Error e -> return e
        | Ok o -> return body o
    }

/// The body read by `parse` (its refusal is the reply), then `next` on what it gave.
let private withParsed (ctx: HttpContext) (parse: JsonObject -> Result<'a, Reply>) (next: 'a -> Reply) : Task<Reply> =
    withBody ctx (fun body ->
        match parse body with
        | Error e -> e
        | Ok v -> next v)

/// The `{requestId}` route value (an id that is not a UUID names no request).
let private routeRequest (ctx: HttpContext) : RequestId option =
    routeGuid ctx "requestId" |> Option.map RequestId

/// Saves a decided change with its doorbell and the request_update row of every live agent it is delivered to.
let private commit (env: Env) (w: IWriter) (c: Change) : Reply =
    let now = env.Now()
    w.SaveRequest c.Request

    match c.Event with
    | MessageAdded m -> w.AddRequestMessage m
    | _ -> ()

    announce env w (announcement now c)
    let name = Feed.nameIn (Store.team w)

    for ws in deliveredTo c do
        match w.Workspace ws with
        | Some target when not (Workspace.isRemoved target) -> insertRow env w (updateRow (newActivityId ()) now name ws c) |> ignore
        | _ -> ()

    answer now c

/// Runs a command on a stored request in one transaction.
let private decideOn (env: Env) (rid: RequestId option) (command: Command) : Reply =
    env.Store.Write(fun w ->
        match decide (env.Now()) (rid |> Option.bind w.Request) command with
        | Error e -> e
        | Ok c -> commit env w c)

let private newMessage (env: Env) (actor: Party) (rid: RequestId option) (text: string) : Message =
    { Id = RequestMessageId(newGuid ())
      RequestId = defaultArg rid (RequestId Guid.Empty)
      Author = actor
      Body = text
      CreatedAt = env.Now() }

let private list (env: Env) (ctx: HttpContext) (scope: WorkspaceId -> RequestScope) : Task<Reply> =
    strictHandler env ctx (fun ws ->
        match parseStatusFilter (query ctx "status") with
        | Error e -> e
        | Ok filter ->
            let now = env.Now()
            let found = env.Store.Read(fun r -> r.Requests(scope ws.Id))
            ok (Json.arr [ for q in listed now filter found -> toJson now q :> JsonNode ]))

// ---------------------------------------------------------------- the workspace routes (an agent, spec §7.1)

/// POST /workspaces/:id/requests → 201 {request_id, status:"pending"} (a loop-guard pause raised again while open: 200
/// with the one raised before).
let create (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        withParsed ctx parseCreate (fun n ->
            env.Store.Write(fun w ->
                let now = env.Now()
                let recipient = Party.agent n.Recipient |> Option.bind w.Workspace

                match RequestsDecider.twinOf now ws.Id n (fun () -> w.Requests(RaisedBy ws.Id)) with
                | Some twin -> RequestsWire.answerTwin now twin
                | None ->
                    match RequestsDecider.create (RequestId(newGuid ())) now ws.Id recipient n with
                    | Error e -> e
                    | Ok c -> commit env w c)))

/// GET /workspaces/:id/requests?status= — raised by the workspace, newest first.
let raised (env: Env) (ctx: HttpContext) : Task<Reply> = list env ctx RaisedBy

/// GET /workspaces/:id/requests/inbox?status= — addressed to the workspace, newest first.
let inbox (env: Env) (ctx: HttpContext) : Task<Reply> = list env ctx AddressedTo

/// GET /workspaces/:id/requests/:requestId → {request, messages}; participants only.
let thread (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun ws ->
        env.Store.Read(fun r ->
            match routeRequest ctx |> Option.bind r.Request with
            | None -> Wire.errorReply 404 Requests.notFound
            | Some q when not (isParticipant (Party.Agent ws.Id) q) -> Wire.errorReply 403 notParticipant
            | Some q -> ok (withThread (env.Now()) q (r.RequestMessages q.Id))))

/// POST /workspaces/:id/requests/:requestId/respond {action}.
let respond (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        withParsed ctx parseAction (fun action -> decideOn env (routeRequest ctx) (Respond(Party.Agent ws.Id, action))))

/// POST /workspaces/:id/requests/:requestId/messages {body, author_type} → 201.
let message (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        withParsed ctx parseMessage (fun text ->
            let actor = Party.Agent ws.Id
            let rid = routeRequest ctx
            decideOn env rid (Say(actor, newMessage env actor rid text))))

/// POST /workspaces/:id/requests/:requestId/cancel (the requester only).
let cancel (env: Env) (ctx: HttpContext) : Task<Reply> =
    gated strictLive env ctx (fun ws -> decideOn env (routeRequest ctx) (Cancel(Party.Agent ws.Id)))

// ---------------------------------------------------------------- the console's routes (the user, admin token)

let private user = Party.User None

let private concerns (ws: WorkspaceId) (q: Request) =
    Party.same (Party.Agent ws) q.Requester || Party.same (Party.Agent ws) q.Recipient

/// GET /admin/inbox?status=&workspace_id= → {requests, counts}: every request of the team (or those a workspace takes
/// part in), newest first, and how many read each status (before the status filter).
let teamInbox (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match parseStatusFilter (query ctx "status"), query ctx "workspace_id" |> Option.filter (String.IsNullOrWhiteSpace >> not) with
        | Error e, _ -> e
        | Ok _, Some text when (parseWorkspaceId text).IsNone -> bad "workspace_id must be a workspace UUID"
        | Ok filter, wsText ->
            let now = env.Now()
            let ws = wsText |> Option.bind parseWorkspaceId
            let all = env.Store.Read(fun r -> r.Requests EveryRequest)
            let mine = all |> List.filter (fun q -> ws |> Option.forall (fun w -> concerns w q))

            ok (
                Json.obj
                    [ "requests", Json.arr [ for q in listed now filter mine -> toJson now q :> JsonNode ]
                      "counts", Json.obj [ for (s, n) in counts now mine -> RequestStatus.text s, Json.num n ] ]
            ))

/// GET /admin/inbox/:requestId → {request, messages}.
let teamThread (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        env.Store.Read(fun r ->
            match routeRequest ctx |> Option.bind r.Request with
            | None -> Wire.errorReply 404 Requests.notFound
            | Some q -> ok (withThread (env.Now()) q (r.RequestMessages q.Id))))

/// POST /admin/inbox/:requestId/respond {action}: the user answers a request addressed to the user.
let userRespond (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withParsed ctx parseAction (fun action -> decideOn env (routeRequest ctx) (Respond(user, action))))

/// POST /admin/inbox/:requestId/messages {body}: the user asks for details (or adds to the thread).
let userMessage (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withParsed ctx parseUserMessage (fun text ->
            let rid = routeRequest ctx
            decideOn env rid (Say(user, newMessage env user rid text))))

// ---------------------------------------------------------------- approvals (spec §7.2)

let private routeApproval (ctx: HttpContext) = routeGuid ctx "approvalId" |> Option.map ApprovalId

let private saveApproval (env: Env) (w: IWriter) (a: Approvals.Approval) =
    w.SaveApproval a
    let parent = w.Workspace a.WorkspaceId |> Option.bind (fun ws -> ws.ParentId)

    for e in Approvals.announcements parent a do
        announce env w e

/// POST /workspaces/:id/approvals → 201 {approval_id, status:"pending"}.
let createApproval (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        withBody ctx (fun body ->
            match Approvals.create (ApprovalId(newGuid ())) (env.Now()) ws.Id body with
            | Error e -> e
            | Ok a ->
                env.Store.Write(fun w -> saveApproval env w a)
                Wire.reply 201 (Json.obj [ "approval_id", Wire.idNode a.Id; "status", Json.str "pending" ])))

/// GET /workspaces/:id/approvals → the newest 50.
let listApprovals (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun ws ->
        env.Store.Read(fun r -> ok (Json.arr [ for a in r.Approvals ws.Id -> Approvals.toJson a :> JsonNode ])))

let private approvalChange (env: Env) (ctx: HttpContext) (change: IWriter -> Approvals.Approval option -> Result<Approvals.Approval, Reply>) =
    env.Store.Write(fun w ->
        match change w (routeApproval ctx |> Option.bind w.Approval) with
        | Error e -> e
        | Ok a ->
            saveApproval env w a
            ok (Json.obj [ "approval_id", Wire.idNode a.Id; "status", Json.str (Approvals.ApprovalStatus.text a.Status) ]))

/// POST /workspaces/:id/approvals/:approvalId/decide {decision, decided_by?}.
let decideApproval (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        withBody ctx (fun body -> approvalChange env ctx (fun _ stored -> Approvals.decide (env.Now()) ws.Id ws.Id.Text stored body)))

/// POST /workspaces/:id/approvals/:approvalId/withdraw (its creator only).
let withdrawApproval (env: Env) (ctx: HttpContext) : Task<Reply> =
    gated strictLive env ctx (fun ws -> approvalChange env ctx (fun _ stored -> Approvals.withdraw (env.Now()) ws.Id stored))

/// GET /admin/approvals?workspace_id= → {approvals, counts}: the newest approvals of every workspace of the team (or
/// of one), newest first, each with its `workspace_id` and `context`, and how many read each status.
let teamApprovals (env: Env) (ctx: HttpContext) : Task<Reply> =
    adminHandler env ctx (fun () ->
        match query ctx "workspace_id" |> Option.filter (String.IsNullOrWhiteSpace >> not) with
        | Some text when (parseWorkspaceId text).IsNone -> bad "workspace_id must be a workspace UUID"
        | wsText ->
            let only = wsText |> Option.bind parseWorkspaceId

            let all =
                env.Store.Read(fun r ->
                    [ for w in r.Workspaces() do
                          if only |> Option.forall ((=) w.Id) then
                              yield! r.Approvals w.Id ])

            let shown = Approvals.newestFirst all

            ok (
                Json.obj
                    [ "approvals", Json.arr [ for a in shown -> Approvals.teamJson a :> JsonNode ]
                      "counts", Json.obj [ for (s, n) in Approvals.counts shown -> Approvals.ApprovalStatus.text s, Json.num n ] ]
            ))

/// POST /admin/approvals/:approvalId/decide {decision, decided_by?}: the user decides (decided_by defaults to "user").
let userDecideApproval (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync adminGate env ctx (fun () ->
        withBody ctx (fun body ->
            approvalChange env ctx (fun _ stored -> Approvals.decideByUser (env.Now()) stored body)))

// ---------------------------------------------------------------- the nudge sweeper (spec §7.1)

/// One nudge pass at the platform's time: each request `Nudges.due` names gets its nudge row on its recipient agent
/// and its last_nudged_at, in one transaction; returns how many were nudged.
let nudgeOnce (env: Env) (settings: Nudges.Settings) : int =
    env.Store.Write(fun w ->
        let now = env.Now()
        let team = Store.team w
        let last = w.LastNudges()
        let due = Nudges.due settings now team.TryFind last.TryFind (w.Requests EveryRequest)
        let name = Feed.nameIn team

        for q in due do
            match Party.agent q.Recipient with
            | Some ws ->
                w.MarkNudged(q.Id, now)
                insertRow env w (Nudges.row (newActivityId ()) now name ws q) |> ignore
            | None -> ()

        if not due.IsEmpty then
            env.Log("nudged " + due.Length.ToString(Globalization.CultureInfo.InvariantCulture) + " open request(s)")

        due.Length)
