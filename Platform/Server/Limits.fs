/// The mutable holders of two pure rules: per-token rate-limit buckets and the event stream's one-time tickets.
module internal Molecule.Platform.Routes.Limits

open System
open Molecule.Platform

/// Token buckets per (route, key) under one lock; full buckets are forgotten when there are many.
type Limiter() =
    let buckets = Collections.Generic.Dictionary<string, RateLimit.Bucket>()

    member _.Take(key: string, policy: RateLimit.Policy, now: DateTimeOffset) : RateLimit.Decision =
        lock buckets (fun () ->
            if buckets.Count > 10000 then
                for k in List.ofSeq buckets.Keys do
                    if now - buckets[k].At > TimeSpan.FromMinutes 1.0 then buckets.Remove k |> ignore

            let d =
                RateLimit.take policy now (match buckets.TryGetValue key with | true, b -> Some b | _ -> None)

            match d with
            | RateLimit.Allowed b -> buckets[key] <- b
            | RateLimit.Limited _ -> ()

            d)


/// The canvas stream's one-time tickets (Tickets rules) under one lock.
type TicketBook() =
    let gate = obj ()
    let mutable tickets: Tickets.Ticket list = []

    member _.Issue(now: DateTimeOffset, text: string) =
        lock gate (fun () -> tickets <- Tickets.issue now text :: (tickets |> List.filter (fun t -> t.Expires > now)))

    member _.Redeem(now: DateTimeOffset, presented: string) : bool =
        lock gate (fun () ->
            let ok, rest = Tickets.redeem now presented tickets
            tickets <- rest
            ok)
