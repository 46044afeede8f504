/// The requests inbox's wire shapes (spec §7.1, §1.3): JSON, answers, lists, REQUEST_* doorbells, `request_update` rows.
module Molecule.Platform.RequestsWire

open System
open System.Text.Json.Nodes
open Molecule.Platform.Requests
open Molecule.Platform.RequestsDecider
module Json = Molecule.Protocol.Json

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
