/// The requests inbox (spec §7.1, with the local extensions `expires_at` and `source`): tasks and approvals an agent
/// raises for the user or for another agent — the request, its parties and statuses, the texts the routes answer and
/// the parsing of the bodies. Its lifecycle is RequestsDecider; its JSON, doorbells (REQUEST_*, spec §1.3) and
/// `request_update` rows are RequestsWire. Pure: time is an argument.
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
