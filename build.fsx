// Build script: `dotnet fsi build.fsx <target>` — targets: build, test, publish, publish-fd, pack, run, bench, chaos,
// browser-deps.
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

/// Every package into artifacts/packages/: Molecule.Protocol, Molecule.Core, Molecule.Agents (libraries),
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

let test () =
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
| [ "run" ] -> runDemo ()
| [ "publish-fd" ] -> publishFd ()
| [ "pack" ] -> pack ()
| [ "chaos" ] ->
    // 200 randomized fault schedules (Tests/Chaos); exit 1 when a message was lost, duplicated or leaked.
    publish ()
    let project = Path.Combine(root, "Tests", "Chaos", "Chaos.fsproj")
    let env = [ ("MOLECULE_MCP_BIN", binary); ("MOLECULE_PLATFORM_BIN", platformBinary) ]
    exit (run env "dotnet" $"run --project \"{project}\" -c Release -- --schedules 200" ignore)
| [ "bench" ] ->
    publish ()
    publishFd ()
    // the floor baseline (bench/floor): same runtime settings, none of molecule-mcp's libraries
    let floor = Path.Combine(root, "artifacts", "floor")
    let floorProject = Path.Combine(root, "bench", "floor", "Floor.csproj")
    must (run [] "dotnet" $"publish \"{floorProject}\" -c Release -r linux-x64 -o \"{floor}\"" ignore) "publish bench/floor"
    let script = Path.Combine(root, "bench", "bench.fsx")
    exit (run [] "dotnet" $"fsi \"{script}\"" ignore)
| _ -> log "usage: dotnet fsi build.fsx build|test|publish|publish-fd|pack|run|bench|chaos|browser-deps"; exit 2
