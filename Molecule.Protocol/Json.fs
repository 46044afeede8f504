/// Small, total helpers over System.Text.Json.Nodes: parsing never throws, lookups return options.
module Molecule.Protocol.Json

open System
open System.Buffers
open System.Collections.Generic
open System.Text.Encodings.Web
open System.Text.Json
open System.Text.Json.Nodes

/// Objects wider than this are checked with a hash set instead of comparing each name with every earlier one.
let private wideObject = 32

/// True when an object of the (already validated) UTF-8 JSON text repeats a property name, compared unescaped.
/// Not JsonDocumentOptions.AllowDuplicateProperties = false: its name set hashes with a random seed taken from the
/// crypto library, which loads OpenSSL (3.6 MiB resident) into the process at the first parse.
let private repeatsName (utf8: byte[]) (length: int) : bool =
    let mutable reader = Utf8JsonReader(ReadOnlySpan<byte>(utf8, 0, length), JsonReaderOptions(MaxDepth = 64))
    // The names of every open object, innermost last (unescaped UTF-8, mostly slices of the text itself), and per
    // open object where its names start and, once it is wide, a set of them.
    let names = ResizeArray<ReadOnlyMemory<byte>>()
    let frames = Stack<struct (int * HashSet<string>)>()
    let mutable found = false
    while not found && reader.Read() do
        match reader.TokenType with
        | JsonTokenType.StartObject -> frames.Push(struct (names.Count, null))
        | JsonTokenType.EndObject ->
            let struct (start, _) = frames.Pop()
            names.RemoveRange(start, names.Count - start)
        | JsonTokenType.PropertyName ->
            let struct (start, wide) = frames.Peek()
            if not (isNull wide) then
                found <- not (wide.Add(reader.GetString()))
            else
                let mutable i = start
                while not found && i < names.Count do
                    found <- reader.ValueTextEquals(names.[i].Span)
                    i <- i + 1
                if not found then
                    if reader.ValueIsEscaped then
                        let unescaped: byte[] = Array.zeroCreate reader.ValueSpan.Length
                        let n = reader.CopyString(Span<byte>(unescaped))
                        names.Add(ReadOnlyMemory<byte>(unescaped, 0, n))
                    else
                        names.Add(ReadOnlyMemory<byte>(utf8, int reader.TokenStartIndex + 1, reader.ValueSpan.Length))
                    if names.Count - start > wideObject then
                        let set = HashSet<string>(StringComparer.Ordinal)
                        for j in start .. names.Count - 1 do set.Add(Text.Encoding.UTF8.GetString(names.[j].Span)) |> ignore
                        frames.Pop() |> ignore
                        frames.Push(struct (start, set))
        | _ -> ()
    found

/// Texts up to this many UTF-8 bytes are parsed from a pooled buffer.
let private pooledBytes = 1024 * 1024

/// UTF-8 that refuses a lone surrogate (ArgumentException), as parsing a string does.
let private strictUtf8 = Text.UTF8Encoding(false, true)

let private parseUtf8 (utf8: byte[]) (length: int) : JsonNode =
    JsonNode.Parse(ReadOnlySpan<byte>(utf8, 0, length), Nullable(), JsonDocumentOptions(MaxDepth = 64))

/// Parses JSON text; None for empty, invalid, duplicate-keyed or deeply nested input. Never throws,
/// and the returned tree never throws on lookups.
let tryParse (text: string) : JsonNode option =
    if String.IsNullOrWhiteSpace text then
        None
    else
        try
            // One UTF-8 copy serves the parse and the check for repeated names; a pooled one unless it is large (the
            // pool would keep a rare big buffer alive).
            let length = strictUtf8.GetByteCount text
            let pooled = length <= pooledBytes
            let utf8 = if pooled then ArrayPool<byte>.Shared.Rent length else Array.zeroCreate length
            try
                strictUtf8.GetBytes(text, 0, text.Length, utf8, 0) |> ignore
                let node = parseUtf8 utf8 length
                // Duplicate property names are rejected here: otherwise the tree throws later, at the first lookup.
                if repeatsName utf8 length then None else Option.ofObj node
            finally
                if pooled then ArrayPool<byte>.Shared.Return utf8
        with
        | :? JsonException
        | :? ArgumentException ->
            None

let private compactOptions =
    JsonSerializerOptions(WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping)

let private indentedOptions =
    JsonSerializerOptions(WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping)

/// Compact JSON text of a node (null → "null").
let compact (node: JsonNode) : string =
    match node with
    | null -> "null"
    | n -> n.ToJsonString compactOptions

/// Indented (2 spaces) JSON text of a node.
let indented (node: JsonNode) : string =
    match node with
    | null -> "null"
    | n -> n.ToJsonString indentedOptions

/// Property of an object node; None when the node is not an object or the property is absent/null.
let prop (name: string) (node: JsonNode) : JsonNode option =
    match node with
    | :? JsonObject as o ->
        let mutable v: JsonNode = null
        if o.TryGetPropertyValue(name, &v) && not (isNull v) then Some v else None
    | _ -> None

/// The text of a JSON string value; None when it holds an invalid escape (a lone UTF-16 surrogate such as
/// "\ud800" is valid JSON syntax, but System.Text.Json refuses to decode it).
let private stringValue (v: JsonValue) : string option =
    try
        Some(v.GetValue<string>())
    with :? InvalidOperationException ->
        None

/// True when every property name and string value in the tree decodes (no lone UTF-16 surrogate escapes).
let rec decodes (node: JsonNode) : bool =
    match node with
    | :? JsonObject as o ->
        o |> Seq.forall (fun kv -> not (isNull kv.Key) && (isNull kv.Value || decodes kv.Value))
    | :? JsonArray as a -> a |> Seq.forall (fun n -> isNull n || decodes n)
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> (stringValue v).IsSome
    | _ -> true

/// String value of a node (only JSON strings that decode).
let asString (node: JsonNode) : string option =
    match node with
    | :? JsonValue as v ->
        match v.GetValueKind() with
        | JsonValueKind.String -> stringValue v
        | _ -> None
    | _ -> None

/// Scalar rendered as text: strings as-is, numbers/bools as their JSON text; None for null/objects/arrays.
let asScalarText (node: JsonNode) : string option =
    match node with
    | :? JsonValue as v ->
        match v.GetValueKind() with
        | JsonValueKind.String -> stringValue v
        | JsonValueKind.Number
        | JsonValueKind.True
        | JsonValueKind.False -> Some(v.ToJsonString())
        | _ -> None
    | _ -> None

let private finiteNumber (text: string) : float option =
    match Double.TryParse(text, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
    | true, f when Double.IsFinite f -> Some f
    | _ -> None

/// Number value of a JSON number only (a string is not a number here, as in Go's encoding/json).
let asNumber (node: JsonNode) : float option =
    match node with
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.Number -> finiteNumber (v.ToJsonString())
    | _ -> None

/// Number value of a node (JSON numbers, or strings that parse as invariant numbers).
let asFloat (node: JsonNode) : float option =
    match node with
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> stringValue v |> Option.bind finiteNumber
    | _ -> asNumber node

/// Integral JSON number within the Int32 range.
let asInt (node: JsonNode) : int option =
    match asNumber node with
    | Some f when f = Math.Floor f && f >= float Int32.MinValue && f <= float Int32.MaxValue -> Some(int f)
    | _ -> None

let asArray (node: JsonNode) : JsonNode list option =
    match node with
    | :? JsonArray as a -> Some(a |> Seq.toList)
    | _ -> None

let asObject (node: JsonNode) : JsonObject option =
    match node with
    | :? JsonObject as o -> Some o
    | _ -> None

/// Nested property path lookup.
let path (names: string list) (node: JsonNode) : JsonNode option =
    List.fold (fun acc n -> acc |> Option.bind (prop n)) (Option.ofObj node) names

let stringProp name node = prop name node |> Option.bind asString

/// A JSON string literal (quoted, escaped) for the given text.
let quote (s: string) : string =
    JsonValue.Create(s).ToJsonString compactOptions

/// Builds an object from (name, node) pairs; null nodes become JSON null.
let obj (fields: (string * JsonNode) list) : JsonObject =
    let o = JsonObject()
    for (k, v) in fields do
        o[k] <- v
    o

let str (s: string) : JsonNode = JsonValue.Create s :> JsonNode
let num (n: int) : JsonNode = JsonValue.Create n :> JsonNode
let numf (n: float) : JsonNode = JsonValue.Create n :> JsonNode
let bool (b: bool) : JsonNode = JsonValue.Create b :> JsonNode
let arr (items: JsonNode seq) : JsonNode = JsonArray(Seq.toArray items) :> JsonNode
let nul : JsonNode = null

let num64 (n: int64) : JsonNode = JsonValue.Create n :> JsonNode
let optStr (s: string option) : JsonNode = match s with Some v -> str v | None -> null

/// Object whose keys are in ordinal order, as Go's encoding/json writes a map (the reference platform's bodies
/// and event payloads).
let sorted (fields: (string * JsonNode) list) : JsonObject =
    obj (fields |> List.sortWith (fun (a, _) (b, _) -> String.CompareOrdinal(a, b)))

/// Deep copy (nodes can have only one parent).
let clone (node: JsonNode) : JsonNode =
    match node with
    | null -> null
    | n -> n.DeepClone()

/// Parses text that will be stored or relayed: like tryParse, and every string in it decodes (no lone UTF-16
/// surrogate escapes), so no later read fails.
let tryParseDecoded (text: string) : JsonNode option = tryParse text |> Option.filter decodes

/// Parses text that must be an object (decoded as tryParseDecoded).
let tryParseObject (text: string) : JsonObject option =
    match tryParseDecoded text with
    | Some(:? JsonObject as o) -> Some o
    | _ -> None

/// Raw JSON text (a stored column) as a fresh node; invalid text becomes a JSON string.
let raw (text: string) : JsonNode =
    match tryParseDecoded text with
    | Some n -> n
    | None -> str text
