/// The shared store: PostgreSQL, any number of platform processes on one database. Reads run in a repeatable-read
/// transaction (a consistent view); writes in read-committed transactions that run side by side, appends to one log
/// taking turns under the log's advisory lock (seq order is commit order within a workspace). A committed write's
/// events reach this process's subscribers at once and the other processes' through NOTIFY, sent after the commit
/// (PgChannel: a Listener and a Notifier on connections of their own). The accept path's write is told ahead what it
/// asks first (WriteAhead): two round trips, awaited without holding a thread.
module Molecule.Platform.PostgresStore

open System
open System.Data
open System.IO
open System.Threading
open System.Threading.Tasks
open Npgsql
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.PgChannel

let private dialect = Schema.Dialect.postgres

/// Advisory lock classes (the first key of the two-key form; class 1 is the log lock, Schema.Dialect.postgres).
module private LockClass =
    let Sweep = 2
    let Migration = 3

/// Whether a text names a PostgreSQL database (a `postgres://` or `postgresql://` URL) rather than a directory.
let isUrl (text: string) =
    not (isNull text)
    && (text.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
        || text.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))

/// The Npgsql connection string of `postgres://user:password@host:port/database?key=value…` (query keys are
/// Npgsql's: `sslmode`, `host` for a socket directory, …); any other text is taken as a connection string already.
let connectionString (database: string) : string =
    if not (isUrl database) then
        database
    else
        let u = Uri database
        let b = NpgsqlConnectionStringBuilder()

        if u.Host <> "" then b.Host <- Uri.UnescapeDataString u.Host
        if u.Port > 0 then b.Port <- u.Port

        match u.UserInfo.Split(':', 2) with
        | [| user; password |] ->
            b.Username <- Uri.UnescapeDataString user
            b.Password <- Uri.UnescapeDataString password
        | [| user |] when user <> "" -> b.Username <- Uri.UnescapeDataString user
        | _ -> ()

        let db = u.AbsolutePath.TrimStart('/')
        if db <> "" then b.Database <- Uri.UnescapeDataString db

        for pair in u.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries) do
            match pair.Split('=', 2) with
            | [| k; v |] -> b[Uri.UnescapeDataString k] <- Uri.UnescapeDataString v
            | _ -> invalidArg "database" $"the database URL's parameter '{pair}' has no value"

        b.ConnectionString

/// A database URL as it may be printed: `postgres://user@host:port/database`, without the password or parameters.
let describe (database: string) : string =
    let b = NpgsqlConnectionStringBuilder(connectionString database)
    let user = if String.IsNullOrEmpty b.Username then "" else b.Username + "@"
    let port = b.Port.ToString(Globalization.CultureInfo.InvariantCulture)
    $"postgres://{user}{b.Host}:{port}/{b.Database}"

/// The connection string with the platform's settings: its name in pg_stat_activity, statements prepared after
/// their second use.
let private tuned (connection: string) (role: string) =
    let b = NpgsqlConnectionStringBuilder(connection)
    b.ApplicationName <- $"molecule-platform {role}"
    b.MaxAutoPrepare <- 100
    b.AutoPrepareMinUsages <- 2
    b.ConnectionString

/// A write that lost a race it may win when run again: a serialization failure, a deadlock, a log held elsewhere.
let private retryable (e: exn) =
    match e with
    | :? PostgresException as p -> p.SqlState = PostgresErrorCodes.SerializationFailure || p.SqlState = PostgresErrorCodes.DeadlockDetected
    | SqlStore.LogContended _ -> true
    | _ -> false

/// Connections of the pool not given to reads and writes: the sweeper's own (Exclusively) and one spare.
[<Literal>]
let private Reserved = 2

/// How long a write told ahead waits for its turn when the store has as many calls under way as it takes.
let private TurnWait = TimeSpan.FromSeconds 5.0

/// How many times a write is tried before its race is reported.
[<Literal>]
let private Attempts = 50

type private Engine(database: string, dataDir: string, fanout: PlatformEvent -> unit, reconnected: unit -> unit, log: string -> unit) =
    /// One platform process per data directory (it keeps this process's admin token and key) on any engine.
    let dirLock = DataDir.lock dataDir
    let connection = connectionString database
    let self = Guid.NewGuid().ToString("N")
    /// Its connections keep no session state between uses (advisory locks are released explicitly), so the pool
    /// does not reset each one it hands out again.
    let source = NpgsqlDataSource.Create(NpgsqlConnectionStringBuilder(tuned connection "store", NoResetOnClose = true))
    let writing = new ThreadLocal<bool>()
    /// Reads and writes under way at most. Each holds a request's thread and a pooled connection while it waits for
    /// the database, and Npgsql writes the second and later statements of a synchronous batch on the thread pool: with
    /// every pool thread held by a store call that batch is never sent, and the platform stood still under more
    /// messages than it could take (bench/README.md, "More than it can take"). So a call past the capacity is turned
    /// away (Store.Busy), and the pool may start a thread at once for as many calls as the capacity and 32 more. A
    /// write told ahead holds no thread while it waits: it waits for its turn too (TurnWait at most, in turn).
    let capacity = max 1 (NpgsqlConnectionStringBuilder(connection).MaxPoolSize - Reserved)
    let turns = new SemaphoreSlim(capacity, capacity)

    do
        let workers, ports = ThreadPool.GetMinThreads()
        if workers < capacity + 32 then ThreadPool.SetMinThreads(capacity + 32, ports) |> ignore

    let enter () = if not (turns.Wait 0) then raise Busy

    let enterWaiting () : Task =
        task {
            let! got = turns.WaitAsync TurnWait
            if not got then raise Busy
        }

    let leave () = turns.Release() |> ignore
    let limiter = LocalLimiter()
    /// The team, kept between transactions while the listener hears the other processes (Sql.TeamCache).
    let team =
        let t = Sql.TeamCache(mayLag = true)
        t.Suspend()
        t

    let secrets, version =
        let mutable ready = false

        try
            let secrets = SecretBox.load (Path.Combine(dataDir, SecretBox.KeyFile))
            use conn = source.OpenConnection()
            let s: Sql.Session = { Conn = conn; Tx = null; Dialect = dialect; Prepared = None; Team = None }
            // one process migrates at a time; the others then find the schema at its version
            Sql.exec s "SELECT pg_advisory_lock(@c, 0)" [ "@c", box LockClass.Migration ] |> ignore

            let v =
                try
                    SqlMigrate.migrate conn dialect secrets
                finally
                    Sql.exec s "SELECT pg_advisory_unlock(@c, 0)" [ "@c", box LockClass.Migration ] |> ignore

            ready <- true
            secrets, v
        finally
            if not ready then
                source.Dispose()
                dirLock.Dispose()

    let listener =
        let l = new Listener(tuned connection "listener", self, fanout, team, reconnected, log)

        try
            l.Started(TimeSpan.FromSeconds 30.0)
            l
        with :? InvalidOperationException ->
            (l :> IDisposable).Dispose()
            source.Dispose()
            dirLock.Dispose()
            reraise ()
    let mutable sent = 0L

    let session (conn: NpgsqlConnection) (tx: NpgsqlTransaction) (cached: bool) : Sql.Session =
        { Conn = conn; Tx = tx; Dialect = dialect; Prepared = None; Team = (if cached then Some team else None) }

    let notNested () =
        if writing.Value then
            raise (InvalidOperationException "a store Read or Write inside a Write: use the writer the Write gave")

    let notifier = new Notifier(tuned connection "notifier", log)

    /// The committed events for the other processes (the notifier sends them).
    let notify (events: PlatformEvent list) =
        notifier.Post
            [| for e in events do
                   yield! Relay.notifications self $"{self}-{Interlocked.Increment(&sent)}" e |]

    /// The word for the other processes that this transaction saved a workspace.
    let teamWord (w: SqlStore.SqlSession) =
        if w.SavedWorkspace then
            [ "SELECT pg_notify(@ch, @t)", [ "@ch", box Channel; "@t", box (Relay.teamChanged self) ] ]
        else
            []

    /// The transaction's last rows, the word that it saved a workspace (inside it: a word that may never be lost) and
    /// the COMMIT: one round trip.
    let commitStatements (w: SqlStore.SqlSession) =
        w.TakePending() @ teamWord w @ [ "COMMIT", [] ]

    let commit (s: Sql.Session) (w: SqlStore.SqlSession) = Sql.sendTogether s (commitStatements w)

    let attempt (cached: bool) (f: IWriter -> 'a) =
        use conn = source.OpenConnection()

        let w, v =
            Sql.transactWith
                conn
                (fun tx ->
                    let s = session conn (tx :?> NpgsqlTransaction) cached
                    let w = SqlStore.SqlSession(s, secrets)
                    s, w, f (w :> IWriter))
                (fun _ (s, w, _) -> commit s w)
            |> fun (_, w, v) -> w, v

        if w.SavedWorkspace then team.Invalidate()
        w, v

    /// `attempt` with what `f` asks first asked in the transaction's first round trip (SqlSession.Foresee), each round
    /// trip awaited without holding a thread: two round trips for an accepted message (foresight, commit).
    let attemptAhead (foresight: Foresight) (f: IWriter -> 'a) : Task<SqlStore.SqlSession * 'a> =
        task {
            use! conn = source.OpenConnectionAsync()
            // BEGIN goes with the first command
            use tx = conn.BeginTransaction()
            let s = session conn tx true
            let w = SqlStore.SqlSession(s, secrets)
            do! w.Foresee foresight
            writing.Value <- true
            let v = try f (w :> IWriter) finally writing.Value <- false
            do! Sql.sendTogetherAsync s (commitStatements w)
            if w.SavedWorkspace then team.Invalidate()
            return w, v
        }

    /// A committed write's events to the other processes and this one's subscribers, then its after-commit actions.
    let published (w: SqlStore.SqlSession) =
        notify w.Announced

        for e in w.Announced do
            fanout e

        for action in w.AfterCommitActions do
            action ()

    /// Runs `f` until it commits (a lost race again, after a short random pause; a workspace saved on a team read
    /// from the cache again at once, reading the team afresh).
    let rec write (f: IWriter -> 'a) (cached: bool) (tries: int) =
        let outcome =
            try
                Ok(attempt cached f)
            with
            | SqlStore.StaleTeam when tries < Attempts -> Error false
            | e when retryable e && tries < Attempts -> Error true

        match outcome with
        | Ok v -> v
        | Error pause ->
            if pause then Thread.Sleep(Random.Shared.Next(1, 2 + 3 * tries))
            write f (cached && pause) (tries + 1)

    interface IStore with
        member _.Read f =
            notNested ()
            enter ()

            try
                use conn = source.OpenConnection()
                use tx = conn.BeginTransaction(IsolationLevel.RepeatableRead)
                let v = f (SqlStore.SqlSession(session conn tx true, secrets) :> IReader)
                tx.Commit()
                v
            finally
                leave ()

        member _.Write f =
            notNested ()
            enter ()
            writing.Value <- true

            let w, v =
                try
                    write f true 1
                finally
                    writing.Value <- false
                    leave ()

            published w
            v

        member this.WriteAhead(foresight, f) =
            task {
                notNested ()
                do! enterWaiting ()

                let! ahead =
                    task {
                        try
                            try
                                let! committed = attemptAhead foresight f
                                return Some committed
                            with
                            | SqlStore.StaleTeam -> return None
                            | e when retryable e -> return None
                        finally
                            leave ()
                    }

                match ahead with
                | Some(w, v) ->
                    published w
                    return v
                | None -> return (this :> IStore).Write f // a race lost: run again the usual way
            }

        member _.Exclusively(name, action) =
            use conn = source.OpenConnection()
            let s = session conn null false
            let ps = [ "@c", box LockClass.Sweep; "@n", box name ]

            if Convert.ToBoolean(Sql.scalar s "SELECT pg_try_advisory_lock(@c, hashtext(@n))" ps) then
                try
                    action ()
                    true
                finally
                    Sql.exec s "SELECT pg_advisory_unlock(@c, hashtext(@n))" ps |> ignore
            else
                false

        member _.Limiter = limiter :> ILimiter
        member _.Engine = "postgres"
        member _.SchemaVersion = version

    interface IDisposable with
        member _.Dispose() =
            (notifier :> IDisposable).Dispose()
            (listener :> IDisposable).Dispose()
            source.Dispose()
            writing.Dispose()
            turns.Dispose()
            dirLock.Dispose()

/// Opens (migrating as needed) the store on the database `database` names (a `postgres://` URL or an Npgsql
/// connection string). Committed events go to `fanout` — this process's at once, the other processes' as they are
/// notified; `reconnected` runs when the listener has listened again after a drop. The inbound-secret key is
/// `<dataDir>/secret_key` (SecretBox.KeyFile): every process of a team needs the same one.
let openAt (database: string) (dataDir: string) (fanout: PlatformEvent -> unit) (reconnected: unit -> unit) (log: string -> unit) : IStore =
    new Engine(database, dataDir, fanout, reconnected, log) :> IStore
