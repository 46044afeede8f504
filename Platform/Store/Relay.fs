/// Events crossing platform processes on a shared database: a committed event as the text of one or more
/// notifications (PostgreSQL's NOTIFY carries at most 8000 bytes), and the listener's reassembly. Pure.
module Molecule.Platform.Relay

open System
open System.Text
open System.Text.Json.Nodes
module Json = Molecule.Protocol.Json

/// A notification's text at most this many UTF-8 bytes (PostgreSQL's limit is 8000).
[<Literal>]
let MaxNotification = 7800

/// Characters per piece of a split event (at most 4 bytes each, plus the header).
[<Literal>]
let PieceChars = 1900

let private audienceText (a: Audience) =
    match a with
    | Everyone -> "everyone"
    | CanvasOnly -> "canvas"
    | WorkspaceOnly -> "workspace"

let private audienceOf (s: string) =
    match s with
    | "canvas" -> Some CanvasOnly
    | "workspace" -> Some WorkspaceOnly
    | "everyone" -> Some Everyone
    | _ -> None

/// An event as JSON text.
let encode (e: PlatformEvent) : string =
    Json.compact (
        Json.obj
            [ "type", Json.str e.Type
              "workspace_id", Wire.optId e.WorkspaceId
              "payload", e.Payload.DeepClone()
              "data", e.Data.DeepClone()
              "at", Json.num64 e.At.UtcTicks
              "audience", Json.str (audienceText e.Audience) ]
    )

/// The event `encode` wrote; None for any other text.
let decode (text: string) : PlatformEvent option =
    match Json.tryParseObject text with
    | None -> None
    | Some o ->
        let field name = Json.prop name o
        let objectField name = field name |> Option.bind Json.asObject |> Option.map (fun x -> x.DeepClone().AsObject())

        let at =
            field "at"
            |> Option.bind (fun n ->
                match n with
                | :? JsonValue as v ->
                    match v.TryGetValue<int64>() with
                    | true, t -> Some t
                    | _ -> None
                | _ -> None)

        let workspace =
            match field "workspace_id" with
            | None -> Some None
            | Some n -> Json.asString n |> Option.bind Validation.parseWorkspaceId |> Option.map Some

        match Json.stringProp "type" o, workspace, objectField "payload", objectField "data", at, Json.stringProp "audience" o |> Option.bind audienceOf with
        | Some t, Some ws, Some p, Some d, Some ticks, Some a ->
            Some
                { Type = t
                  WorkspaceId = ws
                  Payload = p
                  Data = d
                  At = DateTimeOffset(ticks, TimeSpan.Zero)
                  Audience = a }
        | _ -> None

/// One notification: the sending process, the event's id, the piece's number and count, the piece.
type Piece =
    { Sender: string
      EventId: string
      Index: int
      Count: int
      Text: string }

let private inv (n: int) = n.ToString(Globalization.CultureInfo.InvariantCulture)

let private pieceText (p: Piece) = String.Join(" ", p.Sender, p.EventId, inv p.Index, inv p.Count, p.Text)

/// Pieces of at most PieceChars characters, never between the two halves of a surrogate pair.
let private split (text: string) : string list =
    let rec go (start: int) (acc: string list) =
        if start >= text.Length then
            List.rev acc
        else
            let size = min PieceChars (text.Length - start)
            let size = if size > 1 && Char.IsHighSurrogate text[start + size - 1] then size - 1 else size
            go (start + size) (text.Substring(start, size) :: acc)

    go 0 []

/// The notifications that carry an event from `sender` (ids without spaces); `eventId` tells its pieces apart from
/// another event's.
let notifications (sender: string) (eventId: string) (e: PlatformEvent) : string list =
    let text = encode e

    let parts =
        if Encoding.UTF8.GetByteCount text + 100 <= MaxNotification then [ text ] else split text

    parts
    |> List.mapi (fun i t ->
        pieceText
            { Sender = sender
              EventId = eventId
              Index = i
              Count = parts.Length
              Text = t })

/// The event id of the word that a process saved a workspace (the others forget their cached team); no event's id.
[<Literal>]
let TeamChangedId = "team"

/// The notification that `sender` committed a workspace change.
let teamChanged (sender: string) : string =
    pieceText
        { Sender = sender
          EventId = TeamChangedId
          Index = 0
          Count = 1
          Text = "" }

let private parseInt (s: string) =
    match Int32.TryParse(s, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture) with
    | true, n -> Some n
    | _ -> None

/// A notification's piece; None for text `notifications` did not write.
let parse (text: string) : Piece option =
    match text.Split(' ', 5) with
    | [| sender; id; index; count; rest |] ->
        match parseInt index, parseInt count with
        | Some i, Some n when i < n ->
            Some
                { Sender = sender
                  EventId = id
                  Index = i
                  Count = n
                  Text = rest }
        | _ -> None
    | _ -> None

/// A listener's pieces of an event not complete yet (one transaction's notifications arrive together and in order,
/// so only one event is ever in progress per sender).
type Assembly = Map<string, Piece list>

/// Adds a piece: the event once its last piece came (pieces out of order start over).
let receive (a: Assembly) (p: Piece) : Assembly * PlatformEvent option =
    let sofar = if p.Index = 0 then [] else defaultArg (Map.tryFind p.Sender a) []

    match sofar with
    | last :: _ when last.EventId <> p.EventId || last.Index <> p.Index - 1 -> Map.remove p.Sender a, None
    | [] when p.Index <> 0 -> Map.remove p.Sender a, None
    | _ ->
        let pieces = p :: sofar

        if p.Index = p.Count - 1 then
            Map.remove p.Sender a, decode (String.Join("", pieces |> List.rev |> List.map (fun x -> x.Text)))
        else
            Map.add p.Sender pieces a, None
