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
let runtimeIdentity (ctx: ToolContext) : Program =
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
    |> ok

// ---------------------------------------------------------------------------------------------
// update_agent_card
// ---------------------------------------------------------------------------------------------

/// The reference's answers are JSON objects (2-space indent); a failure is flagged.
let private cardAnswer (success: bool) (fields: (string * JsonNode) list) : Program =
    Done({ Text = Json.indented (Json.obj (("success", Json.bool success) :: fields)); IsError = not success }, [])

let cardNotObject = "card must be a JSON object (dict)"

/// POST /registry/update-card with THIS workspace's token (the reference sent the token file's, or none: P31).
let updateAgentCard (ctx: ToolContext) (cardJson: string) : Program =
    match Json.tryParse cardJson with
    | Some(:? JsonObject as card) ->
        platform ctx (fun () ->
            Call(
                Api.updateCard ctx.Config card,
                fun resp ->
                    match resp with
                    | Reply(410, body) -> removedStep ctx body
                    | Reply(s, body) when is2xx s ->
                        let status =
                            Json.tryParse body |> Option.bind (Json.stringProp "status") |> Option.filter (isBlank >> not)
                        cardAnswer true [ "status", Json.str (defaultArg status "updated") ]
                    | Reply(s, body) ->
                        cardAnswer false [ "status_code", Json.num s; "error", Json.str (platformMessage body) ]
                    | TransportError m -> cardAnswer false [ "error", Json.str $"network error: {m}" ]
                    | TimedOut t -> cardAnswer false [ "error", Json.str $"network error: no answer within {secs t} s" ]
            ))
    | _ -> cardAnswer false [ "error", Json.str cardNotObject ]

// ---------------------------------------------------------------------------------------------
// broadcast_message
// ---------------------------------------------------------------------------------------------

let broadcastDisabled = "Error: broadcast ability not enabled."

let broadcastMessage (ctx: ToolContext) (message: string) : Program =
    platform ctx (fun () ->
        if isBlank message then
            fail "Error: message is required"
        else
            call ctx (Api.broadcast ctx.Config message) (fun status body ->
                let node = Json.tryParse body
                let field name = node |> Option.bind (Json.prop name) |> Option.bind Json.asScalarText
                if is2xx status then
                    let delivered = defaultArg (field "delivered") "?"
                    ok $"Broadcast sent to {delivered} workspace(s)"
                elif status = 403 && field "error" = Some "broadcast_disabled" then
                    match field "hint" |> Option.filter (isBlank >> not) with
                    | Some hint -> fail $"{broadcastDisabled} {hint.Trim()}"
                    | None -> fail broadcastDisabled
                else
                    fail (httpFailure status body)))

// ---------------------------------------------------------------------------------------------
// chat_history
// ---------------------------------------------------------------------------------------------

/// The rows this workspace shares with a peer, oldest first, as the platform's JSON (`[]` when there are none).
let chatHistory (ctx: ToolContext) (peer: string) (limit: int) (before: string option) : Program =
    platform ctx (fun () ->
        if isBlank peer then
            fail "Error: peer_id is required"
        else
            call ctx (Api.chatHistory ctx.Config (peer.Trim()) limit before) (fun status body ->
                let msg = platformMessage body
                if status = 400 then
                    fail ("Error: " + (if msg = "" then "bad request" else msg))
                elif isTokenProblem status msg then
                    fail (httpFailure status body)
                elif not (is2xx status) then
                    fail $"Error: chat_history returned HTTP {inv status}{withMessage msg}"
                else
                    match Json.tryParse body with
                    | None -> fail "Error: chat_history response was not JSON"
                    | Some node ->
                        match Json.asArray node with
                        | None -> fail "Error: chat_history response was not a list"
                        | Some rows -> ok (Json.compact (Json.arr (rows |> List.rev |> List.map Json.clone)))))
