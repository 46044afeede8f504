/// The results of the inbox tools (wait_for_message, inbox_peek, inbox_pop) and the pending-messages notice.
/// The agent serves these tools from its ledger (Agent.fs); this module only words the answers.
module Molecule.Core.InboxTools

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Protocol

let disabled =
    "Error: inbox polling is not enabled (MOLECULE_MCP_DISABLE_INBOX is set). Unset it and restart the runtime to receive messages."

let activityIdRequired = "Error: activity_id is required."

let private ok (text: string) : ToolOutput = { Text = text; IsError = false }

/// A message as the inbox tools show it (the JSON consumers parse).
let messageJson (m: InboxMessage) : JsonObject =
    Json.obj
        [ "activity_id", Json.str m.ActivityId
          "text", Json.str m.Text
          "peer_id", Json.str m.PeerId
          "kind", Json.str (Ledger.kindName m.Kind)
          "method", Json.str m.Method
          "created_at", Json.str m.CreatedAt ]

/// wait_for_message's timeout: NaN → 60, clamped to 0..300 s.
let waitTimeout (timeout: float) = if Double.IsNaN timeout then 60.0 else Math.Clamp(timeout, 0.0, 300.0)

/// inbox_peek's limit: 10 when not positive.
let peekLimit (limit: int) = if limit <= 0 then 10 else limit

let waited (m: JsonObject) : ToolOutput = ok (Json.compact m)

let timedOut (timeout: float) : ToolOutput =
    ok (Json.compact (Json.obj [ "timeout", Json.bool true; "timeout_secs", Json.numf timeout ]))

let peeked (ms: JsonObject list) : ToolOutput =
    ok (Json.compact (Json.arr (ms |> List.map (fun m -> m :> JsonNode))))

let popped (removed: bool) (activityId: string) : ToolOutput =
    ok (Json.compact (Json.obj [ "removed", Json.bool removed; "activity_id", Json.str activityId ]))

/// The line added (as its own content item) to other tools' results while messages wait.
let pendingNotice (unread: int) : string option =
    match unread with
    | n when n <= 0 -> None
    | 1 -> Some "📬 1 unread message — inbox_peek to read it"
    | n -> Some $"📬 {n.ToString(CultureInfo.InvariantCulture)} unread messages — inbox_peek to read them"
