// A Molecule agent in F#: answers every message — the user's in their canvas chat, a peer's to the peer.
//
//   WORKSPACE_ID=… PLATFORM_URL=… MOLECULE_WORKSPACE_TOKEN=… dotnet run --project samples/FSharp
//
// The same library and loop as the C# sample (samples/CSharp): messages come oldest first, and each counts as handled
// once its loop body completes — a failed reply or a crash leaves it in the inbox for the next start. Ctrl+C (or
// SIGTERM) stops the reading; the message in hand is answered first.
open System
open System.Runtime.InteropServices
open System.Threading
open Microsoft.Extensions.Logging
open Molecule.Agents

let serve (loggerFactory: ILoggerFactory) (log: ILogger) (stop: CancellationToken) =
    task {
        use! agent = MoleculeAgent.ConnectAsync(MoleculeOptions.FromEnvironment(), loggerFactory, stop)
        log.LogInformation("Listening as workspace {Workspace}", agent.WorkspaceId)
        use messages = agent.ReadMessagesAsync(stop).GetAsyncEnumerator(stop)
        while! messages.MoveNextAsync() do
            let message = messages.Current
            log.LogInformation("Handling {Message}", message)
            if message.CanReply then do! message.ReplyAsync $"Done: {message.Text}"
    }

[<EntryPoint>]
let main _ =
    use stop = new CancellationTokenSource()
    use _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, fun signal -> signal.Cancel <- true; stop.Cancel())
    Console.CancelKeyPress.Add(fun e -> e.Cancel <- true; stop.Cancel())
    use loggerFactory = LoggerFactory.Create(fun logging -> logging.AddSimpleConsole(fun o -> o.SingleLine <- true) |> ignore)
    try
        (serve loggerFactory (loggerFactory.CreateLogger "sample") stop.Token).GetAwaiter().GetResult()
        0
    with
    | :? OperationCanceledException when stop.IsCancellationRequested -> 0
    | :? MoleculeOptionsException as invalid -> eprintfn $"{invalid.Message}"; 2
    | :? MoleculeAgentStoppedException as stopped -> stopped.ExitCode
