/// Tool call → pure program (spec §3): the platform tools. Each is a `Program`: the agent performs the requests
/// and file checks it asks for and feeds the answers back. Every failure is flagged `IsError` (P13) and platform
/// error bodies surface their message (P8). The inbox tools are served by the agent itself (Agent.fs).
module Molecule.Core.Dispatch

/// The same program, its final text scrubbed of the workspace token: platform bodies, peer replies and
/// memories are quoted into results, and a result goes to stdout, where the token must never appear.
let private scrubbed (config: Config) (program: Program<ToolOutput>) : Program<ToolOutput> =
    program |> Program.map (fun output -> { output with Text = Config.scrub config output.Text })

/// A context for running a tool outside the agent (a library user's own loop): one workspace, nothing learnt yet.
let context (config: Config) (nonce: string) : ToolContext =
    { Config = config
      Removed = None
      PeerNames = Map.empty
      Nonce = nonce
      Via = false
      Degraded = None
      Served = [ config.WorkspaceId ] }

/// The program of one platform tool call; None for the inbox tools.
let run (ctx: ToolContext) (toolCall: ToolCall) : Program<ToolOutput> option =
    let program =
        match toolCall with
        | ListPeers -> Some(PeersTools.listPeers ctx)
        | GetWorkspaceInfo -> Some(PeersTools.getWorkspaceInfo ctx)
        | DelegateTask(target, task) -> Some(DelegationTools.delegateTask ctx target task)
        | DelegateTaskAsync(target, task) -> Some(DelegationTools.delegateTaskAsync ctx target task)
        | CheckTaskStatus taskId -> Some(TaskStatusTools.checkTaskStatus ctx taskId)
        | SendMessageToUser(message, attachments) -> Some(MessagingTools.sendMessageToUser ctx message attachments)
        | CommitMemory(content, scope) -> Some(MemoryTools.commitMemory ctx content scope)
        | RecallMemory(query, scope) -> Some(MemoryTools.recallMemory ctx query scope)
        | GetRuntimeIdentity -> Some(TeamTools.runtimeIdentity ctx)
        | UpdateAgentCard card -> Some(TeamTools.updateAgentCard ctx card)
        | BroadcastMessage message -> Some(TeamTools.broadcastMessage ctx message)
        | ChatHistory(peer, limit, before) -> Some(TeamTools.chatHistory ctx peer limit before)
        | CreateRequest r -> Some(RequestTools.createRequest ctx r)
        | ListRequests(box, status) -> Some(RequestTools.listRequests ctx box status)
        | GetRequest rid -> Some(RequestTools.getRequest ctx rid)
        | RespondToRequest(rid, action) -> Some(RequestTools.respondToRequest ctx rid action)
        | AddRequestMessage(rid, body) -> Some(RequestTools.addRequestMessage ctx rid body)
        | CancelRequest rid -> Some(RequestTools.cancelRequest ctx rid)
        | WaitForMessage _
        | InboxPeek _
        | InboxPop _ -> None
    program |> Option.map (scrubbed ctx.Config)
