namespace Molecule.Tests.Support

open System
open System.IO

/// Every file a test makes lives under one folder per test process, `$TMPDIR/mt<pid>-<id>`, removed
/// when the process exits. The process's TMPDIR points there from the first use on, so the programs the tests start
/// (molecule-mcp, the platform, chromium, dotnet) put their own temporary files there too. What a failing test keeps
/// on purpose (logs, screenshots) goes to `keep`, outside it, and the failure message says where.
[<RequireQualifiedAccess>]
module TempDirs =
    /// The temp folder the process started with (before TMPDIR points into the run's folder).
    let private outer = Path.GetTempPath()

    let private removeQuietly (dir: string) =
        for _ in 1..3 do
            try
                if Directory.Exists dir then Directory.Delete(dir, true)
            with _ ->
                Threading.Thread.Sleep 100

    let private root: Lazy<string> =
        lazy
            (let id = Guid.NewGuid().ToString("N").Substring(0, 8)
             // short: chromium puts its singleton socket under TMPDIR, and a socket path is at most 107 bytes
             let r = Path.Combine(outer, $"mt{Environment.ProcessId}-{id}")
             Directory.CreateDirectory r |> ignore
             Environment.SetEnvironmentVariable("TMPDIR", r)
             AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> removeQuietly r)
             r)

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
