/// The store's SQL commands over ADO.NET, for any engine with a Schema.Dialect: a session (connection, transaction,
/// kept statements, cached team), the command helpers and the one transaction helper. The column codecs are in
/// SqlCodec, the activity filters in SqlFilter, the store's reads and writes in SqlStore, the migration runner in
/// SqlMigrate. An engine (SqliteStore, PostgresStore) supplies the connection, decides who waits for whom, and
/// publishes what a committed write announced.
module Molecule.Platform.Sql

open System
open System.Collections.Generic
open System.Data.Common
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

/// A command of several statements (`;`-separated, run in order, on PostgreSQL each seeing what was committed before
/// it starts): `read` gets its reader on the first statement's result and moves on with NextResult.
let batch (s: Session) (sql: string) (ps: (string * obj) list) (read: DbDataReader -> 'a) : 'a =
    withCommand s sql ps (fun cmd ->
        use r = cmd.ExecuteReader()
        read r)

let scalar (s: Session) (sql: string) (ps: (string * obj) list) : obj =
    withCommand s sql ps (fun cmd -> cmd.ExecuteScalar())

/// The one transaction helper: `f` runs inside a transaction on `conn`, which commits when `f` returns. When `f`
/// throws, the transaction is disposed uncommitted — which rolls it back — and the exception goes on.
let transact (conn: DbConnection) (f: DbTransaction -> 'a) : 'a =
    use tx = conn.BeginTransaction()
    let v = f tx
    tx.Commit()
    v

/// The version in `schema_version` (0: none).
let schemaVersion (s: Session) : int =
    match scalar s "SELECT MAX(version) FROM schema_version" [] with
    | :? int64 as n -> int n
    | :? int32 as n -> n
    | _ -> 0
