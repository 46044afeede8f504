/// The channel the platform processes of one PostgreSQL database tell each other on: what a process's committed
/// writes announced (Relay's pieces) and that it saved a workspace. Each process listens on a connection of its own
/// (Listener) and sends its events from another (Notifier).
module internal Molecule.Platform.PgChannel

open System
open System.IO
open System.Net.Sockets
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Npgsql
open Molecule.Platform

/// The channel's name.
[<Literal>]
let Channel = "molecule_platform_events"

/// A failure of a connection to the database that opening one again may cure.
let private (|ConnectionLost|_|) (e: exn) =
    match e with
    | :? NpgsqlException
    | :? IOException
    | :? SocketException
    | :? TimeoutException
    | :? InvalidOperationException -> Some e
    | _ -> None

/// Listens on the channel on a connection of its own and hands other processes' events to `fanout`. A dropped
/// connection is opened again (after 0.2 s, then up to 2 s between tries); once it listens again `reconnected` runs
/// (what was notified meanwhile is lost: the instance's agents get a catch-up ring).
type Listener
    (connection: string, self: string, fanout: PlatformEvent -> unit, team: Sql.TeamCache, reconnected: unit -> unit, log: string -> unit) =
    let stop = new CancellationTokenSource()
    let listening = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    let mutable assembly: Relay.Assembly = Map.empty

    let onNotification (n: NpgsqlNotificationEventArgs) =
        match Relay.parse n.Payload with
        | Some p when p.Sender <> self && p.EventId = Relay.TeamChangedId -> team.Invalidate()
        | Some p when p.Sender <> self ->
            let a, e = Relay.receive assembly p
            assembly <- a
            e |> Option.iter fanout
        | _ -> ()

    let listenOnce (first: bool) : Task =
        task {
            use conn = new NpgsqlConnection(connection)
            conn.Notification.Add onNotification
            do! conn.OpenAsync(stop.Token)
            use cmd = new NpgsqlCommand($"LISTEN {Channel}", conn)
            do! cmd.ExecuteNonQueryAsync(stop.Token) :> Task
            assembly <- Map.empty
            // listening: another process's word that it saved a workspace reaches this one again
            team.Resume()
            listening.TrySetResult() |> ignore

            if not first then
                log "the event listener is back: this instance's agents get a catch-up ring"
                reconnected ()

            while true do
                do! conn.WaitAsync(stop.Token)
        }

    let run () : Task =
        task {
            let mutable first = true
            let mutable failures = 0

            while not stop.IsCancellationRequested do
                try
                    let started = listenOnce first
                    first <- false
                    do! started
                with
                | :? OperationCanceledException -> ()
                | ConnectionLost e ->
                    team.Suspend()

                    if not stop.IsCancellationRequested then
                        failures <- failures + 1
                        log $"the event listener lost its connection ({e.Message}); listening again"

                        try
                            do! Task.Delay(TimeSpan.FromMilliseconds(float (min 2000 (200 * failures))), stop.Token)
                        with :? OperationCanceledException ->
                            ()
        }

    let loop = Task.Run(fun () -> run ())

    /// Waits until it listens (a store opened returns only then: nothing committed after it is missed).
    member _.Started(timeout: TimeSpan) =
        if not (listening.Task.Wait timeout) then
            raise (InvalidOperationException $"the event listener did not connect to the database within {timeout.TotalSeconds} s")

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()

            try
                loop.Wait(TimeSpan.FromSeconds 5.0) |> ignore
            with :? AggregateException ->
                ()

            stop.Dispose()

/// Sends the pieces of committed events to the other processes from a connection of its own, after their commit:
/// whatever has committed since its last statement goes in one NOTIFY statement, in the order posted. Not inside the
/// write's transaction, because PostgreSQL commits the transactions that NOTIFY one at a time — each holds a
/// database-wide lock through its commit, WAL flush included — so every accepted message would wait for every other
/// (bench/README.md, "One commit at a time"). Its own transactions commit without waiting for the WAL (they write
/// nothing that must survive a crash). A piece is lost only if this process ends between a commit and the send, or the
/// database answers none of 5 tries: the other processes' agents then see the row at their next poll (5 s).
type Notifier(connection: string, log: string -> unit) =
    let queue = Channels.Channel.CreateUnbounded<string[]>(UnboundedChannelOptions(SingleReader = true))
    let mutable conn: NpgsqlConnection = null

    let opened () : Task<NpgsqlConnection> =
        task {
            if isNull conn then
                let c = new NpgsqlConnection(connection)
                do! c.OpenAsync()
                use set = new NpgsqlCommand("SET synchronous_commit = off", c)
                let! _ = set.ExecuteNonQueryAsync()
                conn <- c

            return conn
        }

    let send (texts: string[]) : Task =
        task {
            let! c = opened ()
            use cmd = new NpgsqlCommand("SELECT pg_notify(@ch, t) FROM unnest(@p) WITH ORDINALITY AS n(t, i) ORDER BY i", c)
            cmd.Parameters.AddWithValue("@ch", Channel) |> ignore
            cmd.Parameters.AddWithValue("@p", texts) |> ignore
            let! _ = cmd.ExecuteNonQueryAsync()
            ()
        }

    /// Sends the pieces, opening the connection again after a failure (up to 5 tries, 0.2 s apart).
    let rec sendTrying (texts: string[]) (tries: int) : Task =
        task {
            let! failed =
                task {
                    try
                        do! send texts
                        return None
                    with
                    | ConnectionLost e ->
                        if not (isNull conn) then conn.Dispose()
                        conn <- null
                        return Some e
                }

            match failed with
            | None -> ()
            | Some _ when tries < 5 ->
                do! Task.Delay 200
                do! sendTrying texts (tries + 1)
            | Some e -> log $"{texts.Length} event piece(s) for the other instances were not sent ({e.Message}); their agents see the rows at their next poll"
        }

    let loop =
        Task.Run(fun () ->
            task {
                let batch = ResizeArray<string>()

                while! queue.Reader.WaitToReadAsync() do
                    let mutable texts = Unchecked.defaultof<string[]>

                    while queue.Reader.TryRead(&texts) do
                        batch.AddRange texts

                    do! sendTrying (batch.ToArray()) 1
                    batch.Clear()
            }
            :> Task)

    /// The pieces of a committed transaction's events, in order.
    member _.Post(texts: string[]) =
        if texts.Length > 0 then queue.Writer.TryWrite texts |> ignore

    interface IDisposable with
        /// Sends what was posted (within 5 s), then closes.
        member _.Dispose() =
            queue.Writer.TryComplete() |> ignore

            try
                loop.Wait(TimeSpan.FromSeconds 5.0) |> ignore
            with :? AggregateException ->
                ()

            if not (isNull conn) then conn.Dispose()
