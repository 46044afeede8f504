/// The rate limits in the request pipeline (RateLimit rules, state in the store's limiter): every route an agent
/// token can drive takes from its group's bucket for the caller; uploads also spend their bytes; a token holds a
/// capped number of event streams. The admin token (canvas, CLI) is never limited. Over a limit: 429 with
/// Retry-After and a log line.
module internal Molecule.Platform.Routes.Limits

open System
open System.Globalization
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Molecule.Platform
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http

/// A client for rate limits: the hash of its bearer, else its address.
let clientKey (ctx: HttpContext) =
    match bearer ctx with
    | Some b -> "t:" + Convert.ToHexString(Tokens.hash b)
    | None -> "ip:" + remoteIp ctx

let private exempt (env: Env) (ctx: HttpContext) = bearer ctx |> Option.exists (isAdmin env)

/// The 429 for `seconds`, with Retry-After, logged as "rate limit: <what> from <address> refused".
let private refusal (env: Env) (ctx: HttpContext) (what: string) (seconds: int) (reply: Reply) : Reply =
    let s = seconds.ToString(CultureInfo.InvariantCulture)
    ctx.Response.Headers["Retry-After"] <- s
    env.Log(Feed.printable $"rate limit: {what} from {remoteIp ctx} refused (retry in {s} s)")
    reply

/// The group of the route this request was matched to (None: not an agent's route, or not routed).
let private groupOf (ctx: HttpContext) : RateLimit.Group option =
    match ctx.GetEndpoint() with
    | :? RouteEndpoint as e -> RateLimit.groupOf ctx.Request.Method e.RoutePattern.RawText
    | _ -> None

/// One request from the caller's bucket of the group; the 429 when it is empty.
let take (env: Env) (ctx: HttpContext) (g: RateLimit.Group) : Reply option =
    if exempt env ctx then
        None
    else
        let policy = RateLimit.Limits.policy env.Limits g

        match env.Store.Limiter.Take(RateLimit.key g + "|" + clientKey ctx, policy, 1.0, env.Now()) with
        | RateLimit.Allowed _ -> None
        | RateLimit.Limited seconds -> Some(refusal env ctx (RateLimit.what g) seconds (RateLimit.reply g policy seconds))

/// The pipeline step: requests to an agent's route are limited by their group before the handler runs.
let middleware (env: Env) (ctx: HttpContext) (next: RequestDelegate) : Task =
    match groupOf ctx |> Option.bind (take env ctx) with
    | Some refused -> send ctx refused
    | None -> next.Invoke ctx

let private uploadKey (ctx: HttpContext) = "upload-bytes|" + clientKey ctx

/// An upload's declared size from the caller's byte budget (an undeclared size is charged once read: `charged`).
let uploadBytes (env: Env) (ctx: HttpContext) : Reply option =
    match Option.ofNullable ctx.Request.ContentLength with
    | Some declared when not (exempt env ctx) ->
        let policy = env.Limits.UploadBytes

        match env.Store.Limiter.Take(uploadKey ctx, policy, float declared, env.Now()) with
        | RateLimit.Allowed _ -> None
        | RateLimit.Limited seconds ->
            Some(refusal env ctx "upload bytes" seconds (Wire.errorReply 429 (RateLimit.uploadMessage policy seconds)))
    | _ -> None

/// Charges an upload of undeclared size (chunked) once it has been read.
let charged (env: Env) (ctx: HttpContext) (bytes: int64) =
    if not ctx.Request.ContentLength.HasValue && not (exempt env ctx) then
        env.Store.Limiter.Charge(uploadKey ctx, env.Limits.UploadBytes, float bytes, env.Now())

/// One more open event stream for the caller, or the 429 (dispose the grant when the stream ends).
let openStream (env: Env) (ctx: HttpContext) : Result<IDisposable, Reply> =
    if exempt env ctx then
        Ok { new IDisposable with member _.Dispose() = () }
    else
        match env.Store.Limiter.OpenStream("streams|" + clientKey ctx, env.Limits.Streams) with
        | Some grant -> Ok grant
        | None ->
            let text = RateLimit.streamsMessage env.Limits.Streams
            Error(refusal env ctx "event streams" RateLimit.StreamRetrySeconds (Wire.errorReply 429 text))
