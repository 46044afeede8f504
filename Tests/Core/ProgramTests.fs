/// The `program { }` builder (Tools/Program.fs): steps run in order, a step that ends the call skips the rest, and
/// what each step learnt is kept in order — however the program is split into parts.
module Molecule.Tests.Core.ProgramTests

open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Core.ToolKit
open Molecule.Tests.Core.ApiTests
open Molecule.Tests.Core.DispatchTests

type private Step =
    | Learn of int
    | Ask of int
    | Wait of int
    | Check of int
    | End of int

let private learnt (n: int) = PeerNames [ peerOf $"p{n}", "x" ]
let private request (n: int) = { Api.workspace cfg with Url = $"https://x.example/{n}" }

/// A part of a program made of the steps (it goes on with unit unless a step ends the call).
let rec private part (steps: Step list) : Program<Result<unit, ToolOutput>> =
    program {
        match steps with
        | [] -> return ()
        | Learn n :: rest ->
            do! Program.observe [ learnt n ]
            return! part rest
        | Ask n :: rest ->
            let! _ = Program.send (request n)
            return! part rest
        | Wait n :: rest ->
            let! _ = Program.pause (float n)
            return! part rest
        | Check n :: rest ->
            let! checks = Program.checkFiles [ $"/f{n}" ]
            if checks.IsEmpty then do! refuse "no checks"
            return! part rest
        | End n :: _ -> return! Program.stopWith (failure $"end {n}") [ learnt (1000 + n) ]
    }

let private stepGen =
    Gen.oneof
        [ Gen.choose (0, 9) |> Gen.map Learn
          Gen.choose (0, 9) |> Gen.map Ask
          Gen.choose (0, 9) |> Gen.map Wait
          Gen.choose (0, 9) |> Gen.map Check
          Gen.choose (0, 9) |> Gen.map End ]

[<Fact>]
let ``rule: a program runs its steps in order until one ends the call, and keeps what each learnt in order`` () =
    let scenario = Gen.zip (Gen.listOf stepGen |> Gen.map (List.truncate 30)) (Gen.choose (0, 30))

    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 500,
        Prop.forAll (Arb.fromGen scenario) (fun (steps, split) ->
            // the same steps as one part, or as two parts one after the other
            let first, second = List.splitAt (min split steps.Length) steps
            let whole =
                program {
                    do! part first
                    do! part second
                    return ok "done"
                }
                |> Program.answer
            let run = interpret { Http = (fun _ -> Reply(200, "{}")); Files = allFilesOk } whole
            let ran = steps |> List.takeWhile (function End _ -> false | _ -> true)
            let ended = steps |> List.tryPick (function End n -> Some n | _ -> None)

            run.Requests = (ran |> List.choose (function Ask n -> Some(request n) | _ -> None))
            && run.FileChecks = (ran |> List.choose (function Check n -> Some [ $"/f{n}" ] | _ -> None))
            && run.Observations
               = (ran |> List.choose (function Learn n -> Some(learnt n) | _ -> None))
                 @ (ended |> Option.map (fun n -> learnt (1000 + n)) |> Option.toList)
            && run.Output
               = (match ended with
                  | Some n -> failure $"end {n}"
                  | None -> ok "done"))
    )

[<Fact>]
let ``rule: a continuation is pure: fed the same answer twice, it gives the same rest of the program`` () =
    // A continuation only builds the rest of the program (no state of its own), so the agent may drop one (a
    // cancelled call) and nothing of it has happened.
    let program = part [ Learn 1; Ask 2; Learn 3; Wait 4; Ask 5 ] |> Program.map (fun _ -> ok "done")
    match program with
    | Call(_, k) ->
        let run () = interpret { Http = (fun _ -> Reply(200, "{}")); Files = allFilesOk } (k (Reply(200, "{}")))
        Assert.Equal(run (), run ())
    | _ -> failwith "expected the first request"
