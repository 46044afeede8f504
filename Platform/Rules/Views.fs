/// JSON shapes of rows as the platform returns them. Pure.
module Molecule.Platform.Views

open System
open System.Text.Json.Nodes
module Json = Molecule.Protocol.Json

let private card (w: Workspace) : JsonNode =
    match w.AgentCard with
    | Some c -> Json.raw c
    | None -> null

/// The fields both workspace shapes start with (fresh nodes on every call).
let private head (w: Workspace) : (string * JsonNode) list =
    [ "id", Wire.idNode w.Id
      "name", Json.str w.Name
      "tier", Json.num w.Tier
      "status", Json.str (Status.text w.Status)
      "url", Json.str (defaultArg w.Url "")
      "parent_id", Wire.optId w.ParentId
      "active_tasks", Json.num w.ActiveTasks ]

/// Peer entry (GET /registry/:id/peers).
let peer (w: Workspace) : JsonNode =
    Json.obj (head w @ [ "role", Json.optStr w.Role; "agent_card", card w ])

/// GET /workspaces/:id body.
let workspace (w: Workspace) : JsonObject =
    Json.obj (
        head w
        @ [ "max_concurrent_tasks", Json.num w.MaxConcurrentTasks
            "last_error_rate", Json.numf w.LastErrorRate
            "uptime_seconds", Json.num w.UptimeSeconds
            "runtime", Json.str w.Runtime
            "delivery_mode", Json.str (DeliveryMode.text w.DeliveryMode)
            "x", Json.num 0
            "y", Json.num 0
            "collapsed", Json.bool false
            "role", Json.optStr w.Role
            "agent_card", card w
            "last_outbound_at", Wire.optTime w.LastOutboundAt
            "last_heartbeat_at", Wire.optTime w.LastHeartbeatAt
            "created_at", Wire.timeNode w.CreatedAt
            "updated_at", Wire.timeNode w.UpdatedAt ]
    )

let removedHint = "Regenerate workspace + token from the canvas → Tokens tab"

/// 410 body for a removed workspace.
let removed (w: Workspace) : Reply =
    Wire.reply
        410
        (Json.obj
            [ "error", Json.str "workspace removed"
              "id", Wire.idNode w.Id
              "hint", Json.str removedHint
              "removed_at", Wire.timeNode w.UpdatedAt ])

/// The raw JSON columns of a row that are set.
let private jsonColumns (r: ActivityRow) : (string * JsonNode) list =
    [ match r.RequestBody with
      | Some b -> "request_body", Json.raw b
      | None -> ()
      match r.ResponseBody with
      | Some b -> "response_body", Json.raw b
      | None -> ()
      match r.ToolTrace with
      | Some b -> "tool_trace", Json.raw b
      | None -> () ]

let private durationNode (r: ActivityRow) : JsonNode =
    match r.DurationMs with
    | Some d -> Json.num d
    | None -> null

/// Activity row (keys sorted, spec §2.3); `seq` always; the three JSON columns only when present, as raw JSON.
/// `message_id` and `idempotency_key` are not projected.
let activity (r: ActivityRow) : JsonObject =
    Json.sorted (
        [ "id", Wire.idNode r.Id
          "workspace_id", Wire.idNode r.WorkspaceId
          "activity_type", Json.str r.ActivityType
          "source_id", Wire.optId r.SourceId
          "target_id", Wire.optId r.TargetId
          "method", Json.optStr r.Method
          "summary", Json.optStr r.Summary
          "duration_ms", durationNode r
          "status", Json.str r.Status
          "error_detail", Json.optStr r.ErrorDetail
          "created_at", Wire.timeNode r.CreatedAt
          "seq", Json.num64 r.Seq ]
        @ jsonColumns r
    )

/// include=peer_info (spec §2.3): `peer_name` / `peer_role` of the sending workspace (omitted when empty or
/// unknown), `agent_card_url` = `<base>/registry/discover/<source_id>` when the row has a source, `attachments`
/// when the request body carries any.
let activityWithPeer (peerOf: WorkspaceId -> Workspace option) (baseUrl: string) (r: ActivityRow) : JsonObject =
    let extra =
        [ match r.SourceId with
          | Some s ->
              match peerOf s with
              | Some p ->
                  if p.Name <> "" then "peer_name", Json.str p.Name

                  match p.Role with
                  | Some role when role <> "" -> "peer_role", Json.str role
                  | _ -> ()
              | None -> ()

              "agent_card_url", Json.str $"{baseUrl}/registry/discover/{s.Text}"
          | None -> ()
          match A2a.attachmentsOf r.RequestBody with
          | [] -> ()
          | atts -> "attachments", Json.arr atts ]

    let o = activity r

    for (k, v) in extra do
        o[k] <- v

    Json.sorted [ for kv in o -> kv.Key, Json.clone kv.Value ]

/// `ACTIVITY_LOGGED` payload on a workspace's event stream (spec §1.2): keys sorted; never the row's id, seq,
/// created_at or workspace_id; `message_id` when set. `summary` may differ from the stored one (the poll
/// short-circuit's second ring says "(queued for poll)").
let activityData (r: ActivityRow) (summary: string option) : JsonObject =
    Json.sorted (
        [ "activity_type", Json.str r.ActivityType
          "method", Json.optStr r.Method
          "summary", Json.optStr summary
          "status", Json.str r.Status
          "source_id", Wire.optId r.SourceId
          "target_id", Wire.optId r.TargetId
          "duration_ms", durationNode r
          match r.ErrorDetail with
          | Some e -> "error_detail", Json.str e
          | None -> ()
          match r.MessageId with
          | Some m -> "message_id", Json.str m
          | None -> () ]
        @ jsonColumns r
    )

let token (t: Token) : JsonNode =
    Json.obj
        [ "id", Wire.idNode t.Id
          "prefix", Json.str t.Prefix
          "created_at", Wire.timeNode t.CreatedAt
          "last_used_at", Wire.optTime t.LastUsedAt
          "revoked_at", Wire.optTime t.RevokedAt ]

/// Agent card built from an admin create request (name + skills).
let cardOf (name: string) (skills: string list) (description: string option) : string =
    let o =
        Json.obj
            [ "name", Json.str name
              "skills", Json.arr (skills |> List.map (fun s -> Json.obj [ "name", Json.str s ] :> JsonNode)) ]

    description |> Option.iter (fun d -> o["description"] <- Json.str d)
    Json.compact o

/// Registered card; when the agent's card has no skills, the skills already stored are kept.
let mergeCard (stored: string option) (incoming: JsonObject) : string =
    let inc = incoming.DeepClone().AsObject()

    let hasSkills =
        Json.prop "skills" inc |> Option.bind Json.asArray |> Option.exists (not << List.isEmpty)

    if not hasSkills then
        match stored |> Option.bind Json.tryParseDecoded |> Option.bind (Json.prop "skills") with
        | Some s when Json.asArray s |> Option.exists (not << List.isEmpty) -> inc["skills"] <- Json.clone s
        | _ -> ()

    Json.compact inc
