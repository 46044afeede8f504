/// User-facing texts used in more than one place (logs, tool results, the platform's CLI and canvas), written once.
module Molecule.Protocol.Texts

/// What to do about a deleted workspace or a rejected token: the wording of the 3-strike ERROR users search for.
let regenerate =
    "Regenerate the workspace + token from the canvas (Tokens tab), update your MCP config, and restart your runtime."
