using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Molecule.PlatformHost.Cli;

/// <summary>The demo's steps of the newer reference surface: chat_history, and one process serving two workspaces.</summary>
internal sealed partial class DemoRun
{
    /// <summary>The two workspaces of the one-process step (name, id, token).</summary>
    private readonly List<(string Name, string Id, string Token)> _desks = [];

    private async Task ChatHistoryAsync(CancellationToken ct)
    {
        Step($"chat_history: what {_lead.Name} and {_researcher.Name} exchanged, oldest first");
        var text = await CallAsync(_lead, "chat_history", new() { ["peer_id"] = _researcher.Id, ["limit"] = 20 }, ct).ConfigureAwait(false);
        JsonArray rows;
        try { rows = JsonNode.Parse(text) as JsonArray ?? throw new StepFailed($"chat_history did not return a list: {Short(text)}"); }
        catch (JsonException) { throw new StepFailed($"chat_history did not return JSON: {Short(text)}"); }
        var texts = rows.Select(r => r?.ToJsonString() ?? "").ToList();
        var answer = texts.FindIndex(t => t.Contains("Answer: the database migration", StringComparison.Ordinal));
        Require(answer >= 0, $"{_lead.Name}'s chat_history does not show {_researcher.Name}'s answer: {Short(text)}");
        var task = texts.FindIndex(t => t.Contains("Summarise the two biggest risks", StringComparison.Ordinal));
        Require(task < answer, $"chat_history is not oldest first: {Short(text)}");
        foreach (var r in rows.OfType<JsonObject>().TakeLast(3))
            Detail($"{AdminClient.Str(r, "created_at")}  {AdminClient.Str(r, "activity_type")}  {Short(AdminClient.Str(r, "summary") ?? "")}");
        Ok($"{_lead.Name} chat_history(peer_id={_researcher.Short}…) → {rows.Count.ToString(CultureInfo.InvariantCulture)} rows, " +
           (task >= 0 ? "the task before the answer" : "ending with the answer"));
    }

    private async Task MultiWorkspaceAsync(CancellationToken ct)
    {
        Step("One molecule-mcp process serves two workspaces (MOLECULE_WORKSPACES)");
        var desks = _desks;
        foreach (var name in new[] { "Docs", "Ops" })
        {
            var created = await _admin!.PostAsync("/workspaces", new JsonObject { ["name"] = name, ["parent_id"] = _lead.Id }, ct).ConfigureAwait(false);
            var id = AdminClient.Str(created, "id") ?? throw new StepFailed("the platform did not return a workspace id");
            var token = AdminClient.Str(created, "auth_token") ?? throw new StepFailed("the platform did not return a token");
            _secrets.Add(token);
            desks.Add((name, id, token));
        }
        _desk.Id = desks[0].Id;
        var entries = new JsonArray(desks.Select(d => (JsonNode?)new JsonObject { ["id"] = d.Id, ["token"] = d.Token }).ToArray());
        var env = new Dictionary<string, string?>
        {
            ["MOLECULE_WORKSPACES"] = entries.ToJsonString(),
            ["PLATFORM_URL"] = _platform!.Url,
            ["CONFIGS_DIR"] = Path.Combine(_tempDir, "agents", "desk"),
            ["MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS"] = "1",
            ["MOLECULE_MCP_POLL_INTERVAL_SECS"] = "0.5",
            ["WORKSPACE_ID"] = null,
            ["MOLECULE_WORKSPACE_TOKEN"] = null,
            ["MOLECULE_WORKSPACE_TOKEN_FILE"] = null,
            ["MOLECULE_MCP_DISABLE_INBOX"] = null,
            ["MOLECULE_MCP_VERBOSE"] = null,
        };
        Directory.CreateDirectory(Path.Combine(_tempDir, "agents", "desk"));
        _desk.Client = await StartClientAsync(_desk, ct, env).ConfigureAwait(false);
        Ok($"{_desk.Name} connected for {desks[0].Name} ({desks[0].Id[..8]}…) and {desks[1].Name} ({desks[1].Id[..8]}…) with MOLECULE_WORKSPACES (tokens: ***)");

        foreach (var d in desks)
        {
            var envelope = new JsonObject
            {
                ["method"] = "message/send",
                ["params"] = new JsonObject
                {
                    ["message"] = new JsonObject
                    {
                        ["role"] = "user",
                        ["parts"] = new JsonArray(new JsonObject { ["kind"] = "text", ["text"] = $"Status of {d.Name}, please?" }),
                    },
                },
            };
            var (status, _, raw) = await _admin!.TrySendAsync(HttpMethod.Post, $"/workspaces/{d.Id}/a2a", envelope, ct).ConfigureAwait(false);
            Require(status == 200, $"the platform refused the canvas message to {d.Name}: HTTP {status.ToString(CultureInfo.InvariantCulture)} {raw}");
        }
        Ok("user → one canvas message to each of the two workspaces");

        var refused = await _desk.Client.CallToolAsync("send_message_to_user",
            new Dictionary<string, object?> { ["message"] = "which one?" }, cancellationToken: ct).ConfigureAwait(false);
        Require(refused.IsError == true, $"{_desk.Name}'s send_message_to_user without workspace_id was not refused");
        Ok($"{_desk.Name} send_message_to_user without workspace_id → refused: it serves two workspaces, the call must name one");

        for (var i = 0; i < desks.Count; i++)
        {
            var got = ParseMessage(_desk, await CallAsync(_desk, "wait_for_message", new() { ["timeout_secs"] = 15 }, ct).ConfigureAwait(false));
            var arrival = AdminClient.Str(got, "arrival_workspace_id") ?? "";
            var addressed = desks.FirstOrDefault(d => d.Id == arrival);
            Require(addressed.Id is not null, $"{_desk.Name}'s message does not name the workspace it arrived in: {Short(got.ToJsonString())}");
            Require((AdminClient.Str(got, "text") ?? "").Contains(addressed.Name, StringComparison.Ordinal),
                $"the message for {addressed.Name} names another workspace: {Short(got.ToJsonString())}");
            await CallAsync(_desk, "send_message_to_user",
                new() { ["message"] = $"{addressed.Name} is on track.", ["workspace_id"] = arrival }, ct).ConfigureAwait(false);
            await PopAsync(_desk, got, ct).ConfigureAwait(false);
            Ok($"{_desk.Name} wait_for_message → \"Status of {addressed.Name}, please?\" (arrival_workspace_id {arrival[..8]}…); " +
               $"answered with send_message_to_user(workspace_id={arrival[..8]}…) and popped");
        }

        var peers = await CallAsync(_desk, "list_peers", [], ct).ConfigureAwait(false);
        Require(peers.Contains("via:", StringComparison.Ordinal), $"{_desk.Name}'s list_peers does not say via which workspace: {Short(peers)}");
        Ok($"{_desk.Name} list_peers merges both workspaces' peers, each line saying via which one");
    }
}
