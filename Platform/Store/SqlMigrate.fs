/// The migration runner: brings a database to this binary's schema (Schema.fs), one transaction per version.
module Molecule.Platform.SqlMigrate

open System
open System.Data.Common
open Molecule.Platform
open Molecule.Platform.Sql

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
