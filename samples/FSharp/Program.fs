// A Molecule workspace agent in F# without MCP: register, poll the inbox, answer each peer's delegation, acknowledge.
//
//   WORKSPACE_ID=… PLATFORM_URL=… MOLECULE_WORKSPACE_TOKEN=… dotnet run --project samples/FSharp [-- --once]
//
// Molecule.Core decides everything as data (which request to send, what a row means, what a tool call does);
// this program only performs the requests (HttpExecutor from Molecule.Runtime) and loops.
open System
open System.Collections
open System.IO
open System.Text.Json.Nodes
open System.Threading
open Molecule.Core
open Molecule.Protocol
open Molecule.Runtime.Effects

let http = new HttpExecutor()

let send (request: Request) : Response =
    http.ExecuteAsync(request, CancellationToken.None).GetAwaiter().GetResult()

let ok (response: Response) =
    match response with
    | Reply(status, _) -> status >= 200 && status < 300
    | _ -> false

/// Runs a tool call's program: performs each request (and file check) it asks for and feeds the answer back.
let rec perform (program: Program<ToolOutput>) : ToolOutput =
    match program with
    | Done(output, _) -> output
    | Call(request, next) -> perform (next (send request))
    | CheckFiles(paths, next) ->
        paths
        |> List.map (fun p -> if File.Exists p then FileOk (FileInfo p).Length else FileMissing)
        |> next
        |> perform
    | Pause(seconds, next) ->
        Thread.Sleep(TimeSpan.FromSeconds seconds)
        perform (next (float Environment.TickCount64 / 1000.0))

/// The answer to one message; a real agent would think here.
let answer (message: InboxMessage) = $"Done: {message.Text}"

/// Replies to the sender through the same tool an MCP client would call (delegate_task).
let reply (config: Config) (message: InboxMessage) =
    let args = JsonObject()
    args["workspace_id"] <- JsonValue.Create message.PeerId
    args["task"] <- JsonValue.Create(answer message)

    match Tools.parse "delegate_task" (Some args) with
    | Result.Error reason -> eprintfn $"cannot reply: {reason}"
    | Ok parsed ->
        let context = Dispatch.context config (Guid.NewGuid().ToString())

        match Dispatch.run context parsed.Call with
        | Some program -> eprintfn $"replied to {message.PeerId}: {(perform program).Text}"
        | None -> ()

[<EntryPoint>]
let main argv =
    let env =
        Environment.GetEnvironmentVariables()
        |> Seq.cast<DictionaryEntry>
        |> Seq.map (fun e -> string e.Key, string e.Value)
        |> Map.ofSeq

    let home = Environment.GetFolderPath Environment.SpecialFolder.UserProfile
    let stateDir = Config.stateDir env home false

    match Config.parse env stateDir None with
    | Result.Error errors ->
        eprintf $"{Config.helpText errors}"
        2
    | Ok config ->
        // 1. register (what the canvas shows as online)
        let registered = send (Api.register config)

        if not (ok registered) then
            eprintfn $"register failed: {registered}"
            3
        else
            eprintfn $"registered {config.WorkspaceId} as {config.AgentCard.Name}"
            let once = Array.contains "--once" argv
            let seen = Collections.Generic.HashSet<string>()
            // what this workspace acknowledged before (acked_seq 0 only reads it): those rows are not answered again
            let floor =
                match send (Api.ack config 0L) with
                | Reply(200, body) ->
                    Json.tryParse body
                    |> Option.bind (Json.prop "last_acked_seq")
                    |> Option.bind Json.asFloat
                    |> Option.map int64
                    |> Option.defaultValue 0L
                | _ -> 0L

            // 2. poll: the last 10 minutes first, then everything after the newest row seen
            let mutable query = Window(600, None, 100)
            let mutable running = true

            while running do
                match send (Api.activity config query) with
                | Reply(200, body) ->
                    let rows =
                        match Activity.parsePage body with
                        | Ok nodes -> nodes |> List.choose (Activity.parseRow >> Result.toOption)
                        | Result.Error _ -> []
                        |> List.sortBy (fun row -> row.At)

                    for row in rows do
                        let handledBefore = row.Seq |> Option.exists (fun seq -> seq <= floor)

                        if seen.Add row.Id && not handledBefore && not (Ledger.isEcho config.WorkspaceId row) then
                            let message = Ledger.messageOf config.WorkspaceId row
                            eprintfn $"message {message.ActivityId} from {message.PeerId}: {message.Text}"
                            // 3. answer a peer's delegation (a canvas user's message would get send_message_to_user)
                            if message.Kind = PeerAgent then reply config message
                            // 4. acknowledge it, so the platform does not deliver it again
                            message.Seq |> Option.iter (fun seq -> send (Api.ack config seq) |> ignore)

                    match List.tryLast rows with
                    | Some newest -> query <- SinceId(newest.Id, 100)
                    | None -> ()
                | other -> eprintfn $"poll failed: {other}"

                if once then running <- false else Thread.Sleep 2000

            0
