/// A chaos schedule as data: the platform (in-process with fault injection, or its own process that can be
/// kill -9'd), the workspaces and the molecule-mcp processes serving them, and a seeded sequence of steps.
/// Pure: the same (run seed, index, options) always gives the same schedule.
module Molecule.Tests.Chaos.Schedule

open System

type PlatformKind =
    /// `Server.start` inside the runner: faults through `RunningPlatform.Faults`.
    | InProcess
    /// `molecule-platform platform --data-dir D --port P`: kill -9 and restart on the same data dir and port.
    | OwnProcess
    /// Two `molecule-platform platform --database postgres://…` processes on one database behind nginx (round
    /// robin): a platform kill -9s one of them (in turn) and restarts it; the agents go through the proxy.
    | Cluster

/// Faults on one workspace's delivery routes (`GET /workspaces/<id>/activity`, `POST …/activity/ack`).
type Fault =
    | PollStatus of status: int
    | PollDelay of ms: int
    | PollHang
    | PollDrop
    /// The cursor row is "gone": one 410.
    | PollGone
    | AckStatus of status: int
    /// A fault mode of a misbehaving deployment on the acknowledgement route (Faults.FaultMode: ack-500, ack-503,
    /// ack-catch-all, ack-empty, ack-html, ack-huge-floor, ack-1e300, ack-negative).
    | AckMode of name: string
    /// Heartbeats alone are refused (401) while every other request works.
    | HeartbeatRefused
    /// The platform has no event stream (404; the open one is cut).
    | NoStream
    /// The activity route ignores `include=peer_info` (every workspace, until the faults are cleared).
    | NoPeerInfo

type Step =
    /// `count` messages to workspace `target`, from the canvas (None) or from workspace `from`'s token.
    | Burst of target: int * count: int * from: int option
    | Inject of ws: int * fault: Fault * times: int
    | ClearFaults
    /// kill -9 of one molecule-mcp process (right after its next `inbox_pop` answer when `afterPop`), restarted
    /// `restartMs` later with the same environment.
    | KillAgent of slot: int * afterPop: bool * restartMs: int
    /// kill -9 of the platform process, restarted `downMs` later; `during` = a burst still being sent meanwhile.
    | KillPlatform of downMs: int * during: (int * int) option
    /// Each platform instance in turn stopped gracefully (SIGTERM, its exit awaited) and started again — a rolling
    /// restart (cluster only); while it lasts, one message to each (target, from) of `during` every `everyMs`.
    | RestartInstances of during: (int * int option) list * everyMs: int
    /// The processes of workspace `ws` kill -9'd, `count` messages (more than a page of the agent's fetch) sent to it
    /// from the canvas, the processes started again, and while they page through the backlog one platform instance
    /// kill -9'd and started again 0.5 s later (cluster only).
    | KillDuringBacklog of ws: int * count: int
    | Pause of ms: int
    /// The drivers of workspace `ws` handle nothing for `ms` (the steps go on), so unread messages pile up.
    | Stall of ws: int * ms: int
    /// The platform process is kill -9'd, its data directory copied aside as a backup, and started again.
    | Backup
    /// The platform process is kill -9'd, its data directory replaced by the backup, and started again: its rows,
    /// numbering and acknowledgements go back to the backup's (messages sent since and not yet taken are gone).
    | Restore

/// One molecule-mcp process slot: which workspace it serves and where its state lives.
type Slot =
    { Ws: int
      /// Index of the state dir: slots with the same value share it (CONFIGS_DIR, or HOME when `Home`).
      Dir: int
      /// No CONFIGS_DIR: the state dir is `<HOME>/.molecule-workspace` of a HOME shared by two workspaces.
      Home: bool }

type Schedule =
    { RunSeed: int
      Index: int
      Platform: PlatformKind
      Workspaces: int
      Slots: Slot list
      Steps: Step list }

type Options =
    { /// Messages per schedule, about (bursts share it).
      Messages: int
      /// One schedule in this many gets one burst of 501–600 messages at once (0 = never).
      BigBurstEvery: int
      /// Add a stall of one workspace's drivers with a burst of 1,100–1,300 into it (beyond the 1,000 unread at
      /// which intake pauses). Drawn from a second generator: the other steps stay those of the same seed.
      Stalls: bool
      /// Add the faults of a misbehaving deployment (issue 14): in-process, a lying or failing acknowledgement route,
      /// refused heartbeats, no event stream, no peer info; with the platform process, a backup at the start and a
      /// restore from it later. Drawn from a third generator: the other steps stay those of the same seed.
      Misbehaving: bool }

let defaultOptions = { Messages = 60; BigBurstEvery = 6; Stalls = false; Misbehaving = false }

/// The seed of schedule `index` of a run: stable across processes (HashCode is randomized per process).
let scheduleSeed (runSeed: int) (index: int) =
    let mutable h = 0x9E3779B97F4A7C15UL ^^^ uint64 (uint32 runSeed)
    h <- (h ^^^ uint64 (uint32 index)) * 0xBF58476D1CE4E5B9UL
    h <- (h ^^^ (h >>> 31)) * 0x94D049BB133111EBUL
    int (h >>> 33)

let private layout (rng: Random) (workspaces: int) : Slot list =
    // Workspaces 0 and 1 share one HOME without CONFIGS_DIR in a third of the schedules.
    let sharedHome = rng.Next 3 = 0
    [ for ws in 0 .. workspaces - 1 do
        let home = sharedHome && ws < 2
        let dir = if home then 100 else ws
        // A second process for the same workspace (same state dir) in about half of the workspaces.
        let procs = if rng.Next 2 = 0 then 2 else 1
        for _ in 1..procs do
            { Ws = ws; Dir = dir; Home = home } ]

let private fault (rng: Random) : Fault * int =
    match rng.Next 9 with
    | 0 -> PollStatus 500, rng.Next(1, 7)
    | 1 -> PollStatus 429, rng.Next(1, 7)
    | 2 -> PollStatus 503, rng.Next(1, 7)
    | 3 -> PollDelay(rng.Next(200, 2000)), rng.Next(1, 5)
    | 4 -> PollHang, 1
    | 5 -> PollDrop, rng.Next(1, 4)
    | 6 -> PollGone, 1
    | 7 -> AckStatus 404, rng.Next(1, 4)
    | _ -> AckStatus 500, rng.Next(1, 5)

let private burst (rng: Random) (workspaces: int) (count: int) =
    let target = rng.Next workspaces
    let from = if rng.Next 2 = 0 then None else Some((target + 1 + rng.Next(workspaces - 1)) % workspaces)
    Burst(target, max 1 count, from)

/// The schedule `index` of run `runSeed`: even indexes in-process with faults, odd ones the platform process.
let generate (options: Options) (runSeed: int) (index: int) : Schedule =
    let rng = Random(scheduleSeed runSeed index)
    let kind = if index % 2 = 0 then InProcess else OwnProcess
    let workspaces = rng.Next(2, 4)
    let slots = layout rng workspaces
    let mutable budget = max 1 options.Messages
    let small () =
        let n = min budget (rng.Next(1, max 2 (options.Messages / 3 + 1)))
        budget <- budget - n
        n
    let count = rng.Next(7, 13)
    let steps =
        [ for _ in 1..count do
            let roll = rng.Next 100
            match kind with
            | InProcess when roll < 30 && budget > 0 -> burst rng workspaces (small ())
            | InProcess when roll < 62 -> let f, t = fault rng in Inject(rng.Next workspaces, f, t)
            | InProcess when roll < 77 -> KillAgent(rng.Next slots.Length, rng.Next 2 = 0, rng.Next 1500)
            | InProcess when roll < 87 -> ClearFaults
            | OwnProcess when roll < 35 && budget > 0 -> burst rng workspaces (small ())
            | OwnProcess when roll < 62 -> KillAgent(rng.Next slots.Length, rng.Next 2 = 0, rng.Next 1500)
            | OwnProcess when roll < 82 ->
                let during = if rng.Next 2 = 0 then Some(rng.Next workspaces, rng.Next(20, 80)) else None
                KillPlatform(rng.Next(100, 2500), during)
            | _ -> Pause(rng.Next(100, 1200)) ]
    // Every schedule kills an agent; in-process ones get one 410 (and other faults), process ones kill the platform.
    let ensure (present: Step -> bool) (make: unit -> Step) (steps: Step list) =
        if List.exists present steps then steps
        else
            let at = rng.Next(steps.Length + 1)
            List.insertAt at (make ()) steps
    let steps =
        steps
        |> ensure (function KillAgent _ -> true | _ -> false) (fun () -> KillAgent(rng.Next slots.Length, true, rng.Next 1500))
        |> ensure
            (function Inject(_, PollGone, _) | KillPlatform _ -> true | _ -> false)
            (fun () ->
                match kind with
                | InProcess -> Inject(rng.Next workspaces, PollGone, 1)
                | OwnProcess
                | Cluster -> KillPlatform(rng.Next(100, 2500), None))
    let steps = if budget > 0 then List.insertAt (rng.Next(steps.Length + 1)) (burst rng workspaces budget) steps else steps
    let big = options.BigBurstEvery > 0 && rng.Next options.BigBurstEvery = 0
    let steps = if big then List.insertAt (rng.Next(steps.Length + 1)) (burst rng workspaces (rng.Next(501, 601))) steps else steps
    let steps =
        if options.Stalls then
            let r2 = Random(scheduleSeed runSeed index + 1)
            let ws = r2.Next workspaces
            List.insertManyAt (r2.Next(steps.Length + 1)) [ Stall(ws, r2.Next(6000, 12000)); Burst(ws, r2.Next(1100, 1301), None) ] steps
        else
            steps
    let steps =
        if options.Misbehaving then
            let r3 = Random(scheduleSeed runSeed index + 2)
            match kind with
            | InProcess ->
                let modes = [ "ack-500"; "ack-503"; "ack-catch-all"; "ack-empty"; "ack-html"; "ack-huge-floor"; "ack-1e300"; "ack-negative" ]
                let pick () =
                    match r3.Next 5 with
                    | 0 -> HeartbeatRefused, r3.Next(3, 30)
                    | 1 -> NoStream, r3.Next(2, 20)
                    | 2 -> NoPeerInfo, 1
                    | _ -> AckMode modes[r3.Next modes.Length], r3.Next(5, 200)
                let faults = [ for _ in 1 .. r3.Next(2, 5) -> let f, t = pick () in Inject(r3.Next workspaces, f, t) ]
                faults |> List.fold (fun acc f -> List.insertAt (r3.Next(acc.Length + 1)) f acc) steps
            | OwnProcess
            | Cluster ->
                // the backup first; the restore after at least one step
                let at = 1 + r3.Next(max 1 steps.Length)
                Backup :: List.insertAt (min at steps.Length) Restore steps
        else
            steps
    { RunSeed = runSeed
      Index = index
      Platform = kind
      Workspaces = workspaces
      Slots = slots
      Steps = steps }

/// The rolling restart of two instances behind the proxy (issue 17): three workspaces, one molecule-mcp process each;
/// messages from the canvas and from agent to agent before, during and after each instance in turn is stopped with
/// SIGTERM and started again. During the restarts every workspace an agent writes to gets the user's messages too:
/// ten a second from one peer with no human turn is what the loop guard (at its defaults) pauses as a loop, and this
/// schedule measures pushes, not the guard.
let rollingRestart (runSeed: int) : Schedule =
    { RunSeed = runSeed
      Index = 0
      Platform = Cluster
      Workspaces = 3
      Slots = [ for ws in 0..2 -> { Ws = ws; Dir = ws; Home = false } ]
      Steps =
        [ Burst(0, 5, None)
          Burst(1, 5, Some 0)
          RestartInstances([ 0, None; 1, None; 1, Some 2; 2, None; 2, Some 0 ], 100)
          Burst(2, 5, Some 1)
          Burst(0, 5, Some 2) ] }

/// Two instances behind the proxy, both kill -9'd in turn (issue 17): the first while a backlog of more than one page
/// (`backlog` messages, the agent's page is 500) waits for a workspace whose processes are down, the second while a
/// burst is being sent; two workspaces, one molecule-mcp process each, messages both ways around the kills.
let clusterKills (runSeed: int) (index: int) (backlog: int) : Schedule =
    let rng = Random(scheduleSeed runSeed index)
    let target = rng.Next 2
    { RunSeed = runSeed
      Index = index
      Platform = Cluster
      Workspaces = 2
      Slots = [ for ws in 0..1 -> { Ws = ws; Dir = ws; Home = false } ]
      Steps =
        [ Burst(target, rng.Next(3, 10), Some(1 - target))
          KillDuringBacklog(target, backlog)
          Burst(1 - target, rng.Next(3, 10), Some target)
          KillPlatform(rng.Next(100, 2000), Some(rng.Next 2, rng.Next(20, 60)))
          Burst(target, rng.Next(3, 10), None) ] }

/// A platform-process schedule on two instances behind a proxy instead (its kills take down one instance at a
/// time; a backup and restore of one data directory mean nothing there, so they are left out).
let onCluster (s: Schedule) : Schedule =
    { s with
        Platform = Cluster
        Steps = s.Steps |> List.filter (fun st -> st <> Backup && st <> Restore) }

let private faultText (f: Fault) =
    match f with
    | PollStatus s -> $"poll{s}"
    | PollDelay ms -> $"delay{ms}ms"
    | PollHang -> "hang"
    | PollDrop -> "drop"
    | PollGone -> "410"
    | AckStatus s -> $"ack{s}"
    | AckMode name -> name
    | HeartbeatRefused -> "heartbeat-401"
    | NoStream -> "no-stream"
    | NoPeerInfo -> "no-peer-info"

let rec stepText (step: Step) =
    match step with
    | Burst(t, n, None) -> $"canvas>{t}x{n}"
    | Burst(t, n, Some f) -> $"{f}>{t}x{n}"
    | Inject(ws, f, times) -> $"{faultText f}@{ws}x{times}"
    | ClearFaults -> "clear"
    | KillAgent(slot, afterPop, ms) -> $"""kill9 agent{slot}{(if afterPop then "-after-pop" else "")}+{ms}ms"""
    | KillPlatform(ms, None) -> $"kill9 platform+{ms}ms"
    | KillPlatform(ms, Some(t, n)) -> $"kill9 platform+{ms}ms during {t}x{n}"
    | Pause ms -> $"pause{ms}ms"
    | Stall(ws, ms) -> $"stall{ws}:{ms}ms"
    | Backup -> "backup"
    | Restore -> "restore"
    | KillDuringBacklog(ws, n) -> $"kill9 ws{ws}-agents, canvas>{ws}x{n}, agents back, kill9 instance+500ms"
    | RestartInstances(during, ms) ->
        let bursts = during |> List.map (fun (t, f) -> stepText (Burst(t, 1, f))) |> String.concat ","
        $"rolling-restart during {bursts} every {ms}ms"

let kindText (k: PlatformKind) =
    match k with
    | InProcess -> "in-process"
    | OwnProcess -> "process"
    | Cluster -> "cluster"

/// One line: platform, slots (workspace:state dir, h = shared HOME), steps.
let describe (s: Schedule) =
    let slots = s.Slots |> List.map (fun sl -> $"""{sl.Ws}:{(if sl.Home then "h" else string sl.Dir)}""") |> String.concat ","
    let steps = s.Steps |> List.map stepText |> String.concat " "
    $"{kindText s.Platform} ws={s.Workspaces} slots=[{slots}] | {steps}"
