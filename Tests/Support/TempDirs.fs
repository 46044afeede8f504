namespace Molecule.Tests.Support

open System
open System.IO

/// Every file a test makes lives under one folder per test process, `$TMPDIR/mt<pid>-<id>`, removed when the process
/// exits (and, should the process end before its exit handler runs, by the next test process). The process's TMPDIR
/// points there from the first use on, so the programs the tests start (molecule-mcp, the platform, chromium, dotnet)
/// put their own temporary files there too. What a failing test keeps on purpose (logs, screenshots) goes to `keep`,
/// outside it, and the failure message says where. (`build.fsx test` runs all of it inside a folder of its own, too.)
[<RequireQualifiedAccess>]
module TempDirs =
    /// The temp folder the process started with (before TMPDIR points into the run's folder).
    let private outer = Path.GetTempPath()

    /// Removes a folder, trying again for a few seconds while a program a test started still writes in it.
    let private removeQuietly (dir: string) =
        let mutable tries = 0
        while Directory.Exists dir && tries < 15 do
            tries <- tries + 1
            try
                Directory.Delete(dir, true)
            with _ ->
                Threading.Thread.Sleep 200

    /// What runs at exit before the run's folder is removed (e.g. stopping a server whose files are in it).
    let private beforeRemoval = Collections.Concurrent.ConcurrentStack<unit -> unit>()

    let private runName = Text.RegularExpressions.Regex(@"^mt(\d+)-[0-9a-f]{8}$")

    /// The folders of earlier test processes that are gone (killed, or ended before their exit handler ran).
    let private stale () =
        [ for d in (try Directory.GetDirectories(outer, "mt*-*") with _ -> [||]) do
              let m = runName.Match(Path.GetFileName d)
              if m.Success then
                  let alive =
                      try
                          use p = Diagnostics.Process.GetProcessById(int m.Groups[1].Value)
                          not p.HasExited
                      with _ -> false
                  if not alive then yield d ]

    let private root: Lazy<string> =
        lazy
            (for d in stale () do
                removeQuietly d
             let id = Guid.NewGuid().ToString("N").Substring(0, 8)
             // short: chromium puts its singleton socket under TMPDIR, and a socket path is at most 107 bytes
             let r = Path.Combine(outer, $"mt{Environment.ProcessId}-{id}")
             Directory.CreateDirectory r |> ignore
             Environment.SetEnvironmentVariable("TMPDIR", r)
             AppDomain.CurrentDomain.ProcessExit.Add(fun _ ->
                 for f in beforeRemoval do
                     f ()
                 removeQuietly r)
             r)

    /// Runs `f` at exit before the run's folder goes (the last registered first).
    let atExit (f: unit -> unit) = beforeRemoval.Push f

    /// The run's folder (created on first use).
    let runRoot () = root.Force()

    /// A new empty folder for one test: `<run folder>/<label>-<random>`.
    let create (label: string) =
        let d = Path.Combine(root.Force(), label + "-" + Guid.NewGuid().ToString("N").Substring(0, 12))
        Directory.CreateDirectory d |> ignore
        d

    /// Removes a test's folder now (it is removed with the run's folder at exit anyway).
    let remove (dir: string) = removeQuietly dir

    /// Where failing tests keep files on purpose: `$MOLECULE_TEST_KEEP_DIR` (set by build.fsx test), else
    /// `<temp>/molecule-tests-kept`.
    let keepDir () =
        match Environment.GetEnvironmentVariable "MOLECULE_TEST_KEEP_DIR" with
        | null
        | "" -> Path.Combine(outer, "molecule-tests-kept")
        | d -> d

    /// Copies a failing test's files out of the run's folder so they outlive it; returns where they are.
    let keep (label: string) (dir: string) =
        let target = Path.Combine(keepDir (), label + "-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss") + "-" + Guid.NewGuid().ToString("N").Substring(0, 6))
        let rec copy (src: string) (dst: string) =
            Directory.CreateDirectory dst |> ignore
            for f in Directory.GetFiles src do
                try File.Copy(f, Path.Combine(dst, Path.GetFileName f)) with _ -> ()
            for d in Directory.GetDirectories src do
                copy d (Path.Combine(dst, Path.GetFileName d))
        if Directory.Exists dir then copy dir target else Directory.CreateDirectory target |> ignore
        target
