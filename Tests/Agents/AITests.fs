/// Molecule.Agents.AI without a network: the team tools as AIFunctions are the MCP server's tools (names, descriptions,
/// schemas — compared with molecule-mcp's own tools/list), and a scripted model's delegate_task reaches the platform as
/// an A2A send while its final answer comes back as the reply to the message it was given.
module Molecule.Tests.Agents.AITests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.AI
open ModelContextProtocol.Client
open Xunit
open Molecule.Agents
open Molecule.Agents.AI
open Molecule.Tests.Host.Harness

/// A model that follows a script: each call sees the conversation so far and the tools offered, and gets the
/// script's next response. What it was given is kept for the test.
type ScriptedChatClient(next: ChatMessage list -> ChatResponse) =
    let calls = ConcurrentQueue<ChatMessage list * string list>()
    member _.Calls = List.ofSeq calls
    interface IChatClient with
        member _.GetResponseAsync(messages, options, _ct) =
            let conversation = List.ofSeq messages
            let tools = if isNull options || isNull options.Tools then [] else options.Tools |> Seq.map (fun t -> t.Name) |> List.ofSeq
            calls.Enqueue(conversation, tools)
            Task.FromResult(next conversation)
        member _.GetStreamingResponseAsync(_, _, _) = raise (NotSupportedException "the scripted model answers whole responses")
        member _.GetService(_, _) = null
        member _.Dispose() = ()

let private assistant (contents: AIContent list) = ChatResponse(ChatMessage(ChatRole.Assistant, ResizeArray contents))

/// The text of the tool results the model has been given so far.
let private toolResults (conversation: ChatMessage list) =
    [ for m in conversation do
          for c in m.Contents do
              match c with
              | :? FunctionResultContent as r ->
                  match r.Result with
                  | :? JsonElement as e when e.ValueKind = JsonValueKind.String -> yield e.GetString()
                  | null -> yield ""
                  | v -> yield string v
              | _ -> () ]

let private waitUntil (what: string) (cond: unit -> Task<bool>) =
    task {
        let sw = Stopwatch.StartNew()
        let mutable ok = false
        while not ok && sw.Elapsed < TimeSpan.FromSeconds 60.0 do
            let! now = cond ()
            ok <- now
            if not ok then do! Task.Delay 200
        if not ok then failwith $"timed out waiting for {what}"
    }

let private activityText (platform: Platform) (id: string) =
    task {
        let! rows = platform.Activity id
        return String.Join("\n", rows |> List.map (fun r -> r.ToJsonString()))
    }

[<Fact>]
let ``the model's delegate_task reaches the peer as an A2A send, and its final answer is the reply to the message`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "ai-agent"
        let! peer = platform.CreateWorkspace "ai-peer"
        do! platform.RegisterPoll peer
        let task' = $"Summarise the quarterly report ({Guid.NewGuid():N})"
        let model =
            new ScriptedChatClient(fun conversation ->
                match toolResults conversation with
                | [] ->
                    let args = Dictionary<string, obj>(dict [ "workspace_id", box peer.Id; "task", box task' ])
                    assistant [ FunctionCallContent("call-1", "delegate_task", args) ]
                | result :: _ -> assistant [ TextContent($"I asked the peer. The platform says: {result}") ])
        let! agent = MoleculeAgent.ConnectAsync(MoleculeOptions.FromVariables(agentEnv platform ws |> List.map KeyValuePair))
        use stop = new CancellationTokenSource()
        let loop = agent.AnswerMessagesAsync(model, stop.Token)
        let! _ = platform.CanvasMessage(ws.Id, "Please get the report summarised by our peer.")
        do! waitUntil "the reply" (fun () -> task { let! all = activityText platform ws.Id in return all.Contains "I asked the peer." })
        stop.Cancel()
        let! ended = Assert.ThrowsAnyAsync<OperationCanceledException>(fun () -> loop)
        Assert.NotNull ended
        do! agent.DisposeAsync()
        // the tool call went to the platform as an A2A send to the peer, with the model's task
        Assert.True(platform.Faults.Requests("POST", $"/workspaces/{peer.Id}/a2a") >= 1, "no POST /workspaces/<peer>/a2a")
        let! theirs = activityText platform peer.Id
        Assert.Contains(task', theirs)
        // the model saw the instructions, the message with its sender, the team tools, then the tool's own answer
        let calls = model.Calls
        Assert.Equal(2, calls.Length)
        let (first, tools) = calls.Head
        Assert.Equal(agent.GetChatInstructions(), first.Head.Text)
        Assert.Contains("[Message from the user, in the canvas chat]\nPlease get the report summarised by our peer.", first.[1].Text)
        Assert.Equal<string list>(MoleculeAIFunctions.Create(agent) |> Seq.map (fun f -> f.Name) |> List.ofSeq, tools)
        Assert.Contains("delegate_task", tools)
        let result = toolResults (fst calls.[1]) |> List.exactlyOne
        Assert.Contains("queued", result)
        // ... and its final answer, built on that result, is the reply in the user's chat, once
        let! own = activityText platform ws.Id
        let reply = $"I asked the peer. The platform says: {result}"
        let escaped = JsonValue.Create(reply).ToJsonString().Trim('"')
        Assert.True(own.Contains escaped, $"the reply is not in the activity:\n{own}")
        assertNoSecrets [ ws.Token; peer.Token ] "the model's conversation" [ for (c, _) in calls do for m in c do yield m.Text ]
    }

[<Fact>]
let ``the AIFunctions are the MCP server's tools: same names, order, descriptions and JSON schemas`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "ai-tools"
        let env = agentEnv platform ws
        let! server = AgentProcess.StartAsync env
        let! listed = server.Client.ListToolsAsync()
        do! (server :> IAsyncDisposable).DisposeAsync()
        let! agent = MoleculeAgent.ConnectAsync(MoleculeOptions.FromVariables((("MOLECULE_MCP_DISABLE_HEARTBEAT", "1") :: env) |> List.map KeyValuePair))
        let all = MoleculeAIFunctions.Create(agent, true) |> List.ofSeq
        let team = MoleculeAIFunctions.Create(agent) |> List.ofSeq
        do! agent.DisposeAsync()
        Assert.Equal<string list>(listed |> Seq.map (fun t -> t.Name) |> List.ofSeq, all |> List.map (fun f -> f.Name))
        for (mcp, ours) in Seq.zip listed all do
            Assert.Equal(mcp.Description, ours.Description)
            let same = JsonNode.DeepEquals(JsonNode.Parse(mcp.JsonSchema.GetRawText()), JsonNode.Parse(ours.JsonSchema.GetRawText()))
            Assert.True(same, $"{ours.Name}: schema {ours.JsonSchema.GetRawText()} differs from the server's {mcp.JsonSchema.GetRawText()}")
        let inbox = set MoleculeAIFunctions.InboxToolNames
        Assert.Equal<string list>(all |> List.map (fun f -> f.Name) |> List.filter (inbox.Contains >> not), team |> List.map (fun f -> f.Name))
        Assert.True(team.Length >= 10 && team.Length = all.Length - 3, $"{team.Length} team tools of {all.Length}")
    }

[<Fact>]
let ``an AIFunction runs its tool with the model's JSON arguments: a memory kept is a memory recalled`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "ai-memory"
        let! agent = MoleculeAgent.ConnectAsync(MoleculeOptions.FromVariables(agentEnv platform ws |> List.map KeyValuePair))
        let tool name = MoleculeAIFunctions.Create(agent) |> Seq.find (fun f -> f.Name = name)
        let fact = $"the standup moves to half past ten ({Guid.NewGuid():N})"
        let args (json: string) =
            let parsed = JsonDocument.Parse(json).RootElement
            AIFunctionArguments(Dictionary<string, obj>(parsed.EnumerateObject() |> Seq.map (fun p -> KeyValuePair(p.Name, box (p.Value.Clone())))))
        let! _ = (tool "commit_memory").InvokeAsync(args $"""{{"content": {JsonValue.Create(fact).ToJsonString()}, "scope": "LOCAL"}}""")
        let! recalled = (tool "recall_memory").InvokeAsync(args """{"query": "standup"}""")
        do! agent.DisposeAsync()
        Assert.Contains(fact, string recalled)
    }
