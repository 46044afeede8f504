/// Total JSON helpers for the platform (System.Text.Json.Nodes); parsing never throws.
module Molecule.Platform.Json

open System
open System.Globalization
open System.Text.Encodings.Web
open System.Text.Json
open System.Text.Json.Nodes

let private options =
    JsonSerializerOptions(WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping)

/// Reads every property name and string value once, so text that is valid JSON syntax but holds an invalid
/// string (a lone UTF-16 surrogate escape such as "\ud800") fails here instead of in a later read.
let rec private readAllStrings (node: JsonNode) =
    match node with
    | :? JsonObject as o ->
        for kv in o do
            kv.Key.Length |> ignore
            readAllStrings kv.Value
    | :? JsonArray as a ->
        for n in a do
            readAllStrings n
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> v.GetValue<string>() |> ignore
    | _ -> ()

let tryParse (text: string) : JsonNode option =
    if String.IsNullOrWhiteSpace text then
        None
    else
        try
            let n = JsonNode.Parse(text, documentOptions = JsonDocumentOptions(MaxDepth = 64, AllowDuplicateProperties = false))
            readAllStrings n
            Option.ofObj n
        with _ ->
            None

/// Parses JSON text that must be an object.
let tryParseObject (text: string) : JsonObject option =
    match tryParse text with
    | Some(:? JsonObject as o) -> Some o
    | _ -> None

let compact (node: JsonNode) : string =
    match node with
    | null -> "null"
    | n -> n.ToJsonString options

let prop (name: string) (node: JsonNode) : JsonNode option =
    match node with
    | :? JsonObject as o ->
        let mutable v: JsonNode = null
        if o.TryGetPropertyValue(name, &v) && not (isNull v) then Some v else None
    | _ -> None

let kind (node: JsonNode) : JsonValueKind =
    match node with
    | null -> JsonValueKind.Null
    | n -> n.GetValueKind()

let asString (node: JsonNode) : string option =
    match node with
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> Some(v.GetValue<string>())
    | _ -> None

let asObject (node: JsonNode) : JsonObject option =
    match node with
    | :? JsonObject as o -> Some o
    | _ -> None

let asArray (node: JsonNode) : JsonArray option =
    match node with
    | :? JsonArray as a -> Some a
    | _ -> None

let asFloat (node: JsonNode) : float option =
    match node with
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.Number ->
        match Double.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, f -> Some f
        | _ -> None
    | _ -> None

let asInt (node: JsonNode) : int option =
    match asFloat node with
    | Some f when f = Math.Floor f && f >= float Int32.MinValue && f <= float Int32.MaxValue -> Some(int f)
    | _ -> None

let str (s: string) : JsonNode = JsonValue.Create(s) :> JsonNode
let num (i: int) : JsonNode = JsonValue.Create(i) :> JsonNode
let num64 (i: int64) : JsonNode = JsonValue.Create(i) :> JsonNode
let flt (f: float) : JsonNode = JsonValue.Create(f) :> JsonNode
let bool (b: bool) : JsonNode = JsonValue.Create(b) :> JsonNode
let optStr (s: string option) : JsonNode = match s with Some v -> str v | None -> null

/// Object from (name, value) pairs; null values are kept as JSON null.
let obj (pairs: (string * JsonNode) list) : JsonObject =
    let o = JsonObject()
    for (k, v) in pairs do
        o[k] <- v
    o

/// Object whose keys are in ordinal order, as Go's encoding/json writes a map (the reference's bodies and event
/// payloads).
let sorted (pairs: (string * JsonNode) list) : JsonObject =
    obj (pairs |> List.sortWith (fun (a, _) (b, _) -> String.CompareOrdinal(a, b)))

let arr (items: JsonNode seq) : JsonArray =
    let a = JsonArray()
    for i in items do
        a.Add i
    a

/// Raw JSON text (a stored column) as a fresh node; invalid text becomes a JSON string.
let raw (text: string) : JsonNode =
    match tryParse text with
    | Some n -> n
    | None -> str text

let clone (node: JsonNode) : JsonNode =
    match node with
    | null -> null
    | n -> n.DeepClone()

/// RFC 3339 UTC timestamp with microseconds.
let time (t: DateTimeOffset) : string =
    t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture)

let timeNode (t: DateTimeOffset) : JsonNode = str (time t)

let optTime (t: DateTimeOffset option) : JsonNode =
    match t with
    | Some v -> timeNode v
    | None -> null

let guid (g: Guid) : string = g.ToString("D")
let guidNode (g: Guid) : JsonNode = str (guid g)

let optGuid (g: Guid option) : JsonNode =
    match g with
    | Some v -> guidNode v
    | None -> null

/// `{"error": msg}` body.
let error (msg: string) : string = compact (obj [ "error", str msg ])

let reply (code: int) (body: JsonNode) : Reply = { Code = code; Body = compact body }
let errorReply (code: int) (msg: string) : Reply = { Code = code; Body = error msg }
