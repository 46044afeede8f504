/// get_runtime_identity, update_agent_card, broadcast_message and chat_history (addendum §2.6–2.8, §2.11; P31).
module Molecule.Core.TeamTools

open System
open System.Text.Json.Nodes
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// get_runtime_identity
// ---------------------------------------------------------------------------------------------

/// The env values the runtime was started with (2-space JSON, the reference's keys and order). No request, so it
/// answers even when the workspace is deleted or its token rejected.
let runtimeIdentity (ctx: ToolContext) : Program<ToolOutput> =
    let i = ctx.Config.Identity
    Json.obj
        [ "model", Json.str i.Model
          "model_provider", Json.str i.ModelProvider
          "molecule_model", Json.str i.MoleculeModel
          "anthropic_base_url", Json.str i.AnthropicBaseUrl
          "tier", Json.str i.Tier
          "workspace_id", Json.str ctx.Config.WorkspaceId.Value
          "runtime", Json.str i.Runtime ]
    |> Json.indented
    |> fun text -> Done(ok text, [])

// ---------------------------------------------------------------------------------------------
// update_agent_card
// ---------------------------------------------------------------------------------------------

/// The reference's answers are JSON objects (2-space indent); a failure is flagged.
let private cardAnswer (success: bool) (fields: (string * JsonNode) list) : ToolOutput =
    { Text = Json.indented (Json.obj (("success", Json.bool success) :: fields)); IsError = not success }

let cardNotObject = "card must be a JSON object (dict)"

/// What update_agent_card answers for the platform's reply (a 410 aside).
let private cardUpdated (response: Response) : ToolOutput =
    match response with
    | Reply(s, body) when is2xx s ->
        let status = Json.tryParse body |> Option.bind (Json.stringProp "status") |> Option.filter (isBlank >> not)
        cardAnswer true [ "status", Json.str (defaultArg status "updated") ]
    | Reply(s, body) -> cardAnswer false [ "status_code", Json.num s; "error", Json.str (platformMessage body) ]
    | TransportError m -> cardAnswer false [ "error", Json.str $"network error: {m}" ]
    | TimedOut t -> cardAnswer false [ "error", Json.str $"network error: no answer within {secs t} s" ]

/// POST /registry/update-card with THIS workspace's token (the reference sent the token file's, or none: P31).
/// `card`: the card object as compact JSON (None: the argument was not an object).
let updateAgentCard (ctx: ToolContext) (card: string option) : Program<ToolOutput> =
    match card with
    | None -> Done(cardAnswer false [ "error", Json.str cardNotObject ], [])
    | Some card ->
        platform ctx (program {
            match! Program.send (Api.updateCard ctx.Config card) with
            | Reply(410, body) -> return! removed ctx body
            | response -> return cardUpdated response
        })

// ---------------------------------------------------------------------------------------------
// broadcast_message
// ---------------------------------------------------------------------------------------------

let broadcastDisabled = "Error: broadcast ability not enabled."

/// broadcast_message refused: the workspace lacks the ability (the platform's hint after it).
let private broadcastRefused (hint: string option) : ToolOutput =
    match hint |> Option.filter (isBlank >> not) with
    | Some hint -> failure $"{broadcastDisabled} {hint.Trim()}"
    | None -> failure broadcastDisabled

let broadcastMessage (ctx: ToolContext) (message: string) : Program<ToolOutput> =
    platform ctx (program {
        if isBlank message then do! refuse "Error: message is required"
        let! status, body = call ctx (Api.broadcast ctx.Config message)
        let node = Json.tryParse body
        let field name = node |> Option.bind (Json.prop name) |> Option.bind Json.asScalarText
        if is2xx status then
            let delivered = defaultArg (field "delivered") "?"
            return ok $"Broadcast sent to {delivered} workspace(s)"
        elif status = 403 && field "error" = Some "broadcast_disabled" then
            return broadcastRefused (field "hint")
        else
            return failure (httpFailure status body)
    })

// ---------------------------------------------------------------------------------------------
// chat_history
// ---------------------------------------------------------------------------------------------

/// The rows this workspace shares with a peer, oldest first, as the platform's JSON (`[]` when there are none).
let chatHistory (ctx: ToolContext) (peer: PeerId) (limit: int) (before: string option) : Program<ToolOutput> =
    platform ctx (program {
        let! status, body = call ctx (Api.chatHistory ctx.Config peer.Value limit before)
        let msg = platformMessage body
        if status = 400 then do! refuse ("Error: " + (if msg = "" then "bad request" else msg))
        if isTokenProblem status msg then do! refuse (httpFailure status body)
        if not (is2xx status) then do! refuse $"Error: chat_history returned HTTP {inv status}{withMessage msg}"
        match Json.tryParse body |> Option.map Json.asArray with
        | None -> return failure "Error: chat_history response was not JSON"
        | Some None -> return failure "Error: chat_history response was not a list"
        | Some(Some rows) -> return ok (Json.compact (Json.arr (rows |> List.rev |> List.map Json.clone)))
    })
