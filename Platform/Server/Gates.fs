/// Who may call: the admin gate, the registry gate (register, heartbeat, discover, peers) and the strict gate of
/// /workspaces/:id/* — the Auth rules fed with what the store knows of the bearer.
module internal Molecule.Platform.Routes.Gates

open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http

/// The store's facts about a bearer for the strict gate (token history is not needed there).
let credentials (r: IReader) (b: string option) : Auth.Credentials =
    { Bearer = b
      Named = b |> Option.bind (Tokens.named r.TokenByHash)
      HadToken = lazy true }

/// The store's facts about a bearer for the registry gate, which lets in a workspace that never had a token.
let registryCredentials (r: IReader) (id: WorkspaceId) (b: string option) : Auth.Credentials =
    { credentials r b with HadToken = lazy (not (r.TokensOf id).IsEmpty) }

/// A token's use recorded (at most once a minute) in this transaction.
let touchIn (env: Env) (w: IWriter) (p: Auth.Principal) =
    Auth.touched (env.Now()) p |> Option.iter w.SaveToken

/// A token's use recorded (at most once a minute) in a transaction of its own.
let touch (env: Env) (p: Auth.Principal) =
    match Auth.touched (env.Now()) p with
    | Some t -> env.Store.Write(fun w -> w.SaveToken t)
    | None -> ()

let adminGate (env: Env) (ctx: HttpContext) : Result<unit, Reply> =
    match bearer ctx with
    | None -> Error(Wire.errorReply 401 "missing admin token")
    | Some b when isAdmin env b -> Ok()
    | Some _ -> Error(Wire.errorReply 401 "invalid admin token")

/// The registry gate for workspace `id` with these 401 messages (the admin token is not accepted here).
let registryGate (env: Env) (r: IReader) (missingMsg: string) (invalidMsg: string) (id: WorkspaceId) (b: string option) =
    Auth.registryGate env.OpenRegistration missingMsg invalidMsg (r.Workspace id) id (registryCredentials r id b)

/// The registry gate for a workspace that must exist (404 otherwise); the token's use recorded.
let registryExisting (env: Env) (ctx: HttpContext) (id: WorkspaceId) : Result<Workspace, Reply> =
    let checkedIn =
        env.Store.Read(fun r ->
            registryGate env r Auth.missingToken Auth.invalidToken id (bearer ctx)
            |> Result.bind (fun p ->
                match r.Workspace id with
                | None -> Error notFound
                | Some w -> Ok(p, w)))

    checkedIn
    |> Result.map (fun (p, w) ->
        touch env p
        w)

/// A caller that names itself `c` (X-Workspace-ID): the admin token, else the registry gate for `c`.
let namedCaller (env: Env) (ctx: HttpContext) (missingMsg: string) (invalidMsg: string) (c: WorkspaceId) : Result<WorkspaceId option, Reply> =
    match bearer ctx with
    | Some b when isAdmin env b -> Ok(Some c)
    | b ->
        env.Store.Read(fun r -> registryGate env r missingMsg invalidMsg c b)
        |> Result.map (fun p ->
            touch env p
            Some c)

/// `namedCaller` inside the write `w` (the token's use recorded in it): for a route that writes anyway.
let namedCallerIn (env: Env) (w: IWriter) (ctx: HttpContext) (missingMsg: string) (invalidMsg: string) (c: WorkspaceId) =
    match bearer ctx with
    | Some b when isAdmin env b -> Ok(Some c)
    | b ->
        registryGate env w missingMsg invalidMsg c b
        |> Result.map (fun p ->
            touchIn env w p
            Some c)

/// Strict WorkspaceAuth for /workspaces/:id/*: the workspace id and row (missing only for the admin, who then gets a
/// 404 from the handler); the token's use recorded.
let strict (env: Env) (ctx: HttpContext) : Result<WorkspaceId * Workspace option, Reply> =
    match routeId ctx with
    | None -> Error invalidId
    | Some id ->
        env.Store.Read(fun r ->
            let ws = r.Workspace id
            Auth.strictGate (isAdmin env) ws id (credentials r (bearer ctx)) |> Result.map (fun p -> p, ws))
        |> Result.map (fun (p, ws) ->
            touch env p
            id, ws)

/// Strict gate + the workspace must exist (a removed one passes).
let strictExisting (env: Env) (ctx: HttpContext) : Result<Workspace, Reply> =
    match strict env ctx with
    | Error e -> Error e
    | Ok(_, None) -> Error notFound
    | Ok(_, Some w) -> Ok w

/// Strict gate + the workspace must exist and not be removed (410 when it is).
let strictLive (env: Env) (ctx: HttpContext) : Result<Workspace, Reply> =
    match strictExisting env ctx with
    | Ok w when w.Status = Status.Removed -> Error(Views.removed w)
    | r -> r

/// Endpoint behind `gate`: the gate's error is the reply, else `body` answers with what the gate let through.
let gated (gate: Env -> HttpContext -> Result<'a, Reply>) (env: Env) (ctx: HttpContext) (body: 'a -> Reply) : Task<Reply> =
    task {
        return
            match gate env ctx with
            | Error e -> e
            | Ok a -> body a
    }

/// Like `gated`, for a body that awaits (reads the request, delivers, ...).
let gatedAsync (gate: Env -> HttpContext -> Result<'a, Reply>) (env: Env) (ctx: HttpContext) (body: 'a -> Task<Reply>) : Task<Reply> =
    task {
        match gate env ctx with
        | Error e -> return e
        | Ok a -> return! body a
    }

/// Admin-only endpoint: the admin gate answers first.
let adminHandler (env: Env) (ctx: HttpContext) (body: unit -> Reply) : Task<Reply> = gated adminGate env ctx body

/// Admin-only endpoint on `/workspaces/{id}/...` whose workspace must exist (404; a removed one passes).
let adminWorkspaceHandler (env: Env) (ctx: HttpContext) (body: IReader -> Workspace -> Reply) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            env.Store.Read(fun r ->
                match r.Workspace id with
                | None -> notFound
                | Some w -> body r w)))

/// Strict-auth endpoint on `/workspaces/{id}/...` whose workspace must exist (a removed one passes).
let strictHandler (env: Env) (ctx: HttpContext) (body: Workspace -> Reply) : Task<Reply> = gated strictExisting env ctx body
