/// User-facing texts shared by more than one module.
module Molecule.Core.Text

/// The tailored message for a workspace the platform reports as deleted (410 Gone).
let removed (info: RemovedInfo) : string =
    let at =
        match info.RemovedAt with
        | Some t when t <> "" -> $" at {t}"
        | _ -> ""
    $"Workspace {info.Id} was deleted on the platform{at}. Regenerate workspace + token from the canvas → Tokens tab, update your MCP config and restart your runtime."

let defaultRemovedHint =
    "Workspace was deleted on the platform. Regenerate workspace + token from the canvas → Tokens tab."
