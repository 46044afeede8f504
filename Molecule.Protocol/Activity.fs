/// Rows of `GET /workspaces/:id/activity` as the wheel reads them (delivery spec §2.3): one record per row, the
/// message text taken from the A2A envelope, and a reason for every row that cannot be read. Total: a row that is
/// not an object, lacks an id, holds an undecodable string or is absurdly large is an `Error`, never an exception.
module Molecule.Protocol.Activity

open System
open System.Globalization
open System.Text.Json.Nodes

/// A file the user uploaded to a poll-mode workspace (a `chat_upload_receive` row's request_body).
type Upload =
    { FileId: string
      Name: string
      MimeType: string
      Size: int64 option
      /// `platform-pending:<workspace>/<file_id>`.
      Uri: string }

/// The method of the rows that announce an uploaded file.
let uploadMethod = "chat_upload_receive"

/// The method of the rows that carry the answer of a delegated task.
let delegationResultMethod = "delegate_result"

type Row =
    { Id: string
      /// The platform's delivery sequence number (newer platforms); None when the row has none.
      Seq: int64 option
      /// created_at exactly as the platform sent it (RFC 3339).
      CreatedAt: string
      /// created_at as an instant; None when it does not parse.
      At: DateTimeOffset option
      ActivityType: string
      Method: string
      /// "" for canvas and system senders (source_id null).
      SourceId: string
      /// "" when the row has none.
      TargetId: string
      Summary: string
      /// The message text: every text part, and one line per file part.
      Text: string
      /// With `include=peer_info`: the sender's name, role and agent card URL.
      PeerName: string option
      PeerRole: string option
      AgentCardUrl: string option
      /// A `chat_upload_receive` row's file.
      Upload: Upload option
      /// A `request_update` row's change of a request.
      Update: RequestUpdate.Update option }

/// Why a row was skipped, with its id, seq and time when they could be read (so it still orders and moves the cursor).
type Skipped =
    { Id: string option
      Seq: int64 option
      At: DateTimeOffset option
      Reason: string }

/// The largest message text accepted (characters); a longer row is skipped.
let maxTextChars = 1_000_000

/// created_at parsed as an instant (invariant culture; no offset means UTC). None when unparsable.
let parseTime (createdAt: string) : DateTimeOffset option =
    if String.IsNullOrWhiteSpace createdAt then
        None
    else
        match
            DateTimeOffset.TryParse(
                createdAt.Trim(),
                CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal ||| DateTimeStyles.AdjustToUniversal
            )
        with
        | true, t -> Some t
        | _ -> None

/// RFC 3339 text with 7 fractional digits in UTC, as `before_ts` takes it.
let formatTime (t: DateTimeOffset) : string =
    t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture)

let private text name node =
    Json.prop name node |> Option.bind Json.asScalarText |> Option.defaultValue ""

let private optionalText name node =
    Json.prop name node |> Option.bind Json.asString |> Option.filter (fun s -> s.Trim() <> "")

/// A body column as a JSON object (it may arrive as a JSON string holding JSON).
let private bodyOf (column: string) (row: JsonNode) : JsonNode option =
    match Json.prop column row with
    | Some(:? JsonObject as o) -> Some(o :> JsonNode)
    | Some body ->
        match Json.asString body |> Option.bind Json.tryParse with
        | Some(:? JsonObject as o) -> Some(o :> JsonNode)
        | _ -> None
    | None -> None

let private requestBody = bodyOf "request_body"

let private nonBlank (s: string option) = s |> Option.filter (fun t -> t.Trim() <> "")

let private textOfRow (row: JsonNode) : string =
    let fromParts =
        requestBody row
        |> Option.bind (fun body ->
            [ [ "params"; "message"; "parts" ]; [ "params"; "parts" ]; [ "parts" ] ]
            |> List.tryPick (fun p -> Json.path p body |> Option.bind A2a.textOfParts))
    // A delegation's answer is the response's text (the reference showed only the summary, P25), else its failure.
    let fromResult () =
        if Json.stringProp "method" row = Some delegationResultMethod then
            match bodyOf "response_body" row |> Option.bind (Json.stringProp "text") |> nonBlank with
            | Some t -> Some t
            | None ->
                fromParts
                |> Option.orElse (
                    Json.stringProp "error_detail" row |> nonBlank |> Option.map (fun e -> "The delegation failed: " + e)
                )
        else
            fromParts
    match fromResult () with
    | Some t -> t
    | None ->
        match Json.stringProp "summary" row with
        | Some s when s.Trim() <> "" -> s
        | _ -> "(empty A2A message)"

/// The file of a `chat_upload_receive` row: file_id and name are required.
let private uploadOf (row: JsonNode) : Upload option =
    if Json.stringProp "method" row <> Some uploadMethod then
        None
    else
        match requestBody row with
        | Some body ->
            let field n = Json.prop n body |> Option.bind Json.asScalarText |> nonBlank
            match field "file_id", field "name" with
            | Some fileId, Some name ->
                Some
                    { FileId = fileId.Trim()
                      Name = name
                      MimeType = defaultArg (field "mimeType") "application/octet-stream"
                      Size =
                        field "size"
                        |> Option.bind (fun t ->
                            match Int64.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture) with
                            | true, n -> Some n
                            | _ -> None)
                      Uri = defaultArg (field "uri") "" }
            | _ -> None
        | None -> None

/// The change of a request a `request_update` row reports.
let private updateOf (row: JsonNode) : RequestUpdate.Update option =
    if Json.stringProp "method" row <> Some RequestUpdate.method then None
    else requestBody row |> Option.bind RequestUpdate.ofBody

let private seqOf (row: JsonNode) : int64 option =
    match Json.prop "seq" row with
    | Some(:? JsonValue as v) ->
        match v.TryGetValue<int64>() with
        | true, n when n >= 0L -> Some n
        | _ ->
            match Json.asString v |> Option.map (fun s -> Int64.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture)) with
            | Some(true, n) -> Some n
            | _ -> None
    | _ -> None

let private idOf (row: JsonNode) : string option =
    Json.prop "id" row |> Option.bind Json.asScalarText |> Option.filter (fun s -> s.Trim() <> "" && s.Length <= 256)

let private skipped (row: JsonNode) (reason: string) : Skipped =
    let safe f =
        try
            f ()
        with
        | :? InvalidOperationException
        | :? ArgumentException
        | :? FormatException -> None
    { Id = safe (fun () -> idOf row)
      Seq = safe (fun () -> seqOf row)
      At = safe (fun () -> parseTime (text "created_at" row))
      Reason = reason }

/// Where a row sits in the feed, read without the rest of it (for rows a client already has).
type Stamp =
    { Id: string
      Seq: int64 option
      At: DateTimeOffset option }

/// The stamp of a row with a usable id; None otherwise. Never throws.
let stampOf (row: JsonNode) : Stamp option =
    let s = skipped row ""
    s.Id |> Option.map (fun id -> { Id = id; Seq = s.Seq; At = s.At })

let private readRow (row: JsonNode) : Result<Row, Skipped> =
    match row with
    | :? JsonObject ->
        match idOf row with
        | None -> Error(skipped row "the row has no usable id")
        | Some _ when not (Json.decodes row) ->
            Error(skipped row "the row holds a string that is not valid text (a lone UTF-16 surrogate escape)")
        | Some id ->
            let message = textOfRow row
            if message.Length > maxTextChars then
                Error(skipped row $"the message text has {message.Length.ToString(CultureInfo.InvariantCulture)} characters (limit {maxTextChars.ToString(CultureInfo.InvariantCulture)})")
            else
                let createdAt = text "created_at" row
                Ok
                    { Id = id
                      Seq = seqOf row
                      CreatedAt = createdAt
                      At = parseTime createdAt
                      ActivityType = text "activity_type" row
                      Method = text "method" row
                      SourceId = (text "source_id" row).Trim()
                      TargetId = (text "target_id" row).Trim()
                      Summary = text "summary" row
                      Text = message
                      PeerName = optionalText "peer_name" row
                      PeerRole = optionalText "peer_role" row
                      AgentCardUrl = optionalText "agent_card_url" row
                      Upload = uploadOf row
                      Update = updateOf row }
    | _ -> Error { Id = None; Seq = None; At = None; Reason = "the row is not a JSON object" }

/// One row of an activity page. Never throws.
let parseRow (row: JsonNode) : Result<Row, Skipped> =
    try
        readRow row
    with
    | :? InvalidOperationException
    | :? ArgumentException
    | :? FormatException as e ->
        Error(skipped row $"the row cannot be read ({e.GetType().Name})")

/// The rows of an activity page body (a JSON array); Error with a reason when the body is not one.
let parsePage (body: string) : Result<JsonNode list, string> =
    match Json.tryParse body |> Option.bind Json.asArray with
    | Some rows -> Ok rows
    | None -> Error "the body is not a JSON array"
