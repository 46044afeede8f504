/// One-time tickets for the canvas event stream: EventSource cannot send an Authorization header, and the admin
/// token must not travel in a URL (proxies and browsers keep URLs). The admin trades its bearer for a ticket
/// (POST /admin/stream-ticket) that opens GET /events?ticket=… once, within a minute. Pure: time is an argument.
module Molecule.Platform.Tickets

open System

let lifetime = TimeSpan.FromSeconds 60.0

/// A stored ticket: only the hash of its text, and when it stops working.
type Ticket = { Hash: byte[]; Expires: DateTimeOffset }

/// A ticket for `text` (from random bytes) issued at `now`.
let issue (now: DateTimeOffset) (text: string) : Ticket =
    { Hash = Tokens.hash text; Expires = now + lifetime }

/// Redeems a presented ticket: Some remaining tickets when it is known and not expired (it is then used up), None
/// otherwise. Expired tickets are dropped either way.
let redeem (now: DateTimeOffset) (presented: string) (tickets: Ticket list) : bool * Ticket list =
    let live = tickets |> List.filter (fun t -> t.Expires > now)

    match live |> List.tryFindIndex (fun t -> Tokens.matches t.Hash presented) with
    | Some i -> true, live |> List.removeAt i
    | None -> false, live
