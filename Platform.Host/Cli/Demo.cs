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
/// MCP client SDK, and a numbered transcript of what happened. Exit 0 only when every step succeeded. With a data
/// directory (`--data-dir`) the platform keeps its data there, and the directory stays after the demo with the team it
/// built: SQLite's `platform.db`, `admin_token`, `secret_key` and the agents' tokens in <see cref="TeamFile"/> (mode
/// 0600), ready for `molecule-platform platform --data-dir` or `molecule-platform migrate --from`.
/// </summary>
public static class Demo
{
    public const string ChannelMethod = "notifications/claude/channel";

    /// <summary>The file a kept data directory lists the demo's workspaces in: <c>{"workspaces": [{"name", "id", "token"}]}</c>.</summary>
    public const string TeamFile = "demo-team.json";

    public static Task<int> RunAsync(TextWriter output, CancellationToken ct) => RunAsync(output, null, ct);

    /// <summary>The demo; with <paramref name="dataDir"/> (absent or empty) the platform's data is kept there.</summary>
    public static async Task<int> RunAsync(TextWriter output, string? dataDir, CancellationToken ct)
    {
        await using var run = new DemoRun(output, dataDir is null ? null : Path.GetFullPath(dataDir));
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

internal sealed partial class DemoRun(TextWriter output, string? keptDir) : IAsyncDisposable
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(20);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<string> _secrets = [];
    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), "molecule-demo-" + Guid.NewGuid().ToString("N")[..12]);
    private string DataDir => keptDir ?? Path.Combine(_tempDir, "platform");
    private Server.RunningPlatform? _platform;
    private AdminClient? _admin;
    private int _step;
    private string _stepTitle = "";
    private bool _cleanedUp;
    private string _mcp = "molecule-mcp";

    private readonly DemoAgent _lead = new("Lead", "team lead", ["planning", "code-review"]);
    private readonly DemoAgent _researcher = new("Researcher", "research specialist", ["research", "summaries"]);
    private readonly DemoAgent _coder = new("Coder", "implementation specialist", ["csharp", "testing"]);
    private DemoAgent[] Agents => [_lead, _researcher, _coder];

    /// <summary>One molecule-mcp process for two workspaces (MOLECULE_WORKSPACES); its Id is the first of them.</summary>
    private readonly DemoAgent _desk = new("Desk", "one process, two workspaces", []);
    private DemoAgent[] AllAgents => [_lead, _researcher, _coder, _desk];

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

        Line("molecule-platform demo: a temporary local platform and three real molecule-mcp agents and one serving two workspaces, driven over MCP");
        var (found, searched) = ConnectionLines.Locate();
        if (found is null)
        {
            Line();
            Line("✘ Demo FAILED at set-up: " + ConnectionLines.NotFound(searched));
            return ExitCodes.PlatformError;
        }
        _mcp = Molecule.Launching.LaunchPath.For(found);
        Line($"   molecule-mcp: {_mcp}");
        try
        {
            await SetUpAsync(ct).ConfigureAwait(false);
            await ConnectAsync(ct).ConfigureAwait(false);
            await DelegationAsync(ct).ConfigureAwait(false);
            await ChatHistoryAsync(ct).ConfigureAwait(false);
            await UserMessageAsync(ct).ConfigureAwait(false);
            await TeamMemoryAsync(ct).ConfigureAwait(false);
            await MultiWorkspaceAsync(ct).ConfigureAwait(false);
            await DeletionAsync(ct).ConfigureAwait(false);
            Step("Cleanup");
            await LoopGuardQuietAsync(ct).ConfigureAwait(false);
            await CleanupAsync().ConfigureAwait(false);
            Ok(keptDir is null
                ? "clients closed, agent processes ended, platform stopped, temporary directory removed"
                : $"clients closed, agent processes ended, platform stopped; its data is kept in {keptDir} (the agents' tokens in {Demo.TeamFile}): " +
                  $"`molecule-platform platform --data-dir {ConnectionLines.ShellQuote(keptDir)}` serves the team again");
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
        foreach (var hint in RunYourOwn(_mcp)) Line(hint);
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Where the two binaries are, how to put them on PATH when they are not, and the commands that run your own team.
    /// </summary>
    internal static IEnumerable<string> RunYourOwn(string mcp)
    {
        var platform = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "molecule-platform.exe" : "molecule-platform");
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.GetFullPath(d).TrimEnd(Path.DirectorySeparatorChar)).ToHashSet();
        var missing = new[] { Path.GetDirectoryName(platform)!, Path.GetDirectoryName(Path.GetFullPath(mcp))! }
            .Select(d => d.TrimEnd(Path.DirectorySeparatorChar)).Where(d => !onPath.Contains(d)).Distinct().ToList();
        yield return $"  The binaries: molecule-platform at {platform}, molecule-mcp at {mcp}.";
        if (missing.Count > 0)
            yield return "  Put them on PATH for this shell: export PATH=\"" + string.Join(Path.PathSeparator, missing) + Path.PathSeparator + "$PATH\""
                         + " (or install both as .NET tools: README, Install).";
        yield return "  Run your own: `molecule-platform platform`, then `molecule-platform workspace create --name NAME` and paste the printed line.";
    }

    /// <summary>
    /// The agents run with the loop guard at its defaults (or the caller's MOLECULE_MCP_LOOP_MAX_*): normal work pauses
    /// no pair, so the platform holds no loop_guard request; one that does names the pair and why.
    /// </summary>
    private async Task LoopGuardQuietAsync(CancellationToken ct)
    {
        var inbox = await _admin!.GetAsync("/admin/inbox", ct).ConfigureAwait(false);
        var paused = (inbox?["requests"] as JsonArray ?? [])
            .Where(r => AdminClient.Str(r, "source") == "loop_guard")
            .Select(r => AdminClient.Str(r, "title") ?? "?")
            .ToList();
        Require(paused.Count == 0, "the loop guard paused a pair of agents: " + string.Join("; ", paused));
        Ok("loop guard: no pair of agents paused (no loop_guard request on the platform)");
    }

    private void DumpStderr()
    {
        foreach (var a in AllAgents)
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
        if (keptDir is not null && Directory.Exists(keptDir) && Directory.EnumerateFileSystemEntries(keptDir).Any())
            throw new StepFailed($"--data-dir {keptDir} is not empty: the demo builds its team in a new data directory");
        _platform = await Canvas.startAt(DataDir, "127.0.0.1", 0).ConfigureAwait(false);
        _secrets.Add(_platform.AdminToken);
        _admin = new AdminClient(_platform.Url, _platform.AdminToken, "the embedded platform stopped");
        Line($"   platform: {_platform.Url} (embedded, data in {DataDir}{(keptDir is null ? "" : ", kept after the demo")})");

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

    private async Task<McpClient> StartClientAsync(DemoAgent a, CancellationToken ct, Dictionary<string, string?>? env = null)
    {
        Directory.CreateDirectory(Path.Combine(_tempDir, "agents", a.Name.ToLowerInvariant()));
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = a.Name,
            Command = _mcp,
            Arguments = [],
            EnvironmentVariables = env ?? EnvFor(a),
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

    // ------------------------------------------------------------------ cleanup

    private async Task CleanupAsync()
    {
        if (_cleanedUp) return;
        _cleanedUp = true;
        foreach (var a in AllAgents)
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
        if (keptDir is not null && Directory.Exists(keptDir)) WriteTeamFile(keptDir);
        for (var i = 0; i < 5 && Directory.Exists(_tempDir); i++)
        {
            try { Directory.Delete(_tempDir, recursive: true); }
            catch (IOException) { await Task.Delay(200).ConfigureAwait(false); }
            catch (UnauthorizedAccessException) { await Task.Delay(200).ConfigureAwait(false); }
        }
        if (Directory.Exists(_tempDir)) throw new StepFailed($"could not remove {_tempDir}");
    }

    /// <summary>The team's workspaces with their tokens, readable by the owner only (like admin_token).</summary>
    private void WriteTeamFile(string dir)
    {
        var workspaces = Agents.Select(a => (a.Name, a.Id, a.Token)).Concat(_desks).Where(w => w.Id != "")
            .Select(w => (JsonNode?)new JsonObject { ["name"] = w.Name, ["id"] = w.Id, ["token"] = w.Token });
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var file = new StreamWriter(Path.Combine(dir, Demo.TeamFile), new System.Text.UTF8Encoding(false), options);
        file.Write(new JsonObject { ["workspaces"] = new JsonArray(workspaces.ToArray()) }.ToJsonString());
    }

    public async ValueTask DisposeAsync()
    {
        try { await CleanupAsync().ConfigureAwait(false); }
        catch (StepFailed) { }
    }
}
