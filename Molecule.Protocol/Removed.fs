/// A deleted workspace (410 Gone): the facts the platform sends `{"error","id","removed_at","hint"}`, and the one
/// wording users read about it.
module Molecule.Protocol.Removed

open System.Text.Json.Nodes

type Info =
    { Id: string
      RemovedAt: string option
      Hint: string }

/// The hint a 410 without one is read with (the reference wheel's default).
let defaultHint = "Workspace was deleted on the platform. Regenerate workspace + token from the canvas → Tokens tab."

/// The hint the platform sends with a 410.
let platformHint = "Regenerate workspace + token from the canvas → Tokens tab"

/// The message for a workspace the platform reports as deleted.
let text (info: Info) : string =
    let at =
        match info.RemovedAt with
        | Some t when t <> "" -> $" at {t}"
        | _ -> ""
    $"Workspace {info.Id} was deleted on the platform{at}. {Texts.regenerate}"

/// The facts of a 410 body; the workspace's own id, no time and the default hint for what is missing.
let parse (ownId: string) (body: string) : Info =
    let node = Json.tryParse body
    let field name =
        node |> Option.bind (Json.prop name) |> Option.bind Json.asScalarText |> Option.filter (fun s -> s.Trim() <> "")
    { Id = field "id" |> Option.defaultValue ownId
      RemovedAt = field "removed_at"
      Hint = field "hint" |> Option.defaultValue defaultHint }

/// The 410 body the platform sends.
let body (id: string) (removedAt: string) : JsonObject =
    Json.obj
        [ "error", Json.str "workspace removed"
          "id", Json.str id
          "hint", Json.str platformHint
          "removed_at", Json.str removedAt ]
