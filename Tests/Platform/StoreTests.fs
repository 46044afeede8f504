/// The store interface on every engine (EngineCases): transactions, the activity log's queries against the pure
/// rules that specify them (Activity.select, Inbox.prunableAt, Memories.selects), seq and ack order under
/// concurrent writers, message-id idempotency, tickets, files and the schema's versions.
module Molecule.Tests.Platform.StoreTests

open System
open System.Collections.Concurrent
open System.IO
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Tests.Platform.Engines
module Json = Molecule.Protocol.Json

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 2, 1, 8, 0, 0, TimeSpan.Zero)
let private wid () = WorkspaceId(Guid.NewGuid())
let private aid () = ActivityId(Guid.NewGuid())

/// A store of its own on an engine, with the events it published.
type private Opened(engine: string) =
    let dir = tempDir ()
    let published = ConcurrentQueue<PlatformEvent>()
    let mutable store = (named engine).OpenStore dir published.Enqueue
    member _.Store = store
    member _.Published = List.ofSeq published
    member _.Dir = dir

    /// Closes and opens the store again on the same data.
    member _.Reopen() =
        store.Dispose()
        store <- (named engine).OpenStore dir published.Enqueue

    interface IDisposable with
        member _.Dispose() =
            store.Dispose()

            try
                Directory.Delete(dir, true)
            with :? IOException ->
                ()

let private workspace (id: WorkspaceId) : Workspace =
    { Workspace.fresh id t0 with Name = "ws " + id.Text.Substring(0, 4); Status = Status.Online; InboundSecret = Some "inbound" }

let private event (kind: string) : PlatformEvent =
    { Type = kind; WorkspaceId = None; Payload = Json.obj []; Data = Json.obj []; At = t0; Audience = Everyone }

let private append (s: IStore) (row: ActivityRow) : ActivityRow =
    s.Write(fun w -> w.Append row |> Appended.row)

// ---------------------------------------------------------------- transactions

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: a rolled-back store transaction leaves nothing behind and publishes nothing`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let id = wid ()
    let w = workspace id

    s.Write(fun tx ->
        tx.SaveWorkspace w
        tx.Append(Activity.row (aid ()) t0 id "agent_log") |> ignore
        tx.Announce(event "BASELINE"))

    let snapshot () =
        o.Store.Read(fun r -> r.Workspace id, r.TokensOf id, r.Rows(RowQuery.logOf id), r.Memories(Memories.Own id), r.AckFloor id, r.Abilities id)

    let before = snapshot ()

    let failed =
        try
            s.Write(fun tx ->
                tx.SaveWorkspace { w with Status = Status.Removed; Name = "changed" }
                tx.SaveToken(Tokens.create (TokenId(Guid.NewGuid())) id t0 "ghost-token")
                let r = tx.Append(Activity.row (aid ()) t0 id "agent_log") |> Appended.row
                tx.SetRowStatus(r.Id, "error")
                tx.AddMemory { Id = MemoryId(Guid.NewGuid()); WorkspaceId = id; Content = "m"; Scope = MemoryScope.Local; Namespace = "general"; CreatedAt = t0 }
                tx.Ack(id, 7L, t0) |> ignore
                tx.SetAbilities(id, { BroadcastEnabled = true; TalkToUserEnabled = false }, t0)
                tx.Announce(event "NEVER")
                tx.AfterCommit(fun () -> failwith "an after-commit action of a rolled-back write ran")
                raise (IOException "disk full"))

            false
        with :? IOException ->
            true

    Assert.True failed
    Assert.Equal(before, snapshot ())
    Assert.Equal<string list>([ "BASELINE" ], o.Published |> List.map (fun e -> e.Type))
    Assert.Equal(None, s.Read(fun r -> Tokens.named r.TokenByHash "ghost-token"))
    o.Reopen()
    Assert.Equal(before, snapshot ())

[<Theory; ClassData(typeof<EngineCases>)>]
let ``a write's events are published after its commit, in order, and a read or write inside a write is refused`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let seenInside = s.Write(fun w -> w.Announce(event "A"); w.Announce(event "B"); o.Published.Length)
    Assert.Equal(0, seenInside)
    Assert.Equal<string list>([ "A"; "B" ], o.Published |> List.map (fun e -> e.Type))
    let nested = Assert.Throws<InvalidOperationException>(fun () -> s.Write(fun _ -> s.Read(fun r -> r.Workspaces())) |> ignore)
    Assert.Contains("inside a Write", nested.Message)
    // the store still works afterwards
    Assert.Empty(s.Read(fun r -> r.Workspaces()))

[<Theory; ClassData(typeof<EngineCases>)>]
let ``a write sees its own workspace changes; later reads see what was committed, never what was rolled back`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let w = workspace (wid ())
    s.Write(fun tx -> tx.SaveWorkspace w)
    Assert.Equal(Some w, s.Read(fun r -> r.Workspace w.Id)) // read (and, on SQLite, cached)

    let inside =
        s.Write(fun tx ->
            let before = tx.Workspaces() |> List.map (fun x -> x.Name)
            tx.SaveWorkspace { w with Name = "renamed" }
            before, tx.Workspace w.Id |> Option.map (fun x -> x.Name), tx.Workspaces() |> List.map (fun x -> x.Name))

    Assert.Equal(([ w.Name ], Some "renamed", [ "renamed" ]), inside)
    Assert.Equal(Some "renamed", s.Read(fun r -> r.Workspace w.Id) |> Option.map (fun x -> x.Name))

    try
        s.Write(fun tx ->
            tx.SaveWorkspace { w with Name = "never" }
            raise (IOException "rolled back"))
    with :? IOException ->
        ()

    Assert.Equal<string list>([ "renamed" ], s.Read(fun r -> r.Workspaces()) |> List.map (fun x -> x.Name))

// ---------------------------------------------------------------- the activity log

type private LogOp =
    { Mine: bool
      /// µs after the previous row (negative: the clock stepped back)
      Step: int
      Type: string
      Source: int
      MessageId: int option }

let private logGen =
    gen {
        let op =
            gen {
                let! mine = Gen.frequency [ 3, Gen.constant true; 1, Gen.constant false ]
                let! step = Gen.frequency [ 4, Gen.constant 0; 3, Gen.choose (1, 3000000); 1, Gen.choose (-5, -1) ]
                let! kind = Gen.elements [ "a2a_receive"; "a2a_receive"; "agent_log"; "delegation" ]
                let! source = Gen.choose (0, 2)
                let! mid = Gen.frequency [ 4, Gen.constant None; 1, Gen.map Some (Gen.choose (0, 3)) ]
                return { Mine = mine; Step = step; Type = kind; Source = source; MessageId = mid }
            }

        let! ops = Gen.listOf op |> Gen.resize 25

        let query =
            gen {
                let! kind = Gen.elements [ None; Some "a2a_receive"; Some "agent_log" ]
                let! source = Gen.elements [ Ok None; Ok(Some Activity.Canvas); Ok(Some Activity.Agent); Error(Wire.errorReply 400 Activity.badSource) ]
                let! peer = Gen.elements [ false; true ]
                let! cursor = Gen.choose (-2, 30) // index into my rows; -1: another workspace's row; -2: unknown
                let! before = Gen.frequency [ 2, Gen.constant None; 1, Gen.map Some (Gen.choose (0, 60)) ]
                let! since = Gen.frequency [ 2, Gen.constant None; 1, Gen.map Some (Gen.choose (1, 80)) ]
                let! limit = Gen.choose (1, 8)
                return kind, source, peer, cursor, before, since, limit
            }

        let! queries = Gen.listOfLength 6 query
        return ops, queries
    }

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: the store's activity page is Activity.select's over the same log, under any interleaving and clock steps`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store

    Check.One(
        cfg 80,
        Prop.forAll (Arb.fromGen logGen) (fun (ops, queries) ->
            let me, other, peer = wid (), wid (), wid ()
            let model = ActivityIndex()
            let mutable clock = t0

            for op in ops do
                clock <- clock.AddTicks(int64 op.Step * 10L)
                let ws = if op.Mine then me else other

                let row =
                    { Activity.row (aid ()) clock ws op.Type with
                        SourceId = (match op.Source with 0 -> None | 1 -> Some peer | _ -> Some other)
                        TargetId = Some ws
                        RequestBody = Some """{"n":1}"""
                        MessageId = op.MessageId |> Option.map (fun m -> $"m{m}") }

                match s.Write(fun w -> w.Append row) with
                | Added r -> model.Add r
                | Repeated r -> Assert.Equal(Some r.Id, model.FindByMessage(ws, row.MessageId.Value) |> Option.map (fun x -> x.Id))

            let mine = model.Rows me |> List.ofSeq
            let theirs = model.Rows other |> List.ofSeq
            let now = clock.AddSeconds 30.0

            queries
            |> List.forall (fun (kind, source, byPeer, cursor, before, since, limit) ->
                let sinceId =
                    match cursor with
                    | -2 -> Some(Guid.NewGuid().ToString())
                    | -1 -> theirs |> List.tryHead |> Option.map (fun r -> r.Id.Text)
                    | i when i < mine.Length -> Some mine[i].Id.Text
                    | _ -> None

                let q: Activity.Query =
                    { Type = kind
                      Source = source
                      Limit = limit
                      SinceSecs = since
                      SinceId = sinceId
                      PeerId = (if byPeer then Some peer else None)
                      BeforeTs = before |> Option.map (fun secs -> t0.AddSeconds(float secs))
                      PeerInfo = false }

                let expected = Activity.select now me (model.Rows me) model.Find q
                let got = s.Read(fun r -> r.Page(me, q, now))

                match expected, got with
                | Ok e, Ok g -> (e |> List.map (fun r -> r.Id)) = (g |> List.map (fun r -> r.Id)) && g |> List.forall (fun r -> r.RequestBody.IsSome)
                | Error e, Error g -> e = g
                | _ -> false))
    )

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: concurrent writers keep each workspace's seq order its created_at order and its ack floor the greatest ack`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let logs = [ wid (); wid (); wid () ]
    let acks = ConcurrentDictionary<WorkspaceId, int64>()

    let writer (n: int) =
        Task.Run(fun () ->
            let rnd = Random(n)

            for i in 1..60 do
                let ws = logs[rnd.Next logs.Length]

                match rnd.Next 4 with
                | 0 ->
                    let acked = int64 (rnd.Next 1000)
                    let floor = s.Write(fun w -> w.Ack(ws, acked, t0))
                    acks.AddOrUpdate(ws, acked, fun _ old -> max old acked) |> ignore
                    Assert.True(floor >= acked)
                | 1 when i > 5 ->
                    // a delete of one of the log's rows (as a failed delegation's key is freed)
                    s.Write(fun w -> w.Rows(RowQuery.logOf ws) |> List.tryHead |> Option.iter (fun r -> w.DeleteRow r.Id))
                | _ ->
                    // the clock of each writer wanders, as several processes' would
                    let at = t0.AddMilliseconds(float (rnd.Next 2000 - 1000))
                    append s (Activity.row (aid ()) at ws "a2a_receive") |> ignore)

    Task.WaitAll [| for n in 1..4 -> writer n |]

    for ws in logs do
        let rows = s.Read(fun r -> r.Rows(RowQuery.logOf ws))
        let bySeq = rows |> List.sortBy (fun r -> r.Seq)
        Assert.Equal<ActivityId list>(rows |> List.map (fun r -> r.Id), bySeq |> List.map (fun r -> r.Id))
        Assert.True(bySeq |> List.pairwise |> List.forall (fun (a, b) -> a.CreatedAt <= b.CreatedAt))

        match acks.TryGetValue ws with
        | true, greatest -> Assert.Equal(Some greatest, s.Read(fun r -> r.AckFloor ws))
        | _ -> Assert.Equal(None, s.Read(fun r -> r.AckFloor ws))

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: the same message id again is the row already logged, with no new seq`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let ws = wid ()
    let first = { Activity.row (aid ()) t0 ws "a2a_receive" with MessageId = Some "m-1"; RequestBody = Some """{"a":1}""" }
    let stored = s.Write(fun w -> w.Append first)
    let again = s.Write(fun w -> w.Append { first with Id = aid (); RequestBody = Some """{"a":2}""" })

    match stored, again with
    | Added a, Repeated b ->
        Assert.Equal(a, b)
        Assert.Equal(Some """{"a":1}""", b.RequestBody)
    | _ -> failwith $"expected Added then Repeated, got {stored} and {again}"

    // the same message id in another workspace is another message
    match s.Write(fun w -> w.Append { first with Id = aid (); WorkspaceId = wid () }) with
    | Added _ -> ()
    | Repeated _ -> failwith "a message id is unique per workspace, not across workspaces"

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: retention deletes exactly what Inbox.prunableAt says`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let ageGen = Gen.listOf (Gen.zip (Gen.choose (0, 2)) (Gen.choose (0, 40 * 24))) |> Gen.resize 30
    let floorGen = Gen.listOfLength 3 (Gen.frequency [ 1, Gen.constant None; 3, Gen.map Some (Gen.choose (0, 40)) ])

    Check.One(
        cfg 60,
        Prop.forAll (Arb.fromGen (Gen.zip ageGen floorGen)) (fun (rows, floors) ->
            let logs = [ wid (); wid (); wid () ]
            let now = t0.AddDays 60.0
            let cut: Inbox.Cutoffs = Inbox.cutoffs now { SoftDays = 7; HardDays = 30 }
            // rows are appended oldest first, as time goes
            let stored =
                rows
                |> List.sortByDescending snd
                |> List.map (fun (w, hours) -> append s (Activity.row (aid ()) (now.AddHours(-(float hours))) logs[w] "a2a_receive"))

            // floors relative to each log's first seq, so they cover some of its rows
            let firstSeq = stored |> List.map (fun r -> r.Seq) |> List.fold min Int64.MaxValue

            let floorOf =
                List.zip logs floors
                |> List.choose (fun (ws, f) -> f |> Option.map (fun n -> ws, firstSeq + int64 n))
                |> Map.ofList

            for KeyValue(ws, f) in floorOf do
                s.Write(fun w -> w.Ack(ws, f, now)) |> ignore

            let expected = stored |> List.filter (Inbox.prunableAt cut floorOf.TryFind) |> List.length
            let deleted = s.Write(fun w -> w.Prune cut)
            let left = logs |> List.sumBy (fun ws -> s.Read(fun r -> r.Rows(RowQuery.logOf ws)).Length)
            deleted = expected && left = stored.Length - expected)
    )

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: the memories a recall reads are those Memories.selects keeps`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store

    Check.One(
        cfg 60,
        Prop.forAll (Arb.fromGen (Gen.listOf (Gen.zip (Gen.choose (0, 3)) (Gen.elements MemoryScope.all)) |> Gen.resize 20)) (fun written ->
            let ws = [ wid (); wid (); wid (); wid () ]

            let memories =
                written
                |> List.mapi (fun i (w, scope) ->
                    { Id = MemoryId(Guid.NewGuid()); WorkspaceId = ws[w]; Content = $"note {i}"; Scope = scope; Namespace = "general"; CreatedAt = t0.AddSeconds(float i) })

            s.Write(fun w -> memories |> List.iter w.AddMemory)

            [ Memories.Own ws[0]; Memories.OwnLocal ws[1]; Memories.TeamOf [ ws[2]; ws[3] ]; Memories.TeamOf [] ]
            |> List.forall (fun sel ->
                let expected = memories |> List.filter (Memories.selects sel) |> List.map (fun m -> m.Id) |> set
                let got = s.Read(fun r -> r.Memories sel) |> List.map (fun m -> m.Id) |> set
                expected = got)
            && (let globals = s.Read(fun r -> r.Memories Memories.AllGlobal) |> List.map (fun m -> m.Id) |> set
                memories |> List.filter (fun m -> m.Scope = MemoryScope.Global) |> List.forall (fun m -> globals.Contains m.Id)))
    )

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rows come back with or without their bodies, oldest first, the newest n when asked, above a seq`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let ws = wid ()
    let rows = [ for i in 1..5 -> append s { Activity.row (aid ()) (t0.AddSeconds(float i)) ws (if i % 2 = 0 then "agent_log" else "a2a_receive") with RequestBody = Some $"{{\"i\":{i}}}" } ]
    let slim = s.Read(fun r -> r.Rows(RowQuery.logOf ws))
    Assert.Equal<ActivityId list>(rows |> List.map (fun r -> r.Id), slim |> List.map (fun r -> r.Id))
    Assert.True(slim |> List.forall (fun r -> r.RequestBody.IsNone))
    Assert.Equal<ActivityRow list>(rows, s.Read(fun r -> r.Hydrate slim))
    let newest = s.Read(fun r -> r.Rows { RowQuery.logOf ws with Newest = Some 2; Bodies = true })
    Assert.Equal<ActivityRow list>(rows |> List.skip 3, newest)
    let inbound = s.Read(fun r -> r.Rows { RowQuery.logOf ws with Types = [ "a2a_receive" ]; AfterSeq = Some rows[0].Seq })
    Assert.Equal<ActivityId list>([ rows[2].Id; rows[4].Id ], inbound |> List.map (fun r -> r.Id))

// ---------------------------------------------------------------- tickets, files, abilities, secrets

[<Theory; ClassData(typeof<EngineCases>)>]
let ``rule: a stored stream ticket opens one stream, once, within its minute`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let texts = [ for i in 1..3 -> Tokens.format (Array.create 32 (byte i)) ]
    s.Write(fun w -> texts |> List.iter (fun t -> w.IssueTicket(Tickets.issue t0 t)))
    let redeem (t: string) (at: DateTimeOffset) = s.Write(fun w -> w.RedeemTicket(Tokens.hash t, at))
    Assert.True(redeem texts[0] (t0.AddSeconds 59.0))
    Assert.False(redeem texts[0] (t0.AddSeconds 59.0)) // used up
    Assert.False(redeem "never issued" t0)
    Assert.False(redeem texts[1] (t0.AddSeconds 60.0)) // expired
    Assert.False(redeem texts[2] (t0.AddSeconds 1.0)) // an expired ticket is dropped by any redemption after its minute
    // a live ticket outlives a restart (and, on a shared database, works on any platform process)
    s.Write(fun w -> w.IssueTicket(Tickets.issue t0 texts[0]))
    o.Reopen()
    Assert.True(o.Store.Write(fun w -> w.RedeemTicket(Tokens.hash texts[0], t0.AddSeconds 1.0)))

[<Theory; ClassData(typeof<EngineCases>)>]
let ``files and abilities are kept in the store`` (engine: string) =
    use o = new Opened(engine)
    let ws = wid ()
    let bytes = Array.init 300000 byte
    let f = { WorkspaceId = ws; Kind = FileKind.Pending; Key = Guid.NewGuid().ToString("N"); FileName = "a.bin"; MimeType = "application/x-test"; Size = 300000L; CreatedAt = t0 }
    o.Store.Write(fun w -> w.PutFile(f, bytes))
    o.Reopen()
    let s = o.Store

    match s.Read(fun r -> r.File(ws, FileKind.Pending, f.Key)) with
    | Some(meta, content) ->
        Assert.Equal(f, meta)
        Assert.Equal<byte[]>(bytes, content)
    | None -> failwith "the file was not kept"

    Assert.Equal(None, s.Read(fun r -> r.File(ws, FileKind.Chat, f.Key))) // another kind, another file
    Assert.True(s.Write(fun w -> w.DeleteFile(ws, FileKind.Pending, f.Key)))
    Assert.False(s.Write(fun w -> w.DeleteFile(ws, FileKind.Pending, f.Key)))
    Assert.Equal(Team.defaults, s.Read(fun r -> r.Abilities ws))
    s.Write(fun w -> w.SetAbilities(ws, { BroadcastEnabled = true; TalkToUserEnabled = false }, t0))
    Assert.Equal(({ BroadcastEnabled = true; TalkToUserEnabled = false }: Team.Abilities), s.Read(fun r -> r.Abilities ws))

[<Theory; ClassData(typeof<EngineCases>)>]
let ``requests, their threads and approvals come back as saved; an update changes only status, responder and times`` (engine: string) =
    use o = new Opened(engine)
    let a, b = wid (), wid ()

    let request (recipient: Requests.Party) (at: DateTimeOffset) : Requests.Request =
        { Id = RequestId(Guid.NewGuid())
          Kind = Requests.Kind.Approval
          Requester = Requests.Party.Agent a
          Recipient = recipient
          Title = "Deploy?"
          Detail = Some "to prod"
          Priority = "high"
          Source = Requests.Source.PermissionRelay
          ExpiresAt = Some(at.AddMinutes 10.0)
          Status = Requests.RequestStatus.Pending
          Responder = None
          CreatedAt = at
          UpdatedAt = at
          RespondedAt = None }

    let forUser = request (Requests.Party.User(Some "ops")) t0
    let forB = request (Requests.Party.Agent b) (t0.AddSeconds 1.0)
    o.Store.Write(fun w -> w.SaveRequest forUser; w.SaveRequest forB)
    let answered = { forB with Status = Requests.RequestStatus.Approved; Responder = Some(Requests.Party.Agent b); Title = "changed"; UpdatedAt = t0.AddMinutes 1.0; RespondedAt = Some(t0.AddMinutes 1.0) }

    let m: Requests.Message =
        { Id = RequestMessageId(Guid.NewGuid()); RequestId = forB.Id; Author = Requests.Party.User None; Body = "why?"; CreatedAt = t0.AddSeconds 5.0 }

    o.Store.Write(fun w -> w.SaveRequest answered; w.AddRequestMessage m)
    o.Reopen()

    o.Store.Read(fun r ->
        Assert.Equal(Some forUser, r.Request forUser.Id)
        Assert.Equal(Some { answered with Title = "Deploy?" }, r.Request forB.Id)
        Assert.Equal<Requests.Request list>([ forUser; { answered with Title = "Deploy?" } ], r.Requests(RaisedBy a))
        Assert.Equal<RequestId list>([ forB.Id ], r.Requests(AddressedTo b) |> List.map (fun q -> q.Id))
        Assert.Empty(r.Requests(RaisedBy b))
        Assert.Equal(2, r.Requests EveryRequest |> List.length)
        Assert.Equal<Requests.Message list>([ m ], r.RequestMessages forB.Id)
        Assert.Empty(r.RequestMessages forUser.Id))

    let approvals =
        [ for i in 0..Approvals.ListSize ->
              ({ Id = ApprovalId(Guid.NewGuid()); WorkspaceId = a; TaskId = Some "t"; Action = $"act {i}"; Reason = None
                 Context = Some """{"k":1}"""; Status = Approvals.ApprovalStatus.Pending; DecidedBy = None; DecidedAt = None
                 CreatedAt = t0.AddSeconds(float i) }
              : Approvals.Approval) ]

    o.Store.Write(fun w -> approvals |> List.iter w.SaveApproval)
    let decided = { approvals[0] with Status = Approvals.ApprovalStatus.Denied; DecidedBy = Some "ops"; DecidedAt = Some t0 }
    o.Store.Write(fun w -> w.SaveApproval decided)

    o.Store.Read(fun r ->
        Assert.Equal(Some decided, r.Approval decided.Id)
        let newest = r.Approvals a
        Assert.Equal(Approvals.ListSize, newest.Length)
        Assert.Equal(approvals |> List.last, List.head newest)
        Assert.Empty(r.Approvals b))

[<Theory; ClassData(typeof<EngineCases>)>]
let ``tokens are found by their hash only; revoking a workspace's tokens revokes them all`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let ws = wid ()
    let texts = [ for i in 1..3 -> Tokens.format (Array.create 32 (byte (40 + i))) ]
    s.Write(fun w -> texts |> List.iteri (fun i t -> w.SaveToken(Tokens.create (TokenId(Guid.NewGuid())) ws (t0.AddSeconds(float i)) t)))
    Assert.Equal(3, s.Read(fun r -> r.TokensOf ws).Length)
    Assert.Equal(Some ws, s.Read(fun r -> Tokens.named r.TokenByHash texts[1]) |> Option.map (fun t -> t.WorkspaceId))
    Assert.Equal(None, s.Read(fun r -> Tokens.named r.TokenByHash (texts[1].Substring 1 + "A")))
    s.Write(fun w -> w.RevokeTokens(ws, t0.AddMinutes 1.0))
    Assert.True(s.Read(fun r -> r.TokensOf ws) |> List.forall (fun t -> t.RevokedAt = Some(t0.AddMinutes 1.0)))

[<Theory; ClassData(typeof<EngineCases>)>]
let ``an inbound secret comes back as it was saved, and reading a workspace never shows the sealed form`` (engine: string) =
    use o = new Opened(engine)
    let s = o.Store
    let ws = { workspace (wid ()) with InboundSecret = Some "the-inbound-secret-0123456789" }
    s.Write(fun w -> w.SaveWorkspace ws)
    o.Reopen()
    Assert.Equal(Some ws, o.Store.Read(fun r -> r.Workspace ws.Id))

[<Fact>]
let ``rule: a sealed secret opens only with its key and for its owner, and never shows the secret`` () =
    let key () = Security.Cryptography.RandomNumberGenerator.GetBytes 32
    let box, other = SecretBox(key ()), SecretBox(key ())
    let secretGen = Gen.elements [ ""; "s"; "platform-inbound-secret"; String('x', 500); "ünïcødé ✓" ]

    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen secretGen) (fun secret ->
            let owner, stranger = (wid ()).Text, (wid ()).Text
            let sealedText = box.Seal(owner, secret)

            SecretBox.IsSealed sealedText
            && (secret.Length < 4 || not (sealedText.Contains secret))
            && box.Open(owner, sealedText) = Some secret
            && box.Open(stranger, sealedText) = None
            && other.Open(owner, sealedText) = None
            && box.Open(owner, sealedText.Substring(0, sealedText.Length - 2)) = None
            && box.Seal(owner, secret) = sealedText // the same secret again keeps its sealed form (no new cipher work)
            && box.Seal(stranger, secret) <> sealedText // another owner's is another nonce and another binding
            && box.Open(owner, "written-before-sealing") = Some "written-before-sealing")
    )

// ---------------------------------------------------------------- SQLite's files and versions

let private sqliteExec (dir: string) (sql: string) =
    use conn = new SqliteConnection($"Data Source={Path.Combine(dir, SqliteStore.DatabaseFile)};Pooling=False")
    conn.Open()
    use cmd = conn.CreateCommand()
    cmd.CommandText <- sql
    cmd.ExecuteNonQuery() |> ignore

[<Fact>]
let ``SQLite: a database newer than this binary is refused, naming both versions`` () =
    let dir = tempDir ()
    (SqliteStore.openAt dir ignore).Dispose()
    sqliteExec dir $"UPDATE schema_version SET version = {Schema.latest + 1}"
    let e = Assert.Throws<InvalidOperationException>(fun () -> (SqliteStore.openAt dir ignore).Dispose())
    Assert.Contains($"schema version {Schema.latest + 1}", e.Message)
    Assert.Contains($"up to version {Schema.latest}", e.Message)
    // refused, not changed: the lock is free and the version stays
    sqliteExec dir $"UPDATE schema_version SET version = {Schema.latest}"

    do
        use again = SqliteStore.openAt dir ignore
        Assert.Equal(Schema.latest, again.SchemaVersion)

    Directory.Delete(dir, true)

[<Fact>]
let ``SQLite: no workspace token and no inbound secret is stored in clear (database, WAL)`` () =
    let dir = tempDir ()
    let secret = "inbound-" + Guid.NewGuid().ToString("N")
    let token = Tokens.format (Array.init 32 (fun i -> byte (i * 7)))

    do
        use s = SqliteStore.openAt dir ignore
        let ws = { workspace (wid ()) with InboundSecret = Some secret }

        s.Write(fun w ->
            w.SaveWorkspace ws
            w.SaveToken(Tokens.create (TokenId(Guid.NewGuid())) ws.Id t0 token))

        Assert.Equal(Some secret, s.Read(fun r -> r.Workspace ws.Id) |> Option.bind (fun w -> w.InboundSecret))

        // while running (the rows may still be in the WAL) and after closing (checkpointed into the database)
        for f in Directory.EnumerateFiles dir |> Seq.filter (fun f -> not (f.EndsWith SqliteStore.LockFile)) do
            let text = Text.Encoding.Latin1.GetString(File.ReadAllBytes f)
            Assert.False(text.Contains secret, $"{Path.GetFileName f} holds the inbound secret")
            Assert.False(text.Contains token, $"{Path.GetFileName f} holds a token")

    for f in Directory.EnumerateFiles dir do
        let text = Text.Encoding.Latin1.GetString(File.ReadAllBytes f)
        Assert.False(text.Contains secret, $"{Path.GetFileName f} holds the inbound secret")

    Directory.Delete(dir, true)

[<Fact>]
let ``SQLite: files and abilities an older platform kept on disk move into the database, once`` () =
    let dir = tempDir ()
    let ws = wid ()

    do
        use s = SqliteStore.openAt dir ignore
        s.Write(fun w -> w.SaveWorkspace(workspace ws))

    let chat = Path.Combine(dir, "uploads", ws.Text)
    let pending = Path.Combine(dir, "pending-uploads", ws.Text)
    Directory.CreateDirectory chat |> ignore
    Directory.CreateDirectory pending |> ignore
    let chatKey = Guid.NewGuid().ToString("N") + "-notes.txt"
    let pendingId = Guid.NewGuid().ToString("N")
    File.WriteAllText(Path.Combine(chat, chatKey), "chat bytes")
    File.WriteAllText(Path.Combine(pending, pendingId), "pending bytes")
    File.WriteAllText(Path.Combine(pending, pendingId + ".json"), """{"name":"plan.md","mimeType":"text/markdown"}""")
    File.WriteAllText(Path.Combine(dir, "abilities.json"), "{\"" + ws.Text + "\":{\"broadcast_enabled\":true,\"talk_to_user_enabled\":false}}")

    do
        use s = SqliteStore.openAt dir ignore

        match s.Read(fun r -> r.File(ws, FileKind.Chat, chatKey)) with
        | Some(meta, bytes) ->
            Assert.Equal("notes.txt", meta.FileName)
            Assert.Equal("chat bytes", Text.Encoding.UTF8.GetString bytes)
        | None -> failwith "the chat upload was not moved"

        match s.Read(fun r -> r.File(ws, FileKind.Pending, pendingId)) with
        | Some(meta, bytes) ->
            Assert.Equal(("plan.md", "text/markdown"), (meta.FileName, meta.MimeType))
            Assert.Equal("pending bytes", Text.Encoding.UTF8.GetString bytes)
        | None -> failwith "the pending upload was not moved"

        Assert.Equal(({ BroadcastEnabled = true; TalkToUserEnabled = false }: Team.Abilities), s.Read(fun r -> r.Abilities ws))
        // the abilities the database has win over an old file found later
        s.Write(fun w -> w.SetAbilities(ws, Team.defaults, t0))

    File.WriteAllText(Path.Combine(dir, "abilities.json"), "{\"" + ws.Text + "\":{\"broadcast_enabled\":true,\"talk_to_user_enabled\":false}}")

    do
        use s = SqliteStore.openAt dir ignore
        Assert.Equal(Team.defaults, s.Read(fun r -> r.Abilities ws))

    Assert.False(Directory.Exists(Path.Combine(dir, "uploads")))
    Assert.False(Directory.Exists(Path.Combine(dir, "pending-uploads")))
    Assert.False(File.Exists(Path.Combine(dir, "abilities.json")))
    Directory.Delete(dir, true)

[<Fact>]
let ``every migration renders in every dialect, with no placeholder left`` () =
    for d in [ Schema.Dialect.sqlite; Schema.Dialect.postgres ] do
        for m in Schema.migrations do
            for step in m.Steps do
                match step with
                | Schema.Sql template ->
                    let sql = Schema.Dialect.render d template
                    Assert.DoesNotContain("{", sql)
                | Schema.SealInboundSecrets -> ()

    Assert.Equal<int list>([ 1..Schema.latest ], Schema.migrations |> List.map (fun m -> m.Version))
    Assert.True(Schema.pending (Schema.latest + 1) |> Result.isError)
    Assert.Equal<int list>([ 3..Schema.latest ], (match Schema.pending 2 with Ok ms -> ms |> List.map (fun m -> m.Version) | Error e -> failwith e))
