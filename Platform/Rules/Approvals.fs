/// Approvals (spec §7.2): a workspace asks for a go-ahead on an action; it is decided (approved / denied) or withdrawn
/// by its creator. Each change rings APPROVAL_* on the workspace (and APPROVAL_ESCALATED on its parent). Pure: ids,
/// time and the stored approval are arguments.
module Molecule.Platform.Approvals

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

[<RequireQualifiedAccess>]
type ApprovalStatus =
    | Pending
    | Approved
    | Denied
    | Withdrawn

module ApprovalStatus =
    let all = [ ApprovalStatus.Pending; ApprovalStatus.Approved; ApprovalStatus.Denied; ApprovalStatus.Withdrawn ]

    let text (s: ApprovalStatus) =
        match s with
        | ApprovalStatus.Pending -> "pending"
        | ApprovalStatus.Approved -> "approved"
        | ApprovalStatus.Denied -> "denied"
        | ApprovalStatus.Withdrawn -> "withdrawn"

    let tryParse (s: string) = all |> List.tryFind (fun x -> text x = s)

type Approval =
    { Id: ApprovalId
      WorkspaceId: WorkspaceId
      TaskId: string option
      Action: string
      Reason: string option
      /// Compact JSON as given.
      Context: string option
      Status: ApprovalStatus
      DecidedBy: string option
      DecidedAt: DateTimeOffset option
      CreatedAt: DateTimeOffset }

let invalidBody = "invalid request body"
let badDecision = "decision must be 'approved' or 'denied'"
let notFoundOrDecided = "approval not found or already decided"
let notFound = "approval not found"
let notRequester = "not the requester"
let notPending = "approval not pending (already decided or withdrawn)"

/// How many an approvals list shows (the newest).
[<Literal>]
let ListSize = 50

/// POST /workspaces/:id/approvals `{"action","reason"?,"task_id"?,"context"?}` → the pending approval.
let create (id: ApprovalId) (now: DateTimeOffset) (ws: WorkspaceId) (body: JsonObject) : Result<Approval, Reply> =
    let text name = Json.prop name body |> Option.bind Json.asString |> Option.filter (String.IsNullOrWhiteSpace >> not)

    match text "action" with
    | None -> Error(bad invalidBody)
    | Some action ->
        Ok
            { Id = id
              WorkspaceId = ws
              TaskId = text "task_id"
              Action = action
              Reason = text "reason"
              Context = Json.prop "context" body |> Option.filter (fun n -> not (isNull n)) |> Option.map Json.compact
              Status = ApprovalStatus.Pending
              DecidedBy = None
              DecidedAt = None
              CreatedAt = now }

/// `{"decision":"approved"|"denied","decided_by"?}` on approval `stored` of workspace `ws`; `caller` is who decides
/// when `decided_by` is not given.
let decide (now: DateTimeOffset) (ws: WorkspaceId) (caller: string) (stored: Approval option) (body: JsonObject) : Result<Approval, Reply> =
    let decision =
        match Json.prop "decision" body |> Option.bind Json.asString with
        | Some "approved" -> Some ApprovalStatus.Approved
        | Some "denied" -> Some ApprovalStatus.Denied
        | _ -> None

    match decision, stored with
    | None, _ -> Error(bad badDecision)
    | Some d, Some a when a.WorkspaceId = ws && a.Status = ApprovalStatus.Pending ->
        let by = Json.prop "decided_by" body |> Option.bind Json.asString |> Option.filter (String.IsNullOrWhiteSpace >> not)

        Ok
            { a with
                Status = d
                DecidedBy = Some(defaultArg by caller)
                DecidedAt = Some now }
    | Some _, _ -> Error(Wire.errorReply 404 notFoundOrDecided)

/// Withdrawn by its creator (workspace `ws`).
let withdraw (now: DateTimeOffset) (ws: WorkspaceId) (stored: Approval option) : Result<Approval, Reply> =
    match stored with
    | None -> Error(Wire.errorReply 404 notFound)
    | Some a when a.WorkspaceId <> ws -> Error(Wire.errorReply 403 notRequester)
    | Some a when a.Status <> ApprovalStatus.Pending -> Error(Wire.errorReply 409 notPending)
    | Some a ->
        Ok
            { a with
                Status = ApprovalStatus.Withdrawn
                DecidedBy = Some ws.Text
                DecidedAt = Some now }

let toJson (a: Approval) : JsonObject =
    Json.obj
        [ "id", Wire.idNode a.Id
          "task_id", Json.optStr a.TaskId
          "action", Json.str a.Action
          "reason", Json.optStr a.Reason
          "status", Json.str (ApprovalStatus.text a.Status)
          "decided_by", Json.optStr a.DecidedBy
          "decided_at", Wire.optTime a.DecidedAt
          "created_at", Wire.timeNode a.CreatedAt ]

/// What a change rings: APPROVAL_REQUESTED (and APPROVAL_ESCALATED on the parent), APPROVAL_APPROVED /
/// APPROVAL_DENIED, APPROVAL_WITHDRAWN — spec §1.3's payloads.
let announcements (parent: WorkspaceId option) (a: Approval) : Announcement list =
    let aid () = "approval_id", Wire.idNode a.Id
    let on (ws: WorkspaceId) kind fields = Announcements.plain kind (Some ws) fields

    match a.Status with
    | ApprovalStatus.Pending ->
        [ yield on a.WorkspaceId "APPROVAL_REQUESTED" [ aid (); "action", Json.str a.Action; "reason", Json.optStr a.Reason; "task_id", Json.optStr a.TaskId ]
          for p in Option.toList parent ->
              on p "APPROVAL_ESCALATED" [ aid (); "from_workspace_id", Wire.idNode a.WorkspaceId; "action", Json.str a.Action; "reason", Json.optStr a.Reason ] ]
    | ApprovalStatus.Approved
    | ApprovalStatus.Denied ->
        let kind = if a.Status = ApprovalStatus.Approved then "APPROVAL_APPROVED" else "APPROVAL_DENIED"
        [ on a.WorkspaceId kind [ aid (); "decision", Json.str (ApprovalStatus.text a.Status); "decided_by", Json.optStr a.DecidedBy ] ]
    | ApprovalStatus.Withdrawn -> [ on a.WorkspaceId "APPROVAL_WITHDRAWN" [ aid (); "decided_by", Json.optStr a.DecidedBy ] ]

// ---------------------------------------------------------------- the console (the user decides)

/// Who the console's decisions are by when the body names no one.
[<Literal>]
let UserDecider = "user"

/// The user's decision from the console on a stored approval, whatever workspace asked: `decide` on that workspace
/// with `decided_by` defaulting to "user".
let decideByUser (now: DateTimeOffset) (stored: Approval option) (body: JsonObject) : Result<Approval, Reply> =
    let ws = stored |> Option.map (fun a -> a.WorkspaceId) |> Option.defaultValue (WorkspaceId Guid.Empty)
    decide now ws UserDecider stored body

/// An approval as the console's team list shows it: `toJson` with the asking workspace and the context.
let teamJson (a: Approval) : JsonObject =
    let o = toJson a
    o["workspace_id"] <- Wire.idNode a.WorkspaceId
    o["context"] <- Json.optStr a.Context
    o

/// The newest first (ties by id).
let newestFirst (approvals: Approval list) : Approval list =
    approvals |> List.sortByDescending (fun a -> a.CreatedAt, a.Id.Text)

/// How many approvals read each status (every status, zeros included).
let counts (approvals: Approval list) : (ApprovalStatus * int) list =
    [ for s in ApprovalStatus.all -> s, approvals |> List.filter (fun a -> a.Status = s) |> List.length ]
