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

/// `program { }` (Tools/Program.fs): a tool program written top to bottom.
let program = Program.Builder()

let ok (text: string) : ToolOutput = { Text = text; IsError = false }
let failure (text: string) : ToolOutput = { Text = text; IsError = true }

/// Ends the call with this error: nothing after it runs.
let refuse (text: string) : Program<Result<'a, ToolOutput>> = Program.stop (failure text)

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

/// A 410 about this workspace: the call ends saying so, and the agent learns it.
let removed (ctx: ToolContext) (body: string) : Program<Result<'a, ToolOutput>> =
    let info = removedInfo ctx body
    Program.stopWith (failure (Removed.text info)) [ WorkspaceRemoved info ]

/// A 410 that names another workspace (the peer) is about that peer, not about this workspace.
let namesPeer (ctx: ToolContext) (peer: string) (body: string) : bool =
    match Json.tryParse body |> Option.bind (Json.stringProp "id") with
    | Some id ->
        id.Equals(peer, StringComparison.OrdinalIgnoreCase)
        && not (id.Equals(ctx.Config.WorkspaceId.Value, StringComparison.OrdinalIgnoreCase))
    | None -> false

/// A platform tool's program, unless the workspace is already known to be removed or its token rejected: then the
/// call answers that at once.
let platform (ctx: ToolContext) (part: Program<Result<ToolOutput, ToolOutput>>) : Program<ToolOutput> =
    match ctx.Removed, ctx.Degraded with
    | Some info, _ -> Done(failure (Removed.text info), [])
    | None, Some line -> Done(failure line, [])
    | None, None -> Program.answer part

/// One request whose 410 / transport / timeout outcomes end the call uniformly; goes on with a reply's status and
/// body ("" for none).
let call (ctx: ToolContext) (req: Request) : Program<Result<int * string, ToolOutput>> =
    program {
        match! Program.send req with
        | Reply(410, body) -> return! removed ctx body
        | Reply(status, body) -> return status, (if isNull body then "" else body)
        | TransportError m -> return! refuse (transportFailure ctx m)
        | TimedOut s -> return! refuse (timeoutFailure s)
    }

let is2xx status = status >= 200 && status < 300
