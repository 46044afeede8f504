/// The permission relay (Permissions.fs) in the simulated world: a prompt becomes one permission_relay approval that
/// expires, its decision goes back to the client once — allow for approved, deny for rejected — and never after it
/// expired, whatever duplicates, crashes and delays come between.
module Molecule.Tests.Core.PermissionsTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private prompt (id: string) (w: World) : Permissions.Prompt =
    { RequestId = id
      ToolName = "Bash"
      Description = "run the tests"
      InputPreview = "{\"command\":\"make test\\nexport TOKEN=ghp_" + String('A', 36) + "\"}"
      Now = epoch.AddMilliseconds(float w.Platform.Now) }

let private raisedFor (w: World) =
    w.Platform.Raised |> List.filter (fun (_, body) -> Json.stringProp "source" body = Some "permission_relay")

[<Fact>]
let ``example: a prompt becomes an approval with its tool, a redacted one-line preview and an expiry; its denial goes back once`` () =
    let mutable w = world true
    w <- dispatch (Agent.PermissionRequested(prompt "abcde" w)) w |> settle
    let rid, body = raisedFor w |> List.exactlyOne
    Assert.Equal(Some "approval", Json.stringProp "kind" body)
    Assert.Equal(Some "user", Json.stringProp "recipient_type" body)
    Assert.Contains("Bash", (Json.stringProp "title" body).Value)
    let detail = (Json.stringProp "detail" body).Value
    Assert.Contains("make test", detail)
    Assert.DoesNotContain("ghp_", detail)
    Assert.Equal(Some(Activity.formatTime (epoch.AddMilliseconds(float w.Platform.Now).AddSeconds 600.0)), Json.stringProp "expires_at" body)
    w <- { w with Platform = fst (decide rid "rejected" w.Platform) }
    w <- { w with Platform = fst (decide rid "rejected" w.Platform) }
    w <- settle (tick w) |> settle
    Assert.Equal<(string * string) list>([ "abcde", "deny" ], w.Relayed)
    // the update is the agent's own business: never pushed, not left waiting
    Assert.Empty(waiting w)
    Assert.DoesNotContain(w.Envelopes, fun ev -> ev.Meta |> List.contains ("kind", "request_update"))

[<Fact>]
let ``example: the relay switched off declares nothing and relays nothing`` () =
    let mutable w = worldWith { config with PermissionRelay = false } |> settle
    w <- dispatch (Agent.PermissionRequested(prompt "abcde" w)) w |> settle
    Assert.Empty(raisedFor w)
    Assert.DoesNotContain("PERMISSION PROMPTS", Channel.instructionsWith 2 false)
    Assert.Contains("PERMISSION PROMPTS", Channel.instructionsWith 2 true)

type private Step =
    | Decide of status: string
    | Pass of secs: float
    | Crash

[<Fact>]
let ``rule: a relayed prompt is answered at most once, as its decision says, and never after it expired`` () =
    let step =
        Gen.frequency
            [ 3, Gen.elements [ "approved"; "rejected"; "cancelled" ] |> Gen.map Decide
              3, Gen.elements [ 5.0; 120.0; 400.0; 700.0 ] |> Gen.map Pass
              1, Gen.constant Crash ]
    Check.One(
        quick 150,
        Prop.forAll (Arb.fromGen (Gen.listOf step |> Gen.resize 8)) (fun steps ->
            let mutable w = world true
            w <- dispatch (Agent.PermissionRequested(prompt "qwert" w)) w |> settle
            let asked = w.Platform.Now
            let rid = fst (raisedFor w |> List.exactlyOne)
            let mutable alive = true
            let mutable first: (string * int64) option = None
            for s in steps do
                match s with
                | Decide status ->
                    let p, row = decide rid status w.Platform
                    w <- { w with Platform = p }
                    // (a status other than approved/rejected decides nothing: the next decision still may)
                    if first.IsNone && alive && status <> "cancelled" then first <- Some(status, row.At)
                    w <- settle (tick w) |> settle
                | Pass secs ->
                    w <- { w with Platform = wait (int64 (secs * 1000.0)) w.Platform }
                    w <- advance secs w |> settle
                | Crash ->
                    alive <- false
                    w <- start w |> settle
            let inTime = first |> Option.exists (fun (_, at) -> at - asked <= 600_000L)
            let expected =
                match first with
                | Some("approved", _) when inTime -> [ "qwert", "allow" ]
                | Some("rejected", _) when inTime -> [ "qwert", "deny" ]
                | _ -> []
            (w.Relayed.Length <= 1 |> Prop.label $"answered twice: {w.Relayed}")
            .&. (w.Relayed = expected |> Prop.label $"answered {w.Relayed}, expected {expected}"))
    )
