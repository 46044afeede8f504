using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Molecule.Agents;

namespace Molecule.Host.Mcp;

/// <summary>
/// Handles one tool call: raw arguments (null when the client sent none) → the tool's result. <paramref name="progress"/>
/// is non-null when the client asked for progress (a <c>progressToken</c>); the handler reports through it.
/// </summary>
public delegate Task<ToolResult> ToolHandler(string toolName, JsonObject? arguments, IProgress<ToolProgress>? progress,
    CancellationToken ct);

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
        ProtocolTool = new Tool
        {
            Name = spec.Name,
            Title = spec.Title,
            Description = spec.Description,
            InputSchema = schema,
            Annotations = new ToolAnnotations
            {
                Title = spec.Title,
                ReadOnlyHint = spec.ReadOnly,
                DestructiveHint = spec.Destructive,
                IdempotentHint = spec.Idempotent,
                OpenWorldHint = spec.OpenWorld,
            },
        };
    }

    public override Tool ProtocolTool { get; }

    public override IReadOnlyList<object> Metadata => [];

    public override async ValueTask<CallToolResult> InvokeAsync(RequestContext<CallToolRequestParams> request,
        CancellationToken cancellationToken = default)
    {
        var output = await _handler(ProtocolTool.Name, ToJsonObject(request.Params?.Arguments),
            ProgressSink(request, cancellationToken), cancellationToken).ConfigureAwait(false);
        return ToResult(output);
    }

    /// <summary>Sends <c>notifications/progress</c> with the request's progressToken; null when it has none.</summary>
    private static IProgress<ToolProgress>? ProgressSink(RequestContext<CallToolRequestParams> request, CancellationToken ct) =>
        request.Params?.ProgressToken is { } token ? new ProgressNotifier(request.Server, token, ct) : null;

    /// <summary>Each report as a <c>notifications/progress</c>, sent without holding up the agent (a report that
    /// cannot be sent, the client gone, is dropped).</summary>
    private sealed class ProgressNotifier(McpServer server, ProgressToken token, CancellationToken ct) : IProgress<ToolProgress>
    {
        public void Report(ToolProgress value) => _ = SendAsync(value);

        private async Task SendAsync(ToolProgress report)
        {
            try
            {
                await server.NotifyProgressAsync(token,
                    new ProgressNotificationValue { Progress = (float)report.Progress, Total = (float?)report.Total, Message = report.Message },
                    cancellationToken: ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // dropped, as before: the call ends with or without it
            }
        }
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
