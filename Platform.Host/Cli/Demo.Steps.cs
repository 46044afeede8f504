using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Molecule.Platform;

namespace Molecule.PlatformHost.Cli;

/// <summary>The demo's steps (connect, delegation, user message, team memory, deletion).</summary>
internal sealed partial class DemoRun
{
    // ------------------------------------------------------------------ steps

    private async Task ConnectAsync(CancellationToken ct)
    {
        Step("Each agent connects (a real molecule-mcp process per workspace, MCP over stdio)");
        var clients = await Task.WhenAll(Agents.Select(a => StartClientAsync(a, ct))).ConfigureAwait(false);
        for (var i = 0; i < clients.Length; i++)
        {
            var a = Agents[i];
            a.Client = clients[i];
            var tools = await a.Client.ListToolsAsync(cancellationToken: ct).ConfigureAwait(false);
            var channel = a.Client.ServerCapabilities.Experimental?.ContainsKey("claude/channel") == true;
            Require(tools.Count > 0, $"{a.Name}'s molecule-mcp lists no tools");
            var server = a.Client.ServerInfo;
            Ok($"{a.Name} ({a.Short}…) connected: {server?.Name} {server?.Version}, protocol {a.Client.NegotiatedProtocolVersion}, " +
               $"{tools.Count.ToString(CultureInfo.InvariantCulture)} tools{(channel ? ", channel push" : "")}");
        }

        await WaitForAsync(() => AllOnline().Result, WaitLimit, "the platform does not show all three agents online", ct).ConfigureAwait(false);
        Ok("the platform shows all three workspaces online (registered, heartbeating every second)");

        var peers = await CallAsync(_lead, "list_peers", [], ct).ConfigureAwait(false);
        Detail(peers);
        foreach (var s in new[] { _researcher, _coder })
        {
            Require(peers.Contains(s.Id, StringComparison.Ordinal), $"list_peers from {_lead.Name} does not show {s.Name}");
            foreach (var skill in s.Skills)
                Require(peers.Contains(skill, StringComparison.Ordinal), $"list_peers from {_lead.Name} does not show {s.Name}'s skill '{skill}'");
        }
        Ok($"list_peers from {_lead.Name} shows {_researcher.Name} [{string.Join(", ", _researcher.Skills)}] and {_coder.Name} [{string.Join(", ", _coder.Skills)}]");
    }

    private async Task<object?> AllOnline()
    {
        var list = await _admin!.GetAsync("/workspaces").ConfigureAwait(false) as JsonArray ?? [];
        var online = list.OfType<JsonObject>().Count(w => AdminClient.Str(w, "status") == "online");
        return online >= 3 ? new object() : null;
    }

    private static JsonObject ParseMessage(DemoAgent a, string text)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(text); }
        catch (JsonException) { throw new StepFailed($"{a.Name}'s wait_for_message did not return JSON: {text}"); }
        if (node is not JsonObject o) throw new StepFailed($"{a.Name}'s wait_for_message returned {text}");
        if (o["timeout"] is JsonValue) throw new StepFailed($"{a.Name}'s wait_for_message timed out: no message arrived");
        return o;
    }

    private async Task DelegationAsync(CancellationToken ct)
    {
        Step($"Delegation: {_lead.Name} → {_researcher.Name}, answered back through the inbox");
        const string task = "Summarise the two biggest risks of the release plan in one sentence.";
        const string answer = "Answer: the database migration has no rollback, and the load test was never run at full scale.";

        var sent = await CallAsync(_lead, "delegate_task", new() { ["workspace_id"] = _researcher.Id, ["task"] = task }, ct).ConfigureAwait(false);
        Require(sent.Contains("queued", StringComparison.OrdinalIgnoreCase), $"delegate_task did not report a queued delivery: {sent}");
        Ok($"{_lead.Name} delegate_task → \"{Short(sent)}\"");

        var got = ParseMessage(_researcher, await CallAsync(_researcher, "wait_for_message", new() { ["timeout_secs"] = 15 }, ct).ConfigureAwait(false));
        var gotText = AdminClient.Str(got, "text") ?? "";
        Require(gotText.Contains(task, StringComparison.Ordinal), $"{_researcher.Name} received something else: {gotText}");
        Require(AdminClient.Str(got, "peer_id") == _lead.Id, $"{_researcher.Name}'s message does not name {_lead.Name} as peer_id");
        Ok($"{_researcher.Name} wait_for_message → the task from {_lead.Name} (kind {AdminClient.Str(got, "kind")}, peer_id {_lead.Short}…)");

        var replied = await CallAsync(_researcher, "delegate_task", new() { ["workspace_id"] = _lead.Id, ["task"] = answer }, ct).ConfigureAwait(false);
        Require(replied.Contains("queued", StringComparison.OrdinalIgnoreCase), $"the reply was not delivered: {replied}");
        Ok($"{_researcher.Name} answers with delegate_task → queued for {_lead.Name}");

        var back = ParseMessage(_lead, await CallAsync(_lead, "wait_for_message", new() { ["timeout_secs"] = 15 }, ct).ConfigureAwait(false));
        var backText = AdminClient.Str(back, "text") ?? "";
        Require(backText.Contains(answer, StringComparison.Ordinal), $"{_lead.Name} received something else: {backText}");
        Require(AdminClient.Str(back, "peer_id") == _researcher.Id, $"the answer does not name {_researcher.Name} as peer_id");
        Ok($"{_lead.Name} wait_for_message → \"{answer}\"");

        await PopAsync(_researcher, got, ct).ConfigureAwait(false);
        await PopAsync(_lead, back, ct).ConfigureAwait(false);
        Ok("both handled messages removed with inbox_pop");
    }

    private static async Task PopAsync(DemoAgent a, JsonObject message, CancellationToken ct)
    {
        var id = AdminClient.Str(message, "activity_id") ?? throw new StepFailed($"{a.Name}'s message has no activity_id");
        var popped = await CallAsync(a, "inbox_pop", new() { ["activity_id"] = id }, ct).ConfigureAwait(false);
        Require(popped.Contains("true", StringComparison.OrdinalIgnoreCase), $"{a.Name}'s inbox_pop did not remove the message: {popped}");
    }

    private static string Short(string text)
    {
        var one = text.ReplaceLineEndings(" ");
        return one.Length > 110 ? one[..110] + "…" : one;
    }

    private async Task UserMessageAsync(CancellationToken ct)
    {
        Step($"A user message from the canvas is pushed to {_lead.Name} as a channel notification");
        const string question = "Hi Lead, what is the team doing right now?";
        const string reply = "We are reviewing the release risks; the Researcher found two, details follow.";
        var envelope = new JsonObject
        {
            ["method"] = "message/send",
            ["params"] = new JsonObject
            {
                ["message"] = new JsonObject
                {
                    ["role"] = "user",
                    ["parts"] = new JsonArray(new JsonObject { ["kind"] = "text", ["text"] = question }),
                },
            },
        };
        var (status, _, raw) = await _admin!.TrySendAsync(HttpMethod.Post, $"/workspaces/{_lead.Id}/a2a", envelope, ct).ConfigureAwait(false);
        Require(status == 200, $"the platform refused the canvas message: HTTP {status.ToString(CultureInfo.InvariantCulture)} {raw}");
        Ok($"user → POST /workspaces/{_lead.Short}…/a2a (canvas route, admin bearer) → queued");

        var note = await WaitForAsync(
            () => _lead.Channel.FirstOrDefault(p => (AdminClient.Str(p, "content") ?? "").Contains(question, StringComparison.Ordinal)),
            WaitLimit, $"no {Demo.ChannelMethod} notification with the user's message reached {_lead.Name}", ct).ConfigureAwait(false);
        var meta = note["meta"] as JsonObject;
        var kind = AdminClient.Str(meta, "kind") ?? AdminClient.Str(meta, "source_kind") ?? "?";
        Ok($"{_lead.Name}'s client got {Demo.ChannelMethod}: \"{question}\" (kind {kind})");

        var inboxed = ParseMessage(_lead, await CallAsync(_lead, "wait_for_message", new() { ["timeout_secs"] = 5 }, ct).ConfigureAwait(false));
        Require((AdminClient.Str(inboxed, "text") ?? "").Contains(question, StringComparison.Ordinal),
            $"the user's message is not at the head of {_lead.Name}'s inbox: {Short(inboxed.ToJsonString())}");
        await PopAsync(_lead, inboxed, ct).ConfigureAwait(false);
        Ok($"the same message is in {_lead.Name}'s inbox (wait_for_message, kind {AdminClient.Str(inboxed, "kind")}); handled with inbox_pop");

        var sent = await CallAsync(_lead, "send_message_to_user", new() { ["message"] = reply }, ct).ConfigureAwait(false);
        var (aStatus, _, activity) = await _admin.TrySendAsync(HttpMethod.Get, $"/workspaces/{_lead.Id}/activity?limit=50", null, ct).ConfigureAwait(false);
        Require(aStatus == 200 && activity.Contains(reply, StringComparison.Ordinal), $"the reply is not in {_lead.Name}'s activity on the platform ({Short(sent)})");
        Ok($"{_lead.Name} send_message_to_user → the reply is in the canvas chat: \"{reply}\"");
    }

    private async Task TeamMemoryAsync(CancellationToken ct)
    {
        Step("A memory shared at TEAM scope");
        const string fact = "Team decision: the release candidate is frozen on Friday; only blocker fixes go in.";
        var committed = await CallAsync(_researcher, "commit_memory", new() { ["content"] = fact, ["scope"] = "TEAM" }, ct).ConfigureAwait(false);
        Ok($"{_researcher.Name} commit_memory(scope TEAM) → \"{Short(committed)}\"");

        var recalled = await CallAsync(_coder, "recall_memory", new() { ["query"] = "release candidate frozen", ["scope"] = "TEAM" }, ct).ConfigureAwait(false);
        Require(recalled.Contains(fact, StringComparison.Ordinal), $"{_coder.Name}'s recall_memory did not find the fact: {Short(recalled)}");
        Ok($"{_coder.Name} recall_memory(\"release candidate frozen\", TEAM) → finds {_researcher.Name}'s fact");
    }

    private async Task DeletionAsync(CancellationToken ct)
    {
        Step($"The admin deletes {_coder.Name}: 410 message and the 3-strike heartbeat ERROR");
        await _admin!.DeleteAsync($"/workspaces/{_coder.Id}", ct).ConfigureAwait(false);
        Ok($"admin DELETE /workspaces/{_coder.Short}… → removed, its tokens revoked");

        var info = await _coder.Client!.CallToolAsync("get_workspace_info", new Dictionary<string, object?>(), cancellationToken: ct).ConfigureAwait(false);
        var infoText = string.Join("\n", info.Content.OfType<TextContentBlock>().Select(t => t.Text));
        Require(infoText.Contains("was deleted on the platform", StringComparison.Ordinal), $"get_workspace_info did not report the deletion: {Short(infoText)}");
        Ok($"{_coder.Name} get_workspace_info → \"{Short(infoText)}\"");

        var strike = await WaitForAsync(
            () => _coder.Stderr.FirstOrDefault(l => l.Contains("3 consecutive heartbeat auth failures", StringComparison.Ordinal)),
            WaitLimit, $"{_coder.Name}'s stderr never showed \"3 consecutive heartbeat auth failures\"", ct).ConfigureAwait(false);
        Require(strike.Contains("ERROR", StringComparison.Ordinal), $"the 3-strike line is not an ERROR: {strike}");
        Ok($"{_coder.Name}'s molecule-mcp stderr: \"{Short(strike)}\"");
    }
}
