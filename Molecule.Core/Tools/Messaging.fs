/// send_message_to_user, with attachments uploaded first (P18).
module Molecule.Core.MessagingTools

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// send_message_to_user
// ---------------------------------------------------------------------------------------------

let private maxAttachmentBytes = 25L * 1024L * 1024L

let private baseName (path: string) =
    let i = Math.Max(path.LastIndexOf '/', path.LastIndexOf '\\')
    if i >= 0 then path.Substring(i + 1) else path

/// The platform refused because an admin turned this workspace's talk_to_user ability off (addendum §2.9, §7.4). The
/// platform's hint is shown; the closing advice only when the hint does not give it already (P45).
let talkToUserDisabled (hint: string option) : string =
    let opening =
        "Error: this workspace is not allowed to send messages directly to the user (talk_to_user is disabled)."
    let advice =
        "Use delegate_task to forward your update to a parent or supervisor workspace; it may be able to reach the user."
    match hint |> Option.map (fun h -> h.Trim()) |> Option.filter (isBlank >> not) with
    | Some h when h.Contains("delegate_task", StringComparison.Ordinal) -> $"{opening} {h}"
    | Some h -> $"{opening} {h} {advice}"
    | None -> $"{opening} {advice}"

/// The file ids of uploads that wait on the platform for a poll-mode workspace (`platform-pending:<ws>/<file_id>`):
/// this workspace's own, which its inbox must not take for files the user sent (P35).
let private pendingFileIds (entries: JsonNode list) : FileId list =
    entries
    |> List.choose (Json.stringProp "uri")
    |> List.filter (fun uri -> uri.StartsWith("platform-pending:", StringComparison.Ordinal))
    |> List.choose (fun uri -> FileId.tryParse (uri.Substring(uri.LastIndexOf '/' + 1)))

/// What the agent learns from the uploaded files' entries: the ones waiting for this workspace are its own.
let private ownUploads (ctx: ToolContext) (entries: JsonNode list) : Observation list =
    match pendingFileIds entries with
    | [] -> []
    | own -> [ OwnUploads(ctx.Config.WorkspaceId, own) ]

/// Why an attachment cannot be sent, if one cannot.
let private attachmentProblem (paths: string list) (checks: FileCheck list) : string option =
    if checks.Length <> paths.Length then
        Some "Error: could not check the attachment files; nothing was sent."
    else
        List.zip paths checks
        |> List.tryPick (fun (p, c) ->
            match c with
            | FileMissing -> Some $"Error: attachment not found: {p} Nothing was sent."
            | FileUnreadable reason -> Some $"Error: cannot read attachment {p}: {reason} Nothing was sent."
            | FileOk size when size > maxAttachmentBytes ->
                let mb = (float size / 1048576.0).ToString("0.#", CultureInfo.InvariantCulture)
                Some $"Error: attachment {p} is {mb} MB; the limit is 25 MB per file. Nothing was sent."
            | FileOk _ -> None)

let private uploadFile (path: string) : UploadFile =
    let name = baseName path
    { Path = path; FileName = name; ContentType = Api.contentTypeOf name }

/// The platform's entry for each uploaded file, one per file, else why not.
let private uploadEntries (files: UploadFile list) (status: int) (body: string) : Result<JsonNode list, string> =
    if status <> 200 then
        Result.Error $"Error: chat/uploads returned {inv status}{withMessage (platformMessage body)}. Nothing was sent."
    else
        match Json.tryParse body |> Option.bind (Json.prop "files") |> Option.bind Json.asArray with
        | Some entries when entries.Length = files.Length -> Ok(entries |> List.map Json.clone)
        | Some entries -> Result.Error $"Error: chat/uploads returned {inv entries.Length} entries for {inv files.Length} files. Nothing was sent."
        | None -> Result.Error $"Error: chat/uploads answered without a files list: {short body}. Nothing was sent."

/// Checks the attachments on disk, then uploads them; goes on with the platform's entries for them.
let private upload (ctx: ToolContext) (paths: string list) : Program<Result<JsonNode list, ToolOutput>> =
    program {
        let! checks = Program.checkFiles paths
        match attachmentProblem paths checks with
        | Some problem -> return! refuse problem
        | None ->
            let files = paths |> List.map uploadFile
            let! status, body = call ctx (Api.uploads ctx.Config files)
            match uploadEntries files status body with
            | Ok entries -> return entries
            | Result.Error problem -> return! refuse problem
    }

/// POST /notify with the message and the uploaded files; whatever it answers, the agent learns the files it uploaded
/// for itself.
let private notify (ctx: ToolContext) (message: string) (entries: JsonNode list) : Program<Result<ToolOutput, ToolOutput>> =
    program {
        let! status, body = call ctx (Api.notify ctx.Config message entries)
        let field name = Json.tryParse body |> Option.bind (Json.stringProp name)
        if is2xx status then
            return ok (if entries.IsEmpty then "Message sent to user" else $"Message sent to user with {inv entries.Length} attachment(s)")
        elif status = 403 && field "error" = Some "talk_to_user_disabled" then
            return failure (talkToUserDisabled (field "hint"))
        else
            return failure (httpFailure status body)
    }
    |> Program.observeAfter (ownUploads ctx entries)

let sendMessageToUser (ctx: ToolContext) (message: string) (attachments: string list) : Program<ToolOutput> =
    platform ctx (program {
        if isBlank message then do! refuse "Error: message is required."
        let paths = attachments |> List.filter (isBlank >> not)
        let! entries = if paths.IsEmpty then program { return [] } else upload ctx paths
        return! notify ctx message entries
    })
