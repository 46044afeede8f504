/// The requests inbox (spec §7.1, with the local extensions `expires_at` and `source`): tasks and approvals an agent
/// raises for the user or for another agent. A request's lifecycle is a decider — create, respond, message, cancel →
/// the request as it becomes, or the refusal the route answers — and each change states what it rings (REQUEST_*,
/// spec §1.3) and which agents it is delivered to (one `request_update` row each). Pure: ids, time and names are
/// arguments.
module Molecule.Platform.Requests

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

[<RequireQualifiedAccess>]
type Kind =
    | Task
    | Approval

module Kind =
    let text (k: Kind) =
        match k with
        | Kind.Task -> "task"
        | Kind.Approval -> "approval"

    let tryParse (s: string) =
        match s with
        | "task" -> Some Kind.Task
        | "approval" -> Some Kind.Approval
        | _ -> None

/// Who takes part in a request: the user (the console; an id as the agent gave it) or an agent (its workspace).
[<RequireQualifiedAccess>]
type Party =
    | User of string option
    | Agent of WorkspaceId

module Party =
    let typeText (p: Party) =
        match p with
        | Party.User _ -> "user"
        | Party.Agent _ -> "agent"

    let idText (p: Party) : string option =
        match p with
        | Party.User id -> id
        | Party.Agent w -> Some w.Text

    let agent (p: Party) : WorkspaceId option =
        match p with
        | Party.Agent w -> Some w
        | Party.User _ -> None

    /// The same party: one agent, or the user (the local platform has one user, whatever id an agent names).
    let same (a: Party) (b: Party) =
        match a, b with
        | Party.User _, Party.User _ -> true
        | Party.Agent x, Party.Agent y -> x = y
        | _ -> false

    /// A party from its stored type and id.
    let ofColumns (typ: string) (id: string option) : Party option =
        match typ with
        | "user" -> Some(Party.User id)
        | "agent" -> id |> Option.bind parseWorkspaceId |> Option.map Party.Agent
        | _ -> None

/// What raised the request: an agent's own tool call, Claude Code's permission prompt relayed, or the loop guard.
[<RequireQualifiedAccess>]
type Source =
    | Agent
    | PermissionRelay
    | LoopGuard

module Source =
    let all = [ Source.Agent; Source.PermissionRelay; Source.LoopGuard ]

    let text (s: Source) =
        match s with
        | Source.Agent -> "agent"
        | Source.PermissionRelay -> "permission_relay"
        | Source.LoopGuard -> "loop_guard"

    let tryParse (s: string) = all |> List.tryFind (fun x -> text x = s)
    let invalid = "source must be 'agent', 'permission_relay' or 'loop_guard'"

[<RequireQualifiedAccess>]
type RequestStatus =
    | Pending
    | InfoRequested
    | Done
    | Rejected
    | Approved
    | Cancelled
    /// Read, never stored: an open request past its `expires_at`.
    | Expired

module RequestStatus =
    let all =
        [ RequestStatus.Pending
          RequestStatus.InfoRequested
          RequestStatus.Done
          RequestStatus.Rejected
          RequestStatus.Approved
          RequestStatus.Cancelled
          RequestStatus.Expired ]

    let text (s: RequestStatus) =
        match s with
        | RequestStatus.Pending -> "pending"
        | RequestStatus.InfoRequested -> "info_requested"
        | RequestStatus.Done -> "done"
        | RequestStatus.Rejected -> "rejected"
        | RequestStatus.Approved -> "approved"
        | RequestStatus.Cancelled -> "cancelled"
        | RequestStatus.Expired -> "expired"

    let tryParse (s: string) = all |> List.tryFind (fun x -> text x = s)

    /// Still waiting for an answer.
    let isOpen (s: RequestStatus) = s = RequestStatus.Pending || s = RequestStatus.InfoRequested

    let invalid = "status must be one of: " + String.Join(", ", all |> List.map text)

type Request =
    { Id: RequestId
      Kind: Kind
      Requester: Party
      Recipient: Party
      Title: string
      Detail: string option
      Priority: string
      Source: Source
      ExpiresAt: DateTimeOffset option
      /// As stored; what it reads at a time is `statusAt`.
      Status: RequestStatus
      Responder: Party option
      CreatedAt: DateTimeOffset
      UpdatedAt: DateTimeOffset
      RespondedAt: DateTimeOffset option }

/// A message of a request's thread.
type Message =
    { Id: RequestMessageId
      RequestId: RequestId
      Author: Party
      Body: string
      CreatedAt: DateTimeOffset }

/// The status a request reads at `now`: an open one past its `expires_at` is expired.
let statusAt (now: DateTimeOffset) (r: Request) : RequestStatus =
    match r.ExpiresAt with
    | Some e when RequestStatus.isOpen r.Status && e <= now -> RequestStatus.Expired
    | _ -> r.Status

let isParticipant (p: Party) (r: Request) = Party.same p r.Requester || Party.same p r.Recipient

// ---------------------------------------------------------------- texts (spec §7.1; the local ones marked)

let invalidBody = "invalid request body"
let badKind = "request: kind must be 'task' or 'approval'"
let badType = "request: type must be 'user' or 'agent'"
/// Local: a request for an agent names it.
let badRecipient = "request: recipient_id must be the id of a workspace for an agent recipient"
/// Local: the recipient agent is not a workspace of the team.
let unknownRecipient = "request: recipient workspace not found"
let badExpiry = "expires_at must be an RFC 3339 time"
let notFound = "request not found"
let notFoundOrResolved = "request not found or already resolved"
let notParticipant = "not a participant"
let notRecipient = "not the recipient"
let notRequester = "not the requester"
let invalidAction = "request: invalid action for this request kind"
let responderIsRequester = "request: responder cannot be the requester"
let expired = "request expired"
/// Local: a thread of a resolved request takes no more messages.
let alreadyResolved = "request already resolved"

// ---------------------------------------------------------------- parsing the bodies

/// POST /workspaces/:id/requests, parsed.
type NewRequest =
    { Kind: Kind
      Recipient: Party
      Title: string
      Detail: string option
      Priority: string
      Source: Source
      ExpiresAt: DateTimeOffset option }

let private required (name: string) (o: JsonObject) : Result<string, Reply> =
    match Json.prop name o |> Option.bind Json.asString with
    | Some s when not (String.IsNullOrWhiteSpace s) -> Ok s
    | _ -> Error(bad invalidBody)

let private optional (name: string) (o: JsonObject) : Result<string option, Reply> =
    optString name o |> Result.mapError (fun _ -> bad invalidBody) |> Result.map (Option.filter (String.IsNullOrWhiteSpace >> not))

/// An RFC 3339 time with its offset (`Z` or `±hh:mm`), as UTC.
let parseTime (s: string) : DateTimeOffset option =
    let t = s.Trim()

    if Text.RegularExpressions.Regex.IsMatch(t, @"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$") then
        // .NET reads at most 7 fractional digits (Go writes up to 9)
        let t7 = Text.RegularExpressions.Regex.Replace(t, @"(\.\d{7})\d+", "$1")

        match DateTimeOffset.TryParse(t7, CultureInfo.InvariantCulture, DateTimeStyles.None) with
        | true, v -> Some(v.ToUniversalTime())
        | _ -> None
    else
        None

let private recipientOf (typ: string) (id: string option) : Result<Party, Reply> =
    match typ with
    | "user" -> Ok(Party.User id)
    | "agent" ->
        match id |> Option.bind parseWorkspaceId with
        | Some w -> Ok(Party.Agent w)
        | None -> Error(bad badRecipient)
    | _ -> Error(bad badType)

let parseCreate (body: JsonObject) : Result<NewRequest, Reply> =
    result {
        let! kindText = required "kind" body
        let! typ = required "recipient_type" body
        let! title = required "title" body
        let! kind = Kind.tryParse kindText |> Option.map Ok |> Option.defaultValue (Error(bad badKind))
        let! recipientId = optional "recipient_id" body
        let! recipient = recipientOf typ recipientId
        let! detail = optional "detail" body
        let! priority = optional "priority" body
        let! expiresText = optional "expires_at" body

        let! expires =
            match expiresText with
            | None -> Ok None
            | Some t -> parseTime t |> Option.map (Some >> Ok) |> Option.defaultValue (Error(bad badExpiry))

        let! sourceText = optional "source" body

        let! source =
            match sourceText with
            | None -> Ok Source.Agent
            | Some s -> Source.tryParse s |> Option.map Ok |> Option.defaultValue (Error(bad Source.invalid))

        return
            { Kind = kind
              Recipient = recipient
              Title = title.Trim()
              Detail = detail
              Priority = priority |> Option.map (fun p -> p.Trim()) |> Option.defaultValue "normal"
              Source = source
              ExpiresAt = expires }
    }

/// `{"action": "done"|"rejected"|"approved"}` → the status it asks for.
let parseAction (body: JsonObject) : Result<RequestStatus, Reply> =
    match Json.prop "action" body |> Option.bind Json.asString with
    | None -> Error(bad invalidBody)
    | Some "done" -> Ok RequestStatus.Done
    | Some "rejected" -> Ok RequestStatus.Rejected
    | Some "approved" -> Ok RequestStatus.Approved
    | Some _ -> Error(bad invalidAction)

/// `{"body", "author_type"}`: author_type is required (the reference's binding) but the author is the caller.
let parseMessage (body: JsonObject) : Result<string, Reply> =
    result {
        let! _ = required "author_type" body
        let! text = required "body" body
        return text
    }

/// `{"body"}` of the console's user: the text only (the author is the user).
let parseUserMessage (body: JsonObject) : Result<string, Reply> = required "body" body

/// `?status=` of the lists.
let parseStatusFilter (q: string option) : Result<RequestStatus option, Reply> =
    match q |> Option.filter (String.IsNullOrWhiteSpace >> not) with
    | None -> Ok None
    | Some s -> RequestStatus.tryParse (s.Trim()) |> Option.map (Some >> Ok) |> Option.defaultValue (Error(bad RequestStatus.invalid))

// ---------------------------------------------------------------- the decider

type Command =
    | Respond of actor: Party * RequestStatus
    | Say of actor: Party * Message
    | Cancel of actor: Party

type Event =
    | Created
    | Responded
    | MessageAdded of Message
    | Cancelled

/// A change decided: the request as it becomes, what happened and who did it.
type Change = { Request: Request; Event: Event; Actor: Party }

/// A new request from agent `requester`; `recipient` is the stored workspace of an agent recipient.
let create (id: RequestId) (now: DateTimeOffset) (requester: WorkspaceId) (recipient: Workspace option) (n: NewRequest) : Result<Change, Reply> =
    match n.Recipient, recipient with
    | Party.Agent _, None -> Error(Wire.errorReply 404 unknownRecipient)
    | Party.Agent _, Some w when Workspace.isRemoved w -> Error(Wire.errorReply 404 unknownRecipient)
    | _ ->
        let r =
            { Id = id
              Kind = n.Kind
              Requester = Party.Agent requester
              Recipient = n.Recipient
              Title = n.Title
              Detail = n.Detail
              Priority = n.Priority
              Source = n.Source
              ExpiresAt = n.ExpiresAt
              Status = RequestStatus.Pending
              Responder = None
              CreatedAt = now
              UpdatedAt = now
              RespondedAt = None }

        Ok { Request = r; Event = Created; Actor = Party.Agent requester }

/// Two molecule-mcp processes serving one workspace judge the same messages, so both raise the loop guard's pause: a
/// loop_guard request of `requester` is the open one it already raised with the same title, if there is one (the
/// route answers that one instead of creating a second). Other requests are never merged.
let twinOf (now: DateTimeOffset) (requester: WorkspaceId) (n: NewRequest) (raised: Request list) : Request option =
    let twin (r: Request) =
        r.Source = Source.LoopGuard
        && r.Requester = Party.Agent requester
        && r.Title = n.Title
        && RequestStatus.isOpen (statusAt now r)

    if n.Source = Source.LoopGuard then raised |> List.tryFind twin else None

let private allowedFor (k: Kind) (s: RequestStatus) =
    match k, s with
    | Kind.Approval, (RequestStatus.Approved | RequestStatus.Rejected) -> true
    | Kind.Task, (RequestStatus.Done | RequestStatus.Rejected) -> true
    | _ -> false

let private refuse (code: int) (text: string) : Result<Change, Reply> = Error(Wire.errorReply code text)

let private respond (now: DateTimeOffset) (r: Request) (actor: Party) (action: RequestStatus) =
    match statusAt now r with
    | s when not (RequestStatus.isOpen s || s = RequestStatus.Expired) -> refuse 404 notFoundOrResolved
    | _ when not (Party.same actor r.Recipient) -> refuse 403 notRecipient
    | _ when Party.same actor r.Requester -> refuse 400 responderIsRequester
    | _ when not (allowedFor r.Kind action) -> refuse 400 invalidAction
    | RequestStatus.Expired -> refuse 409 expired
    | _ ->
        Ok
            { Request =
                { r with
                    Status = action
                    Responder = Some actor
                    UpdatedAt = now
                    RespondedAt = Some now }
              Event = Responded
              Actor = actor }

let private say (now: DateTimeOffset) (r: Request) (actor: Party) (m: Message) =
    match statusAt now r with
    | _ when not (isParticipant actor r) -> refuse 403 notParticipant
    | RequestStatus.Expired -> refuse 409 expired
    | s when not (RequestStatus.isOpen s) -> refuse 409 alreadyResolved
    | _ ->
        let status = if Party.same actor r.Requester then r.Status else RequestStatus.InfoRequested

        Ok
            { Request = { r with Status = status; UpdatedAt = now }
              Event = MessageAdded { m with RequestId = r.Id; Author = actor; CreatedAt = now }
              Actor = actor }

let private cancel (now: DateTimeOffset) (r: Request) (actor: Party) =
    match statusAt now r with
    | _ when not (Party.same actor r.Requester) -> refuse 403 notRequester
    | RequestStatus.Expired -> refuse 409 expired
    | s when not (RequestStatus.isOpen s) -> refuse 404 notFoundOrResolved
    | _ ->
        Ok
            { Request = { r with Status = RequestStatus.Cancelled; UpdatedAt = now }
              Event = Cancelled
              Actor = actor }

/// A command on a stored request (None: there is none) at `now` → the change, or the route's refusal.
let decide (now: DateTimeOffset) (stored: Request option) (cmd: Command) : Result<Change, Reply> =
    match stored, cmd with
    | None, Respond _ -> refuse 404 notFoundOrResolved
    | None, _ -> refuse 404 notFound
    | Some r, Respond(actor, action) -> respond now r actor action
    | Some r, Say(actor, m) -> say now r actor m
    | Some r, Cancel actor -> cancel now r actor

// ---------------------------------------------------------------- wire shapes

let private partyId (p: Party) = Party.idText p |> Json.optStr

/// A request as the lists and GET answer it (the reference's field order, then the local extensions).
let toJson (now: DateTimeOffset) (r: Request) : JsonObject =
    Json.obj
        [ "id", Wire.idNode r.Id
          "kind", Json.str (Kind.text r.Kind)
          "requester_type", Json.str (Party.typeText r.Requester)
          "requester_id", partyId r.Requester
          "org_id", Json.nul
          "recipient_type", Json.str (Party.typeText r.Recipient)
          "recipient_id", partyId r.Recipient
          "title", Json.str r.Title
          "detail", Json.optStr r.Detail
          "status", Json.str (RequestStatus.text (statusAt now r))
          "responder_type", (r.Responder |> Option.map (Party.typeText >> Json.str) |> Option.toObj)
          "responder_id", (r.Responder |> Option.bind Party.idText |> Json.optStr)
          "priority", Json.str r.Priority
          "created_at", Wire.timeNode r.CreatedAt
          "updated_at", Wire.timeNode r.UpdatedAt
          "responded_at", Wire.optTime r.RespondedAt
          "expires_at", Wire.optTime r.ExpiresAt
          "source", Json.str (Source.text r.Source) ]

let messageJson (m: Message) : JsonObject =
    Json.obj
        [ "id", Wire.idNode m.Id
          "request_id", Wire.idNode m.RequestId
          "author_type", Json.str (Party.typeText m.Author)
          "author_id", partyId m.Author
          "body", Json.str m.Body
          "created_at", Wire.timeNode m.CreatedAt ]

/// GET …/requests/:id: `{"request", "messages"}`.
let withThread (now: DateTimeOffset) (r: Request) (messages: Message list) : JsonObject =
    Json.obj
        [ "request", toJson now r
          "messages", Json.arr [ for m in messages |> List.sortBy (fun m -> m.CreatedAt) -> messageJson m :> JsonNode ] ]

/// The answer of a change: 201 `{request_id, status:"pending"}`, `{request_id, status}`, 201 `{message_id, request_id,
/// status:"created"}`, `{request_id, status:"cancelled"}`.
let answer (now: DateTimeOffset) (c: Change) : Reply =
    let rid = "request_id", Wire.idNode c.Request.Id
    let status () = "status", Json.str (RequestStatus.text (statusAt now c.Request))

    match c.Event with
    | Created -> Wire.reply 201 (Json.obj [ rid; status () ])
    | Responded
    | Cancelled -> Wire.reply 200 (Json.obj [ rid; status () ])
    | MessageAdded m -> Wire.reply 201 (Json.obj [ "message_id", Wire.idNode m.Id; rid; "status", Json.str "created" ])

/// The answer of a create that found its twin (`twinOf`): 200 `{request_id, status}` of the request raised before.
let answerTwin (now: DateTimeOffset) (r: Request) : Reply =
    Wire.reply 200 (Json.obj [ "request_id", Wire.idNode r.Id; "status", Json.str (RequestStatus.text (statusAt now r)) ])

/// The newest first, only those reading `filter` at `now`.
let listed (now: DateTimeOffset) (filter: RequestStatus option) (rs: Request list) : Request list =
    rs
    |> List.filter (fun r -> filter |> Option.forall (fun s -> statusAt now r = s))
    |> List.sortByDescending (fun r -> r.CreatedAt, r.Id.Text)

/// How many requests read each status at `now` (every status, zeros included).
let counts (now: DateTimeOffset) (rs: Request list) : (RequestStatus * int) list =
    [ for s in RequestStatus.all -> s, rs |> List.filter (fun r -> statusAt now r = s) |> List.length ]

// ---------------------------------------------------------------- doorbells (spec §1.3)

/// The workspace whose stream hears of a new request: the recipient agent, else the requester.
let private createdAnchor (r: Request) =
    Party.agent r.Recipient |> Option.orElse (Party.agent r.Requester)

/// The event a change rings: REQUEST_CREATED on the recipient agent (or the requester of a request for the user),
/// REQUEST_RESPONDED / REQUEST_MESSAGE on the requester; a cancellation only reaches the canvas (REQUEST_CANCELLED).
/// The canvas payload adds the request itself.
let announcement (now: DateTimeOffset) (c: Change) : Announcement =
    let r = c.Request
    let rid = "request_id", Wire.idNode r.Id
    let withRequest (fields: (string * JsonNode) list) = fields @ [ "request", toJson now r :> JsonNode ]
    let ev audience kind anchor (fields: (string * JsonNode) list) =
        Announcements.event audience kind anchor (withRequest fields) (Json.sorted [ for (k, v) in fields -> k, Json.clone v ])

    match c.Event with
    | Created ->
        ev Everyone "REQUEST_CREATED" (createdAnchor r)
            [ rid
              "kind", Json.str (Kind.text r.Kind)
              "recipient_type", Json.str (Party.typeText r.Recipient)
              "recipient_id", partyId r.Recipient
              "title", Json.str r.Title ]
    | Responded ->
        ev Everyone "REQUEST_RESPONDED" (Party.agent r.Requester)
            [ rid
              "status", Json.str (RequestStatus.text r.Status)
              "responder_type", Json.str (Party.typeText c.Actor)
              "responder_id", partyId c.Actor
              "title", Json.str r.Title
              "kind", Json.str (Kind.text r.Kind) ]
    | MessageAdded m ->
        ev Everyone "REQUEST_MESSAGE" (Party.agent r.Requester)
            [ rid
              "message_id", Wire.idNode m.Id
              "author_type", Json.str (Party.typeText m.Author)
              "author_id", partyId m.Author ]
    | Cancelled -> ev CanvasOnly "REQUEST_CANCELLED" (Party.agent r.Requester) [ rid; "status", Json.str "cancelled" ]

// ---------------------------------------------------------------- delivery to the agents (request_update rows)

let eventText (e: Event) =
    match e with
    | Created -> "created"
    | Responded -> "responded"
    | MessageAdded _ -> "message"
    | Cancelled -> "cancelled"

/// The agents a change is delivered to: every agent taking part in the request except the one who acted.
let deliveredTo (c: Change) : WorkspaceId list =
    [ c.Request.Requester; c.Request.Recipient ]
    |> List.filter (fun p -> not (Party.same p c.Actor))
    |> List.choose Party.agent
    |> List.distinct

let private short (max: int) (s: string) =
    let one = s.Replace('\n', ' ').Replace('\r', ' ').Trim()
    if one.Length <= max then one else one.Substring(0, max) + "…"

/// The one-line text of a change, with the acting party's name ("the user" for the console).
let summary (name: WorkspaceId -> string) (c: Change) : string =
    let r = c.Request
    let title = "\"" + short 80 r.Title + "\""

    let actor =
        match c.Actor with
        | Party.User _ -> "the user"
        | Party.Agent w -> name w

    match c.Event with
    | Created -> $"New {Kind.text r.Kind} request {title} from {actor}"
    | Responded ->
        let verb = if r.Status = RequestStatus.Done then "marked done" else RequestStatus.text r.Status
        $"Request {title} {verb} by {actor}"
    | MessageAdded m -> $"Message from {actor} on request {title}: {short 120 m.Body}"
    | Cancelled -> $"Request {title} cancelled by {actor}"

/// The `request_update` row delivered to agent `ws`: an a2a_receive row whose source is the acting agent (none for
/// the user) and whose request_body says what happened.
let updateRow (id: ActivityId) (now: DateTimeOffset) (name: WorkspaceId -> string) (ws: WorkspaceId) (c: Change) : ActivityRow =
    let r = c.Request

    let body =
        match c.Event with
        | MessageAdded m -> Some m.Body
        | Created -> r.Detail
        | _ -> None

    let fields =
        [ "request_id", Wire.idNode r.Id
          "event", Json.str (eventText c.Event)
          "status", Json.str (RequestStatus.text (statusAt now r))
          "kind", Json.str (Kind.text r.Kind)
          "title", Json.str r.Title
          "actor_type", Json.str (Party.typeText c.Actor)
          "source", Json.str (Source.text r.Source) ]
        @ [ for a in Option.toList (Party.idText c.Actor) -> "actor_id", Json.str a ]
        @ [ for b in Option.toList body -> "body", Json.str b ]

    { Activity.row id now ws "a2a_receive" with
        SourceId = Party.agent c.Actor
        TargetId = Some ws
        Method = Some "request_update"
        Summary = Some(summary name c)
        RequestBody = Some(Json.compact (Json.sorted fields)) }
