using System.Runtime.InteropServices;
using Molecule.Platform;

namespace Molecule.PlatformHost.Cli;

/// <summary>`molecule-platform platform`: runs the local Molecule platform in the foreground until Ctrl+C / SIGTERM.</summary>
public static class PlatformCommand
{
    public const string LogPrefix = "[molecule-platform] ";

    /// <summary>The environment variable naming this instance when `--instance-name` is not given.</summary>
    public const string InstanceVariable = "MOLECULE_PLATFORM_INSTANCE";

    /// <summary>The options of `molecule-platform platform`.</summary>
    public sealed record Settings(string? DataDir, string Host, int Port, string[] AllowedHosts, bool OpenRegistration,
        bool EnableFaults, string? Database, RateLimit.Limits Limits, string? Instance = null, bool JsonLog = false);

    public static async Task<int> RunAsync(Settings settings, CancellationToken ct)
    {
        var sink = new PlatformLog(LogPrefix, settings.JsonLog);
        try { return await RunCoreAsync(settings, sink, ct).ConfigureAwait(false); }
        finally { await sink.FlushAndStopAsync().ConfigureAwait(false); } // every queued line out, also on a failed start
    }

    private static async Task<int> RunCoreAsync(Settings settings, PlatformLog sink, CancellationToken ct)
    {
        void Log(string text) => sink.Write(text);
        var instanceGiven = settings.Instance ?? Environment.GetEnvironmentVariable(InstanceVariable);
        var (dataDirOption, host, port) = (settings.DataDir, settings.Host, settings.Port);
        var dataDir = PlatformLocation.DataDir(dataDirOption);
        try
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dataDir);
            else Directory.CreateDirectory(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
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

        var database = PlatformLocation.Database(settings.Database);
        if (database is not null && !PostgresStore.isUrl(database))
            throw new CliException($"${PlatformLocation.DatabaseVariable} is not a postgres:// (or postgresql://) URL");
        var options = Server.PlatformOptionsModule.named(instanceGiven!, Server.PlatformOptionsModule.onDatabase(database!,
            Server.PlatformOptionsModule.create(dataDir, host, port, settings.EnableFaults, settings.OpenRegistration,
                settings.AllowedHosts, settings.Limits, Log, ConnectionLines.BinaryPath())));
        try
        {
            options = Server.PlatformOptionsModule.withNudgeVariables(name => Environment.GetEnvironmentVariable(name) ?? "", options);
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message.Split(" (Parameter")[0]);
        }
        sink.Instance = Server.instanceOf(options);
        Log(database is null
            ? $"instance {sink.Instance} starting on {host}:{port} with data dir {dataDir}"
            : $"instance {sink.Instance} starting on {host}:{port} with data dir {dataDir} and database {PostgresStore.describe(database)}");
        Server.RunningPlatform platform;
        try
        {
            platform = await Canvas.start(options).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException
                                       or System.Data.Common.DbException)
        {
            // the data directory in use, a database newer than this binary, an address taken, a damaged database
            throw new CliException($"the platform did not start: {e.Message}");
        }

        var pid = Environment.ProcessId;
        try
        {
            var tokenFile = PlatformLocation.AdminTokenFile(dataDir);
            Console.Out.WriteLine($"Molecule platform running at {platform.Url}");
            // The admin token itself is never printed: the canvas asks for it (or takes it from a #token= link).
            Console.Out.WriteLine($"Canvas:      {platform.Url}/  (sign in with the admin token)");
            Console.Out.WriteLine($"Admin token: stored in {tokenFile}  (cat it to sign in; open {platform.Url}/#token=<token> to skip the form)");
            Console.Out.WriteLine($"Data dir:    {dataDir}");
            if (database is not null) Console.Out.WriteLine($"Database:    {PostgresStore.describe(database)}");
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
            await platform.StopAsync().ConfigureAwait(false);
        }
        Log("stopped");
        return ExitCodes.Ok;
    }
}
