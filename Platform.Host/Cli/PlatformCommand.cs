using System.Runtime.InteropServices;
using Molecule.Platform;

namespace Molecule.PlatformHost.Cli;

/// <summary>`molecule-platform platform`: runs the local Molecule platform in the foreground until Ctrl+C / SIGTERM.</summary>
public static class PlatformCommand
{
    public const string LogPrefix = "[molecule-platform] ";

    private static void Log(string text)
    {
        Console.Error.WriteLine(LogPrefix + text);
        Console.Error.Flush();
    }

    public static async Task<int> RunAsync(string? dataDirOption, string host, int port, CancellationToken ct)
    {
        var dataDir = PlatformLocation.DataDir(dataDirOption);
        try
        {
            Directory.CreateDirectory(dataDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot create the data directory {dataDir}: {e.Message}");
        }

        // Another platform already serving this data dir? Say where it is instead of a store-lock error.
        if (PlatformLocation.ReadInfo(dataDir) is { } existing && existing.Pid != Environment.ProcessId && PlatformLocation.IsAlive(existing.Pid))
            throw new CliException($"a platform is already running for {dataDir} at {existing.Url} (pid {existing.Pid}); stop it first or use another --data-dir.");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });

        Log($"starting on {host}:{port} with data dir {dataDir}");
        Server.RunningPlatform platform;
        try
        {
            platform = await Canvas.startAt(dataDir, host, port).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw new CliException($"the platform did not start: {e.Message}");
        }

        var pid = Environment.ProcessId;
        var events = platform.Events.Subscribe();
        var logEvents = Task.Run(async () =>
        {
            try
            {
                await foreach (var ev in events.Reader.ReadAllAsync(stop.Token).ConfigureAwait(false))
                {
                    if (ev.Type is "WORKSPACE_HEARTBEAT" or "ACTIVITY_LOGGED") continue;
                    var ws = ev.WorkspaceId is null ? "" : " " + ev.WorkspaceId.Value.ToString();
                    Log($"{ev.Type}{ws}");
                }
            }
            catch (OperationCanceledException) { }
            catch (System.Threading.Channels.ChannelClosedException) { }
        });

        try
        {
            var tokenFile = PlatformLocation.AdminTokenFile(dataDir);
            Console.Out.WriteLine($"Molecule platform running at {platform.Url}");
            // The admin token itself is never printed: the canvas asks for it (or takes it from a #token= link).
            Console.Out.WriteLine($"Canvas:      {platform.Url}/  (sign in with the admin token)");
            Console.Out.WriteLine($"Admin token: stored in {tokenFile}  (cat it to sign in; open {platform.Url}/#token=<token> to skip the form)");
            Console.Out.WriteLine($"Data dir:    {dataDir}");
            Console.Out.WriteLine("Create a workspace:  molecule-platform workspace create --name NAME" +
                                  (dataDirOption is null ? "" : $" --data-dir {ConnectionLines.ShellQuote(dataDir)}"));
            Console.Out.WriteLine("Press Ctrl+C to stop.");
            Console.Out.Flush();
            // Written last: platform.json is the "ready" marker admin commands and scripts wait for.
            PlatformLocation.WriteInfo(dataDir, platform.Url, pid);
            Log($"listening on {platform.Url} (pid {pid})");

            try { await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { }

            Log("stopping");
        }
        finally
        {
            PlatformLocation.RemoveInfo(dataDir, pid);
            platform.Events.Unsubscribe(events);
            await platform.StopAsync().ConfigureAwait(false);
            try { await logEvents.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false); } catch (Exception) { }
        }
        Log("stopped");
        return ExitCodes.Ok;
    }
}
