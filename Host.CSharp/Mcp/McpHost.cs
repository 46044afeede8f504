using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Molecule.Agents;

namespace Molecule.Host.Mcp;

/// <summary>
/// The stdio MCP server: SDK options, protocol-version normalisation, client-initialized detection,
/// channel notifications, stdout hygiene and prompt exit on stdin EOF.
/// </summary>
public sealed class McpHost
{
    public const string ChannelCapability = "claude/channel";
    public const string ChannelMethod = "notifications/claude/channel";

    /// <summary>The permission relay (Claude Code's channel permission prompts): the capability, the prompt a client
    /// sends and the answer the server sends back — the core's names.</summary>
    public static readonly string PermissionCapability = Molecule.Core.Permissions.capability;
    public static readonly string PermissionRequestMethod = Molecule.Core.Permissions.requestMethod;
    public static readonly string PermissionAnswerMethod = Molecule.Core.Permissions.answerMethod;

    /// <summary>Versions the SDK (2.3.1) negotiates through <c>initialize</c>, oldest first.</summary>
    public static readonly IReadOnlyList<string> InitializeVersions = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

    /// <summary>How long in-flight handlers may take to finish after stdin EOF before the process exits anyway.</summary>
    public static readonly TimeSpan EofGrace = TimeSpan.FromMilliseconds(500);

    private readonly string _instructions;
    private readonly IReadOnlyList<McpServerTool> _tools;
    private readonly ILoggerFactory _loggerFactory;
    private readonly StderrLog _log;
    private readonly int _maxLineBytes;
    private readonly bool _permissionRelay;
    private McpServer? _server;
    private int _initialized;

    public McpHost(string instructions, IEnumerable<McpServerTool> tools, ILoggerFactory loggerFactory, StderrLog log,
        int maxLineBytes = 4 * 1024 * 1024, bool permissionRelay = false)
    {
        _permissionRelay = permissionRelay;
        _maxLineBytes = maxLineBytes;
        _instructions = instructions;
        _tools = tools.ToList();
        _loggerFactory = loggerFactory;
        _log = log;
    }

    /// <summary>Raised once, after the client's <c>notifications/initialized</c> has been processed.</summary>
    public event Action? ClientInitialized;

    public bool IsClientInitialized => Volatile.Read(ref _initialized) == 1;

    /// <summary>Raised for each permission prompt the client sends (only when the relay is declared).</summary>
    public event Action<PermissionPrompt>? PermissionRequested;

    /// <summary>The SDK options for this server (exposed for tests and diagnostics).</summary>
    public McpServerOptions BuildOptions()
    {
        var tools = new McpServerPrimitiveCollection<McpServerTool>();
        foreach (var t in _tools) tools.Add(t);

        var options = new McpServerOptions
        {
            ServerInfo = new Implementation { Name = AppInfo.Name, Version = AppInfo.Version },
            ServerInstructions = _instructions,
            Capabilities = new ServerCapabilities
            {
                Tools = new ToolsCapability(),
                Experimental = Experimental(),
            },
            ToolCollection = tools,
            // ProtocolVersion stays null: the client's version is honoured when the SDK supports it.
        };
        options.Filters.Message.IncomingFilters.Add(next => async (context, ct) =>
        {
            if (context.JsonRpcMessage is JsonRpcRequest { Method: RequestMethods.Initialize } init)
                NormaliseInitializeVersion(init);

            if (_permissionRelay && context.JsonRpcMessage is JsonRpcNotification { Method: var method } prompt
                && method == PermissionRequestMethod)
            {
                RaisePermission(prompt.Params as JsonObject);
                return; // the SDK has no handler for it: it ends here
            }

            await next(context, ct).ConfigureAwait(false);

            if (context.JsonRpcMessage is JsonRpcNotification { Method: NotificationMethods.InitializedNotification }
                && Interlocked.Exchange(ref _initialized, 1) == 0)
            {
                RaiseInitialized();
            }
        });
        return options;
    }

    /// <summary>
    /// Rewrites a requested protocol version the SDK would refuse (2026-07-28+ or not a date) or that is absent
    /// to the newest initialize-capable version, so every client gets a usable answer.
    /// </summary>
    internal static void NormaliseInitializeVersion(JsonRpcRequest init)
    {
        if (init.Params is not JsonObject p) return;
        string? requested = null;
        if (p["protocolVersion"] is JsonValue v && v.TryGetValue<string>(out var s)) requested = s;
        if (requested is null || !InitializeVersions.Contains(requested))
            p["protocolVersion"] = InitializeVersions[^1];
    }

    /// <summary>The experimental capabilities: the channel, and the permission relay when it is on.</summary>
    private Dictionary<string, object> Experimental()
    {
        var experimental = new Dictionary<string, object> { [ChannelCapability] = new JsonObject() };
        if (_permissionRelay) experimental[PermissionCapability] = new JsonObject();
        return experimental;
    }

    private void RaisePermission(JsonObject? p)
    {
        static string Field(JsonObject? o, string name) =>
            o?[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
        try
        {
            PermissionRequested?.Invoke(new PermissionPrompt(Field(p, "request_id"), Field(p, "tool_name"), Field(p, "description"),
                Field(p, "input_preview")));
        }
        catch (Exception ex)
        {
            _log.Error($"handling a permission prompt failed: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>Sends <c>notifications/claude/channel/permission {request_id, behavior}</c> (dropped like a channel
    /// notification before the client is initialized or after it left).</summary>
    public Task SendPermissionAsync(PermissionAnswer answer, CancellationToken ct = default) =>
        SendAsync(PermissionAnswerMethod, new JsonObject { ["request_id"] = answer.RequestId, ["behavior"] = answer.Behavior }, ct);

    private void RaiseInitialized()
    {
        try
        {
            ClientInitialized?.Invoke();
        }
        catch (Exception ex)
        {
            _log.Error($"handling notifications/initialized failed: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>
    /// Sends <c>notifications/claude/channel</c>. Dropped silently before the client is initialized or after it
    /// disconnected.
    /// </summary>
    public Task SendChannelAsync(JsonObject parameters, CancellationToken ct = default) => SendAsync(ChannelMethod, parameters, ct);

    private async Task SendAsync(string method, JsonObject parameters, CancellationToken ct)
    {
        var server = _server;
        if (server is null || !IsClientInitialized) return;
        try
        {
            await server.SendMessageAsync(new JsonRpcNotification
            {
                Method = method,
                Params = parameters.Parent is null ? parameters : parameters.DeepClone(),
            }, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _log.Debug($"{method} dropped: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>
    /// Runs the stdio server until stdin EOF (or <paramref name="ct"/>). At EOF the requests already read are
    /// answered first (up to <see cref="DiscoverGateTransport.DrainLimit"/>); then in-flight tool calls are
    /// cancelled, and if they have not finished within <see cref="EofGrace"/>, the process exits with 0.
    /// Returns the exit code.
    /// </summary>
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        var options = BuildOptions();
        // The transport opens the raw stdout stream; afterwards every Console.Out write goes to stderr so that
        // stray writes (ours or a library's) can never corrupt the JSON-RPC stream.
        // stdin lines longer than the cap never reach the SDK whole (see LineCapStream).
        var stdin = new LineCapStream(Console.OpenStandardInput(), _maxLineBytes);
        var stdio = new StreamServerTransport(stdin, Console.OpenStandardOutput(), AppInfo.Name, _loggerFactory);
        Console.SetOut(Console.Error);
        // server/discover probes and oversized lines are answered before the SDK session sees them.
        var transport = new DiscoverGateTransport(stdio, _log);
        stdin.AtEnd = transport.DrainAsync; // answers to what was read before EOF still go out
        var server = McpServer.Create(transport, options, _loggerFactory);
        _server = server;

        using var runCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var eof = transport.MessageReader.Completion;
        // stdin EOF: the SDK stops sending (answers to requests still running would be dropped anyway), so cancel
        // the running handlers at once and exit after a short grace even if one ignores its token.
        var graceAfterEof = eof.ContinueWith(async _ =>
        {
            try { runCts.Cancel(); } catch (ObjectDisposedException) { }
            await Task.Delay(EofGrace).ConfigureAwait(false);
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();

        var run = RunAndDisposeAsync(server, transport, runCts.Token);

        var first = await Task.WhenAny(run, graceAfterEof).ConfigureAwait(false);
        if (first != run && !run.IsCompleted)
        {
            _log.Debug("stdin closed; exiting without waiting for in-flight tool calls");
            _log.Flush();
            Environment.Exit(0);
        }
        return await run.ConfigureAwait(false);
    }

    private async Task<int> RunAndDisposeAsync(McpServer server, DiscoverGateTransport transport, CancellationToken token)
    {
        var exitCode = 0;
        try
        {
            await server.RunAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // EOF or shutdown.
        }
        catch (Exception ex)
        {
            _log.Error($"MCP server stopped: {ex.GetType().Name}: {ex.Message}");
            exitCode = 1;
        }
        finally
        {
            _server = null;
            try { await server.DisposeAsync().ConfigureAwait(false); } catch (Exception) { }
            try { await transport.DisposeAsync().ConfigureAwait(false); } catch (Exception) { }
        }
        return exitCode;
    }
}
