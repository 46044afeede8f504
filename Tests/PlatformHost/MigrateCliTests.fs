/// `molecule-platform migrate` on the PUBLISHED binary into the tests' own PostgreSQL: a team built on SQLite through
/// the platform's API, the copy killed (-9) in the middle and run again to completion, the report (every table
/// "ok"), then the team served from PostgreSQL exactly as it was; a target holding another team refused, and
/// replaced with --force.
module Molecule.Tests.PlatformHost.MigrateCliTests

open System
open System.Diagnostics
open System.Threading
open Xunit
open Molecule.Tests.Platform
open Molecule.Tests.PlatformHost.CliSupport

let private tablesOk (out: string) =
    let rows = out.Split('\n') |> Array.filter (fun l -> l.EndsWith " ok" || l.EndsWith "DIFFERENT")
    Assert.Equal(Molecule.Platform.Migration.tables.Length, rows.Length)
    Assert.All(rows, fun l -> Assert.EndsWith(" ok", l))

/// Starts `migrate` and kills it (-9) once it has committed its first batch of the activity log.
let private killMidCopy (args: string list) =
    use p = Process.Start(startInfo [] args)
    p.StandardInput.Close()
    let mutable seen = false
    let sw = Stopwatch.StartNew()

    while not seen && not p.HasExited && sw.Elapsed < TimeSpan.FromSeconds 60.0 do
        match p.StandardError.ReadLine() with
        | null -> ()
        | line when line.StartsWith "activity_logs: " -> seen <- true
        | _ -> ()

    Assert.True(seen && not p.HasExited, "migrate ended before it was killed mid-copy")
    p.Kill true
    p.WaitForExit()

[<Fact>]
let ``migrate --to postgres://: killed mid-copy, run again to completion; the team is served from PostgreSQL as it was; another team is refused, --force replaces it`` () =
    let source = tempDir "migrate-from"
    let target = tempDir "migrate-to"
    let team = (MigrateTests.buildTeam source 150).Result
    let url = Molecule.Tests.Support.Postgres.urlFor target
    let args = [ "migrate"; "--from"; source; "--to"; url ]
    killMidCopy (args @ [ "--batch-size"; "1" ])
    let again = run args (TimeSpan.FromSeconds 120.0)
    Assert.True((again.Code = 0), $"migrate again: {again.Code}\n{again.Err}")
    Assert.Contains("resuming the copy", again.Err)
    tablesOk again.Out
    Assert.Contains("every table matches", again.Out)

    for f in [ "admin_token"; "secret_key" ] do
        IO.File.Copy(IO.Path.Combine(source, f), IO.Path.Combine(target, f), true)

    (MigrateTests.servedIdentically "postgres" target team).Wait()
    // another team into the same database: refused, nothing touched; --force replaces it
    let other = tempDir "migrate-other"
    let _ = (MigrateTests.buildTeam other 2).Result
    let refused = run [ "migrate"; "--from"; other; "--to"; url ] (TimeSpan.FromSeconds 60.0)
    Assert.Equal(1, refused.Code)
    Assert.Contains("the target database is not empty", refused.Err)
    let replaced = run [ "migrate"; "--from"; other; "--to"; url; "--force" ] (TimeSpan.FromSeconds 60.0)
    Assert.True((replaced.Code = 0), replaced.Err)
    tablesOk replaced.Out
