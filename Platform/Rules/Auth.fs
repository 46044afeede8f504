/// Token gates. Pure: the token table, the workspace row and the presented bearer are arguments.
module Molecule.Platform.Auth

open System

let missingToken = "missing workspace auth token"
let invalidToken = "invalid workspace auth token"

/// Who was authenticated.
type Principal =
    | Admin
    | WorkspaceToken of Token
    /// Let in without a token: only a workspace that never had any token (legacy/first register).
    | Grandfathered

let private deny (msg: string) : Reply = Wire.errorReply 401 msg

/// True when the workspace has never had a token (not even a revoked one).
let neverHadToken (tokens: Token seq) (workspaceId: Guid) =
    tokens |> Seq.forall (fun t -> t.WorkspaceId <> workspaceId)

let private liveToken (tokens: Token seq) (ws: Workspace option) (workspaceId: Guid) (bearer: string option) =
    match bearer, ws with
    | Some b, Some w when w.Status <> Status.Removed -> Tokens.findLive tokens workspaceId b
    | Some b, None -> Tokens.findLive tokens workspaceId b
    | _ -> None

/// 401 text for an id the platform does not know (registration of unknown ids is closed).
let unknownWorkspace =
    "unknown workspace: create it first with `molecule-platform workspace create --name NAME` (or in the canvas) and use the id and token it prints"

/// Registry gate (register, heartbeat, discover, peers): a live token bound to the workspace, or no token at
/// all when the workspace exists and never had one (it was created by the admin; P19). An unknown id gets 401
/// (`unknownWorkspace`) unless registration is open (`--open-registration`): then an unknown id without a bearer is
/// let in (the reference's behaviour). Unlike the reference, a workspace whose tokens were all revoked (e.g.
/// removed) is NOT grandfathered: its old token gets 401 (spec P19, §6.4).
let registryGate
    (openRegistration: bool)
    (missingMsg: string)
    (invalidMsg: string)
    (tokens: Token seq)
    (ws: Workspace option)
    (workspaceId: Guid)
    (bearer: string option)
    : Result<Principal, Reply> =
    match liveToken tokens ws workspaceId bearer with
    | Some t -> Ok(WorkspaceToken t)
    | None when ws.IsNone && not openRegistration -> Error(deny unknownWorkspace)
    // an unknown workspace with a bearer: the token cannot be for it (e.g. a mistyped workspace id) → 401
    | None when ws.IsNone && bearer.IsSome -> Error(deny invalidMsg)
    | None when neverHadToken tokens workspaceId -> Ok Grandfathered
    | None ->
        match bearer with
        | None -> Error(deny missingMsg)
        | Some _ -> Error(deny invalidMsg)

/// Strict gate for /workspaces/:id/* (WorkspaceAuth): the admin token or a live token bound to :id of a
/// workspace that is not removed. No grandfathering.
let strictGate
    (isAdmin: string -> bool)
    (tokens: Token seq)
    (ws: Workspace option)
    (workspaceId: Guid)
    (bearer: string option)
    : Result<Principal, Reply> =
    match bearer with
    | None -> Error(deny missingToken)
    | Some b when isAdmin b -> Ok Admin
    | Some _ ->
        match liveToken tokens ws workspaceId bearer with
        | Some t -> Ok(WorkspaceToken t)
        | None -> Error(deny invalidToken)

/// Bearer value of an Authorization header ("Bearer x" → Some x).
let bearerOf (header: string) : string option =
    if String.IsNullOrWhiteSpace header then
        None
    else
        let h = header.Trim()

        if h.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) then
            let v = h.Substring(7).Trim()
            if v = "" then None else Some v
        else
            None

/// The workspace that owns a presented token (for callers without X-Workspace-ID); live tokens only.
let ownerOf (tokens: Token seq) (presented: string) : Guid option =
    tokens
    |> Seq.filter Tokens.isLive
    |> Seq.tryFind (fun t -> Tokens.matches t.Hash presented)
    |> Option.map (fun t -> t.WorkspaceId)
