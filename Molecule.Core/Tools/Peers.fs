/// get_workspace_info and list_peers.
module Molecule.Core.PeersTools

open System
open System.Text.Json.Nodes
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// get_workspace_info
// ---------------------------------------------------------------------------------------------

/// A deleted workspace: the sentence users read, then on the next line the reference's JSON (`error`, `id`,
/// `removed_at`, `hint`) for consumers that parse it.
let removedInfoText (info: RemovedInfo) : string =
    let facts =
        Json.obj
            [ "error", Json.str "removed"
              "id", Json.str info.Id
              "removed_at", (match info.RemovedAt with Some t -> Json.str t | None -> Json.nul)
              "hint", Json.str info.Hint ]
    Removed.text info + "\n" + Json.indented facts

/// What get_workspace_info answers for the platform's reply (a 410 aside).
let private workspaceInfo (ctx: ToolContext) (response: Response) : ToolOutput =
    match response with
    | Reply(s, _) when (s = 401 || s = 403) && ctx.Degraded.IsSome -> failure ctx.Degraded.Value
    | Reply(s, body) when is2xx s ->
        match Json.tryParse body with
        | Some node -> ok (Json.indented node)
        | None -> failure $"Error: the platform answered HTTP {inv s} with a body that is not JSON: {short body}"
    | Reply(404, _) -> failure $"Error: workspace {ctx.Config.WorkspaceId.Value} not found on the platform"
    | Reply(s, body) -> failure (httpFailure s (if isNull body then "" else body))
    | TransportError m -> failure (transportFailure ctx m)
    | TimedOut t -> failure (timeoutFailure t)

let getWorkspaceInfo (ctx: ToolContext) : Program<ToolOutput> =
    let removed (info: RemovedInfo) = Program.stopWith (failure (removedInfoText info)) [ WorkspaceRemoved info ]
    match ctx.Removed with
    | Some info -> Program.answer (removed info)
    | None ->
        // Asked even while the token is rejected (degraded): a deleted workspace's token is rejected too, and this is
        // the tool that tells the two apart (410 → deleted; 401/403 → the degraded line).
        platform { ctx with Degraded = None } (program {
            match! Program.send (Api.workspace ctx.Config) with
            | Reply(410, body) -> return! removed (removedInfo ctx body)
            | response -> return workspaceInfo ctx response
        })

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

let private peerLine (via: string) (peer: JsonNode) : (PeerId * string) option * string =
    // Registry strings are shown sanitised like the channel's (P26): one line each, no markup, at most 64 chars.
    let shown (s: string) = Channel.sanitizeName s
    let id = Json.prop "id" peer |> Option.bind Json.asScalarText |> Option.defaultValue ""
    let id = if id = "" then "" else defaultArg (shown id) ""
    let name = peerName peer id |> shown |> Option.defaultValue (if id = "" then "(unnamed)" else id)
    let status = Json.stringProp "status" peer |> Option.bind shown |> Option.defaultValue "unknown"

    let role =
        match Json.stringProp "role" peer |> Option.bind shown with
        | Some r -> $", role: {r}"
        | None -> ""

    let skills =
        match skillNames peer |> List.choose shown with
        | [] -> ""
        | xs -> " — skills: [" + String.Join(", ", xs) + "]"

    let pair = PeerId.tryParse id |> Option.map (fun peerId -> peerId, name)
    pair, $"- {name} (ID: {id}, status: {status}{role}{via}){skills}"

let private noPeers (why: string) = failure $"Error: no peers could be listed. {why}"

/// The peers of a successful list_peers reply, one line each; the agent learns their names and where they were listed.
let private peerList (ctx: ToolContext) (status: int) (body: string) : Program<Result<ToolOutput, ToolOutput>> =
    program {
        match Json.tryParse body |> Option.bind Json.asArray with
        | Some [] -> return ok "You have no peers in the platform registry (no parent, no children and no siblings are registered)."
        | None -> return noPeers $"The platform answered HTTP {inv status} but the body is not a JSON list: {short body}"
        | Some items ->
            let via = if ctx.Via then $", via: {ctx.Config.WorkspaceId.Value.Substring(0, 8)}" else ""
            let lines = items |> List.filter (fun p -> Json.asObject p |> Option.isSome) |> List.map (peerLine via)
            let names = lines |> List.choose fst
            if lines.IsEmpty then
                return noPeers $"The platform answered with a list that holds no peer objects: {short body}"
            else
                do! Program.observe [ PeerNames names; PeersVia(ctx.Config.WorkspaceId, names |> List.map fst) ]
                return ok (String.Join("\n", lines |> List.map snd))
    }

/// Why list_peers has nothing to show for a failed request.
let private listFailure (ctx: ToolContext) (response: Response) : ToolOutput =
    match response with
    | Reply(s, body) when s = 401 || s = 403 ->
        noPeers
            $"Authentication to the platform failed (HTTP {inv s}{withMessage (platformMessage body)}): the workspace token was rejected. The workspace may have been deleted. {Texts.regenerate}"
    | Reply(404, _) ->
        noPeers
            $"Workspace {ctx.Config.WorkspaceId.Value} is not registered with the platform (HTTP 404). Restart your runtime so it registers again, and check WORKSPACE_ID and PLATFORM_URL."
    | Reply(s, body) when s >= 500 -> noPeers $"The platform had an internal error (HTTP {inv s}{withMessage (platformMessage body)})."
    | Reply(s, body) -> noPeers $"Unexpected platform answer: HTTP {inv s}{withMessage (platformMessage body)}."
    | TransportError m -> noPeers $"Cannot reach the platform at {ctx.Config.PlatformUrl}: {m}"
    | TimedOut t -> noPeers $"The platform at {ctx.Config.PlatformUrl} did not answer within {secs t} s."

let listPeers (ctx: ToolContext) : Program<ToolOutput> =
    platform ctx (program {
        match! Program.send (Api.peers ctx.Config) with
        | Reply(410, body) -> return! removed ctx body
        | Reply(s, body) when is2xx s -> return! peerList ctx s body
        | response -> return listFailure ctx response
    })
