module Molecule.Tests.Protocol.ActivityTests

open System
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Protocol

let private cfg n = Config.QuickThrowOnFailure.WithMaxTest n

let private genJson: Gen<JsonNode> =
    let keys =
        [ "id"; "seq"; "source_id"; "method"; "created_at"; "request_body"; "summary"; "params"; "message"; "parts"; "kind"
          "type"; "text"; "file"; "name"; "uri"; "peer_name" ]
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
let ``rule: parseRow is total, and a row it accepts has an id and a text`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen genJson) (fun node ->
            match Activity.parseRow node with
            | Error skip -> not (String.IsNullOrWhiteSpace skip.Reason)
            | Ok row -> row.Id.Trim() <> "" && not (String.IsNullOrEmpty row.Text))
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
            match Activity.parseRow r with
            | Ok row -> row.Text = expected
            | Error _ -> false)
    )

let canvasHiRow =
    """{"id":"a1b2c3d4-0000-4000-8000-000000000001","seq":17,"workspace_id":"W","activity_type":"a2a_receive","source_id":null,"target_id":"W","method":"message/send","summary":null,"duration_ms":null,"status":"ok","error_detail":null,"created_at":"2026-05-01T12:00:00.123456Z","request_body":{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user","messageId":"9f0e","parts":[{"kind":"text","text":"hi"}]},"metadata":{"history":[]}}}}"""

[<Fact>]
let ``example: the canvas "hi" envelope (Appendix B) reads as a row with seq, time and text`` () =
    match Activity.parseRow (Json.tryParse canvasHiRow).Value with
    | Ok row ->
        Assert.Equal("a1b2c3d4-0000-4000-8000-000000000001", row.Id)
        Assert.Equal(Some 17L, row.Seq)
        Assert.Equal("hi", row.Text)
        Assert.Equal("", row.SourceId)
        Assert.Equal("message/send", row.Method)
        Assert.Equal(Some(DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero).AddTicks(1234560L)), row.At)
    | Error e -> failwith e.Reason

[<Fact>]
let ``example: a peer message joins its text parts and attachments by newlines`` () =
    let r =
        """{"id":"p1","source_id":"9eea0000-0000-4000-8000-0000000000a1","method":"message/send","created_at":"2026-05-01T12:00:00Z","peer_name":"Researcher","request_body":"{\"params\":{\"message\":{\"parts\":[{\"type\":\"text\",\"text\":\"part one\"},{\"kind\":\"file\",\"file\":{\"name\":\"r.pdf\",\"uri\":\"workspace:/r.pdf\"}},{\"kind\":\"text\",\"text\":\"part two\"}]}}}"}"""
    match Activity.parseRow (Json.tryParse r).Value with
    | Ok row ->
        Assert.Equal("part one\n[attachment: r.pdf workspace:/r.pdf]\npart two", row.Text)
        Assert.Equal("9eea0000-0000-4000-8000-0000000000a1", row.SourceId)
        Assert.Equal(Some "Researcher", row.PeerName)
    | Error e -> failwith e.Reason

[<Fact>]
let ``example: a lone surrogate, a wrong type or an absurd size is a skipped row that keeps its id, seq and time`` () =
    let surrogate =
        """{"id":"s1","seq":5,"created_at":"2026-05-01T12:00:00Z","request_body":{"params":{"message":{"parts":[{"kind":"text","text":"\ud800"}]}}}}"""
    let huge = $"""{{"id":"h1","seq":6,"created_at":"2026-05-01T12:00:01Z","request_body":{{"parts":[{{"kind":"text","text":"{String('x', Activity.maxTextChars + 1)}"}}]}}}}"""
    for text, id, seq in [ surrogate, "s1", 5L; huge, "h1", 6L ] do
        match Activity.parseRow (Json.tryParse text).Value with
        | Ok _ -> failwith $"row {id} was accepted"
        | Error skip ->
            Assert.Equal(Some id, skip.Id)
            Assert.Equal(Some seq, skip.Seq)
            Assert.True(skip.At.IsSome)
    match Activity.parseRow (Json.str "not a row") with
    | Error skip -> Assert.Equal(None, skip.Id)
    | Ok _ -> failwith "a string was accepted as a row"
    // A page with such a row still parses: only the row is skipped.
    match Activity.parsePage ("[" + surrogate + "," + canvasHiRow + "]") with
    | Ok rows -> Assert.Equal(2, rows.Length)
    | Error e -> failwith e

[<Fact>]
let ``rule: Json lookups never throw, also on strings that do not decode`` () =
    let node = (Json.tryParse """{"a":"\ud800","b":["\udfff"]}""").Value
    Assert.Equal(None, Json.stringProp "a" node)
    Assert.Equal(None, Json.prop "a" node |> Option.bind Json.asScalarText)
    Assert.False(Json.decodes node)
    Assert.True(Json.decodes (Json.tryParse """{"a":"ok","b":[1,"x"]}""").Value)

[<Fact>]
let ``rule: formatTime round-trips through parseTime to the tick`` () =
    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen (Gen.choose64 (0L, 3_000_000_000_000_000L))) (fun ticks ->
            let t = DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks ticks
            Activity.parseTime (Activity.formatTime t) = Some t)
    )
