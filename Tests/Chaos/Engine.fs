/// Runs one schedule: a fresh platform, its workspaces, the molecule-mcp processes with a driver each, the steps,
/// then faults cleared, dead processes restarted and a drain until quiet; then the verdict and the output checks
/// (stdout JSON-RPC only, no token in any output). A failed schedule keeps its directory with every log.
module Molecule.Tests.Chaos.Engine

open System
open System.Collections.Concurrent
open System.IO
open System.Threading
open System.Threading.Tasks
open Molecule.Tests.Host.Harness
open Molecule.Tests.Chaos.Schedule
open Molecule.Tests.Chaos.Agents

type Settings =
    { PlatformBinary: string
      /// Each schedule works in `<Root>/<run seed>-<index>` (deleted when the schedule passed).
      Root: string
      /// Quiet time that ends the drain once every accepted message was popped.
      QuietMs: int
      /// The drain gives up after this long.
      DrainSecs: float }

let defaultSettings () =
    { PlatformBinary = Molecule.Tests.Support.Binary.platformPath ()
      Root = Path.Combine(Path.GetTempPath(), "molecule-chaos")
      QuietMs = 1500
      DrainSecs = 60.0 }

type Outcome =
    { Schedule: Schedule
      Counts: Verdict.Counts
      Evidence: string list
      /// Output checks that failed: stdout that is not JSON-RPC, a token in some output.
      Hygiene: string list
      Error: string option
      Processes: int
      Secs: float
      Dir: string
      /// The highest request rate any agent reached per route (route with `:id`, requests in one second; in-process
      /// platforms only: the process platform counts nothing).
      Rates: (string * int) list
      /// Messages a process was handed by push (a channel notification), each counted once.
      Pushed: int
      /// Why the loop guard paused a pair, once per pause and process (the pair's messages were still handled: the
      /// verdict counts them like any other).
      Trips: string list
      /// What the loop guard saw of the schedule's messages.
      Peaks: Verdict.Peaks
      /// Per message pushed: ms from its send to its first push.
      PushMs: float list }

    member o.Failed = Verdict.failures o.Counts > 0 || not o.Hygiene.IsEmpty || o.Error.IsSome

/// The env of one slot: the printed config (three variables), fast loops, and its state dir; the loop guard at its
/// defaults. A burst of dozens of numbered messages a second from one agent to another, with no human turn, pauses
/// that pair (the rate bound): its messages are no longer pushed but still handled through inbox_peek/inbox_pop,
/// and the verdict counts them like every other message; the summary reports each pause.
let private slotEnv (b: Backend.Backend) (ws: Workspace) (slot: Slot) (dir: string) =
    let state =
        if slot.Home then [ "HOME", Path.Combine(dir, "home-shared") ]
        else [ "CONFIGS_DIR", Path.Combine(dir, $"configs-{slot.Dir}") ]
    [ "WORKSPACE_ID", ws.Id
      "PLATFORM_URL", b.Url
      "MOLECULE_WORKSPACE_TOKEN", ws.Token
      "MOLECULE_AGENT_NAME", ws.Name
      "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.3"
      "MOLECULE_MCP_POLL_INTERVAL_SECS", "0.3"
      "MOLECULE_MCP_VERBOSE", "1" ]
    @ state

let private tracing = Environment.GetEnvironmentVariable "CHAOS_TRACE" = "1"
let private trace (text: string) = if tracing then eprintfn "[chaos] %s" text

let private within (ms: int) (t: Task) = Task.WhenAny(t, Task.Delay ms) :> Task

/// Complete lines only for a killed process (kill -9 may cut its last line).
let private completeLines (p: AgentProc) =
    let bytes = p.StdoutBytes
    if p.Killed then bytes[.. Array.LastIndexOf(bytes, byte '\n')] else bytes

let private checkOutputs (procs: AgentProc list) (platformOutput: string list) (secrets: string list) =
    let problems = ResizeArray<string>()
    for p in procs do
        if p.ExitedUnasked then
            let code = match p.ExitCode with Some c -> string c | None -> "?"
            let tail = p.StderrLines |> List.rev |> List.truncate 5 |> List.rev |> String.concat " | "
            problems.Add $"p{p.Id} (workspace {p.Ws}) exited on its own with code {code}: {tail}"
        try
            assertJsonRpcLines $"process p{p.Id} (workspace {p.Ws})" (completeLines p) |> ignore
        with e ->
            problems.Add $"p{p.Id}: {e.Message}"
        try
            assertNoSecrets secrets $"p{p.Id} stdout" [ Text.Encoding.UTF8.GetString p.StdoutBytes ]
            assertNoSecrets secrets $"p{p.Id} stderr" p.StderrLines
        with e ->
            problems.Add e.Message
    try
        assertNoSecrets secrets "the platform's output" platformOutput
    with e ->
        problems.Add e.Message
    List.ofSeq problems

let private saveLogs (dir: string) (procs: AgentProc list) (platformOutput: string list) (lines: string list) =
    let logs = Path.Combine(dir, "logs")
    Directory.CreateDirectory logs |> ignore
    for p in procs do
        File.WriteAllBytes(Path.Combine(logs, $"p{p.Id}-ws{p.Ws}.stdout"), p.StdoutBytes)
        File.WriteAllLines(Path.Combine(logs, $"p{p.Id}-ws{p.Ws}.stderr"), p.StderrLines)
    File.WriteAllLines(Path.Combine(logs, "platform.out"), platformOutput)
    File.WriteAllLines(Path.Combine(dir, "verdict.txt"), lines)

/// Whether the ledger file of workspace `ws` (in any of its state dirs) records `activityId` as popped: a
/// `popped` event line, or (after a compaction) in the snapshot's `seen` and not in its `queue`.
let private poppedInLedger (workspaces: Workspace list) (stateDirs: (int * string) list) (ws: int) (activityId: string) =
    stateDirs
    |> List.exists (fun (w, d) ->
        let file = Path.Combine(d, $"inbox-{workspaces[ws].Id.ToLowerInvariant()}.jsonl")
        w = ws
        && File.Exists file
        && (let lines = File.ReadAllLines file
            let quoted = $"\"{activityId}\""
            lines |> Array.exists (fun l -> l.Contains "\"popped\"" && l.Contains quoted)
            || (lines.Length > 1
                && (try
                        let snap = parseJson lines[1]
                        let has (key: string) = snap[key].AsArray() |> Seq.exists (fun n -> n.ToJsonString().Contains quoted)
                        has "seen" && not (has "queue")
                    with _ ->
                        false))))

/// Runs one schedule to its verdict. Never throws: a failure of the runner itself is the outcome's Error.
let run (settings: Settings) (s: Schedule) : Task<Outcome> =
    task {
        let dir = Path.Combine(settings.Root, $"{s.RunSeed}-{s.Index}")
        if Directory.Exists dir then Directory.Delete(dir, true)
        Directory.CreateDirectory dir |> ignore
        let rec' = Recorder()
        let sw = Diagnostics.Stopwatch.StartNew()
        let sent = ConcurrentQueue<Verdict.Sent>()
        // what the loop guard sees: (sender, target, text, sent at)
        let seen = ConcurrentQueue<int option * int * string * float>()
        let sentAt = ConcurrentDictionary<string, float>()
        let agents = ResizeArray<Agent>()
        let errors = ConcurrentQueue<string>()
        let mutable backend: Backend.Backend option = None
        let mutable workspaces: Workspace list = []
        let mutable counter = 0
        use stop = new CancellationTokenSource()
        let drivers = ResizeArray<Task>()
        let stalls = ResizeArray<Task>()
        let mutable previous = Pause 0
        // messages sent when the backup was taken, and those a restore took away before any process saw them
        let mutable sentAtBackup = None
        let rolledBack = Collections.Generic.HashSet<string>()

        let burst (target: int) (count: int) (from: int option) : Task =
            task {
                let b = backend.Value
                let t = workspaces[target]
                let f = from |> Option.map (fun i -> workspaces[i])
                let quota = ref count
                let worker () =
                    task {
                        while Interlocked.Decrement &quota.contents >= 0 do
                            let n = Interlocked.Increment &counter
                            let text = $"chaos {s.RunSeed}/{s.Index} #{n} to ws{target}"
                            let at = rec'.Now
                            sentAt[text] <- at
                            let! ok = Backend.sendMessage b t f text
                            sent.Enqueue { Text = text; Target = target; Accepted = ok }
                            if ok then seen.Enqueue((from, target, text, at))
                            // A refused send: the platform is down; this worker stops.
                            if not ok then quota.Value <- 0
                    }
                do! Task.WhenAll [ for _ in 1 .. min 4 count -> worker () :> Task ]
            }

        let killAgent (slot: int) (afterPop: bool) (restartMs: int) =
            task {
                let a = agents[slot % agents.Count]
                match a.Current with
                | Some p ->
                    if afterPop then
                        // The other processes of the workspace hold still, so that this one pops next.
                        let others = agents |> Seq.filter (fun o -> o.Ws = a.Ws && o.Slot <> a.Slot) |> List.ofSeq
                        for o in others do
                            o.Hold <- true
                        p.KillOnPop()
                        do! burst a.Ws 3 None
                        let deadline = rec'.Now + 5000.0
                        while p.Alive && rec'.Now < deadline do
                            do! Task.Delay 10
                        for o in others do
                            o.Hold <- false
                    trace $"#{s.Index} slot {slot}: popped and killed: {not p.Alive} at {rec'.Now:F0} ms"
                    if p.Alive then p.Kill()
                    do! within 5000 p.Exited
                    trace $"#{s.Index} slot {slot}: stdout closed at {rec'.Now:F0} ms"
                | None -> ()
                do! Task.Delay restartMs
                do! a.Start()
                trace $"#{s.Index} slot {slot}: restarted at {rec'.Now:F0} ms"
            }

        let step (st: Step) : Task =
            task {
                let b = backend.Value
                match st with
                | Burst(target, count, from) -> do! burst target count from
                | Inject(ws, fault, times) ->
                    b.Faults |> Option.iter (fun f -> Backend.inject f workspaces[ws].Id fault times)
                | ClearFaults -> b.Faults |> Option.iter (fun f -> f.ClearAll())
                | Backup ->
                    let! taken = b.Backup()
                    if taken then sentAtBackup <- Some sent.Count
                | Restore ->
                    match sentAtBackup with
                    | Some n ->
                        let! restored = b.Restore()
                        if restored then
                            let seen = rec'.All |> List.map (fun o -> o.Text) |> Set.ofList
                            for m in sent |> Seq.skip n do
                                if not (seen.Contains m.Text) then rolledBack.Add m.Text |> ignore
                    | None -> ()
                | KillAgent(slot, afterPop, ms) -> do! killAgent slot afterPop ms
                | KillPlatform(downMs, during) ->
                    let sending = match during with Some(t, n) -> burst t n None | None -> Task.CompletedTask
                    do! Task.Delay 100
                    if b.Kill() then
                        do! Task.Delay downMs
                        do! b.Restart()
                    do! sending
                | KillDuringBacklog(ws, count) ->
                    let down = agents |> Seq.filter (fun a -> a.Ws = ws) |> List.ofSeq
                    for a in down do
                        match a.Current with
                        | Some p ->
                            p.Kill()
                            do! within 5000 p.Exited
                        | None -> ()
                    do! burst ws count None
                    // the processes come back to the backlog and page through it; an instance dies meanwhile
                    let starting = Task.WhenAll [ for a in down -> a.Start() ]
                    do! Task.Delay 200
                    if b.Kill() then
                        do! Task.Delay 500
                        do! b.Restart()
                    do! starting
                | RestartInstances(during, everyMs) ->
                    let rolling = b.Roll()
                    while not rolling.IsCompleted do
                        do! Task.WhenAll [ for (t, f) in during -> burst t 1 f ]
                        do! Task.Delay everyMs
                    let! _ = rolling
                    ()
                | Pause ms -> do! Task.Delay ms
                | Stall(ws, _) ->
                    for a in agents do
                        if a.Ws = ws then a.Stalled <- true
                // A stall lasts until `ms` after the step that follows it (the burst into the stalled workspace).
                match previous with
                | Stall(ws, ms) ->
                    let held = agents |> Seq.filter (fun a -> a.Ws = ws) |> List.ofSeq
                    stalls.Add(Task.Delay(ms).ContinueWith(fun (_: Task) -> for a in held do a.Stalled <- false))
                | _ -> ()
                previous <- st
                do! Task.Delay 150
            }

        // Popped, or a pop in flight at a kill (checked against the ledger file afterwards).
        let allPopped () =
            let popped =
                rec'.All
                |> List.choose (fun o -> match o.Kind with Popped true | PopUnanswered -> Some o.Text | _ -> None)
                |> Set.ofList
            sent |> Seq.forall (fun m -> not m.Accepted || popped.Contains m.Text || rolledBack.Contains m.Text)

        try
            try
                let! b = Backend.start s.Platform settings.PlatformBinary (Path.Combine(dir, "platform"))
                backend <- Some b
                let! ws = Task.WhenAll [ for i in 0 .. s.Workspaces - 1 -> Backend.createWorkspace b $"chaos {s.Index} ws{i}" ]
                workspaces <- List.ofArray ws
                let ids = ref 0
                for i, slot in List.indexed s.Slots do
                    agents.Add(Agent(i, slot.Ws, slotEnv b workspaces[slot.Ws] slot dir, rec', ids))
                do! Task.WhenAll [ for a in agents -> a.Start() ]
                for a in agents do
                    drivers.Add(
                        task {
                            try
                                do! drive a rec' stop.Token
                            with e ->
                                errors.Enqueue $"driver of slot {a.Slot}: {e.Message}"
                        })
                trace $"#{s.Index} started at {rec'.Now:F0} ms"
                for st in s.Steps do
                    do! step st
                    trace $"#{s.Index} {stepText st} done at {rec'.Now:F0} ms"
                // The end: no faults, every slot running, then drain until every accepted message was popped and
                // nothing was shown for QuietMs (or the drain gives up).
                // Quiet is not enough: each workspace must have polled again (in-process: three more polls seen by
                // the platform; process: 3 s), so that a replay started by a late fault shows what it would show.
                b.Faults |> Option.iter (fun f -> f.ClearAll())
                do! Task.WhenAll stalls
                for a in agents do
                    a.Stalled <- false
                let polls () =
                    match b.Faults with
                    | Some f -> workspaces |> List.map (fun w -> f.Requests("GET", $"/workspaces/{w.Id}/activity"))
                    | None -> []
                let before = polls ()
                let cleared = rec'.Now
                for a in agents do
                    if a.Current.IsNone then do! a.Start()
                let polledAgain () =
                    rec'.Now - cleared > 3000.0 || (not before.IsEmpty && List.forall2 (fun n0 n -> n >= n0 + 3) before (polls ()))
                let deadline = rec'.Now + settings.DrainSecs * 1000.0
                let mutable settled = false
                while not settled && rec'.Now < deadline do
                    do! Task.Delay 200
                    settled <- rec'.Now - rec'.LastActivity > float settings.QuietMs && polledAgain () && allPopped ()
                trace $"#{s.Index} drained at {rec'.Now:F0} ms"
            with e ->
                errors.Enqueue $"runner: {e.GetType().Name}: {e.Message}"
        finally
            stop.Cancel()
        do! within 25000 (Task.WhenAll drivers)
        let procs = agents |> Seq.collect (fun a -> a.Runs) |> List.ofSeq
        let paused = procs |> List.filter (fun p -> p.StderrLines |> List.exists (fun l -> l.Contains "pausing intake"))
        if not paused.IsEmpty then trace $"#{s.Index} intake paused (inbox full) in p{paused.Head.Id} and {paused.Length - 1} more"
        do! Task.WhenAll [ for p in procs -> p.Close() ]
        let knowledge =
            procs
            |> List.map (fun p ->
                p.Id, (p.Started, p.Answered |> List.sortBy snd |> List.scan (fun (m, _) (t, pos) -> max m t, pos) (p.Started, -1)))
            |> Map.ofList
        let knew (proc: int) (pos: int) =
            match knowledge.TryFind proc with
            | Some(start, steps) -> steps |> List.filter (fun (_, at) -> at < pos) |> List.fold (fun m (t, _) -> max m t) start
            | None -> 0.0
        let stateDirs =
            s.Slots
            |> List.map (fun sl ->
                sl.Ws, (if sl.Home then Path.Combine(dir, "home-shared", ".molecule-workspace") else Path.Combine(dir, $"configs-{sl.Dir}")))
            |> List.distinct
        let counts, evidence = Verdict.judge (List.ofSeq sent) rec'.All knew (poppedInLedger workspaces stateDirs) (Set.ofSeq rolledBack)
        let rates =
            match backend with
            | Some b ->
                match b.Faults with
                | Some f -> Verdict.routeRates (workspaces |> List.map (fun w -> w.Id)) f.HighestRates
                | None -> []
            | None -> []
        let platformOutput = match backend with Some b -> b.Output | None -> []
        let secrets =
            (workspaces |> List.map (fun w -> w.Token)) @ (match backend with Some b -> [ b.AdminToken ] | None -> [])
        let hygiene = checkOutputs procs platformOutput secrets
        match backend with
        | Some b -> do! within 15000 (b.Stop())
        | None -> ()
        let outcome =
            { Schedule = s
              Counts = counts
              Evidence = evidence
              Hygiene = hygiene
              Error = (if errors.IsEmpty then None else Some(String.Join("; ", errors)))
              Processes = procs.Length
              Secs = sw.Elapsed.TotalSeconds
              Dir = dir
              Rates = rates
              Pushed = rec'.All |> List.filter (fun o -> o.Kind = Pushed) |> List.map (fun o -> o.Text) |> List.distinct |> List.length
              Trips = rec'.Trips |> List.choose (fun t -> Verdict.tripReason t.Line)
              Peaks = Verdict.peaks (seen |> List.ofSeq |> List.sortBy (fun (_, _, _, at) -> at))
              PushMs =
                rec'.All
                |> List.filter (fun o -> o.Kind = Pushed && sentAt.ContainsKey o.Text)
                |> List.groupBy (fun o -> o.Text)
                |> List.map (fun (t, os) -> (os |> List.map (fun o -> o.At) |> List.min) - sentAt[t]) }
        if outcome.Failed then
            let lines = [ describe s ] @ evidence @ hygiene @ (outcome.Error |> Option.toList)
            saveLogs dir procs platformOutput lines
        else
            try
                Directory.Delete(dir, true)
            with _ ->
                ()
        return outcome
    }

/// The per-schedule line the runner prints.
let summaryLine (o: Outcome) =
    let kind = kindText o.Schedule.Platform
    let status = if o.Failed then "FAIL" else "ok"
    let secs = o.Secs.ToString("0.0", Globalization.CultureInfo.InvariantCulture)
    $"#{o.Schedule.Index} {status} {kind} ws={o.Schedule.Workspaces} processes={o.Processes}: {Verdict.line o.Counts}; loop guard pauses {Verdict.tripsText o.Trips} ({secs} s)"
