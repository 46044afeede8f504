/// The one inbox an agent sees: the waiting messages of every workspace this process serves, merged oldest first,
/// each with the workspace it arrived in (shown as `arrival_workspace_id` when there are several). Pure.
module Molecule.Core.Mailbox

open System.Text.Json.Nodes
open Molecule.Protocol

/// A waiting message, the workspace it arrived in and that workspace's platform URL.
type Letter =
    { Message: InboxMessage
      Arrival: WorkspaceId
      PlatformUrl: string }

let private letters (n: int) (workspaces: Map<WorkspaceId, Workspace.State>) : Letter list =
    workspaces
    |> Seq.collect (fun kv ->
        Ledger.peek n kv.Value.Ledger
        |> List.map (fun m -> { Message = m; Arrival = kv.Key; PlatformUrl = kv.Value.Config.PlatformUrl }))
    |> Seq.sortBy (fun l -> Ledger.keyOf l.Message)
    |> Seq.truncate n
    |> List.ofSeq

/// The oldest `limit` waiting messages of all workspaces.
let peek (limit: int) (workspaces: Map<WorkspaceId, Workspace.State>) : Letter list =
    if limit <= 0 then [] else letters limit workspaces

let head (workspaces: Map<WorkspaceId, Workspace.State>) : Letter option = peek 1 workspaces |> List.tryHead

/// Every waiting message (for announcing and re-notifying).
let all (workspaces: Map<WorkspaceId, Workspace.State>) : Letter list = letters Ledger.capacity workspaces

let count (workspaces: Map<WorkspaceId, Workspace.State>) =
    workspaces |> Seq.sumBy (fun kv -> Ledger.count kv.Value.Ledger)

/// The workspace whose ledger holds a waiting message.
let owner (activityId: string) (workspaces: Map<WorkspaceId, Workspace.State>) : WorkspaceId option =
    workspaces |> Seq.tryPick (fun kv -> if Ledger.contains activityId kv.Value.Ledger then Some kv.Key else None)

/// A letter without the sender's name (a platform without `include=peer_info`, such as the Go platform) takes the name
/// this process learnt for that peer (list_peers, delegations); the platform's own name always wins; canvas letters
/// (no peer id) stay as they are.
let named (names: Map<string, string>) (l: Letter) : Letter =
    match l.Message.PeerName, l.Message.PeerId with
    | None, id when id <> "" ->
        match names.TryFind id |> Option.orElse (names.TryFind(id.ToLowerInvariant())) with
        | Some name -> { l with Message = { l.Message with PeerName = Some name } }
        | None -> l
    | _ -> l

let private arrival (multi: bool) (l: Letter) = if multi then Some l.Arrival else None

/// A message as the inbox tools show it (named from `names` when the platform gave no name).
let json (multi: bool) (names: Map<string, string>) (l: Letter) : JsonObject =
    let l = named names l
    InboxTools.messageJson l.PlatformUrl (arrival multi l) l.Message

/// The channel notification of a message (named from `names` when the platform gave no name).
let event (multi: bool) (names: Map<string, string>) (l: Letter) : ChannelEvent =
    let l = named names l
    Channel.eventFor l.PlatformUrl (arrival multi l) l.Message
