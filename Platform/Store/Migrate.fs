/// `molecule-platform migrate`: copies a team from a SQLite data directory into another database, table by table
/// (Migration.tables), every value as it is stored — token hashes, sealed inbound secrets (the target's instances
/// use the data directory's `secret_key`), activity rows with their seq, ack floors, memories, files. Rows go in
/// batches, each batch one target transaction, skipping rows the target already has: a copy interrupted anywhere is
/// completed by running it again. Then each table's rows and checksum are compared on both sides.
module Molecule.Platform.Migrate

open System
open System.Data.Common
open System.IO
open Microsoft.Data.Sqlite
open Molecule.Platform
open Molecule.Platform.Migration

/// Where the team goes: a migrated database reached through raw connections.
type Target =
    { /// How the target is named in messages (no password).
      Describe: string
      Dialect: Schema.Dialect
      /// A new connection to the target (opened).
      Connect: unit -> DbConnection
      /// Brings engine state in line with copied values (e.g. an identity sequence past the copied seq numbers).
      Finish: DbConnection -> unit
      /// Opens the target's store once the source is open (its schema migrated, its locks taken), released when the
      /// copy ends.
      Hold: unit -> IDisposable }

/// The outcome of a run: how it started and what each side holds.
type Report =
    { Start: Start
      Source: Summary list
      Target: Summary list
      /// Tables whose rows or checksum differ (empty: a faithful copy).
      Differences: string list }

let private session (conn: DbConnection) (tx: DbTransaction) (dialect: Schema.Dialect) : Sql.Session =
    { Conn = conn; Tx = tx; Dialect = dialect; Prepared = None; Team = None }

let private columnList (t: Table) = String.Join(",", t.Columns)

let private values (t: Table) (r: DbDataReader) : Value list =
    [ for i in 0 .. t.Columns.Length - 1 ->
          match Value.ofObj (r.GetValue i) with
          | Some v -> v
          | None -> raise (InvalidDataException $"{t.Name}.{t.Columns[i]} holds a {r.GetFieldType(i).Name}, which no platform column has") ]

/// Each table's rows and checksum on one side.
let summaries (conn: DbConnection) (dialect: Schema.Dialect) : Summary list =
    [ for t in tables ->
          Sql.query (session conn null dialect) $"SELECT {columnList t} FROM {t.Name}" [] (fun r -> rowDigest (values t r))
          |> summarise t.Name ]

/// The copies recorded in a target.
[<Literal>]
let MarkerTable = "molecule_migrations"

let private markers (s: Sql.Session) : Marker list =
    Sql.exec s (Schema.Dialect.render s.Dialect $"CREATE TABLE IF NOT EXISTS {MarkerTable} (source TEXT PRIMARY KEY, started_at {{bigint}} NOT NULL, finished_at {{bigint}})") []
    |> ignore

    Sql.query s $"SELECT source, finished_at FROM {MarkerTable}" [] (fun r -> { Source = r.GetString 0; Finished = not (r.IsDBNull 1) })

let private teamRows (s: Sql.Session) : int64 =
    tables |> List.sumBy (fun t -> Convert.ToInt64(Sql.scalar s $"SELECT COUNT(*) FROM {t.Name}" []))

/// Deletes the target's team (children first) and its copy records, in one transaction.
let private clear (conn: DbConnection) (dialect: Schema.Dialect) =
    Sql.transact conn (fun tx ->
        let s = session conn tx dialect

        for t in List.rev tables do
            Sql.exec s $"DELETE FROM {t.Name}" [] |> ignore

        Sql.exec s $"DELETE FROM {MarkerTable}" [] |> ignore)

/// Copies one table in batches of `batch` rows (one target transaction each; rows the target has are skipped);
/// `copied` hears the table and the rows done after each batch.
let private copyTable (src: DbConnection) (dst: DbConnection) (dialect: Schema.Dialect) (batch: int) (copied: string -> int64 -> unit) (t: Table) =
    let names = [ for i in 0 .. t.Columns.Length - 1 -> $"@p{i}" ]
    let insert = $"INSERT INTO {t.Name} ({columnList t}) VALUES ({String.Join(',', names)}) ON CONFLICT DO NOTHING"
    let pending = ResizeArray<Value list>()
    let mutable total = 0L

    let flush () =
        Sql.transact dst (fun tx ->
            let s = session dst tx dialect

            for row in pending do
                Sql.exec s insert (List.zip names (row |> List.map Value.toObj)) |> ignore)

        total <- total + int64 pending.Count
        pending.Clear()
        copied t.Name total

    use cmd = src.CreateCommand()
    cmd.CommandText <- $"SELECT {columnList t} FROM {t.Name}"
    use r = cmd.ExecuteReader()

    while r.Read() do
        pending.Add(values t r)
        if pending.Count >= batch then flush ()

    if pending.Count > 0 then flush ()

/// The source: the data directory's SQLite database, opened once by its store (migrated to this binary's schema,
/// older on-disk files moved in) and then read through a read-only connection.
let private openSource (dataDir: string) : Result<SqliteConnection, string> =
    let db = Path.Combine(dataDir, SqliteStore.DatabaseFile)

    if not (File.Exists db) then
        Error $"no platform database in {dataDir} (expected {SqliteStore.DatabaseFile})"
    else
        try
            (SqliteStore.openAt dataDir ignore).Dispose()
            let conn = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False")
            conn.Open()
            Ok conn
        with :? InvalidOperationException as e ->
            Error $"{e.Message}: stop the platform serving it first"

/// Copies the team of the SQLite data directory `fromDir` into `target`. `force` replaces what a target that is
/// not a copy of this source holds; `batch` rows go per target transaction; `log` hears progress; `copied` hears
/// each batch committed (table, rows of it done). Error: nothing was copied, and why.
let run (fromDir: string) (target: Target) (force: bool) (batch: int) (log: string -> unit) (copied: string -> int64 -> unit) : Result<Report, string> =
    match openSource fromDir with
    | Error e -> Error e
    | Ok src ->
        use src = src
        use _hold = target.Hold()
        use dst = target.Connect()
        let dialect = target.Dialect
        let source = summaries src Schema.Dialect.sqlite
        let fp = fingerprint source
        let s = session dst null dialect
        let state = { Rows = teamRows s; Markers = markers s }

        match decide fp force state with
        | Error e -> Error e
        | Ok start ->
            if start = Replace then
                log $"deleting the {state.Rows} rows {target.Describe} holds (--force)"
                clear dst dialect

            if start = Resume then log $"resuming the copy into {target.Describe}: rows it already has are kept"
            let now = DateTimeOffset.UtcNow.UtcTicks

            Sql.exec s $"INSERT INTO {MarkerTable} (source, started_at) VALUES (@s, @t) ON CONFLICT DO NOTHING" [ "@s", box fp; "@t", box now ]
            |> ignore

            for t in tables do
                copyTable src dst dialect (max 1 batch) copied t

            target.Finish dst
            let copiedSummaries = summaries dst dialect
            let different = differences source copiedSummaries

            if different.IsEmpty then
                Sql.exec s $"UPDATE {MarkerTable} SET finished_at = @t WHERE source = @s" [ "@s", box fp; "@t", box DateTimeOffset.UtcNow.UtcTicks ]
                |> ignore

            Ok
                { Start = start
                  Source = source
                  Target = copiedSummaries
                  Differences = different }

/// A SQLite data directory as a target (another machine's embedded platform, and the tests of the copy itself).
let sqliteTarget (dataDir: string) : Target =
    let db = Path.Combine(dataDir, SqliteStore.DatabaseFile)

    { Describe = db
      Dialect = Schema.Dialect.sqlite
      Connect =
        fun () ->
            let c = new SqliteConnection($"Data Source={db};Pooling=False")
            c.Open()
            c :> DbConnection
      Finish = ignore
      Hold = fun () -> SqliteStore.openAt dataDir ignore :> IDisposable }

// ---------------------------------------------------------------- the command

let private count (n: int64) = n.ToString(Globalization.CultureInfo.InvariantCulture)

/// `molecule-platform migrate`: the copy with its report on `out` (per table: rows on each side, checksum, match)
/// and its progress and errors on `err`. Exit code 0 when every table matches, 1 otherwise (refused, failed, or a
/// table that differs).
let command (fromDir: string) (target: Target) (force: bool) (batch: int) (out: Action<string>) (err: Action<string>) : int =
    err.Invoke $"copying the team of {fromDir} into {target.Describe}"

    let outcome =
        try
            run fromDir target force batch err.Invoke (fun table rows -> err.Invoke $"{table}: {count rows} rows copied")
        with
        | :? DbException
        | :? IOException
        | :? InvalidDataException as e -> Error $"the copy stopped: {e.Message} (run the same command again to complete it)"

    match outcome with
    | Error e ->
        err.Invoke("error: " + e)
        1
    | Ok report ->
        for line in reportLines report.Source report.Target do
            out.Invoke line

        if report.Differences.IsEmpty then
            out.Invoke(
                $"every table matches: the team is in {target.Describe}. Give each platform instance serving it this data "
                + "directory's admin_token and secret_key (mode 0600)."
            )

            0
        else
            err.Invoke(
                "error: after the copy these tables differ from the source: "
                + String.Join(", ", report.Differences)
                + " (the target holds rows the source does not: pass --force to replace what it holds)"
            )

            1

/// The target of a PostgreSQL database (a `postgres://` URL): its store opened on `dataDir` (whose `secret_key` the
/// team's sealed secrets need; the copy holds that directory's lock, so no platform starts on it meanwhile).
let postgresTarget (database: string) (dataDir: string) : Target =
    let connection = PostgresStore.connectionString database

    { Describe = PostgresStore.describe database
      Dialect = Schema.Dialect.postgres
      Connect =
        fun () ->
            let c = new Npgsql.NpgsqlConnection(connection)
            c.Open()
            c :> DbConnection
      // the identity of activity_logs.seq continues after the copied numbers
      Finish =
        fun conn ->
            Sql.exec
                (session conn null Schema.Dialect.postgres)
                "SELECT setval(pg_get_serial_sequence('activity_logs', 'seq'), COALESCE((SELECT MAX(seq) FROM activity_logs), 0) + 1, false)"
                []
            |> ignore
      Hold = fun () -> PostgresStore.openAt database dataDir ignore ignore ignore :> IDisposable }

/// The target `--to` names: a `postgres://` URL, else another data directory (SQLite). Error: what it takes.
let targetOf (spec: string) (fromDir: string) : Result<Target, string> =
    if String.IsNullOrWhiteSpace spec then Error "--to names the target: a postgres:// URL or another data directory"
    elif PostgresStore.isUrl spec then Ok(postgresTarget spec fromDir)
    elif Path.GetFullPath spec = Path.GetFullPath fromDir then Error "--to names the --from directory itself"
    else Ok(sqliteTarget (Path.GetFullPath spec))

/// For C# hosts: the command with `--to` as given; exit code 2 when it names no target.
let commandTo (fromDir: string) (spec: string) (force: bool) (batch: int) (out: Action<string>) (err: Action<string>) : int =
    match targetOf spec fromDir with
    | Error e ->
        err.Invoke("error: " + e)
        2
    | Ok target -> command (Path.GetFullPath fromDir) target force batch out err
