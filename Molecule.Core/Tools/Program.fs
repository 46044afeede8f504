/// Tool programs written top to bottom, as the steps they take:
///
///     program {
///         let! status, body = call ctx (Api.delegations ctx.Config)
///         if not (is2xx status) then do! refuse "Error: …"
///         return ok body
///     }
///
/// A part of a tool program is a `Program<Result<'a, ToolOutput>>`: it goes on with a value (`Ok`), or it ends the
/// call with the tool's answer (`Error`: a refusal, a failed request) and nothing after it runs. `answer` makes the
/// whole the tool's `Program<ToolOutput>`. Everything here is pure: a continuation only builds the rest of the program.
module Molecule.Core.Program

/// The program with its end (value and what was learnt) changed by `f`.
let rec mapEnd (f: 'a * Observation list -> 'b * Observation list) (program: Program<'a>) : Program<'b> =
    match program with
    | Done(value, learnt) -> Done(f (value, learnt))
    | Call(request, k) -> Call(request, k >> mapEnd f)
    | CheckFiles(paths, k) -> CheckFiles(paths, k >> mapEnd f)
    | Pause(seconds, k) -> Pause(seconds, k >> mapEnd f)

let map (f: 'a -> 'b) (program: Program<'a>) : Program<'b> = mapEnd (fun (value, learnt) -> f value, learnt) program

/// Runs `program`, then the program `next` makes of its value; what both learnt is kept, in order.
let rec bind (next: 'a -> Program<'b>) (program: Program<'a>) : Program<'b> =
    match program with
    | Done(value, []) -> next value
    | Done(value, learnt) -> next value |> mapEnd (fun (v, later) -> v, learnt @ later)
    | Call(request, k) -> Call(request, k >> bind next)
    | CheckFiles(paths, k) -> CheckFiles(paths, k >> bind next)
    | Pause(seconds, k) -> Pause(seconds, k >> bind next)

// ---------------------------------------------------------------------------------------------
// Parts
// ---------------------------------------------------------------------------------------------

/// Ends the call with this answer: nothing after it runs.
let stop (answer: ToolOutput) : Program<Result<'a, ToolOutput>> = Done(Result.Error answer, [])

/// Ends the call with this answer and what was learnt from it.
let stopWith (answer: ToolOutput) (learnt: Observation list) : Program<Result<'a, ToolOutput>> = Done(Result.Error answer, learnt)

/// Tells the agent what the call learnt (kept whatever the call answers later).
let observe (learnt: Observation list) : Program<Result<unit, ToolOutput>> = Done(Ok(), learnt)

/// The part, then what it learnt joined by `learnt`, whatever the part ends with (its value or the call's answer).
let observeAfter (learnt: Observation list) (part: Program<'a>) : Program<'a> =
    if learnt.IsEmpty then part else part |> mapEnd (fun (ended, before) -> ended, before @ learnt)

/// Sends a request; goes on with the platform's answer, whatever it is.
let send (request: Request) : Program<Result<Response, ToolOutput>> = Call(request, fun response -> Done(Ok response, []))

/// Checks files on the host; goes on with one result per path.
let checkFiles (paths: string list) : Program<Result<FileCheck list, ToolOutput>> =
    CheckFiles(paths, fun checks -> Done(Ok checks, []))

/// Waits; goes on with the agent's uptime when the wait is over.
let pause (seconds: float) : Program<Result<float, ToolOutput>> = Pause(seconds, fun uptime -> Done(Ok uptime, []))

/// The tool's program: the answer the parts returned, or the one they stopped with.
let answer (part: Program<Result<ToolOutput, ToolOutput>>) : Program<ToolOutput> =
    part
    |> map (fun ended ->
        match ended with
        | Ok output
        | Result.Error output -> output)

/// `program { }`: `let!` and `do!` run a part and go on with its value unless it ended the call; `match!` matches on
/// a part's value; `if … then do! refuse …` ends the call there.
type Builder() =
    member _.Return(value: 'a) : Program<Result<'a, ToolOutput>> = Done(Ok value, [])
    member _.ReturnFrom(part: Program<Result<'a, ToolOutput>>) = part

    member _.Bind(part: Program<Result<'a, ToolOutput>>, next: 'a -> Program<Result<'b, ToolOutput>>) : Program<Result<'b, ToolOutput>> =
        part
        |> bind (fun ended ->
            match ended with
            | Ok value -> next value
            | Result.Error output -> Done(Result.Error output, []))

    member _.Zero() : Program<Result<unit, ToolOutput>> = Done(Ok(), [])
    member _.Delay(rest: unit -> Program<Result<'a, ToolOutput>>) = rest
    member _.Run(rest: unit -> Program<Result<'a, ToolOutput>>) = rest ()

    member this.Combine(part: Program<Result<unit, ToolOutput>>, rest: unit -> Program<Result<'b, ToolOutput>>) =
        this.Bind(part, rest)
