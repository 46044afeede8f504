/// Integration-test harness: the local Molecule platform in-process on 127.0.0.1:0 (real HTTP, real fault
/// injector), admin helpers, and two ways to drive the REAL published `molecule-mcp` binary over stdio:
/// `AgentProcess` (the MCP C# SDK's McpClient) and `RawProcess` (raw lines in, every stdout byte captured).
module Molecule.Tests.Host.Harness

open Molecule.Protocol

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open ModelContextProtocol.Client
open ModelContextProtocol.Protocol
open Molecule.Platform
open Molecule.Platform.Server

// ------------------------------------------------------------------------------------------------ basics

/// A new folder under the test run's temp folder (removed when the test process exits).
let tempDir (prefix: string) = Molecule.Tests.Support.TempDirs.create prefix

let inv (n: int) = n.ToString(Globalization.CultureInfo.InvariantCulture)

/// Polls `cond` every 50 ms until it holds or `timeout` passes; on timeout fails with `describe ()`.
let waitUntil (timeout: TimeSpan) (what: string) (describe: unit -> string) (cond: unit -> bool) : Task =
    task {
        let sw = Stopwatch.StartNew()
        let mutable ok = cond ()

        while not ok && sw.Elapsed < timeout do
            do! Task.Delay 50
            ok <- cond ()

        if not ok then
            failwith $"timed out after {inv (int timeout.TotalSeconds)} s waiting for {what}\n{describe ()}"
    }

let secs (s: float) = TimeSpan.FromSeconds s

/// A loopback port free right now (for a platform that must come back on the same port).
let freePort () =
    let l = new Net.Sockets.TcpListener(Net.IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> Net.IPEndPoint).Port
    l.Stop()
    port

/// Copies a directory tree (a platform's data directory, as a backup).
let rec copyDir (src: string) (dst: string) =
    Directory.CreateDirectory dst |> ignore
    for f in Directory.GetFiles src do
        File.Copy(f, Path.Combine(dst, Path.GetFileName f), true)
    for d in Directory.GetDirectories src do
        copyDir d (Path.Combine(dst, Path.GetFileName d))

/// Property value as string or null.
let strOf (n: JsonNode) (name: string) : string =
    match n with
    | :? JsonObject as o ->
        match o[name] with
        | null -> null
        | v when v.GetValueKind() = JsonValueKind.String -> v.GetValue<string>()
        | v -> v.ToJsonString()
    | _ -> null

/// The message text of a channel notification's content ("[from …]" header, the text, the "↩ …" reply hint):
/// the lines between header and hint; the content itself when it is not such an envelope.
let messageTextOf (content: string) : string =
    let lines = (if isNull content then "" else content).Split('\n')
    if lines.Length >= 3 && lines[0].StartsWith "[" && lines[lines.Length - 1].StartsWith "\u21a9" then
        String.Join("\n", lines[1 .. lines.Length - 2])
    else
        content

/// The message text of a pushed notification's params (see messageTextOf).
let pushedText (pars: JsonNode) : string = messageTextOf (strOf pars "content")

let parseJson (s: string) : JsonNode =
    try
        JsonNode.Parse s
    with e ->
        failwith $"not JSON: {e.Message}\n{s}"

/// Counts non-overlapping occurrences of `needle` in `hay` lines.
let countLines (needle: string) (lines: string seq) =
    lines |> Seq.filter (fun l -> l.Contains(needle, StringComparison.Ordinal)) |> Seq.length

/// Fails when any secret occurs in any of the texts.
let assertNoSecrets (secrets: string seq) (where: string) (texts: string seq) =
    for s in secrets do
        if not (String.IsNullOrEmpty s) then
            for t in texts do
                if not (isNull t) && t.Contains(s, StringComparison.Ordinal) then
                    let start = max 0 (t.IndexOf(s, StringComparison.Ordinal) - 60)
                    let excerpt = t.Substring(start, min 120 (t.Length - start))
                    failwith $"a token string leaked into {where}: …{excerpt}…"

/// One JSON-RPC 2.0 message per line: an object with jsonrpc "2.0" and either a method (request/notification)
/// or an id with exactly one of result/error. Returns the parsed messages; fails naming the offending line.
let assertJsonRpcLines (context: string) (stdout: byte[]) : JsonObject list =
    let text =
        try
            UTF8Encoding(false, true).GetString stdout
        with e ->
            failwith $"stdout is not valid UTF-8 ({e.Message})\n{context}"

    if text.Length > 0 && not (text.EndsWith "\n") then
        failwith $"stdout ends with a partial line: …{text.Substring(max 0 (text.Length - 200))}\n{context}"

    text.Split('\n')
    |> Array.filter (fun l -> l <> "")
    |> Array.map (fun line ->
        let l = line.TrimEnd('\r')

        let node =
            try
                JsonNode.Parse l
            with e ->
                failwith $"stdout line is not JSON ({e.Message}): {l}\n{context}"

        match node with
        | :? JsonObject as o ->
            if strOf o "jsonrpc" <> "2.0" then
                failwith $"stdout line is not JSON-RPC 2.0: {l}\n{context}"

            let hasMethod = o.ContainsKey "method"
            let hasId = o.ContainsKey "id"
            let hasResult = o.ContainsKey "result"
            let hasError = o.ContainsKey "error"

            let valid =
                (hasMethod && not hasResult && not hasError)
                || (hasId && not hasMethod && (hasResult <> hasError))

            if not valid then
                failwith $"stdout line is not a JSON-RPC request/notification/response: {l}\n{context}"

            o
        | _ -> failwith $"stdout line is not a JSON object: {l}\n{context}")
    |> Array.toList

// ------------------------------------------------------------------------------------------------ platform

type Workspace =
    { Id: string
      Token: string
      Name: string }

type HttpAnswer =
    { Code: int
      Body: string }

    member a.Json = parseJson a.Body

/// The local platform started in-process on a temp data dir, with admin helpers.
type Platform(p: RunningPlatform) =
    let http = new HttpClient(BaseAddress = Uri p.Url, Timeout = TimeSpan.FromSeconds 30.0)

    static member StartAsync() : Task<Platform> =
        task {
            let! p = start (PlatformOptions.defaults (tempDir "platform"))
            return new Platform(p)
        }

    member _.Url = p.Url
    member _.AdminToken = p.AdminToken
    member _.Running = p
    member _.Faults = p.Faults

    /// Requests seen (by path prefix), counted before any fault applies.
    member _.Requests(prefix: string) = p.Faults.Requests prefix

    member _.Fault(rule: FaultRule) = p.Faults.Add rule
    member _.ClearFaults() = p.Faults.Clear()

    member _.Send(meth: string, path: string, ?body: string, ?token: string, ?caller: string) : Task<HttpAnswer> =
        task {
            use req = new HttpRequestMessage(HttpMethod meth, path)

            body |> Option.iter (fun b -> req.Content <- new StringContent(b, Encoding.UTF8, "application/json"))
            token |> Option.iter (fun t -> req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", t))
            caller |> Option.iter (fun c -> req.Headers.Add("X-Workspace-ID", c))
            use! resp = http.SendAsync req
            let! text = resp.Content.ReadAsStringAsync()
            return { Code = int resp.StatusCode; Body = text }
        }

    /// POST /workspaces (admin) → id + auth_token.
    member this.CreateWorkspace(name: string, ?role: string, ?parent: Workspace, ?skills: string list) : Task<Workspace> =
        task {
            let o = JsonObject()
            o["name"] <- JsonValue.Create name
            role |> Option.iter (fun r -> o["role"] <- JsonValue.Create r)
            parent |> Option.iter (fun w -> o["parent_id"] <- JsonValue.Create w.Id)

            skills
            |> Option.iter (fun s -> o["skills"] <- JsonArray(s |> List.map (fun x -> JsonValue.Create x :> JsonNode) |> List.toArray))

            let! a = this.Send("POST", "/workspaces", o.ToJsonString(), p.AdminToken)

            if a.Code <> 201 then
                failwith $"create workspace failed: HTTP {inv a.Code} {a.Body}"

            let j = a.Json
            return { Id = strOf j "id"; Token = strOf j "auth_token"; Name = name }
        }

    /// Registers a workspace as a poll-mode agent (what molecule-mcp does at start), so it is online.
    member this.RegisterPoll(ws: Workspace) : Task =
        task {
            let body = $"{{\"id\":\"{ws.Id}\",\"agent_card\":{{\"name\":\"{ws.Name}\"}},\"delivery_mode\":\"poll\"}}"
            let! a = this.Send("POST", "/registry/register", body, ws.Token)

            if a.Code <> 200 then
                failwith $"register failed: HTTP {inv a.Code} {a.Body}"
        }

    member this.DeleteWorkspace(id: string) : Task<HttpAnswer> =
        this.Send("DELETE", $"/workspaces/{id}?confirm=true", token = p.AdminToken)

    static member MessageBody(text: string) =
        let o =
            JsonObject(
                [ KeyValuePair("jsonrpc", JsonValue.Create "2.0" :> JsonNode)
                  KeyValuePair("id", JsonValue.Create(Guid.NewGuid().ToString()))
                  KeyValuePair("method", JsonValue.Create "message/send")
                  KeyValuePair(
                      "params",
                      JsonObject(
                          [ KeyValuePair(
                                "message",
                                JsonObject(
                                    [ KeyValuePair("role", JsonValue.Create "user" :> JsonNode)
                                      KeyValuePair("messageId", JsonValue.Create(Guid.NewGuid().ToString()))
                                      KeyValuePair(
                                          "parts",
                                          JsonArray(
                                              JsonObject(
                                                  [ KeyValuePair("kind", JsonValue.Create "text" :> JsonNode)
                                                    KeyValuePair("text", JsonValue.Create text) ]
                                              )
                                          )
                                      ) ]
                                ) :> JsonNode
                            ) ]
                      )
                  ) ]
            )

        o.ToJsonString()

    /// A canvas-user message: admin bearer, no X-Workspace-ID.
    member this.CanvasMessage(target: string, text: string) : Task<HttpAnswer> =
        task {
            let! a = this.Send("POST", $"/workspaces/{target}/a2a", Platform.MessageBody text, p.AdminToken)

            if a.Code <> 200 then
                failwith $"canvas message failed: HTTP {inv a.Code} {a.Body}"

            return a
        }

    /// A peer message from `from` (its bearer + X-Workspace-ID).
    member this.PeerMessage(from: Workspace, target: string, text: string) : Task<HttpAnswer> =
        task {
            let! a = this.Send("POST", $"/workspaces/{target}/a2a", Platform.MessageBody text, from.Token, from.Id)

            if a.Code <> 200 then
                failwith $"peer message failed: HTTP {inv a.Code} {a.Body}"

            return a
        }

    /// GET /workspaces/:id/activity (admin), newest-first or whatever the platform returns.
    member this.Activity(id: string, ?activityType: string) : Task<JsonObject list> =
        task {
            let q =
                match activityType with
                | Some t -> $"?type={t}&limit=500"
                | None -> "?limit=500"

            let! a = this.Send("GET", $"/workspaces/{id}/activity{q}", token = p.AdminToken)

            if a.Code <> 200 then
                failwith $"list activity failed: HTTP {inv a.Code} {a.Body}"

            return a.Json.AsArray() |> Seq.map (fun n -> n.AsObject()) |> Seq.toList
        }

    interface IAsyncDisposable with
        member _.DisposeAsync() =
            http.Dispose()

            ValueTask(
                task {
                    let dir = p.DataDir
                    do! p.StopAsync()

                    // best effort: the data dir (SQLite, uploads) of this test's platform
                    try
                        Directory.Delete(dir, true)
                    with _ ->
                        ()
                }
                :> Task
            )

/// Env for one agent process: the three required vars, a private CONFIGS_DIR and fast loops.
let agentEnv (platform: Platform) (ws: Workspace) : (string * string) list =
    [ "WORKSPACE_ID", ws.Id
      "PLATFORM_URL", platform.Url
      "MOLECULE_WORKSPACE_TOKEN", ws.Token
      "CONFIGS_DIR", tempDir "configs"
      "MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.3"
      "MOLECULE_MCP_POLL_INTERVAL_SECS", "0.3" ]

/// PATH/HOME etc. a client would pass; nothing from the test runner's own Molecule settings.
let baseEnv () : Dictionary<string, string> =
    let d = Dictionary<string, string>()

    for k in [ "PATH"; "HOME"; "DOTNET_ROOT"; "LANG"; "TMPDIR" ] do
        match Environment.GetEnvironmentVariable k with
        | null -> ()
        | v -> d[k] <- v

    d

// ------------------------------------------------------------------------------------------------ McpClient

let textOf = Molecule.Tests.Support.Tool.textOf

let isError (r: CallToolResult) = r.IsError.GetValueOrDefault false

/// The published binary driven by the SDK's McpClient; stderr lines and channel notifications are collected.
type AgentProcess(client: McpClient, stderr: ConcurrentQueue<string>, notes: ConcurrentQueue<JsonNode>, secrets: string list) =
    let results = ConcurrentQueue<string>()

    static member StartAsync
        (
            env: (string * string) list,
            ?protocolVersion: string,
            ?command: string,
            ?args: string list,
            ?baseVars: Dictionary<string, string>
        ) : Task<AgentProcess> =
        task {
            let stderr = ConcurrentQueue<string>()
            let notes = ConcurrentQueue<JsonNode>()
            let vars = defaultArg baseVars (baseEnv ())

            for (k, v) in env do
                vars[k] <- v

            let options =
                StdioClientTransportOptions(
                    Name = "molecule",
                    Command = defaultArg command (Molecule.Tests.Support.Binary.path ()),
                    Arguments = (defaultArg args [] |> List.toArray),
                    InheritEnvironmentVariables = false,
                    EnvironmentVariables = (vars |> Seq.map (fun kv -> KeyValuePair(kv.Key, kv.Value)) |> Dictionary),
                    StandardErrorLines = (fun line -> stderr.Enqueue line),
                    ShutdownTimeout = TimeSpan.FromSeconds 5.0
                )

            let transport = new StdioClientTransport(options)

            let handler =
                Func<JsonRpcNotification, CancellationToken, ValueTask>(fun n _ ->
                    notes.Enqueue(if isNull n.Params then JsonObject() :> JsonNode else n.Params.DeepClone())
                    ValueTask.CompletedTask)

            let handlers = McpClientHandlers()
            handlers.NotificationHandlers <- [ KeyValuePair("notifications/claude/channel", handler) ]

            let clientOptions =
                McpClientOptions(
                    ClientInfo = Implementation(Name = "molecule-integration-tests", Version = "1.0"),
                    ProtocolVersion = defaultArg protocolVersion "2025-06-18",
                    Handlers = handlers
                )

            use cts = new CancellationTokenSource(TimeSpan.FromSeconds 30.0)

            try
                let! client = McpClient.CreateAsync(transport, clientOptions, null, cts.Token)

                let secrets =
                    env |> List.choose (fun (k, v) -> if k.Contains "TOKEN" && v.Length >= 8 then Some v else None)

                return new AgentProcess(client, stderr, notes, secrets)
            with e ->
                let err = String.Join("\n", stderr)
                return failwith $"could not start molecule-mcp via McpClient: {e.Message}\nstderr:\n{err}"
        }

    member _.Client = client
    member _.StderrLines: string list = List.ofSeq stderr
    member _.Stderr = String.Join("\n", stderr)
    member _.Notifications: JsonNode list = List.ofSeq notes

    member this.Describe() =
        let ns = this.Notifications |> List.map (fun n -> n.ToJsonString()) |> String.concat "\n  "
        $"--- stderr ---\n{this.Stderr}\n--- channel notifications ---\n  {ns}"

    member this.Call(tool: string, args: (string * obj) list) : Task<CallToolResult> =
        task {
            let d = Dictionary<string, obj>()

            for (k, v) in args do
                // plain JSON values: the SDK's serializer options need not know arbitrary CLR types
                d[k] <- box (JsonSerializer.SerializeToElement(v, v.GetType()))

            use cts = new CancellationTokenSource(TimeSpan.FromSeconds 60.0)

            try
                let! r = client.CallToolAsync(tool, d, null, null, cts.Token)
                results.Enqueue(textOf r)
                return r
            with e ->
                return failwith $"tools/call {tool} threw: {e.Message}\n{this.Describe()}"
        }

    /// Calls a tool and fails (with stderr) unless it succeeded; returns its text.
    member this.CallOk(tool: string, args: (string * obj) list) : Task<string> =
        task {
            let! r = this.Call(tool, args)

            if isError r then
                failwith $"{tool} returned isError: {textOf r}\n{this.Describe()}"

            return textOf r
        }

    member this.WaitStderr(what: string, cond: string list -> bool, ?timeout: float) : Task =
        waitUntil (secs (defaultArg timeout 15.0)) what this.Describe (fun () -> cond this.StderrLines)

    member this.WaitNotification(pred: JsonNode -> bool, ?timeout: float) : Task<JsonNode> =
        task {
            do!
                waitUntil (secs (defaultArg timeout 15.0)) "a channel notification" this.Describe (fun () ->
                    this.Notifications |> List.exists pred)

            return this.Notifications |> List.find pred
        }

    /// Everything the process said that the test saw: stderr, notifications, tool result texts.
    member this.AssertNoTokenLeak(?extra: string list) =
        let all = secrets @ defaultArg extra []
        assertNoSecrets all "stderr" this.StderrLines
        assertNoSecrets all "a channel notification" (this.Notifications |> List.map (fun n -> n.ToJsonString()))
        assertNoSecrets all "a tool result" (List.ofSeq results)

    interface IAsyncDisposable with
        member _.DisposeAsync() = client.DisposeAsync()

// ------------------------------------------------------------------------------------------------ raw process

/// The first text of a raw `tools/call` response (fails, showing it, when the call itself failed).
let resultText (r: JsonObject) : string =
    match r["result"] with
    | null -> failwith $"tool call failed: {r.ToJsonString()}"
    | res -> (res["content"].AsArray()).[0].["text"].GetValue<string>()

/// A raw `tools/call` response is an error: a JSON-RPC error or a result flagged isError.
let resultIsError (r: JsonObject) : bool =
    match r["result"] with
    | null -> true
    | res -> not (isNull res["isError"]) && res["isError"].GetValue<bool>()


/// The published binary as a plain process: write raw lines to stdin, capture every stdout byte and stderr line.
type RawProcess(proc: Process) =
    let out = new MemoryStream()
    let gate = obj ()
    let errLines = ConcurrentQueue<string>()
    let mutable nextId = 1000
    let parsedGate = obj ()
    let parsed = ResizeArray<JsonNode>()
    let mutable parsedOffset = 0

    let pump =
        Task.Run(fun () ->
            task {
                let buf = Array.zeroCreate<byte> 8192
                let s = proc.StandardOutput.BaseStream
                let mutable n = 1

                while n > 0 do
                    let! r = s.ReadAsync(buf, 0, buf.Length)
                    n <- r

                    if n > 0 then
                        lock gate (fun () -> out.Write(buf, 0, n))
            }
            :> Task)

    do
        proc.ErrorDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                errLines.Enqueue e.Data)

        proc.BeginErrorReadLine()

    /// Starts the binary (or `command args`) with ONLY the base env plus `env`.
    static member Start(env: (string * string) list, ?command: string, ?args: string list, ?baseVars: Dictionary<string, string>) =
        let psi =
            ProcessStartInfo(
                defaultArg command (Molecule.Tests.Support.Binary.path ()),
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false
            )

        for a in defaultArg args [] do
            psi.ArgumentList.Add a

        psi.Environment.Clear()

        for kv in defaultArg baseVars (baseEnv ()) do
            psi.Environment[kv.Key] <- kv.Value

        for (k, v) in env do
            psi.Environment[k] <- v

        psi.StandardInputEncoding <- UTF8Encoding(false)
        let p = Process.Start psi
        p.StandardInput.AutoFlush <- true
        new RawProcess(p)

    member _.Process = proc
    member _.StdoutBytes: byte[] = lock gate (fun () -> out.ToArray())
    member this.StdoutText = Encoding.UTF8.GetString this.StdoutBytes
    member _.StderrLines: string list = List.ofSeq errLines
    member this.Stderr = String.Join("\n", this.StderrLines)

    member this.Describe() =
        $"--- stdout ---\n{this.StdoutText}\n--- stderr ---\n{this.Stderr}"

    /// Complete stdout lines parsed as JSON (lines that do not parse are skipped here; see assertJsonRpcLines).
    /// Parsed once: each call only reads the lines that arrived since the last one.
    member this.Messages: JsonNode list =
        lock parsedGate (fun () ->
            let bytes = this.StdoutBytes
            let lastNewline = Array.LastIndexOf(bytes, byte '\n')
            if lastNewline + 1 > parsedOffset then
                let text = Encoding.UTF8.GetString(bytes, parsedOffset, lastNewline + 1 - parsedOffset)
                parsedOffset <- lastNewline + 1
                for l in text.Split('\n') do
                    if l.Trim() <> "" then
                        try
                            parsed.Add(JsonNode.Parse l)
                        with _ ->
                            ()
            List.ofSeq parsed)

    member _.Send(line: string) =
        proc.StandardInput.Write(line + "\n")
        proc.StandardInput.Flush()

    member this.SendJson(o: JsonNode) = this.Send(o.ToJsonString())

    member _.CloseStdin() = proc.StandardInput.Close()

    member _.NextId() = Interlocked.Increment &nextId

    /// Waits for the response with this id.
    member this.WaitResponse(id: JsonNode, ?timeout: float) : Task<JsonObject> =
        task {
            let key = id.ToJsonString()

            let find () =
                this.Messages
                |> List.tryPick (fun m ->
                    match m with
                    | :? JsonObject as o when
                        not (o.ContainsKey "method") && not (isNull o["id"]) && o["id"].ToJsonString() = key
                        ->
                        Some o
                    | _ -> None)

            do! waitUntil (secs (defaultArg timeout 15.0)) $"the response to id {key}" this.Describe (fun () -> (find ()).IsSome)
            return (find ()).Value
        }

    /// Sends a request (fresh numeric id) and waits for its response.
    member this.Request(method': string, ?pars: JsonNode, ?timeout: float) : Task<JsonObject> =
        let id = this.NextId()
        let o = JsonObject()
        o["jsonrpc"] <- JsonValue.Create "2.0"
        o["id"] <- JsonValue.Create id
        o["method"] <- JsonValue.Create method'

        pars |> Option.iter (fun p -> o["params"] <- p)
        this.SendJson o
        this.WaitResponse(JsonValue.Create id, defaultArg timeout 15.0)

    member this.Notify(method': string, ?pars: JsonNode) =
        let o = JsonObject()
        o["jsonrpc"] <- JsonValue.Create "2.0"
        o["method"] <- JsonValue.Create method'
        pars |> Option.iter (fun p -> o["params"] <- p)
        this.SendJson o

    /// initialize (+ notifications/initialized unless told not to); returns the initialize result.
    member this.Initialize(?version: string, ?sendInitialized: bool) : Task<JsonObject> =
        task {
            let v = defaultArg version "2025-06-18"

            let pars =
                parseJson (
                    "{\"protocolVersion\":\"" + v + "\",\"capabilities\":{},"
                    + "\"clientInfo\":{\"name\":\"raw-test\",\"version\":\"1\"}}"
                )

            let! r = this.Request("initialize", pars)

            match r["result"] with
            | null -> failwith $"initialize failed: {r.ToJsonString()}\n{this.Describe()}"
            | _ -> ()

            if defaultArg sendInitialized true then
                this.Notify "notifications/initialized"

            return r
        }

    member this.CallTool(name: string, argsJson: string, ?timeout: float) : Task<JsonObject> =
        this.Request("tools/call", parseJson ($"{{\"name\":\"{name}\",\"arguments\":{argsJson}}}"), defaultArg timeout 30.0)

    member this.ChannelNotifications: JsonNode list =
        this.Messages |> List.filter (fun m -> strOf m "method" = "notifications/claude/channel")

    /// Waits for the exit; fails (with output) after the timeout.
    member this.WaitExit(?timeout: float) : Task<int> =
        task {
            use cts = new CancellationTokenSource(secs (defaultArg timeout 15.0))

            try
                do! proc.WaitForExitAsync cts.Token
            with :? OperationCanceledException ->
                failwith $"molecule-mcp did not exit within {inv (int (defaultArg timeout 15.0))} s\n{this.Describe()}"

            do! pump.WaitAsync(secs 5.0)
            proc.WaitForExit() // flushes the async stderr reader
            return proc.ExitCode
        }

    interface IDisposable with
        member _.Dispose() =
            try
                if not proc.HasExited then
                    proc.Kill true
                    proc.WaitForExit 5000 |> ignore
            with _ ->
                ()

            proc.Dispose()
