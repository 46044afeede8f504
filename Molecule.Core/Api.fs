/// Every request the runtime makes to the platform, as plain data (spec §2).
/// URLs are built from the normalised base URL, headers always carry the bearer token and the
/// normalised Origin (fixes P3); nothing here performs IO.
module Molecule.Core.Api

open Molecule.Protocol

open System
open System.Globalization
open System.Text.Json.Nodes

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

let private esc (s: string) : string =
    match s with
    | null -> ""
    | s -> Uri.EscapeDataString s

/// Cuts a text to at most `max` UTF-16 units without splitting a surrogate pair.
let internal truncate (max: int) (s: string) : string =
    match s with
    | null -> ""
    | s when s.Length <= max -> s
    | s ->
        let cut = if max > 0 && Char.IsHighSurrogate s[max - 1] then max - 1 else max
        s.Substring(0, Math.Max(0, cut))

let private baseHeaders (cfg: Config) : (string * string) list =
    [ "Authorization", $"Bearer {cfg.Token}"; "Origin", cfg.Origin ]

let private peerHeaders (cfg: Config) : (string * string) list =
    baseHeaders cfg @ [ "X-Workspace-ID", cfg.WorkspaceId.Value ]

let private query (pairs: (string * string) list) : string =
    match pairs with
    | [] -> ""
    | ps -> "?" + String.Join("&", ps |> List.map (fun (k, v) -> $"{esc k}={esc v}"))

let private url (cfg: Config) (path: string) (q: (string * string) list) : string = cfg.PlatformUrl + path + query q

let private own (cfg: Config) = esc cfg.WorkspaceId.Value

let private json (o: JsonObject) : Body = JsonBody(Json.compact o)

let private request meth (cfg: Config) path q headers body timeout : Request =
    { Method = meth
      Url = url cfg path q
      Headers = headers
      Body = body
      TimeoutSecs = timeout
      Retry = NoRetry }

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// The wire name of a memory scope.
let scopeName (scope: MemoryScope) : string =
    match scope with
    | Local -> "LOCAL"
    | Team -> "TEAM"
    | Global -> "GLOBAL"

let private contentTypes =
    dict
        [ ".txt", "text/plain"
          ".md", "text/markdown"
          ".csv", "text/csv"
          ".html", "text/html"
          ".htm", "text/html"
          ".css", "text/css"
          ".js", "text/javascript"
          ".xml", "application/xml"
          ".json", "application/json"
          ".yaml", "application/yaml"
          ".yml", "application/yaml"
          ".pdf", "application/pdf"
          ".zip", "application/zip"
          ".gz", "application/gzip"
          ".tar", "application/x-tar"
          ".png", "image/png"
          ".jpg", "image/jpeg"
          ".jpeg", "image/jpeg"
          ".gif", "image/gif"
          ".webp", "image/webp"
          ".svg", "image/svg+xml"
          ".mp3", "audio/mpeg"
          ".wav", "audio/wav"
          ".mp4", "video/mp4"
          ".webm", "video/webm"
          ".doc", "application/msword"
          ".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
          ".xls", "application/vnd.ms-excel"
          ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
          ".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" ]

/// Content type guessed from the file extension; application/octet-stream when unknown.
let contentTypeOf (fileName: string) : string =
    match fileName with
    | null -> "application/octet-stream"
    | name ->
        let dot = name.LastIndexOf '.'
        let slash = Math.Max(name.LastIndexOf '/', name.LastIndexOf '\\')
        if dot <= slash || dot = name.Length - 1 then
            "application/octet-stream"
        else
            match contentTypes.TryGetValue(name.Substring(dot).ToLowerInvariant()) with
            | true, t -> t
            | _ -> "application/octet-stream"

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

/// POST /registry/register — poll delivery mode, no URL.
let register (cfg: Config) : Request =
    let card = A2a.agentCard cfg.AgentCard.Name cfg.AgentCard.Description cfg.AgentCard.Skills

    let body =
        Json.obj
            [ "id", Json.str cfg.WorkspaceId.Value
              "url", Json.str ""
              "agent_card", card :> JsonNode
              "delivery_mode", Json.str "poll" ]

    request Post cfg "/registry/register" [] (baseHeaders cfg) (json body) 10.0

/// POST /registry/heartbeat.
let heartbeat (cfg: Config) (uptimeSecs: int) : Request =
    let body =
        Json.obj
            [ "workspace_id", Json.str cfg.WorkspaceId.Value
              "error_rate", Json.numf 0.0
              "sample_error", Json.str ""
              "active_tasks", Json.num 0
              "uptime_seconds", Json.num (Math.Max(0, uptimeSecs)) ]

    request Post cfg "/registry/heartbeat" [] (baseHeaders cfg) (json body) 10.0

/// GET /workspaces/:id/activity — the inbox poll.
let activity (cfg: Config) (q: PollQuery) : Request =
    let inv (n: int) = n.ToString(CultureInfo.InvariantCulture)

    let pairs =
        match q with
        | SinceId(cursor, limit) -> [ "type", "a2a_receive"; "since_id", cursor; "limit", inv limit ]
        | Window(secs, before, limit) ->
            [ "type", "a2a_receive"; "since_secs", inv secs; "limit", inv limit ]
            @ (match before with
               | Some b -> [ "before_ts", b ]
               | None -> [])

    // the sender's name, role and agent card URL on every row (a platform without it ignores the parameter)
    let pairs = pairs @ [ "include", "peer_info" ]

    request Get cfg $"/workspaces/{own cfg}/activity" pairs (baseHeaders cfg) NoBody 10.0

/// POST /workspaces/:id/activity/ack — tells the platform every row up to `ackedSeq` is handled (monotone on the
/// platform); `0` only reads the stored floor.
let ack (cfg: Config) (ackedSeq: int64) : Request =
    let body = Json.obj [ "acked_seq", (JsonValue.Create ackedSeq :> JsonNode) ]
    request Post cfg $"/workspaces/{own cfg}/activity/ack" [] (baseHeaders cfg) (json body) 10.0

/// GET /workspaces/:id/events/stream — the platform's event stream (server-sent events), used as a doorbell.
/// The timeout bounds only the wait for the response headers.
let eventStream (cfg: Config) : Request =
    request Get cfg $"/workspaces/{own cfg}/events/stream" [] (baseHeaders cfg @ [ "Accept", "text/event-stream" ]) NoBody 10.0

/// GET /workspaces/:own — own info (also the removal probe).
let workspace (cfg: Config) : Request =
    request Get cfg $"/workspaces/{own cfg}" [] (baseHeaders cfg) NoBody 10.0

// ---------------------------------------------------------------------------------------------
// Peers and A2A
// ---------------------------------------------------------------------------------------------

/// GET /registry/:own/peers.
let peers (cfg: Config) : Request =
    request Get cfg $"/registry/{own cfg}/peers" [] (peerHeaders cfg) NoBody 10.0

/// GET /registry/discover/:target.
let discover (cfg: Config) (targetId: string) : Request =
    request Get cfg $"/registry/discover/{esc targetId}" [] (peerHeaders cfg) NoBody 10.0

/// POST /workspaces/:target/a2a — JSON-RPC message/send through the platform proxy (spec §2.6).
/// Retried by the host only on connection-level failures, never on a read timeout (P10).
let a2aSend (cfg: Config) (targetId: string) (rpcId: string) (messageId: string) (text: string) : Request =
    let body = A2a.messageSend rpcId messageId text

    { request Post cfg $"/workspaces/{esc targetId}/a2a" [] (peerHeaders cfg) (json body) 300.0 with
        Retry = TransientConnect }

/// POST /workspaces/:own/activity — a delegation log line for the canvas (spec §2.7).
let reportActivity
    (cfg: Config)
    (activityType: string)
    (targetId: string)
    (summary: string)
    (status: string)
    (requestBody: JsonNode option)
    (responseBody: JsonNode option)
    (errorDetail: string option)
    : Request =
    let body =
        Json.obj
            [ yield "activity_type", Json.str activityType
              yield "source_id", Json.str cfg.WorkspaceId.Value
              yield "target_id", Json.str targetId
              yield "method", Json.str "message/send"
              yield "summary", Json.str (truncate 256 summary)
              yield "status", Json.str status
              match requestBody with
              | Some b -> yield "request_body", Json.clone b
              | None -> ()
              match responseBody with
              | Some b -> yield "response_body", Json.clone b
              | None -> ()
              match errorDetail with
              | Some e -> yield "error_detail", Json.str (truncate 4096 e)
              | None -> () ]

    request Post cfg $"/workspaces/{own cfg}/activity" [] (baseHeaders cfg) (json body) 5.0

/// POST /workspaces/:own/delegate — asynchronous delegation.
let ``delegate`` (cfg: Config) (targetId: string) (task: string) (idempotencyKey: string) : Request =
    let body =
        Json.obj
            [ "target_id", Json.str targetId
              "task", Json.str task
              "idempotency_key", Json.str idempotencyKey ]

    request Post cfg $"/workspaces/{own cfg}/delegate" [] (baseHeaders cfg) (json body) 10.0

/// GET /workspaces/:own/delegations.
let delegations (cfg: Config) : Request =
    request Get cfg $"/workspaces/{own cfg}/delegations" [] (baseHeaders cfg) NoBody 10.0

// ---------------------------------------------------------------------------------------------
// User chat
// ---------------------------------------------------------------------------------------------

/// POST /workspaces/:own/notify — a chat message to the user, with uploaded attachments.
let notify (cfg: Config) (message: string) (attachments: JsonNode list) : Request =
    let body =
        Json.obj
            [ yield "message", Json.str message
              match attachments with
              | [] -> ()
              | xs -> yield "attachments", Json.arr (xs |> List.map Json.clone) ]

    request Post cfg $"/workspaces/{own cfg}/notify" [] (baseHeaders cfg) (json body) 60.0

/// POST /workspaces/:own/chat/uploads — multipart, one `files` part per file.
let uploads (cfg: Config) (files: UploadFile list) : Request =
    request Post cfg $"/workspaces/{own cfg}/chat/uploads" [] (baseHeaders cfg) (Multipart files) 60.0

// ---------------------------------------------------------------------------------------------
// Memories
// ---------------------------------------------------------------------------------------------

/// POST /workspaces/:own/memories.
let commitMemory (cfg: Config) (content: string) (scope: MemoryScope) : Request =
    let body =
        Json.obj
            [ "content", Json.str content
              "scope", Json.str (scopeName scope)
              "workspace_id", Json.str cfg.WorkspaceId.Value ]

    request Post cfg $"/workspaces/{own cfg}/memories" [] (baseHeaders cfg) (json body) 10.0

/// GET /workspaces/:own/memories?workspace_id=own[&q=..][&scope=..].
let recallMemory (cfg: Config) (q: string) (scope: MemoryScope option) : Request =
    let pairs =
        [ yield "workspace_id", cfg.WorkspaceId.Value
          if not (String.IsNullOrEmpty q) then
              yield "q", q
          match scope with
          | Some s -> yield "scope", scopeName s
          | None -> () ]

    request Get cfg $"/workspaces/{own cfg}/memories" pairs (baseHeaders cfg) NoBody 10.0

// ---------------------------------------------------------------------------------------------
// Team: agent card, broadcast, history, uploaded files
// ---------------------------------------------------------------------------------------------

/// POST /registry/update-card — with this workspace's own token (the reference used another one, P31). `card` is the
/// card object as compact JSON text (as Tools.parse keeps it), placed into the body as it is.
let updateCard (cfg: Config) (card: string) : Request =
    let body = $"{{\"workspace_id\":{Json.quote cfg.WorkspaceId.Value},\"agent_card\":{card}}}"
    request Post cfg "/registry/update-card" [] (baseHeaders cfg) (JsonBody body) 10.0

/// POST /workspaces/:own/broadcast.
let broadcast (cfg: Config) (message: string) : Request =
    request Post cfg $"/workspaces/{own cfg}/broadcast" [] (baseHeaders cfg) (json (Json.obj [ "message", Json.str message ])) 30.0

/// GET /workspaces/:own/activity?peer_id=…&limit=…[&before_ts=…] — every row shared with one peer (no type filter).
let chatHistory (cfg: Config) (peerId: string) (limit: int) (before: string option) : Request =
    let pairs =
        [ "peer_id", peerId; "limit", limit.ToString(CultureInfo.InvariantCulture) ]
        @ (match before with
           | Some b -> [ "before_ts", b ]
           | None -> [])
    request Get cfg $"/workspaces/{own cfg}/activity" pairs (baseHeaders cfg) NoBody 10.0

/// GET /workspaces/:own/pending-uploads/:file_id/content — the bytes of a file the user uploaded.
let uploadContent (cfg: Config) (fileId: string) : Request =
    request Get cfg $"/workspaces/{own cfg}/pending-uploads/{esc fileId}/content" [] (baseHeaders cfg) NoBody 240.0

/// POST /workspaces/:own/pending-uploads/:file_id/ack — the file is on disk here.
let ackUpload (cfg: Config) (fileId: string) : Request =
    request Post cfg $"/workspaces/{own cfg}/pending-uploads/{esc fileId}/ack" [] (baseHeaders cfg) NoBody 10.0

// ---------------------------------------------------------------------------------------------
// Requests (tasks and approvals, delivery spec §7.1)
// ---------------------------------------------------------------------------------------------

let requestKindName (kind: RequestKind) =
    match kind with
    | TaskRequest -> "task"
    | ApprovalRequest -> "approval"

let requestActionName (action: RequestAction) =
    match action with
    | Approve -> "approved"
    | Reject -> "rejected"
    | MarkDone -> "done"

/// POST /workspaces/:own/requests. `extra`: the local platform's extensions (expires_at, source).
let createRequest (cfg: Config) (r: NewRequest) (extra: (string * string) list) : Request =
    let body =
        Json.obj
            [ yield "kind", Json.str (requestKindName r.Kind)
              match r.Recipient with
              | ToUser -> yield "recipient_type", Json.str "user"
              | ToAgent ws ->
                  yield "recipient_type", Json.str "agent"
                  yield "recipient_id", Json.str ws.Value
              yield "title", Json.str r.Title
              match r.Detail with
              | Some d -> yield "detail", Json.str d
              | None -> ()
              match r.Priority with
              | Some p -> yield "priority", Json.str p
              | None -> ()
              for (k, v) in extra -> k, Json.str v ]
    request Post cfg $"/workspaces/{own cfg}/requests" [] (baseHeaders cfg) (json body) 10.0

/// GET /workspaces/:own/requests (raised here) or …/requests/inbox (addressed here), optionally by status.
let listRequests (cfg: Config) (box: RequestBox) (status: string option) : Request =
    let path = match box with Mine -> "requests" | AddressedToMe -> "requests/inbox"
    let q = match status with Some s -> [ "status", s ] | None -> []
    request Get cfg $"/workspaces/{own cfg}/{path}" q (baseHeaders cfg) NoBody 10.0

/// GET /workspaces/:own/requests/:rid — the request and its thread.
let getRequest (cfg: Config) (rid: RequestId) : Request =
    request Get cfg $"/workspaces/{own cfg}/requests/{esc rid.Value}" [] (baseHeaders cfg) NoBody 10.0

/// POST /workspaces/:own/requests/:rid/respond {"action"}.
let respondToRequest (cfg: Config) (rid: RequestId) (action: RequestAction) : Request =
    let body = Json.obj [ "action", Json.str (requestActionName action) ]
    request Post cfg $"/workspaces/{own cfg}/requests/{esc rid.Value}/respond" [] (baseHeaders cfg) (json body) 10.0

/// POST /workspaces/:own/requests/:rid/messages {"body","author_type":"agent"}.
let addRequestMessage (cfg: Config) (rid: RequestId) (text: string) : Request =
    let body = Json.obj [ "body", Json.str text; "author_type", Json.str "agent" ]
    request Post cfg $"/workspaces/{own cfg}/requests/{esc rid.Value}/messages" [] (baseHeaders cfg) (json body) 10.0

/// POST /workspaces/:own/requests/:rid/cancel.
let cancelRequest (cfg: Config) (rid: RequestId) : Request =
    request Post cfg $"/workspaces/{own cfg}/requests/{esc rid.Value}/cancel" [] (baseHeaders cfg) NoBody 10.0
