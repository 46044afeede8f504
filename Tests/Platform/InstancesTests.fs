/// Several platform instances serving one team on one PostgreSQL database: the canvas's live view fans out across
/// instances (a canvas on one sees what happens on another, with its feed entries, whether or not the other has a
/// canvas open), and the liveness sweep never overwrites a heartbeat that committed after it read (a compare-and-set
/// through the store interface, on every engine).
module Molecule.Tests.Platform.InstancesTests

open System
open System.IO
open System.Net.Http
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Tasks
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Platform.Store
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.StreamHttpTests
module Json = Molecule.Protocol.Json
module Pg = Molecule.Tests.Support.Postgres

// ---------------------------------------------------------------- two instances behind no proxy

/// Two platforms on one database, each with its data directory (the team's admin token and key copied from the
/// first, as the README says for every new instance).
type private Pair() =
    let dirs = [ tempDir (); tempDir () ]
    let url = Pg.urlFor dirs[0]

    let startOn (dir: string) =
        (Server.start { PlatformOptions.defaults dir with Database = Postgres url; SweepInterval = TimeSpan.FromHours 1.0 }).Result

    let a = startOn dirs[0]

    let b =
        for f in [ "admin_token"; SecretBox.KeyFile ] do
            File.Copy(Path.Combine(dirs[0], f), Path.Combine(dirs[1], f))

        startOn dirs[1]

    let clients = [ new Client(a.Url); new Client(b.Url) ]
    member _.A = a
    member _.B = b
    member _.ClientOf(i: int) = clients[i]
    member _.Admin = a.AdminToken

    interface IAsyncDisposable with
        member _.DisposeAsync() =
            ValueTask(
                task {
                    for c in clients do
                        (c :> IDisposable).Dispose()

                    do! b.StopAsync()
                    do! a.StopAsync()
                }
            )

let private http = new HttpClient(Timeout = Timeout.InfiniteTimeSpan)

/// GET /events (the canvas's live view) with the admin bearer, once it said `: connected`.
let private openCanvas (baseUrl: string) (admin: string) : Task<Sse> =
    task {
        use req = new HttpRequestMessage(HttpMethod.Get, $"{baseUrl}/events")
        req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", admin)
        let! resp = http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead)
        Assert.Equal(200, int resp.StatusCode)
        let! stream = resp.Content.ReadAsStreamAsync()
        let s = new Sse(resp, stream, Task.CompletedTask)
        let! first = s.Next(TimeSpan.FromSeconds 5.0)
        Assert.Equal(Some ": connected\n\n", first)
        return s
    }

/// A canvas frame: its type and data.
let private canvasFrame (frame: string) : (string * JsonObject) option =
    let m = Regex.Match(frame, "^event: ([A-Z_]+)\\ndata: (\\{.*\\})\\n\\n$", RegexOptions.Singleline)
    if m.Success then Json.tryParseObject m.Groups[2].Value |> Option.map (fun o -> m.Groups[1].Value, o) else None

/// Canvas events until one matches `stop` (included), or none came for 10 s.
let private canvasUntil (s: Sse) (stop: string * JsonObject -> bool) : Task<(string * JsonObject) list> =
    task {
        let acc = ResizeArray()
        let mutable go = true

        while go do
            match! s.Next(TimeSpan.FromSeconds 10.0) with
            | Some f ->
                match canvasFrame f with
                | Some e ->
                    acc.Add e
                    if stop e then go <- false
                | None -> () // a keep-alive comment
            | None -> go <- false

        return List.ofSeq acc
    }

let private feedText (o: JsonObject) : string option =
    match node o "payload.feed.text" with
    | null -> None
    | n -> Some(n.GetValue<string>())

[<Fact>]
let ``instances: a canvas on one instance sees registrations and messages on another, with their feed entries, while the other has no canvas`` () =
    task {
        use pair = new Pair()
        // a canvas on A only: nothing subscribes to B's hub
        use! canvas = openCanvas pair.A.Url pair.Admin
        let onB = pair.ClientOf 1
        let! ws = createWs onB pair.Admin "Researcher" None []
        let! reg = onB.Send("POST", "/registry/register", registerBody ws.Id, ws.Token)
        Assert.Equal(200, reg.Code)
        let! sent = onB.Send("POST", $"/workspaces/{ws.Id}/a2a", messageBody "hello from B", pair.Admin)
        Assert.Equal(200, sent.Code)

        let isMessage (kind: string, o: JsonObject) =
            kind = "ACTIVITY_LOGGED" && str o "workspace_id" = ws.Id && (node o "payload.activity.activity_type").GetValue<string>() = "a2a_receive"

        let! seen = canvasUntil canvas isMessage
        let ofWs = seen |> List.filter (fun (_, o) -> str o "workspace_id" = ws.Id)
        let kinds = ofWs |> List.map fst
        Assert.Contains("WORKSPACE_CREATED", kinds)
        Assert.Contains("WORKSPACE_ONLINE", kinds)
        Assert.True(List.exists isMessage ofWs, $"""the message reached A's canvas: {String.Join(", ", kinds)}""")
        // what the canvas shows of them: their feed lines, with names
        let feedOf kind = ofWs |> List.filter (fun (k, _) -> k = kind) |> List.choose (snd >> feedText)
        Assert.Equal<string list>([ "Researcher is online (its agent registered)" ], feedOf "WORKSPACE_ONLINE")
        Assert.Equal<string list>([ "Researcher was created" ], feedOf "WORKSPACE_CREATED")
        Assert.True((ofWs |> List.filter isMessage |> List.choose (snd >> feedText) |> List.length) = 1, "the message's feed line")
    }

// ---------------------------------------------------------------- the sweep and a heartbeat, interleaved

let private t0 = DateTimeOffset(2026, 3, 1, 9, 0, 0, TimeSpan.Zero)

let private heartbeatAt (at: DateTimeOffset) (w: Workspace) =
    Liveness.heartbeat
        at
        { ErrorRate = 0.0
          SampleError = ""
          ActiveTasks = 0
          UptimeSeconds = 5
          CurrentTask = ""
          RuntimeState = "" }
        w

/// An online workspace whose last heartbeat was at t0 (stale from t0 + 90 s).
let private onlineWorkspace (s: IStore) =
    let id = WorkspaceId(Guid.NewGuid())
    let w = heartbeatAt t0 { Workspace.fresh id t0 with Name = "w" }
    s.Write(fun x -> x.SaveWorkspace w)
    Assert.Equal(Status.Online, w.Status)
    id

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: the sweep reads, a heartbeat lands, the sweep writes — the workspace stays online with the heartbeat`` (engine: string) =
    use s = (named engine).OpenStore (tempDir ()) ignore
    let id = onlineWorkspace s
    let now = t0.AddSeconds 120.0
    // the sweep reads: stale
    let seen = s.Read(fun r -> r.Workspace id) |> Option.get
    let swept = Liveness.sweep now seen |> Option.get
    // a heartbeat lands
    let beat = heartbeatAt (now.AddSeconds -1.0) seen
    s.Write(fun w -> w.SaveWorkspace beat)
    // the sweep writes what it decided on its read: refused
    Assert.False(s.Write(fun w -> w.SaveWorkspaceIf(swept, seen)))
    let stored = s.Read(fun r -> r.Workspace id) |> Option.get
    Assert.Equal((Status.Online, beat.LastHeartbeatAt), (stored.Status, stored.LastHeartbeatAt))
    // with nothing in between, the same write is made
    Assert.True(s.Write(fun w -> w.SaveWorkspaceIf(Liveness.sweep (now.AddSeconds 120.0) stored |> Option.get, stored)))
    Assert.Equal(Status.AwaitingAgent, (s.Read(fun r -> r.Workspace id) |> Option.get).Status)

[<Fact>]
let ``instances: a heartbeat on one instance committed inside another's sweep transaction is kept`` () =
    let dirs = [ tempDir (); tempDir () ]
    let url = Pg.urlFor dirs[0]
    use a = PostgresStore.openAt url dirs[0] ignore ignore ignore
    File.Copy(Path.Combine(dirs[0], SecretBox.KeyFile), Path.Combine(dirs[1], SecretBox.KeyFile))
    use b = PostgresStore.openAt url dirs[1] ignore ignore ignore
    let id = onlineWorkspace a
    let now = t0.AddSeconds 120.0

    // the sweep on A, in one transaction: it reads, B's heartbeat commits, it writes
    let changed =
        a.Write(fun w ->
            let seen = w.Workspaces() |> List.find (fun x -> x.Id = id)
            Task.Run(fun () -> b.Write(fun x -> x.SaveWorkspace(heartbeatAt (now.AddSeconds -1.0) (x.Workspace id).Value))).Wait()
            Liveness.sweep now seen |> Option.map (fun u -> w.SaveWorkspaceIf(u, seen)))

    Assert.Equal(Some false, changed)
    let stored = b.Read(fun r -> r.Workspace id) |> Option.get
    Assert.Equal((Status.Online, Some(now.AddSeconds -1.0)), (stored.Status, stored.LastHeartbeatAt))
