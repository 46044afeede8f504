/// The store's SQL commands over ADO.NET, for any engine with a Schema.Dialect: a session (connection, transaction,
/// kept statements, cached team), the command helpers and the one transaction helper. The column codecs are in
/// SqlCodec, the activity filters in SqlFilter, the store's reads and writes in SqlStore, the migration runner in
/// SqlMigrate. An engine (SqliteStore, PostgresStore) supplies the connection, decides who waits for whom, and
/// publishes what a committed write announced.
module Molecule.Platform.Sql

open System
open System.Collections.Generic
open System.Data.Common
open System.Threading.Tasks
open Molecule.Platform

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

/// The workspaces as last committed: read once, then served from memory until a committed write saves a workspace.
/// Nearly every request reads the team (the hierarchy rules, labels), and it changes only on register, heartbeat,
/// edits and removals. On an engine whose database only this process writes (SQLite) it is always current; where
/// other processes write too (`mayLag`: PostgreSQL) it is forgotten when one says it saved a workspace, so it may lag
/// behind such a commit for as long as that word takes — a write that saves a workspace never builds on it
/// (SqlStore.StaleTeam) — and it is not used while that word cannot come (`Suspend`).
type TeamCache(mayLag: bool) =
    let gate = obj ()
    let mutable team: Workspace list option = None
    /// Counts the forgettings: a team read before one is not kept after it.
    let mutable generation = 0L
    let mutable suspended = false

    new() = TeamCache(false)

    /// The cache may lag behind another process's commit.
    member _.MayLag = mayLag

    /// The cached team, or `load ()` — kept unless the team was forgotten meanwhile; and whether it was cached.
    member _.Get(load: unit -> Workspace list) : Workspace list * bool =
        let cached, seen = lock gate (fun () -> (if suspended then None else team), generation)

        match cached with
        | Some t -> t, true
        | None ->
            let t = load ()
            lock gate (fun () -> if generation = seen && not suspended then team <- Some t)
            t, false

    /// Forgets the team (after a commit that saved a workspace, here or in another process).
    member _.Invalidate() =
        lock gate (fun () ->
            team <- None
            generation <- generation + 1L)

    /// Not used until `Resume` (while another process's word could be missed).
    member this.Suspend() =
        lock gate (fun () -> suspended <- true)
        this.Invalidate()

    member this.Resume() =
        this.Invalidate()
        lock gate (fun () -> suspended <- false)

/// Where commands run: a connection, inside a write its transaction (null outside one), the prepared commands it
/// keeps and the team it caches (None: a command for each call; the team read every time).
type Session =
    { Conn: DbConnection
      Tx: DbTransaction
      Dialect: Schema.Dialect
      Prepared: Statements option
      Team: TeamCache option }

/// Named parameters added to a command's (or a batch command's) collection; None and null as SQL NULL.
let private addParameters (create: unit -> DbParameter) (into: DbParameterCollection) (ps: (string * obj) list) =
    for (name, value) in ps do
        let p = create ()
        p.ParameterName <- name
        p.Value <- (if isNull value then box DBNull.Value else value)
        into.Add p |> ignore

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
        addParameters cmd.CreateParameter cmd.Parameters ps
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

/// A command's results, moved through one step at a time: synchronously (each step done when it returns) or
/// asynchronously (a step waits for the database without holding a thread). Reading the current row's columns never
/// waits (the providers here buffer a row when it is read).
type Cursor =
    { Reader: DbDataReader
      /// The next row of the current result; false after its last.
      Read: unit -> Task<bool>
      /// The next statement's result; false after the last.
      Next: unit -> Task<bool> }

module Cursor =
    let sync (r: DbDataReader) =
        { Reader = r
          Read = fun () -> Task.FromResult(r.Read())
          Next = fun () -> Task.FromResult(r.NextResult()) }

    let ofAsync (r: DbDataReader) =
        { Reader = r
          Read = fun () -> r.ReadAsync()
          Next = fun () -> r.NextResultAsync() }

/// A command of several statements (`;`-separated, run in order, on PostgreSQL each seeing what was committed before
/// it starts): `read` gets a cursor on the first statement's result and moves on with its Next. Synchronous: the
/// cursor's steps are done when they return.
let batch (s: Session) (sql: string) (ps: (string * obj) list) (read: Cursor -> Task<'a>) : 'a =
    withCommand s sql ps (fun cmd ->
        use r = cmd.ExecuteReader()
        (read (Cursor.sync r)).GetAwaiter().GetResult())

/// `batch`, waiting for the database without holding a thread.
let batchAsync (s: Session) (sql: string) (ps: (string * obj) list) (read: Cursor -> Task<'a>) : Task<'a> =
    task {
        use cmd = s.Conn.CreateCommand()
        cmd.CommandText <- sql
        cmd.Transaction <- s.Tx
        addParameters cmd.CreateParameter cmd.Parameters ps
        use! r = cmd.ExecuteReaderAsync()
        return! read (Cursor.ofAsync r)
    }

let scalar (s: Session) (sql: string) (ps: (string * obj) list) : obj =
    withCommand s sql ps (fun cmd -> cmd.ExecuteScalar())

/// The commands as one batch, in order, each with its own parameters.
let private batchOf (s: Session) (commands: (string * (string * obj) list) list) : DbBatch =
    let b = s.Conn.CreateBatch()
    b.Transaction <- s.Tx

    for (sql, ps) in commands do
        let c = b.CreateBatchCommand()
        c.CommandText <- sql
        addParameters c.CreateParameter c.Parameters ps
        b.BatchCommands.Add c

    b

/// Commands sent together, in order, in one round trip (on a connection whose provider can batch).
let sendTogether (s: Session) (commands: (string * (string * obj) list) list) : unit =
    use b = batchOf s commands
    b.ExecuteNonQuery() |> ignore

/// `sendTogether`, waiting for the database without holding a thread.
let sendTogetherAsync (s: Session) (commands: (string * (string * obj) list) list) : Task =
    task {
        use b = batchOf s commands
        let! _ = b.ExecuteNonQueryAsync()
        ()
    }

/// The one transaction helper: `f` runs inside a transaction on `conn`, which `commit` ends when `f` returns (an
/// engine may send its last statements with the COMMIT). When `f` or `commit` throws, the transaction is disposed
/// uncommitted — which rolls it back — and the exception goes on.
let transactWith (conn: DbConnection) (f: DbTransaction -> 'a) (commit: DbTransaction -> 'a -> unit) : 'a =
    use tx = conn.BeginTransaction()
    let v = f tx
    commit tx v
    v

/// `transactWith`, committed with COMMIT alone.
let transact (conn: DbConnection) (f: DbTransaction -> 'a) : 'a = transactWith conn f (fun tx _ -> tx.Commit())

/// The version in `schema_version` (0: none).
let schemaVersion (s: Session) : int =
    match scalar s "SELECT MAX(version) FROM schema_version" [] with
    | :? int64 as n -> int n
    | :? int32 as n -> n
    | _ -> 0
