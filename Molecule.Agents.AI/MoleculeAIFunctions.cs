using Microsoft.Extensions.AI;

namespace Molecule.Agents.AI;

/// <summary>
/// The agent's team tools as <see cref="AIFunction"/>s for any <see cref="IChatClient"/> with function calling or a
/// Microsoft Agent Framework agent: the very tools <c>molecule-mcp</c> serves — same names, descriptions and JSON
/// schemas, from the same list (<see cref="MoleculeAgent.Tools"/>) — each invoking the agent as the MCP server does.
/// </summary>
/// <example>
/// <code>
/// var options = new ChatOptions { Tools = [.. MoleculeAIFunctions.Create(agent)] };
/// var response = await chatClient.GetResponseAsync(messages, options, ct);   // a client with UseFunctionInvocation()
/// </code>
/// </example>
public static class MoleculeAIFunctions
{
    /// <summary>
    /// The tools that read the inbox (<c>wait_for_message</c>, <c>inbox_peek</c>, <c>inbox_pop</c>): left out by
    /// <see cref="Create(MoleculeAgent)"/>, because a model answering a message should not take messages out of the
    /// inbox its reading loop owns.
    /// </summary>
    public static IReadOnlyList<string> InboxToolNames { get; } = ["wait_for_message", "inbox_peek", "inbox_pop"];

    /// <summary>
    /// The team tools — peers, delegation (sync and async, status), messages to the user, broadcast, memories, chat
    /// history, the agent card, workspace and runtime info — in the MCP server's order, without the inbox tools.
    /// </summary>
    public static IReadOnlyList<AIFunction> Create(MoleculeAgent agent) => Create(agent, includeInboxTools: false);

    /// <summary>Every tool the MCP server lists, in its order; with <paramref name="includeInboxTools"/> false, without
    /// <see cref="InboxToolNames"/>.</summary>
    public static IReadOnlyList<AIFunction> Create(MoleculeAgent agent, bool includeInboxTools)
    {
        ArgumentNullException.ThrowIfNull(agent);
        return MoleculeAgent.Tools
            .Where(tool => includeInboxTools || !InboxToolNames.Contains(tool.Name))
            .Select(tool => (AIFunction)new MoleculeToolFunction(agent, tool))
            .ToList();
    }
}
