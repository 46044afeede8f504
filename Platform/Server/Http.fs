/// Shared pieces of the platform's HTTP handlers: the handler environment, replies, gates and request readers.
module internal Molecule.Platform.Routes.Http

open System
open System.IO
open System.Net
open System.Net.Http
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.AspNetCore.StaticFiles
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Hosting
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Limits
module Json = Molecule.Protocol.Json

/// Request bodies are capped at 1 MiB (uploads: 25 MiB).
[<Literal>]
let MaxBody = 1048576L

[<Literal>]
let MaxUploadBody = 26214400L

/// Kestrel's own cap: a body over a route's limit is still read (and dropped) up to this size, so the client gets
/// the 413 answer instead of a reset connection ("Broken pipe") while it is still sending.
[<Literal>]
let DrainLimit = 67108864L

let tooLarge = "request body too large (max 1 MiB)"
let uploadTooLarge = "upload too large (max 25 MiB)"

[<Literal>]
let MaxLiveTokens = 50

/// Everything a handler needs.
type Env =
    { Store: Store.Store
      Now: unit -> DateTimeOffset
      Admin: string
      Faults: FaultInjector
      Events: EventHub
      Http: HttpClient
      Stopping: CancellationToken
      Background: ResizeArray<Task>
      /// Activity retention (soft/hard days).
      Retention: Inbox.Retention
      /// Let unknown workspace ids register (`--open-registration`).
      OpenRegistration: bool
      Limits: RateLimit.Limits
      Limiter: Limiter
      Tickets: TicketBook
      /// The platform log (lines without a prefix); never given a token.
      Log: string -> unit
      /// A log was given (event lines are labelled only then).
      Logging: bool
      /// The molecule-mcp command the connection lines start.
      McpBinary: string }

// ---------------------------------------------------------------- helpers

let newId () = Guid.NewGuid()
let randomToken () = Tokens.format (RandomNumberGenerator.GetBytes Tokens.ByteLength)

let send (ctx: HttpContext) (r: Reply) : Task =
    ctx.Response.StatusCode <- r.Code
    ctx.Response.ContentType <- "application/json; charset=utf-8"
    ctx.Response.WriteAsync(r.Body)

let ok (node: JsonNode) = Wire.reply 200 node
let notFound = Wire.errorReply 404 "workspace not found"
let invalidId = Wire.errorReply 400 "invalid workspace ID"

/// The body as UTF-8 text, at most MaxBody bytes; a longer body is read to its end and dropped, then 413 (the
/// client sees the answer, not a reset connection).
let readBody (ctx: HttpContext) : Task<Result<string, Reply>> =
    task {
        try
            use kept = new MemoryStream()
            let buffer = Array.zeroCreate<byte> 65536
            let mutable total = 0L
            let mutable n = 1

            while n > 0 do
                let! read = ctx.Request.Body.ReadAsync(buffer, 0, buffer.Length)
                n <- read
                total <- total + int64 read

                if total <= MaxBody then
                    kept.Write(buffer, 0, read)

            if total > MaxBody then
                return Error(Wire.errorReply 413 tooLarge)
            else
                let bytes = kept.GetBuffer()
                let bom = kept.Length >= 3L && bytes[0] = 0xEFuy && bytes[1] = 0xBBuy && bytes[2] = 0xBFuy
                let skip = if bom then 3 else 0
                return Ok(UTF8Encoding(false).GetString(bytes, skip, int kept.Length - skip))
        with
        | :? Microsoft.AspNetCore.Http.BadHttpRequestException as e when e.StatusCode = 413 ->
            return Error(Wire.errorReply 413 tooLarge)
        | :? Microsoft.AspNetCore.Http.BadHttpRequestException -> return Error(Wire.errorReply 400 "invalid request body")
    }

let readJson (ctx: HttpContext) : Task<Result<JsonObject, Reply>> =
    task {
        match! readBody ctx with
        | Ok text -> return Validation.body text
        | Error e -> return Error e
    }

let routeGuid (ctx: HttpContext) (name: string) : Guid option =
    match ctx.Request.RouteValues.TryGetValue name with
    | true, (:? string as s) -> parseGuid s
    | _ -> None

/// `text` as a GUID, else a 400 with `message`.
let guidOr (message: string) (text: string) : Result<Guid, Reply> =
    match parseGuid text with
    | Some g -> Ok g
    | None -> Error(bad message)

let query (ctx: HttpContext) (name: string) : string option =
    match ctx.Request.Query.TryGetValue name with
    | true, v when v.Count > 0 -> Some(string v[0])
    | _ -> None

let header (ctx: HttpContext) (name: string) : string option =
    match ctx.Request.Headers.TryGetValue name with
    | true, v when v.Count > 0 && not (String.IsNullOrWhiteSpace(string v[0])) -> Some(string v[0])
    | _ -> None

let bearer (ctx: HttpContext) =
    header ctx "Authorization" |> Option.bind Auth.bearerOf

let isAdmin (env: Env) (presented: string) = Tokens.equalSecrets env.Admin presented

let remoteIp (ctx: HttpContext) =
    match ctx.Connection.RemoteIpAddress with
    | null -> "an unknown address"
    | ip -> ip.ToString()

/// A client for rate limits: the hash of its bearer, else its address.
let clientKey (ctx: HttpContext) =
    match bearer ctx with
    | Some b -> "t:" + Convert.ToHexString(Tokens.hash b)
    | None -> "ip:" + remoteIp ctx

/// 429 (with Retry-After) when the client has used up `policy` on `route`; `what` names the requests.
let limited (env: Env) (ctx: HttpContext) (route: string) (what: string) (policy: RateLimit.Policy) : Reply option =
    match bearer ctx with
    | Some b when isAdmin env b -> None // the operator (canvas, CLI) is not limited
    | _ ->
    match env.Limiter.Take(route + "|" + clientKey ctx, policy, env.Now()) with
    | RateLimit.Allowed _ -> None
    | RateLimit.Limited seconds ->
        let s = seconds.ToString(Globalization.CultureInfo.InvariantCulture)
        ctx.Response.Headers["Retry-After"] <- s
        env.Log $"rate limit: {what} from {remoteIp ctx} refused (retry in {s} s)"
        Some(RateLimit.reply what policy seconds)

/// Workspace names for labels (canvas) and "name (short id)" for the log.
let names (env: Env) = Feed.nameIn env.Store.Workspaces
let logNames (env: Env) = Feed.nameWithId env.Store.Workspaces

/// Broadcasts an event once the current store transaction has committed (at once outside one). `payload` is the
/// canvas payload (GET /events), which also gets the event's feed entry (`feed`) when it has one; `data` the
/// workspace-stream payload (spec §1.3). The feed entry's label goes to the platform log.
let publishWith (env: Env) (audience: Audience) (kind: string) (ws: Guid option) (payload: (string * JsonNode) list) (data: JsonObject) (feed: (Guid -> string) -> Feed.Entry option) =
    let canvas = Json.obj payload

    // labels cost a parse of the row's bodies: only for a listening canvas and a platform that logs
    let entry, line =
        if audience = WorkspaceOnly then
            None, None
        else
            (if env.Events.CanvasListening then feed (names env) else None),
            // delegation progress is already in the log through its rows
            (if env.Logging && not (kind.StartsWith "DELEGATION_") then feed (logNames env) |> Option.map Feed.logLine else None)

    entry |> Option.iter (fun f -> canvas["feed"] <- Feed.toJson f)

    let e =
        { Type = kind
          WorkspaceId = ws
          Payload = canvas
          Data = data
          At = env.Now()
          Audience = audience }

    env.Store.AfterCommit(fun () ->
        env.Events.Publish e
        line |> Option.iter env.Log)

let publishTo (env: Env) (audience: Audience) (kind: string) (ws: Guid option) (payload: (string * JsonNode) list) (data: JsonObject) =
    let at = env.Now()
    publishWith env audience kind ws payload data (fun name -> Feed.ofEvent name kind ws at (Json.obj [ for (k, v) in payload -> k, Json.clone v ]))

/// An event whose stream payload is the canvas payload (keys sorted).
let publish (env: Env) (kind: string) (ws: Guid option) (payload: (string * JsonNode) list) =
    publishTo env Everyone kind ws payload (Json.sorted [ for (k, v) in payload -> k, Json.clone v ])

let adminGate (env: Env) (ctx: HttpContext) : Result<unit, Reply> =
    match bearer ctx with
    | None -> Error(Wire.errorReply 401 "missing admin token")
    | Some b when isAdmin env b -> Ok()
    | Some _ -> Error(Wire.errorReply 401 "invalid admin token")

/// Marks a successful use of a token (persisted at most once a minute).
let touch (env: Env) (p: Auth.Principal) =
    match p with
    | Auth.WorkspaceToken t ->
        let now = env.Now()

        match t.LastUsedAt with
        | Some last when now - last < TimeSpan.FromMinutes 1.0 -> ()
        | _ -> env.Store.SaveToken { t with LastUsedAt = Some now }
    | _ -> ()

/// Registry gate for workspace `id` with these 401 messages (the admin token is not accepted here); marks the
/// token used.
let registryGate
    (env: Env)
    (missingMsg: string)
    (invalidMsg: string)
    (ws: Workspace option)
    (id: Guid)
    (presented: string option)
    : Result<unit, Reply> =
    match Auth.registryGate env.OpenRegistration missingMsg invalidMsg env.Store.Tokens ws id presented with
    | Ok p ->
        touch env p
        Ok()
    | Error e -> Error e

/// The registry's token gate (see registryGate) for a workspace that must exist; `k` gets it.
let registryExisting (env: Env) (ctx: HttpContext) (id: Guid) (k: Workspace -> Reply) : Reply =
    let ws = env.Store.Workspace id

    match registryGate env Auth.missingToken Auth.invalidToken ws id (bearer ctx) with
    | Error e -> e
    | Ok() ->
        match ws with
        | None -> notFound
        | Some w -> k w

/// A caller that names itself `c` (X-Workspace-ID): the admin token, else the registry gate for `c`.
let namedCaller (env: Env) (ctx: HttpContext) (missingMsg: string) (invalidMsg: string) (c: Guid) : Result<Guid option, Reply> =
    match bearer ctx with
    | Some b when isAdmin env b -> Ok(Some c)
    | b -> registryGate env missingMsg invalidMsg (env.Store.Workspace c) c b |> Result.map (fun () -> Some c)

/// Strict WorkspaceAuth for /workspaces/:id/*: returns the workspace id (the workspace may be missing only for
/// the admin, who then gets a 404 from the handler).
let strict (env: Env) (ctx: HttpContext) : Result<Guid * Workspace option, Reply> =
    match routeGuid ctx "id" with
    | None -> Error invalidId
    | Some id ->
        env.Store.Atomically(fun () ->
            let ws = env.Store.Workspace id

            match Auth.strictGate (isAdmin env) env.Store.Tokens ws id (bearer ctx) with
            | Ok p ->
                touch env p
                Ok(id, ws)
            | Error e -> Error e)

/// Strict gate + the workspace must exist (a removed one passes).
let strictExisting (env: Env) (ctx: HttpContext) : Result<Workspace, Reply> =
    match strict env ctx with
    | Error e -> Error e
    | Ok(_, None) -> Error notFound
    | Ok(_, Some w) -> Ok w

/// Strict gate + the workspace must exist and not be removed (410 when it is).
let strictLive (env: Env) (ctx: HttpContext) : Result<Workspace, Reply> =
    match strictExisting env ctx with
    | Error e -> Error e
    | Ok w when w.Status = Status.Removed -> Error(Views.removed w)
    | Ok w -> Ok w

/// Endpoint behind `gate`: the gate's error is the reply, else `body` answers with what the gate let through.
let gated (gate: Env -> HttpContext -> Result<'a, Reply>) (env: Env) (ctx: HttpContext) (body: 'a -> Reply) : Task<Reply> =
    task {
        return
            match gate env ctx with
            | Error e -> e
            | Ok a -> body a
    }

/// Like `gated`, for a body that awaits (reads the request, delivers, ...).
let gatedAsync
    (gate: Env -> HttpContext -> Result<'a, Reply>)
    (env: Env)
    (ctx: HttpContext)
    (body: 'a -> Task<Reply>)
    : Task<Reply> =
    task {
        match gate env ctx with
        | Error e -> return e
        | Ok a -> return! body a
    }

/// Admin-only endpoint: the admin gate answers first.
let adminHandler (env: Env) (ctx: HttpContext) (body: unit -> Reply) : Task<Reply> = gated adminGate env ctx body

/// The `{id}` route value as a GUID; 400 "invalid workspace ID" otherwise.
let withRouteId (ctx: HttpContext) (body: Guid -> Reply) : Reply =
    match routeGuid ctx "id" with
    | None -> invalidId
    | Some id -> body id

/// Admin-only endpoint on `/workspaces/{id}/...`: admin gate, route id, then the workspace under the store lock
/// (404 when it does not exist; a removed one passes).
let adminWorkspaceHandler (env: Env) (ctx: HttpContext) (body: Workspace -> Reply) : Task<Reply> =
    adminHandler env ctx (fun () ->
        withRouteId ctx (fun id ->
            env.Store.Atomically(fun () ->
                match env.Store.Workspace id with
                | None -> notFound
                | Some w -> body w)))

/// Strict-auth endpoint on `/workspaces/{id}/...` whose workspace must exist (a removed one passes).
let strictHandler (env: Env) (ctx: HttpContext) (body: Workspace -> Reply) : Task<Reply> = gated strictExisting env ctx body

/// The request body as a JSON object; its error reply otherwise.
let withJson (ctx: HttpContext) (body: JsonObject -> Reply) : Task<Reply> =
    task {
        match! readJson ctx with
        | Error e -> return e
        | Ok o -> return body o
    }

/// `{"status": <s>}` with 200.
let okStatus (s: string) = ok (Json.obj [ "status", Json.str s ])

/// Scheme and host this request came in on, e.g. http://127.0.0.1:41234.
let baseUrl (ctx: HttpContext) =
    let req = ctx.Request
    $"{req.Scheme}://{req.Host.Value}"

let handle (f: HttpContext -> Task<Reply>) : RequestDelegate =
    RequestDelegate(fun ctx ->
        task {
            let! r = f ctx
            do! send ctx r
        })

let private logRow (env: Env) (audience: Audience) (row: ActivityRow) : ActivityRow =
    let saved = env.Store.InsertActivity row
    let repeated = saved.Id <> row.Id // the same message id again: no new row, the stream still rings

    let audience =
        match audience with
        | _ when not repeated -> Some audience
        | CanvasOnly -> None
        | _ -> Some WorkspaceOnly

    audience
    |> Option.iter (fun a ->
        publishWith env a "ACTIVITY_LOGGED" (Some saved.WorkspaceId) [ "activity", Views.activity saved ] (Views.activityData saved saved.Summary) (fun name -> Feed.ofRow name saved))

    saved

/// Logs a row and rings ACTIVITY_LOGGED after the commit (canvas: `{activity: row}`; the workspace's stream: the
/// spec §1.2 payload). Returns the stored row (the existing one for a repeated message id).
let insertRow (env: Env) (row: ActivityRow) : ActivityRow = logRow env Everyone row

/// Logs a row that the reference writes without a doorbell (notify, delegation and audit rows): the canvas still
/// sees it, the workspace's stream does not.
let insertQuiet (env: Env) (row: ActivityRow) : ActivityRow = logRow env CanvasOnly row
