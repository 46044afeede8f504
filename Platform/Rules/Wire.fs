/// The platform's own wire shapes on top of Molecule.Protocol.Json: ids, timestamps and `{"error": …}` replies as
/// the reference platform writes them.
module Molecule.Platform.Wire

open System
open System.Globalization
open System.Text.Json.Nodes
module Json = Molecule.Protocol.Json

/// RFC 3339 UTC timestamp with microseconds.
let time (t: DateTimeOffset) : string =
    t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture)

let timeNode (t: DateTimeOffset) : JsonNode = Json.str (time t)

let optTime (t: DateTimeOffset option) : JsonNode =
    match t with
    | Some v -> timeNode v
    | None -> null

let guid (g: Guid) : string = g.ToString("D")
let guidNode (g: Guid) : JsonNode = Json.str (guid g)

/// A typed id (WorkspaceId, TokenId, ActivityId, MemoryId) as its JSON string.
let inline idNode (id: ^T) : JsonNode = Json.str ((^T: (member Text: string) id))

/// An optional typed id: its string, or null.
let inline optId (id: ^T option) : JsonNode =
    match id with
    | Some v -> idNode v
    | None -> null

/// `{"error": msg}` body.
let error (msg: string) : string = Json.compact (Json.obj [ "error", Json.str msg ])

let reply (code: int) (body: JsonNode) : Reply = { Code = code; Body = Json.compact body }
let errorReply (code: int) (msg: string) : Reply = { Code = code; Body = error msg }

/// The `error` text of a reply (its whole body when that is not `{"error": …}`).
let errorText (r: Reply) : string =
    Json.tryParseDecoded r.Body
    |> Option.bind (Json.prop "error")
    |> Option.bind Json.asString
    |> Option.defaultValue r.Body
