module Molecule.Tests.Core.InboxTests

open Molecule.Protocol

open System
open System.Globalization
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Tests.Core.InboxModel

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private parse (text: string) = (Json.tryParse text).Value

let private row (text: string) = parse text

let private durable (s: Inbox.State) = s.Cursor, s.Queue, s.Seen

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

let private genKind =
    Gen.frequency
        [ 4, Gen.constant CanvasText
          3, Gen.constant PeerText
          2, Gen.constant NotifyEcho
          1, Gen.constant SelfDelegationEcho
          1, Gen.constant SelfDelegateResult ]

let private genFailure =
    Gen.oneof
        [ Gen.elements [ 401; 403; 404; 429; 500; 502; 503 ] |> Gen.map (fun c -> Reply(c, "{\"error\":\"nope\"}"))
          Gen.constant (Reply(200, "<html>proxy error</html>"))
          Gen.constant (Reply(200, "{\"rows\":[]}"))
          Gen.constant (Reply(200, "null"))
          Gen.constant (Reply(200, ""))
          Gen.constant (TransportError "connection refused")
          Gen.constant (TimedOut 10.0) ]

let private genOpWith (weights: {| pops: int; appends: int; bursts: int; resets: int |}) =
    Gen.frequency
        [ weights.appends,
          gen {
              let! kind = genKind
              let! late = Gen.elements [ 0L; 0L; 0L; 1L; 300L; 999L; 1000L ]
              let! format = Gen.choose (0, 2)
              return Append(kind, late, format)
          }
          weights.bursts, gen {
              let! n = Gen.choose (10, 110)
              let! kind = genKind
              return Burst(n, kind)
          }
          3, Gen.elements [ 0L; 1L; 500L; 1000L; 1999L; 2000L; 2001L; 5000L ] |> Gen.map Advance
          6, Gen.constant Poll
          1, Gen.constant Duplicate
          1, Gen.choose (1, 4) |> Gen.map Overlap
          weights.resets, Gen.constant PruneCursor
          weights.resets, Gen.constant Restart
          weights.pops, Gen.constant PopHead
          weights.pops, Gen.choose (0, 50) |> Gen.map PopNth
          1, Gen.constant PopUnknown
          1, genFailure |> Gen.map Fail ]

let private genOps weights =
    Gen.sized (fun n -> Gen.choose (0, min 60 (n + 5)) |> Gen.bind (fun len -> Gen.listOfLength len (genOpWith weights)))

let private mixed = {| pops = 3; appends = 8; bursts = 1; resets = 1 |}

type private Scenario = { TiesReversed: bool; Ops: Op list }

let private genScenario weights =
    gen {
        let! ties = Gen.elements [ true; false ]
        let! ops = genOps weights
        return { TiesReversed = ties; Ops = ops }
    }

let private arbScenario weights = Arb.fromGen (genScenario weights)

let private run (sc: Scenario) =
    sc.Ops |> List.fold step (start sc.TiesReversed Inbox.empty)

let private nonEchoIds (sim: Sim) =
    sim.Platform.Rows |> List.filter (fun r -> not (isEchoKind r.Kind)) |> List.map (fun r -> r.Id)

let private echoIds (sim: Sim) =
    sim.Platform.Rows |> List.filter (fun r -> isEchoKind r.Kind) |> List.map (fun r -> r.Id)

let private allSurfaced (sim: Sim) =
    let surfaced = sim.Surfaced |> List.map (fun m -> m.ActivityId)
    let expected = nonEchoIds sim
    if List.sort surfaced = List.sort expected then
        true
    else
        let missing = expected |> List.filter (fun id -> not (List.contains id surfaced))
        let extra = surfaced |> List.filter (fun id -> not (List.contains id expected))
        let show id =
            match sim.Platform.Rows |> List.tryFind (fun r -> r.Id = id) with
            | Some r -> $"{id}@{r.At}"
            | None -> id
        let missingText = String.Join(", ", missing |> List.map show)
        let extraText = String.Join(", ", extra)
        failwith $"missing [{missingText}] extra [{extraText}] cursor {sim.Inbox.Cursor} now {sim.Platform.Now} rows {sim.Platform.Rows.Length} queue {sim.Inbox.Queue.Length}"

let private noViolations (sim: Sim) =
    match sim.Violations with
    | [] -> true
    | v -> failwith (String.Join("; ", List.distinct v))

// ---------------------------------------------------------------------------------------------
// Delivery properties (model platform)
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: every non-echo row is surfaced exactly once`` () =
    Check.One(
        cfg 200,
        Prop.forAll (arbScenario mixed) (fun sc ->
            let sim = run sc |> drain
            let surfaced = sim.Surfaced |> List.map (fun m -> m.ActivityId)
            noViolations sim
            && allSurfaced sim
            && List.length (List.distinct surfaced) = List.length surfaced
            // the message says what the row said
            && sim.Surfaced
               |> List.forall (fun m ->
                   let r = sim.Platform.Rows |> List.find (fun r -> r.Id = m.ActivityId)
                   match r.Kind with
                   | CanvasText -> m.Text = r.Text && m.Kind = CanvasUser && m.PeerId = ""
                   | PeerText -> m.Text = r.Text && m.Kind = PeerAgent && m.PeerId = peerA
                   | SelfDelegateResult -> m.Kind = PeerAgent && m.Method = "delegate_result"
                   | _ -> false))
    )

[<Fact>]
let ``model: the generated scenarios go through every tricky situation`` () =
    // Guards against vacuous delivery properties: late commits, equal timestamps, full pages,
    // paused intake, pruned cursors (410), restarts, duplicated and overlapping responses all occur.
    let sample weights = Gen.sampleWithSize 60 40 (genScenario weights) |> Array.toList
    let events =
        (sample mixed @ sample {| pops = 1; appends = 4; bursts = 4; resets = 0 |})
        |> List.map (fun sc -> (run sc |> drain).Events)
        |> Set.unionMany
    for e in [ "late-commit"; "equal-timestamps"; "full-page"; "pause"; "resume"; "410"; "prune"; "restart"; "duplicate"; "overlap"; "failure" ] do
        Assert.True(events.Contains e, $"no generated scenario had: {e}")

[<Fact>]
let ``rule: a popped message never comes back`` () =
    let weights = {| pops = 6; appends = 6; bursts = 1; resets = 3 |}
    Check.One(
        cfg 200,
        Prop.forAll (arbScenario weights) (fun sc ->
            // pop, then restart from the snapshot and replay from scratch (410 + since_secs)
            let sim = run sc
            let sim = step sim PopHead
            let sim = step sim Restart
            let sim = { sim with Inbox = { sim.Inbox with Cursor = None } } |> fun s -> step s Poll
            let sim = step (step sim Duplicate) (Overlap 2)
            let counts = sim.Surfaced |> List.countBy (fun m -> m.ActivityId) |> Map.ofList
            noViolations sim
            && sim.Popped |> Set.forall (fun id -> Map.tryFind id counts = Some 1)
            && sim.Popped |> Set.forall (fun id -> sim.Inbox.Queue |> List.forall (fun m -> m.ActivityId <> id)))
    )

[<Fact>]
let ``rule: echo rows never surface`` () =
    let weights = {| pops = 2; appends = 10; bursts = 1; resets = 1 |}
    Check.One(
        cfg 100,
        Prop.forAll (arbScenario weights) (fun sc ->
            let sim = run sc |> drain
            let echoes = echoIds sim |> Set.ofList
            noViolations sim
            && sim.Surfaced |> List.forall (fun m -> not (echoes.Contains m.ActivityId))
            && sim.Platform.Rows
               |> List.forall (fun r -> Inbox.isEcho selfId (rowJson r) = isEchoKind r.Kind))
    )

[<Fact>]
let ``rule: the queue never exceeds capacity and nothing is dropped when full`` () =
    // Few pops: the queue fills up, intake pauses, and the held-back rows arrive after pops.
    let weights = {| pops = 1; appends = 4; bursts = 4; resets = 0 |}
    Check.One(
        cfg 40,
        Prop.forAll (arbScenario weights) (fun sc ->
            let sim = run sc
            let atMost = List.length sim.Inbox.Queue <= Inbox.capacity
            let sim = drain sim
            noViolations sim && atMost && allSurfaced sim)
    )

[<Fact>]
let ``rule: the queue is ordered by (created_at, id)`` () =
    // One response with many equal, reordered and unparsable timestamps.
    let stamps =
        [| "2026-05-01T12:00:00Z"; "2026-05-01T12:00:00.000001Z"; "2026-05-01T14:00:00+02:00"
           "2026-05-01T11:59:59.999999999Z"; "yesterday"; ""; "2026-05-01T12:00:01.5Z"; "zzz" |]
    let genRows =
        Gen.listOf (
            gen {
                let! id = Gen.choose (1, 40)
                let! stamp = Gen.elements stamps
                return Json.obj [ "id", Json.str $"id-{id:D2}"; "created_at", Json.str stamp; "summary", Json.str "s" ] :> JsonNode
            })
    let key (m: InboxMessage) =
        match DateTimeOffset.TryParse(m.CreatedAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) with
        | true, t -> (0, t.UtcTicks, "", m.ActivityId)
        | _ -> (1, 0L, m.CreatedAt, m.ActivityId)
    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen (Gen.two genRows)) (fun (first, second) ->
            let respond rows = Reply(200, Json.compact (Json.arr (rows |> List.map Json.clone)))
            let s1, _, _ = Inbox.onPoll selfId (respond first) Inbox.empty
            let s2, _, _ = Inbox.onPoll selfId (respond second) s1
            let keys = s2.Queue |> List.map key
            let ids = s2.Queue |> List.map (fun m -> m.ActivityId)
            keys = List.sortWith (fun a b ->
                       let (g1, t1, r1, i1), (g2, t2, r2, i2) = a, b
                       let c = compare (g1, t1) (g2, t2)
                       if c <> 0 then c
                       else
                           let c = String.CompareOrdinal(r1, r2)
                           if c <> 0 then c else String.CompareOrdinal(i1, i2)) keys
            && List.length (List.distinct ids) = List.length ids
            && Set.ofList ids = Set.ofList ((first @ second) |> List.choose (Json.stringProp "id")))
    )

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: failures never change the state`` () =
    let arb =
        Arb.fromGen (
            gen {
                let! sc = genScenario mixed
                let! failure = genFailure
                return sc, failure
            })
    Check.One(
        cfg 80,
        Prop.forAll arb (fun (sc, failure) ->
            let before = (run sc).Inbox
            let after, fresh, effects = Inbox.onPoll selfId failure before
            durable after = durable before
            && Inbox.snapshot after = Inbox.snapshot before
            && Inbox.pollQuery after = Inbox.pollQuery before
            && fresh.IsEmpty
            && effects |> List.forall (function Log _ -> true | _ -> false))
    )

[<Fact>]
let ``rule: poll failures are logged on the 1st and every 60th in a row, recovery once`` () =
    let failure = Reply(503, "upstream down")
    let folder (s, warnings) _ =
        let s, _, effects = Inbox.onPoll selfId failure s
        s, warnings + (effects |> List.filter (function Log(Warning, _) -> true | _ -> false) |> List.length)
    let s, warnings = List.fold folder (Inbox.empty, 0) [ 1..130 ]
    Assert.Equal(3, warnings) // 1st, 60th, 120th
    Assert.Equal(130, s.Failures)
    let s, _, effects = Inbox.onPoll selfId (Reply(200, "[]")) s
    Assert.Equal(0, s.Failures)
    Assert.Contains(effects, fun e -> match e with Log(Info, t) -> t.Contains "recovered" | _ -> false)
    let _, _, effects = Inbox.onPoll selfId (Reply(200, "[]")) s
    Assert.DoesNotContain(effects, fun e -> match e with Log(Info, t) -> t.Contains "recovered" | _ -> false)

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

let private genText =
    Gen.oneof
        [ ArbMap.defaults |> ArbMap.generate<string> |> Gen.map (fun s -> if isNull s then "" else s)
          Gen.elements [ "hi"; "héllo ✓"; "line1\nline2"; "\"quoted\""; "\ud83d\ude00"; "" ] ]

let private genId = Gen.choose (0, 5000) |> Gen.map (fun n -> $"act-{n:D5}")

let private genMessage =
    gen {
        let! id = genId
        let! text = genText
        let! peer = Gen.elements [ ""; peerA; peerB ]
        let! meth = Gen.elements [ "message/send"; ""; "delegate_result" ]
        let! at = Gen.elements [ "2026-05-01T12:00:00Z"; "2026-05-01T12:00:00.5Z"; "garbage"; ""; "2026-05-01T12:00:00.123456+00:00" ]
        return
            { ActivityId = id
              Text = text
              PeerId = peer
              Kind = (if peer = "" then CanvasUser else PeerAgent)
              Method = meth
              CreatedAt = at }
    }

let private genDurableState =
    gen {
        let! cursor = Gen.optionOf genId
        let! queue = Gen.listOf genMessage
        let! seen = Gen.listOf genId
        let queue = queue |> List.distinctBy (fun m -> m.ActivityId) |> List.sortWith Inbox.compareMessages
        return
            { Inbox.empty with
                Cursor = cursor
                Queue = queue
                Seen = List.distinct (seen @ (queue |> List.map (fun m -> m.ActivityId))) }
    }

[<Fact>]
let ``rule: restore of snapshot is identity`` () =
    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen genDurableState) (fun s ->
            Inbox.restore (Some(Inbox.snapshot s)) None = s
            && Inbox.restore (Some(Inbox.snapshotPlain s)) None = s
            && Inbox.restorePlain (Inbox.snapshot s) = Some s
            && Inbox.restorePlain (Inbox.snapshotPlain s) = Some s
            // the legacy cursor is only a fallback for a missing state file
            && Inbox.restore (Some(Inbox.snapshot s)) (Some "legacy-cursor") = s)
    )

[<Fact>]
let ``rule: restore of snapshot keeps the durable state and resets the transient counters`` () =
    let arb =
        Arb.fromGen (
            gen {
                let! s = genDurableState
                let! failures = Gen.choose (0, 500)
                let! paused = Gen.elements [ true; false ]
                return { s with Failures = failures; Paused = paused }
            })
    Check.One(
        cfg 100,
        Prop.forAll arb (fun s -> Inbox.restore (Some(Inbox.snapshot s)) None = { s with Failures = 0; Paused = false })
    )

[<Fact>]
let ``rule: restore is total (garbage gives the empty state)`` () =
    let genGarbage =
        Gen.oneof
            [ ArbMap.defaults |> ArbMap.generate<string>
              Gen.elements
                  [ "{}"; "[]"; "null"; "{\"version\":2,\"cursor\":null,\"queue\":[],\"seen\":[]}"
                    "{\"version\":1,\"cursor\":null,\"queue\":[{\"activity_id\":null}],\"seen\":[]}"
                    "{\"version\":1,\"cursor\":null,\"queue\":[],\"seen\":[null]}"
                    "{\"version\":\"1\",\"cursor\":null,\"queue\":[],\"seen\":[]}" ] ]
    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen (Gen.two genGarbage)) (fun (a, b) ->
            let s = Inbox.restore (Some a) (Some b)
            // either garbage → empty, or (rarely) a valid document; both readers agree
            (s = Inbox.empty || Inbox.restore (Some(Inbox.snapshot s)) None = s)
            && (Inbox.restorePlain a |> Option.defaultValue Inbox.empty) = s)
    )

[<Fact>]
let ``restore: legacy cursor is used only when there is no state file`` () =
    Assert.Equal(Some "0b5f0000-aaaa", (Inbox.restore None (Some "  0b5f0000-aaaa\n")).Cursor)
    Assert.Equal(Inbox.empty, Inbox.restore None (Some "two words"))
    Assert.Equal(Inbox.empty, Inbox.restore None None)
    Assert.Equal(Inbox.empty, Inbox.restore (Some "not json") (Some "0b5f0000-aaaa"))
    Assert.Equal(SinceId("0b5f0000-aaaa", 100), Inbox.pollQuery (Inbox.restore None (Some "0b5f0000-aaaa")))

[<Fact>]
let ``snapshot: keys are version, cursor, queue, seen`` () =
    let s, _, _ =
        Inbox.onPoll selfId (Reply(200, "[{\"id\":\"a1\",\"created_at\":\"2026-05-01T12:00:00Z\",\"summary\":\"x\"}]")) Inbox.empty
    let o = (Json.tryParse (Inbox.snapshot s)).Value.AsObject()
    Assert.Equal<string list>([ "version"; "cursor"; "queue"; "seen" ], o |> Seq.map (fun kv -> kv.Key) |> List.ofSeq)
    Assert.Equal(Some 1.0, Json.prop "version" o |> Option.bind Json.asFloat)
    let item = (Json.path [ "queue" ] o |> Option.bind Json.asArray).Value.Head
    Assert.Equal(Some "canvas_user", Json.stringProp "kind" item)

// ---------------------------------------------------------------------------------------------
// Row → message
// ---------------------------------------------------------------------------------------------

let private genJson: Gen<JsonNode> =
    let keys =
        [ "id"; "source_id"; "method"; "created_at"; "request_body"; "summary"; "params"; "message"; "parts"; "kind"
          "type"; "text"; "file"; "name"; "uri" ]
    let leaf =
        Gen.oneof
            [ Gen.constant Json.nul
              Gen.elements [ "text"; "file"; "notify"; ""; "hi"; "{\"parts\":[{\"kind\":\"text\",\"text\":\"s\"}]}"; "[1" ]
              |> Gen.map Json.str
              Gen.choose (-5, 5) |> Gen.map Json.num
              Gen.elements [ true; false ] |> Gen.map Json.bool
              Gen.constant () |> Gen.map (fun () -> Json.numf 1e300) ]
    let rec node depth =
        if depth = 0 then
            leaf
        else
            Gen.frequency
                [ 2, leaf
                  2,
                  Gen.listOf (Gen.zip (Gen.elements keys) (node (depth - 1)))
                  |> Gen.map (fun kvs -> Json.obj (List.distinctBy fst kvs) :> JsonNode)
                  1, Gen.listOf (node (depth - 1)) |> Gen.map Json.arr ]
    Gen.sized (fun n -> node (min 5 (n / 10 + 1)))

[<Fact>]
let ``rule: messageOfRow is total`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen genJson) (fun node ->
            let m = Inbox.messageOfRow node
            let _ = Inbox.isEcho selfId node
            let _ = Inbox.onPoll selfId (Reply(200, Json.compact (Json.arr [ Json.clone node ]))) Inbox.empty
            match m with
            | None -> true
            | Some m ->
                m.ActivityId.Trim() <> ""
                && not (isNull m.Text) && m.Text <> ""
                && (m.Kind = PeerAgent) = (m.PeerId <> ""))
    )

type private PartSpec =
    | TextPart of string
    | FilePart of name: string * uri: string
    | OtherPart

let private partJson (useType: bool) p : JsonNode =
    let tag = if useType then "type" else "kind"
    match p with
    | TextPart t -> Json.obj [ tag, Json.str "text"; "text", Json.str t ]
    | FilePart(n, u) -> Json.obj [ tag, Json.str "file"; "file", Json.obj [ "name", Json.str n; "uri", Json.str u ] ]
    | OtherPart -> Json.obj [ tag, Json.str "data"; "data", Json.obj [ "x", Json.num 1 ] ]

let private expectedLines parts =
    parts
    |> List.choose (function
        | TextPart "" -> None
        | TextPart t -> Some t
        | FilePart(n, u) -> Some $"[attachment: {n} {u}]"
        | OtherPart -> None)

[<Fact>]
let ``rule: text comes from the first part list with text, else summary`` () =
    let genPart =
        Gen.frequency
            [ 4, Gen.elements [ "hi"; ""; "second"; "ü" ] |> Gen.map TextPart
              1, Gen.constant (FilePart("a.png", "workspace:/uploads/a.png"))
              2, Gen.constant OtherPart ]
    let arb =
        Arb.fromGen (
            gen {
                let! lists = Gen.listOfLength 3 (Gen.optionOf (Gen.listOf genPart))
                let! summary = Gen.elements [ None; Some ""; Some "the summary" ]
                let! asString = Gen.elements [ true; false ]
                let! useType = Gen.elements [ true; false ]
                return lists, summary, asString, useType
            })
    Check.One(
        cfg 300,
        Prop.forAll arb (fun (lists, summary, asString, useType) ->
            let partsNode ps = Json.arr (ps |> List.map (partJson useType))
            let l1, l2, l3 = lists[0], lists[1], lists[2]
            let body =
                Json.obj (
                    [ match l1, l2 with
                      | None, None -> ()
                      | _ ->
                          "params",
                          (Json.obj (
                              [ match l1 with
                                | Some ps -> "message", (Json.obj [ "parts", partsNode ps ] :> JsonNode)
                                | None -> ()
                                match l2 with
                                | Some ps -> "parts", partsNode ps
                                | None -> () ]
                           )
                           :> JsonNode)
                      match l3 with
                      | Some ps -> "parts", partsNode ps
                      | None -> () ]
                )
            let bodyNode = if asString then Json.str (Json.compact body) else (body :> JsonNode)
            let r =
                Json.obj (
                    [ "id", Json.str "a1"; "request_body", bodyNode ]
                    @ (match summary with Some s -> [ "summary", Json.str s ] | None -> [])
                )
            let expected =
                match lists |> List.tryPick (Option.bind (fun ps -> match expectedLines ps with [] -> None | ls -> Some(String.Join("\n", ls)))) with
                | Some t -> t
                | None ->
                    match summary with
                    | Some s when s <> "" -> s
                    | _ -> "(empty A2A message)"
            (Inbox.messageOfRow r).Value.Text = expected)
    )

// ---------------------------------------------------------------------------------------------
// Examples from the spec
// ---------------------------------------------------------------------------------------------

let private canvasHiRow =
    """{"id":"a1b2c3d4-0000-4000-8000-000000000001","workspace_id":"W","activity_type":"a2a_receive","source_id":null,"target_id":"W","method":"message/send","summary":null,"duration_ms":null,"status":"ok","error_detail":null,"created_at":"2026-05-01T12:00:00.123456Z","request_body":{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user","messageId":"9f0e","parts":[{"kind":"text","text":"hi"}]},"metadata":{"history":[]}}}}"""

[<Fact>]
let ``example: canvas "hi" envelope (Appendix B) becomes a canvas_user message`` () =
    let s, fresh, effects = Inbox.onPoll selfId (Reply(200, "[" + canvasHiRow + "]")) Inbox.empty
    let expected =
        { ActivityId = "a1b2c3d4-0000-4000-8000-000000000001"
          Text = "hi"
          PeerId = ""
          Kind = CanvasUser
          Method = "message/send"
          CreatedAt = "2026-05-01T12:00:00.123456Z" }
    Assert.Equal<InboxMessage list>([ expected ], fresh)
    Assert.Equal(Some expected, Inbox.head s)
    Assert.Contains(effects, fun e -> match e with WriteStateFile(".mcp_inbox_state.json", _) -> true | _ -> false)
    Assert.Equal(
        """{"activity_id":"a1b2c3d4-0000-4000-8000-000000000001","text":"hi","peer_id":"","kind":"canvas_user","method":"message/send","created_at":"2026-05-01T12:00:00.123456Z"}""",
        Json.compact (Inbox.toJson expected)
    )
    // the same rows again: nothing new, nothing written
    let s2, fresh2, effects2 = Inbox.onPoll selfId (Reply(200, "[" + canvasHiRow + "]")) s
    Assert.Empty(fresh2)
    Assert.Equal<InboxMessage list>(s.Queue, s2.Queue)
    Assert.DoesNotContain(effects2, fun e -> match e with WriteStateFile _ -> true | _ -> false)

[<Fact>]
let ``example: a peer message is a peer_agent message with its text joined by newlines`` () =
    let r =
        row
            """{"id":"p1","source_id":"9eea0000-0000-4000-8000-0000000000a1","method":"message/send","created_at":"2026-05-01T12:00:00Z","request_body":"{\"params\":{\"message\":{\"parts\":[{\"type\":\"text\",\"text\":\"part one\"},{\"kind\":\"file\",\"file\":{\"name\":\"r.pdf\",\"uri\":\"workspace:/r.pdf\"}},{\"kind\":\"text\",\"text\":\"part two\"}]}}}"}"""
    let m = (Inbox.messageOfRow r).Value
    Assert.Equal(PeerAgent, m.Kind)
    Assert.Equal("peer_agent", Inbox.kindName m.Kind)
    Assert.Equal(peerA, m.PeerId)
    Assert.Equal("part one\n[attachment: r.pdf workspace:/r.pdf]\npart two", m.Text)
    Assert.False(Inbox.isEcho selfId r)

[<Fact>]
let ``example: own notify row and own delegation row are echoes; delegate_result is not`` () =
    let notify =
        row """{"id":"n1","source_id":null,"method":"notify","summary":"Agent message: hello","created_at":"2026-05-01T12:00:00Z","response_body":{"message":"hello"}}"""
    let selfReport =
        row ($"""{{"id":"d1","source_id":"{selfId.ToUpperInvariant()}","method":"message/send","summary":"x responded (5 chars)","created_at":"2026-05-01T12:00:00Z","request_body":{{"task":"t"}}}}""")
    let selfResult =
        row ($"""{{"id":"d2","source_id":"{selfId}","method":"delegate_result","summary":"done","created_at":"2026-05-01T12:00:00Z"}}""")
    let peerNotify = row """{"id":"n2","source_id":"9eea0000-0000-4000-8000-0000000000a1","method":"notify","created_at":"2026-05-01T12:00:00Z"}"""
    Assert.True(Inbox.isEcho selfId notify)
    Assert.True(Inbox.isEcho selfId selfReport)
    Assert.False(Inbox.isEcho selfId selfResult)
    Assert.False(Inbox.isEcho selfId peerNotify)
    Assert.False(Inbox.isEcho "" (row """{"id":"c","source_id":null,"method":"message/send"}"""))
    let body = Json.compact (Json.arr [ notify; selfReport; selfResult ] |> Json.clone)
    let s, fresh, _ = Inbox.onPoll selfId (Reply(200, body)) Inbox.empty
    Assert.Equal<string list>([ "d2" ], fresh |> List.map (fun m -> m.ActivityId))
    Assert.Equal(1, s.Queue.Length)

[<Fact>]
let ``example: 410 resets the cursor to a since_secs replay and keeps popped ids`` () =
    let rows n =
        [ for i in 1..n ->
              $"""{{"id":"r{i}","source_id":null,"method":"message/send","summary":"m{i}","created_at":"2026-05-01T12:00:{(i * 3):D2}Z"}}""" ]
    let body n = "[" + String.Join(",", rows n) + "]"
    Assert.Equal(SinceSecs(600, 100), Inbox.pollQuery Inbox.empty)
    let s, fresh, _ = Inbox.onPoll selfId (Reply(200, body 3)) Inbox.empty
    Assert.Equal(3, fresh.Length)
    // newest row (12:00:09) is 6 s and 3 s ahead of r1, r2 → cursor = r2 (r3 is fetched again)
    Assert.Equal(SinceId("r2", 100), Inbox.pollQuery s)
    let s, removed, effects = Inbox.pop "r1" s
    Assert.True(removed)
    Assert.Contains(effects, fun e -> match e with WriteStateFile(".mcp_inbox_state.json", _) -> true | _ -> false)
    let s, again, _ = Inbox.pop "r1" s
    Assert.False(again)
    let s, fresh, effects = Inbox.onPoll selfId (Reply(410, "{\"error\":\"since_id cursor not found\"}")) s
    Assert.Empty(fresh)
    Assert.Equal(SinceSecs(600, 100), Inbox.pollQuery s)
    Assert.Contains(effects, fun e -> match e with Log(Info, t) -> t.Contains "410" | _ -> false)
    Assert.Contains(effects, fun e -> match e with WriteStateFile _ -> true | _ -> false)
    // the replay (newest first) brings back r1..r4: only r4 is new, r1 stays popped
    let replay = "[" + String.Join(",", rows 4 |> List.rev) + "]"
    let s, fresh, _ = Inbox.onPoll selfId (Reply(200, replay)) s
    Assert.Equal<string list>([ "r4" ], fresh |> List.map (fun m -> m.ActivityId))
    Assert.Equal<string list>([ "r2"; "r3"; "r4" ], s.Queue |> List.map (fun m -> m.ActivityId))

[<Fact>]
let ``example: rows sharing the newest timestamps stay behind the cursor (P15)`` () =
    let r id at = $"""{{"id":"{id}","summary":"{id}","created_at":"{at}"}}"""
    let s, _, _ = Inbox.onPoll selfId (Reply(200, "[" + r "a" "2026-05-01T12:00:00Z" + "," + r "b" "2026-05-01T12:00:01Z" + "]")) Inbox.empty
    Assert.Equal(None, s.Cursor) // nothing settled yet: keep replaying with since_secs
    let s, fresh, _ =
        Inbox.onPoll selfId (Reply(200, "[" + String.Join(",", [ r "a" "2026-05-01T12:00:00Z"; r "b" "2026-05-01T12:00:01Z"; r "c" "2026-05-01T12:00:03Z" ]) + "]")) s
    Assert.Equal<string list>([ "c" ], fresh |> List.map (fun m -> m.ActivityId))
    Assert.Equal(Some "b", s.Cursor) // b is 2 s older than c; c may still get siblings with the same timestamp

[<Fact>]
let ``example: a full queue pauses intake once, holds rows back and resumes after pops`` () =
    let r i = $"""{{"id":"q{i:D3}","summary":"m{i}","created_at":"2026-05-01T12:{(i / 60):D2}:{(i % 60):D2}Z"}}"""
    let page from count = Reply(200, "[" + String.Join(",", [ for i in from .. from + count - 1 -> r i ]) + "]")
    let mutable s = Inbox.empty
    for from in [ 0; 100 ] do
        let s', fresh, _ = Inbox.onPoll selfId (page from 100) s
        Assert.Equal(100, fresh.Length)
        s <- s'
    let s1, fresh, effects = Inbox.onPoll selfId (page 200 50) s
    Assert.Empty(fresh)
    Assert.Equal(200, s1.Queue.Length)
    let warnings = effects |> List.choose (function Log(Warning, t) -> Some t | _ -> None)
    Assert.Equal<string list>([ "inbox full (200 unread) — pausing intake until messages are popped with inbox_pop" ], warnings)
    Assert.Equal(s.Cursor, s1.Cursor) // never past a row that was held back
    let s2, _, effects = Inbox.onPoll selfId (page 200 50) s1
    Assert.DoesNotContain(effects, fun e -> match e with Log(Warning, _) -> true | _ -> false)
    let s3, _, _ = Inbox.pop "q000" s2
    let s4, fresh, effects = Inbox.onPoll selfId (page 200 50) s3
    Assert.Equal<string list>([ "q200" ], fresh |> List.map (fun m -> m.ActivityId))
    Assert.Equal(200, s4.Queue.Length)
    Assert.DoesNotContain(effects, fun e -> match e with Log(Info, t) -> t.Contains "resumed" | _ -> false)
    let s5 = s4.Queue |> List.take 60 |> List.fold (fun s m -> let s, _, _ = Inbox.pop m.ActivityId s in s) s4
    let _, fresh, effects = Inbox.onPoll selfId (page 200 50) s5
    Assert.Equal(49, fresh.Length)
    Assert.Contains(effects, fun e -> match e with Log(Info, t) -> t.Contains "resumed" | _ -> false)

[<Fact>]
let ``example: peek is oldest first and bounded by the limit`` () =
    let body = """[{"id":"b","summary":"2","created_at":"2026-05-01T12:00:02Z"},{"id":"a","summary":"1","created_at":"2026-05-01T12:00:01Z"},{"id":"c","summary":"3","created_at":"2026-05-01T12:00:03Z"}]"""
    let s, _, _ = Inbox.onPoll selfId (Reply(200, body)) Inbox.empty
    Assert.Equal<string list>([ "a"; "b" ], Inbox.peek 2 s |> List.map (fun m -> m.ActivityId))
    Assert.Equal(3, (Inbox.peek 10 s).Length)
    Assert.Empty(Inbox.peek 0 s)
    Assert.Equal("a", (Inbox.head s).Value.ActivityId)

[<Fact>]
let ``example: a row held back while there is no cursor is not lost when it leaves the since_secs window`` () =
    // A full queue (200 unread) and no cursor (a 410 reset it): polls are since_secs=600 replays, so holding a row
    // back does not keep it reachable — a cursor is what keeps rows for later, and there is none to stop.
    let r i = $"""{{"id":"q{i:D3}","summary":"m{i}","created_at":"2026-04-01T12:{(i / 60):D2}:{(i % 60):D2}Z"}}"""
    let page from count = Reply(200, "[" + String.Join(",", [ for i in from .. from + count - 1 -> r i ]) + "]")
    let mutable s = Inbox.empty
    for from in [ 0; 100 ] do
        let s', _, _ = Inbox.onPoll selfId (page from 100) s
        s <- s'
    let s', _, _ = Inbox.onPoll selfId (Reply(410, "{}")) s
    s <- s'
    Assert.Equal(Inbox.capacity, s.Queue.Length)
    Assert.Equal(None, s.Cursor)
    // A user message arrives; the agent is busy and does not pop for more than ten minutes.
    let p, x = platform false |> advance 3_600_000L |> append CanvasText 0L 0
    let poll (p: Platform) (s: Inbox.State) =
        let s', fresh, _ = Inbox.onPoll selfId (serve (Inbox.pollQuery s) p) s
        s', fresh
    let mutable surfaced = []
    let mutable p = p
    for _ in 1..130 do // 130 polls, 5 s apart: the row is older than 600 s at the end
        let s', fresh = poll p s
        s <- s'
        surfaced <- surfaced @ fresh
        p <- advance 5_000L p
    // Now the agent pops everything it has; intake resumes.
    for m in s.Queue do
        let s', _, _ = Inbox.pop m.ActivityId s
        s <- s'
    let s', fresh = poll p s
    s <- s'
    surfaced <- surfaced @ fresh @ s.Queue
    Assert.Contains(x.Id, surfaced |> List.map (fun m -> m.ActivityId))
