/// The agent's state: its workspaces, the tool calls waiting, what it pushed and learnt of peers, and the names it knows.
module Molecule.Core.AgentModel

open System
open Molecule.Protocol

/// A tool call waiting for something (a program knows the workspace it acts for).
type Pending =
    | AwaitResponse of WorkspaceId * (Response -> Program<ToolOutput>)
    | AwaitFiles of WorkspaceId * (FileCheck list -> Program<ToolOutput>)
    /// wait_for_message: answered by the next message or at its deadline.
    | Waiting of timeoutSecs: float
    /// A program's `Pause`: resumed by its timer.
    | AwaitPause of WorkspaceId * (float -> Program<ToolOutput>)

/// A call the client wants progress reports for: its tool and how many reports went out.
type Reporting = { Tool: string; Reports: int }

/// Seconds between progress reports of a long call (MCP clients give up on silent calls; at least every 10 s).
let progressEverySecs = 5.0

type Model =
    { /// The workspace tools act for unless told otherwise.
      Primary: WorkspaceId
      Workspaces: Map<WorkspaceId, Workspace.State>
      /// The client sent `notifications/initialized`: channel notifications may flow.
      Initialized: bool
      Calls: Map<int64, Pending>
      /// Peer id (PeerId's normal form) → display name, learnt from list_peers / discover.
      PeerNames: Map<string, string>
      /// The workspaces whose list_peers returned a peer.
      PeerSources: Map<PeerId, Set<WorkspaceId>>
      /// Seconds since start, as of the last timer (the core has no clock).
      Uptime: float
      /// When each waiting message was pushed (uptime), and the ones already pushed a second time.
      Notified: Map<string, float>
      Renotified: Set<string>
      /// The calls that get progress reports.
      Progress: Map<int64, Reporting>
      /// Names the registry gave for peers whose messages came without one (lower-case id; bounded).
      Discovered: Map<string, string>
      DiscoveredOrder: string list
      /// Peers being looked up, with the letters whose push waits for the name.
      Lookups: Map<string, Mailbox.Letter list>
      /// Lookups that failed, and the uptime until which they are not tried again.
      Misses: Map<string, float>
      /// The loop guard over peers' messages, the messages it kept from being pushed (still in the inbox), and the
      /// start-up reads of the pairs the platform holds paused.
      Pairs: Pairs.State
      /// Claude Code's permission prompts relayed and not answered yet, by the prompt's id.
      Prompts: Map<string, Permissions.Waiting> }

/// Names kept from registry lookups (the oldest forgotten first).
let discoveredCapacity = 500

/// A failed lookup of a peer's name is not tried again for this long.
let missSecs = 30.0

/// How long a name lookup may hold a push.
let lookupTimeoutSecs = 3.0

let primary (model: Model) : Workspace.State = model.Workspaces[model.Primary]

/// One process serves several workspaces: messages and lines say which.
let multi (model: Model) = model.Workspaces.Count > 1

/// Unread messages of every workspace this process serves.
let unread (model: Model) = Mailbox.count model.Workspaces

let internal withWorkspace (ws: Workspace.State) (model: Model) =
    { model with Workspaces = model.Workspaces.Add(Workspace.id ws, ws) }

/// Every name this process knows for a peer: learnt from list_peers and delegations, else from a registry lookup.
let names (model: Model) : Map<string, string> =
    model.PeerNames |> Map.fold (fun (acc: Map<string, string>) k v -> acc.Add(k, v)) model.Discovered
