/// Per-token limits on every route an agent token can drive: a token bucket per (group, token) — requests a
/// minute, or bytes a minute for uploads — and a cap on the event streams a token holds open. Pure: time is an
/// argument.
module Molecule.Platform.RateLimit

open System
open System.Globalization

/// `PerMinute` a minute on average (requests, or bytes for uploads), bursts of up to `PerMinute`; 0 or less = no
/// limit.
type Policy = { PerMinute: int }

/// The route groups an agent token can drive; each has its own bucket per token.
type Group =
    /// POST /registry/register.
    | Register
    /// Heartbeats, card updates, discover, peers and GET /workspaces/:id.
    | Registry
    /// A2A sends and delegations: both deliver to a target's inbox.
    | A2a
    /// POST /workspaces/:id/notify (messages to the user).
    | Notify
    /// Activity reads, self-reports and acknowledgements, the mail summary and the delegation list.
    | Activity
    /// Memory writes and recalls.
    | Memories
    /// Broadcasts to the organisation.
    | Broadcast
    /// Uploads, downloads of stored files and acknowledgements of pending uploads (requests; the bytes of uploads
    /// have their own budget, `Limits.UploadBytes`).
    | Files
    /// Requests and approvals (raise, list, read, respond, message, cancel, decide, withdraw).
    | Requests

/// The limits of every group, the bytes of uploads a minute and the event streams open at once, per token.
type Limits =
    { Register: Policy
      Registry: Policy
      A2a: Policy
      Notify: Policy
      Activity: Policy
      Memories: Policy
      Broadcast: Policy
      Files: Policy
      Requests: Policy
      /// Bytes of uploads a minute.
      UploadBytes: Policy
      /// Event streams (GET /workspaces/:id/events/stream) one token may hold open at once; 0 or less = no cap.
      Streams: int }

module Limits =
    /// Generous, so that a working agent never meets them; they stop a runaway loop: 60 registrations, 600
    /// registry calls, 600 A2A sends, 300 notifications, 12,000 activity calls, 600 memory calls, 60 broadcasts,
    /// 600 file requests, 600 requests-inbox calls and 100 MiB of uploads a minute, 8 open streams.
    let defaults =
        { Register = { PerMinute = 60 }
          Registry = { PerMinute = 600 }
          A2a = { PerMinute = 600 }
          Notify = { PerMinute = 300 }
          Activity = { PerMinute = 12000 }
          Memories = { PerMinute = 600 }
          Broadcast = { PerMinute = 60 }
          Files = { PerMinute = 600 }
          Requests = { PerMinute = 600 }
          UploadBytes = { PerMinute = 100 * 1024 * 1024 }
          Streams = 8 }

    let off =
        { Register = { PerMinute = 0 }
          Registry = { PerMinute = 0 }
          A2a = { PerMinute = 0 }
          Notify = { PerMinute = 0 }
          Activity = { PerMinute = 0 }
          Memories = { PerMinute = 0 }
          Broadcast = { PerMinute = 0 }
          Files = { PerMinute = 0 }
          Requests = { PerMinute = 0 }
          UploadBytes = { PerMinute = 0 }
          Streams = 0 }

    let policy (l: Limits) (g: Group) : Policy =
        match g with
        | Register -> l.Register
        | Registry -> l.Registry
        | A2a -> l.A2a
        | Notify -> l.Notify
        | Activity -> l.Activity
        | Memories -> l.Memories
        | Broadcast -> l.Broadcast
        | Files -> l.Files
        | Requests -> l.Requests

/// Each group once: its name in bucket keys, and what its requests are called in the 429 text and the log.
let private names =
    [ Register, ("register", "registrations")
      Registry, ("registry", "registry calls")
      A2a, ("a2a", "A2A sends")
      Notify, ("notify", "notifications")
      Activity, ("activity", "activity calls")
      Memories, ("memories", "memory calls")
      Broadcast, ("broadcast", "broadcasts")
      Files, ("files", "file requests")
      Requests, ("requests", "requests-inbox calls") ]
    |> Map.ofList

/// What the requests of a group are called in the 429 text and the log.
let what (g: Group) : string = snd names[g]

/// A short stable name of a group (bucket keys).
let key (g: Group) : string = fst names[g]

/// The group of a route (HTTP method and route pattern as mapped), None for routes no agent token drives (the
/// admin's, /health, the canvas page) and for the event stream (capped by `Limits.Streams` instead).
let groupOf (httpMethod: string) (pattern: string) : Group option =
    match (if isNull httpMethod then "" else httpMethod.ToUpperInvariant()), pattern with
    | "POST", "/registry/register" -> Some Register
    | "POST", "/registry/heartbeat"
    | "POST", "/registry/update-card"
    | "GET", "/registry/discover/{id}"
    | "GET", "/registry/{id}/peers"
    | "GET", "/workspaces/{id}" -> Some Registry
    | "POST", "/workspaces/{id}/a2a"
    | "POST", "/workspaces/{id}/delegate" -> Some A2a
    | "POST", "/workspaces/{id}/notify" -> Some Notify
    | "GET", "/workspaces/{id}/activity"
    | "POST", "/workspaces/{id}/activity"
    | "POST", "/workspaces/{id}/activity/ack"
    | "GET", "/workspaces/{id}/mail/summary"
    | "GET", "/workspaces/{id}/delegations" -> Some Activity
    | "POST", "/workspaces/{id}/memories"
    | "GET", "/workspaces/{id}/memories" -> Some Memories
    | "POST", "/workspaces/{id}/broadcast" -> Some Broadcast
    | "POST", "/workspaces/{id}/chat/uploads"
    | "GET", "/workspaces/{id}/chat/uploads/{file}"
    | "GET", "/workspaces/{id}/pending-uploads/{file}/content"
    | "POST", "/workspaces/{id}/pending-uploads/{file}/ack" -> Some Files
    | "POST", "/workspaces/{id}/requests"
    | "GET", "/workspaces/{id}/requests"
    | "GET", "/workspaces/{id}/requests/inbox"
    | "GET", "/workspaces/{id}/requests/{requestId}"
    | "POST", "/workspaces/{id}/requests/{requestId}/respond"
    | "POST", "/workspaces/{id}/requests/{requestId}/messages"
    | "POST", "/workspaces/{id}/requests/{requestId}/cancel"
    | "POST", "/workspaces/{id}/approvals"
    | "GET", "/workspaces/{id}/approvals"
    | "POST", "/workspaces/{id}/approvals/{approvalId}/decide"
    | "POST", "/workspaces/{id}/approvals/{approvalId}/withdraw" -> Some Requests
    | _ -> None

/// The event stream route (capped by open streams, not by a bucket).
let streamRoute = "/workspaces/{id}/events/stream"

/// Tokens left at a time (negative: an upload of unknown size overdrew the budget).
type Bucket = { Tokens: float; At: DateTimeOffset }

type Decision =
    | Allowed of Bucket
    /// Refused; the client may retry after this many seconds (at least 1).
    | Limited of retryAfterSeconds: int

let private capacity (p: Policy) = float p.PerMinute
let private perSecond (p: Policy) = float p.PerMinute / 60.0

/// Tokens in the bucket at `now` (a missing bucket is full) and the bucket's own time (never moved back).
let private refill (p: Policy) (now: DateTimeOffset) (b: Bucket option) : float * DateTimeOffset =
    match b with
    | None -> capacity p, now
    | Some b ->
        let elapsed = max 0.0 (now - b.At).TotalSeconds
        min (capacity p) (b.Tokens + elapsed * perSecond p), (if b.At > now then b.At else now)

/// Takes `cost` (a request: 1; an upload: its bytes, at most the whole budget) from the bucket. Time running
/// backwards refills nothing.
let takeCost (p: Policy) (cost: float) (now: DateTimeOffset) (b: Bucket option) : Decision =
    if p.PerMinute <= 0 then
        Allowed { Tokens = 0.0; At = now }
    else
        let cost = min (capacity p) (max 0.0 cost)
        let available, at = refill p now b

        // the whole cost, give or take floating-point rounding (so waiting Retry-After is always enough)
        if available >= cost - 1e-9 then
            Allowed { Tokens = max 0.0 (available - cost); At = at }
        else
            let wait = (cost - available) / perSecond p + max 0.0 (at - now).TotalSeconds
            Limited(max 1 (int (Math.Ceiling wait)))

/// Takes one request from the bucket.
let take (p: Policy) (now: DateTimeOffset) (b: Bucket option) : Decision = takeCost p 1.0 now b

/// Charges what was used after the fact (an upload whose size was not declared): the bucket may go into debt, down
/// to one whole budget, which later requests wait off.
let charge (p: Policy) (cost: float) (now: DateTimeOffset) (b: Bucket option) : Bucket =
    if p.PerMinute <= 0 then
        { Tokens = 0.0; At = now }
    else
        let available, at = refill p now b
        { Tokens = max (-(capacity p)) (available - max 0.0 cost); At = at }

let private inv (n: int) = n.ToString(CultureInfo.InvariantCulture)

/// The 429 text of a group.
let message (g: Group) (p: Policy) (retryAfter: int) =
    $"rate limit exceeded: at most {inv p.PerMinute} {what g} a minute per token; retry in {inv retryAfter} s"

let reply (g: Group) (p: Policy) (retryAfter: int) : Reply = Wire.errorReply 429 (message g p retryAfter)

/// The 429 text of uploads over their byte budget.
let uploadMessage (p: Policy) (retryAfter: int) =
    let mib = float p.PerMinute / 1048576.0
    let amount = if mib >= 1.0 && Math.Round mib = mib then $"{inv (int mib)} MiB" else $"{inv p.PerMinute} bytes"
    $"rate limit exceeded: at most {amount} of uploads a minute per token; retry in {inv retryAfter} s"

/// Retry-After of a refused stream (a stream ends when its client goes; a few seconds is a fair wait).
[<Literal>]
let StreamRetrySeconds = 5

/// The 429 text of one stream too many.
let streamsMessage (cap: int) =
    $"too many open event streams: at most {inv cap} per token; close one or retry in {inv StreamRetrySeconds} s"

/// Whether one more stream fits beside `open'` open ones.
let streamAllowed (cap: int) (open': int) = cap <= 0 || open' < cap
