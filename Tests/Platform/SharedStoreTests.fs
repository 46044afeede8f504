/// Several platform processes on one PostgreSQL database (PostgresStore), each a store of its own on the test
/// process's cluster: events relayed between them (NOTIFY, split and reassembled), the listener re-established after
/// its connection is cut, tickets and sweeps shared, and seq and ack order under any interleaving of two instances.
module Molecule.Tests.Platform.SharedStoreTests

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Xunit
open FsCheck
open FsCheck.FSharp
open Npgsql
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Tests.Platform.Engines
module Json = Molecule.Protocol.Json
module Pg = Molecule.Tests.Support.Postgres

let private t0 = DateTimeOffset(2026, 2, 1, 8, 0, 0, TimeSpan.Zero)
let private wid () = WorkspaceId(Guid.NewGuid())
let private aid () = ActivityId(Guid.NewGuid())

let private event (kind: string) (ws: WorkspaceId option) (text: string) : PlatformEvent =
    { Type = kind
      WorkspaceId = ws
      Payload = Json.obj [ "text", Json.str text ]
      Data = Json.obj [ "n", Json.num text.Length ]
      At = t0
      Audience = Everyone }

/// Instances of one team: stores on one database, each with its own data directory (the same key in each) and the
/// events it was handed.
type private Team(count: int) =
    let key = tempDir ()
    let url = Pg.urlFor key
    let dirs = [ for _ in 1..count -> tempDir () ]
    let published = [ for _ in 1..count -> ConcurrentQueue<PlatformEvent>() ]
    let reconnects = [| for _ in 1..count -> ref 0 |]

    let stores =
        [ for i in 0 .. count - 1 ->
              if i > 0 then
                  IO.File.Copy(IO.Path.Combine(dirs[0], SecretBox.KeyFile), IO.Path.Combine(dirs[i], SecretBox.KeyFile))

              PostgresStore.openAt url dirs[i] published[i].Enqueue (fun () -> Interlocked.Increment(reconnects[i]) |> ignore) ignore ]

    member _.Url = url
    member _.Store(i: int) = stores[i]
    member _.Published(i: int) = List.ofSeq published[i]
    member _.Reconnects(i: int) = reconnects[i].Value

    interface IDisposable with
        member _.Dispose() =
            for s in stores do
                s.Dispose()

/// Waits up to 10 s for `ok`.
let private eventually (what: string) (ok: unit -> bool) =
    let deadline = DateTime.UtcNow.AddSeconds 10.0

    while not (ok ()) && DateTime.UtcNow < deadline do
        Thread.Sleep 20

    Assert.True(ok (), what)

// ---------------------------------------------------------------- the relay's wire form

let private anEvent =
    gen {
        let! kind = Gen.elements [ "ACTIVITY_LOGGED"; "WORKSPACE_ONLINE"; "AGENT_MESSAGE" ]
        let! anchored = Gen.elements [ true; false ]
        let! size = Gen.choose (0, 20000)
        let! c = Gen.elements [ "a"; "é"; "€"; "𝄞" ]
        let text = String.replicate size c
        let! audience = Gen.elements [ Everyone; CanvasOnly; WorkspaceOnly ]
        return { event kind (if anchored then Some(wid ()) else None) text with Audience = audience }
    }

[<Fact>]
let ``rule: an event relayed as notifications, each within PostgreSQL's limit, is received whole`` () =
    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 60,
        Prop.forAll (Arb.fromGen anEvent) (fun e ->
            let notes = Relay.notifications "sender" "e-1" e
            // each one valid text on its own (a strict encoder throws at half a surrogate pair)
            let strict = Text.UTF8Encoding(false, true)
            let fits = notes |> List.forall (fun n -> strict.GetByteCount n < 8000)

            let received =
                notes
                |> List.choose Relay.parse
                |> List.fold (fun (a, got) p -> let a', e = Relay.receive a p in a', got @ Option.toList e) (Map.empty, [])
                |> snd

            fits && List.map Relay.encode received = [ Relay.encode e ])
    )

[<Fact>]
let ``rule: a piece out of order is dropped, not mixed into another event`` () =
    let big = event "X" None (String('x', 9000))
    let first = Relay.notifications "s" "e-1" big |> List.choose Relay.parse
    let second = Relay.notifications "s" "e-2" big |> List.choose Relay.parse
    // the first event lost its last piece (its connection dropped); the second comes whole
    let pieces = (first |> List.take (first.Length - 1)) @ second
    let _, got = pieces |> List.fold (fun (a, got) p -> let a', e = Relay.receive a p in a', got @ Option.toList e) (Map.empty, [])
    Assert.Equal<string list>([ Relay.encode big ], got |> List.map Relay.encode)
    Assert.Equal(None, Relay.parse "not a notification")

// ---------------------------------------------------------------- instances on one database

/// Cuts the connections of this role (`listener`, `notifier`) to the team's database (as a network or a restarted
/// database would) — `count`.
let private cut (role: string) (team: Team) (count: int64) =
    use admin = new NpgsqlConnection((Pg.instance ()).ConnectionString "postgres")
    admin.Open()

    use cut =
        new NpgsqlCommand(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = @app AND datname = @db",
            admin
        )

    cut.Parameters.AddWithValue("app", $"molecule-platform {role}") |> ignore
    cut.Parameters.AddWithValue("db", NpgsqlConnectionStringBuilder(PostgresStore.connectionString team.Url).Database) |> ignore
    Assert.Equal(count, cut.ExecuteScalar() :?> int64)

let private cutListeners = cut "listener"


[<Fact>]
let ``instances: a committed event reaches every other instance once, a rolled-back one none`` () =
    use team = new Team(3)
    let ws = wid ()
    team.Store(0).Write(fun w -> w.Announce(event "SMALL" (Some ws) "hello"))
    team.Store(1).Write(fun w -> w.Announce(event "LARGE" None (String('€', 12000))))

    try
        team.Store(2).Write(fun w ->
            w.Announce(event "ROLLED_BACK" None "")
            failwith "abort")
    with Failure _ ->
        ()

    team.Store(2).Write(fun w -> w.Announce(event "LAST" None ""))
    let kinds i = team.Published i |> List.map (fun e -> e.Type)
    eventually "every instance has every committed event" (fun () -> [ 0..2 ] |> List.forall (fun i -> (kinds i).Length >= 3))
    Thread.Sleep 200 // anything extra would have come by now

    for i in 0..2 do
        Assert.Equal<string list>([ "LARGE"; "LAST"; "SMALL" ], kinds i |> List.sort)

    let large = team.Published 0 |> List.find (fun e -> e.Type = "LARGE")
    Assert.Equal(String('€', 12000), large.Payload["text"].GetValue<string>())
    Assert.Equal(Some ws, (team.Published 2 |> List.find (fun e -> e.Type = "SMALL")).WorkspaceId)

[<Fact>]
let ``instances: a listener whose connection is cut listens again and says so; events flow again`` () =
    use team = new Team(2)
    team.Store(0).Write(fun w -> w.Announce(event "BEFORE" None ""))
    eventually "the first event arrives" (fun () -> team.Published 1 |> List.exists (fun e -> e.Type = "BEFORE"))
    cutListeners team 2
    eventually "both listeners are back" (fun () -> team.Reconnects 0 = 1 && team.Reconnects 1 = 1)
    team.Store(0).Write(fun w -> w.Announce(event "AFTER" None ""))
    eventually "events flow again" (fun () -> team.Published 1 |> List.exists (fun e -> e.Type = "AFTER"))

[<Fact>]
let ``instances: a notifier whose connection is cut sends again on a new one; events of one instance come in order`` () =
    use team = new Team(2)
    team.Store(0).Write(fun w -> w.Announce(event "FIRST" None ""))
    eventually "the first event arrives" (fun () -> team.Published 1 |> List.exists (fun e -> e.Type = "FIRST"))
    cut "notifier" team 1L

    for i in 1..20 do
        team.Store(0).Write(fun w -> w.Announce(event $"E{i}" None ""))

    let received () = team.Published 1 |> List.map (fun e -> e.Type) |> List.filter (fun k -> k.StartsWith "E")
    eventually "every event after the cut arrives" (fun () -> (received ()).Length = 20)
    Assert.Equal<string list>([ for i in 1..20 -> $"E{i}" ], received ())

[<Fact>]
let ``instances: a ticket issued on one instance is redeemed once, on any`` () =
    use team = new Team(2)
    let ticket = Tickets.issue t0 "ticket-text"
    team.Store(0).Write(fun w -> w.IssueTicket ticket)
    let redeem i = team.Store(i).Write(fun w -> w.RedeemTicket(ticket.Hash, t0.AddSeconds 1.0))
    Assert.Equal<bool list>([ true; false ], [ redeem 1; redeem 0 ])

[<Fact>]
let ``instances: a sweep runs on one instance at a time`` () =
    use team = new Team(2)
    use started = new ManualResetEventSlim()
    use release = new ManualResetEventSlim()
    let first = Task.Run(fun () -> team.Store(0).Exclusively("sweep", fun () -> started.Set(); release.Wait()))
    started.Wait()
    Assert.False(team.Store(1).Exclusively("sweep", ignore))
    Assert.True(team.Store(1).Exclusively("another", ignore))
    release.Set()
    Assert.True(first.Result)
    Assert.True(team.Store(1).Exclusively("sweep", ignore))

[<Fact>]
let ``instances: a workspace's secret sealed on one instance opens on another`` () =
    use team = new Team(2)
    let id = wid ()
    team.Store(0).Write(fun w -> w.SaveWorkspace { Workspace.fresh id t0 with Name = "w"; InboundSecret = Some "inbound-secret" })
    Assert.Equal(Some "inbound-secret", team.Store(1).Read(fun r -> r.Workspace id) |> Option.bind (fun w -> w.InboundSecret))

/// Changes a workspace's name in the database behind every instance's back (no word to the others).
let private renameBehindTheirBacks (team: Team) (id: WorkspaceId) (name: string) =
    use conn = new NpgsqlConnection(PostgresStore.connectionString team.Url)
    conn.Open()
    use cmd = new NpgsqlCommand("UPDATE workspaces SET name = @n WHERE id = @id", conn)
    cmd.Parameters.AddWithValue("n", name) |> ignore
    cmd.Parameters.AddWithValue("id", id.Text) |> ignore
    Assert.Equal(1, cmd.ExecuteNonQuery())

[<Fact>]
let ``rule: a read or write past the store's capacity is turned away at once, not queued`` () =
    // a pool of 4 connections: 2 for reads and writes (the sweeper's and a spare kept)
    let url = Pg.urlFor (tempDir ())
    let url = url + (if url.Contains "?" then "&" else "?") + "Maximum%20Pool%20Size=4"
    use store = PostgresStore.openAt url (tempDir ()) ignore ignore ignore
    use inside = new CountdownEvent(2)
    use release = new ManualResetEventSlim()

    let hold () =
        Task.Run(fun () -> store.Read(fun r -> inside.Signal() |> ignore; release.Wait(); r.Workspaces().Length))

    let held = [ hold (); hold () ]
    Assert.True(inside.Wait(TimeSpan.FromSeconds 30.0), "two reads under way")
    let refused (call: unit -> unit) = try call (); false with Busy -> true
    Assert.True(refused (fun () -> store.Read(fun r -> r.Workspaces() |> ignore)), "a third read is turned away")
    Assert.True(refused (fun () -> store.Write(fun w -> w.SaveWorkspace(Workspace.fresh (wid ()) t0))), "and a write")
    release.Set()
    Assert.Equal<int list>([ 0; 0 ], held |> List.map (fun t -> t.Result))
    store.Write(fun w -> w.SaveWorkspace(Workspace.fresh (wid ()) t0))
    Assert.Equal(1, store.Read(fun r -> r.Workspaces().Length))

/// What a write told ahead may have foreseen, rightly or not.
type private Foreseen =
    | Nothing
    | Right
    | OtherMessage
    | OtherLog

[<Fact>]
let ``rule: a write told ahead answers what it answers untold, whatever it foresaw`` () =
    use team = new Team(1)
    let s = team.Store 0

    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 25,
        Prop.forAll
            (Arb.fromGen (Gen.zip3 (Gen.elements [ Nothing; Right; OtherMessage; OtherLog ]) (Gen.elements [ true; false ]) (Gen.elements [ true; false ])))
            (fun (foreseen, repeat, elsewhereFirst) ->
                // each way on a log of its own holding one row ("m0"), with a token of its own
                let setUp () =
                    let ws, other = wid (), wid ()
                    let token = Tokens.format (Guid.NewGuid().ToByteArray() |> Array.replicate 2 |> Array.concat)
                    let stored = Tokens.create (TokenId(Guid.NewGuid())) ws t0 token

                    s.Write(fun w ->
                        w.SaveToken stored
                        w.Append { Activity.row (aid ()) t0 ws "a2a_receive" with MessageId = Some "m0" } |> ignore)

                    ws, other, token

                let mid = if repeat then "m0" else "m1"

                let write ws other token (w: IWriter) =
                    if elsewhereFirst then w.Append(Activity.row (aid ()) t0 other "a2a_receive") |> ignore
                    let found = (w.TokenByHash(Tokens.hash token)).IsSome
                    let a = w.Append { Activity.row (aid ()) (t0.AddSeconds -1.0) ws "a2a_receive" with MessageId = Some mid }
                    found, (match a with Added _ -> "added" | Repeated _ -> "repeated")

                let log ws = s.Read(fun r -> r.Rows(RowQuery.logOf ws)) |> List.map (fun r -> r.MessageId, r.CreatedAt >= t0)

                let ws1, other1, token1 = setUp ()
                let untold = s.Write(write ws1 other1 token1)
                let ws2, other2, token = setUp ()

                let foresight =
                    match foreseen with
                    | Nothing -> { Tokens = []; FirstAppend = None }
                    | Right -> { Tokens = [ Tokens.hash token ]; FirstAppend = Some(ws2, Some mid) }
                    | OtherMessage -> { Tokens = [ Tokens.hash "another" ]; FirstAppend = Some(ws2, Some "m9") }
                    | OtherLog -> { Tokens = [ Tokens.hash token ]; FirstAppend = Some(other2, None) }

                let told = s.WriteAhead(foresight, write ws2 other2 token).Result
                told = untold && log ws2 = log ws1 && log other2 = log other1)
    )

[<Fact>]
let ``rule: a write told ahead past the store's capacity waits for its turn without a thread, then runs`` () =
    // capacity 2 as above: two reads held; a write told ahead waits (a plain write is still turned away) until one ends
    let url = Pg.urlFor (tempDir ())
    let url = url + (if url.Contains "?" then "&" else "?") + "Maximum%20Pool%20Size=4"
    use store = PostgresStore.openAt url (tempDir ()) ignore ignore ignore
    use inside = new CountdownEvent(2)
    use release = new ManualResetEventSlim()
    let hold () = Task.Run(fun () -> store.Read(fun r -> inside.Signal() |> ignore; release.Wait(); r.Workspaces().Length))
    let held = [ hold (); hold () ]
    Assert.True(inside.Wait(TimeSpan.FromSeconds 30.0), "two reads under way")
    let ws = wid ()
    let waiting = store.WriteAhead({ Tokens = []; FirstAppend = Some(ws, None) }, fun w -> w.Append(Activity.row (aid ()) t0 ws "a2a_receive"))
    Thread.Sleep 300
    Assert.False(waiting.IsCompleted, "the write told ahead waits for its turn")
    Assert.Throws<Busy>(fun () -> store.Write(fun w -> w.SaveWorkspace(Workspace.fresh (wid ()) t0))) |> ignore
    release.Set()
    Assert.True(waiting.Wait(TimeSpan.FromSeconds 10.0), "and runs once a turn is free")
    Assert.Equal<int list>([ 0; 0 ], held |> List.map (fun t -> t.Result))
    Assert.Equal(1, store.Read(fun r -> r.Rows(RowQuery.logOf ws)).Length)

let private nameOn (team: Team) (i: int) (id: WorkspaceId) =
    team.Store(i).Read(fun r -> r.Workspaces() |> List.tryFind (fun w -> w.Id = id) |> Option.map (fun w -> w.Name))

[<Fact>]
let ``rule: a team cached on one instance is forgotten when another saves a workspace`` () =
    use team = new Team(2)
    let id = wid ()
    team.Store(0).Write(fun w -> w.SaveWorkspace { Workspace.fresh id t0 with Name = "before" })
    eventually "instance 1 has the workspace" (fun () -> nameOn team 1 id = Some "before")
    // instance 1 keeps its team now; instance 0 renames the workspace and says so
    Assert.Equal(Some "before", nameOn team 1 id)
    team.Store(0).Write(fun w -> w.SaveWorkspace { (w.Workspace id).Value with Name = "after" })
    eventually "instance 1 reads the new name" (fun () -> nameOn team 1 id = Some "after")

[<Fact>]
let ``rule: a workspace is never saved over a cached team that may lag`` () =
    use team = new Team(1)
    let id = wid ()
    team.Store(0).Write(fun w -> w.SaveWorkspace { Workspace.fresh id t0 with Name = "cached" })
    Assert.Equal(Some "cached", nameOn team 0 id) // the team cached
    renameBehindTheirBacks team id "fresh"
    // a write that reads the workspace (from the cache) and saves it runs again on a fresh read
    team.Store(0).Write(fun w -> w.SaveWorkspace { (w.Workspace id).Value with Role = Some "reviewer" })
    use conn = new NpgsqlConnection(PostgresStore.connectionString team.Url)
    conn.Open()
    use cmd = new NpgsqlCommand("SELECT name || '/' || role FROM workspaces WHERE id = @id", conn)
    cmd.Parameters.AddWithValue("id", id.Text) |> ignore
    Assert.Equal("fresh/reviewer", cmd.ExecuteScalar() :?> string)
    Assert.Equal(Some "fresh", nameOn team 0 id) // and the cache forgotten after it

[<Fact>]
let ``rule: no cached team while the listener is away; it is read afresh once it listens again`` () =
    use team = new Team(1)
    let id = wid ()
    team.Store(0).Write(fun w -> w.SaveWorkspace { Workspace.fresh id t0 with Name = "one" })
    Assert.Equal(Some "one", nameOn team 0 id)
    cutListeners team 1
    eventually "the listener is back" (fun () -> team.Reconnects 0 = 1)
    // a word said while it was away is lost: the team cached before is forgotten when it listens again, so the
    // first read after that is fresh (a change made behind its back stands in for one it could not hear)
    renameBehindTheirBacks team id "two"
    Assert.Equal(Some "two", nameOn team 0 id)

// ---------------------------------------------------------------- any interleaving of two instances

type private Op =
    | Send of log: int * clockSkewMs: int
    | Ack of log: int * acked: int
    | Delete of log: int

let private anOp =
    Gen.oneof
        [ Gen.map2 (fun l s -> Send(l, s)) (Gen.choose (0, 2)) (Gen.choose (-500, 500))
          Gen.map2 (fun l a -> Ack(l, a)) (Gen.choose (0, 2)) (Gen.choose (0, 400))
          Gen.map Delete (Gen.choose (0, 2)) ]

let private schedule = Gen.two (Gen.listOfLength 25 anOp)

[<Fact>]
let ``rule: any interleaving of sends, acks and deletes from two instances keeps seq order per workspace and acks monotonic`` () =
    use team = new Team(2)

    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 12,
        Prop.forAll (Arb.fromGen schedule) (fun (opsA, opsB) ->
            let logs = [| wid (); wid (); wid () |]
            let deleted = ConcurrentDictionary<ActivityId, unit>()
            let added = ConcurrentDictionary<ActivityId, WorkspaceId>()
            let acked = ConcurrentDictionary<WorkspaceId, int64>()
            let floorsMonotonic = ref true
            let mutable writing = 2

            let run (i: int) (ops: Op list) =
                Task.Run(fun () ->
                    let s = team.Store i
                    let floors = Collections.Generic.Dictionary<WorkspaceId, int64>()

                    for op in ops do
                        match op with
                        | Send(l, skew) ->
                            let send (w: IWriter) = w.Append(Activity.row (aid ()) (t0.AddMilliseconds(float skew)) logs[l] "a2a_receive")
                            // instance 1 sends told ahead (the accept path's way), instance 0 untold
                            let appended =
                                if i = 1 then s.WriteAhead({ Tokens = []; FirstAppend = Some(logs[l], None) }, send).Result
                                else s.Write send

                            let r = Appended.row appended
                            added[r.Id] <- logs[l]
                        | Ack(l, n) ->
                            let floor = s.Write(fun w -> w.Ack(logs[l], int64 n, t0))
                            acked.AddOrUpdate(logs[l], int64 n, fun _ old -> max old (int64 n)) |> ignore

                            match floors.TryGetValue logs[l] with
                            | true, before when floor < before || floor < int64 n -> floorsMonotonic.Value <- false
                            | _ -> ()

                            floors[logs[l]] <- floor
                        | Delete l ->
                            s.Write(fun w ->
                                w.Rows(RowQuery.logOf logs[l])
                                |> List.tryLast
                                |> Option.iter (fun r ->
                                    deleted[r.Id] <- ()
                                    w.DeleteRow r.Id))

                    Interlocked.Decrement(&writing) |> ignore)

            // a reader pages each log by seq while they write (as an agent pages with since_id)
            let seen = ConcurrentDictionary<ActivityId, unit>()

            let reader =
                Task.Run(fun () ->
                    let last = Array.create logs.Length 0L
                    let pass () =
                        for l in 0 .. logs.Length - 1 do
                            for r in team.Store(0).Read(fun r -> r.Rows { RowQuery.logOf logs[l] with AfterSeq = Some last[l] }) do
                                seen[r.Id] <- ()
                                last[l] <- max last[l] r.Seq

                    while Volatile.Read(&writing) > 0 do
                        pass ()

                    pass ())

            Task.WaitAll [| run 0 opsA; run 1 opsB; reader |]

            let ordered =
                logs
                |> Array.forall (fun ws ->
                    let rows = team.Store(1).Read(fun r -> r.Rows(RowQuery.logOf ws))
                    let bySeq = rows |> List.sortBy (fun r -> r.Seq)
                    List.map (fun (r: ActivityRow) -> r.Id) rows = List.map (fun (r: ActivityRow) -> r.Id) bySeq
                    && bySeq |> List.pairwise |> List.forall (fun (a, b) -> a.CreatedAt <= b.CreatedAt))

            let nothingMissed = added.Keys |> Seq.forall (fun id -> seen.ContainsKey id || deleted.ContainsKey id)

            let floors =
                logs
                |> Array.forall (fun ws ->
                    let stored = team.Store(0).Read(fun r -> r.AckFloor ws)

                    match acked.TryGetValue ws with
                    | true, greatest -> stored = Some greatest
                    | _ -> stored.IsNone)

            ordered && nothingMissed && floors && floorsMonotonic.Value)
    )
