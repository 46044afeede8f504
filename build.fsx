// Build script: `dotnet fsi build.fsx <target>` — targets: build, test, publish, publish-fd, pack, run, bench, chaos,
// browser-deps, setup (the Debian packages the suite needs; `test` runs it first).
// Plain .NET only (no NuGet references) so it runs on a fresh machine after `dotnet tool restore`.
open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions

let root = __SOURCE_DIRECTORY__
let sln = Path.Combine(root, "Molecule.Functional.sln")
let artifacts = Path.Combine(root, "artifacts")
let binary = Path.Combine(artifacts, "molecule-mcp", "molecule-mcp")
let platformBinary = Path.Combine(artifacts, "molecule-platform", "molecule-platform")
/// The framework-dependent build of molecule-mcp (publish-fd; the bench compares it with the native one).
let fdBinary = Path.Combine(artifacts, "molecule-mcp-fd", "molecule-mcp")
let packages = Path.Combine(artifacts, "packages")
let hostProject = Path.Combine(root, "Host.CSharp", "Host.CSharp.csproj")

let log (s: string) = eprintfn "[build] %s" s

/// Runs a command, streaming its output; returns exit code and (optionally) captured stdout lines.
let run (env: (string * string) list) (file: string) (args: string) (onLine: string -> unit) =
    let psi = ProcessStartInfo(file, args, WorkingDirectory = root, UseShellExecute = false,
                               RedirectStandardOutput = true, RedirectStandardError = true)
    for (k, v) in env do psi.Environment.[k] <- v
    use p = new Process(StartInfo = psi)
    p.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then (Console.Out.WriteLine e.Data; onLine e.Data))
    p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then Console.Error.WriteLine e.Data)
    p.Start() |> ignore
    p.BeginOutputReadLine(); p.BeginErrorReadLine()
    p.WaitForExit()
    p.ExitCode

let must code what = if code <> 0 then (log $"{what} failed with exit code {code}"; exit code)

let restore () =
    must (run [] "dotnet" "tool restore" ignore) "dotnet tool restore"
    must (run [] "dotnet" "paket restore" ignore) "paket restore"

let build () =
    restore ()
    must (run [] "dotnet" $"build \"{sln}\" -c Release" ignore) "build"

/// Publishes one executable project into artifacts/<name>/ with the given extra publish arguments.
let publishProject (project: string) (name: string) (how: string) =
    let proj = Path.Combine(root, project)
    let out = Path.Combine(artifacts, name)
    // a fresh directory: files of another kind of build (a framework-dependent publish's dlls) never linger
    if Directory.Exists out then Directory.Delete(out, true)
    must (run [] "dotnet" $"publish \"{proj}\" -c Release -r linux-x64 {how} -o \"{out}\"" ignore) $"publish {name}"
    log $"published {Path.Combine(out, name)}"

/// Framework-dependent, ReadyToRun (the platform needs ASP.NET Core; molecule-mcp's fallback build).
let frameworkDependent = "--self-contained false -p:PublishAot=false -p:PublishReadyToRun=true"

/// molecule-mcp as a NativeAOT executable (its default) and the platform framework-dependent.
let publish () =
    restore ()
    publishProject (Path.Combine("Host.CSharp", "Host.CSharp.csproj")) "molecule-mcp" ""
    publishProject (Path.Combine("Platform.Host", "Platform.Host.csproj")) "molecule-platform" frameworkDependent

/// molecule-mcp framework-dependent and portable (what the "any" tool package holds: runs wherever the .NET 10
/// runtime is), into artifacts/molecule-mcp-fd/. No runtime identifier, so it does not share obj/ with the
/// native linux-x64 build.
let publishFd () =
    restore ()
    let out = Path.Combine(artifacts, "molecule-mcp-fd")
    if Directory.Exists out then Directory.Delete(out, true)
    must (run [] "dotnet" $"publish \"{hostProject}\" -c Release -p:PublishAot=false -o \"{out}\"" ignore) "publish molecule-mcp-fd"
    log $"published {fdBinary}"

/// Every package into artifacts/packages/: Molecule.Protocol, Molecule.Core, Molecule.Agents, Molecule.Agents.Hosting,
/// Molecule.Agents.AI (libraries: every packable project of the solution),
/// molecule-platform (tool, framework-dependent) and molecule-mcp (tool: the pointer package, the native
/// linux-x64 package and the framework-dependent "any" fallback). The osx-arm64, osx-x64 and win-x64 native
/// packages are declared by the pointer package and packed on those systems (`dotnet pack Host.CSharp -r <rid>`):
/// NativeAOT does not cross-compile.
let pack () =
    restore ()
    must (run [] "dotnet" $"pack \"{sln}\" -c Release -o \"{packages}\"" ignore) "pack"
    for rid in [ "linux-x64"; "any" ] do
        must (run [] "dotnet" $"pack \"{hostProject}\" -c Release -r {rid} -o \"{packages}\"" ignore) $"pack molecule-mcp ({rid})"
    log $"packages in {packages}"

/// The browser test's node side (playwright-core) — installed from the lock file when missing. A failure is
/// logged, not fatal: the browser test then fails with the command to run, and the other tests still run.
let browserDeps () =
    let marker = Path.Combine(root, "Tests", "Browser", "node_modules", "playwright-core", "package.json")

    if not (File.Exists marker) then
        log "Tests/Browser/node_modules missing: npm ci --prefix Tests/Browser"

        let code =
            try
                run [] "npm" "ci --prefix Tests/Browser --no-audit --no-fund" ignore
            with e ->
                log $"could not start npm ({e.Message}): install Node.js 18+ and npm"
                -1

        if code <> 0 then
            log "npm ci --prefix Tests/Browser failed: the canvas browser test will fail until it succeeds"

/// The Debian packages the suite needs, each with what shows it is there — one list: add to it.
type Needs =
    | Command of string
    | File of string
    | Folder of string

let debianPackages =
    [ "clang", Command "clang" // links the NativeAOT molecule-mcp
      "zlib1g-dev", File "/usr/include/zlib.h" // ditto
      "chromium", File "/usr/bin/chromium" // the canvas and console browser tests (never a downloaded browser)
      "nodejs", Command "node" // drives chromium through playwright-core (Tests/Browser)
      "npm", Command "npm" // installs playwright-core from Tests/Browser's lock file
      "postgresql", Folder "/usr/lib/postgresql" // the platform on PostgreSQL
      "nginx", File "/usr/sbin/nginx" ] // a real reverse proxy in front of the platform

let private present (needs: Needs) =
    match needs with
    | File f -> File.Exists f
    | Folder d -> Directory.Exists d
    | Command c ->
        (Environment.GetEnvironmentVariable "PATH" |> Option.ofObj |> Option.defaultValue "").Split(Path.PathSeparator)
        |> Array.exists (fun d -> d <> "" && File.Exists(Path.Combine(d, c)))

let private quiet (file: string) (args: string) =
    try
        let psi = ProcessStartInfo(file, args, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
        use p = Process.Start psi
        p.StandardOutput.ReadToEnd() |> ignore
        p.StandardError.ReadToEnd() |> ignore
        p.WaitForExit()
        p.ExitCode = 0
    with _ -> false

/// Installs the missing Debian packages through apt when this user may (root, or sudo without a password); else stops
/// at once with the one command to run.
let setUp () =
    let missing = debianPackages |> List.filter (fun (_, needs) -> not (present needs)) |> List.map fst
    if not missing.IsEmpty then
        let names = String.Join(" ", missing)
        let command = $"sudo apt-get update && sudo apt-get install -y {names}"
        let stop (why: string) =
            log $"{why}. Install them, then run the tests again:"
            eprintfn "  %s" command
            exit 1
        if not (OperatingSystem.IsLinux()) || not (present (File "/usr/bin/apt-get")) then
            stop $"the suite needs {names} (Debian package names), and this is not a Debian-like system with apt-get"
        let sudo =
            if Environment.UserName = "root" then Some ""
            elif quiet "sudo" "-n true" then Some "sudo -n "
            else None
        match sudo with
        | None -> stop $"the suite needs the Debian packages {names}, and this user can run apt-get neither as root nor with sudo without a password"
        | Some prefix ->
            log $"installing the Debian packages the suite needs: {names}"
            let env = [ ("DEBIAN_FRONTEND", "noninteractive") ]
            let ok =
                run env "sh" $"-c \"{prefix}apt-get update && {prefix}apt-get install -y --no-install-recommends {names}\"" ignore = 0
            let still = debianPackages |> List.filter (fun (p, needs) -> List.contains p missing && not (present needs))
            if not ok || not still.IsEmpty then stop $"apt-get could not install {names}"

/// The whole test target runs with TMPDIR in one folder of its own (the builds', the tests' and the programs' they
/// start temporary files), removed at the end; what failing tests keep on purpose goes to `kept`, named at the end.
/// No build server is started meanwhile: one would outlive the run with TMPDIR pointing into the removed folder.
let private isolateTemp () =
    // (short: chromium's singleton socket lives under TMPDIR, and a socket path is at most 107 bytes)
    let stamp = DateTime.UtcNow.ToString("yyMMddHHmmss")
    let runTmp = Path.Combine(Path.GetTempPath(), $"mol-{stamp}")
    let kept = Path.Combine(Path.GetTempPath(), $"molecule-tests-kept-{stamp}")
    Directory.CreateDirectory runTmp |> ignore
    for (k, v) in [ "TMPDIR", runTmp; "MOLECULE_TEST_KEEP_DIR", kept; "MSBUILDDISABLENODEREUSE", "1"; "UseSharedCompilation", "false" ] do
        Environment.SetEnvironmentVariable(k, v)
    let cleaned = ref false
    let cleanUp () =
        if not cleaned.Value then
            cleaned.Value <- true
            (try Directory.Delete(runTmp, true) with e -> log $"could not remove {runTmp}: {e.Message}")
            if Directory.Exists kept then log $"files kept by failing tests: {kept}"
    // a step that fails ends the script with `exit`: the folder goes then too
    AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> cleanUp ())
    cleanUp

let test () =
    let cleanUp = isolateTemp ()
    setUp ()
    // pack first: its linux-x64 package compiles the native binary, which publish then reuses (NativeAOT compiles
    // are incremental), so the suite's molecule-mcp and the installed tool are the same build.
    pack ()
    publish ()
    browserDeps ()
    must (run [] "dotnet" $"build \"{sln}\" -c Release" ignore) "build"
    let mutable passed, failed, skipped = 0, 0, 0
    let summary = Regex(@"^\s*(Passed|Failed)!\s+-\s+Failed:\s+(\d+),\s+Passed:\s+(\d+),\s+Skipped:\s+(\d+)")
    let onLine (l: string) =
        let m = summary.Match l
        if m.Success then
            failed <- failed + int m.Groups.[2].Value
            passed <- passed + int m.Groups.[3].Value
            skipped <- skipped + int m.Groups.[4].Value
    let env =
        [ ("MOLECULE_MCP_BIN", binary)
          ("MOLECULE_PLATFORM_BIN", platformBinary)
          ("MOLECULE_PACKAGES_DIR", packages) ]
    let code = run env "dotnet" $"test \"{sln}\" -c Release --no-build" onLine
    cleanUp ()
    if skipped > 0 then printfn "%s" (String.Format("({0} skipped)", skipped))
    // the last line is the plain summary CI reads
    printfn "%s" (String.Format("{0} passed, {1} failed", passed, failed))
    if code <> 0 || passed = 0 then exit (if code = 0 then 1 else code)

let runDemo () =
    publish ()
    exit (run [ ("MOLECULE_MCP_BIN", binary) ] platformBinary "demo" ignore)

match fsi.CommandLineArgs |> Array.tail |> Array.toList with
| [ "build" ] -> build ()
| [ "publish" ] -> publish ()
| [ "test" ] -> test ()
| [ "browser-deps" ] -> browserDeps ()
| [ "setup" ] -> setUp ()
| [ "run" ] -> runDemo ()
| [ "publish-fd" ] -> publishFd ()
| [ "pack" ] -> pack ()
| "chaos" :: options ->
    // 200 randomized fault schedules (Tests/Chaos; further runner options pass through, e.g. --seed N);
    // exit 1 when a message was lost, duplicated or leaked.
    publish ()
    let project = Path.Combine(root, "Tests", "Chaos", "Chaos.fsproj")
    let env = [ ("MOLECULE_MCP_BIN", binary); ("MOLECULE_PLATFORM_BIN", platformBinary) ]
    let more = String.Join(" ", options)
    exit (run env "dotnet" $"run --project \"{project}\" -c Release -- --schedules 200 {more}" ignore)
| [ "bench" ] ->
    publish ()
    publishFd ()
    // the floor baseline (bench/floor): same runtime settings, none of molecule-mcp's libraries
    let floor = Path.Combine(root, "artifacts", "floor")
    let floorProject = Path.Combine(root, "bench", "floor", "Floor.csproj")
    must (run [] "dotnet" $"publish \"{floorProject}\" -c Release -r linux-x64 -o \"{floor}\"" ignore) "publish bench/floor"
    // the library agent (part C): samples/CSharp as a NativeAOT executable, and framework-dependent beside it
    let sample = Path.Combine("samples", "CSharp", "Molecule.Sample.CSharp.csproj")
    publishProject sample "molecule-sample-csharp" "-p:PublishAot=true"
    publishProject sample "molecule-sample-csharp-fd" frameworkDependent
    let script = Path.Combine(root, "bench", "bench.fsx")
    exit (run [] "dotnet" $"fsi \"{script}\"" ignore)
| _ -> log "usage: dotnet fsi build.fsx build|test|publish|publish-fd|pack|run|bench|chaos|browser-deps|setup"; exit 2
