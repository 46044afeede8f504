/// Which workspace a tool call acts for when one process serves several (MOLECULE_WORKSPACES): the routing argument,
/// else the workspace a peer was listed from, else the primary. Pure.
module Molecule.Core.Routing

open System
open System.Text.Json.Nodes
open Molecule.Protocol

/// The peer a call is about (its source workspace may be known from list_peers).
let private peerOf (toolCall: ToolCall) =
    match toolCall with
    | DelegateTask(peer, _)
    | DelegateTaskAsync(peer, _)
    | ChatHistory(peer, _, _) -> Some peer
    | _ -> None

/// The workspaces a platform tool acts for: the routing argument's, else the one a peer was listed from, else the
/// primary (list_peers: all of them). Refused when the argument names no workspace of this server, or when a peer
/// was listed from several and none was named.
let route
    (primary: WorkspaceId)
    (workspaces: Map<WorkspaceId, Workspace.State>)
    (peerSources: Map<string, Set<WorkspaceId>>)
    (name: string)
    (toolCall: ToolCall)
    (args: JsonObject option)
    : Result<Workspace.State list, string> =
    let known () = String.Join(", ", workspaces |> Seq.map (fun kv -> kv.Key.Value))
    let requested =
        match Tools.routingArg name, args with
        | Some arg, Some a -> Json.stringProp arg a |> Option.filter (fun s -> s.Trim() <> "") |> Option.map (fun s -> arg, s)
        | _ -> None
    match requested with
    | Some(arg, value) ->
        match WorkspaceId.tryParse value |> Option.bind workspaces.TryFind with
        | Some ws -> Ok [ ws ]
        | None -> Result.Error $"Error: {arg} {value.Trim()} is not a workspace of this server (it serves {known ()})."
    | None when workspaces.Count <= 1 -> Ok [ workspaces[primary] ]
    | None ->
        match toolCall, peerOf toolCall with
        | ListPeers, _ -> Ok(workspaces |> Seq.map (fun kv -> kv.Value) |> List.ofSeq)
        | SendMessageToUser _, _ ->
            Result.Error $"Error: this server serves several workspaces ({known ()}); pass workspace_id — the arrival_workspace_id of the message you answer — so the user sees the reply in the right chat."
        | _, Some peer ->
            match peerSources.TryFind(peer.Trim().ToLowerInvariant()) |> Option.map Set.toList with
            | Some [ ws ] -> Ok [ workspaces[ws] ]
            | Some(_ :: _ :: _ as several) ->
                let names = String.Join(", ", several |> List.map (fun w -> w.Value))
                Result.Error $"Error: peer {peer.Trim()} is reachable from several workspaces of this server ({names}); pass source_workspace_id to choose one."
            | _ -> Ok [ workspaces[primary] ]
        | _ -> Ok [ workspaces[primary] ]

