/// Chat upload routes: files stored in the data directory and served back.
module internal Molecule.Platform.Routes.FileRoutes

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
open Molecule.Platform.Routes.Http
module Json = Molecule.Protocol.Json

let safeName (name: string) =
    let n = Path.GetFileName(if isNull name then "" else name)
    let invalid = Path.GetInvalidFileNameChars()

    let cleaned =
        String(n.ToCharArray() |> Array.map (fun c -> if Array.contains c invalid || Char.IsControl c then '_' else c))

    let cleaned = cleaned.Trim().TrimStart('.')
    let cleaned = if cleaned = "" then "file" else cleaned
    if cleaned.Length > 100 then cleaned.Substring(cleaned.Length - 100) else cleaned

let contentTypes = FileExtensionContentTypeProvider()

let mimeOf (name: string) =
    match contentTypes.TryGetContentType name with
    | true, t -> t
    | _ -> "application/octet-stream"

let uploadsDir (env: Env) (ws: Guid) =
    Path.Combine(env.Store.DataDir, "uploads", Wire.guid ws)

let filesRequired =
    bad "files is required (multipart/form-data with one or more 'files' parts)"

let upload (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        task {
            let feature = ctx.Features.Get<IHttpMaxRequestBodySizeFeature>()

            if not (isNull feature) && not feature.IsReadOnly then
                feature.MaxRequestBodySize <- Nullable MaxUploadBody

            if not ctx.Request.HasFormContentType then
                return filesRequired
            else
                try
                    let! form = ctx.Request.ReadFormAsync()
                    let files = form.Files.GetFiles "files"

                    if files.Count = 0 then
                        return filesRequired
                    else
                        let dir = uploadsDir env w.Id
                        DataDir.createPrivateDir (Path.GetDirectoryName dir)
                        DataDir.createPrivateDir dir
                        let entries = ResizeArray<JsonNode>()

                        for f in files do
                            let name = safeName f.FileName
                            let stored = $"{Guid.NewGuid():N}-{name}"
                            let path = Path.Combine(dir, stored)

                            do!
                                task {
                                    use fs = new FileStream(path, DataDir.privateFile FileMode.CreateNew)
                                    do! f.CopyToAsync fs
                                    do! fs.FlushAsync()
                                    fs.Flush true
                                }

                            let mime =
                                if String.IsNullOrWhiteSpace f.ContentType || f.ContentType = "application/octet-stream" then
                                    mimeOf name
                                else
                                    f.ContentType

                            entries.Add(
                                Json.obj
                                    [ "uri", Json.str $"{baseUrl ctx}/workspaces/{Wire.guid w.Id}/chat/uploads/{Uri.EscapeDataString stored}"
                                      "name", Json.str name
                                      "mimeType", Json.str mime
                                      "size", Json.num64 f.Length ]
                            )

                        return ok (Json.obj [ "files", Json.arr entries ])
                with
                | :? Microsoft.AspNetCore.Http.BadHttpRequestException as e when e.StatusCode = 413 ->
                    return Wire.errorReply 413 uploadTooLarge
                | :? InvalidDataException
                | :? Microsoft.AspNetCore.Http.BadHttpRequestException
                | :? IOException -> return bad "files: invalid multipart body"
        })

let download (env: Env) (ctx: HttpContext) : Task =
    task {
        match strict env ctx with
        | Error e -> do! send ctx e
        | Ok(id, _) ->
            let file =
                match ctx.Request.RouteValues.TryGetValue "file" with
                // already percent-decoded by the server: decoding again would turn a stored name's literal
                // "%20" into a space and miss the file
                | true, (:? string as s) -> s
                | _ -> ""

            let path = Path.Combine(uploadsDir env id, Path.GetFileName file)

            if file = "" || file <> Path.GetFileName file || not (File.Exists path) then
                do! send ctx (Wire.errorReply 404 "file not found")
            else
                ctx.Response.StatusCode <- 200
                ctx.Response.ContentType <- mimeOf file
                ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
                ctx.Response.Headers["Content-Disposition"] <- "attachment"
                do! ctx.Response.SendFileAsync path
    }
