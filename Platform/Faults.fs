/// Fault injection for tests: rules matched by method and path, applied before routing; the deterministic fault modes
/// of a misbehaving deployment (issue 14: an acknowledgement route that fails or lies, a refused heartbeat, no event
/// stream, duplicated upload rows, no peer info); request counting, and the highest request rate per route.
namespace Molecule.Platform

open System
open System.Collections.Concurrent
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
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

/// A fault a real deployment has, as a deterministic mode of the fault-injecting platform. Each applies to every
/// workspace; `FaultMode.rules` gives the rules of those that are plain answers (usable over HTTP too).
type FaultMode =
    /// `POST /workspaces/:id/activity/ack` answers this status (a database hiccup behind one route: 500, 503).
    | AckStatus of status: int
    /// … answers 200 `{"ok":true}`: a proxy's catch-all for paths it does not know.
    | AckCatchAll
    /// … answers 200 `{}`.
    | AckEmpty
    /// … answers 200 with an HTML page.
    | AckHtml
    /// … answers 200 `{"last_acked_seq": <text>}`: an absurd floor (`99999999999`, `1e300`) or a negative one (`-5`).
    | AckFloor of text: string
    /// `POST /registry/heartbeat` alone answers 401.
    | HeartbeatRefused
    /// `GET /workspaces/:id/events/stream` answers 404 (a platform without the route); open streams are cut.
    | NoStream
    /// Every `chat_upload_receive` row the activity route shows comes twice (a second row, same `file_id`).
    | DuplicateUploads
    /// The activity route ignores `include=peer_info` (as a platform before 2026-05-21 does).
    | NoPeerInfo

module FaultMode =
    let private ack = "^/workspaces/[^/]+/activity/ack$"

    /// The modes by name: ack-500, ack-503, ack-catch-all, ack-empty, ack-html, ack-huge-floor, ack-1e300,
    /// ack-negative, heartbeat-401, no-stream, duplicate-uploads, no-peer-info.
    let parse (name: string) : Result<FaultMode, string> =
        match (if isNull name then "" else name.Trim().ToLowerInvariant()) with
        | "ack-500" -> Ok(AckStatus 500)
        | "ack-503" -> Ok(AckStatus 503)
        | "ack-catch-all" -> Ok AckCatchAll
        | "ack-empty" -> Ok AckEmpty
        | "ack-html" -> Ok AckHtml
        | "ack-huge-floor" -> Ok(AckFloor "99999999999")
        | "ack-1e300" -> Ok(AckFloor "1e300")
        | "ack-negative" -> Ok(AckFloor "-5")
        | "heartbeat-401" -> Ok HeartbeatRefused
        | "no-stream" -> Ok NoStream
        | "duplicate-uploads" -> Ok DuplicateUploads
        | "no-peer-info" -> Ok NoPeerInfo
        | other -> Error $"unknown fault mode '{other}'"

    let private answer (status: int) (body: string) = { FaultRule.make ack status with Method = Some "POST"; Body = body }

    /// The rules of a mode that is a plain answer (none for the modes that rewrite what the platform shows).
    let rules (mode: FaultMode) : FaultRule list =
        match mode with
        | AckStatus status -> [ answer status (if status = 503 then "{\"code\":\"platform_unavailable\",\"error\":\"platform datastore unavailable — retry shortly\"}" else "{\"error\":\"failed to record ack\"}") ]
        | AckCatchAll -> [ answer 200 "{\"ok\":true}" ]
        | AckEmpty -> [ answer 200 "{}" ]
        | AckHtml -> [ answer 200 "<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>" ]
        | AckFloor text -> [ answer 200 $"{{\"last_acked_seq\":{text}}}" ]
        | HeartbeatRefused -> [ { FaultRule.make "/registry/heartbeat" 401 with Method = Some "POST"; Body = "{\"error\":\"invalid workspace auth token\"}" } ]
        | NoStream -> [ { FaultRule.make "^/workspaces/[^/]+/events/stream$" 404 with Method = Some "GET"; Body = "{\"error\":\"not found\"}" } ]
        | DuplicateUploads
        | NoPeerInfo -> []

/// The highest request rate seen per route key (method and path), in requests per second (one-second buckets).
type RateMeter() =
    let gate = obj ()
    let current = Collections.Generic.Dictionary<string, struct (int64 * int)>()
    let highest = Collections.Generic.Dictionary<string, int>()

    member _.Hit(key: string) =
        let second = DateTime.UtcNow.Ticks / TimeSpan.TicksPerSecond
        lock gate (fun () ->
            let n =
                match current.TryGetValue key with
                | true, struct (s, n) when s = second -> n + 1
                | _ -> 1
            current[key] <- struct (second, n)
            match highest.TryGetValue key with
            | true, top when top >= n -> ()
            | _ -> highest[key] <- n)

    /// (route key, highest requests in one second), highest first.
    member _.Highest: (string * int) list =
        lock gate (fun () -> highest |> Seq.map (fun kv -> kv.Key, kv.Value) |> Seq.sortByDescending snd |> List.ofSeq)

    member _.Clear() =
        lock gate (fun () ->
            current.Clear()
            highest.Clear())

/// Thread-safe set of active fault rules plus request counts per (method, path) and a bounded recent log.
type FaultInjector() =
    let gate = obj ()
    let rules = ResizeArray<FaultRule * int ref>()
    let counts = ConcurrentDictionary<struct (string * string), int>()
    let recent = ConcurrentQueue<string * string>()
    let streams = ConcurrentDictionary<int64, string * (unit -> unit)>()
    let mutable nextStream = 0L
    let rates = RateMeter()
    let mutable duplicateUploads = false
    let mutable noPeerInfo = false
    /// The id a duplicated row is shown with → the id of its original row.
    let copies = ConcurrentDictionary<string, string>()

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
        if not (path.StartsWith "/admin/") then rates.Hit(httpMethod.ToUpperInvariant() + " " + path)
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
        rates.Clear()

    /// (method and path, the highest number of requests it got in one second), highest first.
    member _.HighestRates: (string * int) list = rates.Highest

    /// Turns a fault mode on (until `Clear`); a mode that cuts something (the event stream) does so at once.
    member this.Mode(mode: FaultMode) =
        for rule in FaultMode.rules mode do
            this.Add rule
        match mode with
        | DuplicateUploads -> duplicateUploads <- true
        | NoPeerInfo -> noPeerInfo <- true
        | NoStream -> this.CutStreams "^/workspaces/[^/]+/events/stream$" |> ignore
        | _ -> ()

    /// Turns every mode and rule off.
    member this.ClearAll() =
        this.Clear()
        duplicateUploads <- false
        noPeerInfo <- false

    /// What the activity route shows under the rewriting modes: every upload row twice (the copy under another id,
    /// the same file), rows without the sender's name, role and card URL.
    member private _.Rewrite(body: string) : string option =
        match Json.tryParseDecoded body with
        | Some(:? JsonArray as rows) ->
            let out = JsonArray()
            for row in List.ofSeq rows do
                match row with
                | :? JsonObject as o ->
                    let o = o.DeepClone().AsObject()
                    if noPeerInfo then
                        for key in [ "peer_name"; "peer_role"; "agent_card_url" ] do
                            o.Remove key |> ignore
                    out.Add o
                    let upload = Json.prop "method" o |> Option.bind Json.asString = Some "chat_upload_receive"
                    match Json.prop "id" o |> Option.bind Json.asString with
                    | Some id when duplicateUploads && upload && id.Length > 8 ->
                        let copyId = "d0d0d0d0" + id.Substring 8
                        copies[copyId] <- id
                        let copy = o.DeepClone().AsObject()
                        copy["id"] <- JsonValue.Create copyId
                        out.Add copy
                    | _ -> ()
                | other -> out.Add(if isNull other then null else other.DeepClone())
            Some(Json.compact out)
        | _ -> None

    /// Runs the route, through the rewriting modes when one is on (the activity route only): a `since_id` naming a
    /// duplicated row is read as its original, and the answer is rewritten.
    member this.Invoke(ctx: HttpContext, next: RequestDelegate) : Task =
        let path = ctx.Request.Path.Value
        let activity = HttpMethods.IsGet ctx.Request.Method && Regex.IsMatch(path, "^/workspaces/[^/]+/activity$")
        if not ((duplicateUploads || noPeerInfo) && activity) then
            next.Invoke ctx
        else
            task {
                match ctx.Request.Query.TryGetValue "since_id" with
                | true, v when copies.ContainsKey(string v) ->
                    let q = Collections.Generic.Dictionary<string, Microsoft.Extensions.Primitives.StringValues>()
                    for kv in ctx.Request.Query do
                        q[kv.Key] <- (if kv.Key = "since_id" then Microsoft.Extensions.Primitives.StringValues(copies[string v]) else kv.Value)
                    ctx.Request.QueryString <- QueryString.Create q
                | _ -> ()
                let original = ctx.Response.Body
                use buffer = new MemoryStream()
                ctx.Response.Body <- buffer
                try
                    do! next.Invoke ctx
                finally
                    ctx.Response.Body <- original
                let text = Encoding.UTF8.GetString(buffer.ToArray())
                let rewritten = if ctx.Response.StatusCode = 200 then this.Rewrite text else None
                let bytes = Encoding.UTF8.GetBytes(defaultArg rewritten text)
                ctx.Response.ContentLength <- Nullable(int64 bytes.Length)
                do! original.WriteAsync(bytes, 0, bytes.Length)
            }
