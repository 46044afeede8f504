/// SQLite persistence (WAL, synchronous=FULL) with an in-memory copy of every table. All reads and writes go
/// through `Atomically`, which serialises them; every write is committed to SQLite before it returns, so an
/// acknowledged HTTP answer never refers to an unsaved row. A `Transaction` that rolls back also takes back its
/// in-memory writes, so the copy never holds what SQLite does not.
module Molecule.Platform.Store

open System
open System.Collections.Generic
open System.IO
open Microsoft.Data.Sqlite

[<Literal>]
let SchemaVersion = 1

let private schema =
    [ """CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"""
      """CREATE TABLE IF NOT EXISTS workspaces (
           id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT, tier INTEGER NOT NULL DEFAULT 1,
           status TEXT NOT NULL, agent_card TEXT, url TEXT, parent_id TEXT,
           delivery_mode TEXT NOT NULL DEFAULT 'push', runtime TEXT NOT NULL DEFAULT 'external',
           last_heartbeat_at INTEGER, last_error_rate REAL NOT NULL DEFAULT 0, active_tasks INTEGER NOT NULL DEFAULT 0,
           uptime_seconds INTEGER NOT NULL DEFAULT 0, current_task TEXT NOT NULL DEFAULT '',
           max_concurrent_tasks INTEGER NOT NULL DEFAULT 1, platform_inbound_secret TEXT, last_outbound_at INTEGER,
           created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)"""
      """CREATE TABLE IF NOT EXISTS workspace_auth_tokens (
           id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, prefix TEXT NOT NULL,
           created_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER)"""
      """CREATE TABLE IF NOT EXISTS activity_logs (
           seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL,
           activity_type TEXT NOT NULL, source_id TEXT, target_id TEXT, method TEXT, summary TEXT,
           request_body TEXT, response_body TEXT, tool_trace TEXT, duration_ms INTEGER, status TEXT NOT NULL DEFAULT 'ok',
           error_detail TEXT, created_at INTEGER NOT NULL, idempotency_key TEXT)"""
      """CREATE INDEX IF NOT EXISTS activity_ws ON activity_logs (workspace_id, created_at, seq)"""
      """CREATE TABLE IF NOT EXISTS agent_memories (
           id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, content TEXT NOT NULL, scope TEXT NOT NULL,
           namespace TEXT NOT NULL DEFAULT 'general', created_at INTEGER NOT NULL)""" ]

let private ticks (t: DateTimeOffset) = box t.UtcTicks
let private optTicks (t: DateTimeOffset option) = match t with Some v -> box v.UtcTicks | None -> box DBNull.Value
let private optText (s: string option) = match s with Some v -> box v | None -> box DBNull.Value
let private optGuid (g: Guid option) = match g with Some v -> box (v.ToString "D") | None -> box DBNull.Value
let private guid (g: Guid) = box (g.ToString "D")
let private ofTicks (v: int64) = DateTimeOffset(v, TimeSpan.Zero)

let private rdOptText (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetString i)
let private rdOptTicks (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(ofTicks (r.GetInt64 i))
let private rdOptGuid (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(Guid.Parse(r.GetString i))
let private rdOptInt (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetInt32 i)

type Store(dataDir: string) =
    let dbPath = Path.Combine(dataDir, "platform.db")

    /// Held for the store's lifetime: one platform process per data directory.
    let lockFile =
        Directory.CreateDirectory dataDir |> ignore

        try
            new FileStream(Path.Combine(dataDir, "platform.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)
        with :? IOException ->
            raise (InvalidOperationException($"data directory {dataDir} is in use by another platform process"))

    let conn =
        Directory.CreateDirectory dataDir |> ignore
        let c = new SqliteConnection($"Data Source={dbPath};Pooling=False")
        c.Open()
        c

    let exec (sql: string) (ps: (string * obj) list) =
        use cmd = conn.CreateCommand()
        cmd.CommandText <- sql

        for (n, v) in ps do
            cmd.Parameters.AddWithValue(n, v) |> ignore

        cmd.ExecuteNonQuery() |> ignore

    let scalar (sql: string) =
        use cmd = conn.CreateCommand()
        cmd.CommandText <- sql
        cmd.ExecuteScalar()

    let query (sql: string) (read: SqliteDataReader -> 'a) : 'a list =
        use cmd = conn.CreateCommand()
        cmd.CommandText <- sql
        use r = cmd.ExecuteReader()
        let acc = ResizeArray()

        while r.Read() do
            acc.Add(read r)

        List.ofSeq acc

    do
        exec "PRAGMA journal_mode=WAL" []
        exec "PRAGMA synchronous=FULL" []
        exec "PRAGMA busy_timeout=5000" []

        for s in schema do
            exec s []

        let v = scalar "SELECT MAX(version) FROM schema_version"

        match v with
        | :? int64 as n when n >= int64 SchemaVersion -> ()
        | _ ->
            // future migrations go here, keyed on the stored version
            exec "DELETE FROM schema_version" []
            exec "INSERT INTO schema_version (version) VALUES ($v)" [ "$v", box SchemaVersion ]

    let gate = obj ()

    let mutable workspaces: Map<Guid, Workspace> =
        query
            "SELECT id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at FROM workspaces"
            (fun r ->
                { Id = Guid.Parse(r.GetString 0)
                  Name = r.GetString 1
                  Role = rdOptText r 2
                  Tier = r.GetInt32 3
                  Status = r.GetString 4
                  AgentCard = rdOptText r 5
                  Url = rdOptText r 6
                  ParentId = rdOptGuid r 7
                  DeliveryMode = r.GetString 8
                  Runtime = r.GetString 9
                  LastHeartbeatAt = rdOptTicks r 10
                  LastErrorRate = r.GetDouble 11
                  ActiveTasks = r.GetInt32 12
                  UptimeSeconds = r.GetInt32 13
                  CurrentTask = r.GetString 14
                  MaxConcurrentTasks = r.GetInt32 15
                  InboundSecret = rdOptText r 16
                  LastOutboundAt = rdOptTicks r 17
                  CreatedAt = ofTicks (r.GetInt64 18)
                  UpdatedAt = ofTicks (r.GetInt64 19) }: Workspace)
        |> List.map (fun w -> w.Id, w)
        |> Map.ofList

    let tokens =
        ResizeArray(
            query
                "SELECT id,workspace_id,token_hash,prefix,created_at,last_used_at,revoked_at FROM workspace_auth_tokens ORDER BY created_at"
                (fun r ->
                    { Id = Guid.Parse(r.GetString 0)
                      WorkspaceId = Guid.Parse(r.GetString 1)
                      Hash = r.GetFieldValue<byte[]> 2
                      Prefix = r.GetString 3
                      CreatedAt = ofTicks (r.GetInt64 4)
                      LastUsedAt = rdOptTicks r 5
                      RevokedAt = rdOptTicks r 6 }: Token)
        )

    let activity = Dictionary<Guid, ResizeArray<ActivityRow>>()

    do
        for row in
            query
                "SELECT seq,id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key FROM activity_logs ORDER BY seq"
                (fun r ->
                    { Seq = r.GetInt64 0
                      Id = Guid.Parse(r.GetString 1)
                      WorkspaceId = Guid.Parse(r.GetString 2)
                      ActivityType = r.GetString 3
                      SourceId = rdOptGuid r 4
                      TargetId = rdOptGuid r 5
                      Method = rdOptText r 6
                      Summary = rdOptText r 7
                      RequestBody = rdOptText r 8
                      ResponseBody = rdOptText r 9
                      ToolTrace = rdOptText r 10
                      DurationMs = rdOptInt r 11
                      Status = r.GetString 12
                      ErrorDetail = rdOptText r 13
                      CreatedAt = ofTicks (r.GetInt64 14)
                      IdempotencyKey = rdOptText r 15 }: ActivityRow) do
            match activity.TryGetValue row.WorkspaceId with
            | true, l -> l.Add row
            | _ -> activity[row.WorkspaceId] <- ResizeArray [ row ]

    let memories =
        ResizeArray(
            query "SELECT id,workspace_id,content,scope,namespace,created_at FROM agent_memories ORDER BY created_at" (fun r ->
                { Id = Guid.Parse(r.GetString 0)
                  WorkspaceId = Guid.Parse(r.GetString 1)
                  Content = r.GetString 2
                  Scope = r.GetString 3
                  Namespace = r.GetString 4
                  CreatedAt = ofTicks (r.GetInt64 5) }: Memory)
        )

    /// Inside `Transaction`: how to take back the in-memory side of each write if the transaction rolls back.
    let mutable undo: ResizeArray<unit -> unit> option = None

    let onRollback (f: unit -> unit) =
        match undo with
        | Some l -> l.Add f
        | None -> ()

    let writeWorkspace (w: Workspace) =
        exec
            """INSERT INTO workspaces (id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at)
               VALUES ($id,$name,$role,$tier,$status,$card,$url,$parent,$dm,$rt,$hb,$er,$at,$up,$ct,$mct,$sec,$out,$ca,$ua)
               ON CONFLICT(id) DO UPDATE SET name=$name,role=$role,tier=$tier,status=$status,agent_card=$card,url=$url,parent_id=$parent,
               delivery_mode=$dm,runtime=$rt,last_heartbeat_at=$hb,last_error_rate=$er,active_tasks=$at,uptime_seconds=$up,current_task=$ct,
               max_concurrent_tasks=$mct,platform_inbound_secret=$sec,last_outbound_at=$out,updated_at=$ua"""
            [ "$id", guid w.Id
              "$name", box w.Name
              "$role", optText w.Role
              "$tier", box w.Tier
              "$status", box w.Status
              "$card", optText w.AgentCard
              "$url", optText w.Url
              "$parent", optGuid w.ParentId
              "$dm", box w.DeliveryMode
              "$rt", box w.Runtime
              "$hb", optTicks w.LastHeartbeatAt
              "$er", box w.LastErrorRate
              "$at", box w.ActiveTasks
              "$up", box w.UptimeSeconds
              "$ct", box w.CurrentTask
              "$mct", box w.MaxConcurrentTasks
              "$sec", optText w.InboundSecret
              "$out", optTicks w.LastOutboundAt
              "$ca", ticks w.CreatedAt
              "$ua", ticks w.UpdatedAt ]

        let before = workspaces
        onRollback (fun () -> workspaces <- before)
        workspaces <- workspaces.Add(w.Id, w)

    let writeToken (t: Token) =
        exec
            """INSERT INTO workspace_auth_tokens (id,workspace_id,token_hash,prefix,created_at,last_used_at,revoked_at)
               VALUES ($id,$ws,$h,$p,$ca,$lu,$rv)
               ON CONFLICT(id) DO UPDATE SET last_used_at=$lu, revoked_at=$rv"""
            [ "$id", guid t.Id
              "$ws", guid t.WorkspaceId
              "$h", box t.Hash
              "$p", box t.Prefix
              "$ca", ticks t.CreatedAt
              "$lu", optTicks t.LastUsedAt
              "$rv", optTicks t.RevokedAt ]

        match tokens.FindIndex(fun x -> x.Id = t.Id) with
        | -1 ->
            onRollback (fun () -> tokens.RemoveAll(fun x -> x.Id = t.Id) |> ignore)
            tokens.Add t
        | i ->
            let old = tokens[i]
            onRollback (fun () -> tokens[i] <- old)
            tokens[i] <- t

    let rowsOf (ws: Guid) =
        match activity.TryGetValue ws with
        | true, l -> l
        | _ ->
            let l = ResizeArray()
            activity[ws] <- l
            l

    let insertActivity (r: ActivityRow) : ActivityRow =
        // A workspace's log is ordered by (created_at, seq) and since_id pages on that order, so a row may never
        // sort before one inserted earlier (clock stepped back, or a time taken before another row's insert):
        // created_at is kept monotonic per workspace, which makes that order the insertion order (exactly-once).
        let r =
            let l = rowsOf r.WorkspaceId

            if l.Count > 0 && l[l.Count - 1].CreatedAt > r.CreatedAt then
                { r with CreatedAt = l[l.Count - 1].CreatedAt }
            else
                r

        exec
            """INSERT INTO activity_logs (id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key)
               VALUES ($id,$ws,$t,$src,$tgt,$m,$s,$rq,$rs,$tt,$d,$st,$e,$ca,$k)"""
            [ "$id", guid r.Id
              "$ws", guid r.WorkspaceId
              "$t", box r.ActivityType
              "$src", optGuid r.SourceId
              "$tgt", optGuid r.TargetId
              "$m", optText r.Method
              "$s", optText r.Summary
              "$rq", optText r.RequestBody
              "$rs", optText r.ResponseBody
              "$tt", optText r.ToolTrace
              "$d", (match r.DurationMs with Some d -> box d | None -> box DBNull.Value)
              "$st", box r.Status
              "$e", optText r.ErrorDetail
              "$ca", ticks r.CreatedAt
              "$k", optText r.IdempotencyKey ]

        let seq = scalar "SELECT last_insert_rowid()" :?> int64
        let row = { r with Seq = seq }
        onRollback (fun () -> (rowsOf r.WorkspaceId).RemoveAll(fun x -> x.Id = r.Id) |> ignore)
        (rowsOf r.WorkspaceId).Add row
        row

    let inTransaction (f: unit -> 'a) : 'a =
        exec "BEGIN IMMEDIATE" []
        let journal = ResizeArray<unit -> unit>()
        undo <- Some journal

        try
            try
                let v = f ()
                exec "COMMIT" []
                v
            with e ->
                (try exec "ROLLBACK" [] with _ -> ())
                // SQLite forgot the writes; so does the in-memory copy (newest first)
                for i in journal.Count - 1 .. -1 .. 0 do
                    journal[i] ()

                raise e
        finally
            undo <- None

    /// Runs `f` under the store lock (all reads and writes are serialised).
    member _.Atomically(f: unit -> 'a) : 'a = lock gate f

    /// Like Atomically, inside one SQLite transaction (several writes become durable together).
    member _.Transaction(f: unit -> 'a) : 'a = lock gate (fun () -> inTransaction f)

    member _.Workspaces = workspaces
    member _.Workspace(id: Guid) = workspaces.TryFind id
    member _.Tokens: Token seq = tokens :> _
    member _.TokensOf(ws: Guid) = tokens |> Seq.filter (fun t -> t.WorkspaceId = ws) |> List.ofSeq
    member _.Activity(ws: Guid) : ActivityRow seq = rowsOf ws :> _
    member _.Memories: Memory seq = memories :> _

    member _.SaveWorkspace(w: Workspace) = writeWorkspace w
    member _.SaveToken(t: Token) = writeToken t
    member _.InsertActivity(r: ActivityRow) = insertActivity r

    member _.UpdateActivityStatus(ws: Guid, id: Guid, status: string) =
        exec "UPDATE activity_logs SET status=$s WHERE id=$id" [ "$s", box status; "$id", guid id ]
        let l = rowsOf ws

        match l.FindIndex(fun r -> r.Id = id) with
        | -1 -> ()
        | i ->
            let old = l[i]
            onRollback (fun () -> match l.FindIndex(fun r -> r.Id = id) with -1 -> () | j -> l[j] <- old)
            l[i] <- { l[i] with Status = status }

    member _.DeleteActivity(ws: Guid, id: Guid) =
        exec "DELETE FROM activity_logs WHERE id=$id" [ "$id", guid id ]
        let l = rowsOf ws
        let before = List.ofSeq l

        onRollback (fun () ->
            l.Clear()
            l.AddRange before)

        l.RemoveAll(fun r -> r.Id = id) |> ignore

    member _.InsertMemory(m: Memory) =
        exec
            "INSERT INTO agent_memories (id,workspace_id,content,scope,namespace,created_at) VALUES ($id,$ws,$c,$s,$n,$ca)"
            [ "$id", guid m.Id
              "$ws", guid m.WorkspaceId
              "$c", box m.Content
              "$s", box m.Scope
              "$n", box m.Namespace
              "$ca", ticks m.CreatedAt ]

        onRollback (fun () -> memories.RemoveAll(fun x -> x.Id = m.Id) |> ignore)
        memories.Add m

    member _.DataDir = dataDir

    interface IDisposable with
        member _.Dispose() =
            lock gate (fun () ->
                (try exec "PRAGMA wal_checkpoint(TRUNCATE)" [] with _ -> ())
                conn.Dispose()
                lockFile.Dispose())
