/// What operators read: the instance's name, GET /health (the process answers), GET /ready (its database answers
/// and is at this binary's schema version), the route label of a request and what an acknowledgement delivered.
/// Pure.
module Molecule.Platform.Operations

open System
open System.Globalization
module Json = Molecule.Protocol.Json

/// The longest instance name kept (a longer one is cut).
[<Literal>]
let MaxInstanceName = 64

/// The instance name when none is given: `<host name>-<process id>`, unique among processes sharing a database.
let defaultInstance (hostName: string) (pid: int) : string =
    hostName + "-" + pid.ToString(CultureInfo.InvariantCulture)

/// The name an instance goes by: the one given (trimmed, control characters dropped, at most MaxInstanceName
/// characters), else `defaultInstance`.
let instanceName (given: string option) (hostName: string) (pid: int) : string =
    let clean (s: string) =
        String(s.Trim().ToCharArray() |> Array.filter (Char.IsControl >> not) |> Array.truncate MaxInstanceName)

    match given |> Option.map clean with
    | Some s when s <> "" -> s
    | _ -> defaultInstance hostName pid

/// GET /health: the process is up and answering.
let health (instance: string) : Reply =
    Wire.reply 200 (Json.obj [ "status", Json.str "ok"; "instance", Json.str instance ])

/// Why an instance should not get traffic.
type NotReady =
    /// The database did not answer (its error).
    | Unreachable of string
    /// The database is at another schema version than this binary's: older (migrations not applied) or newer (a
    /// newer platform migrated it; this one no longer knows its schema).
    | OtherVersion of stored: int * expected: int

let private text (n: int) = n.ToString(CultureInfo.InvariantCulture)

let notReadyText (n: NotReady) : string =
    match n with
    | Unreachable e -> "database unreachable: " + e
    | OtherVersion(s, e) when s < e -> $"migrations not applied: the database is at schema version {text s}, this platform needs {text e}"
    | OtherVersion(s, e) -> $"the database is at schema version {text s}, newer than this platform's {text e}: upgrade this instance"

/// The readiness decision: the stored version read from the database (or its error) against the binary's.
let readiness (probe: Result<int, string>) (expected: int) : Result<int, NotReady> =
    match probe with
    | Error e -> Error(Unreachable e)
    | Ok v when v = expected -> Ok v
    | Ok v -> Error(OtherVersion(v, expected))

/// GET /ready: 200 with the engine and schema version, else 503 with the reason.
let ready (instance: string) (engine: string) (decision: Result<int, NotReady>) : Reply =
    let common = [ "instance", Json.str instance; "engine", Json.str engine ]

    match decision with
    | Ok v -> Wire.reply 200 (Json.obj ([ "status", Json.str "ready" ] @ common @ [ "schema_version", Json.num v ]))
    | Error n -> Wire.reply 503 (Json.obj ([ "status", Json.str "not ready" ] @ common @ [ "reason", Json.str (notReadyText n) ]))

/// The route pattern a request was matched to; the fallback (an unknown path) and unrouted requests are one label,
/// so a scan of random paths adds no series.
let routeLabel (pattern: string option) : string =
    match pattern with
    | Some p when not (p.StartsWith "{*") -> p
    | _ -> "unmatched"

let private methods = set [ "GET"; "HEAD"; "POST"; "PUT"; "PATCH"; "DELETE"; "OPTIONS" ]

/// A request's method as a label: the standard ones, every other one `other` (a client inventing methods adds no
/// series).
let methodLabel (httpMethod: string) : string =
    let m = if isNull httpMethod then "" else httpMethod.ToUpperInvariant()
    if methods.Contains m then m else "other"

/// What an acknowledgement delivered: the inbox rows (`a2a_receive`) it newly covers — seq above the floor before
/// it (none yet: every row) and at most the floor after — each with its lag from the row's creation to `at`
/// (never negative).
let delivered (before: int64 option) (after: int64) (at: DateTimeOffset) (rows: ActivityRow list) : TimeSpan list =
    let floor = defaultArg before Int64.MinValue

    rows
    |> List.filter (fun r -> r.ActivityType = "a2a_receive" && r.Seq > floor && r.Seq <= after)
    |> List.map (fun r -> max TimeSpan.Zero (at - r.CreatedAt))
