/// The requests inbox's decider (spec §7.1): create, respond, message, cancel → the request as it becomes, or the refusal.
module Molecule.Platform.RequestsDecider

open System
open Molecule.Platform.Requests

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
/// `raised` reads the requester's requests: only a loop_guard request needs them.
let twinOf (now: DateTimeOffset) (requester: WorkspaceId) (n: NewRequest) (raised: unit -> Request list) : Request option =
    let twin (r: Request) =
        r.Source = Source.LoopGuard
        && r.Requester = Party.Agent requester
        && r.Title = n.Title
        && RequestStatus.isOpen (statusAt now r)

    if n.Source = Source.LoopGuard then raised () |> List.tryFind twin else None

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
