using System.Globalization;
using System.Net.Http.Headers;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Protocol;
using Molecule.Agents;
using Molecule.Agents.Effects;

namespace Molecule.Host.Cli;

/// <summary>
/// <c>molecule-mcp doctor [--json]</c>: gathers the facts (environment, files, the platform's answers) and prints the
/// core's verdict (<see cref="Doctor"/>). Exit 0 when nothing failed, else 1. The token is never printed.
/// </summary>
public static class DoctorCommand
{
    public static async Task<int> RunAsync(bool json, CancellationToken ct)
    {
        var environment = AgentBoot.ProcessEnvironment();
        var log = StderrLog.CreateForStderr(Severity.Warning);
        var parsed = AgentBoot.Parse(environment, log);
        var configs = parsed.IsOk ? parsed.ResultValue.ToList() : [];
        foreach (var c in configs) log.AddSecret(c.Token);

        var launch = Launching.LaunchPath.Facts(Environment.ProcessPath ?? Launching.LaunchPath.Exe);
        var binary = ClientConfig.launchCommand(launch);
        var stateWritable = configs.Count > 0 && StateFiles.EnsureDir(configs[0].StateDir) is null && StateFiles.IsWritableDir(configs[0].StateDir);

        FSharpOption<Response> health = FSharpOption<Response>.None;
        FSharpOption<Response> stream = FSharpOption<Response>.None;
        FSharpOption<double> skew = FSharpOption<double>.None;
        var tokens = new List<Tuple<WorkspaceId, Response>>();
        var workspaces = new List<Tuple<WorkspaceId, Response>>();
        if (configs.Count > 0)
        {
            (health, skew) = await HealthAsync(Doctor.healthUrl(configs[0]), ct).ConfigureAwait(false);
            using var http = new HttpExecutor();
            stream = FSharpOption<Response>.Some(await StreamAsync(http, configs[0], ct).ConfigureAwait(false));
            foreach (var c in configs)
            {
                tokens.Add(Tuple.Create(c.WorkspaceId, await http.ExecuteAsync(Doctor.tokenProbe(c), ct).ConfigureAwait(false)));
                workspaces.Add(Tuple.Create(c.WorkspaceId, await http.ExecuteAsync(Doctor.workspaceProbe(c), ct).ConfigureAwait(false)));
            }
        }

        var claudeFile = Path.Combine(AgentBoot.Home(environment), ".claude.json");
        var claude = UserFile.Read(claudeFile, ConfigFiles.ConfigFileWriter.MaxBytes) is UserFileRead.Bytes bytes
            ? System.Text.Encoding.UTF8.GetString(bytes.Content)
            : null;
        var facts = new Doctor.Facts(
            AppInfo.Version, binary, Option(OnPath(launch)), parsed, stateWritable, health, skew,
            ListModule.OfSeq(tokens), ListModule.OfSeq(workspaces), stream, Option(claude));
        var checks = Doctor.checks(facts);
        var text = json ? Doctor.renderJson(checks) : Doctor.render(checks);
        Console.Out.Write(log.Redact(text));
        Console.Out.Flush();
        return Doctor.exitCode(checks);
    }

    /// <summary>GET /health, and how far this machine's clock is ahead of the platform's Date header (seconds).</summary>
    private static async Task<(FSharpOption<Response>, FSharpOption<double>)> HealthAsync(string url, CancellationToken ct)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await client.GetAsync(url, ct).ConfigureAwait(false);
            var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            var skew = response.Headers.Date is { } date
                ? FSharpOption<double>.Some((DateTimeOffset.UtcNow - date).TotalSeconds)
                : FSharpOption<double>.None;
            return (FSharpOption<Response>.Some(Response.NewReply((int)response.StatusCode, body)), skew);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or InvalidOperationException)
        {
            return (FSharpOption<Response>.Some(Response.NewTransportError(ex.Message)), FSharpOption<double>.None);
        }
    }

    /// <summary>Opens the event stream the server would listen to, and closes it at once (or after 5 s).</summary>
    private static async Task<Response> StreamAsync(HttpExecutor http, Config config, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromSeconds(5));
        Response result = Response.NewTimedOut(5.0);
        try
        {
            await http.ListenAsync(Api.eventStream(config), news =>
            {
                result = news switch
                {
                    Doorbell.News.Refused refused => refused.Item,
                    _ => Response.NewReply(200, ""),
                };
                cts.Cancel(); // opened or refused: that is all the doctor needs
                return Task.CompletedTask;
            }, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        return result;
    }

    /// <summary>
    /// The molecule-mcp that PATH runs, if any — as the launch rule names it when it starts this binary (a tool shim or
    /// a link to it counts as this binary).
    /// </summary>
    private static string? OnPath(ClientConfig.Launch launch)
    {
        if (launch.OnPath.IsEmpty) return null;
        var (first, real) = launch.OnPath.Head;
        var startsThis = real == launch.BinaryReal || (launch.ToolShim is { } shim && shim.Value == first);
        return startsThis ? ClientConfig.launchCommand(launch) : first;
    }

    private static FSharpOption<string> Option(string? value) =>
        value is null ? FSharpOption<string>.None : FSharpOption<string>.Some(value);
}
