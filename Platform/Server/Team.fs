/// Team routes of the reference at CORE@0520 (addendum §7.1–7.5): POST /registry/update-card, POST
/// /workspaces/:id/broadcast, PATCH /workspaces/:id/abilities (admin), the talk_to_user gate on notify, and files
/// the canvas uploads for a poll-mode workspace (pending until the agent fetches and acknowledges them).
module internal Molecule.Platform.Routes.TeamRoutes

open System
open System.Collections.Concurrent
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Http
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- abilities (<data-dir>/abilities.json)

/// The abilities of one platform's workspaces, kept in `<data-dir>/abilities.json` (written atomically).
type private AbilityFile(dataDir: string) =
    let path = Path.Combine(dataDir, "abilities.json")
    let gate = obj ()

    let mutable all =
        try
            if File.Exists path then Team.decode (File.ReadAllText path) else Map.empty
        with :? IOException ->
            Map.empty

    member _.Get(id: Guid) = lock gate (fun () -> defaultArg (all.TryFind id) Team.defaults)

    member _.Update(id: Guid, change: Team.Abilities -> Team.Abilities) =
        lock gate (fun () ->
            let next = all.Add(id, change (defaultArg (all.TryFind id) Team.defaults))
            let tmp = path + ".tmp"
            File.WriteAllText(tmp, Team.encode next, UTF8Encoding(false))
            File.Move(tmp, path, true)
            all <- next)

let private files = ConcurrentDictionary<string, AbilityFile>()

let private abilitiesOf (env: Env) = files.GetOrAdd(env.Store.DataDir, fun dir -> AbilityFile dir)

/// Whether a workspace may talk to the user (notify).
let talkToUserAllowed (env: Env) (id: Guid) = (abilitiesOf env).Get(id).TalkToUserEnabled

/// PATCH /workspaces/:id/abilities (admin).
let patchAbilities (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match adminGate env ctx, routeGuid ctx "id" with
        | Error e, _ -> return e
        | Ok(), None -> return invalidId
        | Ok(), Some id ->
            match! readJson ctx with
            | Error _ -> return bad "invalid request body"
            | Ok body ->
                match Team.parsePatch body with
                | Error e -> return e
                | Ok change ->
                    match env.Store.Workspace id with
                    | None -> return notFound
                    | Some _ ->
                        try
                            (abilitiesOf env).Update(id, change)
                            return okStatus "updated"
                        with :? IOException ->
                            return Wire.errorReply 500 "update failed"
    }

// ---------------------------------------------------------------- update-card

/// POST /registry/update-card `{"workspace_id", "agent_card"}`: the registry's token gate, then the card replaced.
let updateCard (env: Env) (ctx: HttpContext) : Task<Reply> =
    withJson ctx (fun body ->
        let card = Json.prop "agent_card" body

        match Json.prop "workspace_id" body |> Option.bind Json.asString |> Option.bind parseGuid, card with
        | Some id, Some card ->
            env.Store.Transaction(fun () ->
                registryExisting env ctx id (fun w ->
                    if w.Status = Status.Removed then
                        Views.removed w
                    else
                        env.Store.SaveWorkspace { w with AgentCard = Some(Json.compact card); UpdatedAt = env.Now() }
                        publish env "AGENT_CARD_UPDATED" (Some id) [ "agent_card", Json.clone card ]
                        okStatus "updated"))
        | _ -> bad "invalid request body")

// ---------------------------------------------------------------- broadcast

/// POST /workspaces/:id/broadcast `{"message"}`: every other live workspace of the organisation gets a
/// `broadcast_receive` row; the sender a `broadcast_sent` one.
let broadcast (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strict env ctx (fun (id, ws) ->
        withJson ctx (fun body ->
            match ws, Json.prop "message" body |> Option.bind Json.asString with
            | None, _ -> notFound
            | Some w, _ when w.Status = Status.Removed -> notFound
            | _, None -> bad "message is required"
            | _, Some m when String.IsNullOrWhiteSpace m -> bad "message is required"
            | Some sender, Some message ->
                if not ((abilitiesOf env).Get(id).BroadcastEnabled) then
                    Team.broadcastDisabled
                else
                    env.Store.Atomically(fun () ->
                        let now = env.Now()
                        let targets = Team.recipients env.Store.Workspaces id
                        let summary = Team.broadcastSummary (if sender.Name = "" then Wire.guid id else sender.Name) message
                        let body = Json.compact (Json.obj [ "message", Json.str message ])

                        for t in targets do
                            insertQuiet
                                env
                                { Activity.row (newId ()) now t.Id "broadcast_receive" with
                                    SourceId = Some id
                                    TargetId = Some t.Id
                                    Method = Some "broadcast"
                                    Summary = Some summary
                                    RequestBody = Some body }
                            |> ignore

                        insertQuiet
                            env
                            { Activity.row (newId ()) now id "broadcast_sent" with
                                SourceId = Some id
                                Method = Some "broadcast"
                                Summary = Some $"Broadcast sent to {targets.Length} workspace(s)"
                                RequestBody = Some body }
                        |> ignore

                        ok (Json.obj [ "status", Json.str "sent"; "delivered", Json.num targets.Length ]))))

// ---------------------------------------------------------------- notify gate

/// POST /workspaces/:id/notify behind the talk_to_user ability (403 `talk_to_user_disabled` when an admin turned it off).
let notifyGated (env: Env) (ctx: HttpContext) : Task<Reply> =
    match strict env ctx with
    | Ok(id, Some _) when not (talkToUserAllowed env id) -> Task.FromResult Team.talkToUserDisabled
    | _ -> A2aRoutes.notify env ctx

// ---------------------------------------------------------------- uploads for a poll-mode workspace

let private pendingDir (env: Env) (ws: Guid) =
    Path.Combine(env.Store.DataDir, "pending-uploads", Wire.guid ws)

/// POST /workspaces/:id/chat/uploads. From the canvas (the admin token) to a poll-mode workspace the files wait for
/// the agent: stored as pending, one `chat_upload_receive` row each. A workspace's own uploads (its token: files it
/// sends to the user) are stored and linked as before — they never come back to it as the user's (P35).
let upload (env: Env) (ctx: HttpContext) : Task<Reply> =
    let fromCanvas = bearer ctx |> Option.exists (isAdmin env)

    match strictLive env ctx with
    | Ok w when fromCanvas && w.DeliveryMode = "poll" ->
        task {
            let feature = ctx.Features.Get<IHttpMaxRequestBodySizeFeature>()

            if not (isNull feature) && not feature.IsReadOnly then
                feature.MaxRequestBodySize <- Nullable MaxUploadBody

            if not ctx.Request.HasFormContentType then
                return bad "malformed multipart body"
            else
                try
                    let! form = ctx.Request.ReadFormAsync()
                    let posted = form.Files.GetFiles "files"

                    if posted.Count = 0 then
                        return bad "no files field in request"
                    elif posted.Count > Team.MaxFiles then
                        return bad $"too many files (limit {Team.MaxFiles})"
                    else
                        let dir = pendingDir env w.Id
                        Directory.CreateDirectory dir |> ignore
                        let stored = ResizeArray()

                        for f in posted do
                            let fileId = Guid.NewGuid().ToString("N")
                            let name = FileRoutes.safeName f.FileName

                            let mime =
                                if String.IsNullOrWhiteSpace f.ContentType || f.ContentType = "application/octet-stream" then
                                    FileRoutes.mimeOf name
                                else
                                    f.ContentType

                            do!
                                task {
                                    use fs = new FileStream(Path.Combine(dir, fileId), FileMode.CreateNew, FileAccess.Write)
                                    do! f.CopyToAsync fs
                                    fs.Flush true
                                }

                            File.WriteAllText(Path.Combine(dir, fileId + ".json"), Json.compact (Json.obj [ "name", Json.str name; "mimeType", Json.str mime ]))
                            stored.Add(fileId, name, mime, f.Length)

                        env.Store.Atomically(fun () ->
                            for (fileId, name, mime, size) in stored do
                                insertRow env (Team.uploadRow (newId ()) (env.Now()) w.Id fileId name mime size) |> ignore)

                        let entries = stored |> Seq.map (fun (fileId, name, mime, size) -> Team.uploadEntry w.Id fileId name mime size :> JsonNode)
                        return ok (Json.obj [ "files", Json.arr entries ])
                with
                | :? BadHttpRequestException as e when e.StatusCode = 413 ->
                    return Wire.reply 413 (Json.obj [ "error", Json.str "one or more files exceed per-file cap"; "max", Json.num64 MaxUploadBody ])
                | :? InvalidDataException
                | :? BadHttpRequestException -> return bad "malformed multipart body"
                | :? IOException -> return Wire.errorReply 500 "could not stage files"
        }
    | _ -> FileRoutes.upload env ctx

/// The pending file of a request (`{file}` route value), or the reply that says why there is none.
let private pendingFile (env: Env) (ctx: HttpContext) : Result<Guid * string, Reply> =
    match strictExisting env ctx with
    | Error e -> Error e
    | Ok w ->
        match ctx.Request.RouteValues.TryGetValue "file" with
        | true, (:? string as f) when Team.isFileId f ->
            let path = Path.Combine(pendingDir env w.Id, f)
            if File.Exists path then Ok(w.Id, path) else Error Team.pendingGone
        | _ -> Error(bad "invalid file_id")

/// GET /workspaces/:id/pending-uploads/:file_id/content — the bytes, until acknowledged.
let pendingContent (env: Env) (ctx: HttpContext) : Task =
    task {
        match pendingFile env ctx with
        | Error e -> do! send ctx e
        | Ok(_, path) ->
            let meta = try Json.tryParse (File.ReadAllText(path + ".json")) with :? IOException -> None
            let mime = meta |> Option.bind (Json.prop "mimeType") |> Option.bind Json.asString |> Option.defaultValue "application/octet-stream"
            ctx.Response.StatusCode <- 200
            ctx.Response.ContentType <- mime
            ctx.Response.Headers["X-Content-Type-Options"] <- "nosniff"
            ctx.Response.Headers["Content-Disposition"] <- "attachment"
            do! ctx.Response.SendFileAsync path
    }

/// POST /workspaces/:id/pending-uploads/:file_id/ack — the agent has the file: it is deleted here.
let pendingAck (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match pendingFile env ctx with
        | Error e -> return e
        | Ok(_, path) ->
            try
                File.Delete path
                File.Delete(path + ".json")
                return ok (Json.obj [ "acked", Json.bool true ])
            with :? IOException ->
                return Wire.errorReply 500 "storage error"
    }

/// Maps the routes that are not already mapped elsewhere (notify and chat/uploads are wrapped in Host.fs).
let map (app: WebApplication) (env: Env) =
    app.MapPost("/registry/update-card", handle (updateCard env)) |> ignore
    app.MapPost("/workspaces/{id}/broadcast", handle (broadcast env)) |> ignore
    app.MapPatch("/workspaces/{id}/abilities", handle (patchAbilities env)) |> ignore
    app.MapGet("/workspaces/{id}/pending-uploads/{file}/content", RequestDelegate(pendingContent env)) |> ignore
    app.MapPost("/workspaces/{id}/pending-uploads/{file}/ack", handle (pendingAck env)) |> ignore
