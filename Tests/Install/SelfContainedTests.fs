/// The repository is self-contained: no file of it names a path outside the clone, and the suite builds and finds its
/// tests in a lone copy of the repository — an empty directory with no `shared/` (or anything else) beside it — where
/// the tests that read the repository's own files (the reference's set-up lines, README, server.json) pass too.
[<Xunit.Collection(Molecule.Tests.Support.Collections.Alone)>]
module Molecule.Tests.Install.SelfContainedTests

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Xunit
open Molecule.Tests.Support

let private repoRoot () = TestData.repoRoot ()

/// Runs a program to its end; (exit code, stdout + stderr).
let run (dir: string) (env: (string * string) list) (file: string) (args: string list) =
    let psi = ProcessStartInfo(file, WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in args do
        psi.ArgumentList.Add a
    for (k, v) in env do
        psi.Environment[k] <- v
    use p = Process.Start psi
    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out + err.Result

/// The repository's files as git knows them: tracked, plus new files not ignored (a work in progress is copied too).
let private repoFiles (root: string) =
    let code, out = run root [] "git" [ "ls-files"; "--cached"; "--others"; "--exclude-standard"; "-z" ]
    Assert.True((code = 0), $"git ls-files failed in {root} (the suite runs from a git clone):\n{out}")
    out.Split('\000', StringSplitOptions.RemoveEmptyEntries) |> Array.filter (fun f -> File.Exists(Path.Combine(root, f)))

/// Paths that lead outside the clone: the reference material's folder, this machine's work folders. (Put together
/// from pieces, so that this file does not match itself.)
let private outside =
    let shared, work = "sha" + "red", "wo" + "rk"
    Regex($@"\.\./{shared}\b|(^|[^A-Za-z0-9_.-]){shared}/(seeds|spec|notes|hooks)\b|/{work}/")

/// A relative path (`../x`, `..\x`) in a file, resolved against the file's folder.
let private relative = Regex(@"(?:\.\.[/\\])+[A-Za-z0-9_.\-/\\]*")

[<Fact>]
let ``no file of the repository names a path outside it`` () =
    let root = repoRoot ()
    let code, grep = run root [] "git" [ "grep"; "-nIE"; outside.ToString(); "--"; "."; ":!paket.lock" ]
    Assert.True((code = 1 && grep = ""), $"paths outside the repository (git grep exit {code}):\n{grep}")
    let escapes =
        [ for f in repoFiles root do
              let full = Path.Combine(root, f)
              let text = try File.ReadAllText full with _ -> ""
              if not (text.Contains '\000') then
                  for m in relative.Matches text do
                      let target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName full, m.Value.Replace('\\', '/')))
                      if not ((target + "/").StartsWith(root.TrimEnd('/') + "/")) then
                          yield $"{f}: {m.Value} → {target}" ]
    Assert.True(escapes.IsEmpty, "relative paths that leave the repository:\n" + String.Join("\n", escapes))

/// The [<Fact>]s of this assembly as xunit runs them (what discovery must find in the copy too): per class it can
/// run — a module (static) or a concrete class — with the facts a class inherits from an abstract base counted once
/// per subclass (a base parameterised by engine runs once on each).
let private factCount () =
    let runnable (t: Type) = not t.IsGenericTypeDefinition && (t.IsSealed || not t.IsAbstract)
    typeof<Molecule.Tests.Support.Marker>.Assembly.GetTypes()
    |> Seq.filter runnable
    |> Seq.collect (fun t -> t.GetMethods(Reflection.BindingFlags.Public ||| Reflection.BindingFlags.Static ||| Reflection.BindingFlags.Instance))
    |> Seq.filter (fun m -> m.GetCustomAttributes(typeof<FactAttribute>, false).Length > 0)
    |> Seq.length

[<Fact>]
let ``a lone copy of the repository builds, finds every test and passes the tests that read its own files`` () =
    let root = repoRoot ()
    let lone = TempDirs.create "lone-copy"
    let copy = Path.Combine(lone, "repo")
    for f in repoFiles root do
        let target = Path.Combine(copy, f)
        Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
        File.Copy(Path.Combine(root, f), target)
    Assert.False(Directory.Exists(Path.Combine(lone, "shared")))
    let env = [ "DOTNET_CLI_TELEMETRY_OPTOUT", "1"; "DOTNET_NOLOGO", "1" ]
    let step (what: string) (file: string) (args: string list) =
        let code, out = run copy env file args
        Assert.True((code = 0), $"{what} failed in the lone copy {copy} (exit {code}):\n{out}")
        out
    step "dotnet tool restore" "dotnet" [ "tool"; "restore" ] |> ignore
    step "paket restore" "dotnet" [ "paket"; "restore" ] |> ignore
    step "build" "dotnet" [ "build"; "Tests/Tests.fsproj"; "-c"; "Release"; "-v"; "q"; "-nologo" ] |> ignore
    let listed = step "test discovery" "dotnet" [ "test"; "Tests/Tests.fsproj"; "-c"; "Release"; "--no-build"; "--list-tests" ]
    // a theory is listed once per case ("name(engine: …)"): counted once, as reflection counts it
    let case = Regex(@"\([A-Za-z_][A-Za-z0-9_]*: .*\)$")
    let names =
        listed.Split('\n')
        |> Array.filter (fun l -> l.StartsWith "    ")
        |> Array.map (fun l -> case.Replace(l.Trim(), ""))
        |> Array.distinct
        |> Array.length
    Assert.True((names = factCount ()), $"discovery in the lone copy listed {names} tests, this assembly has {factCount ()}:\n{listed}")
    // The tests that read the repository's own files, from the copy's build (the published binaries are the
    // suite's: set by build.fsx test, else found under artifacts/ of this clone).
    let binaries =
        [ "MOLECULE_MCP_BIN", Binary.path (); "MOLECULE_PLATFORM_BIN", Binary.platformPath () ]
        @ (match Environment.GetEnvironmentVariable "MOLECULE_PACKAGES_DIR" with
           | null | "" -> [ "MOLECULE_PACKAGES_DIR", Path.Combine(root, "artifacts", "packages") ]
           | p -> [ "MOLECULE_PACKAGES_DIR", p ])
    let filter = "FullyQualifiedName~SeedDocTests|FullyQualifiedName~server.json|FullyQualifiedName~ClientConfigFileTests"
    let code, out = run copy (env @ binaries) "dotnet" [ "test"; "Tests/Tests.fsproj"; "-c"; "Release"; "--no-build"; "--filter"; filter ]
    Assert.True((code = 0 && out.Contains "Passed!"), $"the repository-reading tests failed in the lone copy {copy}:\n{out}")
    TempDirs.remove lone
