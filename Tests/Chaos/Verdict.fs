/// Lost / duplicated / leaked, computed only from what the processes said on stdout (Agents.Obs) and what the
/// platform answered the senders. Pure.
module Molecule.Tests.Chaos.Verdict

open System
open Molecule.Tests.Chaos.Agents

/// One message a sender tried to deliver.
type Sent =
    { Text: string
      Target: int
      /// The platform answered HTTP 200.
      Accepted: bool }

type Counts =
    { Sent: int
      Delivered: int
      Lost: int
      Duplicated: int
      Leaked: int
      /// Sends without an HTTP 200 (transport failure while the platform was killed) …
      Unconfirmed: int
      /// … of which delivered anyway (the platform had committed the row).
      UnconfirmedDelivered: int
      /// Not popped with an answer, but an `inbox_pop` for it was in flight when its process was killed, and the
      /// workspace's ledger file records the pop: handled (the answer died with the process).
      InFlightPops: int
      /// Pushed by another process of the workspace after the pop answer arrived, but decided before that process
      /// could know of the pop (see `judge`): counted here, not as duplicates …
      Raced: int
      /// … and the longest such delay (ms).
      RacedMaxMs: float
      /// Messages shown whose text no sender sent.
      Stray: int
      /// Accepted, then taken away by a restore of the platform from a backup before any process saw them: the
      /// platform lost them (not counted as lost when never delivered).
      RolledBack: int }

let zero =
    { Sent = 0; Delivered = 0; Lost = 0; Duplicated = 0; Leaked = 0; Unconfirmed = 0
      UnconfirmedDelivered = 0; InFlightPops = 0; Raced = 0; RacedMaxMs = 0.0; Stray = 0; RolledBack = 0 }

let add (a: Counts) (b: Counts) =
    { Sent = a.Sent + b.Sent; Delivered = a.Delivered + b.Delivered; Lost = a.Lost + b.Lost
      Duplicated = a.Duplicated + b.Duplicated; Leaked = a.Leaked + b.Leaked; Unconfirmed = a.Unconfirmed + b.Unconfirmed
      UnconfirmedDelivered = a.UnconfirmedDelivered + b.UnconfirmedDelivered; InFlightPops = a.InFlightPops + b.InFlightPops
      Raced = a.Raced + b.Raced; RacedMaxMs = max a.RacedMaxMs b.RacedMaxMs; Stray = a.Stray + b.Stray
      RolledBack = a.RolledBack + b.RolledBack }

let failures (c: Counts) = c.Lost + c.Duplicated + c.Leaked + c.Stray

let private ms (x: float) = int x

let private obsText (o: Obs) =
    let what =
        match o.Kind with
        | Shown -> $"peek(sent {ms o.Sent})"
        | Pushed -> "push"
        | Popped true -> $"pop=true(sent {ms o.Sent})"
        | Popped false -> $"pop=false(sent {ms o.Sent})"
        | PopUnanswered -> $"pop unanswered(sent {ms o.Sent})"
    $"p{o.Proc}/ws{o.Ws} {what} @{ms o.At}ms line {o.Pos} id {o.ActivityId}"

/// Counts and, for every failing message, one evidence text.
/// `knew proc pos` = when (runner clock) process `proc` last certainly read the shared ledger before it wrote stdout
/// line `pos`: its start, or the latest request sent before an answer it wrote ahead of that line. A process
/// applies each tool call after reading the ledger and writes its effects (notifications, answers) in the order it
/// decided them, so a push written after such an answer was decided after that read: when the read followed the
/// pop answer, the push is a duplicate; otherwise the push only raced the pop.
/// `inLedger ws activityId` = the ledger file of workspace `ws` records that message as popped.
/// `rolledBack` = the texts a restore of the platform took away before any process saw them.
let judge (sent: Sent list) (obs: Obs list) (knew: int -> int -> float) (inLedger: int -> string -> bool) (rolledBack: Set<string>) : Counts * string list =
    let byText = obs |> List.groupBy (fun o -> o.Text) |> Map.ofList
    let known = sent |> List.map (fun s -> s.Text) |> Set.ofList
    let evidence = ResizeArray<string>()
    let mutable c = zero
    for s in sent do
        let os = defaultArg (byText.TryFind s.Text) [] |> List.sortBy (fun o -> o.At)
        let own = os |> List.filter (fun o -> o.Ws = s.Target)
        let pops = own |> List.filter (fun o -> o.Kind = Popped true)
        let delivered = not pops.IsEmpty
        let leaked = os |> List.exists (fun o -> o.Ws <> s.Target)
        let after, raced =
            match pops with
            | [] -> [], []
            | p :: _ ->
                let late (o: Obs) =
                    match o.Kind with
                    | Shown -> o.Sent > p.At
                    | Pushed when o.Proc = p.Proc -> o.Pos > p.Pos
                    | Pushed -> knew o.Proc o.Pos > p.At
                    | _ -> false
                let racing (o: Obs) = o.Kind = Pushed && o.Proc <> p.Proc && o.At > p.At && not (late o)
                own |> List.filter late, own |> List.filter racing |> List.map (fun o -> o.At - p.At)
        let duplicated = pops.Length > 1 || not after.IsEmpty
        let inFlight =
            not delivered
            && own |> List.exists (fun o -> o.Kind = PopUnanswered && inLedger s.Target o.ActivityId)
        let gone = rolledBack.Contains s.Text && not delivered
        let lost = s.Accepted && not delivered && not inFlight && not gone
        c <-
            { c with
                Sent = c.Sent + (if s.Accepted then 1 else 0)
                Delivered = c.Delivered + (if delivered && s.Accepted then 1 else 0)
                Lost = c.Lost + (if lost then 1 else 0)
                Duplicated = c.Duplicated + (if duplicated then 1 else 0)
                Leaked = c.Leaked + (if leaked then 1 else 0)
                Unconfirmed = c.Unconfirmed + (if s.Accepted then 0 else 1)
                UnconfirmedDelivered = c.UnconfirmedDelivered + (if delivered && not s.Accepted then 1 else 0)
                InFlightPops = c.InFlightPops + (if inFlight && s.Accepted then 1 else 0)
                RolledBack = c.RolledBack + (if gone && s.Accepted then 1 else 0)
                Raced = c.Raced + (if raced.IsEmpty then 0 else 1)
                RacedMaxMs = List.fold max c.RacedMaxMs raced }
        let trail () = os |> List.map obsText |> String.concat "; "
        if lost then evidence.Add $"LOST \"{s.Text}\" (to ws{s.Target}, accepted): {trail ()}"
        if duplicated then
            let why = if pops.Length > 1 then $"popped with removed:true {pops.Length} times" else "shown after it was popped"
            evidence.Add $"DUPLICATED \"{s.Text}\" (to ws{s.Target}): {why}: {trail ()}"
        if leaked then evidence.Add $"LEAKED \"{s.Text}\" (to ws{s.Target}): {trail ()}"
    let stray = obs |> List.filter (fun o -> not (known.Contains o.Text)) |> List.distinctBy (fun o -> o.Text)
    for o in stray do
        evidence.Add $"STRAY \"{o.Text}\" (no sender sent it): {obsText o}"
    { c with Stray = stray.Length }, List.ofSeq evidence

let line (c: Counts) =
    $"sent {c.Sent}, delivered {c.Delivered}, lost {c.Lost}, duplicated {c.Duplicated}, leaked {c.Leaked}"

let extra (c: Counts) =
    $"unconfirmed sends {c.Unconfirmed} (delivered {c.UnconfirmedDelivered}), pops in flight at kill -9 {c.InFlightPops}, raced pushes {c.Raced} (at most {int c.RacedMaxMs} ms after the pop), stray {c.Stray}, taken away by a restore before any process saw them {c.RolledBack}"

/// The highest rate per route (workspace ids as `:id`) over the workspaces of a schedule, from the platform's
/// (method and path, highest requests in one second); the senders' own `POST …/a2a` are not the agents'.
let routeRates (workspaceIds: string list) (highest: (string * int) list) : (string * int) list =
    highest
    |> List.choose (fun (key, n) ->
        match workspaceIds |> List.tryFind (fun id -> key.Contains id) with
        | Some id when not (key.StartsWith "POST " && key.EndsWith "/a2a") -> Some(key.Replace(id, ":id"), n)
        | Some _ -> None
        | None when key.Contains "/registry/" -> Some(key, n)
        | None -> None)
    |> List.groupBy fst
    |> List.map (fun (route, xs) -> route, xs |> List.map snd |> List.max)
    |> List.sortByDescending snd

/// Merges the highest rates of several schedules (the highest per route).
let mergeRates (a: (string * int) list) (b: (string * int) list) =
    a @ b |> List.groupBy fst |> List.map (fun (r, xs) -> r, xs |> List.map snd |> List.max) |> List.sortByDescending snd

// ---------------------------------------------------------------------------------------------
// What the loop guard sees
// ---------------------------------------------------------------------------------------------

/// The loop guard's measures over a schedule's messages: per pair (sender workspace → target workspace), the most
/// messages with no human turn in between (a message of the user to the target), the most within any 60 s, the most
/// copies of one payload (normalised as the guard does).
type Peaks = { Exchanges: int; PerMinute: int; Copies: int }

let noPeaks = { Exchanges = 0; PerMinute = 0; Copies = 0 }

let maxPeaks (a: Peaks) (b: Peaks) =
    { Exchanges = max a.Exchanges b.Exchanges; PerMinute = max a.PerMinute b.PerMinute; Copies = max a.Copies b.Copies }

/// The peaks of messages in the order they were sent: (sender workspace, None = the user; target; text; sent at ms).
let peaks (messages: (int option * int * string * float) list) : Peaks =
    let step (runs: Map<int * int, (string * float) list>, best: Peaks) (from: int option, target: int, text: string, at: float) =
        match from with
        | None -> runs |> Map.filter (fun (_, t) _ -> t <> target), best
        | Some f ->
            let key = Molecule.Core.LoopGuard.normalise text
            let run = (key, at) :: defaultArg (runs.TryFind(f, target)) []
            let inMinute = run |> List.filter (fun (_, t) -> t > at - 60000.0) |> List.length
            let copies = run |> List.filter (fun (k, _) -> k = key) |> List.length
            runs.Add((f, target), run), maxPeaks best { Exchanges = run.Length; PerMinute = inMinute; Copies = copies }
    messages |> List.fold step (Map.empty, noPeaks) |> snd

let peaksText (p: Peaks) =
    $"{p.Exchanges} messages of one pair with no human turn, {p.PerMinute} within a minute, {p.Copies} copies of one payload"

/// Why a `[loop guard] …` pause line paused its pair ("31 messages within a minute"); None for another line (a resume).
let tripReason (line: string) : string option =
    let a = line.IndexOf " sent "
    let b = line.IndexOf " with no human turn"
    if line.StartsWith "[loop guard] " && a > 0 && b > a then Some(line.Substring(a + 6, b - a - 6)) else None

/// The pauses of a schedule in one phrase: "2 (31 messages within a minute; 9 copies of …)", or "none".
let tripsText (reasons: string list) =
    if reasons.IsEmpty then "none" else $"""{reasons.Length} ({String.Join("; ", reasons)})"""
