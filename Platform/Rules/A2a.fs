/// A2A envelopes (normalisation, queued rows, extracted text) and notify rows. Pure; ids and time are arguments.
module Molecule.Platform.A2a

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

let accessDenied = "access denied: workspaces cannot communicate per hierarchy rules"

let private systemPrefixes = [ "webhook:"; "system:"; "test:"; "channel:" ]

/// X-Workspace-ID header → caller id. Empty → None; system prefixes → 403; other non-UUID → 400.
let parseCaller (header: string option) : Result<WorkspaceId option, Reply> =
    match header with
    | None -> Ok None
    | Some h when String.IsNullOrWhiteSpace h -> Ok None
    | Some h when systemPrefixes |> List.exists (fun p -> h.Trim().StartsWith(p, StringComparison.OrdinalIgnoreCase)) ->
        Error(Wire.errorReply 403 "invalid caller ID")
    | Some h ->
        match parseWorkspaceId h with
        | Some g -> Ok(Some g)
        | None -> Error(bad "X-Workspace-ID must be a valid UUID")

/// Normalises a POSTed A2A body into a JSON-RPC 2.0 envelope. `rpcId` and `messageId` are used when missing.
let normalise (rpcId: Guid) (messageId: Guid) (text: string) : Result<JsonObject, Reply> =
    match Json.tryParseDecoded text with
    | Some(:? JsonObject as o) ->
        let env =
            if o.ContainsKey "jsonrpc" then
                o.DeepClone().AsObject()
            else
                Json.obj
                    [ "jsonrpc", Json.str "2.0"
                      "id", Json.str (Wire.guid rpcId)
                      "method", (Json.prop "method" o |> Option.map Json.clone |> Option.defaultValue null)
                      "params", (Json.prop "params" o |> Option.map Json.clone |> Option.defaultValue null) ]

        if not (env.ContainsKey "id") || isNull env["id"] then
            env["id"] <- Json.str (Wire.guid rpcId)

        let methodName =
            match Json.prop "method" env |> Option.bind Json.asString with
            | Some m when m <> "" -> m
            | _ -> "message/send"

        env["method"] <- Json.str methodName

        if methodName = "message/send" || methodName = "message/stream" then
            match Json.prop "params" env |> Option.bind Json.asObject with
            | None -> Error(bad "params.message is required (params.message.parts or a v0.2 content string)")
            | Some p ->
                match Json.prop "message" p |> Option.bind Json.asObject with
                | None -> Error(bad "params.message is required (params.message.parts or a v0.2 content string)")
                | Some m ->
                    if (Json.prop "messageId" m |> Option.bind Json.asString |> Option.defaultValue "") = "" then
                        m["messageId"] <- Json.str (Wire.guid messageId)

                    match Json.prop "parts" m |> Option.bind Json.asArray, Json.prop "content" m |> Option.bind Json.asString with
                    | Some _, _ -> Ok env
                    | None, Some content ->
                        m.Remove "content" |> ignore
                        m["parts"] <- Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str content ] ]
                        Ok env
                    | None, None ->
                        Error(bad "params.message.parts is required (hint: send parts:[{kind:'text',text:'...'}] or a v0.2 content string)")
        else
            Ok env
    | Some _ -> Error(bad "invalid JSON: body must be a JSON-RPC object")
    | None -> Error(bad "invalid JSON")

let methodOf (env: JsonObject) =
    Json.prop "method" env |> Option.bind Json.asString |> Option.defaultValue "message/send"

/// Reply to the sender of a message to a poll-mode target.
let queuedReply (methodName: string) : Reply =
    Wire.reply 200 (Json.obj [ "status", Json.str "queued"; "delivery_mode", Json.str "poll"; "method", Json.str methodName ])

/// `params.message.messageId` when it is a non-empty string (the key of inbound idempotency, spec §6.1).
let messageIdOf (env: JsonObject) : string option =
    Json.prop "params" env
    |> Option.bind (Json.prop "message")
    |> Option.bind (Json.prop "messageId")
    |> Option.bind Json.asString
    |> Option.filter (fun m -> m <> "")

/// Summary of the row a poll-mode `message/send` writes at receipt: `<method> → <name> (ingest)`.
let ingestSummary (methodName: string) (targetName: string) = $"{methodName} → {targetName} (ingest)"

/// Summary of the poll short-circuit's broadcast (and of the row of any other method): `… (queued for poll)`.
let queuedSummary (methodName: string) (targetName: string) = $"{methodName} → {targetName} (queued for poll)"

/// True when the poll path writes an ingest row and then rings twice (a message/send with a messageId).
let isIngest (env: JsonObject) = methodOf env = "message/send" && (messageIdOf env).IsSome

/// The a2a_receive row written on a poll-mode target (keyed by the message id when there is one).
let queuedRow (id: ActivityId) (now: DateTimeOffset) (caller: WorkspaceId option) (target: Workspace) (env: JsonObject) : ActivityRow =
    let m = methodOf env

    { Activity.row id now target.Id "a2a_receive" with
        SourceId = caller
        TargetId = Some target.Id
        Method = Some m
        Summary = Some(if isIngest env then ingestSummary m target.Name else queuedSummary m target.Name)
        RequestBody = Some(Json.compact env)
        MessageId = messageIdOf env }

let private attachmentKinds = [ "file"; "image"; "audio"; "video" ]

/// Attachments of an inbound row (include=peer_info, spec §2.3): file-like parts of
/// `request_body.params.message.parts` (kind from `kind`, else legacy `type`; uri / mime_type / name from the
/// nested `file` object or the part itself; parts with neither uri nor name skipped), or one entry for a flat
/// upload manifest at the root of the body (`uri`/`file_id`, `name`, `mimeType`; kind from the MIME prefix).
let attachmentsOf (requestBody: string option) : JsonNode list =
    let entry (kind: string) (uri: string option) (mime: string option) (name: string option) : JsonNode option =
        if uri.IsNone && name.IsNone then
            None
        else
            let o = Json.obj [ "kind", Json.str kind ]
            uri |> Option.iter (fun u -> o["uri"] <- Json.str u)
            mime |> Option.iter (fun m -> o["mime_type"] <- Json.str m)
            name |> Option.iter (fun n -> o["name"] <- Json.str n)
            Some(o :> JsonNode)

    let text (name: string) (n: JsonNode) =
        Json.prop name n |> Option.bind Json.asString |> Option.filter (fun v -> v <> "")

    match requestBody |> Option.bind Json.tryParseDecoded with
    | None -> []
    | Some body ->
        let parts =
            Json.prop "params" body
            |> Option.bind (Json.prop "message")
            |> Option.bind (Json.prop "parts")
            |> Option.bind Json.asArray

        match parts with
        | Some ps ->
            ps
            |> Seq.choose (fun p ->
                match text "kind" p |> Option.orElse (text "type" p) with
                | Some k when List.contains k attachmentKinds ->
                    let src =
                        match Json.prop "file" p |> Option.bind Json.asObject with
                        | Some f -> f :> JsonNode
                        | None -> p

                    entry k (text "uri" src) (text "mimeType" src |> Option.orElse (text "mime_type" src)) (text "name" src)
                | _ -> None)
            |> List.ofSeq
        | None ->
            let uri = text "uri" body |> Option.orElse (text "file_id" body)
            let mime = text "mimeType" body

            let kind =
                match mime with
                | Some m when m.StartsWith "image/" -> "image"
                | Some m when m.StartsWith "audio/" -> "audio"
                | Some m when m.StartsWith "video/" -> "video"
                | _ -> "file"

            if uri.IsSome then (entry kind uri mime (text "name" body) |> Option.toList) else []

/// Concatenated text of the text parts of a message/result node (parts of kind or type "text").
let textOfParts (node: JsonNode) : string =
    match Json.prop "parts" node |> Option.bind Json.asArray with
    | Some parts ->
        parts
        |> Seq.choose (fun p ->
            let k =
                Json.prop "kind" p
                |> Option.orElse (Json.prop "type" p)
                |> Option.bind Json.asString

            if k = Some "text" then Json.prop "text" p |> Option.bind Json.asString else None)
        |> String.concat ""
    | None -> ""

/// Text of an agent's JSON-RPC answer: result.parts text, else result.artifacts[*].parts text, else the raw body.
let answerText (body: string) : string =
    match Json.tryParseDecoded body with
    | Some n ->
        match Json.prop "result" n with
        | Some r ->
            let direct = textOfParts r

            if direct <> "" then
                direct
            else
                match Json.prop "artifacts" r |> Option.bind Json.asArray with
                | Some arts -> arts |> Seq.map textOfParts |> String.concat ""
                | None -> body
        | None -> body
    | None -> body

type Attachment =
    { Uri: string
      Name: string
      MimeType: string option
      Size: int64 option }

/// POST /workspaces/:id/notify body → (message, attachments) or 400.
let parseNotify (body: JsonObject) : Result<string * Attachment list, Reply> =
    result {
        let! message =
            match Json.prop "message" body |> Option.bind Json.asString with
            | Some m when m <> "" -> Ok m
            | _ -> Error(bad "message is required")

        let! atts = optArray "attachments" body

        let parsed =
            match atts with
            | None -> Ok []
            | Some a ->
                a
                |> Seq.mapi (fun i n ->
                    let s name = Json.prop name n |> Option.bind Json.asString |> Option.filter (fun v -> v <> "")

                    match s "uri", s "name" with
                    | Some u, Some nm ->
                        Ok
                            { Uri = u
                              Name = nm
                              MimeType = s "mimeType"
                              Size = Json.prop "size" n |> Option.bind Json.asNumber |> Option.map int64 }
                    | _ -> Error(bad $"attachment[{i}]: uri and name are required"))
                |> Seq.fold
                    (fun acc r ->
                        match acc, r with
                        | Ok xs, Ok x -> Ok(x :: xs)
                        | Error e, _ -> Error e
                        | _, Error e -> Error e)
                    (Ok [])
                |> Result.map List.rev

        let! attachments = parsed
        return message, attachments
    }

let attachmentNode (a: Attachment) : JsonNode =
    let f =
        Json.obj [ "uri", Json.str a.Uri; "name", Json.str a.Name ]

    a.MimeType |> Option.iter (fun m -> f["mimeType"] <- Json.str m)
    a.Size |> Option.iter (fun s -> f["size"] <- Json.num64 s)
    Json.obj [ "kind", Json.str "file"; "file", f ]

/// The notify row: a2a_receive, method notify, source NULL, response_body {result, parts?}.
let notifyRow (id: ActivityId) (now: DateTimeOffset) (ws: Workspace) (message: string) (atts: Attachment list) : ActivityRow =
    let resp = Json.obj [ "result", Json.str message ]

    if not atts.IsEmpty then
        resp["parts"] <- Json.arr (atts |> List.map attachmentNode)

    let short =
        if message.Length > 80 then message.Substring(0, 80) + "…" else message

    { Activity.row id now ws.Id "a2a_receive" with
        Method = Some "notify"
        Summary = Some("Agent message: " + short)
        ResponseBody = Some(Json.compact resp) }
