/// Files the user uploads to a poll-mode workspace (addendum §7.5; fixes P34/P35). Each `chat_upload_receive` row is
/// kept in the ledger as a hidden message (its file, where it stands, the batch it came with) until its file is on
/// disk under `<state dir>/uploads/<workspace id>/` — or known to be gone; then the files of one batch become ONE
/// message naming their paths. Pure: the workspace issues the downloads and keeps the ledger durable.
module Molecule.Core.Uploads

open System
open System.Globalization
open System.Text
open System.Text.Json.Nodes
open Molecule.Protocol

/// The method of a hidden message (the row's own).
let pendingMethod = Activity.uploadMethod

/// The method of the message that tells the agent about the files.
let deliveredMethod = "chat_upload"

/// Download attempts before a file is given up.
let maxAttempts = 5

/// Where a file stands.
type Stage =
    | Waiting
    | Staged of path: string * bytes: int64
    | Gone of reason: string

type Pending =
    { Upload: Activity.Upload
      /// The id of the first upload row of the same batch: the id of the message the batch becomes.
      Group: string
      Stage: Stage }

let isPending (m: InboxMessage) = m.Method = pendingMethod

// ---------------------------------------------------------------------------------------------
// The hidden message
// ---------------------------------------------------------------------------------------------

let private encode (p: Pending) : string =
    let u = p.Upload
    Json.obj
        [ yield "file_id", Json.str u.FileId
          yield "name", Json.str u.Name
          yield "mimeType", Json.str u.MimeType
          match u.Size with
          | Some n -> yield "size", (JsonValue.Create n :> JsonNode)
          | None -> ()
          yield "uri", Json.str u.Uri
          yield "group", Json.str p.Group
          match p.Stage with
          | Waiting -> ()
          | Staged(path, bytes) ->
              yield "path", Json.str path
              yield "bytes", (JsonValue.Create bytes :> JsonNode)
          | Gone reason -> yield "error", Json.str reason ]
    |> Json.compact

/// The file of a hidden message; None for any other message.
let decode (m: InboxMessage) : Pending option =
    if not (isPending m) then
        None
    else
        match Json.tryParse m.Text with
        | Some node ->
            let field n = Json.prop n node |> Option.bind Json.asScalarText |> Option.filter (fun s -> s.Trim() <> "")
            let int64Of n =
                field n |> Option.bind (fun t ->
                    match Int64.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture) with
                    | true, v -> Some v
                    | _ -> None)
            match field "file_id", field "name" with
            | Some fileId, Some name ->
                let stage =
                    match field "path", field "error" with
                    | Some path, _ -> Staged(path, defaultArg (int64Of "bytes") 0L)
                    | None, Some reason -> Gone reason
                    | None, None -> Waiting
                Some
                    { Upload =
                        { FileId = fileId
                          Name = name
                          MimeType = defaultArg (field "mimeType") "application/octet-stream"
                          Size = int64Of "size"
                          Uri = defaultArg (field "uri") "" }
                      Group = defaultArg (field "group") m.ActivityId
                      Stage = stage }
            | _ -> None
        | None -> None

/// The hidden message of a `chat_upload_receive` row (its own group until `grouped` says otherwise).
let hidden (row: Activity.Row) (upload: Activity.Upload) : InboxMessage =
    { ActivityId = row.Id
      Seq = row.Seq
      Text = encode { Upload = upload; Group = row.Id; Stage = Waiting }
      PeerId = ""
      Kind = CanvasUser
      Method = pendingMethod
      CreatedAt = row.CreatedAt
      PeerName = None
      PeerRole = None
      AgentCardUrl = None }

/// The same file at another stage.
let withStage (stage: Stage) (m: InboxMessage) : InboxMessage =
    match decode m with
    | Some p -> { m with Text = encode { p with Stage = stage } }
    | None -> m

/// The uploads of one batch of rows belong together: each names the first of them as its group.
let grouped (messages: InboxMessage list) : InboxMessage list =
    match messages |> List.tryFind isPending with
    | None -> messages
    | Some first ->
        messages
        |> List.map (fun m ->
            match decode m with
            | Some p -> { m with Text = encode { p with Group = first.ActivityId } }
            | None -> m)

// ---------------------------------------------------------------------------------------------
// Where files go
// ---------------------------------------------------------------------------------------------

let private safeChar (c: char) =
    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c = '.' || c = '-' || c = '_'

let private clean (max: int) (fallback: string) (s: string) =
    let t = String((if isNull s then "" else s).ToCharArray() |> Array.map (fun c -> if safeChar c then c else '_'))
    let t = if t.Length > max then t.Substring(t.Length - max) else t
    let t = t.TrimStart('.')
    if t = "" || t |> Seq.forall (fun c -> c = '_') then fallback else t

/// A file name that is safe on every file system: [A-Za-z0-9._-] only, no leading dot, at most 100 characters
/// (the end is kept: it holds the extension); "file" when nothing is left.
let safeName (name: string) : string = clean 100 "file" name

/// `<state dir>/uploads/<workspace id>/<file id>-<name>` — never outside the state directory.
let path (stateDir: string) (workspace: WorkspaceId) (upload: Activity.Upload) : string =
    let dir = if isNull stateDir then "" else stateDir.TrimEnd('/')
    let file = clean 64 "upload" upload.FileId + "-" + safeName upload.Name
    $"{dir}/uploads/{workspace.Value}/{file}"

// ---------------------------------------------------------------------------------------------
// The message the agent reads
// ---------------------------------------------------------------------------------------------

/// The longest file name shown.
let maxShownName = 120

/// A file name as it may be shown (in the announcement and in log lines): the platform's row is untrusted, so control
/// characters, line and paragraph separators and other invisible format characters become spaces (a newline cannot
/// start a line of its own — no forged "↩ Reply:" line), runs of spaces one, trimmed, at most 120 characters;
/// "(unnamed file)" when nothing is left.
let displayName (name: string) : string =
    let hidden (c: char) =
        Char.IsControl c || c = '\u2028' || c = '\u2029' || Char.GetUnicodeCategory c = UnicodeCategory.Format
    let spaced = String((if isNull name then "" else name).ToCharArray() |> Array.map (fun c -> if hidden c then ' ' else c))
    let t = String.Join(" ", spaced.Split(' ', StringSplitOptions.RemoveEmptyEntries))
    let t =
        if t.Length <= maxShownName then t
        else
            let cut = if Char.IsHighSurrogate t[maxShownName - 2] then maxShownName - 2 else maxShownName - 1
            t.Substring(0, cut) + "…"
    if t = "" then "(unnamed file)" else t

let private isTokenChar (c: char) =
    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "!#$&^_.+-".IndexOf c >= 0

/// A MIME type as it may be shown: `type/subtype` of token characters (parameters dropped), at most 100 characters;
/// anything else is "application/octet-stream".
let displayMime (mime: string) : string =
    let t = (if isNull mime then "" else mime).Split(';').[0].Trim()
    match t.Split('/') with
    | [| kind; sub |] when kind <> "" && sub <> "" && t.Length <= 100 && Seq.forall isTokenChar kind && Seq.forall isTokenChar sub -> t.ToLowerInvariant()
    | _ -> "application/octet-stream"

let private describe (p: Pending) : string =
    let u = p.Upload
    let name = displayName u.Name
    match p.Stage with
    | Staged(path, bytes) -> $"- {path} ({name}, {displayMime u.MimeType}, {bytes.ToString(CultureInfo.InvariantCulture)} bytes)"
    | Gone reason -> $"- {name}: could not be downloaded ({displayName reason})"
    | Waiting -> $"- {name}: not downloaded yet"

let private order (m: InboxMessage) =
    ((match Activity.parseTime m.CreatedAt with
      | Some t -> t.UtcTicks
      | None -> Int64.MaxValue),
     defaultArg m.Seq 0L,
     m.ActivityId)

/// The one message of a batch whose files are all on disk or gone: the id and time of its first row, the lowest seq.
let announce (members: (InboxMessage * Pending) list) : InboxMessage option =
    match members |> List.sortBy (fun (m, _) -> order m) with
    | [] -> None
    | (first, _) :: _ as sorted ->
        let staged = sorted |> List.filter (fun (_, p) -> match p.Stage with Staged _ -> true | _ -> false) |> List.length
        let n = sorted.Length
        let intro =
            match n, staged with
            | 1, 1 -> "The user uploaded a file to this workspace; it is saved on this machine:"
            | 1, _ -> "The user uploaded a file to this workspace, but it could not be saved here:"
            | _, s when s = n -> $"The user uploaded {n.ToString(CultureInfo.InvariantCulture)} files to this workspace; they are saved on this machine:"
            | _ -> $"The user uploaded {n.ToString(CultureInfo.InvariantCulture)} files to this workspace; {staged.ToString(CultureInfo.InvariantCulture)} of them are saved on this machine:"
        let sb = StringBuilder(intro)
        for (_, p) in sorted do
            sb.Append('\n').Append(describe p) |> ignore
        Some
            { first with
                Seq = sorted |> List.choose (fun (m, _) -> m.Seq) |> List.sort |> List.tryHead
                Text = sb.ToString()
                Method = deliveredMethod }
