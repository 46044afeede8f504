/// The results of the inbox tools (wait_for_message, inbox_peek, inbox_pop) and the pending-messages notice.
/// The agent serves these tools from its ledger (Agent.fs); this module only words the answers.
module Molecule.Core.InboxTools

open System
open System.Globalization
open System.Text.Json.Nodes
open Molecule.Protocol

let disabled =
    "Error: inbox polling is not enabled (MOLECULE_MCP_DISABLE_INBOX is set). Unset it and restart the runtime to receive messages."

let private ok (text: string) : ToolOutput = { Text = text; IsError = false }

/// A message as the inbox tools show it (the JSON consumers parse), in the reference's key order: activity_id, text,
/// peer_id, kind, method, created_at, [arrival_workspace_id — several workspaces], then for a peer [peer_name],
/// [peer_role], [agent_card_url], and for a request_update its `request` (request_id, event, status, kind, title,
/// actor_type, [actor_id], [body], source). The sender is shown as the channel shows it: sanitised names (P26), a peer_id only
/// when it is a workspace UUID. `platformUrl` is the base URL of the workspace the message arrived in.
let messageJson (platformUrl: string) (arrival: WorkspaceId option) (m: InboxMessage) : JsonObject =
    let sender = Channel.sender platformUrl m
    Json.obj
        [ yield "activity_id", Json.str m.ActivityId
          yield "text", Json.str m.Text
          yield "peer_id", Json.str sender.PeerId
          yield "kind", Json.str (Ledger.kindName m.Kind)
          yield "method", Json.str m.Method
          yield "created_at", Json.str m.CreatedAt
          match arrival with
          | Some ws -> yield "arrival_workspace_id", Json.str ws.Value
          | None -> ()
          for (key, value) in [ "peer_name", sender.Name; "peer_role", sender.Role; "agent_card_url", sender.AgentCardUrl ] do
              match value with
              | Some v -> yield key, Json.str v
              | None -> ()
          match m.Kind with
          | RequestUpdate u -> yield "request", (RequestUpdate.json u :> JsonNode)
          | _ -> () ]

/// wait_for_message's timeout: NaN → 60, clamped to 0..300 s.
let waitTimeout (timeout: float) = if Double.IsNaN timeout then 60.0 else Math.Clamp(timeout, 0.0, 300.0)

/// inbox_peek's limit: 10 when not positive.
let peekLimit (limit: int) = if limit <= 0 then 10 else limit

let waited (m: JsonObject) : ToolOutput = ok (Json.compact m)

let timedOut (timeout: float) : ToolOutput =
    ok (Json.compact (Json.obj [ "timeout", Json.bool true; "timeout_secs", Json.numf timeout ]))

let peeked (ms: JsonObject list) : ToolOutput =
    ok (Json.compact (Json.arr (ms |> List.map (fun m -> m :> JsonNode))))

let popped (removed: bool) (activityId: ActivityId) : ToolOutput =
    ok (Json.compact (Json.obj [ "removed", Json.bool removed; "activity_id", Json.str activityId.Value ]))

/// The line added (as its own content item) to other tools' results while messages wait.
let pendingNotice (unread: int) : string option =
    match unread with
    | n when n <= 0 -> None
    | 1 -> Some "📬 1 unread message — inbox_peek to read it"
    | n -> Some $"📬 {n.ToString(CultureInfo.InvariantCulture)} unread messages — inbox_peek to read them"
