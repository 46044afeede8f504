/// SQLite persistence (WAL, synchronous=FULL) with an in-memory copy of every table. All reads and writes go
/// through `Atomically`, which serialises them; every write is committed to SQLite before it returns, so an
/// acknowledged HTTP answer never refers to an unsaved row. A `Transaction` that rolls back also takes back its
/// in-memory writes, so the copy never holds what SQLite does not.
module Molecule.Platform.Store

open System
open System.Collections.Generic
open System.IO
open Microsoft.Data.Sqlite
open Molecule.Platform.Schema

[<Literal>]
let SchemaVersion = Schema.Version

/// A row as the in-memory index keeps it: without its JSON bodies (they stay in SQLite; see Store.Hydrate).
let private slim (r: ActivityRow) =
    { r with
        RequestBody = None
        ResponseBody = None
        ToolTrace = None }

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

        let stored =
            match scalar "SELECT MAX(version) FROM schema_version" with
            | :? int64 as n -> int n
            | _ -> 1 // a new database: the base schema above is version 1

        for (version, statements) in migrations do
            if stored < version then
                exec "BEGIN IMMEDIATE" []

                try
                    for st in statements do
                        exec st []

                    exec "DELETE FROM schema_version" []
                    exec "INSERT INTO schema_version (version) VALUES ($v)" [ "$v", box version ]
                    exec "COMMIT" []
                with e ->
                    (try exec "ROLLBACK" [] with _ -> ())
                    raise e

        if stored < 1 || isNull (scalar "SELECT MAX(version) FROM schema_version") then
            exec "INSERT INTO schema_version (version) VALUES ($v)" [ "$v", box SchemaVersion ]

    let gate = obj ()

    let mutable workspaces: Map<Guid, Workspace> =
        query $"SELECT {workspaceColumns} FROM workspaces" readWorkspace
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

    let activity = ActivityIndex()

    do
        let rows = query $"SELECT {slimActivityColumns} FROM activity_logs ORDER BY created_at, seq" readActivity


        for row in rows do
            activity.Add row

    let acks =
        let d = Dictionary<Guid, int64>()

        for (ws, n) in query "SELECT workspace_id,last_acked_seq FROM inbox_delivery_state" (fun r -> Guid.Parse(r.GetString 0), r.GetInt64 1) do
            d[ws] <- n

        d

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
        exec upsertWorkspaceSql (workspaceParams w)

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

    /// The rows with their JSON bodies read back from SQLite (the index keeps rows without them).
    let hydrate (rows: ActivityRow list) : ActivityRow list =
        match rows with
        | [] -> []
        | _ ->
            let seqs = String.Join(",", rows |> List.map (fun r -> string r.Seq))
            let bodies = Dictionary<int64, ActivityRow>()

            for full in query $"SELECT {activityColumns} FROM activity_logs WHERE seq IN ({seqs})" readActivity do
                bodies[full.Seq] <- full

            rows
            |> List.map (fun r ->
                match bodies.TryGetValue r.Seq with
                | true, full ->
                    { r with
                        RequestBody = full.RequestBody
                        ResponseBody = full.ResponseBody
                        ToolTrace = full.ToolTrace }
                | _ -> r)

    let insertActivity (r: ActivityRow) : ActivityRow =
        match r.MessageId |> Option.bind (fun m -> activity.FindByMessage(r.WorkspaceId, m)) with
        | Some existing -> (hydrate [ existing ]).Head // the same message again: no second row, no new seq (spec §6.1)
        | None ->
            let r = Activity.admit (activity.Last r.WorkspaceId) r

            exec insertActivitySql (activityParams r)

            let seq = scalar "SELECT last_insert_rowid()" :?> int64
            let row = { r with Seq = seq }
            onRollback (fun () -> activity.Remove row.Id)
            activity.Add(slim row)
            row

    /// Actions to run once the current transaction has committed (or at once outside a transaction).
    let mutable afterCommit: ResizeArray<unit -> unit> option = None

    let inTransaction (f: unit -> 'a) : 'a =
        exec "BEGIN IMMEDIATE" []
        let journal = ResizeArray<unit -> unit>()
        let pending = ResizeArray<unit -> unit>()
        undo <- Some journal
        afterCommit <- Some pending

        let v =
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
                afterCommit <- None

        for a in pending do
            a ()

        v

    /// Runs `f` under the store lock (all reads and writes are serialised).
    member _.Atomically(f: unit -> 'a) : 'a = lock gate f

    /// Like Atomically, inside one SQLite transaction (several writes become durable together).
    member _.Transaction(f: unit -> 'a) : 'a = lock gate (fun () -> inTransaction f)

    member _.Workspaces = workspaces
    member _.Workspace(id: Guid) = workspaces.TryFind id
    member _.Tokens: Token seq = tokens :> _
    member _.TokensOf(ws: Guid) = tokens |> Seq.filter (fun t -> t.WorkspaceId = ws) |> List.ofSeq
    /// A workspace's rows in (created_at, seq) order, WITHOUT their JSON bodies (request_body, response_body,
    /// tool_trace): the in-memory index keeps ~0.5 KB a row whatever the bodies weigh. Read under the lock; pass
    /// what is shown to `Hydrate`.
    member _.Activity(ws: Guid) : IReadOnlyList<ActivityRow> = activity.Rows ws

    /// A row by id, without its JSON bodies.
    member _.ActivityRow(id: Guid) : ActivityRow option = activity.Find id

    /// The rows with their JSON bodies (one SQLite read).
    member _.Hydrate(rows: ActivityRow list) : ActivityRow list = hydrate rows
    member _.Memories: Memory seq = memories :> _

    member _.SaveWorkspace(w: Workspace) = writeWorkspace w
    member _.SaveToken(t: Token) = writeToken t

    /// Inserts a row (Seq assigned here, created_at admitted by Activity.admit); a row whose (workspace,
    /// message id) is already logged is not inserted again: the stored row is returned instead.
    member _.InsertActivity(r: ActivityRow) : ActivityRow = insertActivity r

    /// Runs `f` after the current transaction commits (at once outside a transaction).
    member _.AfterCommit(f: unit -> unit) =
        lock gate (fun () ->
            match afterCommit with
            | Some l -> l.Add f
            | None -> f ())

    member _.UpdateActivityStatus(_ws: Guid, id: Guid, status: string) =
        exec "UPDATE activity_logs SET status=$s WHERE id=$id" [ "$s", box status; "$id", guid id ]

        match activity.Find id with
        | Some old ->
            onRollback (fun () -> activity.Replace old)
            activity.Replace { old with Status = status }
        | None -> ()

    member _.DeleteActivity(_ws: Guid, id: Guid) =
        exec "DELETE FROM activity_logs WHERE id=$id" [ "$id", guid id ]

        match activity.Find id with
        | Some old ->
            onRollback (fun () -> activity.Add old)
            activity.Remove id
        | None -> ()

    /// The stored ack floor of a workspace (None: it never acked).
    member _.AckFloor(ws: Guid) : int64 option =
        match acks.TryGetValue ws with
        | true, n -> Some n
        | _ -> None

    /// Records an ack: the floor becomes GREATEST(stored, acked) and is returned.
    member this.Ack(ws: Guid, acked: int64, now: DateTimeOffset) : int64 =
        let floor = Inbox.mergeAck (this.AckFloor ws) acked

        exec
            """INSERT INTO inbox_delivery_state (workspace_id,last_acked_seq,updated_at) VALUES ($ws,$n,$t)
               ON CONFLICT(workspace_id) DO UPDATE SET last_acked_seq=MAX(last_acked_seq,$n), updated_at=$t"""
            [ "$ws", guid ws; "$n", box floor; "$t", ticks now ]

        let before = this.AckFloor ws

        onRollback (fun () ->
            match before with
            | Some b -> acks[ws] <- b
            | None -> acks.Remove ws |> ignore)

        acks[ws] <- floor
        floor

    /// Deletes every activity row matching `prune` (one transaction); returns how many.
    member _.PruneActivity(prune: ActivityRow -> bool) : int =
        let victims = activity.Where prune

        if not victims.IsEmpty then
            exec "BEGIN IMMEDIATE" []

            try
                use cmd = conn.CreateCommand()
                cmd.CommandText <- "DELETE FROM activity_logs WHERE seq=$s"
                let p = cmd.Parameters.Add("$s", SqliteType.Integer)

                for v in victims do
                    p.Value <- v.Seq
                    cmd.ExecuteNonQuery() |> ignore

                exec "COMMIT" []
            with e ->
                (try exec "ROLLBACK" [] with _ -> ())
                raise e

            activity.RemoveAll(HashSet(victims |> List.map (fun v -> v.Id)))

        victims.Length

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
