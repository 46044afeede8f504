using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Molecule.Agents.AI;

/// <summary>
/// One MCP tool of the agent as an <see cref="AIFunction"/>: its name, description and JSON schema are the tool's
/// own (<see cref="MoleculeAgent.Tools"/>, the list the MCP server serves), and invoking it runs
/// <see cref="MoleculeAgent.CallToolAsync"/> — the path the MCP server's tool calls take. The result is the tool's
/// answer text, an error's included, as the model would read it over MCP.
/// </summary>
internal sealed class MoleculeToolFunction : AIFunction
{
    private readonly MoleculeAgent _agent;
    private readonly ToolInfo _tool;

    public MoleculeToolFunction(MoleculeAgent agent, ToolInfo tool)
    {
        _agent = agent;
        _tool = tool;
        using var schema = JsonDocument.Parse(tool.InputSchemaJson);
        JsonSchema = schema.RootElement.Clone();
    }

    public override string Name => _tool.Name;

    public override string Description => _tool.Description;

    public override JsonElement JsonSchema { get; }

    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        var result = await _agent.CallToolAsync(_tool.Name, ToJson(arguments), null, cancellationToken).ConfigureAwait(false);
        return result.Text;
    }

    /// <summary>The model's arguments as the tool's JSON arguments.</summary>
    internal static JsonObject ToJson(IEnumerable<KeyValuePair<string, object?>> arguments)
    {
        var json = new JsonObject();
        foreach (var (name, value) in arguments) json[name] = ToNode(value);
        return json;
    }

    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        JsonNode node => node.DeepClone(),
        JsonElement { ValueKind: JsonValueKind.Undefined or JsonValueKind.Null } => null,
        JsonElement element => JsonNode.Parse(element.GetRawText()),
        string text => JsonValue.Create(text),
        bool flag => JsonValue.Create(flag),
        int number => JsonValue.Create(number),
        long number => JsonValue.Create(number),
        double number => JsonValue.Create(number),
        decimal number => JsonValue.Create(number),
        _ => JsonSerializer.SerializeToNode(value, AIJsonUtilities.DefaultOptions.GetTypeInfo(value.GetType())),
    };
}
