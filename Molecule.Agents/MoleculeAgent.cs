using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Molecule.Agents.Effects;
using Molecule.Core;
using CoreChannel = Molecule.Core.Channel;

namespace Molecule.Agents;

/// <summary>
/// A workspace agent of a Molecule team — the same agent <c>molecule-mcp</c> runs, for a .NET program: it registers
/// the workspace and keeps it online (heartbeats), keeps an inbox of the messages the user and peer agents send it
/// (a ledger on disk, delivered oldest first, exactly once handled, across restarts), and does what the team tools do.
/// </summary>
/// <example>
/// <code>
/// await using var agent = await MoleculeAgent.ConnectAsync(MoleculeOptions.FromEnvironment(), loggerFactory, ct);
/// await foreach (var message in agent.ReadMessagesAsync(ct))
///     await message.ReplyAsync($"Done: {message.Text}", ct);
/// </code>
/// </example>
public sealed partial class MoleculeAgent : IAsyncDisposable
{
    /// <summary>The longest a single wait of <see cref="ReadMessagesAsync"/> lasts (wait_for_message's limit).</summary>
    private static readonly TimeSpan LongestWait = TimeSpan.FromSeconds(300);

    private readonly AgentLoop _loop;
    private readonly AgentLog _log;
    private readonly Config _primary;
    private int _reading;
    private int _notifying;
    private int _answering;

    private MoleculeAgent(AgentLoop loop, AgentLog log, IReadOnlyList<Config> configs)
    {
        _loop = loop;
        _log = log;
        _primary = configs[0];
        WorkspaceIds = configs.Select(c => c.WorkspaceId.Value).ToList();
        Settings = new AgentSettings(_primary.AgentCard.Name, _primary.StateDir, _primary.Verbose, _primary.HeartbeatEnabled,
            _primary.InboxEnabled, _primary.StreamEnabled, TimeSpan.FromSeconds(_primary.HeartbeatIntervalSecs),
            TimeSpan.FromSeconds(_primary.PollIntervalSecs), _primary.PollTimeoutSecs, _primary.MaxLineBytes,
            _primary.PermissionRelay, TimeSpan.FromSeconds(_primary.PermissionTimeoutSecs));
    }

    /// <summary>
    /// Starts an agent: the core validates the options (every problem at once, as <c>molecule-mcp</c> reports them:
    /// <see cref="MoleculeOptionsException"/>), then each workspace's inbox ledger is opened and the agent starts —
    /// registration, heartbeats and the inbox run in the background from here. Should the platform refuse the workspace,
    /// <see cref="Completion"/> and <see cref="ReadMessagesAsync"/> end with <see cref="MoleculeAgentStoppedException"/>.
    /// </summary>
    /// <param name="options">Where and as whom to connect.</param>
    /// <param name="loggerFactory">Where the agent logs (category <c>Molecule.Agents</c>; tokens are masked before a line
    /// reaches it). Null: nowhere.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<MoleculeAgent> ConnectAsync(MoleculeOptions options, ILoggerFactory? loggerFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var log = new AgentLog(loggerFactory?.CreateLogger("Molecule.Agents") ?? NullLogger.Instance);
        var parsed = AgentBoot.Parse(options.ToVariables(), log);
        if (parsed.IsError)
            throw new MoleculeOptionsException(Connections.helpText(parsed.ErrorValue), MoleculeOptions.Problems(parsed.ErrorValue));
        var configs = parsed.ResultValue.ToList();
        // Opening a ledger may wait for another process of this machine to finish writing it.
        var workspaces = await Task.Run(() => AgentBoot.Open(configs, log), cancellationToken).ConfigureAwait(false);
        var loop = new AgentLoop(workspaces, log, new HttpExecutor());
        loop.Start();
        return new MoleculeAgent(loop, log, configs);
    }

    /// <summary>The workspace the agent acts for unless told otherwise (the primary).</summary>
    public string WorkspaceId => _primary.WorkspaceId.Value;

    /// <summary>Every workspace the agent serves, the primary first.</summary>
    public IReadOnlyList<string> WorkspaceIds { get; }

    /// <summary>The settings it runs with, as the core read them from the options.</summary>
    public AgentSettings Settings { get; }

    /// <summary>The tools every agent offers, in the order the MCP server lists them (see <see cref="CallToolAsync"/>).</summary>
    public static IReadOnlyList<ToolInfo> Tools => ToolInfo.All;

    /// <summary>What the MCP server tells its client about receiving and answering messages (its instructions).</summary>
    public string Instructions => CoreChannel.instructionsWith(_primary.PollTimeoutSecs, _primary.PermissionRelay);

    /// <summary>
    /// Ends when the agent stops: completed once it is disposed, faulted with <see cref="MoleculeAgentStoppedException"/>
    /// when the platform refused the workspace.
    /// </summary>
    public Task Completion => _loop.Completion;

    /// <summary>The text with every secret this agent holds (its tokens) masked.</summary>
    public string Redact(string text) => _log.Redact(text);

    // -----------------------------------------------------------------------------------------------------
    // Inbound messages
    // -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// The inbound messages of every workspace, oldest first, each handed out until it is handled: a message counts as
    /// handled when its iteration completes (the loop body finished and the next one is asked for), and is then gone
    /// for good, across restarts. A body that throws, a <c>break</c>, or a process that dies mid-body leaves the message
    /// unhandled, so it comes again — at least once into your code, exactly once handled. (Call
    /// <see cref="MoleculeMessage.MarkHandledAsync"/> before a <c>break</c> to count it handled.) Waits without polling
    /// while the inbox is empty. One reader at a time. Ends when the agent is disposed; throws
    /// <see cref="MoleculeAgentStoppedException"/> when the platform stopped it.
    /// </summary>
    public async IAsyncEnumerable<MoleculeMessage> ReadMessagesAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _reading, 1) == 1)
            throw new InvalidOperationException("Messages are already being read: one reader at a time, or a message would be handled twice.");
        try
        {
            while (true)
            {
                var next = await NextMessageAsync(cancellationToken).ConfigureAwait(false);
                if (next is null) yield break;
                yield return next;
                // The iteration completed: handled. Recorded even if the caller's token was cancelled meanwhile.
                await MarkHandledAsync(next.Id, CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <summary>The oldest waiting message, waiting as long as it takes; null once the agent is disposed.</summary>
    private async Task<MoleculeMessage?> NextMessageAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                if (await WaitForMessageAsync(LongestWait, cancellationToken).ConfigureAwait(false) is { } message)
                    return message;
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// The oldest waiting message, without taking it out of the inbox (<c>wait_for_message</c>): at once when one is
    /// waiting, else the first to arrive within <paramref name="timeout"/> (at most 300 s); null when none came.
    /// </summary>
    public async Task<MoleculeMessage?> WaitForMessageAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var args = new JsonObject { ["timeout_secs"] = Math.Max(0, timeout.TotalSeconds) };
        var text = await CallOrThrowAsync("wait_for_message", args, cancellationToken).ConfigureAwait(false);
        return ToolAnswers.Waited(text) is { } json ? MoleculeMessage.FromJson(this, json, WorkspaceId) : null;
    }

    /// <summary>The oldest waiting messages (<c>inbox_peek</c>, at most <paramref name="limit"/>), left in the inbox.</summary>
    public async Task<IReadOnlyList<MoleculeMessage>> PeekMessagesAsync(int limit = 10, CancellationToken cancellationToken = default)
    {
        var text = await CallOrThrowAsync("inbox_peek", new JsonObject { ["limit"] = limit }, cancellationToken).ConfigureAwait(false);
        return ToolAnswers.Peeked(text).Select(json => MoleculeMessage.FromJson(this, json, WorkspaceId)).OfType<MoleculeMessage>().ToList();
    }

    /// <summary>
    /// Marks a message handled (<c>inbox_pop</c>): removed from the inbox on disk before this returns, acknowledged to
    /// the platform after. Returns whether it was still waiting.
    /// </summary>
    public async Task<bool> MarkHandledAsync(string messageId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messageId);
        var text = await CallOrThrowAsync("inbox_pop", new JsonObject { ["activity_id"] = messageId }, cancellationToken).ConfigureAwait(false);
        return ToolAnswers.Removed(text);
    }

    /// <summary>
    /// Inbound messages pushed as the MCP server pushes them (<c>notifications/claude/channel</c>): each once when it
    /// arrives — those already waiting when reading starts first — and once more when it was left unhandled for
    /// MOLECULE_MCP_RENOTIFY_SECS. Pushing starts with the first read. Nothing is marked handled here: call
    /// <see cref="MarkHandledAsync"/>. One reader, once; ends when the agent stops.
    /// </summary>
    public async IAsyncEnumerable<ChannelNotification> ReadNotificationsAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _notifying, 1) == 1)
            throw new InvalidOperationException("Notifications can be read once, by one reader.");
        _loop.Post(Agent.Msg.ClientInitialized);
        await foreach (var notification in _loop.Notifications.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            yield return notification;
    }

    // -----------------------------------------------------------------------------------------------------
    // Permission prompts (Claude Code's channel permission relay)
    // -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Relays a permission prompt of the MCP client (<c>notifications/claude/channel/permission_request</c>) as an
    /// approval for the user of the primary workspace (its preview sanitised and secrets redacted), open for
    /// <see cref="AgentSettings.PermissionTimeout"/>. Its decision arrives through <see cref="ReadPermissionAnswersAsync"/>
    /// — once, and never after the timeout. Ignored when the relay is off (<see cref="AgentSettings.PermissionRelay"/>)
    /// or the prompt's id is not one a client makes.
    /// </summary>
    public void RelayPermissionPrompt(PermissionPrompt prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        _loop.Post(Agent.Msg.NewPermissionRequested(new Permissions.Prompt(prompt.RequestId ?? "", prompt.ToolName ?? "",
            prompt.Description ?? "", prompt.InputPreview ?? "", DateTimeOffset.UtcNow)));
    }

    /// <summary>The user's decisions on relayed permission prompts, in order (allow or deny). One reader, once.</summary>
    public async IAsyncEnumerable<PermissionAnswer> ReadPermissionAnswersAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _answering, 1) == 1)
            throw new InvalidOperationException("Permission answers can be read once, by one reader.");
        await foreach (var answer in _loop.PermissionAnswers.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            yield return answer;
    }

    // -----------------------------------------------------------------------------------------------------
    // Tool calls
    // -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Runs one tool by its MCP name with its MCP arguments and returns its answer exactly as the MCP server would
    /// (an error is an answer with <see cref="ToolResult.IsError"/>, not an exception). Cancelling abandons the call at
    /// once: its remaining steps never run. <paramref name="progress"/>, when given, gets a report every few seconds
    /// while the call runs; its <c>Report</c> is called on the agent's loop and must return quickly.
    /// </summary>
    public Task<ToolResult> CallToolAsync(string name, JsonObject? arguments = null, IProgress<ToolProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _loop.CallAsync(name, arguments, progress, cancellationToken);
    }

    /// <summary>A tool's answer text; its error as a <see cref="MoleculeToolException"/>.</summary>
    private async Task<string> CallOrThrowAsync(string tool, JsonObject arguments, CancellationToken cancellationToken)
    {
        var result = await _loop.CallAsync(tool, arguments, null, cancellationToken).ConfigureAwait(false);
        if (result.IsError)
        {
            if (_loop.Stopped && _loop.Completion.IsFaulted) throw _loop.Completion.Exception!.InnerException!;
            if (_loop.Stopped) throw new ObjectDisposedException(nameof(MoleculeAgent));
            throw new MoleculeToolException(tool, result.Text);
        }
        return result.Text;
    }

    /// <summary>
    /// Stops the agent and leaves its ledgers consistent: the step in progress finishes (a ledger write is never cut
    /// short), nothing after it starts; requests and timers are cancelled; calls still waiting end with
    /// <see cref="ObjectDisposedException"/>. Messages not yet handled stay in the inbox for the next start.
    /// </summary>
    public ValueTask DisposeAsync() => _loop.DisposeAsync();
}
