/// Names and media types of uploaded files. Pure.
module Molecule.Platform.Uploads

open System
open System.IO
open Microsoft.AspNetCore.StaticFiles

/// A file name as kept: its last path segment, control and invalid characters replaced by '_', leading dots and
/// surrounding spaces dropped, at most its last 100 characters; "file" when nothing is left.
let safeName (name: string) =
    let n = Path.GetFileName(if isNull name then "" else name)
    let invalid = Path.GetInvalidFileNameChars()

    let cleaned =
        String(n.ToCharArray() |> Array.map (fun c -> if Array.contains c invalid || Char.IsControl c then '_' else c))

    let cleaned = cleaned.Trim().TrimStart('.')
    let cleaned = if cleaned = "" then "file" else cleaned
    if cleaned.Length > 100 then cleaned.Substring(cleaned.Length - 100) else cleaned

let private contentTypes = FileExtensionContentTypeProvider()

/// The media type of a file name's extension (application/octet-stream when unknown).
let mimeOf (name: string) =
    match contentTypes.TryGetContentType name with
    | true, t -> t
    | _ -> "application/octet-stream"

/// The type a client declared, unless it declared none or only octet-stream: then the name's.
let declaredOr (declared: string) (name: string) =
    if String.IsNullOrWhiteSpace declared || declared = "application/octet-stream" then mimeOf name else declared

/// A stored chat upload's key: `<32 hex>-<name>` (unique, and the name survives in the URL).
let chatKey (id: Guid) (name: string) = id.ToString("N") + "-" + name

/// The upload name in a chat key.
let nameOfKey (key: string) =
    match key.IndexOf '-' with
    | 32 -> key.Substring 33
    | _ -> key
