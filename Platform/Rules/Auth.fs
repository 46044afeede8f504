/// Token gates. Pure: the workspace row, the presented bearer and what the store knows of it are arguments.
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

/// What the store knows about a request's bearer for one workspace.
type Credentials =
    { Bearer: string option
      /// The stored token the bearer names (live or revoked, of any workspace), if any.
      Named: Token option
      /// The workspace has had a token (live or revoked): asked only when no live token lets the bearer in.
      HadToken: Lazy<bool> }

/// The credentials a token table gives (tests, and engines that hold the table in memory).
let credentialsIn (tokens: Token seq) (workspaceId: WorkspaceId) (bearer: string option) : Credentials =
    { Bearer = bearer
      Named = bearer |> Option.bind (fun b -> tokens |> Seq.tryFind (fun t -> Tokens.matches t.Hash b))
      HadToken = lazy (tokens |> Seq.exists (fun t -> t.WorkspaceId = workspaceId)) }

let private deny (msg: string) : Reply = Wire.errorReply 401 msg

/// The live token of the workspace the bearer names (never for a removed workspace).
let private liveToken (ws: Workspace option) (workspaceId: WorkspaceId) (c: Credentials) : Token option =
    match ws with
    | Some w when w.Status = Status.Removed -> None
    | _ -> c.Named |> Option.filter (fun t -> t.WorkspaceId = workspaceId && Tokens.isLive t)

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
    (ws: Workspace option)
    (workspaceId: WorkspaceId)
    (c: Credentials)
    : Result<Principal, Reply> =
    match liveToken ws workspaceId c with
    | Some t -> Ok(WorkspaceToken t)
    | None when ws.IsNone && not openRegistration -> Error(deny unknownWorkspace)
    // an unknown workspace with a bearer: the token cannot be for it (e.g. a mistyped workspace id) → 401
    | None when ws.IsNone && c.Bearer.IsSome -> Error(deny invalidMsg)
    | None when not c.HadToken.Value -> Ok Grandfathered
    | None ->
        match c.Bearer with
        | None -> Error(deny missingMsg)
        | Some _ -> Error(deny invalidMsg)

/// Strict gate for /workspaces/:id/* (WorkspaceAuth): the admin token or a live token bound to :id of a
/// workspace that is not removed. No grandfathering.
let strictGate (isAdmin: string -> bool) (ws: Workspace option) (workspaceId: WorkspaceId) (c: Credentials) : Result<Principal, Reply> =
    match c.Bearer with
    | None -> Error(deny missingToken)
    | Some b when isAdmin b -> Ok Admin
    | Some _ ->
        match liveToken ws workspaceId c with
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

/// The workspace that owns a presented token (for callers without X-Workspace-ID): live tokens only.
let ownerOf (named: Token option) : WorkspaceId option =
    named |> Option.filter Tokens.isLive |> Option.map (fun t -> t.WorkspaceId)

/// Token use is recorded at most once a minute: the new last-used time, when it is due.
let touched (now: DateTimeOffset) (p: Principal) : Token option =
    match p with
    | WorkspaceToken t ->
        match t.LastUsedAt with
        | Some last when now - last < TimeSpan.FromMinutes 1.0 -> None
        | _ -> Some { t with LastUsedAt = Some now }
    | _ -> None
