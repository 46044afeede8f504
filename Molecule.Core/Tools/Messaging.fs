/// send_message_to_user, with attachments uploaded first (P18).
module Molecule.Core.MessagingTools

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
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
let private pendingFileIds (entries: JsonNode list) : string list =
    entries
    |> List.choose (Json.stringProp "uri")
    |> List.filter (fun uri -> uri.StartsWith("platform-pending:", StringComparison.Ordinal))
    |> List.map (fun uri -> uri.Substring(uri.LastIndexOf '/' + 1))
    |> List.filter (isBlank >> not)

let sendMessageToUser (ctx: ToolContext) (message: string) (attachments: string list) : Program =
    let cfg = ctx.Config
    let paths = attachments |> List.filter (isBlank >> not)

    let sendNotify (entries: JsonNode list) : Program =
        call ctx (Api.notify cfg message entries) (fun status body ->
            let field name = Json.tryParse body |> Option.bind (Json.stringProp name)
            if is2xx status then
                match entries.Length with
                | 0 -> ok "Message sent to user"
                | n -> ok $"Message sent to user with {inv n} attachment(s)"
            elif status = 403 && field "error" = Some "talk_to_user_disabled" then
                fail (talkToUserDisabled (field "hint"))
            else
                fail (httpFailure status body))
        |> andThen (fun (output, observations) ->
            match pendingFileIds entries with
            | [] -> Done(output, observations)
            | own -> Done(output, observations @ [ OwnUploads(cfg.WorkspaceId, own) ]))

    platform ctx (fun () ->
        if isBlank message then
            fail "Error: message is required."
        elif paths.IsEmpty then
            sendNotify []
        else
            CheckFiles(
                paths,
                fun checks ->
                    if checks.Length <> paths.Length then
                        fail "Error: could not check the attachment files; nothing was sent."
                    else
                        let problem =
                            List.zip paths checks
                            |> List.tryPick (fun (p, c) ->
                                match c with
                                | FileMissing -> Some $"Error: attachment not found: {p}"
                                | FileUnreadable reason -> Some $"Error: cannot read attachment {p}: {reason}"
                                | FileOk size when size > maxAttachmentBytes ->
                                    let mb = (float size / 1048576.0).ToString("0.#", CultureInfo.InvariantCulture)
                                    Some $"Error: attachment {p} is {mb} MB; the limit is 25 MB per file."
                                | FileOk _ -> None)

                        match problem with
                        | Some text -> fail (text + " Nothing was sent.")
                        | None ->
                            let files =
                                paths
                                |> List.map (fun p ->
                                    let name = baseName p

                                    { Path = p
                                      FileName = name
                                      ContentType = Api.contentTypeOf name })

                            call ctx (Api.uploads cfg files) (fun status body ->
                                if status <> 200 then
                                    fail $"Error: chat/uploads returned {inv status}{withMessage (platformMessage body)}. Nothing was sent."
                                else
                                    match Json.tryParse body |> Option.bind (Json.prop "files") |> Option.bind Json.asArray with
                                    | Some entries when entries.Length = files.Length -> sendNotify (entries |> List.map Json.clone)
                                    | Some entries ->
                                        fail
                                            $"Error: chat/uploads returned {inv entries.Length} entries for {inv files.Length} files. Nothing was sent."
                                    | None ->
                                        fail $"Error: chat/uploads answered without a files list: {short body}. Nothing was sent.")
            ))

