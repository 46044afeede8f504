/// The metrics registry of one platform instance: what GET /metrics exposes (Exposition), counted as it happens —
/// requests by route template and status, open event streams and the agents behind them, messages accepted into an
/// inbox and delivered (acknowledged) with their delivery lag — plus the database pool's use where the engine has a
/// pool (Npgsql publishes it through System.Diagnostics.Metrics; SQLite has one connection and no pool). Counters
/// only go up; rates are Prometheus's job.
module Molecule.Platform.Metrics

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics.Metrics
open System.Threading
open Molecule.Platform.Exposition

/// Delivery lag buckets (seconds): a push-mode agent acknowledges within milliseconds, a poll-mode one when it next
/// looks (minutes, hours).
let lagBounds =
    [ 0.005; 0.01; 0.025; 0.05; 0.1; 0.25; 0.5; 1.0; 2.5; 5.0; 10.0; 30.0; 60.0; 300.0; 1800.0; 3600.0 ]

/// Which event stream: an agent's doorbell (GET /workspaces/:id/events/stream) or the canvas's (GET /events).
[<RequireQualifiedAccess>]
type Stream =
    | Workspace of WorkspaceId
    | Canvas

/// The meter whose observable `db.client.connection…` instruments describe a database pool.
[<Literal>]
let PoolMeter = "Npgsql"

let private metricName (s: string) =
    String(s.ToCharArray() |> Array.map (fun c -> if Char.IsAsciiLetterOrDigit c || c = '_' then c else '_'))

/// Tags that name one pool (its connection string, its data source): left out, so pools sum and nothing of a
/// connection string reaches the text.
let private isPoolName (tag: string) = tag.Contains "pool.name" || tag.Contains "data_source"

/// The current values of the database pool's observable instruments, read at each scrape.
type private PoolGauges() =
    let current = Dictionary<string * (string * string) list, float * string>()
    let listener = new MeterListener()

    let record (inst: Instrument) (value: float) (tags: ReadOnlySpan<KeyValuePair<string, obj>>) =
        let kept = ResizeArray<string * string>()

        for i in 0 .. tags.Length - 1 do
            if not (isPoolName tags[i].Key) then
                kept.Add(metricName tags[i].Key, string tags[i].Value)

        let labels = kept |> List.ofSeq |> List.sort

        let key = "molecule_" + metricName inst.Name, labels

        lock current (fun () ->
            let sum =
                match current.TryGetValue key with
                | true, (v, _) -> v + value
                | _ -> value

            current[key] <- (sum, inst.Description))

    do
        listener.InstrumentPublished <-
            fun inst l ->
                if inst.Meter.Name = PoolMeter && inst.IsObservable && inst.Name.StartsWith "db.client.connection" then
                    l.EnableMeasurementEvents inst

        listener.SetMeasurementEventCallback<int>(fun inst v tags _ -> record inst (float v) tags)
        listener.SetMeasurementEventCallback<int64>(fun inst v tags _ -> record inst (float v) tags)
        listener.SetMeasurementEventCallback<float>(fun inst v tags _ -> record inst v tags)
        listener.SetMeasurementEventCallback<double>(fun inst v tags _ -> record inst (float v) tags)
        listener.Start()

    /// One gauge family per instrument, as the pools are now.
    member _.Families() : Family list =
        lock current (fun () ->
            current.Clear()
            listener.RecordObservableInstruments()

            current
            |> Seq.groupBy (fun kv -> fst kv.Key)
            |> Seq.sortBy fst
            |> Seq.map (fun (name, entries) ->
                { Name = name
                  Help = entries |> Seq.map (fun kv -> snd kv.Value) |> Seq.tryFind (String.IsNullOrEmpty >> not) |> Option.defaultValue "database pool"
                  Kind = Kind.Gauge
                  Samples = [ for kv in entries -> sample (snd kv.Key) (fst kv.Value) ] })
            |> List.ofSeq)

    interface IDisposable with
        member _.Dispose() = listener.Dispose()

/// What the team looks like at a scrape (read from the store by the route).
type Scrape =
    { Instance: string
      Engine: string
      SchemaVersion: int
      /// Workspaces by status text (removed ones included).
      WorkspacesByStatus: (string * int) list }

type Registry() =
    let requests = ConcurrentDictionary<struct (string * string * int), int64 ref>()
    let mutable accepted = 0L
    let mutable delivered = 0L
    let mutable canvasStreams = 0
    let mutable lag = Histogram.empty lagBounds
    /// Open doorbell streams per workspace.
    let agents = Dictionary<WorkspaceId, int>()
    let pool = new PoolGauges()

    let leave (s: Stream) =
        match s with
        | Stream.Canvas -> Interlocked.Decrement &canvasStreams |> ignore
        | Stream.Workspace id ->
            lock agents (fun () ->
                match agents.TryGetValue id with
                | true, 1 -> agents.Remove id |> ignore
                | true, n -> agents[id] <- n - 1
                | _ -> ())

    /// One request answered: its route pattern (Operations.routeLabel), method and status.
    member _.Request(route: string, httpMethod: string, status: int) =
        let counter = requests.GetOrAdd(struct (route, httpMethod, status), fun _ -> ref 0L)
        Interlocked.Increment &counter.contents |> ignore

    /// A message accepted into an inbox (a new `a2a_receive` row committed).
    member _.Accepted() = Interlocked.Increment &accepted |> ignore

    /// Messages acknowledged by their agent, each with its lag from the row's creation (Operations.delivered).
    member _.Delivered(lags: TimeSpan list) =
        if not lags.IsEmpty then
            lock agents (fun () -> lag <- lags |> List.fold (fun h l -> Histogram.observe l.TotalSeconds h) lag)
            Interlocked.Add(&delivered, int64 lags.Length) |> ignore

    /// A stream opened; disposing the result closes it.
    member _.Open(s: Stream) : IDisposable =
        match s with
        | Stream.Canvas -> Interlocked.Increment &canvasStreams |> ignore
        | Stream.Workspace id ->
            lock agents (fun () ->
                agents[id] <-
                    match agents.TryGetValue id with
                    | true, n -> n + 1
                    | _ -> 1)

        let closed = ref 0

        { new IDisposable with
            member _.Dispose() =
                if Interlocked.Exchange(&closed.contents, 1) = 0 then
                    leave s }

    /// Every family, in a fixed order.
    member _.Families(scrape: Scrape) : Family list =
        let agentCount, workspaceStreams, lagNow =
            lock agents (fun () -> agents.Count, Seq.sum agents.Values, lag)

        let counter name help value =
            { Name = name; Help = help; Kind = Kind.Counter; Samples = [ sample [] value ] }

        [ { Name = "molecule_instance_info"
            Help = "This platform instance: its name, store engine and schema version (always 1)."
            Kind = Kind.Gauge
            Samples =
              [ sample
                    [ "instance", scrape.Instance
                      "engine", scrape.Engine
                      "schema_version", scrape.SchemaVersion.ToString(Globalization.CultureInfo.InvariantCulture) ]
                    1.0 ] }
          { Name = "molecule_http_requests_total"
            Help = "HTTP requests answered, by route template, method and status."
            Kind = Kind.Counter
            Samples =
              [ for KeyValue(struct (route, m, status), n) in requests |> Seq.sortBy (fun kv -> kv.Key) ->
                    sample [ "route", route; "method", m; "status", status.ToString(Globalization.CultureInfo.InvariantCulture) ] (float n.Value) ] }
          { Name = "molecule_agents_connected"
            Help = "Workspaces with at least one open event stream on this instance."
            Kind = Kind.Gauge
            Samples = [ sample [] (float agentCount) ] }
          { Name = "molecule_streams_open"
            Help = "Open server-sent event streams on this instance, by kind."
            Kind = Kind.Gauge
            Samples =
              [ sample [ "kind", "workspace" ] (float workspaceStreams)
                sample [ "kind", "canvas" ] (float (Volatile.Read &canvasStreams)) ] }
          counter "molecule_messages_accepted_total" "Messages accepted into an inbox (new a2a_receive rows) by this instance." (float (Interlocked.Read &accepted))
          counter "molecule_messages_delivered_total" "Inbox messages acknowledged by their agent through this instance." (float (Interlocked.Read &delivered))
          { Name = "molecule_delivery_lag_seconds"
            Help = "From an inbox row's creation to its agent's acknowledgement."
            Kind = Kind.Histogram
            Samples = histogramSamples [] lagNow }
          { Name = "molecule_workspaces"
            Help = "Workspaces of the team by status."
            Kind = Kind.Gauge
            Samples = [ for (status, n) in scrape.WorkspacesByStatus -> sample [ "status", status ] (float n) ] } ]
        // Npgsql reports the pools of the whole process: only a platform on a pooled engine shows them (the CLI runs
        // one platform per process, so they are its own)
        @ (if scrape.Engine = "sqlite" then [] else pool.Families())

    interface IDisposable with
        member _.Dispose() = (pool :> IDisposable).Dispose()
