/// Requests and replies: reading a body (capped), route values, query and headers; writing a Reply.
module internal Molecule.Platform.Routes.Http

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Validation
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

let send (ctx: HttpContext) (r: Reply) : Task =
    ctx.Response.StatusCode <- r.Code
    ctx.Response.ContentType <- "application/json; charset=utf-8"
    ctx.Response.WriteAsync(r.Body)

/// A route whose handler answers a Reply.
let handle (f: HttpContext -> Task<Reply>) : RequestDelegate =
    RequestDelegate(fun ctx ->
        task {
            let! r = f ctx
            do! send ctx r
        })

let ok (node: JsonNode) = Wire.reply 200 node

/// `{"status": <s>}` with 200.
let okStatus (s: string) = ok (Json.obj [ "status", Json.str s ])

let notFound = Wire.errorReply 404 "workspace not found"
let invalidId = Wire.errorReply 400 "invalid workspace ID"

/// `readBody` through this buffer.
let private readThrough (buffer: byte[]) (ctx: HttpContext) : Task<Result<string, Reply>> =
    task {
        try
            use kept = new MemoryStream()
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
        | :? BadHttpRequestException as e when e.StatusCode = 413 -> return Error(Wire.errorReply 413 tooLarge)
        | :? BadHttpRequestException -> return Error(Wire.errorReply 400 "invalid request body")
    }

/// The body as UTF-8 text, at most MaxBody bytes; a longer body is read to its end and dropped, then 413 (the
/// client sees the answer, not a reset connection). Read through a pooled buffer (a fresh, zeroed 64 KiB one per
/// request showed in the platform's profile).
let readBody (ctx: HttpContext) : Task<Result<string, Reply>> =
    task {
        let buffer = Buffers.ArrayPool<byte>.Shared.Rent 65536

        try
            return! readThrough buffer ctx
        finally
            Buffers.ArrayPool<byte>.Shared.Return buffer
    }

let readJson (ctx: HttpContext) : Task<Result<JsonObject, Reply>> =
    task {
        match! readBody ctx with
        | Ok text -> return Validation.body text
        | Error e -> return Error e
    }

/// The request body as a JSON object; its error reply otherwise.
let withJson (ctx: HttpContext) (body: JsonObject -> Reply) : Task<Reply> =
    task {
        match! readJson ctx with
        | Error e -> return e
        | Ok o -> return body o
    }

let routeValue (ctx: HttpContext) (name: string) : string option =
    match ctx.Request.RouteValues.TryGetValue name with
    | true, (:? string as s) -> Some s
    | _ -> None

let routeGuid (ctx: HttpContext) (name: string) : Guid option =
    routeValue ctx name |> Option.bind parseGuid

/// The `{id}` route value as a workspace id.
let routeId (ctx: HttpContext) : WorkspaceId option = routeGuid ctx "id" |> Option.map WorkspaceId

/// The `{id}` route value as a workspace id; 400 "invalid workspace ID" otherwise.
let withRouteId (ctx: HttpContext) (body: WorkspaceId -> Reply) : Reply =
    match routeId ctx with
    | None -> invalidId
    | Some id -> body id

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

let remoteIp (ctx: HttpContext) =
    match ctx.Connection.RemoteIpAddress with
    | null -> "an unknown address"
    | ip -> ip.ToString()

/// Scheme and host this request came in on, e.g. http://127.0.0.1:41234.
let baseUrl (ctx: HttpContext) =
    let req = ctx.Request
    $"{req.Scheme}://{req.Host.Value}"

/// Writes stored bytes as a download (never sniffed, never shown inline).
let sendFile (ctx: HttpContext) (mime: string) (content: byte[]) : Task =
    ctx.Response.StatusCode <- 200
    ctx.Response.ContentType <- mime
    ctx.Response.ContentLength <- Nullable(int64 content.Length)
    ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
    ctx.Response.Headers["Content-Disposition"] <- "attachment"
    ctx.Response.Body.WriteAsync(content, 0, content.Length)
