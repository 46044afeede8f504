module Molecule.Tests.Core.ChannelTests

open Molecule.Protocol

open System
open System.Text.Json
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Strings that stress meta hygiene: nulls, empties, line breaks, control chars, unicode, long.
let private nastyString: Gen<string> =
    Gen.frequency
        [ 6, ArbMap.defaults |> ArbMap.generate<string>
          3, Gen.elements [ null; ""; " "; "\n"; "a\r\nb"; "x\ty"; "\u2028"; "\u0000z"; "ünï🙂"; "source"; "1"; "null" ]
          1, Gen.choose (0, 2000) |> Gen.map (fun n -> String('q', n) + "\n" + String('r', n)) ]

let private genMessage: Gen<InboxMessage> =
    gen {
        let! id = nastyString
        let! text = nastyString
        let! peer = nastyString
        let! kind = Gen.elements [ CanvasUser; PeerAgent ]
        let! meth = nastyString
        let! ts = nastyString

        return
            { ActivityId = id
              Seq = None
              Text = text
              PeerId = peer
              Kind = kind
              Method = meth
              CreatedAt = ts }
    }

let private genKey: Gen<string> =
    Gen.oneof
        [ nastyString
          Gen.elements [ "source"; "Source"; "SOURCE"; "kind"; "peer_id"; "peer-id"; "peer id"; "ts"; "a.b"; "ключ" ] ]

let private genEvent: Gen<ChannelEvent> =
    gen {
        let! content = nastyString
        let! meta = Gen.listOf (Gen.zip genKey nastyString) |> Gen.scaleSize (fun n -> min n 20)
        return { Content = content; Meta = meta }
    }

let private arbMessage = Arb.fromGen genMessage
let private arbEvent = Arb.fromGen genEvent

/// The `meta` object of the params, re-read from the serialized text (what goes on the wire).
let private wireMeta (p: JsonObject) : (string * JsonElement) list =
    use doc = JsonDocument.Parse(Json.compact p)
    let meta = doc.RootElement.GetProperty "meta"
    [ for prop in meta.EnumerateObject() -> prop.Name, prop.Value.Clone() ]

let private keyPattern = Regex("^[A-Za-z0-9_]+$")

let private paramsOfBoth (m: InboxMessage) (e: ChannelEvent) =
    [ Channel.toParams (Channel.event m); Channel.toParams e ]

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: channel meta values are always strings`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.zip (arbMessage, arbEvent)) (fun (m, e) ->
            let fromEvent = (Channel.event m).Meta |> List.forall (fun (_, v) -> not (isNull v))

            let onWire =
                paramsOfBoth m e
                |> List.forall (fun p ->
                    wireMeta p
                    |> List.forall (fun (_, v) ->
                        v.ValueKind = JsonValueKind.String
                        && not (v.GetString().Contains '\n')
                        && not (v.GetString().Contains '\r')))

            fromEvent && onWire)
    )

[<Fact>]
let ``rule: channel meta keys match [A-Za-z0-9_] and are unique`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.zip (arbMessage, arbEvent)) (fun (m, e) ->
            let keysOk (keys: string list) =
                keys |> List.forall keyPattern.IsMatch && (List.distinct keys).Length = keys.Length

            let eventKeys = (Channel.event m).Meta |> List.map fst
            let wire = paramsOfBoth m e |> List.map (wireMeta >> List.map fst)
            keysOk eventKeys && List.forall keysOk wire)
    )

[<Fact>]
let ``rule: channel meta never has a source key`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.zip (arbMessage, arbEvent)) (fun (m, e) ->
            let noSource keys =
                keys |> List.forall (fun (k: string) -> not (k.Equals("source", StringComparison.OrdinalIgnoreCase)))

            noSource ((Channel.event m).Meta |> List.map fst)
            && (paramsOfBoth m e |> List.forall (wireMeta >> List.map fst >> noSource)))
    )

[<Fact>]
let ``rule: content is the message text`` () =
    Check.One(
        cfg 300,
        Prop.forAll arbMessage (fun m ->
            let ev = Channel.event m
            let expected = if isNull m.Text then "" else m.Text
            let p = Channel.toParams ev
            ev.Content = expected && Json.stringProp "content" p = Some expected)
    )

[<Fact>]
let ``rule: channel meta carries the message fields`` () =
    let oneLine (s: string) =
        String(s.ToCharArray() |> Array.map (fun c -> if Char.IsControl c || c = '\u2028' || c = '\u2029' then ' ' else c))

    Check.One(
        cfg 300,
        Prop.forAll arbMessage (fun m ->
            let meta = (Channel.event m).Meta |> Map.ofList

            let field key (value: string) =
                if String.IsNullOrEmpty value then
                    not (meta.ContainsKey key)
                else
                    meta.TryFind key = Some(oneLine value)

            let kind = if m.Kind = CanvasUser then "canvas_user" else "peer_agent"

            meta.TryFind "kind" = Some kind
            && field "peer_id" m.PeerId
            && field "method" m.Method
            && field "activity_id" m.ActivityId
            && field "ts" m.CreatedAt
            && meta.Count <= 5)
    )

[<Fact>]
let ``rule: instructions mention the poll timeout`` () =
    Check.One(
        cfg 100,
        Prop.forAll (Arb.fromGen (Gen.choose (0, 60))) (fun t ->
            let text = Channel.instructions t

            if t = 0 then
                text.Contains "push only" && not (text.Contains "wait_for_message(timeout_secs=")
            else
                text.Contains $"wait_for_message(timeout_secs={t})"
                && not (text.Contains "push only")
                && (Regex.Matches(text, @"wait_for_message\(timeout_secs=(\d+)\)")
                    |> Seq.forall (fun x -> x.Groups[1].Value = string t)))
    )

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``example: Appendix B canvas "hi" message gives the exact params`` () =
    let msg =
        { ActivityId = "5f0c2a8e-3b1d-4c6e-9a7f-0d1e2f3a4b5c"
          Seq = None
          Text = "hi"
          PeerId = ""
          Kind = CanvasUser
          Method = "message/send"
          CreatedAt = "2026-05-02T10:11:12.345678Z" }

    let json = Channel.toParams (Channel.event msg) |> Json.compact

    Assert.Equal(
        """{"content":"hi","meta":{"kind":"canvas_user","method":"message/send","activity_id":"5f0c2a8e-3b1d-4c6e-9a7f-0d1e2f3a4b5c","ts":"2026-05-02T10:11:12.345678Z"}}""",
        json
    )

[<Fact>]
let ``example: peer message keeps peer_id and multi-line content verbatim`` () =
    let msg =
        { ActivityId = "a1"
          Seq = None
          Text = "line 1\nline \"2\"\t<end>"
          PeerId = "0b7e7a2c-1111-4222-8333-944445555666"
          Kind = PeerAgent
          Method = "message/send"
          CreatedAt = "2026-05-02T10:11:12Z" }

    let ev = Channel.event msg
    Assert.Equal(msg.Text, ev.Content)

    Assert.Equal<(string * string) list>(
        [ "kind", "peer_agent"
          "peer_id", "0b7e7a2c-1111-4222-8333-944445555666"
          "method", "message/send"
          "activity_id", "a1"
          "ts", "2026-05-02T10:11:12Z" ],
        ev.Meta
    )

[<Fact>]
let ``example: toParams drops source, fixes keys, flattens values, first key wins`` () =
    let ev =
        { Content = "x"
          Meta = [ "source", "molecule"; "peer-id", "a\r\nb"; "peer_id", "dup"; "Source", "again" ] }

    Assert.Equal("""{"content":"x","meta":{"peer_id":"a  b"}}""", Channel.toParams ev |> Json.compact)

[<Fact>]
let ``example: sanitizeKey`` () =
    Assert.Equal("peer_id", Channel.sanitizeKey "peer-id")
    Assert.Equal("a_b_c", Channel.sanitizeKey "a.b c")
    Assert.Equal("Kind_9", Channel.sanitizeKey "Kind_9")
    Assert.Equal("____", Channel.sanitizeKey "ключ")
    Assert.Equal("_", Channel.sanitizeKey "")
    Assert.Equal("_", Channel.sanitizeKey null)

[<Fact>]
let ``example: instructions cover push, poll, fields, routing, pop and safety`` () =
    let text = Channel.instructions 2

    for needle in
        [ "wait_for_message(timeout_secs=2)"
          "--channels server:<name>"
          "--dangerously-load-development-channels server:<name>"
          "<channel source="
          "canvas_user"
          "peer_agent"
          "peer_id"
          "activity_id"
          "send_message_to_user"
          "delegate_task(workspace_id=<peer_id>"
          "delegate_task_async"
          "inbox_pop(activity_id="
          "inbox_peek"
          "untrusted"
          "approval" ] do
        Assert.True(text.Contains needle, $"instructions should mention {needle}")

[<Fact>]
let ``example: instructions with polling disabled say push only and how to enable channels`` () =
    let text = Channel.instructions 0
    Assert.Contains("push only", text)
    Assert.Contains("--dangerously-load-development-channels", text)
    Assert.Contains("MOLECULE_MCP_POLL_TIMEOUT_SECS", text)
    Assert.DoesNotContain("wait_for_message(timeout_secs=", text)
