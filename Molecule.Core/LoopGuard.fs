/// The loop guard: a decider over the messages peers send this workspace. Agent teams loop — a pair re-posting the same
/// stale result, or answering each other for ever with no person in between. Per peer it counts the messages since the
/// last human turn (a message of the user, or the user resuming the pair), how many came within any 60 s, and how
/// often the same payload came (normalised: whitespace, ids, times, dates and long numbers do not make two payloads
/// differ; a short counter such as "batch 3 of 12" does). Past a bound the pair is paused: the guard suppresses the
/// push of every further message of that peer (the message stays in the inbox, readable with inbox_peek) until the
/// user resumes the pair. Pure: the agent performs what a trip asks for.
module Molecule.Core.LoopGuard

open System
open System.Text
open System.Text.Json.Nodes
open Molecule.Protocol

/// Why a pair was paused.
type Trip =
    /// The same (normalised) payload arrived this many times.
    | Repeated of copies: int
    /// This many messages arrived with no human turn in between.
    | Exchanged of count: int
    /// This many messages arrived within 60 s.
    | Flooded of perMinute: int
    /// Paused before this process started: the pair's loop_guard request is still open on the platform.
    | StillOpen

/// One peer's messages since the last human turn.
type Pair =
    { Count: int
      /// Arrival times (UTC ticks, the platform's clock) of the messages of the last minute, newest first.
      Recent: int64 list
      /// How often each normalised payload came.
      Copies: Map<string, int>
      /// Paused since this trip (and its messages suppressed) until the user resumes the pair.
      Paused: Trip option }

type State = { Pairs: Map<string, Pair> }

let empty: State = { Pairs = Map.empty }

let private fresh = { Count = 0; Recent = []; Copies = Map.empty; Paused = None }

let private window = TimeSpan.TicksPerMinute

/// What the guard does with one message of a peer.
type Verdict =
    | Pass
    /// Suppressed: the pair is paused; `tripped` is true for the message that paused it (tell the agent and the user).
    | Suppress of Trip * tripped: bool

// ---------------------------------------------------------------------------------------------
// Normalising
// ---------------------------------------------------------------------------------------------

let private isHex (c: char) = Char.IsAsciiDigit c || (c >= 'a' && c <= 'f')

/// Ids out: every run of hex digits and dashes of 8 or more with a digit in it (a UUID, a hash, a date, a long
/// number) becomes "#"; every run of whitespace one space; lower case; trimmed.
let private withoutIds (text: string) : string =
    let s = (if isNull text then "" else text).ToLowerInvariant()
    let sb = StringBuilder(s.Length)
    let mutable i = 0
    while i < s.Length do
        let start = i
        if Char.IsWhiteSpace s[i] then
            while i < s.Length && Char.IsWhiteSpace s[i] do
                i <- i + 1
            sb.Append ' ' |> ignore
        elif isHex s[i] || s[i] = '-' then
            while i < s.Length && (isHex s[i] || s[i] = '-') do
                i <- i + 1
            let run = s.Substring(start, i - start)
            let isId = run.Length >= 8 && run |> Seq.exists Char.IsAsciiDigit && run |> Seq.exists (fun ch -> ch <> '-')
            sb.Append(if isId then "#" else run) |> ignore
        else
            sb.Append s[i] |> ignore
            i <- i + 1
    sb.ToString().Trim()

/// The characters that join digit runs into one number: a time (10:32:05), a date (07.12.2026, 12-07), a decimal
/// (3.52), a fraction (3/12).
let private isJoin (c: char) = c = ':' || c = '.' || c = '-' || c = '/'

/// The end of the number that starts at `i`: digit runs joined by single joining characters.
let private numberEnd (s: string) (i: int) : int =
    let mutable j = i
    let mutable go = true
    while go do
        while j < s.Length && Char.IsAsciiDigit s[j] do
            j <- j + 1
        go <- j + 1 < s.Length && isJoin s[j] && Char.IsAsciiDigit s[j + 1]
        if go then j <- j + 1
    j

/// A short counter ("step 7", "batch 3 of 12", "#4", "3/12"): one or two runs of 1–3 digits (two only as a fraction
/// with "/"), with no letter glued to either side. It stays part of the payload; every other number is "0".
let private isCounter (s: string) (i: int) (j: int) : bool =
    let number = s.Substring(i, j - i)
    let parts = number.Split '/'
    let glued (k: int) = k >= 0 && k < s.Length && Char.IsLetter s[k]
    number |> Seq.forall (fun c -> Char.IsAsciiDigit c || c = '/')
    && parts.Length <= 2
    && parts |> Array.forall (fun p -> p.Length >= 1 && p.Length <= 3)
    && not (glued (i - 1) || glued j)

/// A payload as the guard compares it: lower case, every run of whitespace one space, every id "#", every number
/// that is not a short counter (a time, a date, a decimal, a long number, digits glued to a word) "0", trimmed. So a
/// stale result re-posted with a new timestamp or id is the same payload, and "batch 2 done" is not "batch 1 done".
let normalise (text: string) : string =
    let s = withoutIds text
    let sb = StringBuilder(s.Length)
    let mutable i = 0
    while i < s.Length do
        if Char.IsAsciiDigit s[i] then
            let j = numberEnd s i
            sb.Append(if isCounter s i j then s.Substring(i, j - i) else "0") |> ignore
            i <- j
        else
            sb.Append s[i] |> ignore
            i <- i + 1
    sb.ToString()

// ---------------------------------------------------------------------------------------------
// Deciding
// ---------------------------------------------------------------------------------------------

let private over (bound: int) (n: int) = bound > 0 && n > bound

/// The guard is on: some bound is set.
let isOn (bounds: LoopBounds) = bounds.MaxExchanges > 0 || bounds.MaxPerMinute > 0 || bounds.MaxRepeats > 0

/// The trip a message past a bound causes (repeats first: the clearest reason), or None.
let private tripOf (bounds: LoopBounds) (p: Pair) (copies: int) : Trip option =
    if over bounds.MaxRepeats copies then Some(Repeated copies)
    elif over bounds.MaxPerMinute p.Recent.Length then Some(Flooded p.Recent.Length)
    elif over bounds.MaxExchanges p.Count then Some(Exchanged p.Count)
    else None

/// Judges one message of `peer` sent at `at` (None: a time that cannot be read counts as no time — the rate bound
/// does not see it) and records it.
let judge (bounds: LoopBounds) (peer: string) (text: string) (at: DateTimeOffset option) (s: State) : Verdict * State =
    let p = defaultArg (s.Pairs.TryFind peer) fresh
    let key = normalise text
    let copies = 1 + defaultArg (p.Copies.TryFind key) 0
    let recent =
        match at with
        | Some t -> t.UtcTicks :: (p.Recent |> List.filter (fun r -> r > t.UtcTicks - window && r <= t.UtcTicks))
        | None -> p.Recent
    let p = { p with Count = p.Count + 1; Recent = recent; Copies = p.Copies.Add(key, copies) }
    let verdict, p =
        match p.Paused with
        | Some trip -> Suppress(trip, false), p
        | None ->
            match tripOf bounds p copies with
            | Some trip -> Suppress(trip, true), { p with Paused = Some trip }
            | None -> Pass, p
    verdict, { s with Pairs = s.Pairs.Add(peer, p) }

/// A human turn (a message of the user): every running pair starts again; paused pairs stay paused.
let humanTurn (s: State) : State =
    { s with Pairs = s.Pairs |> Map.filter (fun _ p -> p.Paused.IsSome) }

/// The user resumed a pair: it starts again.
let resume (peer: string) (s: State) : State = { s with Pairs = s.Pairs.Remove peer }

let isPaused (peer: string) (s: State) = s.Pairs.TryFind peer |> Option.exists (fun p -> p.Paused.IsSome)

// ---------------------------------------------------------------------------------------------
// Texts
// ---------------------------------------------------------------------------------------------

let private inv (n: int) = n.ToString(Globalization.CultureInfo.InvariantCulture)

/// Why, in a few words.
let reason (trip: Trip) =
    match trip with
    | Repeated n -> $"the same message {inv n} times"
    | Exchanged n -> $"{inv n} messages"
    | Flooded n -> $"{inv n} messages within a minute"
    | StillOpen -> "messages that paused the pair before a restart"

/// The one line that tells the agent (`who`: the peer as the channel names it).
let pausedLine (who: string) (peer: string) (trip: Trip) =
    $"[loop guard] {who} (peer_id={peer}) sent {reason trip} with no human turn in between: its messages are no longer pushed to you. They stay in your inbox (inbox_peek); the user was asked whether to resume the pair."

/// The line that tells the agent the user resumed a pair.
let resumedLine (peer: string) =
    $"[loop guard] The user resumed the pair with peer_id={peer}: its messages are pushed again; the ones held meanwhile are in your inbox (inbox_peek)."

/// The approval the user gets (its title names the peer's workspace id: the resume finds the pair by it).
let requestTitle (who: string) (peer: string) (trip: Trip) =
    let who = if who.Length > 64 then who.Substring(0, 63) + "\u2026" else who
    $"Loop guard: {who} ({peer}) sent {reason trip} with no human turn. Resume the pair?"

let requestDetail =
    "The loop guard paused this pair of agents: the peer's messages stay in the agent's inbox and are no longer pushed. Approve to resume the pair; reject to keep it paused."

/// The peer a loop_guard request names (the workspace id in the last parentheses of its title: a name may hold some).
let peerOfTitle (title: string) : string option =
    let t = if isNull title then "" else title
    let c = t.LastIndexOf ')'
    let o = if c > 0 then t.LastIndexOf('(', c) else -1
    if o >= 0 then WorkspaceId.tryParse (t.Substring(o + 1, c - o - 1)) |> Option.map (fun w -> w.Value) else None

// ---------------------------------------------------------------------------------------------
// Restoring the pauses after a restart
// ---------------------------------------------------------------------------------------------

/// The statuses of a loop_guard request that keep its pair paused: the user has not resumed it yet.
let openStatuses = [ "pending"; "info_requested" ]

/// The peers named by the open loop_guard requests in a list of the workspace's own requests (GET …/requests: a JSON
/// array, or an object with a `requests` array); None when the answer has another shape.
let pausedPeers (body: string) : string list option =
    let isOpen (r: JsonNode) =
        Json.stringProp "source" r = Some(RequestUpdate.sourceName RequestUpdate.LoopGuard)
        && (Json.stringProp "status" r |> Option.exists (fun st -> List.contains st openStatuses))
    Json.tryParse body
    |> Option.bind (fun n -> Json.asArray n |> Option.orElse (Json.prop "requests" n |> Option.bind Json.asArray))
    |> Option.map (fun rs -> rs |> List.filter isOpen |> List.choose (Json.stringProp "title" >> Option.bind peerOfTitle) |> List.distinct)

/// Pairs still paused on the platform: paused again (a pair that paused meanwhile keeps its own trip).
let restore (peers: string list) (s: State) : State =
    let pause (s: State) (peer: string) =
        let p = defaultArg (s.Pairs.TryFind peer) fresh
        { s with Pairs = s.Pairs.Add(peer, { p with Paused = Some(defaultArg p.Paused StillOpen) }) }
    peers |> List.fold pause s

/// The log line of a pair paused again at start.
let stillPausedLine (peer: string) =
    $"[loop guard] the pair with peer_id={peer} stays paused: its loop_guard request is still open (its messages stay in the inbox, not pushed)"

/// The log line of a start-up read that gave nothing (`why`: what the platform answered).
let notRestoredLine (why: string) =
    $"[loop guard] pairs paused before this start not read from the platform ({why}): none restored"
