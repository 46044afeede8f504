/// What every handler gets: the store, the clock, the admin token, the event hub and the platform's settings.
module internal Molecule.Platform.Routes.Env

open System
open System.Net.Http
open System.Security.Cryptography
open System.Threading
open System.Threading.Tasks
open Molecule.Platform

type Env =
    { Store: Store.IStore
      Now: unit -> DateTimeOffset
      Admin: string
      Faults: FaultInjector
      Events: EventHub
      Http: HttpClient
      Stopping: CancellationToken
      Background: ResizeArray<Task>
      /// Activity retention (soft/hard days).
      Retention: Inbox.Retention
      /// Let unknown workspace ids register (`--open-registration`).
      OpenRegistration: bool
      Limits: RateLimit.Limits
      /// The platform log (lines without a prefix); never given a token.
      Log: string -> unit
      /// A log was given (event lines are labelled only then).
      Logging: bool
      /// The molecule-mcp command the connection lines start.
      McpBinary: string
      /// This instance's name (GET /health, /ready, /metrics and the log).
      Instance: string
      /// What GET /metrics exposes.
      Metrics: Metrics.Registry }

let newGuid () = Guid.NewGuid()
let newActivityId () = ActivityId(Guid.NewGuid())

/// A fresh secret: 32 random bytes as 43 base64url characters (tokens, inbound secrets, tickets).
let randomToken () =
    Tokens.format (RandomNumberGenerator.GetBytes Tokens.ByteLength)

let isAdmin (env: Env) (presented: string) = Tokens.equalSecrets env.Admin presented
