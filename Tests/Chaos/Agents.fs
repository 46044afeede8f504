/// The molecule-mcp processes of a schedule and the drivers that handle their messages. Each process is read
/// line by line as its stdout arrives (the harness's RawProcess re-reads all of stdout on every look, too slow for
/// thousands of lines on 2 shared cores): responses complete their request, channel notifications are recorded
/// with their arrival time and stdout position, and every byte is kept for the JSON-RPC check.
module Molecule.Tests.Chaos.Agents

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Molecule.Tests.Host.Harness

type Kind =
    | Shown
    | Pushed
    | Popped of removed: bool
    /// An `inbox_pop` sent to a process that died before answering it.
    | PopUnanswered

/// What one process showed or did with one message, as read from its stdout.
type Obs =
    { Proc: int
      /// The workspace the process serves.
      Ws: int
      Kind: Kind
      Text: string
      ActivityId: string
      /// Runner clock (ms): when the request was sent (tools), or when the line arrived (notifications).
      Sent: float
      /// When the answer or notification line arrived.
      At: float
      /// Index of the line in the process's stdout.
      Pos: int }

/// A pair the loop guard paused: the process, and its one `[loop guard] …` line.
type Trip = { TripProc: int; Line: string }

/// Everything observed in one schedule, on one clock.
type Recorder() =
    let clock = Stopwatch.StartNew()
    let all = ConcurrentQueue<Obs>()
    let trips = ConcurrentQueue<Trip>()
    let mutable last = 0.0
    member _.Now = clock.Elapsed.TotalMilliseconds
    member this.Add(o: Obs) =
        all.Enqueue o
        last <- this.Now
    member _.LastActivity = last
    member _.All = List.ofSeq all
    member _.AddTrip(t: Trip) = trips.Enqueue t
    /// The loop guard's lines (a pause; a resume), not messages: kept apart from the observations.
    member _.Trips = List.ofSeq trips

/// A response line: the message, when it arrived (runner clock, ms) and its index in stdout.
type Answer = { Node: JsonObject; At: float; Pos: int }

let private textOfResult (r: JsonObject) =
    match r with
    | null -> None
    | r ->
        match r["result"] with
        | :? JsonObject as res when not (isNull res["content"]) ->
            match (res["content"].AsArray()).[0] with
            | null -> None
            | first -> Some(first["text"].GetValue<string>())
        | _ -> None

/// A channel notification that is the loop guard's own line (meta kind loop_guard), not a message.
let private isGuardLine (o: JsonObject) =
    match o["params"] with
    | :? JsonObject as p -> (match p["meta"] with :? JsonObject as m -> strOf m "kind" = "loop_guard" | _ -> false)
    | _ -> false

/// One run of the published molecule-mcp binary (a restart is a new AgentProc).
type AgentProc(id: int, ws: int, env: (string * string) list, rec': Recorder) as self =
    let psi =
        ProcessStartInfo(
            Molecule.Tests.Support.Binary.path (),
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false
        )
    do
        psi.Environment.Clear()
        for kv in baseEnv () do
            psi.Environment[kv.Key] <- kv.Value
        for (k, v) in env do
            psi.Environment[k] <- v
        psi.StandardInputEncoding <- UTF8Encoding(false)
    let started = rec'.Now
    let proc = Process.Start psi
    let raw = new MemoryStream()
    let stderr = ConcurrentQueue<string>()
    let pending = ConcurrentDictionary<int, TaskCompletionSource<Answer option>>()
    let pops = ConcurrentDictionary<int, unit>()
    let answered = ConcurrentQueue<float * int>()
    let exited = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    let writeGate = obj ()
    let mutable nextId = 0
    let mutable pos = 0
    let mutable killOnPop = false
    let mutable killed = false
    let mutable poppedKill = false
    let mutable closing = false
    let mutable unasked = false

    let onLine (bytes: byte[]) =
        let at = rec'.Now
        let here = pos
        pos <- pos + 1
        let node = try JsonNode.Parse(Encoding.UTF8.GetString bytes) with _ -> null
        match node with
        | :? JsonObject as o when strOf o "method" = "notifications/claude/channel" && isGuardLine o ->
            rec'.AddTrip { TripProc = id; Line = strOf o["params"] "content" }
        | :? JsonObject as o when strOf o "method" = "notifications/claude/channel" ->
            let p = o["params"]
            let meta = p["meta"]
            rec'.Add { Proc = id; Ws = ws; Kind = Pushed; Text = pushedText p; ActivityId = strOf meta "activity_id"
                       Sent = at; At = at; Pos = here }
        | :? JsonObject as o when not (isNull o["id"]) && o["id"].GetValueKind() = Text.Json.JsonValueKind.Number ->
            let rid = o["id"].GetValue<int>()
            // kill -9 as soon as a pop answer that removed a message is read, before anything else happens.
            if killOnPop && pops.ContainsKey rid then
                match textOfResult o |> Option.filter (fun t -> t.StartsWith "{") |> Option.map parseJson with
                | Some a when a["removed"].GetValue<bool>() ->
                    killOnPop <- false
                    poppedKill <- true
                    self.Kill()
                | _ -> ()
            match pending.TryRemove rid with
            | true, tcs -> tcs.TrySetResult(Some { Node = o; At = at; Pos = here }) |> ignore
            | _ -> ()
        | _ -> ()

    let pump =
        Task.Run(fun () ->
            task {
                let s = proc.StandardOutput.BaseStream
                let buf = Array.zeroCreate<byte> 65536
                let line = new MemoryStream()
                let mutable n = 1
                while n > 0 do
                    let! r = s.ReadAsync(buf, 0, buf.Length)
                    n <- r
                    if n > 0 then
                        lock raw (fun () -> raw.Write(buf, 0, n))
                        let mutable start = 0
                        for i in 0 .. n - 1 do
                            if buf[i] = '\n'B then
                                line.Write(buf, start, i - start)
                                onLine (line.ToArray())
                                line.SetLength 0L
                                start <- i + 1
                        if start < n then line.Write(buf, start, n - start)
                unasked <- not killed && not closing
                exited.TrySetResult() |> ignore
                for kv in pending do
                    kv.Value.TrySetResult None |> ignore
            }
            :> Task)

    do
        proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then stderr.Enqueue e.Data)
        proc.BeginErrorReadLine()

    member _.Id = id
    member _.Ws = ws
    member _.Started = started
    member _.Pid = proc.Id
    member _.Killed = killed
    /// Killed by the runner right after a pop answer.
    member _.KilledAfterPop = poppedKill
    member _.Alive = not killed && not exited.Task.IsCompleted
    /// Stdout closed though nobody killed the process or closed its stdin (a crash, or an exit of its own).
    member _.ExitedUnasked = unasked
    member _.ExitCode = try (if proc.HasExited then Some proc.ExitCode else None) with _ -> None
    member _.Exited = exited.Task
    member _.StdoutBytes = lock raw (fun () -> raw.ToArray())
    member _.StderrLines = List.ofSeq stderr
    member _.KillOnPop() = killOnPop <- true

    /// (request sent at, answer line) of every answered request.
    member _.Answered = List.ofSeq answered

    member _.Kill() =
        killed <- true
        try
            proc.Kill() // SIGKILL
        with _ ->
            ()

    /// A JSON-RPC request; None when the process died, closed stdout or did not answer within `timeoutSecs`.
    member _.Request(meth: string, pars: JsonNode, ?isPop: bool, ?timeoutSecs: float) : Task<Answer option> =
        task {
            let rid = Interlocked.Increment &nextId
            let tcs = TaskCompletionSource<Answer option>(TaskCreationOptions.RunContinuationsAsynchronously)
            pending[rid] <- tcs
            if defaultArg isPop false then pops[rid] <- ()
            let o = JsonObject()
            o["jsonrpc"] <- JsonValue.Create "2.0"
            o["id"] <- JsonValue.Create rid
            o["method"] <- JsonValue.Create meth
            if not (isNull pars) then o["params"] <- pars
            try
                lock writeGate (fun () ->
                    proc.StandardInput.Write(o.ToJsonString() + "\n")
                    proc.StandardInput.Flush())
            with _ ->
                tcs.TrySetResult None |> ignore
            if exited.Task.IsCompleted then tcs.TrySetResult None |> ignore
            let sent = rec'.Now
            let! first = Task.WhenAny(tcs.Task, Task.Delay(TimeSpan.FromSeconds(defaultArg timeoutSecs 20.0)))
            pending.TryRemove rid |> ignore
            let answer = if Object.ReferenceEquals(first, tcs.Task) then tcs.Task.Result else None
            answer |> Option.iter (fun a -> answered.Enqueue((sent, a.Pos)))
            return answer
        }

    member this.Initialize() : Task<bool> =
        task {
            let pars = parseJson "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"chaos\",\"version\":\"1\"}}"
            let! r = this.Request("initialize", pars)
            if r.IsNone || isNull r.Value.Node["result"] then
                return false
            else
                try
                    lock writeGate (fun () ->
                        proc.StandardInput.Write("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
                        proc.StandardInput.Flush())
                    return true
                with _ ->
                    return false
        }

    /// A tool call's text and its answer line, or None when the process died or did not answer.
    member this.Tool(name: string, args: string, ?isPop: bool) : Task<(string * Answer) option> =
        task {
            let! r = this.Request("tools/call", parseJson $"{{\"name\":\"{name}\",\"arguments\":{args}}}", defaultArg isPop false)
            return r |> Option.bind (fun a -> textOfResult a.Node |> Option.map (fun t -> t, a))
        }

    /// Ends the process the way a client does (stdin EOF), kill -9 after 5 s; waits for stdout to close.
    member this.Close() : Task =
        task {
            closing <- true
            try
                proc.StandardInput.Close()
            with _ ->
                ()
            let! _ = Task.WhenAny(exited.Task, Task.Delay 5000)
            if not exited.Task.IsCompleted then this.Kill()
            let! _ = Task.WhenAny(pump, Task.Delay 5000)
            try
                proc.WaitForExit 5000 |> ignore
            with _ ->
                ()
        }

/// A process slot: the same environment, one process at a time (restarted after a kill).
type Agent(slot: int, ws: int, env: (string * string) list, rec': Recorder, ids: int ref) =
    let runs = ResizeArray<AgentProc>()
    let mutable current: AgentProc option = None
    let mutable hold = false
    let mutable stalled = false
    member _.Slot = slot
    /// While set, the driver handles nothing (another slot of the workspace is to pop the next message).
    member _.Hold
        with get () = hold
        and set v = hold <- v
    /// While set, the driver handles nothing (a Stall step).
    member _.Stalled
        with get () = stalled
        and set v = stalled <- v
    member _.Ws = ws
    member _.Env = env
    member _.Runs = List.ofSeq runs
    member _.Current = current |> Option.filter (fun p -> p.Alive)

    member _.Start() : Task =
        task {
            let id = Interlocked.Increment &ids.contents
            let p = new AgentProc(id, ws, env, rec')
            runs.Add p
            let! ok = p.Initialize()
            if not ok then failwith $"""molecule-mcp (slot {slot}) did not answer initialize: {String.Join("\n", p.StderrLines)}"""
            current <- Some p
        }

/// Handles the messages of one slot through the poll tools until `stop`: `inbox_peek` (recorded as shown), then
/// one `inbox_pop` per message shown, sent together and recorded as they are answered.
let drive (a: Agent) (rec': Recorder) (stop: CancellationToken) : Task =
    task {
        while not stop.IsCancellationRequested do
            match a.Current with
            | _ when a.Hold || a.Stalled -> do! Task.Delay 20
            | None -> do! Task.Delay 50
            | Some p ->
                let sent = rec'.Now
                let! peeked = p.Tool("inbox_peek", "{\"limit\":100}")
                let shown, at, at' =
                    match peeked with
                    | Some(t, a) when t.StartsWith "[" ->
                        (parseJson t).AsArray() |> Seq.map (fun n -> n.AsObject()) |> List.ofSeq, a.At, a.Pos
                    | _ -> [], 0.0, -1
                for m in shown do
                    rec'.Add { Proc = p.Id; Ws = p.Ws; Kind = Shown; Text = strOf m "text"; ActivityId = strOf m "activity_id"
                               Sent = sent; At = at; Pos = at' }
                if shown.IsEmpty then
                    do! Task.Delay 100
                else
                    let pops =
                        [ for m in shown ->
                            let aid = strOf m "activity_id"
                            let popSent = rec'.Now
                            strOf m "text", aid, popSent, p.Tool("inbox_pop", $"{{\"activity_id\":\"{aid}\"}}", true) ]
                    for (txt, aid, popSent, answer) in pops do
                        let! r = answer
                        let obs = { Proc = p.Id; Ws = p.Ws; Kind = PopUnanswered; Text = txt; ActivityId = aid; Sent = popSent; At = rec'.Now; Pos = -1 }
                        match r with
                        | Some(t, a) when t.StartsWith "{" ->
                            let answer = parseJson t
                            let removed = answer["removed"].GetValue<bool>()
                            rec'.Add { obs with Kind = Popped removed; At = a.At; Pos = a.Pos }
                        | _ -> rec'.Add obs
    }
