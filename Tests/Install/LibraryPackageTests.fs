/// A README reader's path to a .NET agent: `dotnet new console`, the packed Molecule.Agents package (from
/// MOLECULE_PACKAGES_DIR, as `build.fsx pack` leaves it), the README's "Write an agent in .NET" loop as Program.cs —
/// built and run against the local platform on 127.0.0.1, where it answers a message in the user's chat. Offline: the
/// project's nuget.config (written by the test) takes Molecule.* from the local feed only and every other package from
/// the machine's NuGet cache, which the repository's own restore filled; restore gets a NuGet cache of its own.
[<Xunit.Collection(Molecule.Tests.Support.Collections.Alone)>]
module Molecule.Tests.Install.LibraryPackageTests

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Xunit
open Molecule.Tests.Support
open Molecule.Tests.Host.Harness
open Molecule.Tests.Install.InstallTests

/// The README's section, from its heading to the next.
let private readmeSection (heading: string) =
    let readme = File.ReadAllText(Path.Combine(TestData.repoRoot (), "README.md"))
    let start = readme.IndexOf($"\n## {heading}\n", StringComparison.Ordinal)
    if start < 0 then failwith $"README.md has no section '## {heading}'"
    let next = readme.IndexOf("\n## ", start + 4, StringComparison.Ordinal)
    readme.Substring(start, (if next < 0 then readme.Length else next) - start)

/// The machine's NuGet cache (what the repository's restore filled), read as a local feed.
let private machineCache () =
    match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
    | p when not (String.IsNullOrWhiteSpace p) -> p
    | _ -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")

/// Molecule.* from the packed packages only; everything else from the machine's cache; nothing from the network.
let private nugetConfig () =
    $"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="molecule" value="{packagesDir ()}" />
    <add key="machine-cache" value="{machineCache ()}" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="molecule"><package pattern="Molecule.*" /></packageSource>
    <packageSource key="machine-cache"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
"""

/// Runs a command to its end in `dir`; fails with its output unless it exits 0.
let private must (dir: string) (env: (string * string) list) (file: string) (args: string list) : Task<string> =
    task {
        let psi = ProcessStartInfo(file, WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        for a in args do
            psi.ArgumentList.Add a
        for (k, v) in env do
            psi.Environment[k] <- v
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEndAsync()
        let err = p.StandardError.ReadToEndAsync()
        do! p.WaitForExitAsync()
        let! o = out
        let! e = err
        let said = o + e
        if p.ExitCode <> 0 then failwith $"""{file} {String.Join(" ", args)} exited {p.ExitCode}:\n{said}"""
        return said
    }

[<Fact>]
let ``the README's agent, in a new console project with the packed package, answers a message`` () =
    task {
        let section = readmeSection "Write an agent in .NET"
        let program =
            match TestData.codeBlocks "csharp" section with
            | first :: _ -> first
            | [] -> failwith "no csharp block in README's 'Write an agent in .NET'"
        Assert.Contains("dotnet new console -n MyAgent", section)
        Assert.Contains("dotnet add package Molecule.Agents", section)
        let home = tempDir "reader-home"
        let work = tempDir "reader"
        // a reader's machine: their own home and CLI state; restore gets a NuGet cache of its own (never a package
        // an earlier pack of the same version left in the machine's cache)
        let env =
            [ "HOME", home
              "DOTNET_CLI_HOME", home
              "NUGET_PACKAGES", Path.Combine(home, "nuget-packages")
              "DOTNET_CLI_TELEMETRY_OPTOUT", "1"
              "DOTNET_NOLOGO", "1"
              "DOTNET_SKIP_FIRST_TIME_EXPERIENCE", "1" ]
        let! _ = must work env "dotnet" [ "new"; "console"; "-n"; "MyAgent" ]
        let project = Path.Combine(work, "MyAgent")
        File.WriteAllText(Path.Combine(project, "nuget.config"), nugetConfig ())
        let! _ = must project env "dotnet" [ "add"; "package"; "Molecule.Agents"; "--version"; packedVersion () ]
        File.WriteAllText(Path.Combine(project, "Program.cs"), program)
        let! _ = must project env "dotnet" [ "build"; "-c"; "Release"; "-o"; Path.Combine(project, "out") ]
        // the reader's packages came from the local feed
        Assert.True(Directory.Exists(Path.Combine(home, "nuget-packages", "molecule.agents", packedVersion ())))
        // run it as README says: the three variables
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "readers-agent"
        use agent = new Molecule.Tests.Agents.SampleTests.Sample(Path.Combine(project, "out", "MyAgent.dll"), agentEnv platform ws)
        let! _ = platform.CanvasMessage(ws.Id, "hello from the README")
        let answered () =
            task {
                let! rows = platform.Activity ws.Id
                return rows |> List.exists (fun r -> r.ToJsonString().Contains "Agent message: Done: hello from the README")
            }
        let sw = Stopwatch.StartNew()
        let mutable found = false
        while not found && sw.Elapsed < TimeSpan.FromSeconds 60.0 do
            let! yes = answered ()
            found <- yes
            if not found then do! Task.Delay 200
        Assert.True(found, $"no answer in the chat within 60 s\n{agent.Describe()}")
        Assert.Contains(agent.Lines, fun l -> l.Contains "CanvasUser from : hello from the README")
        do! agent.Kill()
        assertNoSecrets [ ws.Token ] "the agent's output" agent.Lines
    }
