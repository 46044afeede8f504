/// The store's reads and writes in SQL over ADO.NET, for any engine with a Schema.Dialect: the commands, the column
/// codecs, the one transaction helper and the migration runner. An engine (SqliteStore) supplies the connection,
/// decides who waits for whom, and publishes what a committed write announced.
module Molecule.Platform.Sql

open System
open System.Collections.Generic
open System.Data.Common
open Molecule.Platform
open Molecule.Platform.Store

/// Commands kept prepared on one connection, by their text (an engine whose connection is used by one caller at a
/// time, like SQLite's, keeps one; a pooled engine prepares on its own).
type Statements() =
    let cache = Dictionary<string, DbCommand>()

    member _.For(conn: DbConnection, sql: string) : DbCommand =
        match cache.TryGetValue sql with
        | true, cmd -> cmd
        | _ ->
            let cmd = conn.CreateCommand()
            cmd.CommandText <- sql
            cache[sql] <- cmd
            cmd

    interface IDisposable with
        member _.Dispose() =
            for cmd in cache.Values do
                cmd.Dispose()

            cache.Clear()

/// The workspaces as last committed, for an engine whose database no one else writes (SQLite): read once, then
/// served from memory until a committed write saves a workspace. Nearly every request reads the team (the hierarchy
/// rules, labels), and it changes only on register, heartbeat, edits and removals.
type TeamCache() =
    let mutable team: Workspace list option = None

    /// The cached team, or `load ()` kept.
    member _.Get(load: unit -> Workspace list) =
        match team with
        | Some t -> t
        | None ->
            let t = load ()
            team <- Some t
            t

    /// Forgets the team (after a commit that saved a workspace).
    member _.Invalidate() = team <- None

/// Where commands run: a connection, inside a write its transaction (null outside one), the prepared commands it
/// keeps and the team it caches (None: a command for each call; the team read every time).
type Session =
    { Conn: DbConnection
      Tx: DbTransaction
      Dialect: Schema.Dialect
      Prepared: Statements option
      Team: TeamCache option }

/// Runs `f` on a command for `sql` with these parameters (a kept one, or a new one disposed afterwards).
let private withCommand (s: Session) (sql: string) (ps: (string * obj) list) (f: DbCommand -> 'a) : 'a =
    let kept, cmd =
        match s.Prepared with
        | Some p -> true, p.For(s.Conn, sql)
        | None ->
            let c = s.Conn.CreateCommand()
            c.CommandText <- sql
            false, c

    try
        cmd.Transaction <- s.Tx
        cmd.Parameters.Clear()

        for (name, value) in ps do
            let p = cmd.CreateParameter()
            p.ParameterName <- name
            p.Value <- (if isNull value then box DBNull.Value else value)
            cmd.Parameters.Add p |> ignore

        f cmd
    finally
        if not kept then cmd.Dispose()

let exec (s: Session) (sql: string) (ps: (string * obj) list) : int =
    withCommand s sql ps (fun cmd -> cmd.ExecuteNonQuery())

let query (s: Session) (sql: string) (ps: (string * obj) list) (read: DbDataReader -> 'a) : 'a list =
    withCommand s sql ps (fun cmd ->
        use r = cmd.ExecuteReader()
        let acc = ResizeArray()

        while r.Read() do
            acc.Add(read r)

        List.ofSeq acc)

let scalar (s: Session) (sql: string) (ps: (string * obj) list) : obj =
    withCommand s sql ps (fun cmd -> cmd.ExecuteScalar())

/// The one transaction helper: `f` runs inside a transaction on `conn`, which commits when `f` returns. When `f`
/// throws, the transaction is disposed uncommitted — which rolls it back — and the exception goes on.
let transact (conn: DbConnection) (f: DbTransaction -> 'a) : 'a =
    use tx = conn.BeginTransaction()
    let v = f tx
    tx.Commit()
    v

// ---------------------------------------------------------------- codecs (ids as text, instants as UTC ticks)

let ticks (t: DateTimeOffset) = box t.UtcTicks

let optTicks (t: DateTimeOffset option) =
    match t with
    | Some v -> box v.UtcTicks
    | None -> null

let optText (s: string option) =
    match s with
    | Some v -> box v
    | None -> null

let inline idText (id: ^T) = box ((^T: (member Text: string) id))

let inline optId (id: ^T option) =
    match id with
    | Some v -> idText v
    | None -> null

let ofTicks (v: int64) = DateTimeOffset(v, TimeSpan.Zero)
let private text (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetString i)
let private instant (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(ofTicks (r.GetInt64 i))
let private guid (r: DbDataReader) (i: int) = Guid.Parse(r.GetString i)
let private optGuid (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(guid r i)
let private optInt (r: DbDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetInt32 i)

/// A column value this platform never writes: the database was changed by hand or by another program.
let private corrupt (column: string) (value: string) : 'a =
    raise (InvalidOperationException($"the database holds {column} '{value}', which this molecule-platform does not know"))

let private status (r: DbDataReader) (i: int) =
    let s = r.GetString i
    Status.tryParse s |> Option.defaultWith (fun () -> corrupt "workspace status" s)

let private mode (r: DbDataReader) (i: int) =
    let s = r.GetString i
    DeliveryMode.tryParse s |> Option.defaultWith (fun () -> corrupt "delivery mode" s)

let private scope (r: DbDataReader) (i: int) =
    let s = r.GetString i
    MemoryScope.tryParse s |> Option.defaultWith (fun () -> corrupt "memory scope" s)

// ---------------------------------------------------------------- rows

let workspaceColumns =
    "id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at"

/// A workspace row; its sealed inbound secret opened by `openSecret` (id text, stored value).
let readWorkspace (openSecret: string -> string -> string option) (r: DbDataReader) : Workspace =
    let id = r.GetString 0

    { Id = WorkspaceId(Guid.Parse id)
      Name = r.GetString 1
      Role = text r 2
      Tier = r.GetInt32 3
      Status = status r 4
      AgentCard = text r 5
      Url = text r 6
      ParentId = optGuid r 7 |> Option.map WorkspaceId
      DeliveryMode = mode r 8
      Runtime = r.GetString 9
      LastHeartbeatAt = instant r 10
      LastErrorRate = r.GetDouble 11
      ActiveTasks = r.GetInt32 12
      UptimeSeconds = r.GetInt32 13
      CurrentTask = r.GetString 14
      MaxConcurrentTasks = r.GetInt32 15
      InboundSecret = text r 16 |> Option.bind (openSecret id)
      LastOutboundAt = instant r 17
      CreatedAt = ofTicks (r.GetInt64 18)
      UpdatedAt = ofTicks (r.GetInt64 19) }

let tokenColumns = "id,workspace_id,token_hash,prefix,created_at,last_used_at,revoked_at"

let readToken (r: DbDataReader) : Token =
    { Id = TokenId(guid r 0)
      WorkspaceId = WorkspaceId(guid r 1)
      Hash = r.GetFieldValue<byte[]> 2
      Prefix = r.GetString 3
      CreatedAt = ofTicks (r.GetInt64 4)
      LastUsedAt = instant r 5
      RevokedAt = instant r 6 }

let activityColumns =
    "seq,id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

/// The same columns without the three JSON bodies (read as NULL).
let slimActivityColumns =
    "seq,id,workspace_id,activity_type,source_id,target_id,method,summary,NULL,NULL,NULL,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

let readActivity (r: DbDataReader) : ActivityRow =
    { Seq = r.GetInt64 0
      Id = ActivityId(guid r 1)
      WorkspaceId = WorkspaceId(guid r 2)
      ActivityType = r.GetString 3
      SourceId = optGuid r 4 |> Option.map WorkspaceId
      TargetId = optGuid r 5 |> Option.map WorkspaceId
      Method = text r 6
      Summary = text r 7
      RequestBody = text r 8
      ResponseBody = text r 9
      ToolTrace = text r 10
      DurationMs = optInt r 11
      Status = r.GetString 12
      ErrorDetail = text r 13
      CreatedAt = ofTicks (r.GetInt64 14)
      IdempotencyKey = text r 15
      MessageId = text r 16 }

let memoryColumns = "id,workspace_id,content,scope,namespace,created_at"

let readMemory (r: DbDataReader) : Memory =
    { Id = MemoryId(guid r 0)
      WorkspaceId = WorkspaceId(guid r 1)
      Content = r.GetString 2
      Scope = scope r 3
      Namespace = r.GetString 4
      CreatedAt = ofTicks (r.GetInt64 5) }

let requestColumns =
    "id,kind,requester_type,requester_id,recipient_type,recipient_id,title,detail,status,responder_type,responder_id,priority,source,expires_at,created_at,updated_at,responded_at"

let private party (r: DbDataReader) (i: int) : Requests.Party =
    let typ = r.GetString i
    Requests.Party.ofColumns typ (text r (i + 1)) |> Option.defaultWith (fun () -> corrupt "request party" typ)

let private parsed (column: string) (parse: string -> 'a option) (r: DbDataReader) (i: int) : 'a =
    let s = r.GetString i
    parse s |> Option.defaultWith (fun () -> corrupt column s)

let readRequest (r: DbDataReader) : Requests.Request =
    { Id = RequestId(guid r 0)
      Kind = parsed "request kind" Requests.Kind.tryParse r 1
      Requester = party r 2
      Recipient = party r 4
      Title = r.GetString 6
      Detail = text r 7
      Status = parsed "request status" Requests.RequestStatus.tryParse r 8
      Responder = (if r.IsDBNull 9 then None else Some(party r 9))
      Priority = r.GetString 11
      Source = parsed "request source" Requests.Source.tryParse r 12
      ExpiresAt = instant r 13
      CreatedAt = ofTicks (r.GetInt64 14)
      UpdatedAt = ofTicks (r.GetInt64 15)
      RespondedAt = instant r 16 }

let requestMessageColumns = "id,request_id,author_type,author_id,body,created_at"

let readRequestMessage (r: DbDataReader) : Requests.Message =
    { Id = RequestMessageId(guid r 0)
      RequestId = RequestId(guid r 1)
      Author = party r 2
      Body = r.GetString 4
      CreatedAt = ofTicks (r.GetInt64 5) }

let approvalColumns = "id,workspace_id,task_id,action,reason,context,status,decided_by,decided_at,created_at"

let readApproval (r: DbDataReader) : Approvals.Approval =
    { Id = ApprovalId(guid r 0)
      WorkspaceId = WorkspaceId(guid r 1)
      TaskId = text r 2
      Action = r.GetString 3
      Reason = text r 4
      Context = text r 5
      Status = parsed "approval status" Approvals.ApprovalStatus.tryParse r 6
      DecidedBy = text r 7
      DecidedAt = instant r 8
      CreatedAt = ofTicks (r.GetInt64 9) }

// ---------------------------------------------------------------- activity queries

/// `@p0, @p1, …` for a list of values, with their parameters.
let private inList (prefix: string) (values: obj list) : string * (string * obj) list =
    let names = values |> List.mapi (fun i _ -> $"@{prefix}{i}")
    String.Join(",", names), List.zip names values

/// The WHERE clause and parameters of GET /workspaces/:id/activity: Activity.select's filters, stated in SQL.
let private pageFilter (ws: WorkspaceId) (q: Activity.Query) (source: Activity.SourceFilter option) (cursor: ActivityRow option) (now: DateTimeOffset) =
    [ Some("workspace_id = @ws", [ "@ws", idText ws ])
      q.Type |> Option.map (fun t -> "activity_type = @type", [ "@type", box t ])
      source
      |> Option.map (fun s ->
          match s with
          | Activity.Canvas -> "source_id IS NULL", []
          | Activity.Agent -> "source_id IS NOT NULL", [])
      q.PeerId |> Option.map (fun p -> "(source_id = @peer OR target_id = @peer)", [ "@peer", idText p ])
      q.SinceSecs
      |> Option.map (fun secs -> "created_at >= @lower", [ "@lower", ticks (Activity.ago now (TimeSpan.FromSeconds(float secs))) ])
      q.BeforeTs |> Option.map (fun b -> "created_at < @before", [ "@before", ticks b ])
      cursor
      |> Option.map (fun c ->
          "created_at >= @cts AND (created_at > @cts OR seq > @cseq)", [ "@cts", ticks c.CreatedAt; "@cseq", box c.Seq ]) ]
    |> List.choose id
    |> fun parts -> String.Join(" AND ", parts |> List.map fst), parts |> List.collect snd

/// The WHERE clause and parameters of a RowQuery.
let private rowFilter (q: RowQuery) =
    let scope =
        match q.Scope with
        | LogOf ws -> Some("workspace_id = @ws", [ "@ws", idText ws ])
        | Involving ws -> Some("(workspace_id = @ws OR source_id = @ws OR target_id = @ws)", [ "@ws", idText ws ])
        | AllLogs -> None

    let types =
        match q.Types with
        | [] -> None
        | ts ->
            let names, ps = inList "t" (ts |> List.map box)
            Some($"activity_type IN ({names})", ps)

    let after = q.AfterSeq |> Option.map (fun s -> "seq > @after", [ "@after", box s ])

    match List.choose id [ scope; types; after ] with
    | [] -> "1 = 1", []
    | parts -> String.Join(" AND ", parts |> List.map fst), parts |> List.collect snd

// ---------------------------------------------------------------- the session

/// A transaction holding one log's lock found another log's taken (Schema.LogLock): waiting there could deadlock
/// with a transaction appending to the two logs the other way round, so the engine rolls it back and runs it again.
exception LogContended of WorkspaceId

/// The store's reads and writes on one session. Inside a write it also collects what the transaction announces
/// and what runs after it commits (the engine runs them).
/// The version in `schema_version` (0: none).
let private schemaVersion (s: Session) : int =
    match scalar s "SELECT MAX(version) FROM schema_version" [] with
    | :? int64 as n -> int n
    | :? int32 as n -> n
    | _ -> 0

type SqlSession(s: Session, secrets: SecretBox) =
    let announced = ResizeArray<PlatformEvent>()
    let afterCommit = ResizeArray<unit -> unit>()

    let openSecret (id: string) (stored: string) = secrets.Open(id, stored)
    let workspaces (where: string) ps = query s $"SELECT {workspaceColumns} FROM workspaces {where}" ps (readWorkspace openSecret)
    /// This transaction saved a workspace: its reads see its own writes, never the cache (which it never fills).
    let mutable savedWorkspace = false

    /// The team as this session first read it, without an engine cache (read once per transaction, not per use).
    let mutable read: Workspace list option = None

    let team () =
        let load () = workspaces "ORDER BY created_at, id" []

        match s.Team, read with
        | Some cache, _ when not savedWorkspace -> cache.Get load
        | None, Some t when not savedWorkspace -> t
        | _ ->
            let t = load ()
            if not savedWorkspace then read <- Some t
            t

    let rowById (id: ActivityId) =
        query s $"SELECT {activityColumns} FROM activity_logs WHERE id = @id" [ "@id", idText id ] readActivity
        |> List.tryHead

    let activityWhere (columns: string) (where: string) ps (order: string) (limit: int option) =
        let limitText =
            match limit with
            | Some n -> " LIMIT " + n.ToString(Globalization.CultureInfo.InvariantCulture)
            | None -> ""

        query s $"SELECT {columns} FROM activity_logs WHERE {where} ORDER BY {order}{limitText}" ps readActivity

    let page (ws: WorkspaceId) (q: Activity.Query) (now: DateTimeOffset) =
        let cursor =
            match q.SinceId with
            | None -> Ok None
            | Some t ->
                match Validation.parseGuid t |> Option.map ActivityId |> Option.bind rowById with
                | Some c when c.WorkspaceId = ws -> Ok(Some c)
                | _ -> Error(Wire.errorReply 410 Activity.cursorGone)

        match cursor, q.Source with
        | Error e, _
        | Ok _, Error e -> Error e
        | Ok cursor, Ok source ->
            let where, ps = pageFilter ws q source cursor now
            let order = if cursor.IsSome then "created_at, seq" else "created_at DESC, seq DESC"
            Ok(activityWhere activityColumns where ps order (Some q.Limit))

    let rows (q: RowQuery) =
        let where, ps = rowFilter q
        let columns = if q.Bodies then activityColumns else slimActivityColumns

        match q.Newest with
        | Some n -> activityWhere columns where ps "created_at DESC, seq DESC" (Some n) |> List.rev
        | None -> activityWhere columns where ps "created_at, seq" None

    let hydrate (slim: ActivityRow list) =
        match slim with
        | [] -> []
        | _ ->
            let full = Dictionary<int64, ActivityRow>()

            for chunk in List.chunkBySize 500 slim do
                let names, ps = inList "s" (chunk |> List.map (fun r -> box r.Seq))

                for r in query s $"SELECT {activityColumns} FROM activity_logs WHERE seq IN ({names})" ps readActivity do
                    full[r.Seq] <- r

            slim
            |> List.map (fun r ->
                match full.TryGetValue r.Seq with
                | true, f ->
                    { r with
                        RequestBody = f.RequestBody
                        ResponseBody = f.ResponseBody
                        ToolTrace = f.ToolTrace }
                | _ -> r)

    let memories (sel: Memories.Selection) =
        let where, ps =
            match sel with
            | Memories.Own id -> "workspace_id = @ws", [ "@ws", idText id ]
            | Memories.OwnLocal id -> "workspace_id = @ws AND scope = 'LOCAL'", [ "@ws", idText id ]
            | Memories.TeamOf [] -> "1 = 0", []
            | Memories.TeamOf ids ->
                let names, ps = inList "w" (ids |> List.map idText)
                $"scope = 'TEAM' AND workspace_id IN ({names})", ps
            | Memories.AllGlobal -> "scope = 'GLOBAL'", []

        query s $"SELECT {memoryColumns} FROM agent_memories WHERE {where} ORDER BY created_at" ps readMemory

    /// The logs this transaction has locked (engines with a LogLock).
    let lockedLogs = HashSet<WorkspaceId>()

    /// Takes the log's lock for the rest of the transaction: waiting for the first, trying the others.
    let lockLog (ws: WorkspaceId) =
        match s.Dialect.LogLock with
        | Some l when lockedLogs.Add ws ->
            if lockedLogs.Count = 1 then
                exec s l.Wait [ "@ws", idText ws ] |> ignore
            elif not (Convert.ToBoolean(scalar s l.Try [ "@ws", idText ws ])) then
                raise (LogContended ws)
        | _ -> ()

    let append (row: ActivityRow) =
        lockLog row.WorkspaceId

        let earlier =
            row.MessageId
            |> Option.bind (fun m ->
                activityWhere activityColumns "workspace_id = @ws AND message_id = @mid" [ "@ws", idText row.WorkspaceId; "@mid", box m ] "seq" (Some 1)
                |> List.tryHead)

        match earlier with
        | Some existing -> Repeated existing
        | None ->
            let last =
                match scalar s "SELECT created_at FROM activity_logs WHERE workspace_id = @ws ORDER BY created_at DESC, seq DESC LIMIT 1" [ "@ws", idText row.WorkspaceId ] with
                | :? int64 as t -> Some(ofTicks t)
                | _ -> None

            let r = Activity.admit last row

            let seq =
                scalar
                    s
                    """INSERT INTO activity_logs (id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key,message_id)
                       VALUES (@id,@ws,@t,@src,@tgt,@m,@s,@rq,@rs,@tt,@d,@st,@e,@ca,@k,@mid) RETURNING seq"""
                    [ "@id", idText r.Id
                      "@ws", idText r.WorkspaceId
                      "@t", box r.ActivityType
                      "@src", optId r.SourceId
                      "@tgt", optId r.TargetId
                      "@m", optText r.Method
                      "@s", optText r.Summary
                      "@rq", optText r.RequestBody
                      "@rs", optText r.ResponseBody
                      "@tt", optText r.ToolTrace
                      "@d", (match r.DurationMs with Some d -> box d | None -> null)
                      "@st", box r.Status
                      "@e", optText r.ErrorDetail
                      "@ca", ticks r.CreatedAt
                      "@k", optText r.IdempotencyKey
                      "@mid", optText r.MessageId ]

            Added { r with Seq = Convert.ToInt64 seq }

    let saveWorkspace (w: Workspace) =
        exec
            s
            """INSERT INTO workspaces (id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at)
               VALUES (@id,@name,@role,@tier,@status,@card,@url,@parent,@dm,@rt,@hb,@er,@at,@up,@ct,@mct,@sec,@out,@ca,@ua)
               ON CONFLICT(id) DO UPDATE SET name=excluded.name,role=excluded.role,tier=excluded.tier,status=excluded.status,
               agent_card=excluded.agent_card,url=excluded.url,parent_id=excluded.parent_id,delivery_mode=excluded.delivery_mode,
               runtime=excluded.runtime,last_heartbeat_at=excluded.last_heartbeat_at,last_error_rate=excluded.last_error_rate,
               active_tasks=excluded.active_tasks,uptime_seconds=excluded.uptime_seconds,current_task=excluded.current_task,
               max_concurrent_tasks=excluded.max_concurrent_tasks,platform_inbound_secret=excluded.platform_inbound_secret,
               last_outbound_at=excluded.last_outbound_at,updated_at=excluded.updated_at"""
            [ "@id", idText w.Id
              "@name", box w.Name
              "@role", optText w.Role
              "@tier", box w.Tier
              "@status", box (Status.text w.Status)
              "@card", optText w.AgentCard
              "@url", optText w.Url
              "@parent", optId w.ParentId
              "@dm", box (DeliveryMode.text w.DeliveryMode)
              "@rt", box w.Runtime
              "@hb", optTicks w.LastHeartbeatAt
              "@er", box w.LastErrorRate
              "@at", box w.ActiveTasks
              "@up", box w.UptimeSeconds
              "@ct", box w.CurrentTask
              "@mct", box w.MaxConcurrentTasks
              "@sec", (w.InboundSecret |> Option.map (fun x -> secrets.Seal(w.Id.Text, x)) |> optText)
              "@out", optTicks w.LastOutboundAt
              "@ca", ticks w.CreatedAt
              "@ua", ticks w.UpdatedAt ]
        |> ignore

    let saveToken (t: Token) =
        exec
            s
            """INSERT INTO workspace_auth_tokens (id,workspace_id,token_hash,prefix,created_at,last_used_at,revoked_at)
               VALUES (@id,@ws,@h,@p,@ca,@lu,@rv)
               ON CONFLICT(id) DO UPDATE SET last_used_at=excluded.last_used_at, revoked_at=excluded.revoked_at"""
            [ "@id", idText t.Id
              "@ws", idText t.WorkspaceId
              "@h", box t.Hash
              "@p", box t.Prefix
              "@ca", ticks t.CreatedAt
              "@lu", optTicks t.LastUsedAt
              "@rv", optTicks t.RevokedAt ]
        |> ignore

    let ack (ws: WorkspaceId) (acked: int64) (at: DateTimeOffset) =
        let greatest = s.Dialect.Greatest "inbox_delivery_state.last_acked_seq" "excluded.last_acked_seq"

        scalar
            s
            $"""INSERT INTO inbox_delivery_state (workspace_id,last_acked_seq,updated_at) VALUES (@ws,@n,@t)
                ON CONFLICT(workspace_id) DO UPDATE SET last_acked_seq={greatest}, updated_at=excluded.updated_at
                RETURNING last_acked_seq"""
            [ "@ws", idText ws; "@n", box acked; "@t", ticks at ]
        |> Convert.ToInt64

    let prune (c: Inbox.Cutoffs) =
        exec
            s
            """DELETE FROM activity_logs WHERE created_at < @hard OR (created_at < @soft AND seq <= COALESCE(
                 (SELECT d.last_acked_seq FROM inbox_delivery_state d WHERE d.workspace_id = activity_logs.workspace_id), 0))"""
            [ "@hard", ticks c.Hard; "@soft", ticks c.Soft ]

    let file (ws: WorkspaceId) (kind: FileKind) (key: string) =
        query
            s
            "SELECT file_name,mime_type,size,created_at,content FROM stored_files WHERE workspace_id = @ws AND kind = @k AND file_key = @f"
            [ "@ws", idText ws; "@k", box (FileKind.text kind); "@f", box key ]
            (fun r ->
                { WorkspaceId = ws
                  Kind = kind
                  Key = key
                  FileName = r.GetString 0
                  MimeType = r.GetString 1
                  Size = r.GetInt64 2
                  CreatedAt = ofTicks (r.GetInt64 3) },
                r.GetFieldValue<byte[]> 4)
        |> List.tryHead

    let putFile (f: StoredFile) (content: byte[]) =
        exec
            s
            """INSERT INTO stored_files (workspace_id,kind,file_key,file_name,mime_type,size,content,created_at)
               VALUES (@ws,@k,@f,@n,@m,@sz,@c,@ca) ON CONFLICT(workspace_id,kind,file_key) DO NOTHING"""
            [ "@ws", idText f.WorkspaceId
              "@k", box (FileKind.text f.Kind)
              "@f", box f.Key
              "@n", box f.FileName
              "@m", box f.MimeType
              "@sz", box f.Size
              "@c", box content
              "@ca", ticks f.CreatedAt ]
        |> ignore

    let abilities (ws: WorkspaceId) =
        query
            s
            "SELECT broadcast_enabled,talk_to_user_enabled FROM workspace_abilities WHERE workspace_id = @ws"
            [ "@ws", idText ws ]
            (fun r ->
                ({ BroadcastEnabled = Convert.ToInt64(r.GetValue 0) <> 0L
                   TalkToUserEnabled = Convert.ToInt64(r.GetValue 1) <> 0L }
                : Team.Abilities))
        |> List.tryHead
        |> Option.defaultValue Team.defaults

    let setAbilities (ws: WorkspaceId) (a: Team.Abilities) (at: DateTimeOffset) =
        exec
            s
            """INSERT INTO workspace_abilities (workspace_id,broadcast_enabled,talk_to_user_enabled,updated_at) VALUES (@ws,@b,@t,@ua)
               ON CONFLICT(workspace_id) DO UPDATE SET broadcast_enabled=excluded.broadcast_enabled,
               talk_to_user_enabled=excluded.talk_to_user_enabled, updated_at=excluded.updated_at"""
            [ "@ws", idText ws
              "@b", box (if a.BroadcastEnabled then 1L else 0L)
              "@t", box (if a.TalkToUserEnabled then 1L else 0L)
              "@ua", ticks at ]
        |> ignore

    let partyParams (prefix: string) (p: Requests.Party option) =
        [ $"@{prefix}t", (p |> Option.map (Requests.Party.typeText >> box) |> Option.toObj)
          $"@{prefix}i", (p |> Option.bind Requests.Party.idText |> optText) ]

    let saveRequest (q: Requests.Request) =
        exec
            s
            """INSERT INTO requests (id,kind,requester_type,requester_id,recipient_type,recipient_id,title,detail,status,responder_type,responder_id,priority,source,expires_at,created_at,updated_at,responded_at)
               VALUES (@id,@k,@qt,@qi,@ct,@ci,@ti,@d,@st,@rt,@ri,@p,@src,@ex,@ca,@ua,@ra)
               ON CONFLICT(id) DO UPDATE SET status=excluded.status, responder_type=excluded.responder_type,
               responder_id=excluded.responder_id, updated_at=excluded.updated_at, responded_at=excluded.responded_at"""
            ([ "@id", idText q.Id
               "@k", box (Requests.Kind.text q.Kind)
               "@ti", box q.Title
               "@d", optText q.Detail
               "@st", box (Requests.RequestStatus.text q.Status)
               "@p", box q.Priority
               "@src", box (Requests.Source.text q.Source)
               "@ex", optTicks q.ExpiresAt
               "@ca", ticks q.CreatedAt
               "@ua", ticks q.UpdatedAt
               "@ra", optTicks q.RespondedAt ]
             @ partyParams "q" (Some q.Requester)
             @ partyParams "c" (Some q.Recipient)
             @ partyParams "r" q.Responder)
        |> ignore

    let requests (scope: RequestScope) =
        let where, ps =
            match scope with
            | RaisedBy ws -> "requester_type = 'agent' AND requester_id = @ws", [ "@ws", idText ws ]
            | AddressedTo ws -> "recipient_type = 'agent' AND recipient_id = @ws", [ "@ws", idText ws ]
            | EveryRequest -> "1 = 1", []

        query s $"SELECT {requestColumns} FROM requests WHERE {where} ORDER BY created_at, id" ps readRequest

    let saveApproval (a: Approvals.Approval) =
        exec
            s
            """INSERT INTO approvals (id,workspace_id,task_id,action,reason,context,status,decided_by,decided_at,created_at)
               VALUES (@id,@ws,@t,@a,@r,@c,@st,@by,@at,@ca)
               ON CONFLICT(id) DO UPDATE SET status=excluded.status, decided_by=excluded.decided_by, decided_at=excluded.decided_at"""
            [ "@id", idText a.Id
              "@ws", idText a.WorkspaceId
              "@t", optText a.TaskId
              "@a", box a.Action
              "@r", optText a.Reason
              "@c", optText a.Context
              "@st", box (Approvals.ApprovalStatus.text a.Status)
              "@by", optText a.DecidedBy
              "@at", optTicks a.DecidedAt
              "@ca", ticks a.CreatedAt ]
        |> ignore

    /// Whether the transaction saved a workspace (the engine then drops its cached team once it has committed).
    member _.SavedWorkspace = savedWorkspace

    /// What the transaction announced, in order (the engine publishes them after the commit).
    member _.Announced: PlatformEvent list = List.ofSeq announced

    /// What runs after the commit, in order.
    member _.AfterCommitActions: (unit -> unit) list = List.ofSeq afterCommit

    interface IWriter with
        member _.Workspace id =
            match s.Team with
            | Some _ when not savedWorkspace -> team () |> List.tryFind (fun w -> w.Id = id)
            | _ -> workspaces "WHERE id = @id" [ "@id", idText id ] |> List.tryHead

        member _.Workspaces() = team ()

        member _.TokenByHash hash =
            query s $"SELECT {tokenColumns} FROM workspace_auth_tokens WHERE token_hash = @h" [ "@h", box hash ] readToken
            |> List.tryHead

        member _.TokensOf ws =
            query s $"SELECT {tokenColumns} FROM workspace_auth_tokens WHERE workspace_id = @ws ORDER BY created_at, id" [ "@ws", idText ws ] readToken

        member _.AckFloor ws =
            match scalar s "SELECT last_acked_seq FROM inbox_delivery_state WHERE workspace_id = @ws" [ "@ws", idText ws ] with
            | :? int64 as n -> Some n
            | _ -> None

        member _.Page(ws, q, now) = page ws q now
        member _.Rows q = rows q
        member _.Hydrate slim = hydrate slim

        member _.TrackingRow(ws, key) =
            activityWhere
                activityColumns
                "workspace_id = @ws AND activity_type = 'delegation' AND method = 'delegate' AND idempotency_key = @k"
                [ "@ws", idText ws; "@k", box key ]
                "created_at, seq"
                (Some 1)
            |> List.tryHead

        member _.Memories sel = memories sel
        member _.Abilities ws = abilities ws
        member _.File(ws, kind, key) = file ws kind key

        member _.Request id =
            query s $"SELECT {requestColumns} FROM requests WHERE id = @id" [ "@id", idText id ] readRequest |> List.tryHead

        member _.Requests scope = requests scope

        member _.RequestMessages id =
            query
                s
                $"SELECT {requestMessageColumns} FROM request_messages WHERE request_id = @id ORDER BY created_at, id"
                [ "@id", idText id ]
                readRequestMessage

        member _.Approval id =
            query s $"SELECT {approvalColumns} FROM approvals WHERE id = @id" [ "@id", idText id ] readApproval |> List.tryHead

        member _.Approvals ws =
            query
                s
                $"SELECT {approvalColumns} FROM approvals WHERE workspace_id = @ws ORDER BY created_at DESC, id DESC LIMIT {Approvals.ListSize}"
                [ "@ws", idText ws ]
                readApproval

        member _.SaveRequest q = saveRequest q

        member _.AddRequestMessage m =
            exec
                s
                $"INSERT INTO request_messages ({requestMessageColumns}) VALUES (@id,@rq,@at,@ai,@b,@ca)"
                [ "@id", idText m.Id
                  "@rq", idText m.RequestId
                  "@at", box (Requests.Party.typeText m.Author)
                  "@ai", optText (Requests.Party.idText m.Author)
                  "@b", box m.Body
                  "@ca", ticks m.CreatedAt ]
            |> ignore

        member _.SaveApproval a = saveApproval a
        member _.StoredSchemaVersion() = schemaVersion s

        member _.SaveWorkspace w =
            savedWorkspace <- true
            saveWorkspace w
        member _.SaveToken t = saveToken t

        member _.RevokeTokens(ws, at) =
            exec s "UPDATE workspace_auth_tokens SET revoked_at = @t WHERE workspace_id = @ws AND revoked_at IS NULL" [ "@t", ticks at; "@ws", idText ws ]
            |> ignore

        member _.Append row = append row

        member _.SetRowStatus(id, st) =
            exec s "UPDATE activity_logs SET status = @s WHERE id = @id" [ "@s", box st; "@id", idText id ] |> ignore

        member _.DeleteRow id = exec s "DELETE FROM activity_logs WHERE id = @id" [ "@id", idText id ] |> ignore
        member _.Ack(ws, acked, at) = ack ws acked at
        member _.Prune c = prune c

        member _.AddMemory m =
            exec
                s
                "INSERT INTO agent_memories (id,workspace_id,content,scope,namespace,created_at) VALUES (@id,@ws,@c,@s,@n,@ca)"
                [ "@id", idText m.Id
                  "@ws", idText m.WorkspaceId
                  "@c", box m.Content
                  "@s", box (MemoryScope.text m.Scope)
                  "@n", box m.Namespace
                  "@ca", ticks m.CreatedAt ]
            |> ignore

        member _.SetAbilities(ws, a, at) = setAbilities ws a at
        member _.PutFile(f, content) = putFile f content

        member _.DeleteFile(ws, kind, key) =
            let deleted =
                exec
                    s
                    "DELETE FROM stored_files WHERE workspace_id = @ws AND kind = @k AND file_key = @f"
                    [ "@ws", idText ws; "@k", box (FileKind.text kind); "@f", box key ]

            deleted > 0

        member _.IssueTicket t =
            // issued now: expired tickets go first
            exec s "DELETE FROM stream_tickets WHERE expires_at <= @now" [ "@now", ticks (t.Expires - Tickets.lifetime) ] |> ignore
            exec s "INSERT INTO stream_tickets (ticket_hash,expires_at) VALUES (@h,@e)" [ "@h", box t.Hash; "@e", ticks t.Expires ] |> ignore

        member _.RedeemTicket(hash, now) =
            exec s "DELETE FROM stream_tickets WHERE expires_at <= @now" [ "@now", ticks now ] |> ignore
            exec s "DELETE FROM stream_tickets WHERE ticket_hash = @h AND expires_at > @now" [ "@h", box hash; "@now", ticks now ] > 0

        member _.Announce e = announced.Add e
        member _.AfterCommit f = afterCommit.Add f

// ---------------------------------------------------------------- migrations

/// The version a database is at (0: empty), creating the version table when missing.
let storedVersion (s: Session) : int =
    exec s "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)" [] |> ignore
    schemaVersion s

let private sealSecrets (s: Session) (secrets: SecretBox) =
    let clear =
        query s "SELECT id, platform_inbound_secret FROM workspaces WHERE platform_inbound_secret IS NOT NULL" [] (fun r -> r.GetString 0, r.GetString 1)
        |> List.filter (fun (_, v) -> not (SecretBox.IsSealed v))

    for (id, secret) in clear do
        exec s "UPDATE workspaces SET platform_inbound_secret = @s WHERE id = @id" [ "@s", box (secrets.Seal(id, secret)); "@id", box id ]
        |> ignore

/// Brings the database to the latest schema: each pending migration in its own transaction with its version bump.
/// A database newer than this binary is refused (Schema.tooNew). Returns the version reached.
let migrate (conn: DbConnection) (dialect: Schema.Dialect) (secrets: SecretBox) : int =
    let stored = storedVersion { Conn = conn; Tx = null; Dialect = dialect; Prepared = None; Team = None }

    match Schema.pending stored with
    | Error message -> raise (InvalidOperationException message)
    | Ok pending ->
        for m in pending do
            transact conn (fun tx ->
                let s = { Conn = conn; Tx = tx; Dialect = dialect; Prepared = None; Team = None }

                for step in m.Steps do
                    match step with
                    | Schema.Sql template -> exec s (Schema.Dialect.render dialect template) [] |> ignore
                    | Schema.SealInboundSecrets -> sealSecrets s secrets

                exec s "DELETE FROM schema_version" [] |> ignore
                exec s "INSERT INTO schema_version (version) VALUES (@v)" [ "@v", box m.Version ] |> ignore)

        max stored Schema.latest
