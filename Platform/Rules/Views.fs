/// JSON shapes of rows as the platform returns them. Pure.
module Molecule.Platform.Views

open System
open System.Text.Json.Nodes

let private card (w: Workspace) : JsonNode =
    match w.AgentCard with
    | Some c -> Json.raw c
    | None -> null

/// The fields both workspace shapes start with (fresh nodes on every call).
let private head (w: Workspace) : (string * JsonNode) list =
    [ "id", Json.guidNode w.Id
      "name", Json.str w.Name
      "tier", Json.num w.Tier
      "status", Json.str w.Status
      "url", Json.str (defaultArg w.Url "")
      "parent_id", Json.optGuid w.ParentId
      "active_tasks", Json.num w.ActiveTasks ]

/// Peer entry (GET /registry/:id/peers).
let peer (w: Workspace) : JsonNode =
    Json.obj (head w @ [ "role", Json.optStr w.Role; "agent_card", card w ])

/// GET /workspaces/:id body.
let workspace (w: Workspace) : JsonObject =
    Json.obj (
        head w
        @ [ "max_concurrent_tasks", Json.num w.MaxConcurrentTasks
            "last_error_rate", Json.flt w.LastErrorRate
            "uptime_seconds", Json.num w.UptimeSeconds
            "runtime", Json.str w.Runtime
            "delivery_mode", Json.str w.DeliveryMode
            "x", Json.num 0
            "y", Json.num 0
            "collapsed", Json.bool false
            "role", Json.optStr w.Role
            "agent_card", card w
            "last_outbound_at", Json.optTime w.LastOutboundAt
            "last_heartbeat_at", Json.optTime w.LastHeartbeatAt
            "created_at", Json.timeNode w.CreatedAt
            "updated_at", Json.timeNode w.UpdatedAt ]
    )

let removedHint = "Regenerate workspace + token from the canvas → Tokens tab"

/// 410 body for a removed workspace.
let removed (w: Workspace) : Reply =
    Json.reply
        410
        (Json.obj
            [ "error", Json.str "workspace removed"
              "id", Json.guidNode w.Id
              "hint", Json.str removedHint
              "removed_at", Json.timeNode w.UpdatedAt ])

/// Activity row; the three JSON columns only when present, as raw JSON.
let activity (r: ActivityRow) : JsonNode =
    let o =
        Json.obj
            [ "id", Json.guidNode r.Id
              "workspace_id", Json.guidNode r.WorkspaceId
              "activity_type", Json.str r.ActivityType
              "source_id", Json.optGuid r.SourceId
              "target_id", Json.optGuid r.TargetId
              "method", Json.optStr r.Method
              "summary", Json.optStr r.Summary
              "duration_ms", (match r.DurationMs with Some d -> Json.num d | None -> null)
              "status", Json.str r.Status
              "error_detail", Json.optStr r.ErrorDetail
              "created_at", Json.timeNode r.CreatedAt
              "seq", Json.num64 r.Seq ]

    r.RequestBody |> Option.iter (fun b -> o["request_body"] <- Json.raw b)
    r.ResponseBody |> Option.iter (fun b -> o["response_body"] <- Json.raw b)
    r.ToolTrace |> Option.iter (fun b -> o["tool_trace"] <- Json.raw b)
    o

let token (t: Token) : JsonNode =
    Json.obj
        [ "id", Json.guidNode t.Id
          "prefix", Json.str t.Prefix
          "created_at", Json.timeNode t.CreatedAt
          "last_used_at", Json.optTime t.LastUsedAt
          "revoked_at", Json.optTime t.RevokedAt ]

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
        match Json.prop "skills" inc |> Option.bind Json.asArray with
        | Some a -> a.Count > 0
        | None -> false

    if not hasSkills then
        match stored |> Option.bind Json.tryParse |> Option.bind (Json.prop "skills") |> Option.bind Json.asArray with
        | Some s when s.Count > 0 -> inc["skills"] <- s.DeepClone()
        | _ -> ()

    Json.compact inc
