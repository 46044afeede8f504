/// get_workspace_info and list_peers.
module Molecule.Core.PeersTools

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// get_workspace_info
// ---------------------------------------------------------------------------------------------

let getWorkspaceInfo (ctx: ToolContext) : Program =
    platform ctx (fun () ->
        call ctx (Api.workspace ctx.Config) (fun status body ->
            match status with
            | s when is2xx s ->
                match Json.tryParse body with
                | Some node -> ok (Json.indented node)
                | None -> fail $"Error: the platform answered HTTP {inv s} with a body that is not JSON: {short body}"
            | 404 -> fail $"Error: workspace {ctx.Config.WorkspaceId.Value} not found on the platform"
            | s -> fail (httpFailure s body)))

// ---------------------------------------------------------------------------------------------
// list_peers
// ---------------------------------------------------------------------------------------------

let private skillNames (peer: JsonNode) : string list =
    Json.prop "agent_card" peer |> Option.map A2a.skillNames |> Option.defaultValue []

/// Display name of a peer: the workspace name, or the agent card name when the platform still has
/// the registration placeholder (the id) or nothing (P12).
let private peerName (peer: JsonNode) (id: string) : string =
    let name = Json.stringProp "name" peer |> Option.filter (isBlank >> not)
    let cardName = Json.path [ "agent_card"; "name" ] peer |> Option.bind Json.asString |> Option.filter (isBlank >> not)

    match name, cardName with
    | Some n, Some c when n = id -> c
    | Some n, _ -> n
    | None, Some c -> c
    | None, None -> if id = "" then "(unnamed)" else id

let private peerLine (via: string) (peer: JsonNode) : (string * string) option * string =
    let id = Json.prop "id" peer |> Option.bind Json.asScalarText |> Option.defaultValue ""
    let name = peerName peer id
    let status = Json.stringProp "status" peer |> Option.filter (isBlank >> not) |> Option.defaultValue "unknown"

    let role =
        match Json.stringProp "role" peer with
        | Some r when not (isBlank r) -> $", role: {r}"
        | _ -> ""

    let skills =
        match skillNames peer with
        | [] -> ""
        | xs -> " — skills: [" + String.Join(", ", xs) + "]"

    let pair = if id = "" then None else Some(id, name)
    pair, $"- {name} (ID: {id}, status: {status}{role}{via}){skills}"

let listPeers (ctx: ToolContext) : Program =
    let noPeers (why: string) = fail $"Error: no peers could be listed. {why}"

    platform ctx (fun () ->
        Call(
            Api.peers ctx.Config,
            fun resp ->
                match resp with
                | Reply(410, body) -> removedStep ctx body
                | Reply(s, body) when is2xx s ->
                    match Json.tryParse body |> Option.bind Json.asArray with
                    | Some [] ->
                        ok "You have no peers in the platform registry (no parent, no children and no siblings are registered)."
                    | Some items ->
                        let via = if ctx.Via then $", via: {ctx.Config.WorkspaceId.Value.Substring(0, 8)}" else ""
                        let lines = items |> List.filter (fun p -> Json.asObject p |> Option.isSome) |> List.map (peerLine via)
                        let names = lines |> List.choose fst

                        if lines.IsEmpty then
                            noPeers $"The platform answered with a list that holds no peer objects: {short body}"
                        else
                            okWith
                                (String.Join("\n", lines |> List.map snd))
                                [ PeerNames names; PeersVia(ctx.Config.WorkspaceId, names |> List.map fst) ]
                    | None -> noPeers $"The platform answered HTTP {inv s} but the body is not a JSON list: {short body}"
                | Reply(s, body) when s = 401 || s = 403 ->
                    let msg = platformMessage body

                    noPeers
                        $"Authentication to the platform failed (HTTP {inv s}{withMessage msg}): the workspace token was rejected. The workspace may have been deleted. {Texts.regenerate}"
                | Reply(404, _) ->
                    noPeers
                        $"Workspace {ctx.Config.WorkspaceId.Value} is not registered with the platform (HTTP 404). Restart your runtime so it registers again, and check WORKSPACE_ID and PLATFORM_URL."
                | Reply(s, body) when s >= 500 -> noPeers $"The platform had an internal error (HTTP {inv s}{withMessage (platformMessage body)})."
                | Reply(s, body) -> noPeers $"Unexpected platform answer: HTTP {inv s}{withMessage (platformMessage body)}."
                | TransportError m -> noPeers $"Cannot reach the platform at {ctx.Config.PlatformUrl}: {m}"
                | TimedOut t -> noPeers $"The platform at {ctx.Config.PlatformUrl} did not answer within {secs t} s."
        ))

