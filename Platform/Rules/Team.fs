/// Team-wide features of the reference at CORE@0520 (addendum §7.1–7.5): workspace abilities (broadcast,
/// talk_to_user), broadcasts to the organisation, and files uploaded for a poll-mode workspace. Pure.
module Molecule.Platform.Team

open System
open System.Text.Json.Nodes
module Json = Molecule.Protocol.Json

let private kindOf (n: JsonNode) = if isNull n then Text.Json.JsonValueKind.Null else n.GetValueKind()

// ---------------------------------------------------------------------------------------------
// Abilities
// ---------------------------------------------------------------------------------------------

type Abilities =
    { BroadcastEnabled: bool
      TalkToUserEnabled: bool }

/// The reference's column defaults: no broadcast, talking to the user allowed.
let defaults =
    { BroadcastEnabled = false
      TalkToUserEnabled = true }

let broadcastDisabledHint =
    "This workspace does not have the broadcast ability. Ask a user or admin to enable it via PATCH /workspaces/:id/abilities."

let talkToUserHint =
    "This workspace is not allowed to send messages directly to the user. Forward your update to a parent workspace using delegate_task — they may be able to reach the user."

/// 403 of a broadcast from a workspace without the ability.
let broadcastDisabled: Reply =
    Wire.reply 403 (Json.obj [ "error", Json.str "broadcast_disabled"; "hint", Json.str broadcastDisabledHint ])

/// 403 of a notify from a workspace whose talk_to_user ability is off.
let talkToUserDisabled: Reply =
    Wire.reply 403 (Json.obj [ "error", Json.str "talk_to_user_disabled"; "hint", Json.str talkToUserHint ])

/// PATCH /workspaces/:id/abilities body: the fields given (booleans), at least one.
let parsePatch (body: JsonObject) : Result<Abilities -> Abilities, Reply> =
    let flag name =
        match Json.prop name body with
        | None -> Ok None
        | Some v ->
            match kindOf v with
            | Text.Json.JsonValueKind.True -> Ok(Some true)
            | Text.Json.JsonValueKind.False -> Ok(Some false)
            | _ -> Error(Wire.errorReply 400 "invalid request body")
    match flag "broadcast_enabled", flag "talk_to_user_enabled" with
    | Error e, _
    | _, Error e -> Error e
    | Ok None, Ok None -> Error(Wire.errorReply 400 "at least one ability field required")
    | Ok b, Ok t ->
        Ok(fun a ->
            { BroadcastEnabled = defaultArg b a.BroadcastEnabled
              TalkToUserEnabled = defaultArg t a.TalkToUserEnabled })

/// The abilities file: `{"<workspace id>": {"broadcast_enabled": bool, "talk_to_user_enabled": bool}, …}`.
let encode (all: Map<WorkspaceId, Abilities>) : string =
    all
    |> Map.toList
    |> List.map (fun (id, a) ->
        id.Text,
        (Json.obj [ "broadcast_enabled", Json.bool a.BroadcastEnabled; "talk_to_user_enabled", Json.bool a.TalkToUserEnabled ] :> JsonNode))
    |> Json.obj
    |> Json.compact

let decode (text: string) : Map<WorkspaceId, Abilities> =
    match Json.tryParseObject text with
    | None -> Map.empty
    | Some o ->
        [ for kv in o do
              match Guid.TryParse kv.Key, Json.asObject kv.Value with
              | (true, id), Some a ->
                  let flag name fallback =
                      match Json.prop name a |> Option.map kindOf with
                      | Some Text.Json.JsonValueKind.True -> true
                      | Some Text.Json.JsonValueKind.False -> false
                      | _ -> fallback
                  WorkspaceId id,
                  { BroadcastEnabled = flag "broadcast_enabled" defaults.BroadcastEnabled
                    TalkToUserEnabled = flag "talk_to_user_enabled" defaults.TalkToUserEnabled }
              | _ -> () ]
        |> Map.ofList

// ---------------------------------------------------------------------------------------------
// Broadcast
// ---------------------------------------------------------------------------------------------

/// The root of a workspace's organisation (itself when it has no parent).
let rootOf (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : WorkspaceId =
    match Hierarchy.ancestors all id |> List.tryLast with
    | Some root -> root
    | None -> id

/// Every live workspace of the sender's organisation (same root), except the sender.
let recipients (all: Map<WorkspaceId, Workspace>) (sender: WorkspaceId) : Workspace list =
    let root = rootOf all sender
    all
    |> Map.toList
    |> List.map snd
    |> List.filter (fun w -> w.Id <> sender && w.Status <> Status.Removed && rootOf all w.Id = root)
    |> List.sortBy (fun w -> w.CreatedAt, w.Id)

/// `Broadcast from <sender name>: <message, at most 120 characters + "…">`.
let broadcastSummary (senderName: string) (message: string) : string =
    let runes = message.EnumerateRunes() |> Seq.toArray
    let shown =
        if runes.Length <= 120 then message
        else String.Join("", runes |> Array.truncate 120 |> Array.map (fun r -> r.ToString())) + "…"
    $"Broadcast from {senderName}: {shown}"

// ---------------------------------------------------------------------------------------------
// Files uploaded for a poll-mode workspace
// ---------------------------------------------------------------------------------------------

/// The largest number of files in one upload.
[<Literal>]
let MaxFiles = 64

/// A pending file id: 32 lower-case hex digits.
let isFileId (s: string) =
    not (isNull s) && s.Length = 32 && s |> Seq.forall (fun c -> (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))

let pendingUri (ws: WorkspaceId) (fileId: string) = $"platform-pending:{ws.Text}/{fileId}"

let uploadEntry (ws: WorkspaceId) (fileId: string) (name: string) (mime: string) (size: int64) : JsonObject =
    Json.obj
        [ "uri", Json.str (pendingUri ws fileId)
          "name", Json.str name
          "mimeType", Json.str mime
          "size", Json.num64 size ]

/// The row that tells a poll-mode workspace a file waits for it (source: none; the file in request_body).
let uploadRow (id: ActivityId) (now: DateTimeOffset) (ws: WorkspaceId) (fileId: string) (name: string) (mime: string) (size: int64) : ActivityRow =
    let body = uploadEntry ws fileId name mime size
    body["file_id"] <- Json.str fileId
    { Activity.row id now ws "a2a_receive" with
        TargetId = Some ws
        Method = Some "chat_upload_receive"
        Summary = Some $"chat_upload_receive: {name}"
        RequestBody = Some(Json.compact body) }

let pendingGone = Wire.errorReply 404 "pending upload not found, expired, or already acked"
