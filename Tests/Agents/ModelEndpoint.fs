/// An OpenAI-compatible chat completions endpoint on 127.0.0.1 (port 0) that answers by a script instead of a model:
/// what samples/AgentFramework is pointed at in the suite (OPENAI_BASE_URL), so the sample runs exactly as it would
/// against a real endpoint — its own OpenAI client, Agent Framework agent and tools — without a network.
module Molecule.Tests.Agents.ModelEndpoint

open System
open System.Collections.Concurrent
open System.IO
open System.Text.Json.Nodes
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging

/// The model's next turn: call a tool (name, arguments) or answer with a text.
type Turn =
    | CallTool of name: string * arguments: JsonObject
    | Answer of text: string

/// One chat completion as the OpenAI API returns it.
let private completion (turn: Turn) : JsonObject =
    let message, finish =
        match turn with
        | CallTool(name, args) ->
            let call =
                JsonObject(
                    dict
                        [ "id", JsonValue.Create("call_" + Guid.NewGuid().ToString "N") :> JsonNode
                          "type", JsonValue.Create "function"
                          "function", JsonObject(dict [ "name", JsonValue.Create name :> JsonNode; "arguments", JsonValue.Create(args.ToJsonString()) ]) ]
                )
            JsonObject(dict [ "role", JsonValue.Create "assistant" :> JsonNode; "content", null; "tool_calls", JsonArray(call) ]), "tool_calls"
        | Answer text -> JsonObject(dict [ "role", JsonValue.Create "assistant" :> JsonNode; "content", JsonValue.Create text ]), "stop"
    let choice = JsonObject(dict [ "index", JsonValue.Create 0 :> JsonNode; "message", message; "finish_reason", JsonValue.Create finish ])
    let usage = JsonObject(dict [ "prompt_tokens", JsonValue.Create 1 :> JsonNode; "completion_tokens", JsonValue.Create 1; "total_tokens", JsonValue.Create 2 ])
    JsonObject(
        dict
            [ "id", JsonValue.Create("chatcmpl-" + Guid.NewGuid().ToString "N") :> JsonNode
              "object", JsonValue.Create "chat.completion"
              "created", JsonValue.Create(DateTimeOffset.UtcNow.ToUnixTimeSeconds())
              "model", JsonValue.Create "scripted"
              "choices", JsonArray(choice)
              "usage", usage ]
    )

/// The endpoint: `script` gets each request's body (messages, tools) and says the next turn; requests are kept.
type ScriptedModel(app: WebApplication, requests: ConcurrentQueue<JsonObject>) =
    member _.BaseUrl =
        let addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()
        (Seq.head addresses.Addresses).TrimEnd('/') + "/v1"
    member _.Requests = List.ofSeq requests

    static member StartAsync(script: JsonObject -> Turn) : Task<ScriptedModel> =
        task {
            let requests = ConcurrentQueue<JsonObject>()
            let builder = WebApplication.CreateSlimBuilder()
            builder.Logging.ClearProviders() |> ignore
            builder.WebHost.UseUrls("http://127.0.0.1:0") |> ignore
            let app = builder.Build()
            app.MapPost(
                "/v1/chat/completions",
                RequestDelegate(fun ctx ->
                    task {
                        use reader = new StreamReader(ctx.Request.Body)
                        let! body = reader.ReadToEndAsync()
                        let request = JsonNode.Parse(body).AsObject()
                        requests.Enqueue request
                        ctx.Response.ContentType <- "application/json"
                        do! ctx.Response.WriteAsync((completion (script request)).ToJsonString())
                    }
                    :> Task)
            )
            |> ignore
            do! app.StartAsync()
            return new ScriptedModel(app, requests)
        }

    interface IAsyncDisposable with
        member _.DisposeAsync() = app.DisposeAsync()

/// The text of the tool results in a request's messages (role "tool"), in order.
let toolResults (request: JsonObject) : string list =
    [ for m in request["messages"].AsArray() do
          if string (m.["role"]) = "tool" then
              match m["content"] with
              | :? JsonValue as v -> yield string v
              | :? JsonArray as parts -> yield String.Join("", parts |> Seq.map (fun p -> string (p.["text"])))
              | _ -> () ]

/// The names of the tools a request offered the model.
let offeredTools (request: JsonObject) : string list =
    match request["tools"] with
    | :? JsonArray as tools -> [ for t in tools -> string (t.["function"].["name"]) ]
    | _ -> []
