/// Events from inside a store transaction: an Announcement becomes a PlatformEvent (dated, with its feed entry for
/// a listening canvas) that the store publishes after the commit; its label goes to the platform log. Rows logged
/// with a ring (ACTIVITY_LOGGED) are written here too.
module internal Molecule.Platform.Routes.Publish

open System
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.Routes.Env
module Json = Molecule.Protocol.Json

/// Workspace names as the writer sees them (its own changes included): labels for the canvas ("Name") and the log
/// ("Name (short id)").
let private namesIn (w: IReader) =
    let all = lazy (Store.team w)
    (fun id -> Feed.nameIn all.Value id), (fun id -> Feed.nameWithId all.Value id)

/// Publishes `a` once the transaction commits, with the feed entry `feed` gives (labels cost a parse of the row's
/// bodies and a read of the names: only for a listening canvas and a platform that logs).
let announceWith (env: Env) (w: IWriter) (a: Announcement) (feed: (WorkspaceId -> string) -> Feed.Entry option) =
    let canvas = Json.obj a.Canvas
    let canvasName, logName = namesIn w

    let entry, line =
        if a.Audience = WorkspaceOnly then
            None, None
        else
            (if env.Events.CanvasListening then feed canvasName else None),
            // delegation progress is already in the log through its rows
            (if env.Logging && not (a.Kind.StartsWith "DELEGATION_") then feed logName |> Option.map Feed.logLine else None)

    entry |> Option.iter (fun f -> canvas["feed"] <- Feed.toJson f)

    w.Announce
        { Type = a.Kind
          WorkspaceId = a.Anchor
          Payload = canvas
          Data = a.Stream
          At = env.Now()
          Audience = a.Audience }

    line |> Option.iter (fun l -> w.AfterCommit(fun () -> env.Log l))

/// Publishes `a` once the transaction commits; its feed entry is the event's own (Feed.ofEvent).
let announce (env: Env) (w: IWriter) (a: Announcement) =
    let at = env.Now()
    announceWith env w a (fun name -> Feed.ofEvent name a.Kind a.Anchor at (Json.obj [ for (k, v) in a.Canvas -> k, Json.clone v ]))

/// A platform log line once the transaction commits.
let logAfter (env: Env) (w: IWriter) (line: string) = w.AfterCommit(fun () -> env.Log(Feed.printable line))

let private logRow (env: Env) (w: IWriter) (audience: Audience) (row: ActivityRow) : ActivityRow =
    let saved, repeated =
        match w.Append row with
        | Added r -> r, false
        | Repeated r -> r, true // the same message id again: no new row, the stream still rings

    if not repeated && saved.ActivityType = "a2a_receive" then
        w.AfterCommit env.Metrics.Accepted

    let audience =
        match audience with
        | _ when not repeated -> Some audience
        | CanvasOnly -> None
        | _ -> Some WorkspaceOnly

    audience
    |> Option.iter (fun a ->
        let ring =
            Announcements.event a "ACTIVITY_LOGGED" (Some saved.WorkspaceId) [ "activity", Views.activity saved ] (Views.activityData saved saved.Summary)

        announceWith env w ring (fun name -> Feed.ofRow name saved))

    saved

/// Logs a row and rings ACTIVITY_LOGGED after the commit (canvas: `{activity: row}`; the workspace's stream: the
/// spec §1.2 payload). Returns the stored row (the existing one for a repeated message id).
let insertRow (env: Env) (w: IWriter) (row: ActivityRow) : ActivityRow = logRow env w Everyone row

/// Logs a row that the reference writes without a doorbell (notify, delegation and audit rows): the canvas still
/// sees it, the workspace's stream does not.
let insertQuiet (env: Env) (w: IWriter) (row: ActivityRow) : ActivityRow = logRow env w CanvasOnly row
