/// The console's activity feed: one labelled entry per event, with workspace names instead of ids. Every label the
/// canvas feed and the platform log show is written here. Pure: names come from a function.
module Molecule.Platform.Feed

open System
open System.Text.Json.Nodes
open System.Text.RegularExpressions
module Json = Molecule.Protocol.Json

/// One line of the feed. Rows of one event (a delegation's tracking, delivery and result rows) share a `Key` and
/// are merged into one entry.
type Entry =
    { Key: string
      Seq: int64
      At: DateTimeOffset
      /// chat (user ↔ agent), message (agent → agent), delegation, memory, report, status
      Kind: string
      /// The workspace whose log holds the row (None for status events).
      WorkspaceId: WorkspaceId option
      /// Who acted (the sender, the delegating workspace, the writer); None = the user.
      ActorId: WorkspaceId option
      TargetId: WorkspaceId option
      Text: string
      /// What was said or asked (≤ 200 characters).
      Detail: string
      /// The answer, result or error (≤ 200 characters).
      Result: string
      Status: string }

let kinds = [ "chat"; "message"; "delegation"; "memory"; "report"; "status" ]

[<Literal>]
let PreviewLength = 200

let shortId (id: WorkspaceId) = id.Guid.ToString("N").Substring(0, 8)

/// How a workspace is called: its name, else "workspace <short id>".
let nameIn (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : string =
    match all.TryFind id with
    | Some w when not (String.IsNullOrWhiteSpace w.Name) -> w.Name.Trim()
    | _ -> "workspace " + shortId id

/// For the platform log: "Name (short id)".
let nameWithId (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : string =
    match all.TryFind id with
    | Some w when not (String.IsNullOrWhiteSpace w.Name) -> $"{w.Name.Trim()} ({shortId id})"
    | _ -> "workspace " + shortId id

let private preview (s: string) =
    let t = (if isNull s then "" else s).ReplaceLineEndings(" ").Trim()
    if t.Length > PreviewLength then t.Substring(0, PreviewLength - 1) + "…" else t

let private uuid =
    Regex("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", RegexOptions.Compiled)

/// Replaces every workspace id in a text by its name.
let withNames (name: WorkspaceId -> string) (text: string) : string =
    if String.IsNullOrEmpty text then "" else uuid.Replace(text, fun m -> name (WorkspaceId(Guid.Parse m.Value)))

let private body (s: string option) = s |> Option.bind Json.tryParseDecoded
let private message (n: JsonNode) = Json.prop "params" n |> Option.bind (Json.prop "message")
let private str (name: string) (n: JsonNode) = Json.prop name n |> Option.bind Json.asString

/// A row's JSON bodies, each parsed once.
type private Bodies = { Req: JsonNode option; Resp: JsonNode option }

let private parse (r: ActivityRow) = { Req = body r.RequestBody; Resp = body r.ResponseBody }

let private delegationIn (b: Bodies) : string option =
    b.Req
    |> Option.bind message
    |> Option.bind (Json.prop "metadata")
    |> Option.bind (str "delegation_id")
    |> Option.orElse (b.Req |> Option.bind (str "delegation_id"))
    |> Option.orElse (b.Resp |> Option.bind (str "delegation_id"))

/// The delegation a message or result row belongs to (`metadata.delegation_id` or a body's `delegation_id`).
let delegationOf (r: ActivityRow) : string option = delegationIn (parse r)

let private fileKinds = set [ "file"; "image"; "audio"; "video" ]

let private messageText (b: Bodies) =
    let msg = b.Req |> Option.bind message
    let text = msg |> Option.map A2a.textOfParts |> Option.defaultValue ""

    let files =
        match msg |> Option.bind (Json.prop "parts") |> Option.bind Json.asArray with
        | Some parts ->
            parts
            |> Seq.filter (fun p -> (str "kind" p |> Option.orElse (str "type" p)) |> Option.exists fileKinds.Contains)
            |> Seq.length
        | None -> if b.Req |> Option.bind (str "uri") |> Option.isSome then 1 else 0

    match files with
    | 0 -> text
    | 1 -> (text + " (+1 file)").Trim()
    | n -> (text + $" (+{n} files)").Trim()

let private answerText (b: Bodies) =
    match b.Resp |> Option.bind (Json.prop "result") with
    | Some(:? JsonValue as v) -> Json.asString v |> Option.defaultValue ""
    | Some r ->
        let direct = A2a.textOfParts r

        if direct <> "" then
            direct
        else
            match Json.prop "artifacts" r |> Option.bind Json.asArray with
            | Some arts -> arts |> Seq.map A2a.textOfParts |> String.concat ""
            | None -> ""
    | None -> ""

let private humanise (t: string) = (if isNull t then "" else t).Replace('_', ' ')

let private entry (r: ActivityRow) kind actor target text =
    { Key = r.Id.Text
      Seq = r.Seq
      At = r.CreatedAt
      Kind = kind
      WorkspaceId = Some r.WorkspaceId
      ActorId = actor
      TargetId = target
      Text = text
      Detail = ""
      Result = ""
      Status = "" }

let delegated (name: WorkspaceId -> string) (source: WorkspaceId) (target: WorkspaceId option) =
    match target with
    | Some t -> $"{name source} delegated a task to {name t}"
    | None -> $"{name source} delegated a task"

let private sent (name: WorkspaceId -> string) (source: WorkspaceId option) (target: WorkspaceId) (methodName: string option) =
    let who = source |> Option.map name |> Option.defaultValue "user"

    match methodName with
    | None
    | Some "message/send" -> $"{who} → {name target}"
    | Some m -> $"{who} → {name target} ({m})"

/// The feed entry of an activity row; None for a row that repeats an event shown by another row (an agent's own
/// report of a message the platform already logged on the receiver).
let ofRow (name: WorkspaceId -> string) (r: ActivityRow) : Entry option =
    let ws = r.WorkspaceId
    let b = parse r
    let failed = if r.Status = "error" || r.Status = "failed" then "failed" else ""

    match r.ActivityType, r.Method with
    | "a2a_receive", Some "notify" ->
        let text =
            b.Resp |> Option.bind (str "result") |> Option.defaultValue (defaultArg r.Summary "")

        Some { entry r "chat" (Some ws) None $"{name ws} → user" with Detail = preview text }
    | "a2a_receive", Some "delegate_result" ->
        let source = r.TargetId |> Option.defaultValue ws

        Some
            { entry r "delegation" (Some source) r.SourceId (delegated name source r.SourceId) with
                Key = delegationIn b |> Option.defaultValue r.Id.Text
                Result = preview (messageText b)
                Status = "completed" }
    | "a2a_receive", Some "request_update" ->
        // a request's news for an agent (RequestsWire.updateRow): its summary already names who did what
        Some { entry r (if r.SourceId.IsNone then "chat" else "message") r.SourceId (Some ws) (withNames name (defaultArg r.Summary "")) with
                Detail = $"for {name ws}" }
    | "a2a_receive", _ when r.SourceId = Some ws ->
        // the agent's own report of a send it made: the receiver's row shows the message; only a failure is news
        if failed = "" then
            None
        else
            Some
                { entry r "message" (Some ws) r.TargetId (sent name (Some ws) (defaultArg r.TargetId ws) None) with
                    Result = preview (defaultArg r.ErrorDetail (withNames name (defaultArg r.Summary "")))
                    Status = failed }
    | "a2a_receive", m ->
        match r.SourceId, delegationIn b with
        | None, _ -> Some { entry r "chat" None (Some ws) (sent name None ws m) with Detail = preview (messageText b); Status = failed }
        | Some s, Some d ->
            Some { entry r "delegation" (Some s) (Some ws) (delegated name s (Some ws)) with Key = d; Detail = preview (messageText b) }
        | Some s, None ->
            Some
                { entry r "message" (Some s) (Some ws) (sent name (Some s) ws m) with
                    Detail = preview (messageText b)
                    Result = preview (answerText b)
                    Status = failed }
    | "a2a_send", _ -> None
    | "delegation", Some "delegate" ->
        let task = b.Req |> Option.bind (str "task") |> Option.defaultValue ""
        Some { entry r "delegation" (Some ws) r.TargetId (delegated name ws r.TargetId) with Detail = preview task; Status = r.Status }
    | "delegation", _ ->
        let result =
            match r.ErrorDetail with
            | Some e -> e
            | None -> b.Resp |> Option.bind (str "text") |> Option.defaultValue ""

        Some
            { entry r "delegation" (Some ws) r.TargetId (delegated name ws r.TargetId) with
                Key = delegationIn b |> Option.defaultValue r.Id.Text
                Result = preview (withNames name result)
                Status = r.Status }
    | "memory_write_global", _ ->
        Some { entry r "memory" (Some ws) None $"{name ws} wrote a GLOBAL memory" with Detail = preview (defaultArg r.Summary "") }
    | t, _ ->
        Some
            { entry r "report" (Some ws) r.TargetId $"{name ws} reported {humanise t}" with
                Detail = preview (withNames name (defaultArg r.Summary ""))
                Status = failed }

/// The label of a workspace event, if it has one.
let statusText (name: WorkspaceId -> string) (kind: string) (ws: WorkspaceId) : string option =
    match kind with
    | "WORKSPACE_CREATED" -> Some $"{name ws} was created"
    | "WORKSPACE_UPDATED" -> Some $"{name ws} was edited"
    | "WORKSPACE_ONLINE" -> Some $"{name ws} is online (its agent registered)"
    | "WORKSPACE_AWAITING_AGENT" -> Some $"{name ws} is awaiting its agent (no heartbeat for 90 s)"
    | "WORKSPACE_DEGRADED" -> Some $"{name ws} is degraded (errors reported)"
    | "WORKSPACE_REMOVED" -> Some $"{name ws} was removed; its tokens are revoked"
    | k when k.StartsWith "WORKSPACE_" && k <> "WORKSPACE_HEARTBEAT" ->
        Some $"{name ws} is now {humanise (k.Substring(10).ToLowerInvariant())}"
    | _ -> None

/// The feed entry of a platform event that is not an activity row: workspace status changes and delegation
/// progress (merged into the delegation's entry by its key). `payload` is the canvas payload.
let ofEvent (name: WorkspaceId -> string) (kind: string) (ws: WorkspaceId option) (at: DateTimeOffset) (payload: JsonObject) : Entry option =
    let s n = str n payload |> Option.defaultValue ""

    let blank =
        { Key = ""; Seq = 0L; At = at; Kind = "status"; WorkspaceId = ws; ActorId = ws; TargetId = None
          Text = ""; Detail = ""; Result = ""; Status = "" }

    match ws with
    | None -> None
    | Some w ->
        match kind with
        | "DELEGATION_STATUS"
        | "DELEGATION_COMPLETE"
        | "DELEGATION_FAILED" ->
            let target = Validation.parseWorkspaceId (s "target_id")

            let status =
                match kind with
                | "DELEGATION_COMPLETE" -> "completed"
                | "DELEGATION_FAILED" -> "failed"
                | _ -> s "status"

            Some
                { blank with
                    Key = s "delegation_id"
                    Kind = "delegation"
                    TargetId = target
                    Text = delegated name w target
                    Result = preview (withNames name (if kind = "DELEGATION_FAILED" then s "error" else s "response_preview"))
                    Status = status }
        | _ ->
            statusText name kind w
            |> Option.map (fun text ->
                { blank with Key = $"{kind}:{w.Text}:{at.UtcTicks}"; Text = text; Status = s "status" })

/// Later rows of the same key complete an entry: the first text, detail and time stay; the latest non-empty
/// result and status win.
let combine (first: Entry) (later: Entry) : Entry =
    let pick a b = if String.IsNullOrEmpty b then a else b

    { first with
        Seq = max first.Seq later.Seq
        Detail = pick later.Detail first.Detail
        Result = pick first.Result later.Result
        Status = pick first.Status later.Status
        TargetId = first.TargetId |> Option.orElse later.TargetId }

/// One entry per key, in the order of each key's first entry.
let merge (entries: Entry seq) : Entry list =
    let order = Collections.Generic.List<string>()
    let byKey = Collections.Generic.Dictionary<string, Entry>()

    for e in entries do
        match byKey.TryGetValue e.Key with
        | true, old -> byKey[e.Key] <- combine old e
        | _ ->
            order.Add e.Key
            byKey[e.Key] <- e

    [ for k in order -> byKey[k] ]

type Filter =
    { Workspace: WorkspaceId option
      Kind: string option
      Text: string option }

let private has (needle: string) (hay: string) =
    not (isNull hay) && hay.Contains(needle, StringComparison.OrdinalIgnoreCase)

let matches (f: Filter) (e: Entry) : bool =
    (match f.Workspace with
     | Some w -> e.ActorId = Some w || e.TargetId = Some w || e.WorkspaceId = Some w
     | None -> true)
    && (match f.Kind with
        | Some k -> e.Kind = k
        | None -> true)
    && (match f.Text with
        | Some t when t.Trim() <> "" -> has (t.Trim()) e.Text || has (t.Trim()) e.Detail || has (t.Trim()) e.Result
        | _ -> true)

let toJson (e: Entry) : JsonObject =
    Json.obj
        [ "key", Json.str e.Key
          "seq", Json.num64 e.Seq
          "at", Wire.timeNode e.At
          "kind", Json.str e.Kind
          "workspace_id", Wire.optId e.WorkspaceId
          "actor_id", Wire.optId e.ActorId
          "target_id", Wire.optId e.TargetId
          "text", Json.str e.Text
          "detail", Json.str e.Detail
          "result", Json.str e.Result
          "status", Json.str e.Status ]

/// Text for a log line: control characters (a newline in a name or a decoded path) become '?', so one entry is one
/// line and nobody can forge another.
let printable (s: string) : string =
    if isNull s then "" else String(s.ToCharArray() |> Array.map (fun c -> if Char.IsControl c then '?' else c))

/// A platform log line: the label and the status, never message contents.
let logLine (e: Entry) : string =
    printable (if e.Status = "" || e.Status = "ok" then e.Text else $"{e.Text} [{e.Status}]")
