/// The workspace event stream (GET /workspaces/:id/events/stream) read raw over HTTP: auth, headers, framing,
/// the double ring of a poll-mode message/send, which events reach which stream, revocation, the 64-event buffer
/// and the stream-cutting fault.
module Molecule.Tests.Platform.StreamHttpTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Xunit
open Molecule.Platform
open Molecule.Platform.Server
open Molecule.Tests.Platform.Engines
open Molecule.Tests.Platform.HttpTests
open Molecule.Tests.Platform.DeliveryHttpTests
module Json = Molecule.Protocol.Json

/// An open SSE response. A background pump splits the raw text into frames (each ending in a blank line) once
/// `reading` completes; `Next` waits for one without ever cancelling a read (that would drop the connection).
type Sse(resp: HttpResponseMessage, stream: Stream, reading: Task) =
    let frames = Channel.CreateUnbounded<string>()

    let pump =
        task {
            try
                do! reading
                let buffer = Array.zeroCreate<byte> 65536
                let decoder = Encoding.UTF8.GetDecoder()
                let chars = Array.zeroCreate<char> (Encoding.UTF8.GetMaxCharCount buffer.Length)
                let pending = StringBuilder()
                let mutable go = true

                while go do
                    let! n = stream.ReadAsync(buffer, 0, buffer.Length)

                    if n = 0 then
                        go <- false
                    else
                        let k = decoder.GetChars(buffer, 0, n, chars, 0)
                        pending.Append(chars, 0, k) |> ignore
                        let mutable text = pending.ToString()
                        let mutable cut = text.IndexOf "\n\n"

                        while cut >= 0 do
                            frames.Writer.TryWrite(text.Substring(0, cut + 2)) |> ignore
                            text <- text.Substring(cut + 2)
                            cut <- text.IndexOf "\n\n"

                        pending.Clear().Append(text) |> ignore
            with
            | :? IOException
            | :? ObjectDisposedException
            | :? OperationCanceledException -> ()

            frames.Writer.TryComplete() |> ignore
        }

    member _.Response = resp

    /// The next raw frame, or None when none came within `timeout` (or the stream ended).
    member _.Next(timeout: TimeSpan) : Task<string option> =
        task {
            let wait = frames.Reader.WaitToReadAsync().AsTask()
            let! first = Task.WhenAny(wait, Task.Delay timeout)

            if Object.ReferenceEquals(first, wait) && wait.Result then
                match frames.Reader.TryRead() with
                | true, f -> return Some f
                | _ -> return None
            else
                return None
        }

    /// Completes when the server ends or cuts the stream.
    member _.Ended: Task = pump

    interface IDisposable with
        member _.Dispose() = resp.Dispose()

let private http = new HttpClient(Timeout = Timeout.InfiniteTimeSpan)

/// GET the stream; Ok when 200 (reading frames once `reading` completes), else the answer.
let openStreamWhen (baseUrl: string) (id: string) (token: string option) (reading: Task) : Task<Result<Sse, Answer>> =
    task {
        use req = new HttpRequestMessage(HttpMethod.Get, $"{baseUrl}/workspaces/{id}/events/stream")
        token |> Option.iter (fun t -> req.Headers.Authorization <- Headers.AuthenticationHeaderValue("Bearer", t))
        let! resp = http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead)

        if int resp.StatusCode = 200 then
            let! stream = resp.Content.ReadAsStreamAsync()
            return Ok(new Sse(resp, stream, reading))
        else
            let! text = resp.Content.ReadAsStringAsync()
            resp.Dispose()
            return Error { Code = int resp.StatusCode; Text = text }
    }

let openStream (baseUrl: string) (id: string) (token: string) : Task<Sse> =
    task {
        match! openStreamWhen baseUrl id (Some token) Task.CompletedTask with
        | Ok s -> return s
        | Error a -> return failwith $"stream refused: {a.Code} {a.Text}"
    }

let private wait = TimeSpan.FromSeconds 5.0
let private quiet = TimeSpan.FromMilliseconds 300.0

/// The envelope of a `data:` frame; fails on any other framing.
let envelope (frame: string) : JsonObject =
    let m = Regex.Match(frame, "^data: (\\{.*\\})\\n\\n$", RegexOptions.Singleline)
    Assert.True(m.Success, $"not a data frame: {frame}")
    Assert.DoesNotContain("\n", m.Groups[1].Value)
    (Json.tryParseObject m.Groups[1].Value).Value

let sv (o: JsonObject) (k: string) = o.[k].GetValue<string>()
let iv (o: JsonObject) (k: string) = o.[k].GetValue<int>()
let lv (o: JsonObject) (k: string) = o.[k].GetValue<int64>()
let typeOf (e: JsonObject) = sv e "type"
let dataOf (e: JsonObject) = e["data"].AsObject()
let keysOf (o: JsonObject) = [ for kv in o -> kv.Key ]

/// Frames until `stop` matches an envelope (included) or nothing comes within `wait`.
let framesUntil (s: Sse) (stop: JsonObject -> bool) : Task<JsonObject list> =
    task {
        let acc = ResizeArray<JsonObject>()
        let mutable go = true

        while go do
            match! s.Next wait with
            | Some f ->
                let e = envelope f
                acc.Add e
                if stop e then go <- false
            | None -> go <- false

        return List.ofSeq acc
    }

let next (s: Sse) : Task<JsonObject> =
    task {
        match! s.Next wait with
        | Some f -> return envelope f
        | None -> return failwith "no frame within 5 s"
    }

[<AbstractClass>]
type Streams<'E when 'E :> IEngine and 'E: (new: unit -> 'E)>(fx: PlatformFixture<'E>) =
    let c = fx.Client
    let admin = fx.Admin
    let url = fx.Platform.Url

    let team () =
        task {
            let! lead = createWs c admin "lead" None []
            let! a = createWs c admin "alice" (Some lead.Id) []
            let! b = createWs c admin "bob" (Some lead.Id) []
            return lead, a, b
        }

    interface IClassFixture<PlatformFixture<'E>>

    [<Fact>]
    member _.``stream: 401 texts, 404 for an unknown workspace with the admin token, headers, then exactly one ping``() =
        task {
            let! _, a, b = team ()
            let refused (id: string) (token: string option) =
                task {
                    match! openStreamWhen url id token Task.CompletedTask with
                    | Ok s ->
                        (s :> IDisposable).Dispose()
                        return { Code = 200; Text = "" }
                    | Error e -> return e
                }

            let! missing = refused a.Id None
            Assert.Equal((401, """{"error":"missing workspace auth token"}"""), (missing.Code, missing.Text))
            let! wrong = refused a.Id (Some b.Token)
            Assert.Equal((401, """{"error":"invalid workspace auth token"}"""), (wrong.Code, wrong.Text))
            let! unknown = refused (string (Guid.NewGuid())) (Some admin)
            Assert.Equal((404, """{"error":"workspace not found"}"""), (unknown.Code, unknown.Text))
            use! s = openStream url a.Id a.Token
            let h = s.Response
            Assert.Equal("text/event-stream", h.Content.Headers.ContentType.ToString())
            Assert.Equal("no-cache", String.Join(",", h.Headers.GetValues "Cache-Control"))
            Assert.Equal("no", String.Join(",", h.Headers.GetValues "X-Accel-Buffering"))
            Assert.Contains("keep-alive", String.Join(",", h.Headers.Connection))
            let! ping = s.Next wait
            Assert.Equal(Some ": ping\n\n", ping)
            // no keep-alive comments and nothing else while nothing happens
            let! idle = s.Next(TimeSpan.FromSeconds 1.0)
            Assert.Equal(None, idle)
            // an admin may watch any workspace, the same way
            use! viaAdmin = openStream url a.Id admin
            let! adminPing = viaAdmin.Next wait
            Assert.Equal(Some ": ping\n\n", adminPing)
        }

    [<Fact>]
    member _.``stream: a poll-mode message/send rings twice (ingest, queued for poll) before the sender's answer``() =
        task {
            let! _, a, b = team ()
            use! s = openStream url b.Id b.Token
            let! _ = s.Next wait // ping
            let mid = string (Guid.NewGuid())
            let started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()
            let! sent = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "hello" mid "", a.Token, a.Id)
            Assert.Equal(200, sent.Code)
            // both frames were written before the answer: they are there without anything else happening
            let! first = s.Next quiet
            let! second = s.Next quiet
            let e1 = envelope first.Value
            let e2 = envelope second.Value
            Assert.Equal<string list>([ "type"; "timestamp"; "data" ], keysOf e1)
            Assert.Equal("ACTIVITY_LOGGED", typeOf e1)
            Assert.Equal("ACTIVITY_LOGGED", typeOf e2)
            Assert.InRange((lv e1 "timestamp"), started - 1000L, started + 60000L)
            let d1 = dataOf e1
            Assert.Equal<string list>([ "activity_type"; "duration_ms"; "message_id"; "method"; "request_body"; "source_id"; "status"; "summary"; "target_id" ], keysOf d1)
            Assert.Equal("message/send → bob (ingest)", (sv d1 "summary"))
            Assert.Equal("message/send → bob (queued for poll)", (sv (dataOf e2) "summary"))
            Assert.Equal(mid, (sv d1 "message_id"))
            Assert.Equal(a.Id, (sv d1 "source_id"))
            Assert.Equal(b.Id, (sv d1 "target_id"))
            Assert.Equal("hello", at d1 "request_body.params.message.parts.0.text")
            // a fetch triggered by the frame sees the row
            let! feed = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive", token = b.Token)
            Assert.Equal(1, (rows feed).Length)
            // the same message again: no new row, two more rings
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "hello" mid "", a.Token, a.Id)
            let! r3 = s.Next quiet
            let! r4 = s.Next quiet
            Assert.True(r3.IsSome && r4.IsSome)
            Assert.Equal("hello", at (dataOf (envelope r3.Value)) "request_body.params.message.parts.0.text")
            let! feed2 = c.Send("GET", $"/workspaces/{b.Id}/activity?type=a2a_receive", token = b.Token)
            Assert.Equal(1, (rows feed2).Length)
            // a canvas-origin message: USER_MESSAGE between the two rings
            let mid2 = string (Guid.NewGuid())
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/a2a", messageWithId "from a person" mid2 "", admin)
            let! three = framesUntil s (fun e -> typeOf e = "ACTIVITY_LOGGED" && (sv (dataOf e) "summary").EndsWith "(queued for poll)")
            Assert.Equal<string list>([ "ACTIVITY_LOGGED"; "USER_MESSAGE"; "ACTIVITY_LOGGED" ], three |> List.map typeOf)
            Assert.Equal($$"""{"content":"from a person","message_id":"{{mid2}}","workspace_id":"{{b.Id}}"}""", Json.compact (dataOf three[1]))
            Assert.Null((dataOf three[0])["source_id"])
        }

    [<Fact>]
    member _.``stream: heartbeat, notify, delegation and removal ring only their own workspace``() =
        task {
            let! lead, a, b = team ()
            let! child = createWs c admin "grandchild" (Some a.Id) []
            use! sa = openStream url a.Id a.Token
            use! sb = openStream url b.Id b.Token
            let! _ = sa.Next wait
            let! _ = sb.Next wait
            let! _ = c.Send("POST", "/registry/heartbeat", """{"workspace_id":"A","active_tasks":2,"uptime_seconds":9,"current_task":"t1"}""".Replace("A", a.Id), a.Token)
            let! _ = c.Send("POST", $"/workspaces/{a.Id}/notify", """{"message":"hi human"}""", a.Token)
            let! d = c.Send("POST", $"/workspaces/{a.Id}/delegate", $$"""{"target_id":"{{b.Id}}","task":"review this"}""", a.Token)
            Assert.Equal(202, d.Code)
            do! fx.Platform.IdleAsync()
            let! _ = c.Send("POST", $"/workspaces/{a.Id}/activity", """{"activity_type":"agent_log","summary":"marker"}""", a.Token)
            let! onA = framesUntil sa (fun e -> typeOf e = "ACTIVITY_LOGGED")
            let types = onA |> List.map typeOf

            Assert.Equal<string list>(
                [ "WORKSPACE_ONLINE"; "TASK_UPDATED"; "WORKSPACE_HEARTBEAT"; "AGENT_MESSAGE"; "DELEGATION_SENT"; "DELEGATION_STATUS"; "ACTIVITY_LOGGED" ],
                types
            )

            let find t = onA |> List.find (fun e -> typeOf e = t) |> dataOf |> Json.compact
            Assert.Equal("""{"active_tasks":2,"uptime_seconds":9}""", find "WORKSPACE_HEARTBEAT")
            Assert.Equal("""{"active_tasks":2,"current_task":"t1"}""", find "TASK_UPDATED")
            Assert.Equal($$"""{"message":"hi human","name":"alice","workspace_id":"{{a.Id}}"}""", find "AGENT_MESSAGE")
            let delegation = str d.Json "delegation_id"
            Assert.Equal($$"""{"delegation_id":"{{delegation}}","target_id":"{{b.Id}}","task_preview":"review this"}""", find "DELEGATION_SENT")
            Assert.Equal($$"""{"delegation_id":"{{delegation}}","status":"queued","target_id":"{{b.Id}}"}""", find "DELEGATION_STATUS")
            // b heard only its own inbound delegation (two rings), nothing of a's
            let! _ = c.Send("POST", $"/workspaces/{b.Id}/activity", """{"activity_type":"agent_log","summary":"marker b"}""", b.Token)
            let! onB = framesUntil sb (fun e -> typeOf e = "ACTIVITY_LOGGED" && (sv (dataOf e) "summary") = "marker b")
            Assert.Equal<string list>([ "ACTIVITY_LOGGED"; "ACTIVITY_LOGGED"; "ACTIVITY_LOGGED" ], onB |> List.map typeOf)
            Assert.Equal(delegation, (sv (dataOf onB[0]) "message_id"))
            // removal: the root's stream says how many went with it, and stays open
            let! removed = c.Send("DELETE", $"/workspaces/{a.Id}?confirm=true", token = admin)
            Assert.Equal(200, removed.Code)
            let! gone = next sa
            Assert.Equal("WORKSPACE_REMOVED", typeOf gone)
            Assert.Equal("""{"cascade_deleted":1}""", Json.compact (dataOf gone))
            ignore (lead, child)
        }

    [<Fact>]
    member _.``stream: a revoked token keeps its open stream; a reconnect gets 401``() =
        task {
            let! _, a, _ = team ()
            let! minted = c.Send("POST", $"/workspaces/{a.Id}/tokens", "{}", admin)
            let extra = str minted.Json "auth_token"
            use! s = openStream url a.Id extra
            let! _ = s.Next wait
            let tokenId = str minted.Json "id"
            let! revoked = c.Send("DELETE", $"/workspaces/{a.Id}/tokens/{tokenId}", token = admin)
            Assert.Equal(200, revoked.Code)
            let! _ = c.Send("POST", "/registry/heartbeat", heartbeatBody a.Id, a.Token)
            let! beat = framesUntil s (fun e -> typeOf e = "WORKSPACE_HEARTBEAT")
            Assert.Equal("WORKSPACE_HEARTBEAT", typeOf (List.last beat))

            match! openStreamWhen url a.Id (Some extra) Task.CompletedTask with
            | Ok again ->
                (again :> IDisposable).Dispose()
                failwith "a revoked token reconnected"
            | Error e -> Assert.Equal((401, """{"error":"invalid workspace auth token"}"""), (e.Code, e.Text))
        }

    [<Fact>]
    member _.``stream: the cut-streams fault drops open streams, and a reconnect works``() =
        task {
            let! _, a, b = team ()
            use! s = openStream url a.Id a.Token
            use! other = openStream url b.Id b.Token
            let! _ = s.Next wait
            let! _ = other.Next wait
            let! cut = c.Send("POST", "/admin/faults/cut-streams", $$"""{"path_prefix":"/workspaces/{{a.Id}}/events/stream"}""", admin)
            Assert.Equal("""{"cut":1}""", cut.Text)
            let! ended = Task.WhenAny(s.Ended, Task.Delay wait)
            Assert.Same(s.Ended, ended)
            let! notAdmin = c.Send("POST", "/admin/faults/cut-streams", """{"path_prefix":"/"}""", a.Token)
            Assert.Equal(401, notAdmin.Code)
            use! again = openStream url a.Id a.Token
            let! ping = again.Next wait
            Assert.Equal(Some ": ping\n\n", ping)
            // the other stream was not touched
            let! _ = c.Send("POST", "/registry/heartbeat", heartbeatBody b.Id, b.Token)
            let! beat = framesUntil other (fun e -> typeOf e = "WORKSPACE_HEARTBEAT")
            Assert.False(beat.IsEmpty)
        }

type StreamsOnSqlite(fx) =
    inherit Streams<OnSqlite>(fx)

type StreamsOnPostgres(fx) =
    inherit Streams<OnPostgres>(fx)

type StreamBuffer() =
    [<Theory; ClassData(typeof<EngineCases>)>]
    member _.``stream: a reader that does not read loses events beyond its 64-event buffer and stays connected``(engine: string) =
        task {
            use! own = task { return new Own(engine, id) }
            let! w = createWs own.C own.P.AdminToken "slow-reader" None []
            let go = TaskCompletionSource()
            let! opened = openStreamWhen own.P.Url w.Id (Some w.Token) go.Task
            use s = match opened with Ok s -> s | Error e -> failwith e.Text
            let id = WorkspaceId(Guid.Parse w.Id)
            let filler = String('x', 65536) // large frames fill the socket buffers quickly
            let total = 600

            // wait until the server has subscribed (the ping is sent after that), without reading it
            do! Task.Delay 200

            for i in 1..total do
                own.P.Events.Publish
                    { Type = "TEST_EVENT"
                      WorkspaceId = Some id
                      Payload = Json.obj []
                      Data = Json.obj [ "n", Json.num i; "filler", Json.str filler ]
                      At = DateTimeOffset.UtcNow
                      Audience = WorkspaceOnly }

            go.SetResult()
            let! ping = s.Next wait
            Assert.Equal(Some ": ping\n\n", ping)
            let received = ResizeArray<int>()
            let mutable more = true

            while more do
                match! s.Next(TimeSpan.FromSeconds 1.0) with
                | Some f -> received.Add(iv (dataOf (envelope f)) "n")
                | None -> more <- false

            Assert.InRange(received.Count, 64, total - 1) // the 64 buffered arrive; the rest were dropped, silently
            Assert.Equal<int list>(List.sort (List.ofSeq received), List.ofSeq received) // in order, no repeats
            Assert.Equal<int list>([ 1..10 ], received |> Seq.take 10 |> List.ofSeq) // the oldest are kept, newer dropped
            // still connected: the next event arrives
            let! _ = own.C.Send("POST", "/registry/heartbeat", heartbeatBody w.Id, w.Token)
            let! beat = framesUntil s (fun e -> typeOf e = "WORKSPACE_HEARTBEAT")
            Assert.Equal("WORKSPACE_HEARTBEAT", typeOf (List.last beat))
        }

    [<Fact>]
    member _.``hub: a workspace subscription holds 64 events, drops newer ones, and sees only its own``() =
        let hub = EventHub()
        let mine = WorkspaceId(Guid.NewGuid())
        let ch = hub.SubscribeWorkspace mine
        let canvas = hub.Subscribe()

        let event (ws: WorkspaceId) (n: int) (audience: Audience) =
            { Type = "E"; WorkspaceId = Some ws; Payload = Json.obj []; Data = Json.obj [ "n", Json.num n ]; At = DateTimeOffset.UtcNow; Audience = audience }

        for i in 1..100 do
            hub.Publish(event mine i Everyone)
            hub.Publish(event (WorkspaceId(Guid.NewGuid())) i Everyone)

        hub.Publish(event mine 0 CanvasOnly)
        Assert.Equal(64, ch.Reader.Count)
        let mutable e = Unchecked.defaultof<PlatformEvent>
        Assert.True(ch.Reader.TryRead(&e))
        Assert.Equal(1, iv e.Data "n")
        hub.Publish(event mine 101 WorkspaceOnly)
        Assert.Equal(64, ch.Reader.Count)
        Assert.Equal(201, canvas.Reader.Count) // the canvas sees everything but the workspace-only ring
        hub.Unsubscribe ch
        hub.Unsubscribe canvas
