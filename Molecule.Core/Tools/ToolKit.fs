/// What every tool program shares: results, the platform's error messages, the uniform handling of 410 /
/// transport / timeout answers, and the tool context.
module Molecule.Core.ToolKit

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Molecule.Protocol

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// A UUID-shaped id derived from the call's nonce (a program needing several fresh ids takes them from one).
let derivedId (nonce: string) (label: string) : string =
    let hash = SHA256.HashData(Encoding.UTF8.GetBytes(label + ":" + (if isNull nonce then "" else nonce)))
    Guid(ReadOnlySpan<byte>(hash, 0, 16)).ToString("D")

let ok (text: string) : Program = Done({ Text = text; IsError = false }, [])
let okWith (text: string) (obs: Observation list) : Program = Done({ Text = text; IsError = false }, obs)
let fail (text: string) : Program = Done({ Text = text; IsError = true }, [])

let inv (n: int) = n.ToString(CultureInfo.InvariantCulture)

let secs (f: float) =
    if Double.IsFinite f then f.ToString("0.###", CultureInfo.InvariantCulture) else "?"

let trunc (max: int) (s: string) = Api.truncate max s

let short (s: string) =
    let s = if isNull s then "" else s.Trim()
    if s.Length > 200 then trunc 200 s + "…" else s

let isBlank (s: string) = String.IsNullOrWhiteSpace s

/// The message of a platform error body: `{"error":"…"}`, `{"error":{"message":…}}`, `{"message":…}`,
/// else the first 200 characters of the raw body ("" for an empty body).
let platformMessage (body: string) : string =
    match Json.tryParse body with
    | Some node ->
        let fromError =
            match Json.prop "error" node with
            | Some e ->
                match Json.asString e with
                | Some s -> Some s
                | None -> Json.stringProp "message" e
            | None -> None

        match fromError |> Option.orElse (Json.stringProp "message" node) with
        | Some m when not (isBlank m) -> m.Trim()
        | _ -> short body
    | None -> short (if isNull body then "" else body)

let withMessage (msg: string) = if msg = "" then "" else $": {msg}"

/// Why a 401/403 happened and what to do (no "Error:" prefix).
let tokenRejectedDetail (status: int) (msg: string) =
    $"the platform rejected this workspace's token (HTTP {inv status}{withMessage msg}). The workspace may have been deleted on the platform. {Texts.regenerate}"


let isTokenProblem (status: int) (msg: string) =
    status = 401
    || (status = 403 && (msg = "" || msg.Contains("token", StringComparison.OrdinalIgnoreCase)))

/// What went wrong for a non-success HTTP answer (no "Error:" prefix).
let httpDetail (status: int) (body: string) : string =
    let msg = platformMessage body

    if isTokenProblem status msg then
        tokenRejectedDetail status msg
    else
        $"platform answered HTTP {inv status}{withMessage msg}"

/// Error text for a non-success HTTP answer.
let httpFailure (status: int) (body: string) : string = "Error: " + httpDetail status body

let transportFailure (ctx: ToolContext) (message: string) =
    $"Error: could not reach the platform at {ctx.Config.PlatformUrl}: {message}"

let timeoutFailure (after: float) =
    $"Error: the platform did not answer within {secs after} s."

/// The removal facts from a 410 body {id, removed_at, hint}.
let removedInfo (ctx: ToolContext) (body: string) : RemovedInfo = Removed.parse ctx.Config.WorkspaceId.Value body

let removedStep (ctx: ToolContext) (body: string) : Program =
    let info = removedInfo ctx body
    Done({ Text = Removed.text info; IsError = true }, [ WorkspaceRemoved info ])

/// A 410 that names another workspace (the peer) is about that peer, not about this workspace.
let namesPeer (ctx: ToolContext) (peer: string) (body: string) : bool =
    match Json.tryParse body |> Option.bind (Json.stringProp "id") with
    | Some id ->
        id.Equals(peer, StringComparison.OrdinalIgnoreCase)
        && not (id.Equals(ctx.Config.WorkspaceId.Value, StringComparison.OrdinalIgnoreCase))
    | None -> false

/// Runs `first`, then the program `next` makes of its result (observations of both are kept).
let rec andThen (next: ToolOutput * Observation list -> Program) (first: Program) : Program =
    match first with
    | Done(output, observations) -> next (output, observations)
    | Call(request, k) -> Call(request, k >> andThen next)
    | CheckFiles(paths, k) -> CheckFiles(paths, k >> andThen next)
    | Pause(seconds, k) -> Pause(seconds, k >> andThen next)

/// Runs a platform program unless the workspace is already known to be removed.
let platform (ctx: ToolContext) (program: unit -> Program) : Program =
    match ctx.Removed, ctx.Degraded with
    | Some info, _ -> fail (Removed.text info)
    | None, Some line -> fail line
    | None, None -> program ()

/// One request whose 410 / transport / timeout outcomes are handled uniformly; `k` sees replies.
let call (ctx: ToolContext) (req: Request) (k: int -> string -> Program) : Program =
    Call(
        req,
        fun resp ->
            match resp with
            | Reply(410, body) -> removedStep ctx body
            | Reply(status, body) -> k status (if isNull body then "" else body)
            | TransportError m -> fail (transportFailure ctx m)
            | TimedOut s -> fail (timeoutFailure s)
    )

let is2xx status = status >= 200 && status < 300

