/// Which workspace a tool call acts for when one process serves several (MOLECULE_WORKSPACES): the workspace its
/// routing argument named (Tools.parse read it), else the workspace a peer was listed from, else the primary. Pure.
module Molecule.Core.Routing

open System
open Molecule.Protocol

/// The peer a call is about (its source workspace may be known from list_peers).
let private peerOf (toolCall: ToolCall) : PeerId option =
    match toolCall with
    | DelegateTask(peer, _)
    | DelegateTaskAsync(peer, _) -> Some(PeerId.ofWorkspace peer)
    | ChatHistory(peer, _, _) -> Some peer
    | _ -> None

/// The workspaces a call that names none acts for: the one its peer was listed from, else the primary (list_peers:
/// all of them). Refused when the peer was listed from several, or for send_message_to_user when there are several.
let private chosen
    (primary: WorkspaceId)
    (workspaces: Map<WorkspaceId, Workspace.State>)
    (peerSources: Map<PeerId, Set<WorkspaceId>>)
    (toolCall: ToolCall)
    (known: string)
    : Result<Workspace.State list, string> =
    match toolCall, peerOf toolCall with
    | _ when workspaces.Count <= 1 -> Ok [ workspaces[primary] ]
    | ListPeers, _ -> Ok(workspaces |> Seq.map (fun kv -> kv.Value) |> List.ofSeq)
    | SendMessageToUser _, _ ->
        Result.Error $"Error: this server serves several workspaces ({known}); pass workspace_id — the arrival_workspace_id of the message you answer — so the user sees the reply in the right chat."
    | _, Some peer ->
        match peerSources.TryFind peer |> Option.map Set.toList with
        | Some [ ws ] -> Ok [ workspaces[ws] ]
        | Some(_ :: _ :: _ as several) ->
            let names = String.Join(", ", several |> List.map (fun w -> w.Value))
            Result.Error $"Error: peer {peer.Value} is reachable from several workspaces of this server ({names}); pass source_workspace_id to choose one."
        | _ -> Ok [ workspaces[primary] ]
    | _ -> Ok [ workspaces[primary] ]

/// The workspaces a platform tool acts for: the one its routing argument named, else the one chosen for it. Refused
/// when the argument names no workspace of this server.
let route
    (primary: WorkspaceId)
    (workspaces: Map<WorkspaceId, Workspace.State>)
    (peerSources: Map<PeerId, Set<WorkspaceId>>)
    (parsed: ParsedCall)
    : Result<Workspace.State list, string> =
    let known = String.Join(", ", workspaces |> Seq.map (fun kv -> kv.Key.Value))
    let notServed (arg: string) (given: string) =
        Result.Error $"Error: {arg} {given} is not a workspace of this server (it serves {known})."
    match parsed.Route with
    | Named(arg, given, ws) ->
        match workspaces.TryFind ws with
        | Some state -> Ok [ state ]
        | None -> notServed arg given
    | NotAWorkspace(arg, given) -> notServed arg given
    | Unnamed -> chosen primary workspaces peerSources parsed.Call known
