// A library agent for the crash tests (Tests/Agents/CrashTests.fs): the README's loop, answering every message
// ("Done: <text>"), with each handler entry and completion appended to MOLECULE_TEST_HANDLER_LOG as it happens —
// `enter` when the loop body starts, `done` when it is about to complete — so a test that kills the process -9 at a
// random point can tell what the handler saw. MOLECULE_TEST_HANDLER_PAUSE_MS: the longest random pause inside the
// handler (default 0). Exit codes as samples/CSharp: 0 stopped (SIGTERM), 2 bad options, the agent's own when stopped.
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Molecule.Agents;

var logPath = Environment.GetEnvironmentVariable("MOLECULE_TEST_HANDLER_LOG")
    ?? throw new InvalidOperationException("MOLECULE_TEST_HANDLER_LOG is not set");
var longestPause = int.TryParse(Environment.GetEnvironmentVariable("MOLECULE_TEST_HANDLER_PAUSE_MS"), out var ms) ? ms : 0;
using var handlerLog = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite));
// One line per step, flushed to the operating system at once: a kill -9 of this process loses none of it.
void Record(string step, MoleculeMessage m)
{
    handlerLog.WriteLine($"{step}\t{m.Id}\t{m.WorkspaceId}\t{m.Text}");
    handlerLog.Flush();
}

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
using var loggerFactory = LoggerFactory.Create(logging => logging.AddSimpleConsole(o => o.SingleLine = true));
try
{
    await using var agent = await MoleculeAgent.ConnectAsync(MoleculeOptions.FromEnvironment(), loggerFactory, stop.Token);
    await foreach (var message in agent.ReadMessagesAsync(stop.Token))
    {
        Record("enter", message);
        if (longestPause > 0) await Task.Delay(Random.Shared.Next(longestPause + 1));
        if (message.CanReply) await message.ReplyAsync($"Done: {message.Text}");
        Record("done", message);
    }
    return 0;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested) { return 0; }
catch (MoleculeOptionsException invalid) { Console.Error.WriteLine(invalid.Message); return 2; }
catch (MoleculeAgentStoppedException stopped) { Console.Error.WriteLine(stopped.Message); return stopped.ExitCode; }
