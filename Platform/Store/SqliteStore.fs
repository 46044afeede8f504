/// The embedded store: SQLite in the data directory (`platform.db`, WAL, synchronous=FULL), one platform process per
/// directory (`platform.lock`). Reads and writes take turns under one lock on one connection, so a write's
/// transaction is the only one (BEGIN IMMEDIATE): seq order is commit order, and an event is published after its
/// commit in commit order.
module Molecule.Platform.SqliteStore

open System
open System.IO
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Molecule.Platform
open Molecule.Platform.Store

[<Literal>]
let DatabaseFile = "platform.db"

[<Literal>]
let LockFile = DataDir.LockFile

let private dialect = Schema.Dialect.sqlite

/// Files an older platform kept in the data directory, moved into the database at start (then removed): chat
/// uploads (`uploads/<workspace>/<key>`), pending uploads (`pending-uploads/<workspace>/<id>` + `<id>.json`) and
/// abilities (`abilities.json`). Safe to repeat: what the database has already is kept.
module private Legacy =
    let private workspaceDirs (dir: string) =
        if Directory.Exists dir then
            [ for d in Directory.EnumerateDirectories dir do
                  match Validation.parseWorkspaceId (Path.GetFileName d) with
                  | Some ws -> yield ws, d
                  | None -> () ]
        else
            []

    let private stamp (path: string) = DateTimeOffset(File.GetLastWriteTimeUtc path, TimeSpan.Zero)

    let private chat (dataDir: string) : (StoredFile * string) list =
        [ for ws, d in workspaceDirs (Path.Combine(dataDir, "uploads")) do
              for f in Directory.EnumerateFiles d do
                  let key = Path.GetFileName f

                  yield
                      { WorkspaceId = ws
                        Kind = FileKind.Chat
                        Key = key
                        FileName = Uploads.nameOfKey key
                        MimeType = Uploads.mimeOf key
                        Size = FileInfo(f).Length
                        CreatedAt = stamp f },
                      f ]

    let private pending (dataDir: string) : (StoredFile * string) list =
        [ for ws, d in workspaceDirs (Path.Combine(dataDir, "pending-uploads")) do
              for f in Directory.EnumerateFiles d do
                  let key = Path.GetFileName f

                  if Team.isFileId key then
                      let meta = if File.Exists(f + ".json") then Molecule.Protocol.Json.tryParse (File.ReadAllText(f + ".json")) else None
                      let field name = meta |> Option.bind (Molecule.Protocol.Json.prop name) |> Option.bind Molecule.Protocol.Json.asString
                      let name = defaultArg (field "name") key

                      yield
                          { WorkspaceId = ws
                            Kind = FileKind.Pending
                            Key = key
                            FileName = name
                            MimeType = defaultArg (field "mimeType") "application/octet-stream"
                            Size = FileInfo(f).Length
                            CreatedAt = stamp f },
                          f ]

    /// Moves the old files into the database (one transaction), then deletes them.
    let import (conn: SqliteConnection) (secrets: SecretBox) (dataDir: string) =
        let files = chat dataDir @ pending dataDir
        let abilitiesFile = Path.Combine(dataDir, "abilities.json")
        let abilities = if File.Exists abilitiesFile then Team.decode (File.ReadAllText abilitiesFile) else Map.empty

        if not files.IsEmpty || File.Exists abilitiesFile then
            Sql.transact conn (fun tx ->
                let s: Sql.Session = { Conn = conn; Tx = tx; Dialect = dialect; Prepared = None; Team = None }
                let w = SqlStore.SqlSession(s, secrets) :> IWriter

                for (f, path) in files do
                    w.PutFile(f, File.ReadAllBytes path)

                for KeyValue(ws, a) in abilities do
                    Sql.exec
                        s
                        """INSERT INTO workspace_abilities (workspace_id,broadcast_enabled,talk_to_user_enabled,updated_at)
                           VALUES (@ws,@b,@t,@ua) ON CONFLICT(workspace_id) DO NOTHING"""
                        [ "@ws", box ws.Text
                          "@b", box (if a.BroadcastEnabled then 1L else 0L)
                          "@t", box (if a.TalkToUserEnabled then 1L else 0L)
                          "@ua", box DateTimeOffset.UtcNow.UtcTicks ]
                    |> ignore)

            for (_, path) in files do
                File.Delete path
                if File.Exists(path + ".json") then File.Delete(path + ".json")

            for dir in [ "uploads"; "pending-uploads" ] do
                let root = Path.Combine(dataDir, dir)

                if Directory.Exists root then
                    for d in Directory.EnumerateDirectories root |> List.ofSeq do
                        if Seq.isEmpty (Directory.EnumerateFileSystemEntries d) then Directory.Delete d

                    if Seq.isEmpty (Directory.EnumerateFileSystemEntries root) then Directory.Delete root

            if File.Exists abilitiesFile then File.Delete abilitiesFile

type private Engine(dataDir: string, fanout: PlatformEvent -> unit) =
    /// Held for the store's lifetime: one platform process per data directory.
    let lockFile = DataDir.lock dataDir

    let conn = new SqliteConnection($"Data Source={Path.Combine(dataDir, DatabaseFile)};Pooling=False")

    /// The key, the connection's settings, the schema and the old files; the lock and connection are let go when
    /// any of it fails.
    let secrets, version =
        let mutable ready = false

        try
            let secrets = SecretBox.load (Path.Combine(dataDir, SecretBox.KeyFile))
            conn.Open()

            for pragma in [ "PRAGMA journal_mode=WAL"; "PRAGMA synchronous=FULL"; "PRAGMA busy_timeout=5000" ] do
                Sql.exec { Conn = conn; Tx = null; Dialect = dialect; Prepared = None; Team = None } pragma [] |> ignore

            let v = SqlMigrate.migrate conn dialect secrets
            Legacy.import conn secrets dataDir
            ready <- true
            secrets, v
        finally
            if not ready then
                conn.Dispose()
                lockFile.Dispose()

    let gate = obj ()
    let mutable writing = false
    let limiter = LocalLimiter()
    /// One caller at a time uses the connection (the gate), so its commands stay prepared; and only this process
    /// writes the database, so the team it committed last can be kept.
    let statements = new Sql.Statements()
    let team = Sql.TeamCache()

    let session (tx: SqliteTransaction) : Sql.Session =
        { Conn = conn; Tx = tx; Dialect = dialect; Prepared = Some statements; Team = Some team }

    let notNested () =
        if writing then
            raise (InvalidOperationException "a store Read or Write inside a Write: use the writer the Write gave")

    interface IStore with
        member _.Read f =
            lock gate (fun () ->
                notNested ()
                f (SqlStore.SqlSession(session null, secrets) :> IReader))

        member _.Write f =
            lock gate (fun () ->
                notNested ()
                writing <- true

                try
                    let s, v =
                        Sql.transact conn (fun tx ->
                            let s = SqlStore.SqlSession(session (tx :?> SqliteTransaction), secrets)
                            s, f (s :> IWriter))

                    if s.SavedWorkspace then team.Invalidate()

                    for e in s.Announced do
                        fanout e

                    for action in s.AfterCommitActions do
                        action ()

                    v
                finally
                    writing <- false)

        // every round trip is a function call here: nothing to ask ahead
        member this.WriteAhead(_, f) = Task.FromResult((this :> IStore).Write f)

        member _.Exclusively(_, action) =
            action () // the only process on this data directory
            true

        member _.Limiter = limiter :> ILimiter
        member _.Engine = "sqlite"
        member _.SchemaVersion = version

    interface IDisposable with
        member _.Dispose() =
            lock gate (fun () ->
                try
                    Sql.exec (session null) "PRAGMA wal_checkpoint(TRUNCATE)" [] |> ignore
                with :? SqliteException ->
                    () // a checkpoint the next start makes instead

                (statements :> IDisposable).Dispose()
                conn.Dispose()
                lockFile.Dispose())

/// Opens (creating and migrating as needed) the store of a data directory. Its events go to `fanout` once committed.
/// The inbound-secret key is `<dataDir>/secret_key` (SecretBox.KeyFile).
let openAt (dataDir: string) (fanout: PlatformEvent -> unit) : IStore = new Engine(dataDir, fanout) :> IStore
