/// What the platform says when it starts with an open door: a non-loopback listen address, open registration, the
/// fault routes. Pure; written once for the CLI and every other host.
module Molecule.Platform.Notices

open System
open System.Net

/// True for 127.0.0.0/8, ::1 and `localhost`; false for a wildcard (0.0.0.0, ::, *) and every other address.
let isLoopbackListen (host: string) : bool =
    let h = (if isNull host then "" else host.Trim().Trim('[', ']')).ToLowerInvariant()

    match IPAddress.TryParse h with
    | true, ip -> IPAddress.IsLoopback ip
    | _ -> h = "localhost"

/// The warning for a listen address that is not loopback (None for loopback).
let exposed (host: string) (port: int) : string option =
    if isLoopbackListen host then
        None
    else
        let p = port.ToString(Globalization.CultureInfo.InvariantCulture)

        Some(
            $"warning: listening on {host}:{p}, which is not a loopback address: anyone who can reach this port can "
            + "read /health, the canvas page and each workspace's public card (name, role, status, skills), and can try "
            + "tokens against the API; a workspace token acts as its workspace and the admin token as you. Plain HTTP "
            + "carries every token in clear text: put a reverse proxy with TLS in front (e.g. Caddy or nginx) and pass "
            + "its public name with --allowed-host NAME."
        )

let openRegistration =
    "warning: --open-registration: any client can register an unknown workspace id and gets a token for it (the "
    + "reference platform's behaviour). Use it only on a machine nobody else can reach."

let faults =
    "warning: --enable-faults: the test fault routes /admin/faults, /admin/faults/cut-streams and /admin/requests are "
    + "served (admin token required). They make the platform fail on purpose: never use this outside tests."

/// The start warnings for these settings, in order.
let atStart (host: string) (port: int) (openReg: bool) (enableFaults: bool) : string list =
    [ yield! exposed host port |> Option.toList
      if openReg then openRegistration
      if enableFaults then faults ]
