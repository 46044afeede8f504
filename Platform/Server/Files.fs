/// File routes: an agent's chat uploads (stored, served back by their URI), the canvas's uploads for a poll-mode
/// workspace (pending until its agent fetches and acknowledges them), and their downloads. The bytes live in the
/// store.
module internal Molecule.Platform.Routes.FileRoutes

open System
open System.Data.Common
open System.IO
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
module Json = Molecule.Protocol.Json

let filesRequired =
    bad "files is required (multipart/form-data with one or more 'files' parts)"

/// An uploaded part read into memory: (cleaned name, media type, bytes).
type private Part = { Name: string; Mime: string; Content: byte[] }

/// The `files` parts of a multipart body (the route's 25 MiB cap applied), charged to the caller's byte budget when
/// their size was not declared. None when the body is not a form.
let private readParts (env: Env) (ctx: HttpContext) : Task<Part list option> =
    task {
        let feature = ctx.Features.Get<IHttpMaxRequestBodySizeFeature>()

        if not (isNull feature) && not feature.IsReadOnly then
            feature.MaxRequestBodySize <- Nullable MaxUploadBody

        if not ctx.Request.HasFormContentType then
            return None
        else
            let! form = ctx.Request.ReadFormAsync()
            let parts = ResizeArray()

            for f in form.Files.GetFiles "files" do
                use ms = new MemoryStream()
                do! f.CopyToAsync ms
                let name = Uploads.safeName f.FileName
                parts.Add { Name = name; Mime = Uploads.declaredOr f.ContentType name; Content = ms.ToArray() }

            Limits.charged env ctx (parts |> Seq.sumBy (fun p -> int64 p.Content.Length))
            return Some(List.ofSeq parts)
    }

let private storedFile (ws: WorkspaceId) (kind: FileKind) (key: string) (p: Part) (now: DateTimeOffset) : StoredFile =
    { WorkspaceId = ws
      Kind = kind
      Key = key
      FileName = p.Name
      MimeType = p.Mime
      Size = int64 p.Content.Length
      CreatedAt = now }

/// An agent's (or the canvas's, to a push-mode workspace) files: stored and linked.
let private chatUpload (env: Env) (ctx: HttpContext) (ws: Workspace) : Task<Reply> =
    task {
        try
            match! readParts env ctx with
            | None
            | Some [] -> return filesRequired
            | Some parts ->
                let now = env.Now()
                let keyed = parts |> List.map (fun p -> Uploads.chatKey (newGuid ()) p.Name, p)

                env.Store.Write(fun w ->
                    for (key, p) in keyed do
                        w.PutFile(storedFile ws.Id FileKind.Chat key p now, p.Content))

                let entry (key: string, p: Part) : JsonNode =
                    Json.obj
                        [ "uri", Json.str $"{baseUrl ctx}/workspaces/{ws.Id.Text}/chat/uploads/{Uri.EscapeDataString key}"
                          "name", Json.str p.Name
                          "mimeType", Json.str p.Mime
                          "size", Json.num64 (int64 p.Content.Length) ]

                return ok (Json.obj [ "files", Json.arr (keyed |> List.map entry) ])
        with
        | :? BadHttpRequestException as e when e.StatusCode = 413 -> return Wire.errorReply 413 uploadTooLarge
        | :? InvalidDataException
        | :? BadHttpRequestException
        | :? IOException -> return bad "files: invalid multipart body"
    }

/// The canvas's files for a poll-mode workspace: pending, each announced by a `chat_upload_receive` row.
let private pendingUpload (env: Env) (ctx: HttpContext) (ws: Workspace) : Task<Reply> =
    task {
        try
            match! readParts env ctx with
            | None -> return bad "malformed multipart body"
            | Some [] -> return bad "no files field in request"
            | Some parts when parts.Length > Team.MaxFiles -> return bad $"too many files (limit {Team.MaxFiles})"
            | Some parts ->
                let now = env.Now()
                let keyed = parts |> List.map (fun p -> newGuid().ToString("N"), p)

                env.Store.Write(fun w ->
                    for (fileId, p) in keyed do
                        w.PutFile(storedFile ws.Id FileKind.Pending fileId p now, p.Content)

                    for (fileId, p) in keyed do
                        insertRow env w (Team.uploadRow (newActivityId ()) (env.Now()) ws.Id fileId p.Name p.Mime (int64 p.Content.Length))
                        |> ignore)

                let entries =
                    keyed |> List.map (fun (fileId, p) -> Team.uploadEntry ws.Id fileId p.Name p.Mime (int64 p.Content.Length) :> JsonNode)

                return ok (Json.obj [ "files", Json.arr entries ])
        with
        | :? BadHttpRequestException as e when e.StatusCode = 413 ->
            return Wire.reply 413 (Json.obj [ "error", Json.str "one or more files exceed per-file cap"; "max", Json.num64 MaxUploadBody ])
        | :? InvalidDataException
        | :? BadHttpRequestException -> return bad "malformed multipart body"
        | :? IOException
        | :? DbException -> return Wire.errorReply 500 "could not stage files"
    }

/// POST /workspaces/:id/chat/uploads: from the canvas (the admin token) to a poll-mode workspace the files wait for
/// the agent; everything else is stored and linked. A workspace's own uploads (files it sends to the user) never
/// come back to it as the user's (P35). Uploads spend the caller's byte budget.
let upload (env: Env) (ctx: HttpContext) : Task<Reply> =
    match strictLive env ctx with
    | Error e -> Task.FromResult e
    | Ok ws ->
        match Limits.uploadBytes env ctx with
        | Some refused -> Task.FromResult refused
        | None ->
            let fromCanvas = bearer ctx |> Option.exists (isAdmin env)

            if fromCanvas && ws.DeliveryMode = DeliveryMode.Poll then pendingUpload env ctx ws else chatUpload env ctx ws

/// GET /workspaces/:id/chat/uploads/:file.
let download (env: Env) (ctx: HttpContext) : Task =
    match strict env ctx with
    | Error e -> send ctx e
    | Ok(id, _) ->
        // already percent-decoded by the server: decoding again would turn a stored name's literal "%20" into a space
        let key = routeValue ctx "file" |> Option.defaultValue ""

        let stored =
            if key = "" || key <> Path.GetFileName key then None
            else env.Store.Read(fun r -> r.File(id, FileKind.Chat, key))

        match stored with
        | None -> send ctx (Wire.errorReply 404 "file not found")
        | Some(_, content) -> sendFile ctx (Uploads.mimeOf key) content

/// The pending file id of a request (`{file}`) for a workspace the caller may read, or the reply that says why not.
let private pendingKey (env: Env) (ctx: HttpContext) : Result<WorkspaceId * string, Reply> =
    match strictExisting env ctx with
    | Error e -> Error e
    | Ok ws ->
        match routeValue ctx "file" with
        | Some f when Team.isFileId f -> Ok(ws.Id, f)
        | _ -> Error(bad "invalid file_id")

/// GET /workspaces/:id/pending-uploads/:file_id/content — the bytes, until acknowledged.
let pendingContent (env: Env) (ctx: HttpContext) : Task =
    let found =
        pendingKey env ctx
        |> Result.bind (fun (ws, f) ->
            match env.Store.Read(fun r -> r.File(ws, FileKind.Pending, f)) with
            | Some file -> Ok file
            | None -> Error Team.pendingGone)

    match found with
    | Error e -> send ctx e
    | Ok(meta, content) -> sendFile ctx meta.MimeType content

/// POST /workspaces/:id/pending-uploads/:file_id/ack — the agent has the file: it is deleted here.
let pendingAck (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match pendingKey env ctx with
        | Error e -> return e
        | Ok(ws, f) ->
            try
                let deleted = env.Store.Write(fun w -> w.DeleteFile(ws, FileKind.Pending, f))
                return if deleted then ok (Json.obj [ "acked", Json.bool true ]) else Team.pendingGone
            with :? DbException ->
                return Wire.errorReply 500 "storage error"
    }
