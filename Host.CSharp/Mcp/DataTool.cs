using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Molecule.Runtime;

namespace Molecule.Host.Mcp;

/// <summary>Handles one tool call: raw arguments (null when the client sent none) → the tool's result.</summary>
public delegate Task<ToolResult> ToolHandler(string toolName, JsonObject? arguments, CancellationToken ct);

/// <summary>
/// An MCP tool defined by data: a <see cref="ToolInfo"/> (name, description, JSON Schema text) plus a
/// handler. No reflection, no attributes (AOT-safe). The result is one text content block, plus a second one for
/// a notice (unread messages waiting) — never inside the result's own text, which consumers may parse as JSON.
/// </summary>
public sealed class DataTool : McpServerTool
{
    private readonly ToolHandler _handler;

    public DataTool(ToolInfo spec, ToolHandler handler)
    {
        _handler = handler;
        JsonElement schema;
        try
        {
            using var doc = JsonDocument.Parse(spec.InputSchemaJson);
            schema = doc.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"tool '{spec.Name}': input schema is not valid JSON: {ex.Message}", nameof(spec), ex);
        }
        ProtocolTool = new Tool { Name = spec.Name, Description = spec.Description, InputSchema = schema };
    }

    public override Tool ProtocolTool { get; }

    public override IReadOnlyList<object> Metadata => [];

    public override async ValueTask<CallToolResult> InvokeAsync(RequestContext<CallToolRequestParams> request,
        CancellationToken cancellationToken = default)
    {
        var output = await _handler(ProtocolTool.Name, ToJsonObject(request.Params?.Arguments), cancellationToken)
            .ConfigureAwait(false);
        return ToResult(output);
    }

    public static CallToolResult ToResult(ToolResult output)
    {
        var content = new List<ContentBlock> { new TextContentBlock { Text = output.Text ?? "" } };
        if (!string.IsNullOrEmpty(output.Notice)) content.Add(new TextContentBlock { Text = output.Notice });
        return new() { Content = content, IsError = output.IsError };
    }

    /// <summary>Copies the SDK's argument dictionary into a fresh <see cref="JsonObject"/> (null when absent).</summary>
    public static JsonObject? ToJsonObject(IDictionary<string, JsonElement>? arguments)
    {
        if (arguments is null) return null;
        var obj = new JsonObject();
        foreach (var (key, value) in arguments)
        {
            obj[key] = value.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null
                ? null
                : JsonNode.Parse(value.GetRawText());
        }
        return obj;
    }
}
