/// Install with one command: the packed `molecule-mcp` tool (artifacts/packages, from `build.fsx pack`) installed
/// with `dotnet tool install --tool-path … --add-source …` exactly as README shows it, then driven over stdio —
/// handshake, tools/list and a tool call against the local platform — as an MCP client would start it. Also the
/// framework-dependent `any` fallback package, and the packages' metadata (.mcp/server.json, package types, RIDs).
module Molecule.Tests.Install.InstallTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading.Tasks
open Xunit
open Molecule.Tests.Support
open Molecule.Tests.Host.Harness

// ------------------------------------------------------------------------------------------------ packages

let private repoRoot () = TestData.repoRoot ()

/// `$MOLECULE_PACKAGES_DIR` (set by `build.fsx test`), else artifacts/packages of this repository.
let packagesDir () =
    match Environment.GetEnvironmentVariable "MOLECULE_PACKAGES_DIR" with
    | p when not (String.IsNullOrWhiteSpace p) && Directory.Exists p -> p
    | _ ->
        let d = Path.Combine(repoRoot (), "artifacts", "packages")

        if not (Directory.Exists d) then
            failwith $"no packed tool in {d}: run `dotnet fsi build.fsx pack` (or `build.fsx test`) first, or set MOLECULE_PACKAGES_DIR"

        d

/// The newest packed version of the molecule-mcp pointer package (molecule-mcp.<version>.nupkg).
let packedVersion () =
    let pointer = Regex(@"^molecule-mcp\.(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.nupkg$")

    let found =
        Directory.GetFiles(packagesDir (), "molecule-mcp.*.nupkg")
        |> Array.choose (fun f ->
            let m = pointer.Match(Path.GetFileName f)
            if m.Success then Some(File.GetLastWriteTimeUtc f, m.Groups[1].Value) else None)
        |> Array.sortDescending

    if found.Length = 0 then
        failwith $"no molecule-mcp.<version>.nupkg in {packagesDir ()}: run `dotnet fsi build.fsx pack`"

    snd found[0]

let private package (id: string) = Path.Combine(packagesDir (), $"{id}.{packedVersion ()}.nupkg")

let private entryText (nupkg: string) (entry: string) =
    use zip = ZipFile.OpenRead nupkg

    match zip.GetEntry entry with
    | null ->
        let names = zip.Entries |> Seq.map (fun e -> e.FullName) |> String.concat "\n  "
        failwith $"{Path.GetFileName nupkg} has no {entry}; it holds:\n  {names}"
    | e ->
        use r = new StreamReader(e.Open())
        r.ReadToEnd()

let private entries (nupkg: string) =
    use zip = ZipFile.OpenRead nupkg
    zip.Entries |> Seq.map (fun e -> e.FullName) |> Seq.toList

// ------------------------------------------------------------------------------------------------ install

let private runTool (file: string) (args: string list) (env: (string * string) list) : Task<int * string> =
    task {
        let psi = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
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
        return p.ExitCode, o + e
    }

/// `dotnet tool install --tool-path <dir> --add-source <packages> molecule-mcp --version <v>`, once for this module,
/// with a private NuGet cache so an earlier pack of the same version can never be installed instead.
let private installed: Lazy<Task<string>> =
    lazy
        (task {
            let toolPath = tempDir "tool-path"
            let version = packedVersion ()

            let! code, output =
                runTool
                    "dotnet"
                    [ "tool"; "install"; "--tool-path"; toolPath; "--add-source"; packagesDir (); "molecule-mcp"; "--version"; version ]
                    [ "NUGET_PACKAGES", Path.Combine(toolPath, ".nuget-packages"); "DOTNET_CLI_TELEMETRY_OPTOUT", "1" ]

            if code <> 0 then
                failwith $"dotnet tool install failed (exit {inv code}):\n{output}"

            return toolPath
        })

/// A client's environment with the tool path first on PATH (what `dotnet tool install -g` gives with
/// ~/.dotnet/tools on PATH), a private HOME and state dir.
let private clientEnv (toolPath: string) =
    let env = baseEnv ()
    env["PATH"] <- toolPath + string Path.PathSeparator + (match env.TryGetValue "PATH" with | true, p -> p | _ -> "/usr/bin:/bin")
    env["HOME"] <- tempDir "home"
    env["CONFIGS_DIR"] <- tempDir "configs"
    env

/// Handshake (done by StartAsync), tools/list and one tool call through the local platform.
let private exercise (agent: AgentProcess) (ws: Workspace) =
    task {
        let! tools = agent.Client.ListToolsAsync()
        Assert.Equal(22, tools.Count)
        Assert.Contains(tools, fun t -> t.Name = "delegate_task")
        let! info = agent.CallOk("get_workspace_info", [])
        Assert.True(info.Contains ws.Id, $"{info}\n{agent.Describe()}")
        agent.AssertNoTokenLeak [ ws.Token ]
    }

[<Fact>]
let ``dotnet tool install puts the native linux-x64 molecule-mcp on the tool path`` () =
    task {
        let! toolPath = installed.Force()
        let command = Path.Combine(toolPath, "molecule-mcp")
        Assert.True(File.Exists command, $"no molecule-mcp command in {toolPath}")
        let target = FileInfo(command).ResolveLinkTarget(true)
        let real = if isNull target then command else target.FullName
        // the RID-specific package was chosen, and it is a native executable (ELF), not a .NET apphost + dll
        Assert.Contains("molecule-mcp.linux-x64", real)
        let head = Array.zeroCreate<byte> 4
        use f = File.OpenRead real
        f.ReadExactly(head, 0, 4)
        Assert.Equal<byte[]>([| 0x7Fuy; byte 'E'; byte 'L'; byte 'F' |], head)
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName real, "molecule-mcp.dll")), "the native package holds a managed dll")
        let! code, output = runTool command [ "--version" ] []
        Assert.Equal(0, code)
        Assert.Equal(packedVersion (), output.Trim())
    }

[<Fact>]
let ``the installed command runs the reference's claude mcp add line unchanged`` () =
    task {
        let! toolPath = installed.Force()
        let afterDashes = Molecule.Tests.Support.TestData.Snippets.claudeCode ()
        Assert.Equal("molecule-mcp", List.last afterDashes)

        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "installed-tool"

        let args =
            afterDashes.Tail
            |> List.map (fun s ->
                s.Replace("https://<your-tenant>.moleculesai.app", platform.Url)
                    .Replace("<your-workspace-uuid>", ws.Id)
                    .Replace("<your-token>", ws.Token))

        // as Claude Code spawns it: `env` with the snippet's words; `molecule-mcp` found on PATH (the tool path)
        use! agent = AgentProcess.StartAsync([], command = "env", args = args, baseVars = clientEnv toolPath)
        do! exercise agent ws
        Assert.True(platform.Requests "/registry/register" >= 1, "the installed molecule-mcp did not register")
    }

[<Fact>]
let ``installed: doctor sees itself on PATH and config --write writes the tool's command, never the versioned store path`` () =
    task {
        let! toolPath = installed.Force()
        let shim = Path.Combine(toolPath, "molecule-mcp")
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "installed-paths"
        let home = tempDir "home"
        let path = toolPath + string Path.PathSeparator + (Environment.GetEnvironmentVariable "PATH")
        let env =
            [ "PATH", path; "HOME", home; "CONFIGS_DIR", tempDir "configs"
              "WORKSPACE_ID", ws.Id; "PLATFORM_URL", platform.Url; "MOLECULE_WORKSPACE_TOKEN", ws.Token ]
        let store =
            Directory.GetFiles(Path.Combine(toolPath, ".store"), "molecule-mcp", SearchOption.AllDirectories)
            |> Array.filter (fun f -> Path.GetDirectoryName f |> Path.GetFileName = "linux-x64")
            |> Array.exactlyOne
        // started as a client starts it (the command on PATH), and straight from the store
        for command in [ shim; store ] do
            let! code, report = runTool command [ "doctor"; "--json" ] env
            Assert.True((code = 0), $"doctor through {command} failed:\n{report}")
            let doc = parseJson (report.Substring(report.IndexOf '{'))
            let checks = doc["checks"].AsArray() |> Seq.map (fun c -> c.AsObject()) |> List.ofSeq
            let check (label: string) = checks |> List.find (fun c -> strOf c "label" = label)
            Assert.Equal("ok", strOf (check "PATH") "status")
            Assert.Contains(shim, strOf (check "molecule-mcp") "message")
            Assert.DoesNotContain(".store", report)
            Assert.DoesNotContain(ws.Token, report)
            let! code, out = runTool command [ "config"; "claude-code"; "--write" ] env
            Assert.True((code = 0), $"config --write through {command} failed:\n{out}")
            let written = parseJson (File.ReadAllText(Path.Combine(home, ".claude.json")))
            Assert.Equal(shim, strOf (written["mcpServers"]["molecule"]) "command")
            let! _, printed = runTool command [ "config"; "json" ] env
            Assert.Contains(shim, printed)
            Assert.DoesNotContain(".store", printed)
    }

[<Fact>]
let ``the framework-dependent fallback package (any) serves MCP with the dotnet runtime`` () =
    task {
        let nupkg = package "molecule-mcp.any"
        let dir = tempDir "any-package"
        ZipFile.ExtractToDirectory(nupkg, dir)
        let settings = File.ReadAllText(Path.Combine(dir, "tools", "net10.0", "any", "DotnetToolSettings.xml"))
        Assert.Contains("Runner=\"dotnet\"", settings)
        let dll = Path.Combine(dir, "tools", "net10.0", "any", "molecule-mcp.dll")
        Assert.True(File.Exists dll, $"no molecule-mcp.dll in {Path.GetFileName nupkg}")

        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "framework-dependent"
        use! agent = AgentProcess.StartAsync(agentEnv platform ws, command = "dotnet", args = [ dll ])
        do! exercise agent ws
    }

// ------------------------------------------------------------------------------------------------ metadata

/// The variable names of README's Environment table.
let private readmeEnvironment () =
    let readme = File.ReadAllText(Path.Combine(repoRoot (), "README.md"))
    let section = readme.Substring(readme.IndexOf "## Environment")
    let section = section.Substring(0, section.IndexOf("\n## ", 3))

    Regex.Matches(section, "^\\| `([A-Z][A-Z0-9_]+)` \\|", RegexOptions.Multiline)
    |> Seq.map (fun m -> m.Groups[1].Value)
    |> Seq.toList

[<Fact>]
let ``the pointer package is an McpServer tool declaring the native RIDs and the any fallback, with .mcp/server.json`` () =
    let nupkg = package "molecule-mcp"
    let nuspec = entryText nupkg "molecule-mcp.nuspec"
    Assert.Contains("<packageType name=\"DotnetTool\" />", nuspec)
    Assert.Contains("<packageType name=\"McpServer\" />", nuspec)
    Assert.DoesNotContain("<dependency ", nuspec)
    let settings = entryText nupkg "tools/any/any/DotnetToolSettings.xml"

    for rid in [ "linux-x64"; "osx-arm64"; "osx-x64"; "win-x64"; "any" ] do
        Assert.Contains($"RuntimeIdentifier=\"{rid}\" Id=\"molecule-mcp.{rid}\"", settings)

    let packed = entryText nupkg ".mcp/server.json"
    let source = File.ReadAllText(Path.Combine(repoRoot (), "Host.CSharp", ".mcp", "server.json"))
    Assert.Equal(source.Replace("\r\n", "\n"), packed.Replace("\r\n", "\n"))
    Assert.Contains("README.md", entries nupkg)

[<Fact>]
let ``server.json declares the package, stdio and README's environment variables (required ones required, token carriers secret)`` () =
    let json = parseJson (File.ReadAllText(Path.Combine(repoRoot (), "Host.CSharp", ".mcp", "server.json")))
    let version = packedVersion ()
    Assert.Equal(version, strOf json "version")
    let pkg = json["packages"].AsArray()[0]
    Assert.Equal("nuget", strOf pkg "registryType")
    Assert.Equal("molecule-mcp", strOf pkg "identifier")
    Assert.Equal(version, strOf pkg "version")
    Assert.Equal("stdio", strOf pkg["transport"] "type")
    let vars = pkg["environmentVariables"].AsArray() |> Seq.map (fun v -> v.AsObject()) |> Seq.toList
    let flag (name: string) (v: JsonObject) = match v[name] with | null -> false | n -> n.GetValue<bool>()
    let byName = vars |> List.map (fun v -> strOf v "name", v) |> Map.ofList
    Assert.Equal<string list>(List.sort (readmeEnvironment ()), byName |> Map.toList |> List.map fst |> List.sort)

    for name in [ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN" ] do
        Assert.True(flag "isRequired" byName[name], $"{name} must be isRequired")

    // the variables whose value carries a token: the token itself and the workspaces list ([{"id","token"}])
    let secrets = [ "MOLECULE_WORKSPACE_TOKEN"; "MOLECULE_WORKSPACES" ]

    for KeyValue(name, v) in byName do
        if List.contains name secrets then
            Assert.True(flag "isSecret" v, $"{name} carries a token: it must be isSecret")
        else
            Assert.False(flag "isSecret" v, $"{name} is not a secret")

        if not (List.contains name [ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN" ]) then
            Assert.False(flag "isRequired" v, $"{name} is optional")

[<Fact>]
let ``library packages ship their XML docs, and molecule-platform is a framework-dependent tool`` () =
    for id in [ "Molecule.Protocol"; "Molecule.Core"; "Molecule.Agents"; "Molecule.Agents.Hosting"; "Molecule.Agents.AI" ] do
        let files = entries (package id)
        Assert.Contains($"lib/net10.0/{id}.dll", files)
        Assert.Contains($"lib/net10.0/{id}.xml", files)
        // each with its package README
        Assert.Contains("PACKAGE.md", files)
        Assert.Contains("<readme>PACKAGE.md</readme>", entryText (package id) $"{id}.nuspec")

    let platform = package "molecule-platform"
    // SQLite's native library only for the systems the tool targets (no iOS, Android, WebAssembly, …)
    let natives =
        entries platform
        |> List.choose (fun e ->
            let m = Regex.Match(e, "/runtimes/([^/]+)/native/")
            if m.Success then Some m.Groups[1].Value else None)
        |> List.distinct
        |> List.sort
    Assert.Equal<string list>([ "linux-arm64"; "linux-musl-arm64"; "linux-musl-x64"; "linux-x64"; "osx-arm64"; "osx-x64"; "win-arm64"; "win-x64" ], natives)
    Assert.True(FileInfo(platform).Length < 30L * 1024L * 1024L, $"molecule-platform's package is {FileInfo(platform).Length} bytes")
    let nuspec = entryText platform "molecule-platform.nuspec"
    Assert.Contains("<packageType name=\"DotnetTool\" />", nuspec)
    let settings = entryText platform "tools/net10.0/any/DotnetToolSettings.xml"
    Assert.Contains("Name=\"molecule-platform\" EntryPoint=\"molecule-platform.dll\" Runner=\"dotnet\"", settings)
