/// Helpers for the CLI tests: run the published molecule-platform with arguments, run `molecule-platform platform` in
/// the background, and drive a molecule-mcp server with the MCP client SDK.
module Molecule.Tests.PlatformHost.CliSupport

open Molecule.Protocol

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Net.Http.Headers
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open ModelContextProtocol.Client
open ModelContextProtocol.Protocol
open Molecule.Tests.Support

type Run = { Code: int; Out: string; Err: string }

let tempDir (label: string) = TempDirs.create ("cli-" + label)

let startInfo (env: (string * string) list) (args: string list) =
    let psi =
        ProcessStartInfo(
            Binary.platformPath (),
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = UTF8Encoding(false),
            StandardErrorEncoding = UTF8Encoding(false)
        )

    for a in args do
        psi.ArgumentList.Add a
    // A developer's own settings must not leak into the tests.
    for k in [ "MOLECULE_PLATFORM_DIR"; "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_WORKSPACE_TOKEN"
               "MOLECULE_MCP_LOOP_MAX_EXCHANGES"; "MOLECULE_MCP_LOOP_MAX_PER_MINUTE"; "MOLECULE_MCP_LOOP_MAX_REPEATS" ] do
        psi.Environment.Remove k |> ignore

    // The connection lines the platform prints start the published molecule-mcp.
    psi.Environment["MOLECULE_MCP_BIN"] <- Binary.path ()

    for (k, v) in env do
        psi.Environment[k] <- v

    psi

/// Runs the binary to completion with extra environment variables (stdin closed at once).
let runEnv (env: (string * string) list) (args: string list) (timeout: TimeSpan) : Run =
    use p = Process.Start(startInfo env args)
    p.StandardInput.Close()
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()

    if not (p.WaitForExit timeout) then
        p.Kill true
        failwith $"molecule-platform {String.Join(' ', args)} did not finish within {timeout}; stdout so far: {out}"

    p.WaitForExit()

    { Code = p.ExitCode
      Out = out.Result
      Err = err.Result }

let run (args: string list) (timeout: TimeSpan) : Run = runEnv [] args timeout

let run20 args = run args (TimeSpan.FromSeconds 20.0)

let sigterm (pid: int) =
    use k = Process.Start(ProcessStartInfo("kill", $"-TERM {pid}", UseShellExecute = false))
    k.WaitForExit()

/// `molecule-platform platform --data-dir D --port 0 [extra…]` in the background.
/// With readStderr = false its stderr pipe is never read (a supervisor that does not drain it).
type PlatformProcess(dataDir: string, extra: string list, readStderr: bool) =
    let out = StringBuilder()
    let err = StringBuilder()

    let proc =
        let p = Process.Start(startInfo [] ([ "platform"; "--data-dir"; dataDir; "--port"; "0" ] @ extra))
        p.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lock out (fun () -> out.AppendLine e.Data |> ignore))
        p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock err (fun () -> err.AppendLine e.Data |> ignore))
        p.BeginOutputReadLine()
        if readStderr then p.BeginErrorReadLine()
        p

    let url =
        let info = Path.Combine(dataDir, "platform.json")
        let sw = Stopwatch.StartNew()

        let rec wait () =
            let parsed =
                try
                    if File.Exists info then
                        match JsonNode.Parse(File.ReadAllText info) with
                        | :? JsonObject as o when not (isNull o["url"]) -> Some(o["url"].GetValue<string>())
                        | _ -> None
                    else
                        None
                with _ ->
                    None

            match parsed with
            | Some u -> u
            | None when proc.HasExited -> failwith $"platform exited with {proc.ExitCode}: {err}"
            | None when sw.Elapsed > TimeSpan.FromSeconds 30.0 -> failwith $"platform did not write platform.json: {err}"
            | None ->
                Thread.Sleep 100
                wait ()

        wait ()

    new(dataDir: string, extra: string list) = new PlatformProcess(dataDir, extra, true)
    new(dataDir: string) = new PlatformProcess(dataDir, [], true)

    member _.Url: string = url
    member _.DataDir = dataDir
    member _.Process = proc
    member _.Stdout = lock out (fun () -> out.ToString())

    /// Stdout once it holds `needle` (output lines arrive asynchronously), or as it is after 10 s.
    member this.StdoutWith(needle: string) : string =
        let sw = Stopwatch.StartNew()
        let mutable text = this.Stdout
        while not (text.Contains(needle, StringComparison.Ordinal)) && sw.Elapsed < TimeSpan.FromSeconds 10.0 do
            Thread.Sleep 50
            text <- this.Stdout
        text
    member _.Stderr = lock err (fun () -> err.ToString())
    member _.AdminToken = File.ReadAllText(Path.Combine(dataDir, "admin_token")).Trim()

    /// SIGTERM, then the exit code (within 15 s).
    member _.Stop() : int =
        sigterm proc.Id

        if not (proc.WaitForExit(TimeSpan.FromSeconds 15.0)) then
            proc.Kill true
            failwith "platform did not stop on SIGTERM"

        proc.WaitForExit()
        proc.ExitCode

    interface IDisposable with
        member _.Dispose() =
            if not proc.HasExited then
                try
                    proc.Kill true
                    proc.WaitForExit 5000 |> ignore
                with _ ->
                    ()

            proc.Dispose()

/// Admin HTTP against a platform (for checks the CLI does not print).
let http (baseUrl: string) (bearer: string) (meth: HttpMethod) (path: string) (body: string option) : int * string =
    use c = new HttpClient(Timeout = TimeSpan.FromSeconds 15.0)
    use req = new HttpRequestMessage(meth, baseUrl.TrimEnd('/') + path)

    if bearer <> "" then
        req.Headers.Authorization <- AuthenticationHeaderValue("Bearer", bearer)

    body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
    use resp = c.Send req
    int resp.StatusCode, resp.Content.ReadAsStringAsync().Result

/// The JSON config printed after "Other MCP clients (JSON config):".
let jsonConfig (output: string) : JsonObject =
    let marker = "Other MCP clients (JSON config):"
    let i = output.IndexOf(marker, StringComparison.Ordinal)
    if i < 0 then failwith $"no JSON config in: {output}"
    let rest = output.Substring(i + marker.Length)
    let start = rest.IndexOf '{'
    let stop = rest.LastIndexOf '}'
    JsonNode.Parse(rest.Substring(start, stop - start + 1)).AsObject()

/// The `claude mcp add …` line.
let claudeLine (output: string) : string =
    output.Split('\n')
    |> Array.map (fun l -> l.Trim())
    |> Array.tryFind (fun l -> l.StartsWith("claude mcp add ", StringComparison.Ordinal))
    |> Option.defaultWith (fun () -> failwith $"no claude line in: {output}")

/// A field of `workspace create` / `token mint` output ("  id:       …").
let field (name: string) (output: string) : string =
    output.Split('\n')
    |> Array.map (fun l -> l.Trim())
    |> Array.tryFind (fun l -> l.StartsWith(name + ":", StringComparison.Ordinal))
    |> Option.map (fun l -> l.Substring(name.Length + 1).Trim().Split(' ').[0])
    |> Option.defaultWith (fun () -> failwith $"no '{name}:' in: {output}")

/// Starts a molecule-mcp server exactly as an MCP client would from a config entry {command, env}.
let connect (command: string) (env: (string * string) list) (stderr: Text.StringBuilder) : Task<McpClient> =
    let vars = Dictionary<string, string>()

    for (k, v) in env do
        vars[k] <- v

    let transport =
        new StdioClientTransport(
            StdioClientTransportOptions(
                Name = "cli-test",
                Command = command,
                Arguments = List<string>(),
                EnvironmentVariables = vars,
                StandardErrorLines = (fun l -> lock stderr (fun () -> stderr.AppendLine l |> ignore))
            )
        )

    McpClient.CreateAsync(
        transport,
        McpClientOptions(ClientInfo = Implementation(Name = "cli-test", Version = "1"), ProtocolVersion = "2025-06-18")
    )

let callText (client: McpClient) (tool: string) : Task<string> =
    task {
        let! r = client.CallToolAsync(tool, Dictionary<string, obj>())
        return Molecule.Tests.Support.Tool.textOf r
    }
