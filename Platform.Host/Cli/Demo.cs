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

/// <summary>
/// `molecule-platform demo`: an embedded platform in a temp dir, a team of three real molecule-mcp processes driven by the
/// MCP client SDK, and a numbered transcript of what happened. Exit 0 only when every step succeeded.
/// </summary>
public static class Demo
{
    public const string ChannelMethod = "notifications/claude/channel";

    public static async Task<int> RunAsync(TextWriter output, CancellationToken ct)
    {
        await using var run = new DemoRun(output);
        return await run.RunAsync(ct).ConfigureAwait(false);
    }
}

internal sealed class StepFailed(string message) : Exception(message);

/// <summary>One agent of the demo: its workspace, its molecule-mcp process (via the MCP client) and what it printed.</summary>
internal sealed class DemoAgent(string name, string role, string[] skills)
{
    public string Name { get; } = name;
    public string Role { get; } = role;
    public string[] Skills { get; } = skills;
    public string Id { get; set; } = "";
    public string Token { get; set; } = "";
    public McpClient? Client { get; set; }
    public ConcurrentQueue<string> Stderr { get; } = new();
    public ConcurrentQueue<JsonObject> Channel { get; } = new();
    public string Short => Id.Length >= 8 ? Id[..8] : Id;
}

internal sealed class DemoRun(TextWriter output) : IAsyncDisposable
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(20);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<string> _secrets = [];
    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), "molecule-demo-" + Guid.NewGuid().ToString("N")[..12]);
    private Server.RunningPlatform? _platform;
    private AdminClient? _admin;
    private int _step;
    private string _stepTitle = "";
    private bool _cleanedUp;

    private readonly DemoAgent _lead = new("Lead", "team lead", ["planning", "code-review"]);
    private readonly DemoAgent _researcher = new("Researcher", "research specialist", ["research", "summaries"]);
    private readonly DemoAgent _coder = new("Coder", "implementation specialist", ["csharp", "testing"]);
    private DemoAgent[] Agents => [_lead, _researcher, _coder];

    // ------------------------------------------------------------------ transcript

    private string Mask(string text)
    {
        foreach (var s in _secrets)
            if (s.Length >= 4) text = text.Replace(s, "***", StringComparison.Ordinal);
        return text;
    }

    private void Line(string text = "")
    {
        output.WriteLine(Mask(text));
        output.Flush();
    }

    private void Step(string title)
    {
        _step++;
        _stepTitle = title;
        Line();
        Line($"{_step.ToString(CultureInfo.InvariantCulture)}. {title}");
    }

    private void Ok(string text) => Line($"   ✔ {text}");

    private void Detail(string text)
    {
        foreach (var l in text.Split('\n'))
            Line($"     │ {l.TrimEnd('\r')}");
    }

    private static void Require(bool condition, string failure)
    {
        if (!condition) throw new StepFailed(failure);
    }

    private string Elapsed => _clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";

    // ------------------------------------------------------------------ run

    public async Task<int> RunAsync(CancellationToken outer)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(outer);
        limit.CancelAfter(TimeSpan.FromSeconds(120));
        var ct = limit.Token;

        Line("molecule-platform demo: a temporary local platform and three real molecule-mcp agents, driven over MCP");
        try
        {
            await SetUpAsync(ct).ConfigureAwait(false);
            await ConnectAsync(ct).ConfigureAwait(false);
            await DelegationAsync(ct).ConfigureAwait(false);
            await UserMessageAsync(ct).ConfigureAwait(false);
            await TeamMemoryAsync(ct).ConfigureAwait(false);
            await DeletionAsync(ct).ConfigureAwait(false);
            Step("Cleanup");
            await CleanupAsync().ConfigureAwait(false);
            Ok("clients closed, agent processes ended, platform stopped, temporary directory removed");
        }
        catch (Exception e) // any failure ends the demo with ✘, cleanup and exit 1 (never an unhandled crash)
        {
            var why = e switch
            {
                StepFailed => e.Message,
                OperationCanceledException when outer.IsCancellationRequested => "interrupted",
                OperationCanceledException => "the demo took longer than 120 s",
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            Line($"   ✘ {why}");
            DumpStderr();
            try { await CleanupAsync().ConfigureAwait(false); }
            catch (Exception ce) { Line($"   ✘ cleanup: {ce.Message}"); }
            Line();
            var at = _step == 0 ? "set-up" : $"step {_step.ToString(CultureInfo.InvariantCulture)} ({_stepTitle})";
            Line($"✘ Demo FAILED at {at} after {Elapsed}: {why}");
            return ExitCodes.PlatformError;
        }
        Line();
        Line($"✔ All {_step.ToString(CultureInfo.InvariantCulture)} steps passed in {Elapsed}.");
        Line("  Run your own: `molecule-platform platform`, then `molecule-platform workspace create --name NAME` and paste the printed line.");
        return ExitCodes.Ok;
    }

    private void DumpStderr()
    {
        foreach (var a in Agents)
        {
            var lines = a.Stderr.ToArray();
            if (lines.Length == 0) continue;
            Line($"     last stderr lines of {a.Name}'s molecule-mcp:");
            foreach (var l in lines.TakeLast(8)) Line("       " + l);
        }
    }

    // ------------------------------------------------------------------ set-up

    private async Task SetUpAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(_tempDir);
        _platform = await Canvas.startAt(Path.Combine(_tempDir, "platform"), "127.0.0.1", 0).ConfigureAwait(false);
        _secrets.Add(_platform.AdminToken);
        _admin = new AdminClient(_platform.Url, _platform.AdminToken, "the embedded platform stopped");
        Line($"   platform: {_platform.Url} (embedded, data in {_tempDir})");

        foreach (var a in Agents)
        {
            var body = new JsonObject
            {
                ["name"] = a.Name,
                ["role"] = a.Role,
                ["skills"] = new JsonArray(a.Skills.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            };
            if (a != _lead) body["parent_id"] = _lead.Id;
            var created = await _admin.PostAsync("/workspaces", body, ct).ConfigureAwait(false);
            a.Id = AdminClient.Str(created, "id") ?? throw new StepFailed("the platform did not return a workspace id");
            a.Token = AdminClient.Str(created, "auth_token") ?? throw new StepFailed("the platform did not return a token");
            _secrets.Add(a.Token);
        }
        Line($"   team:     {_lead.Name} [{string.Join(", ", _lead.Skills)}] → " +
             $"{_researcher.Name} [{string.Join(", ", _researcher.Skills)}], {_coder.Name} [{string.Join(", ", _coder.Skills)}]  (tokens: ***)");
    }

    private Dictionary<string, string?> EnvFor(DemoAgent a) => new()
    {
        ["WORKSPACE_ID"] = a.Id,
        ["PLATFORM_URL"] = _platform!.Url,
        ["MOLECULE_WORKSPACE_TOKEN"] = a.Token,
        ["MOLECULE_AGENT_NAME"] = a.Name,
        ["MOLECULE_AGENT_SKILLS"] = string.Join(",", a.Skills),
        ["MOLECULE_AGENT_DESCRIPTION"] = a.Role,
        ["CONFIGS_DIR"] = Path.Combine(_tempDir, "agents", a.Name.ToLowerInvariant()),
        ["MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS"] = "1",
        ["MOLECULE_MCP_POLL_INTERVAL_SECS"] = "0.5",
        // Whatever the caller's shell has, these agents use the defaults.
        ["MOLECULE_MCP_DISABLE_HEARTBEAT"] = null,
        ["MOLECULE_MCP_DISABLE_INBOX"] = null,
        ["MOLECULE_MCP_VERBOSE"] = null,
        ["MOLECULE_MCP_POLL_TIMEOUT_SECS"] = null,
        ["WORKSPACE_TIER"] = null,
    };

    private async Task<McpClient> StartClientAsync(DemoAgent a, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.Combine(_tempDir, "agents", a.Name.ToLowerInvariant()));
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = a.Name,
            Command = ConnectionLines.BinaryPath(),
            Arguments = [],
            EnvironmentVariables = EnvFor(a),
            WorkingDirectory = _tempDir,
            StandardErrorLines = line => a.Stderr.Enqueue(line),
            ShutdownTimeout = TimeSpan.FromSeconds(3),
        });
        var options = new McpClientOptions
        {
            ClientInfo = new Implementation { Name = "molecule-mcp-demo", Version = "1.0" },
            ProtocolVersion = "2025-06-18",
            Handlers = new McpClientHandlers
            {
                NotificationHandlers =
                [
                    new(Demo.ChannelMethod, (n, _) =>
                    {
                        if (n.Params is JsonObject p) a.Channel.Enqueue(p);
                        return ValueTask.CompletedTask;
                    }),
                ],
            },
        };
        return await McpClient.CreateAsync(transport, options, cancellationToken: ct).ConfigureAwait(false);
    }

    private static async Task<string> CallAsync(DemoAgent a, string tool, Dictionary<string, object?> args, CancellationToken ct)
    {
        var result = await a.Client!.CallToolAsync(tool, args, cancellationToken: ct).ConfigureAwait(false);
        var text = string.Join("\n", result.Content.OfType<TextContentBlock>().Select(t => t.Text));
        if (result.IsError == true) throw new StepFailed($"{a.Name}'s {tool} returned an error: {text}");
        return text;
    }

    private static async Task<T> WaitForAsync<T>(Func<T?> probe, TimeSpan limit, string failure, CancellationToken ct) where T : class
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (probe() is { } found) return found;
            if (sw.Elapsed > limit) throw new StepFailed(failure);
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

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

    // ------------------------------------------------------------------ cleanup

    private async Task CleanupAsync()
    {
        if (_cleanedUp) return;
        _cleanedUp = true;
        foreach (var a in Agents)
        {
            if (a.Client is null) continue;
            try { await a.Client.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
            catch (Exception) { }
            a.Client = null;
        }
        _admin?.Dispose();
        _admin = null;
        if (_platform is not null)
        {
            try { await _platform.StopAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false); }
            catch (Exception) { }
            _platform = null;
        }
        for (var i = 0; i < 5 && Directory.Exists(_tempDir); i++)
        {
            try { Directory.Delete(_tempDir, recursive: true); }
            catch (IOException) { await Task.Delay(200).ConfigureAwait(false); }
            catch (UnauthorizedAccessException) { await Task.Delay(200).ConfigureAwait(false); }
        }
        if (Directory.Exists(_tempDir)) throw new StepFailed($"could not remove {_tempDir}");
    }

    public async ValueTask DisposeAsync()
    {
        try { await CleanupAsync().ConfigureAwait(false); }
        catch (StepFailed) { }
    }
}
