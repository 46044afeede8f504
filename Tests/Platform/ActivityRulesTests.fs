/// Properties of the delivery rules: activity paging (since_id, before_ts), the ack floor, retention, the
/// mail summary and the stream payload.
module Molecule.Tests.Platform.ActivityRulesTests

open System
open System.Collections.Generic
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
module Json = Molecule.Protocol.Json

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero)
let private wid () = WorkspaceId(Guid.NewGuid())
let private aid () = ActivityId(Guid.NewGuid())

/// The created_at of a workspace's newest row in the model (what the stores admit a new row after).
let private lastAt (index: ActivityIndex) (ws: WorkspaceId) = index.Last ws |> Option.map (fun r -> r.CreatedAt)

let private query (pairs: (string * string) list) =
    Activity.parseQuery (fun k -> pairs |> List.tryFind (fun (a, _) -> a = k) |> Option.map snd)

let private q (pairs: (string * string) list) =
    match query pairs with
    | Ok v -> v
    | Error e -> failwith e.Body

let private ids (rows: ActivityRow seq) = rows |> Seq.map (fun r -> r.Id) |> List.ofSeq

// ---------------------------------------------------------------- since_id under interleaving

type private Op =
    /// A row for `me` (or another workspace), its clock `step` µs after the previous one (negative: the clock
    /// stepped back), of type a2a_receive or agent_log.
    | Insert of mine: bool * step: int * inbound: bool
    | Poll

let private opsGen =
    gen {
        let insert =
            gen {
                let! mine = Gen.frequency [ 3, Gen.constant true; 1, Gen.constant false ]
                let! step = Gen.frequency [ 4, Gen.constant 0; 3, Gen.choose (1, 3); 1, Gen.choose (-5, -1) ]
                let! inbound = Gen.frequency [ 3, Gen.constant true; 1, Gen.constant false ]
                return Insert(mine, step, inbound)
            }

        let! ops = Gen.listOf (Gen.frequency [ 3, insert; 1, Gen.constant Poll ])
        let! limit = Gen.choose (1, 6)
        return ops, limit
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: since_id paging never skips or repeats a row under any interleaving of inserts and equal timestamps`` () =
    Check.One(
        cfg 400,
        Prop.forAll opsGen (fun (ops, limit) ->
            let me = wid ()
            let other = wid ()
            let index = ActivityIndex()
            let mutable clock = t0
            let mutable seq = 0L

            let insert (ws: WorkspaceId) (kind: string) =
                seq <- seq + 2L // the sequence is shared and gappy
                let r = Activity.admit (lastAt index ws) { Activity.row (aid ()) clock ws kind with Seq = seq }
                index.Add r
                r

            let cursor0 = insert me "a2a_receive"
            let mutable cursor = cursor0
            let expected = ResizeArray<ActivityId>()
            let seen = ResizeArray<ActivityId>()

            let poll () =
                let query = { q [ "type", "a2a_receive"; "limit", string limit ] with SinceId = Some(string cursor.Id) }

                match Activity.select clock me (index.Rows me) index.Find query with
                | Ok page ->
                    seen.AddRange(ids page)
                    if not page.IsEmpty then cursor <- List.last page
                    page.Length
                | Error _ -> -1

            for op in ops do
                match op with
                | Insert(mine, step, inbound) ->
                    clock <- clock.AddTicks(int64 step * 10L)
                    let r = insert (if mine then me else other) (if inbound then "a2a_receive" else "agent_log")
                    if mine && inbound then expected.Add r.Id
                | Poll -> poll () |> ignore

            let mutable guard = 1000

            while guard > 0 && poll () > 0 do
                guard <- guard - 1

            List.ofSeq seen = List.ofSeq expected)
    )

// ---------------------------------------------------------------- before_ts walk

let private backlogGen =
    gen {
        let! limit = Gen.choose (2, 12)
        // groups of rows sharing one created_at: fewer than `limit` per instant (the walk's precondition)
        let! groups = Gen.listOf (Gen.zip (Gen.choose (1, limit - 1)) (Gen.choose (1, 40)))
        return limit, groups
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: before_ts paging (oldest created_at + 1 µs, dedupe by id) walks a backlog of any size exactly once`` () =
    Check.One(
        cfg 300,
        Prop.forAll backlogGen (fun (limit, groups) ->
            let me = wid ()
            let index = ActivityIndex()
            let mutable clock = t0
            let mutable seq = 0L

            for (size, gapMicros) in groups do
                clock <- clock.AddTicks(int64 gapMicros * 10L)

                for _ in 1..size do
                    seq <- seq + 1L
                    index.Add(Activity.admit (lastAt index me) { Activity.row (aid ()) clock me "a2a_receive" with Seq = seq })

            let now = clock.AddDays 1.0
            let got = HashSet<ActivityId>()
            let mutable before: DateTimeOffset option = None
            let mutable go = true
            let mutable pages = 0

            while go && pages < 10000 do
                let query = { q [ "limit", string limit ] with BeforeTs = before }

                match Activity.select now me (index.Rows me) index.Find query with
                | Ok page ->
                    pages <- pages + 1

                    for r in page do
                        got.Add r.Id |> ignore

                    if page.Length < limit then
                        go <- false
                    else
                        // the client's next bound: the oldest created_at it saw, plus 1 µs, as read from the JSON
                        let oldest = page |> List.map (fun r -> r.CreatedAt) |> List.min
                        let text = Wire.time oldest
                        before <- Some((Activity.parseTimestamp text).Value.AddTicks 10L)
                | Error _ -> go <- false

            let all = ids (index.Rows me)
            not go && got.Count = all.Length && all |> List.forall got.Contains)
    )

// ---------------------------------------------------------------- query parsing

[<Fact>]
let ``activity query parsing follows the spec's texts, limits and order`` () =
    let errorOf pairs =
        match query pairs with
        | Error e -> e.Body
        | Ok _ -> "ok"

    Assert.Equal("""{"error":"peer_id must be a UUID"}""", errorOf [ "peer_id", "nope" ])
    Assert.Equal("""{"error":"before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"}""", errorOf [ "before_ts", "yesterday" ])
    Assert.Equal("""{"error":"before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"}""", errorOf [ "before_ts", "2026-05-01 00:00:00Z" ])
    Assert.Equal("""{"error":"since_secs must be a positive integer"}""", errorOf [ "since_secs", "0" ])
    Assert.Equal("""{"error":"since_secs must be a positive integer"}""", errorOf [ "since_secs", "-4" ])
    // peer_id is checked first, then before_ts, then since_secs
    Assert.Contains("peer_id", errorOf [ "peer_id", "x"; "before_ts", "x"; "since_secs", "x" ])
    Assert.Contains("before_ts", errorOf [ "before_ts", "x"; "since_secs", "x" ])
    Assert.Equal(100, (q []).Limit)
    Assert.Equal(500, (q [ "limit", "9999" ]).Limit)
    Assert.Equal(500, (q [ "limit", "99999999999" ]).Limit)
    Assert.Equal(100, (q [ "limit", "-3" ]).Limit)
    Assert.Equal(100, (q [ "limit", "abc" ]).Limit)
    Assert.Equal(7, (q [ "limit", "7" ]).Limit)
    Assert.Equal(Some Activity.MaxSinceSecs, (q [ "since_secs", "99999999" ]).SinceSecs)
    Assert.True((q [ "include", " foo , peer_info" ]).PeerInfo)
    Assert.False((q [ "include", "peer_infos" ]).PeerInfo)
    let exact = (q [ "before_ts", "2026-05-01T10:00:00.123456789+02:00" ]).BeforeTs.Value
    Assert.Equal(DateTimeOffset(2026, 5, 1, 8, 0, 0, TimeSpan.Zero).AddTicks(1234567L), exact.ToUniversalTime())
    // a bad source is reported after the cursor: an unknown cursor's 410 wins
    let me = wid ()
    let bad = q [ "source", "robot"; "since_id", string (Guid.NewGuid()) ]

    match Activity.select t0 me (ResizeArray()) (fun _ -> None) bad with
    | Error e -> Assert.Equal(410, e.Code)
    | Ok _ -> failwith "expected 410"

    match Activity.select t0 me (ResizeArray()) (fun _ -> None) { bad with SinceId = None } with
    | Error e -> Assert.Equal("""{"error":"source must be 'canvas' or 'agent'"}""", e.Body)
    | Ok _ -> failwith "expected 400"

    // another workspace's row is not a cursor here
    let foreign = { Activity.row (aid ()) t0 (wid ()) "a2a_receive" with Seq = 1L }

    match Activity.select t0 me (ResizeArray()) (fun _ -> Some foreign) { bad with SinceId = Some(string foreign.Id); Source = Ok None } with
    | Error e ->
        Assert.Equal(410, e.Code)
        Assert.Contains("since_id cursor not found", e.Body)
    | Ok _ -> failwith "expected 410"

[<Fact>]
let ``rule: without since_id rows come newest first, with it oldest first; peer_id and before_ts filter`` () =
    let gen =
        gen {
            let! n = Gen.choose (0, 30)
            let! peers = Gen.listOfLength n (Gen.choose (0, 2))
            let! steps = Gen.listOfLength n (Gen.choose (0, 2))
            let! cut = Gen.choose (0, 40)
            return peers, steps, cut
        }
        |> Arb.fromGen

    let pool = [| wid (); wid (); wid () |]

    Check.One(
        cfg 300,
        Prop.forAll gen (fun (peers, steps, cut) ->
            let me = wid ()
            let index = ActivityIndex()
            let mutable clock = t0

            List.zip peers steps
            |> List.iteri (fun i (p, step) ->
                clock <- clock.AddSeconds(float step)
                let r = { Activity.row (aid ()) clock me "a2a_receive" with Seq = int64 (i + 1); SourceId = (if p = 0 then None else Some pool[p]); TargetId = Some me }
                index.Add(Activity.admit (lastAt index me) r))

            let rows = List.ofSeq (index.Rows me)
            let bound = t0.AddSeconds(float cut)
            let run query = match Activity.select clock me (index.Rows me) index.Find query with Ok p -> p | Error _ -> []
            let newest = run (q [ "limit", "500" ])
            let byPeer = run (q [ "limit", "500"; "peer_id", string pool[1] ])
            let before = run { q [ "limit", "500" ] with BeforeTs = Some bound }

            newest = List.rev rows
            && byPeer = (rows |> List.filter (fun r -> r.SourceId = Some pool[1]) |> List.rev)
            && before = (rows |> List.filter (fun r -> r.CreatedAt < bound) |> List.rev)
            && (match rows with
                | first :: rest -> run { q [ "limit", "500" ] with SinceId = Some(string first.Id) } = rest
                | [] -> true))
    )

// ---------------------------------------------------------------- acks

[<Fact>]
let ``rule: ack is monotone (GREATEST) under any sequence`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose64 (0L, 1000L)))) (fun acks ->
            let floors = acks |> List.scan (fun (s: int64 option) a -> Some(Inbox.mergeAck s a)) None |> List.choose id
            let pairs = List.pairwise floors
            pairs |> List.forall (fun (a, b) -> b >= a)
            && List.zip acks floors |> List.forall (fun (a, f) -> f >= a)
            && (match acks with
                | [] -> floors.IsEmpty
                | _ -> List.last floors = List.max acks))
    )

[<Fact>]
let ``ack body validation follows the spec's texts`` () =
    let body text =
        match Inbox.parseAck text with
        | Ok n -> string n
        | Error e -> e.Body

    let required = """{"error":"acked_seq is required"}"""
    Assert.Equal("42", body """{"acked_seq":42}""")
    Assert.Equal("0", body """{"acked_seq":0}""")
    Assert.Equal("9223372036854775807", body """{"acked_seq":9223372036854775807}""")
    Assert.Equal("""{"error":"acked_seq must be >= 0"}""", body """{"acked_seq":-1}""")

    for t in [ ""; "{}"; "nope"; """{"acked_seq":null}"""; """{"acked_seq":"5"}"""; """{"acked_seq":1.5}"""; """{"acked_seq":1.0}"""; """{"acked_seq":1e3}"""; """{"acked_seq":9223372036854775808}"""; "[5]" ] do
        Assert.Equal(required, body t)

    Assert.Equal("""{"last_acked_seq":7}""", (Inbox.ackReply 7L).Body)

// ---------------------------------------------------------------- retention

let private retentionGen =
    gen {
        let! soft = Gen.choose (-2, 20)
        let! hard = Gen.choose (-2, 40)
        let! floor = Gen.choose64 (0L, 50L)
        let! acked = Gen.elements [ true; false ]
        let! rows = Gen.listOf (Gen.zip (Gen.choose (0, 60 * 24)) (Gen.choose64 (1L, 60L)))
        return soft, hard, (if acked then Some floor else None), rows
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: retention never deletes an unacked row younger than hardDays, and deletes what the rule says`` () =
    Check.One(
        cfg 500,
        Prop.forAll retentionGen (fun (soft, hard, floor, rows) ->
            let me = wid ()
            let now = t0.AddDays 90.0
            let retention = { Inbox.Retention.SoftDays = soft; Inbox.Retention.HardDays = hard }
            let p = Inbox.Retention.normalise retention

            rows
            |> List.forall (fun (ageHours, seq) ->
                let r = { Activity.row (aid ()) (now.AddHours(-(float ageHours))) me "a2a_receive" with Seq = seq }
                let pruned = Inbox.prunable now retention (fun ws -> if ws = me then floor else None) r
                let f = defaultArg floor 0L
                let age = now - r.CreatedAt
                let unacked = seq > f

                p.SoftDays > 0
                && p.HardDays >= p.SoftDays
                && (not (unacked && age < TimeSpan.FromDays(float p.HardDays)) || not pruned)
                && pruned = ((age > TimeSpan.FromDays(float p.SoftDays) && not unacked) || age > TimeSpan.FromDays(float p.HardDays))))
    )

[<Fact>]
let ``retention and since_secs bounds are total at the edges of time`` () =
    let r = { Activity.row (aid ()) DateTimeOffset.MinValue (wid ()) "a2a_receive" with Seq = 1L }
    let huge = { Inbox.Retention.SoftDays = Int32.MaxValue; Inbox.Retention.HardDays = Int32.MaxValue }
    Assert.False(Inbox.prunable DateTimeOffset.MinValue huge (fun _ -> Some 5L) r)
    Assert.True(Inbox.prunable DateTimeOffset.MaxValue Inbox.Retention.defaults (fun _ -> None) r)
    Assert.Equal(DateTimeOffset.MinValue, Activity.ago (DateTimeOffset.MinValue.AddDays 1.0) (TimeSpan.FromDays 30.0))
    let q = { (q [ "since_secs", "2592000" ]) with Type = None }
    Assert.Equal(Ok [ r ], Activity.select DateTimeOffset.MinValue r.WorkspaceId (ResizeArray [ r ]) (fun _ -> None) q)

// ---------------------------------------------------------------- mail summary and payloads

[<Fact>]
let ``mail summary counts unread a2a_receive rows above the floor, newest first, capped at 25`` () =
    let me = wid ()
    let sender = wid ()

    let rows =
        [ for i in 1..40 ->
              { Activity.row (aid ()) (t0.AddSeconds(float i)) me (if i % 10 = 0 then "agent_log" else "a2a_receive") with
                  Seq = int64 i
                  SourceId = (if i % 2 = 0 then Some sender else None)
                  Method = Some(if i % 7 = 0 then "delegate_result" else "message/send")
                  MessageId = (if i % 3 = 0 then Some $"m{i}" else None) } ]

    let backlog = Inbox.mailSummary None 21600 rows
    Assert.Equal("""{"mode":"queued_backlog","overdue":[],"overdue_after_seconds":21600,"overdue_count":0,"received":[],"received_list_cap":25,"received_unread":0,"replies_unread":0,"sent_awaiting_reply":0}""", Json.compact backlog)
    let s = Inbox.mailSummary (Some 5L) 60 rows
    let unread = rows |> List.filter (fun r -> r.Seq > 5L && r.ActivityType = "a2a_receive")
    Assert.Equal("acked_seq", (s["mode"].GetValue<string>()))
    Assert.Equal(unread |> List.filter (fun r -> r.Method <> Some "delegate_result") |> List.length, (s["received_unread"].GetValue<int>()))
    Assert.Equal(unread |> List.filter (fun r -> r.Method = Some "delegate_result") |> List.length, (s["replies_unread"].GetValue<int>()))
    let received = s["received"].AsArray()
    Assert.Equal(25, received.Count)
    let first: JsonNode = received.[0]
    let second: JsonNode = received.[1]
    Assert.Equal(39L, first.["seq"].GetValue<int64>())
    let firstId = first.["id"].GetValue<string>()
    Assert.Equal("""{"id":"X","message_id":"m39","method":"message/send","seq":39}""", (Json.compact first).Replace(firstId, "X"))
    Assert.Equal(string sender, second.["sender_id"].GetValue<string>())
    Assert.Equal(Error(Wire.errorReply 400 "overdue_after_seconds must be an integer >= 60"), Inbox.parseOverdue (Some "59"))
    Assert.Equal(Ok 21600, Inbox.parseOverdue None)

[<Fact>]
let ``the stream's ACTIVITY_LOGGED payload never carries id, seq, created_at or workspace_id`` () =
    let row =
        { Activity.row (aid ()) t0 (wid ()) "a2a_receive" with
            Seq = 9L
            Method = Some "message/send"
            Summary = Some "message/send → W (ingest)"
            RequestBody = Some """{"b":1,"a":2}"""
            MessageId = Some "M" }

    let data = Views.activityData row (Some "message/send → W (queued for poll)")
    let keys = [ for kv in data -> kv.Key ]
    Assert.Equal<string list>([ "activity_type"; "duration_ms"; "message_id"; "method"; "request_body"; "source_id"; "status"; "summary"; "target_id" ], keys)
    Assert.Equal("message/send → W (queued for poll)", (data["summary"].GetValue<string>()))
    Assert.Equal("""{"b":1,"a":2}""", Json.compact data["request_body"])
    let view = Views.activity row
    Assert.Equal(9L, (view["seq"].GetValue<int64>()))
    Assert.Null(view["message_id"])

[<Fact>]
let ``attachments come from file parts or a flat upload manifest`` () =
    let parts =
        """{"params":{"message":{"parts":[{"kind":"text","text":"hi"},{"kind":"file","file":{"uri":"u1","mimeType":"text/plain","name":"a.txt"}},{"type":"image","uri":"u2"},{"kind":"file","file":{}},{"kind":"data","data":{}}]}}}"""

    Assert.Equal(
        """[{"kind":"file","uri":"u1","mime_type":"text/plain","name":"a.txt"},{"kind":"image","uri":"u2"}]""",
        Json.compact (Json.arr (A2a.attachmentsOf (Some parts)))
    )

    Assert.Equal(
        """[{"kind":"audio","uri":"f1","mime_type":"audio/ogg","name":"n.ogg"}]""",
        Json.compact (Json.arr (A2a.attachmentsOf (Some """{"file_id":"f1","name":"n.ogg","mimeType":"audio/ogg"}""")))
    )

    Assert.Empty(A2a.attachmentsOf None)
    Assert.Empty(A2a.attachmentsOf (Some "not json"))
