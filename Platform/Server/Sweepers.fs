/// The background sweepers: the liveness sweep, the activity retention pass and the nudge pass, each on its interval.
module internal Molecule.Platform.Routes.Sweepers

open System
open System.Threading.Tasks
open Molecule.Platform
open Molecule.Platform.Routes
open Molecule.Platform.Routes.Env

/// Runs the three sweepers until `env.Stopping`; the task ends when all three loops have.
let start (env: Env) (sweepInterval: TimeSpan) (retentionInterval: TimeSpan) (nudgeInterval: TimeSpan) (nudges: Nudges.Settings) : Task =
    let store = env.Store

    Task.WhenAll(
        Middleware.every env sweepInterval "liveness sweep" (fun () ->
            store.Exclusively("liveness sweep", fun () -> AdminRoutes.sweepOnce env |> ignore) |> ignore),
        Middleware.every env retentionInterval "activity retention" (fun () ->
            store.Exclusively("activity retention", fun () -> AdminRoutes.pruneOnce env |> ignore) |> ignore),
        Middleware.every env nudgeInterval "nudge sweep" (fun () ->
            store.Exclusively("nudge sweep", fun () -> RequestRoutes.nudgeOnce env nudges |> ignore) |> ignore)
    )
