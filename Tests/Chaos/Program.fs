/// The chaos runner: `dotnet run --project Tests/Chaos -c Release -- --schedules 200 [--seed N] [--messages M]
/// [--from I] [--big-every K] [--drain-secs S] [--stalls 1] [--misbehave 0|1] [--cluster 1]`. One line per schedule, then
/// `schedules N: sent S, delivered D, lost L, duplicated U, leaked K`; exit code 1 when L + U + K > 0 (or an output
/// check or the runner itself failed). Needs the published binaries (`dotnet fsi build.fsx publish`).
module Molecule.Tests.Chaos.Program

open System
open System.Diagnostics
open Molecule.Tests.Chaos

let private usage () =
    eprintfn "usage: chaos [--schedules N] [--seed N] [--messages M] [--from I] [--big-every K] [--drain-secs S] [--stalls 1] [--misbehave 0|1] [--cluster 1]"
    eprintfn "  --schedules N   schedules to run (default 20)"
    eprintfn "  --seed N        run seed (default: from the clock, printed); schedule I of a seed is always the same"
    eprintfn "  --messages M    messages per schedule, about (default 60)"
    eprintfn "  --from I        first schedule index (default 0): --seed S --from I --schedules 1 re-runs one"
    eprintfn "  --big-every K   one schedule in K sends a burst of 501-600 at once (default 6, 0 = never)"
    eprintfn "  --stalls 1      also stall one workspace's drivers while 1,100-1,300 messages arrive (intake pauses at 1,000)"
    eprintfn "  --misbehave 0|1 a misbehaving platform too (default 1): lying/failing acknowledgements, refused heartbeats,"
    eprintfn "                  no stream, no peer info (in-process); a backup at the start and a restore from it (process)"
    eprintfn "  --cluster 1     two instances on PostgreSQL behind nginx instead, both kill -9'd in turn: one while agents"
    eprintfn "                  page through a backlog of 600 (more than a page), one during a burst (needs postgresql, nginx)"
    eprintfn "  --drain-secs S  how long the final drain may take (default 60; raise it with --messages in the thousands)"
    2

[<EntryPoint>]
let main argv =
    let rec parse (args: string list) (acc: Map<string, int>) =
        match args with
        | [] -> Some acc
        | ("--schedules" | "--seed" | "--messages" | "--from" | "--big-every" | "--drain-secs" | "--stalls" | "--misbehave" | "--cluster" as k) :: v :: rest ->
            match Int32.TryParse v with
            | true, n -> parse rest (acc.Add(k, n))
            | _ -> None
        | _ -> None
    match parse (List.ofArray argv) Map.empty with
    | None -> usage ()
    | Some opts ->
        let get k d = defaultArg (opts.TryFind k) d
        let count = get "--schedules" 20
        let seed = get "--seed" (int (DateTime.UtcNow.Ticks % 1_000_000L))
        let first = get "--from" 0
        let options =
            { Schedule.Messages = get "--messages" 60
              Schedule.BigBurstEvery = get "--big-every" 6
              Schedule.Stalls = get "--stalls" 0 = 1
              Schedule.Misbehaving = get "--misbehave" 1 = 1 }
        let settings = { Engine.defaultSettings () with DrainSecs = float (get "--drain-secs" 60) }
        printfn $"chaos: seed {seed}, schedules {first}..{first + count - 1}, ~{options.Messages} messages each, work dir {settings.Root}"
        let sw = Stopwatch.StartNew()
        let mutable total = Verdict.zero
        let mutable rates = []
        let mutable peaks = Verdict.noPeaks
        let mutable trips = 0
        let mutable failed = 0
        let mutable other = 0
        for i in first .. first + count - 1 do
            let s = if get "--cluster" 0 = 1 then Schedule.clusterKills seed i 600 else Schedule.generate options seed i
            let o = (Engine.run settings s).GetAwaiter().GetResult()
            total <- Verdict.add total o.Counts
            rates <- Verdict.mergeRates rates o.Rates
            peaks <- Verdict.maxPeaks peaks o.Peaks
            trips <- trips + o.Trips.Length
            printfn "%s" (Engine.summaryLine o)
            if o.Failed then
                failed <- failed + 1
                if not o.Hygiene.IsEmpty || o.Error.IsSome then other <- other + 1
                printfn $"  seed {seed} schedule {i}: {Schedule.describe s}"
                for e in o.Evidence |> List.truncate 12 do
                    printfn $"  {e}"
                for h in o.Hygiene do
                    printfn $"  OUTPUT {h}"
                o.Error |> Option.iter (fun e -> printfn $"  ERROR {e}")
                printfn $"  logs kept in {o.Dir}"
        let mins = sw.Elapsed.TotalMinutes.ToString("0.0", Globalization.CultureInfo.InvariantCulture)
        printfn $"schedules {count}: {Verdict.line total}"
        printfn $"also: {Verdict.extra total}; failed schedules {failed} (output checks or runner errors in {other}); {mins} min"
        let shown = rates |> List.map (fun (r, n) -> $"{r} {n}/s") |> String.concat ", "
        printfn $"highest request rate per route (any agent, in-process schedules): {shown}"
        printfn $"loop guard (defaults): {trips} pauses; peaks: {Verdict.peaksText peaks}"
        if Verdict.failures total > 0 || other > 0 then 1 else 0
