/// Fault injection for tests: rules matched by method and path, applied before routing; request counting.
namespace Molecule.Platform

open System
open System.Collections.Concurrent
open System.Text.Json.Nodes
open System.Text.RegularExpressions
module Json = Molecule.Protocol.Json

/// A fault rule. PathPrefix is a path prefix, or a regular expression when it starts with '^'.
/// Status 0 = no status override (useful with DelayMs alone: delay, then answer normally).
type FaultRule =
    { Method: string option
      PathPrefix: string
      Status: int
      Body: string
      DelayMs: int
      /// None = until cleared.
      Times: int option
      /// Abort the connection without an answer.
      Drop: bool
      /// Never answer (until the client gives up or the platform stops).
      Hang: bool }

module FaultRule =
    let make (pathPrefix: string) (status: int) : FaultRule =
        { Method = None
          PathPrefix = pathPrefix
          Status = status
          Body = ""
          DelayMs = 0
          Times = None
          Drop = false
          Hang = false }

    let matches (httpMethod: string) (path: string) (r: FaultRule) =
        (match r.Method with
         | Some m -> String.Equals(m, httpMethod, StringComparison.OrdinalIgnoreCase)
         | None -> true)
        && (if r.PathPrefix.StartsWith "^" then
                try
                    Regex.IsMatch(path, r.PathPrefix, RegexOptions.None, TimeSpan.FromMilliseconds 100.0)
                with _ ->
                    false
            else
                path.StartsWith(r.PathPrefix, StringComparison.Ordinal))

    /// JSON (camelCase or snake_case keys) → rule.
    let parse (o: JsonObject) : Result<FaultRule, string> =
        let get (names: string list) =
            names |> List.tryPick (fun n -> Json.prop n o)

        let str names = get names |> Option.bind Json.asString
        let int names = get names |> Option.bind Json.asInt

        let bool names =
            match get names with
            | Some n when n.GetValueKind() = System.Text.Json.JsonValueKind.True -> true
            | _ -> false

        let status = defaultArg (int [ "status"; "Status" ]) 0

        match str [ "path_prefix"; "pathPrefix"; "PathPrefix"; "path" ] with
        | None -> Error "path_prefix is required"
        | Some _ when status <> 0 && (status < 100 || status > 599) ->
            Error "status must be an HTTP status code (100-599), or 0 for none"
        | Some p ->
            let body =
                match get [ "body"; "Body" ] with
                | Some n when n.GetValueKind() = System.Text.Json.JsonValueKind.String -> (Json.asString n).Value
                | Some n -> Json.compact n
                | None -> ""

            Ok
                { Method = str [ "method"; "Method" ]
                  PathPrefix = p
                  Status = status
                  Body = body
                  DelayMs = defaultArg (int [ "delay_ms"; "delayMs"; "DelayMs" ]) 0
                  Times = int [ "times"; "Times" ]
                  Drop = bool [ "drop"; "Drop" ]
                  Hang = bool [ "hang"; "Hang" ] }

/// Thread-safe set of active fault rules plus request counts per (method, path) and a bounded recent log.
type FaultInjector() =
    let gate = obj ()
    let rules = ResizeArray<FaultRule * int ref>()
    let counts = ConcurrentDictionary<struct (string * string), int>()
    let recent = ConcurrentQueue<string * string>()
    let streams = ConcurrentDictionary<int64, string * (unit -> unit)>()
    let mutable nextStream = 0L

    /// Size of the recent-request log.
    static member RecentCapacity = 1000

    member _.Add(rule: FaultRule) =
        lock gate (fun () -> rules.Add((rule, ref (defaultArg rule.Times Int32.MaxValue))))

    member _.Clear() = lock gate (fun () -> rules.Clear())

    /// The first active rule for this request; consumes one of its Times.
    member _.Take(httpMethod: string, path: string) : FaultRule option =
        lock gate (fun () ->
            match rules |> Seq.tryFind (fun (r, left) -> left.Value > 0 && FaultRule.matches httpMethod path r) with
            | Some(r, left) ->
                left.Value <- left.Value - 1

                if left.Value <= 0 then
                    rules.RemoveAll(fun (_, l) -> l.Value <= 0) |> ignore

                Some r
            | None -> None)

    member _.Record(httpMethod: string, path: string) =
        counts.AddOrUpdate(struct (httpMethod.ToUpperInvariant(), path), 1, (fun _ n -> n + 1)) |> ignore
        recent.Enqueue((httpMethod, path))

        while recent.Count > FaultInjector.RecentCapacity do
            recent.TryDequeue() |> ignore

    /// Number of requests seen whose path starts with the prefix.
    member _.Requests(pathPrefix: string) : int =
        counts
        |> Seq.sumBy (fun kv ->
            let struct (_, p) = kv.Key
            if p.StartsWith(pathPrefix, StringComparison.Ordinal) then kv.Value else 0)

    /// Number of requests seen with this method whose path starts with the prefix.
    member _.Requests(httpMethod: string, pathPrefix: string) : int =
        let m = httpMethod.ToUpperInvariant()

        counts
        |> Seq.sumBy (fun kv ->
            let struct (km, p) = kv.Key
            if km = m && p.StartsWith(pathPrefix, StringComparison.Ordinal) then kv.Value else 0)

    /// The most recent (method, path) pairs seen (at most RecentCapacity), oldest first.
    member _.Log: (string * string) list = List.ofSeq recent

    /// Registers an open long-lived response (an SSE stream) at `path` with the way to cut it; dispose the result
    /// when the stream ends.
    member _.OpenStream(path: string, cut: unit -> unit) : IDisposable =
        let id = Threading.Interlocked.Increment(&nextStream)
        streams[id] <- (path, cut)

        { new IDisposable with
            member _.Dispose() = streams.TryRemove id |> ignore }

    /// Cuts every open stream whose path matches `pathPrefix` (a prefix, or a regular expression starting with
    /// '^'), as a dropped connection would; returns how many were cut.
    member _.CutStreams(pathPrefix: string) : int =
        let rule = FaultRule.make pathPrefix 0
        let hits = streams |> Seq.filter (fun kv -> FaultRule.matches "GET" (fst kv.Value) rule) |> List.ofSeq

        for kv in hits do
            if streams.TryRemove kv.Key |> fst then
                try
                    (snd kv.Value) ()
                with _ ->
                    ()

        hits.Length

    member _.ResetLog() =
        counts.Clear()
        recent.Clear()
