/// Per-token rate limits (registration, A2A sends, notify): a token bucket per key. Pure: time is an argument.
module Molecule.Platform.RateLimit

open System

/// `PerMinute` requests a minute on average, bursts of up to `PerMinute`; 0 or less = no limit.
type Policy = { PerMinute: int }

/// The limits of the three limited routes.
type Limits =
    { Register: Policy
      A2a: Policy
      Notify: Policy }

module Limits =
    /// Generous: 60 registrations, 600 A2A sends and 300 notifications a minute per token.
    let defaults =
        { Register = { PerMinute = 60 }
          A2a = { PerMinute = 600 }
          Notify = { PerMinute = 300 } }

    let off =
        { Register = { PerMinute = 0 }
          A2a = { PerMinute = 0 }
          Notify = { PerMinute = 0 } }

/// Tokens left at a time.
type Bucket = { Tokens: float; At: DateTimeOffset }

type Decision =
    | Allowed of Bucket
    /// Refused; the client may retry after this many seconds (at least 1).
    | Limited of retryAfterSeconds: int

/// Takes one request from the bucket (a missing bucket is full). Time running backwards refills nothing.
let take (p: Policy) (now: DateTimeOffset) (b: Bucket option) : Decision =
    if p.PerMinute <= 0 then
        Allowed { Tokens = 0.0; At = now }
    else
        let capacity = float p.PerMinute
        let perSecond = capacity / 60.0

        let available =
            match b with
            | None -> capacity
            | Some b ->
                let elapsed = max 0.0 (now - b.At).TotalSeconds
                min capacity (max 0.0 b.Tokens + elapsed * perSecond)

        let at =
            match b with
            | Some b when b.At > now -> b.At
            | _ -> now

        // a whole request's worth, give or take floating-point rounding (so waiting Retry-After is always enough)
        if available >= 1.0 - 1e-9 then
            Allowed { Tokens = max 0.0 (available - 1.0); At = at }
        else
            let wait = (1.0 - available) / perSecond + max 0.0 (at - now).TotalSeconds
            Limited(max 1 (int (Math.Ceiling wait)))

/// The 429 text for a route ("registration", "A2A sends", "notifications").
let message (what: string) (p: Policy) (retryAfter: int) =
    let n = p.PerMinute.ToString(Globalization.CultureInfo.InvariantCulture)
    let s = retryAfter.ToString(Globalization.CultureInfo.InvariantCulture)
    $"rate limit exceeded: at most {n} {what} a minute per token; retry in {s} s"

let reply (what: string) (p: Policy) (retryAfter: int) : Reply =
    Wire.errorReply 429 (message what p retryAfter)
