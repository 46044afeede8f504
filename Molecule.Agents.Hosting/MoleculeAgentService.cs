using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Molecule.Agents.Hosting;

/// <summary>
/// The hosted agent: connects when the host starts (bad options fail the start), hands each message to the scoped
/// <see cref="IMoleculeMessageHandler"/>, and on stop lets the message in hand finish before the agent is disposed.
/// </summary>
internal sealed class MoleculeAgentService(MoleculeOptions options, IServiceScopeFactory scopes,
    IHostApplicationLifetime lifetime, ILoggerFactory? loggerFactory) : BackgroundService
{
    /// <summary>The longest pause before a failed message is handed to the handler again.</summary>
    private static readonly TimeSpan LongestPause = TimeSpan.FromSeconds(60);

    private readonly ILogger _log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Molecule.Agents.Hosting");

    /// <summary>Cancelled only when the host's shutdown timeout runs out: the handler's token.</summary>
    private readonly CancellationTokenSource _abort = new();

    private MoleculeAgent? _agent;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _agent = await MoleculeAgent.ConnectAsync(options, loggerFactory, cancellationToken).ConfigureAwait(false);
        _log.LogInformation("Molecule agent started for workspace {Workspace}", _agent.WorkspaceId);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var agent = _agent!;
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var message in agent.ReadMessagesAsync(stoppingToken).ConfigureAwait(false))
                {
                    await HandleAsync(agent, message).ConfigureAwait(false);
                    failures = 0;
                }
                return; // the agent was disposed
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException && stoppingToken.IsCancellationRequested)
            {
                return; // stopping (the agent disposed under a handler that outlived the shutdown timeout)
            }
            catch (MoleculeAgentStoppedException stopped)
            {
                _log.LogCritical("{Reason} Stopping the application (exit code {Code}).", stopped.Message, stopped.ExitCode);
                Environment.ExitCode = stopped.ExitCode;
                lifetime.StopApplication();
                return;
            }
            catch (HandlerFailedException failed)
            {
                failures++;
                var pause = Pause(failures);
                _log.LogError("Handling message {Id} failed ({Failures} time(s) in a row): {Error}. It stays in the inbox and is handed over again in {Pause}.",
                    failed.MessageId, failures, agent.Redact(failed.InnerException!.ToString()), pause);
                try
                {
                    await Task.Delay(pause, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>One message to a handler of its own scope; its failure as a <see cref="HandlerFailedException"/>.</summary>
    private async Task HandleAsync(MoleculeAgent agent, MoleculeMessage message)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var handler = scope.ServiceProvider.GetRequiredService<IMoleculeMessageHandler>();
            await handler.HandleAsync(message, agent, _abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new HandlerFailedException(message.Id, ex);
        }
    }

    /// <summary>1 s after the first failure, doubling, at most <see cref="LongestPause"/>.</summary>
    internal static TimeSpan Pause(int failures) =>
        TimeSpan.FromSeconds(Math.Min(LongestPause.TotalSeconds, Math.Pow(2, Math.Min(failures - 1, 16))));

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // Reading stops now; the handler is cancelled only when the shutdown timeout (cancellationToken) runs out.
        await using (cancellationToken.Register(_abort.Cancel).ConfigureAwait(false))
        {
            await base.StopAsync(cancellationToken).ConfigureAwait(false);
        }
        if (_agent is { } agent) await agent.DisposeAsync().ConfigureAwait(false);
    }

    public override void Dispose()
    {
        _abort.Dispose();
        base.Dispose();
    }

    /// <summary>A handler threw: the message it was given stays unhandled.</summary>
    private sealed class HandlerFailedException(string messageId, Exception inner) : Exception(inner.Message, inner)
    {
        public string MessageId { get; } = messageId;
    }
}
