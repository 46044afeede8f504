using Microsoft.FSharp.Collections;
using Molecule.Core;

namespace Molecule.Runtime.Effects;

/// <summary>The agent's inbox as seen by tool programs. Implementations serialise access to the model.</summary>
public interface IInboxPort
{
    Task<InboxAnswer> PeekAsync(int limit, CancellationToken ct);
    Task<InboxAnswer> PopAsync(string activityId, CancellationToken ct);
    /// <summary>The head message at once if there is one, else waits up to <paramref name="timeoutSecs"/> for an arrival.</summary>
    Task<InboxAnswer> WaitAsync(double timeoutSecs, CancellationToken ct);
}

/// <summary>
/// Runs a core <see cref="Step"/> program to completion: performs each requested effect and feeds the answer
/// back into the program. Iterative (no recursion), cancellable. Makes no decisions of its own.
/// </summary>
public sealed class StepRunner(HttpExecutor http, IInboxPort inbox, Action<string>? reportInternalError = null)
{
    /// <summary>Upper bound on effects per tool call; only a broken core program could reach it.</summary>
    public const int MaxSteps = 10_000;

    /// <exception cref="OperationCanceledException">When <paramref name="ct"/> is cancelled.</exception>
    public async Task<(ToolOutput Output, FSharpList<Observation> Observations)> RunAsync(Step program, CancellationToken ct)
    {
        var step = program;
        for (var n = 0; n < MaxSteps; n++)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                switch (step)
                {
                    case Step.Done done:
                        return (done.Item1, done.Item2);

                    case Step.Call call:
                    {
                        var response = await http.ExecuteAsync(call.Item1, ct).ConfigureAwait(false);
                        ct.ThrowIfCancellationRequested();
                        step = call.Item2.Invoke(response);
                        break;
                    }

                    case Step.CheckFiles check:
                    {
                        var results = ListModule.OfSeq(check.paths.Select(CheckFile));
                        step = check.Item2.Invoke(results);
                        break;
                    }

                    case Step.Inbox ask:
                    {
                        var answer = await AskInboxAsync(ask.Item1, ct).ConfigureAwait(false);
                        step = ask.Item2.Invoke(answer);
                        break;
                    }

                    case Step.NewId newId:
                        step = newId.Item.Invoke(Guid.NewGuid().ToString("D"));
                        break;

                    default:
                        return Internal($"unknown step {step?.GetType().Name ?? "null"}");
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                return Internal($"{ex.GetType().Name}: {ex.Message}");
            }
        }
        return Internal($"tool program exceeded {MaxSteps} steps");
    }

    private Task<InboxAnswer> AskInboxAsync(InboxOp op, CancellationToken ct) =>
        op switch
        {
            InboxOp.Peek peek => inbox.PeekAsync(peek.limit, ct),
            InboxOp.Pop pop => inbox.PopAsync(pop.activityId, ct),
            InboxOp.Wait wait => inbox.WaitAsync(wait.timeoutSecs, ct),
            _ => Task.FromResult(InboxAnswer.InboxDisabled),
        };

    /// <summary>Size of a readable regular file, or why it is missing/unreadable.</summary>
    public static FileCheck CheckFile(string path)
    {
        try
        {
            if (string.IsNullOrWhiteSpace(path)) return FileCheck.FileMissing;
            if (Directory.Exists(path)) return FileCheck.NewFileUnreadable("is a directory");
            var info = new FileInfo(path);
            if (!info.Exists) return FileCheck.FileMissing;
            using (File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
            }
            return FileCheck.NewFileOk(info.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException
                                       or NotSupportedException or System.Security.SecurityException)
        {
            return FileCheck.NewFileUnreadable(ex.Message);
        }
    }

    private (ToolOutput, FSharpList<Observation>) Internal(string detail)
    {
        reportInternalError?.Invoke($"internal error while running a tool: {detail}");
        return (new ToolOutput("Error: molecule-mcp internal error while running this tool (see its stderr log).", true),
            FSharpList<Observation>.Empty);
    }
}
