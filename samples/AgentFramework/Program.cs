// A Molecule agent whose answers come from an LLM, built with the Microsoft Agent Framework: each message — the
// user's or a peer's — is one run of a ChatClientAgent that has the team tools (list_peers, delegate_task,
// send_message_to_user, commit_memory, …, the very tools molecule-mcp serves), and its answer is the reply.
//
//   OPENAI_API_KEY=… OPENAI_MODEL=gpt-4.1-mini WORKSPACE_ID=… PLATFORM_URL=… MOLECULE_WORKSPACE_TOKEN=… \
//     dotnet run --project samples/AgentFramework
//
// OPENAI_BASE_URL points it at any other OpenAI-compatible endpoint (Ollama: http://localhost:11434/v1, vLLM, LM
// Studio, …; a local server takes any key). Messages are handled as in samples/CSharp: oldest first, one counts as
// handled once its reply is sent; a model or reply failure ends the run and leaves the message for the next start.
using System.ClientModel;
using System.Runtime.InteropServices;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Molecule.Agents;
using Molecule.Agents.AI;
using OpenAI;

if (ModelFromEnvironment() is not { } model)
{
    Console.Error.WriteLine("""
        This agent needs a model. Set OPENAI_API_KEY and OPENAI_MODEL (e.g. gpt-4.1-mini), and OPENAI_BASE_URL for another
        OpenAI-compatible endpoint (e.g. http://localhost:11434/v1 for Ollama; a local server takes any key) — plus the
        workspace: WORKSPACE_ID, PLATFORM_URL, MOLECULE_WORKSPACE_TOKEN.
        """);
    return 2;
}
using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
using var loggerFactory = LoggerFactory.Create(logging => logging.AddSimpleConsole(o => o.SingleLine = true));
try
{
    await using var agent = await MoleculeAgent.ConnectAsync(MoleculeOptions.FromEnvironment(), loggerFactory, stop.Token);
    AIAgent assistant = new ChatClientAgent(model, instructions: agent.GetChatInstructions(), name: agent.Settings.AgentName,
        tools: [.. MoleculeAIFunctions.Create(agent)], loggerFactory: loggerFactory);
    loggerFactory.CreateLogger("sample").LogInformation("Answering messages of workspace {Workspace} with {Model}", agent.WorkspaceId, Environment.GetEnvironmentVariable("OPENAI_MODEL"));
    await agent.AnswerMessagesAsync(assistant, stop.Token);
    return 0;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested) { return 0; }
catch (MoleculeOptionsException invalid) { Console.Error.WriteLine(invalid.Message); return 2; }
catch (MoleculeAgentStoppedException stopped) { return stopped.ExitCode; }

// The chat model named by OPENAI_API_KEY, OPENAI_MODEL and (optionally) OPENAI_BASE_URL; null when one is missing.
static IChatClient? ModelFromEnvironment()
{
    var key = Environment.GetEnvironmentVariable("OPENAI_API_KEY");
    var name = Environment.GetEnvironmentVariable("OPENAI_MODEL");
    if (string.IsNullOrWhiteSpace(key) || string.IsNullOrWhiteSpace(name)) return null;
    var options = new OpenAIClientOptions();
    if (Environment.GetEnvironmentVariable("OPENAI_BASE_URL") is { Length: > 0 } url) options.Endpoint = new Uri(url);
    return new OpenAIClient(new ApiKeyCredential(key), options).GetChatClient(name).AsIChatClient();
}
