/// Request validation: bad input becomes a 400 reply whose error names the field. Total.
module Molecule.Platform.Validation

open System
open System.Text.Json
open System.Text.Json.Nodes
module Json = Molecule.Protocol.Json

type ResultBuilder() =
    member _.Return(x) = Ok x
    member _.ReturnFrom(r: Result<_, _>) = r
    member _.Bind(r: Result<'a, 'e>, f: 'a -> Result<'b, 'e>) = Result.bind f r
    member _.Zero() = Ok()

let result = ResultBuilder()

let bad (msg: string) : Reply = Wire.errorReply 400 msg

/// A canonical (lower-case, trimmed) UUID, or None.
let parseGuid (s: string) : Guid option =
    if String.IsNullOrWhiteSpace s then
        None
    else
        match Guid.TryParse(s.Trim()) with
        | true, g -> Some g
        | _ -> None

/// A workspace id in any UUID form, or None.
let parseWorkspaceId (s: string) : WorkspaceId option = parseGuid s |> Option.map WorkspaceId

/// The body must be a JSON object.
let body (text: string) : Result<JsonObject, Reply> =
    match Json.tryParseDecoded text with
    | Some(:? JsonObject as o) -> Ok o
    | Some _ -> Error(bad "request body must be a JSON object")
    | None -> Error(bad "invalid JSON")

let private field (o: JsonObject) (name: string) = Json.prop name o

let optString (name: string) (o: JsonObject) : Result<string option, Reply> =
    match field o name with
    | None -> Ok None
    | Some n ->
        match Json.asString n with
        | Some s -> Ok(Some s)
        | None -> Error(bad $"{name} must be a string")

let reqString (name: string) (o: JsonObject) : Result<string, Reply> =
    match optString name o with
    | Ok(Some s) when not (String.IsNullOrWhiteSpace s) -> Ok s
    | Ok _ -> Error(bad $"{name} is required")
    | Error e -> Error e

let optFloat (name: string) (o: JsonObject) : Result<float option, Reply> =
    match field o name with
    | None -> Ok None
    | Some n ->
        match Json.asNumber n with
        | Some f when not (Double.IsNaN f || Double.IsInfinity f) -> Ok(Some f)
        | _ -> Error(bad $"{name} must be a number")

let optInt (name: string) (o: JsonObject) : Result<int option, Reply> =
    match field o name with
    | None -> Ok None
    | Some n ->
        match Json.asInt n with
        | Some i -> Ok(Some i)
        | None -> Error(bad $"{name} must be an integer")

let optGuid (name: string) (o: JsonObject) : Result<Guid option, Reply> =
    match optString name o with
    | Ok None -> Ok None
    | Ok(Some s) when String.IsNullOrWhiteSpace s -> Ok None
    | Ok(Some s) ->
        match parseGuid s with
        | Some g -> Ok(Some g)
        | None -> Error(bad $"{name} must be a valid UUID")
    | Error e -> Error e

/// An optional workspace id field (see optGuid).
let optWorkspaceId (name: string) (o: JsonObject) : Result<WorkspaceId option, Reply> =
    optGuid name o |> Result.map (Option.map WorkspaceId)

let optObject (name: string) (o: JsonObject) : Result<JsonObject option, Reply> =
    match field o name with
    | None -> Ok None
    | Some(:? JsonObject as x) -> Ok(Some x)
    | Some _ -> Error(bad $"{name} must be an object")

let optArray (name: string) (o: JsonObject) : Result<JsonArray option, Reply> =
    match field o name with
    | None -> Ok None
    | Some(:? JsonArray as x) -> Ok(Some x)
    | Some _ -> Error(bad $"{name} must be an array")

/// A list of strings (e.g. skills); each element must be a non-empty string.
let optStringList (name: string) (o: JsonObject) : Result<string list option, Reply> =
    match optArray name o with
    | Ok None -> Ok None
    | Ok(Some a) ->
        let items = a |> Seq.map (fun n -> Json.asString n) |> List.ofSeq

        if items |> List.forall (fun s -> s.IsSome && not (String.IsNullOrWhiteSpace s.Value)) then
            Ok(Some(items |> List.map (fun s -> s.Value.Trim())))
        else
            Error(bad $"{name} must be an array of non-empty strings")
    | Error e -> Error e

/// Text capped to `max` characters.
let cap (max: int) (s: string) =
    if isNull s then "" elif s.Length <= max then s else s.Substring(0, max)
