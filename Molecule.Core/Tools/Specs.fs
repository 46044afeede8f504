/// The MCP tools as data: names, titles, descriptions, input schemas (reference-compatible property names,
/// types and required lists — addendum §2) and annotations, in the reference's `tools/list` order.
module Molecule.Core.ToolSpecs

open Molecule.Protocol

open System.Text.Json.Nodes

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

let private stringProp (description: string) : JsonNode =
    Json.obj [ "type", Json.str "string"; "description", Json.str description ]

let private enumProp (values: string list) (description: string) : JsonNode =
    Json.obj
        [ "type", Json.str "string"
          "enum", Json.arr (values |> List.map Json.str)
          "description", Json.str description ]

let private integerProp (description: string) (deflt: int) (minimum: int) (maximum: int) : JsonNode =
    Json.obj
        [ "type", Json.str "integer"
          "description", Json.str description
          "default", Json.num deflt
          "minimum", Json.num minimum
          "maximum", Json.num maximum ]

/// {"type":"object","properties":{...}[,"required":[...]]} — "required" is left out when empty
/// (an empty required array is invalid for strict draft-04 validators).
let private objectSchema (props: (string * JsonNode) list) (required: string list) : string =
    let fields =
        [ "type", Json.str "object"; "properties", (Json.obj props :> JsonNode) ]
        @ (if List.isEmpty required then [] else [ "required", Json.arr (required |> List.map Json.str) ])

    Json.compact (Json.obj fields)

let private workspaceIdProp =
    stringProp "ID of the target workspace: a UUID as shown by list_peers (or the peer_id of a peer_agent message)."

let private delegateSchema =
    objectSchema
        [ "workspace_id", workspaceIdProp
          "task", stringProp "What the peer should do — or your reply to a peer_agent message — in plain text." ]
        [ "workspace_id"; "task" ]

let private emptySchema = objectSchema [] []

/// The longest title, detail (and thread message) and priority a request may have (characters).
let maxTitleChars = 200
let maxDetailChars = 10_000
let maxPriorityChars = 32

/// The statuses a request may have (delivery spec §7.1, and the local platform's `expired`).
let requestStatuses = [ "pending"; "info_requested"; "approved"; "rejected"; "done"; "cancelled"; "expired" ]

let private requestIdProp () = stringProp "The request's ID (request_id, from create_request, list_requests or a request_update message)."

let private titleProp () =
    stringProp $"One line saying what you ask for (at most {maxTitleChars} characters), e.g. \"Deploy v2 to production?\"."

let private detailProp () =
    stringProp "Optional: the context the person needs to decide (plain text). Never put secrets in it: well-known secret shapes are redacted."

let private priorityProp () = stringProp "Optional: how urgent it is, e.g. low, normal, high."

// ---------------------------------------------------------------------------------------------
// Annotations
// ---------------------------------------------------------------------------------------------

/// Reads only (never changes anything).
let private reads: ToolAnnotations =
    { ReadOnly = true
      Destructive = None
      Idempotent = None
      OpenWorld = false }

/// Adds something (a message, a memory) and never replaces or removes anything; `openWorld`: it reaches other
/// agents or the user.
let private adds (openWorld: bool) : ToolAnnotations =
    { ReadOnly = false
      Destructive = Some false
      Idempotent = Some false
      OpenWorld = openWorld }

/// Replaces or removes something; the same call twice has the effect of one.
let private replaces: ToolAnnotations =
    { ReadOnly = false
      Destructive = Some true
      Idempotent = Some true
      OpenWorld = false }

/// Ends or decides something for good (a request answered, cancelled); the same call twice has the effect of one;
/// another party learns of it.
let private decides: ToolAnnotations =
    { ReadOnly = false
      Destructive = Some true
      Idempotent = Some true
      OpenWorld = true }

let private spec name title annotations description schema : ToolSpec =
    { Name = name
      Title = title
      Description = description
      InputSchema = schema
      Annotations = annotations }

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/// The argument that selects the workspace a tool acts for when one process serves several (MOLECULE_WORKSPACES);
/// None for the tools that act for the primary workspace or on the shared inbox.
let routingArg (toolName: string) : string option =
    match toolName with
    | "send_message_to_user"
    | "broadcast_message" -> Some "workspace_id"
    | "wait_for_message"
    | "inbox_peek"
    | "inbox_pop"
    | "get_runtime_identity" -> None
    | _ -> Some "source_workspace_id"

let private routingDescription (arg: string) =
    if arg = "workspace_id" then
        "Only when this server serves several workspaces (MOLECULE_WORKSPACES): the workspace to send from — the arrival_workspace_id of the message you answer."
    else
        "Only when this server serves several workspaces (MOLECULE_WORKSPACES): the workspace to act for. Omitted: the one the peer was listed from, else the first."

/// A spec with its routing argument added to the schema's properties.
let private withRouting (s: ToolSpec) : ToolSpec =
    match routingArg s.Name, Json.tryParse s.InputSchema with
    | Some arg, Some(:? JsonObject as schema) ->
        match Json.prop "properties" schema with
        | Some(:? JsonObject as props) when not (props.ContainsKey arg) ->
            props[arg] <- stringProp (routingDescription arg)
            { s with InputSchema = Json.compact schema }
        | _ -> s
    | _ -> s

// ---------------------------------------------------------------------------------------------
// The tools
// ---------------------------------------------------------------------------------------------

let private messageFields =
    "activity_id, text, peer_id, kind (canvas_user, peer_agent, delegation_result or request_update), method, created_at, and when known peer_name, peer_role and agent_card_url (arrival_workspace_id too when this server serves several workspaces); a request_update also has request {request_id, event, status, kind, title, actor_type, body, source}"

/// The tools in the reference's `tools/list` order.
let specs: ToolSpec list =
    List.map withRouting <|
    [ spec
          "delegate_task"
          "Delegate a task and wait for the answer"
          (adds true)
          "Send a task (or a reply) to a peer workspace and wait for its answer, which becomes this tool's result (a push-mode peer may take several minutes). A peer that runs in poll mode — an external agent like you — cannot answer inline: the result then says the task was queued, which means it WAS delivered; the peer's answer arrives later as a peer_agent message in your inbox (wait_for_message / inbox_peek). Never resend a queued task. Get workspace IDs from list_peers."
          delegateSchema

      spec
          "delegate_task_async"
          "Delegate a task in the background"
          (adds true)
          "Send a task to a peer workspace and return at once with a delegation_id; the platform delivers it in the background. Follow up with check_task_status(task_id=<delegation_id>). When the peer runs in poll mode, check_task_status reports queued: the task was delivered and the peer's answer arrives later as a peer_agent message in your inbox."
          delegateSchema

      spec
          "check_task_status"
          "Check delegated tasks"
          reads
          "Check the tasks you started with delegate_task_async. With task_id: the latest state of that delegation (pending, dispatched, queued = delivered and waiting, do not resend; completed with a preview of the result; failed with the reason). With an empty or missing task_id: a list of your recent delegations, newest first. workspace_id is accepted for compatibility and ignored: you can only see your own delegations."
          (objectSchema
              [ "workspace_id", stringProp "The peer the task was sent to. Accepted for compatibility and ignored: only this workspace's own delegations are checked."
                "task_id", stringProp "delegation_id returned by delegate_task_async. Leave empty to list your recent delegations." ]
              // Required like in the reference (clients that validate keep working the same way);
              // parse accepts it missing, since it is ignored.
              [ "workspace_id" ])

      spec
          "list_peers"
          "List peers"
          reads
          "List the workspaces you can message — your parent, siblings and children — with name, ID, status and role. Use an ID as workspace_id for delegate_task or delegate_task_async."
          emptySchema

      spec
          "get_workspace_info"
          "Show this workspace"
          reads
          "Show this workspace's own record on the platform: ID, name, role, tier, parent and status. Says clearly if the workspace has been deleted on the platform."
          emptySchema

      spec
          "get_runtime_identity"
          "Show the runtime identity"
          reads
          "Show what this agent runs on, as its environment says: model (MODEL), model_provider (MODEL_PROVIDER), molecule_model (MOLECULE_MODEL), anthropic_base_url (ANTHROPIC_BASE_URL), tier (TIER), workspace_id (this workspace) and runtime (ADAPTER_MODULE); \"\" for what is not set. Asks the platform nothing."
          emptySchema

      spec
          "update_agent_card"
          "Replace the agent card"
          replaces
          "Replace this workspace's agent card on the platform — what peers and the canvas learn about you (name, description, skills …). card is the whole new card as a JSON object; the platform checks it."
          (objectSchema
              [ "card",
                Json.obj
                    [ "type", Json.str "object"
                      "description", Json.str "The new agent card, a JSON object, e.g. {\"name\": \"Docs Writer\", \"description\": \"…\", \"skills\": [{\"name\": \"writing\"}]}." ] ]
              [ "card" ])

      spec
          "broadcast_message"
          "Broadcast to the organisation"
          (adds true)
          "Send one short message to every other workspace of your organisation (all workspaces under the same root). Only workspaces an admin gave the broadcast ability may do it. Recipients see it in their activity feed on the canvas; agents connected through molecule-mcp do not get broadcasts in their inbox. To reach one peer, use delegate_task."
          (objectSchema
              [ "message", stringProp "The message. Keep it short: every workspace of the organisation gets it." ]
              [ "message" ])

      spec
          "send_message_to_user"
          "Message the user"
          (adds true)
          "Post a message to the user's chat on the Molecule canvas: an acknowledgement, a progress update, a final result, or the answer to a canvas_user message. Never paste URLs or file links into the text: to share files, pass their absolute local paths in attachments (at most 25 MB per file) and they are uploaded and shown as attachments."
          (objectSchema
              [ "message", stringProp "The text to show the user. Do not put URLs or file links in it; use attachments for files."
                "attachments",
                Json.obj
                    [ "type", Json.str "array"
                      "items", (Json.obj [ "type", Json.str "string" ] :> JsonNode)
                      "description", Json.str "Absolute paths of local files to attach (at most 25 MB each). Optional." ] ]
              [ "message" ])

      spec
          "wait_for_message"
          "Wait for a message"
          reads
          $"Wait up to timeout_secs seconds (default 60, at most 300; 0 = just check) for an inbound message from the user's canvas, a peer agent or the result of a task you delegated. Returns the oldest pending message as JSON ({messageFields}), or a timeout marker when nothing arrived. The message is NOT removed: after handling it, call inbox_pop(activity_id) or the same message is returned again."
          (objectSchema
              [ "timeout_secs",
                Json.obj
                    [ "type", Json.str "number"
                      "description", Json.str "Maximum seconds to wait, 0 to 300. Default 60."
                      "default", Json.num 60
                      "minimum", Json.num 0
                      "maximum", Json.num 300 ] ]
              [])

      spec
          "inbox_peek"
          "Peek at the inbox"
          reads
          $"List pending inbound messages, oldest first, without removing them. Each has {messageFields}."
          (objectSchema [ "limit", integerProp "How many messages to return at most (1 to 200). Default 10." 10 1 200 ] [])

      spec
          "inbox_pop"
          "Remove a handled message"
          replaces
          "Remove a message you have handled from the inbox, by its activity_id. Safe to repeat: answers removed=false when the message is already gone."
          (objectSchema [ "activity_id", stringProp "activity_id of the handled message." ] [ "activity_id" ])

      spec
          "chat_history"
          "Read the history with a peer"
          reads
          "Read what this workspace and one peer exchanged — both directions, every kind of activity row (messages, delegations …) — oldest first, as the platform's JSON rows; [] when there are none. limit takes the newest rows (default 20, at most 500); to read further back, pass the created_at of the oldest row you have as before_ts."
          (objectSchema
              [ "peer_id", stringProp "The peer's workspace ID (the peer_id of its messages, or from list_peers)."
                "limit", integerProp "How many rows at most (1 to 500). Default 20." 20 1 500
                "before_ts",
                stringProp
                    "Only rows older than this RFC 3339 time, e.g. 2026-05-01T00:00:00Z. To page back, pass the created_at of the oldest row of the previous page." ]
              [ "peer_id" ])

      spec
          "commit_memory"
          "Save a memory"
          (adds false)
          "Save a fact in the platform's persistent memory. scope LOCAL (default): only this workspace reads it; TEAM: your team (parent and siblings) reads it too; GLOBAL: every workspace reads it; only root workspaces (no parent) may write it, and the platform says so otherwise. Do not store secrets."
          (objectSchema
              [ "content", stringProp "The fact to remember, as plain text."
                "scope", enumProp [ "LOCAL"; "TEAM"; "GLOBAL" ] "Who can read it: LOCAL (default), TEAM or GLOBAL." ]
              [ "content" ])

      spec
          "recall_memory"
          "Search memories"
          reads
          "Search the platform's persistent memory. The query is matched by the platform's full-text search (whole words, not substrings); an empty query returns memories without filtering, at most 50. scope empty (default): your own memories of every scope; LOCAL: your own LOCAL ones; TEAM: your team's TEAM memories; GLOBAL: everyone's GLOBAL memories."
          (objectSchema
              [ "query", stringProp "Words to search for. Empty = no filter."
                "scope", enumProp [ "LOCAL"; "TEAM"; "GLOBAL"; "" ] "Which memories to search; empty = your own of every scope." ]
              [])

      spec
          "create_request"
          "Ask the user or an agent"
          (adds true)
          "Raise a request in the team's requests inbox: a task (something to do) or an approval (a yes or no), for the user (shown in the Molecule console's Requests view) or for another agent. Returns its request_id at once; do not wait in a loop: the answer, or a question about it, arrives later in your inbox as a request_update message. Use it when you need a decision or an action from someone before you go on; for a plain message use send_message_to_user."
          (objectSchema
              [ "kind", enumProp [ "task"; "approval" ] "task: something to do (answered done or rejected); approval: a yes or no (answered approved or rejected)."
                "title", titleProp ()
                "detail", detailProp ()
                "recipient_type", enumProp [ "user"; "agent" ] "Who answers: user (default) or agent."
                "recipient_id", stringProp "Only for recipient_type agent: the workspace UUID of the agent (from list_peers)."
                "priority", priorityProp () ]
              [ "kind"; "title" ])

      spec
          "create_approval"
          "Ask the user for an approval"
          (adds true)
          "Ask the user for a yes or no: the same as create_request with kind approval and recipient_type user. Returns its request_id at once; the decision arrives later in your inbox as a request_update message."
          (objectSchema [ "title", titleProp (); "detail", detailProp (); "priority", priorityProp () ] [ "title" ])

      spec
          "list_requests"
          "List requests"
          reads
          "List requests as the platform's JSON objects (id, kind, title, detail, status, requester, recipient, times), newest first: box mine (default) = the ones you raised; box inbox = the ones addressed to you. Optionally only those of one status."
          (objectSchema
              [ "box", enumProp [ "mine"; "inbox" ] "mine (default): raised by you; inbox: addressed to you."
                "status", enumProp requestStatuses "Only requests with this status. Empty: every status." ]
              [])

      spec
          "get_request"
          "Read a request"
          reads
          "Read one request you raised or that is addressed to you, with its thread of messages, as the platform's JSON ({request, messages})."
          (objectSchema [ "request_id", requestIdProp () ] [ "request_id" ])

      spec
          "respond_to_request"
          "Answer a request"
          decides
          "Answer a request addressed to you: an approval with approved or rejected, a task with done (once it is done) or rejected. The requester is told. To ask a question first, use add_request_message."
          (objectSchema
              [ "request_id", requestIdProp ()
                "action", enumProp [ "approved"; "rejected"; "done" ] "approved or rejected (an approval); done or rejected (a task)." ]
              [ "request_id"; "action" ])

      spec
          "add_request_message"
          "Add to a request's thread"
          (adds true)
          "Add a message to a request's thread: a clarification of your own request, or a question about one addressed to you (which marks it info_requested). The other party is told."
          (objectSchema [ "request_id", requestIdProp (); "body", stringProp "The message, plain text." ] [ "request_id"; "body" ])

      spec
          "cancel_request"
          "Cancel a request"
          decides
          "Cancel a request you raised and no longer need (only the requester may). The recipient is told."
          (objectSchema [ "request_id", requestIdProp () ] [ "request_id" ]) ]
