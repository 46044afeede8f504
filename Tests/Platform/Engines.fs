/// The store engines the platform's tests run on. Every test that starts a platform or opens a store takes its
/// engine as a parameter — a theory's `engine` argument (EngineCases), or a fixture's engine type (PlatformFixture<'E>,
/// one line per engine below each test class) — so a second engine is one entry in `all` and one marker type, not a
/// copy of any test body.
module Molecule.Tests.Platform.Engines

open System
open System.Collections
open System.Collections.Generic
open System.IO
open Molecule.Platform
open Molecule.Platform.Server

/// A fresh directory for one test, inside the test process's own temp folder (removed at exit).
let tempDir () = Molecule.Tests.Support.TempDirs.create "platform-tests"

/// A token that is not `token`: its first character changed (to "x", or "y" when it was "x" — a random token starts
/// with "x" once in 64).
let wrongToken (token: string) = (if token.StartsWith "x" then "y" else "x") + token.Substring 1

type Engine =
    {
        Name: string
        /// The options of a platform on this engine whose data directory is `dir` (a restart with the same
        /// directory reaches the same database).
        Configure: string -> PlatformOptions -> PlatformOptions
        /// The store of a data directory on this engine, publishing committed events to the function given.
        OpenStore: string -> (PlatformEvent -> unit) -> Store.IStore
    }

let sqlite: Engine =
    { Name = "sqlite"
      Configure = fun _ o -> { o with Database = Embedded }
      OpenStore = SqliteStore.openAt }

/// PostgreSQL: the test process's own cluster (Support/Postgres), a database per data directory.
let postgres: Engine =
    { Name = "postgres"
      Configure = fun dir o -> { o with Database = Postgres(Molecule.Tests.Support.Postgres.urlFor dir) }
      OpenStore = fun dir fanout -> PostgresStore.openAt (Molecule.Tests.Support.Postgres.urlFor dir) dir fanout ignore ignore }

/// Every engine the suite runs on.
let all: Engine list = [ sqlite; postgres ]

let named (name: string) : Engine =
    all
    |> List.tryFind (fun e -> e.Name = name)
    |> Option.defaultWith (fun () -> failwith $"no engine named {name}")

/// The defaults on an engine, `adjust`ed, for a data directory.
let options (engine: Engine) (dir: string) (adjust: PlatformOptions -> PlatformOptions) : PlatformOptions =
    engine.Configure dir (adjust (PlatformOptions.defaults dir))

/// Theory data: one case per engine (`[<Theory; ClassData(typeof<EngineCases>)>]` with an `engine: string` argument).
type EngineCases() =
    interface IEnumerable<obj[]> with
        member _.GetEnumerator() : IEnumerator<obj[]> = (Seq.ofList [ for e in all -> [| box e.Name |] ]).GetEnumerator()

    interface IEnumerable with
        member this.GetEnumerator() : IEnumerator = ((this :> IEnumerable<obj[]>).GetEnumerator()) :> IEnumerator

/// An engine as a type, for fixtures shared by a test class (xunit makes fixtures from their type alone).
type IEngine =
    abstract Engine: Engine

type OnSqlite() =
    interface IEngine with
        member _.Engine = sqlite

type OnPostgres() =
    interface IEngine with
        member _.Engine = postgres
