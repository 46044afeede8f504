// The bench's floor (see Floor.csproj): answers initialize, tools/list (15 tools with descriptions the size of
// molecule-mcp's) and tools/call (one GET /workspaces/:id, as get_workspace_info does) over stdio, and fetches the
// workspace once at start as molecule-mcp registers. Not a server anyone should use.
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

var url = Environment.GetEnvironmentVariable("PLATFORM_URL") ?? "http://127.0.0.1:9";
var id = Environment.GetEnvironmentVariable("WORKSPACE_ID") ?? "";
var http = new HttpClient { BaseAddress = new Uri(url) };
http.DefaultRequestHeaders.Authorization =
    new AuthenticationHeaderValue("Bearer", Environment.GetEnvironmentVariable("MOLECULE_WORKSPACE_TOKEN") ?? "");
_ = Task.Run(async () => { try { await http.GetStringAsync($"/workspaces/{id}"); } catch (HttpRequestException) { } });

var stdout = Console.OpenStandardOutput();
string? line;
while ((line = Console.ReadLine()) != null)
{
    if (JsonNode.Parse(line) is not JsonObject request || request["id"] is not { } requestId) continue;
    JsonNode result = (string?)request["method"] switch
    {
        "initialize" => new JsonObject
        {
            ["protocolVersion"] = "2025-06-18",
            ["capabilities"] = new JsonObject { ["tools"] = new JsonObject() },
            ["serverInfo"] = new JsonObject { ["name"] = "floor", ["version"] = "1" },
        },
        "tools/list" => new JsonObject
        {
            ["tools"] = new JsonArray(Enumerable.Range(0, 15).Select(i => (JsonNode)new JsonObject
            {
                ["name"] = $"tool{i}",
                ["description"] = new string('d', 300),
                ["inputSchema"] = new JsonObject { ["type"] = "object" },
            }).ToArray()),
        },
        "tools/call" => new JsonObject
        {
            ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = await http.GetStringAsync($"/workspaces/{id}") }),
        },
        _ => new JsonObject(),
    };
    var response = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = requestId.DeepClone(), ["result"] = result };
    stdout.Write(Encoding.UTF8.GetBytes(response.ToJsonString() + "\n"));
    stdout.Flush();
}
