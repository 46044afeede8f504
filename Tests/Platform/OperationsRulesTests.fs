/// Properties of what operators read (Rules/Operations.fs, Rules/Exposition.fs): the instance's name, readiness,
/// route labels, what an acknowledgement delivered, and the Prometheus text — read back by the test's own strict
/// reader (PrometheusText), never by the writer.
module Molecule.Tests.Platform.OperationsRulesTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
module P = Molecule.Tests.Platform.PrometheusText

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 4, 1, 10, 0, 0, TimeSpan.Zero)

/// Any text, control characters, quotes, backslashes and line feeds included.
let private anyText =
    Gen.oneof
        [ ArbMap.defaults |> ArbMap.generate<string> |> Gen.map (fun s -> if isNull s then "" else s)
          Gen.elements [ "a\"b"; "back\\slash"; "two\nlines"; "\\n"; "\"\""; "é ü 中"; "" ] ]

[<Fact>]
let ``rule: a label value and a help text come back from the exposition text exactly as given`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip anyText anyText)) (fun (label, help) ->
            let text =
                Exposition.render
                    [ { Name = "t_total"
                        Help = help
                        Kind = Exposition.Kind.Counter
                        Samples = [ Exposition.sample [ "v", label ] 3.0 ] } ]

            match P.parse text with
            | [ f ] -> f.Help = Some help && f.Samples = [ { Name = "t_total"; Labels = Map [ "v", label ]; Value = 3.0 } ]
            | other -> failwith $"{other.Length} families")
    )

[<Fact>]
let ``rule: a histogram's buckets are cumulative, its +Inf bucket and _count are the observations and _sum their sum`` () =
    let values = Gen.listOf (Gen.choose (0, 5000) |> Gen.map (fun ms -> float ms / 1000.0))

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen values) (fun observed ->
            let h = observed |> List.fold (fun h v -> Exposition.Histogram.observe v h) (Exposition.Histogram.empty Metrics.lagBounds)

            let families =
                P.parse (
                    Exposition.render
                        [ { Name = "lag_seconds"; Help = "h"; Kind = Exposition.Kind.Histogram; Samples = Exposition.histogramSamples [] h } ]
                )

            let bucket (le: string) = P.value families "lag_seconds_bucket" [ "le", le ]

            bucket "+Inf" = float observed.Length
            && P.value families "lag_seconds_count" [] = float observed.Length
            && abs (P.value families "lag_seconds_sum" [] - List.sum observed) < 1e-6
            && Metrics.lagBounds
               |> List.forall (fun b ->
                   bucket (Exposition.number b) = float (observed |> List.filter (fun v -> v <= b) |> List.length)))
    )

[<Fact>]
let ``rule: numbers are written as Prometheus reads them`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (ArbMap.defaults |> ArbMap.generate<float>)) (fun v ->
            let text = Exposition.number v
            let back = P.value (P.parse ("# TYPE g gauge\ng " + text + "\n")) "g" []
            (Double.IsNaN v && Double.IsNaN back) || back = v)
    )
    Assert.Equal("+Inf", Exposition.number Double.PositiveInfinity)

let private inboxRow (seq: int64) (kind: string) (age: float) : ActivityRow =
    { Activity.row (ActivityId(Guid.NewGuid())) (t0.AddSeconds(-age)) (WorkspaceId(Guid.NewGuid())) kind with Seq = seq }

[<Fact>]
let ``rule: an ack delivers exactly the inbox rows between the old and the new floor, each with its non-negative lag`` () =
    let rowsGen =
        gen {
            let! n = Gen.choose (0, 20)
            let! kinds = Gen.listOfLength n (Gen.elements [ "a2a_receive"; "a2a_send"; "agent_log" ])
            let! ages = Gen.listOfLength n (Gen.choose (-5, 600))
            let! before = Gen.elements [ None; Some 0L; Some 3L; Some 7L ]
            let! after = Gen.choose (0, 25)
            return [ for i, (k, a) in List.indexed (List.zip kinds ages) -> inboxRow (int64 (i + 1)) k (float a) ], before, int64 after
        }

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen rowsGen) (fun (rows, before, after) ->
            let lags = Operations.delivered before after t0 rows

            let expected =
                rows
                |> List.filter (fun r -> r.ActivityType = "a2a_receive" && r.Seq <= after && (before |> Option.forall (fun b -> r.Seq > b)))

            lags.Length = expected.Length
            && List.forall (fun (l: TimeSpan) -> l >= TimeSpan.Zero) lags
            && lags = [ for r in expected -> max TimeSpan.Zero (t0 - r.CreatedAt) ])
    )

[<Fact>]
let ``rule: ready only when the database answers at this binary's schema version`` () =
    let probeGen =
        Gen.oneof [ Gen.choose (0, 6) |> Gen.map Ok; Gen.constant (Error "connection refused") ]

    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen (Gen.zip probeGen (Gen.choose (1, 5)))) (fun (probe, expected) ->
            let decision = Operations.readiness probe expected
            let reply = Operations.ready "i1" "sqlite" decision
            let isReady = probe = Ok expected
            (reply.Code = 200) = isReady && (reply.Code = 503) = not isReady && reply.Body.Contains "\"instance\":\"i1\"")
    )

    Assert.Contains("migrations not applied", (Operations.ready "i" "postgres" (Operations.readiness (Ok 2) 3)).Body)
    Assert.Contains("newer than this platform", (Operations.ready "i" "postgres" (Operations.readiness (Ok 4) 3)).Body)
    Assert.Contains("database unreachable: connection refused", (Operations.ready "i" "postgres" (Operations.readiness (Error "connection refused") 3)).Body)

[<Fact>]
let ``rule: an instance is named as given (trimmed, printable, at most 64 characters), else host-pid`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.optionOf anyText) (Gen.choose (1, 99999)))) (fun (given, pid) ->
            let name = Operations.instanceName given "host" pid
            let cleaned = given |> Option.map (fun g -> String(g.Trim() |> Seq.filter (Char.IsControl >> not) |> Seq.truncate 64 |> Array.ofSeq))

            match cleaned with
            | Some c when c <> "" -> name = c
            | _ -> name = $"host-{pid}")
    )

[<Fact>]
let ``rule: a request's labels are its route template and a known method, never its raw path`` () =
    Assert.Equal("/workspaces/{id}/a2a", Operations.routeLabel (Some "/workspaces/{id}/a2a"))
    Assert.Equal("unmatched", Operations.routeLabel (Some "{*path:nonfile}"))
    Assert.Equal("unmatched", Operations.routeLabel None)

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen anyText) (fun m ->
            let label = Operations.methodLabel m
            label = "other" || label = m.ToUpperInvariant())
    )

    Assert.Equal("other", Operations.methodLabel "BREW")
    Assert.Equal("GET", Operations.methodLabel "get")
