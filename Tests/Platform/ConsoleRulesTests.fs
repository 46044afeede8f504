/// Properties of the console's and the doors' pure rules: Host/Origin/content-type guards, rate limits, the closed
/// registry gate, the feed (one entry per event, names not ids), the delegations view, connection lines, edits.
module Molecule.Tests.Platform.ConsoleRulesTests

open System
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
module Json = Molecule.Protocol.Json

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 3, 1, 9, 0, 0, TimeSpan.Zero)
let private inv (n: int) = n.ToString(Globalization.CultureInfo.InvariantCulture)
let private wid () = WorkspaceId(Guid.NewGuid())
let private aid () = ActivityId(Guid.NewGuid())

// ---------------------------------------------------------------- guards

let private names = Guard.Names.create [ "console.lan"; "192.168.1.20"; "fe80::1" ] [ "team.example.com" ]

type private HostCase = { Header: string; Expected: bool }

let private hostGen: Gen<HostCase> =
    gen {
        let! host, allowed =
            Gen.elements
                [ "console.lan", true
                  "CONSOLE.lan.", true
                  "192.168.1.20", true
                  "[fe80::1]", true
                  "team.example.com", true
                  "localhost", true
                  "app.localhost", true
                  "127.0.0.1", true
                  "127.9.8.7", true
                  "[::1]", true
                  "evil.example", false
                  "console.lan.evil.example", false
                  "localhost.evil.example", false
                  "127.0.0.1.nip.io", false
                  "192.168.1.21", false
                  "10.0.0.1", false
                  "team.example.com.evil", false
                  "", false
                  "a b", false
                  "[::1", false ]

        let! port = Gen.elements [ ""; ":7080"; ":1"; ":65535"; ":x"; "::" ]
        let broken = port = ":x" || port = "::"
        return { Header = host + port; Expected = allowed && not broken && host <> "" }
    }

[<Fact>]
let ``rule: a request passes the host guard only when its Host names the platform, a public name or a loopback address`` () =
    Check.One(cfg 500, Prop.forAll (Arb.fromGen hostGen) (fun c -> Guard.hostAllowed names (Some c.Header) = c.Expected))
    Assert.False(Guard.hostAllowed names None)

[<Fact>]
let ``rule: a state change with a foreign Origin never passes the guard; the request's own origin always does`` () =
    let gen' =
        gen {
            let! host = Gen.elements [ "127.0.0.1"; "localhost"; "console.lan"; "192.168.1.20" ]
            let! port = Gen.choose (1, 65535)
            let! scheme = Gen.elements [ "http"; "https" ]
            let! foreign = Gen.elements [ "http://evil.example"; "null"; "http://127.0.0.1:9"; "ftp://console.lan"; "http://console.lan.evil"; "" ]
            let! m = Gen.elements [ "POST"; "DELETE"; "PATCH"; "PUT"; "GET"; "HEAD" ]
            return host, port, scheme, foreign, m
        }

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen gen') (fun (host, port, scheme, foreign, m) ->
            let hostHeader = $"{host}:{inv port}"

            let req origin : Guard.Request =
                { Method = m; Host = Some hostHeader; Origin = origin; ContentType = None; HasBody = false; JsonRoute = true }

            let own = Guard.check names (req (Some $"{scheme}://{hostHeader}"))
            let other = Guard.check names (req (Some foreign))
            let foreignIsOwn = foreign = $"{scheme}://{hostHeader}"
            let changes = Guard.changesState m

            own.IsNone
            && (if changes && not foreignIsOwn then other |> Option.exists (fun r -> r.Code = 403) else other.IsNone)
            && Guard.check names (req (Some "https://team.example.com")) = None)
    )

[<Fact>]
let ``rule: a JSON route takes a body only with a JSON content type`` () =
    let gen' =
        gen {
            let! ctype = Gen.elements [ None; Some "application/json"; Some "application/json; charset=utf-8"; Some "APPLICATION/JSON"; Some "application/merge-patch+json"; Some "text/plain"; Some "application/x-www-form-urlencoded"; Some "multipart/form-data; boundary=b"; Some "application/jsonx"; Some "" ]
            let! hasBody = Gen.elements [ true; false ]
            let! jsonRoute = Gen.elements [ true; false ]
            return ctype, hasBody, jsonRoute
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen gen') (fun (ctype, hasBody, jsonRoute) ->
            let r: Guard.Request =
                { Method = "POST"; Host = Some "127.0.0.1:7080"; Origin = None; ContentType = ctype; HasBody = hasBody; JsonRoute = jsonRoute }

            let isJson = ctype |> Option.exists Guard.isJsonType
            let refused = Guard.check names r |> Option.exists (fun x -> x.Code = 415)
            refused = (jsonRoute && (hasBody || ctype.IsSome) && not isJson))
    )

// ---------------------------------------------------------------- rate limits

[<Fact>]
let ``rule: a token bucket never lets more than the limit plus the refill through, and Retry-After is honest`` () =
    // (the refusal does not touch the bucket, as in the platform's Limiter)
    let gen' =
        gen {
            let! perMinute = Gen.choose (1, 120)
            let! gaps = Gen.listOf (Gen.choose (0, 4000)) // ms between requests
            return perMinute, gaps
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen gen') (fun (perMinute, gaps) ->
            let policy: RateLimit.Policy = { PerMinute = perMinute }

            let _, _, allowedAt, honest =
                gaps
                |> List.fold
                    (fun (bucket, clock: DateTimeOffset, allowed, honest) gap ->
                        let now = clock.AddMilliseconds(float gap)

                        match RateLimit.take policy now bucket with
                        | RateLimit.Allowed b -> Some b, now, now :: allowed, honest
                        | RateLimit.Limited s ->
                            // waiting the advertised time is enough
                            let later = RateLimit.take policy (now.AddSeconds(float s)) bucket
                            let ok = s >= 1 && (match later with RateLimit.Allowed _ -> true | _ -> false)
                            bucket, now, allowed, honest && ok)
                    (None, t0, [], true)

            // in every window [a, b] the allowed count is at most the burst plus the refill
            let times = List.rev allowedAt

            let withinBudget =
                times
                |> List.forall (fun a ->
                    times
                    |> List.filter (fun t -> t >= a)
                    |> List.forall (fun b ->
                        let n = times |> List.filter (fun t -> t >= a && t <= b) |> List.length
                        float n <= float perMinute + (b - a).TotalSeconds * float perMinute / 60.0 + 1e-6))

            honest && withinBudget)
    )

[<Fact>]
let ``rule: rate limits are total: no limit means always allowed, a clock running backwards refills nothing`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose (-100000, 100000)))) (fun offsets ->
            let off: RateLimit.Policy = { PerMinute = 0 }
            let one: RateLimit.Policy = { PerMinute = 1 }
            let first = RateLimit.take one t0 None

            offsets |> List.forall (fun o -> RateLimit.take off (t0.AddMilliseconds(float o)) None |> (function RateLimit.Allowed _ -> true | _ -> false))
            && (match first with
                | RateLimit.Allowed b ->
                    offsets
                    |> List.filter (fun o -> o <= 0)
                    |> List.forall (fun o -> match RateLimit.take one (t0.AddMilliseconds(float o)) (Some b) with RateLimit.Limited s -> s >= 1 | _ -> false)
                | _ -> false))
    )

[<Fact>]
let ``rule: a byte budget never lets more than its limit plus the refill through, an undeclared upload's debt is waited off, and Retry-After is honest`` () =
    let gen' =
        gen {
            let! perMinute = Gen.choose (1000, 100000)
            let! steps = Gen.listOf (Gen.zip3 (Gen.choose (0, 20000)) (Gen.choose (1, 150000)) (Gen.elements [ true; false ])) // ms, bytes, declared
            return perMinute, steps
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen gen') (fun (perMinute, steps) ->
            let policy: RateLimit.Policy = { PerMinute = perMinute }
            let rate = float perMinute / 60.0

            let _, _, taken, honest =
                steps
                |> List.fold
                    (fun (bucket, clock: DateTimeOffset, taken, honest) (gap, bytes, declared) ->
                        let now = clock.AddMilliseconds(float gap)

                        if declared then
                            match RateLimit.takeCost policy (float bytes) now bucket with
                            | RateLimit.Allowed b -> Some b, now, (now, min bytes perMinute) :: taken, honest
                            | RateLimit.Limited s ->
                                let later = RateLimit.takeCost policy (float bytes) (now.AddSeconds(float s)) bucket
                                bucket, now, taken, honest && s >= 1 && (match later with RateLimit.Allowed _ -> true | _ -> false)
                        else
                            Some(RateLimit.charge policy (float bytes) now bucket), now, taken, honest)
                    (None, t0, [], true)

            // what declared uploads take in any window [a, b] is at most the burst plus the refill (undeclared uploads,
            // charged after the fact, only leave less)
            let times = List.rev taken

            let declaredOk =
                times
                |> List.forall (fun (a, _) ->
                    times
                    |> List.filter (fun (t, _) -> t >= a)
                    |> List.forall (fun (b, _) ->
                        let total = times |> List.filter (fun (t, _) -> t >= a && t <= b) |> List.sumBy (fun (_, n) -> float n)
                        total <= float perMinute + (b - a).TotalSeconds * rate + 1e-3))

            honest && declaredOk && rate > 0.0)
    )

[<Fact>]
let ``rule: a charged debt makes the next request wait until it is paid off`` () =
    let policy: RateLimit.Policy = { PerMinute = 600 } // 10 a second
    let debt = RateLimit.charge policy 1200.0 t0 None // a whole budget overdrawn: -600

    match RateLimit.takeCost policy 1.0 t0 (Some debt) with
    | RateLimit.Limited s ->
        Assert.InRange(s, 60, 61) // 601 tokens to refill at 10 a second
        Assert.True(match RateLimit.takeCost policy 1.0 (t0.AddSeconds(float s)) (Some debt) with RateLimit.Allowed _ -> true | _ -> false)
    | RateLimit.Allowed _ -> failwith "a debt was ignored"

    Assert.True(RateLimit.streamAllowed 2 1)
    Assert.False(RateLimit.streamAllowed 2 2)
    Assert.True(RateLimit.streamAllowed 0 1000)
    Assert.Equal("rate limit exceeded: at most 100 MiB of uploads a minute per token; retry in 3 s", RateLimit.uploadMessage RateLimit.Limits.defaults.UploadBytes 3)

// ---------------------------------------------------------------- registration

[<Fact>]
let ``rule: an unknown workspace id never passes the registry gate unless registration is open`` () =
    let gen' =
        gen {
            let! openReg = Gen.elements [ true; false ]
            let! bearer = Gen.elements [ None; Some "x"; Some(Tokens.format (Array.create 32 1uy)) ]
            let! known = Gen.choose (0, 3)
            return openReg, bearer, known
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen gen') (fun (openReg, bearer, known) ->
            let tokens = List.init known (fun i -> Tokens.create (TokenId(Guid.NewGuid())) (wid ()) t0 (Tokens.format (Array.create 32 (byte i))))
            let unknown = wid ()
            let r = Auth.registryGate openReg Auth.missingToken Auth.invalidToken None unknown (Auth.credentialsIn tokens unknown bearer)

            match r with
            | Ok Auth.Grandfathered -> openReg && bearer.IsNone
            | Ok _ -> false
            | Error e -> e.Code = 401 && (openReg || e.Body.Contains "molecule-platform workspace create"))
    )

// ---------------------------------------------------------------- feed and delegations

let private named = [ "Lead"; "Researcher"; "Writer"; "Ops <b>"; "Zoë & co" ]

/// A team of named workspaces.
let private teamGen =
    gen {
        let! n = Gen.choose (2, 5)
        let ids = List.init n (fun _ -> wid ())
        return ids |> List.mapi (fun i id -> id, { Workspace.fresh id t0 with Name = named[i] }) |> Map.ofList, ids
    }

type private Event =
    | AsyncDelegation of WorkspaceId * WorkspaceId * Delegations.Outcome
    | SyncDelegation of WorkspaceId * WorkspaceId * failed: bool
    | CanvasMessage of WorkspaceId
    | Notify of WorkspaceId
    | GlobalMemory of WorkspaceId
    | PeerMessage of WorkspaceId * WorkspaceId

let private envelopeText (text: string) =
    Json.obj
        [ "jsonrpc", Json.str "2.0"
          "id", Json.str "1"
          "method", Json.str "message/send"
          "params", Json.obj [ "message", Json.obj [ "role", Json.str "user"; "messageId", Json.str (string (Guid.NewGuid())); "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str text ] ] ] ] ]

let private report (ws: WorkspaceId) (fields: (string * JsonNode) list) =
    match Activity.report (aid ()) t0 ws (Json.obj fields) with
    | Ok r -> r
    | Error e -> failwith e.Body

/// The rows an event leaves, in order (the platform's and the agent's own constructors).
let private rowsOf (team: Map<WorkspaceId, Workspace>) (e: Event) : ActivityRow list =
    let wsOf id = team[id]

    match e with
    | AsyncDelegation(l, r, outcome) ->
        let d = aid ()
        let req: Delegations.Request = { TargetId = r; Task = "summarise the notes"; IdempotencyKey = None }

        [ Delegations.trackingRow d t0 l req
          if outcome <> Delegations.Failed "unreachable" then
              A2a.queuedRow (aid ()) t0 (Some l) (wsOf r) (Delegations.envelope (Guid.NewGuid()) d req.Task)
          Delegations.resultRow (aid ()) t0 l r d outcome
          match outcome with
          | Delegations.Completed text -> Delegations.replyRow (aid ()) t0 l r d text
          | _ -> () ]
    | SyncDelegation(l, r, failed) ->
        let common () = [ "source_id", Json.str (string l); "target_id", Json.str (string r); "method", Json.str "message/send" ]

        [ report l (common () @ [ "activity_type", Json.str "a2a_send"; "summary", Json.str "Delegating to the peer"; "request_body", Json.obj [ "task", Json.str "check the build" ] ])
          if not failed then
              A2a.queuedRow (aid ()) t0 (Some l) (wsOf r) (envelopeText "check the build")
          if failed then
              report l (common () @ [ "activity_type", Json.str "a2a_receive"; "summary", Json.str "the peer failed"; "status", Json.str "error"; "error_detail", Json.str "HTTP 403: access denied" ])
          else
              report l (common () @ [ "activity_type", Json.str "a2a_receive"; "summary", Json.str "the peer responded"; "response_body", Json.obj [ "result", Json.str "green" ] ]) ]
    | CanvasMessage w -> [ A2a.queuedRow (aid ()) t0 None (wsOf w) (envelopeText "hello agent") ]
    | Notify w -> [ A2a.notifyRow (aid ()) t0 (wsOf w) "done, see the report" [] ]
    | GlobalMemory w ->
        [ { Activity.row (aid ()) t0 w "memory_write_global" with SourceId = Some w; Summary = Some "g" } ]
    | PeerMessage(a, b) -> [ A2a.queuedRow (aid ()) t0 (Some a) (wsOf b) (envelopeText "ping") ]

/// A team, some events and a random interleaving of their rows (each event's own rows keep their order), with
/// increasing seq and time.
let private scenarioGen =
    gen {
        let! team, ids = teamGen

        let pair =
            gen {
                let! a = Gen.elements ids
                let! b = Gen.elements (ids |> List.filter ((<>) a))
                return a, b
            }

        let event =
            Gen.oneof
                [ gen {
                      let! a, b = pair
                      let! o = Gen.elements [ Delegations.Completed "the summary"; Delegations.Queued; Delegations.Failed "unreachable" ]
                      return AsyncDelegation(a, b, o)
                  }
                  gen {
                      let! a, b = pair
                      let! f = Gen.elements [ true; false ]
                      return SyncDelegation(a, b, f)
                  }
                  Gen.map CanvasMessage (Gen.elements ids)
                  Gen.map Notify (Gen.elements ids)
                  Gen.map GlobalMemory (Gen.elements ids)
                  Gen.map PeerMessage pair ]

        let! events = Gen.listOf event |> Gen.resize 12
        let perEvent = events |> List.map (rowsOf team)
        let total = perEvent |> List.sumBy List.length
        let! picks = Gen.listOfLength total (Gen.choose (0, 1000))

        let rec weave (queues: ActivityRow list list) (picks: int list) acc =
            match queues |> List.filter (List.isEmpty >> not), picks with
            | [], _
            | _, [] -> List.rev acc
            | live, p :: rest ->
                let i = p % live.Length
                let q = live[i]
                weave (live |> List.mapi (fun j x -> if j = i then List.tail x else x)) rest (List.head q :: acc)

        let rows =
            weave perEvent picks []
            |> List.mapi (fun i r -> { r with Seq = int64 (i + 1); CreatedAt = t0.AddMilliseconds(float (i * 10)) })

        return team, events, rows
    }

[<Fact>]
let ``rule: the feed has one entry per event: a delegation's rows (tracking, delivery, result, reply, the agent's own reports) merge into one`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen scenarioGen) (fun (team, events, rows) ->
            let entries = rows |> List.choose (Feed.ofRow (Feed.nameIn team)) |> Feed.merge
            let delegationEntries = entries |> List.filter (fun e -> e.Kind = "delegation")
            let asyncCount = events |> List.filter (function AsyncDelegation _ -> true | _ -> false) |> List.length

            entries.Length = events.Length
            && delegationEntries.Length = asyncCount
            && (entries |> List.map (fun e -> e.Key) |> List.distinct |> List.length) = entries.Length)
    )

[<Fact>]
let ``rule: feed labels name workspaces: never the id of a named workspace, and the sender is the actor`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen scenarioGen) (fun (team, _, rows) ->
            let entries = rows |> List.choose (Feed.ofRow (Feed.nameIn team)) |> Feed.merge
            let ids = team |> Map.toList |> List.map (fun (id, _) -> string id)

            let noIds =
                entries |> List.forall (fun e -> ids |> List.forall (fun id -> not ((e.Text + e.Detail + e.Result).Contains id)))

            // a message from A to B is A's act, labelled "A → B"
            let senders =
                rows
                |> List.filter (fun r -> r.ActivityType = "a2a_receive" && r.SourceId.IsSome && r.SourceId <> Some r.WorkspaceId && (Feed.delegationOf r).IsNone)
                |> List.forall (fun r ->
                    entries
                    |> List.exists (fun e ->
                        e.Key = string r.Id && e.ActorId = r.SourceId && e.Text.StartsWith(team[r.SourceId.Value].Name + " → " + team[r.WorkspaceId].Name)))

            let memories = entries |> List.filter (fun e -> e.Kind = "memory") |> List.forall (fun e -> e.Text.Contains "wrote a GLOBAL memory" && e.Detail = "g")
            noIds && senders && memories)
    )

[<Fact>]
let ``rule: every delegation appears exactly once in the delegations view, with its outcome`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen scenarioGen) (fun (_, events, rows) ->
            let views = AdminViews.delegations rows
            let expected = events |> List.filter (function AsyncDelegation _ | SyncDelegation _ -> true | _ -> false) |> List.length
            let failedSync = events |> List.filter (function SyncDelegation(_, _, true) -> true | _ -> false) |> List.length
            let completed = events |> List.filter (function AsyncDelegation(_, _, Delegations.Completed _) | SyncDelegation(_, _, false) -> true | _ -> false) |> List.length

            views.Length = expected
            && (views |> List.map (fun v -> v.Id) |> List.distinct |> List.length) = expected
            && (views |> List.filter (fun v -> v.Mode = "sync" && v.Status = "failed") |> List.length) = failedSync
            && (views |> List.filter (fun v -> v.Status = "completed") |> List.length) = completed
            && views |> List.forall (fun v -> v.Task <> ""))
    )

[<Fact>]
let ``feed examples: the issue's texts (no raw UUIDs, a GLOBAL write labelled, one line per delegation)`` () =
    let lead, res = wid (), wid ()
    let team = Map.ofList [ lead, { Workspace.fresh lead t0 with Name = "Lead" }; res, { Workspace.fresh res t0 with Name = "Researcher" } ]
    let d = aid ()
    let req: Delegations.Request = { TargetId = res; Task = "find sources"; IdempotencyKey = None }
    let queued = Delegations.resultRow (aid ()) t0 lead res d Delegations.Queued
    let name = Feed.nameIn team
    let merged = [ Delegations.trackingRow d t0 lead req; queued ] |> List.choose (Feed.ofRow name) |> Feed.merge
    Assert.Equal(1, merged.Length)
    Assert.Equal("Lead delegated a task to Researcher", merged.Head.Text)
    Assert.Equal("queued", merged.Head.Status)
    Assert.Equal("find sources", merged.Head.Detail)
    Assert.Equal("Delegation queued for poll-mode workspace Researcher", Feed.withNames name queued.Summary.Value)
    Assert.Equal("workspace " + res.Guid.ToString("N").Substring(0, 8), Feed.nameIn Map.empty res)
    Assert.Equal("Researcher (" + res.Guid.ToString("N").Substring(0, 8) + ")", Feed.nameWithId team res)

// ---------------------------------------------------------------- connection lines and edits

/// A POSIX shell's reading of one word made of plain characters and '…' quotes.
let private unquote (w: string) =
    let sb = Text.StringBuilder()
    let mutable quoted = false

    let mutable escaped = false

    for ch in w do
        if escaped then
            sb.Append ch |> ignore
            escaped <- false
        elif ch = '\'' then quoted <- not quoted
        elif ch = '\\' && not quoted then escaped <- true
        else sb.Append ch |> ignore

    sb.ToString()

[<Fact>]
let ``rule: connection lines carry the connection exactly: shell words unquote to it, the JSON config parses to it`` () =
    let textGen = Gen.elements [ "Docs Writer"; "it's"; "a'b'c"; "$(rm -rf /)"; "`x`"; "tab\tand space"; "ünïcødé"; "back\\slash"; "\"q\""; "" ]

    let gen' =
        gen {
            let! name = textGen
            let! binary = Gen.elements [ "/opt/molecule mcp/molecule-mcp"; "molecule-mcp"; "/tmp/it's/mcp" ]
            return
                ({ Name = name
                   WorkspaceId = string (Guid.NewGuid())
                   PlatformUrl = "http://192.168.1.20:7080"
                   Token = Tokens.format (Array.create 32 9uy)
                   Binary = binary }
                : Connection.Connection)
        }

    Check.One(
        cfg 200,
        Prop.forAll (Arb.fromGen gen') (fun c ->
            let quotedEnv = [ for (k, v) in Connection.env c -> Connection.shellQuote $"{k}={v}" ]
            let claude = Connection.claudeCommand c
            let cfgNode = JsonNode.Parse(Connection.jsonConfig c)
            let server = (cfgNode["mcpServers"]).[Connection.slug c.Name]

            quotedEnv |> List.forall (fun w -> claude.Contains w)
            && (Connection.env c |> List.forall (fun (k, v) -> unquote (Connection.shellQuote $"{k}={v}") = $"{k}={v}"))
            && unquote (Connection.shellQuote c.Binary) = c.Binary
            && server["command"].GetValue<string>() = c.Binary
            && (Connection.env c |> List.forall (fun (k, v) -> (server["env"][k]).GetValue<string>() = v))
            && (Connection.snippets c |> List.map (fun s -> s.Key)) = [ "claude"; "hermes"; "json" ]
            && Connection.block c |> fun b -> b.Contains claude && b.Contains "Other MCP clients (JSON config):")
    )

[<Fact>]
let ``rule: an edit changes exactly the fields it names`` () =
    let opt g = Gen.oneof [ Gen.constant None; Gen.map Some g ]

    let gen' =
        gen {
            let! name = opt (Gen.elements [ "New name"; "Zoë" ])
            let! role = opt (Gen.elements [ ""; "reviewer" ])
            let! skills = opt (Gen.elements [ []; [ "a"; "b" ] ])
            let! description = opt (Gen.elements [ ""; "reads and cites" ])
            return ({ Name = name; Role = role; Skills = skills; Description = description }: AdminViews.Edit)
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen gen') (fun e ->
            let id = wid ()
            let before = { Workspace.fresh id t0 with Name = "Old"; Role = Some "lead"; AgentCard = Some(Views.cardOf "Old" [ "x" ] (Some "old text")) }
            let after = AdminViews.applyEdit (t0.AddMinutes 1.0) e before
            let card = JsonNode.Parse(after.AgentCard.Value)
            let skills = [ for s in card["skills"].AsArray() -> s["name"].GetValue<string>() ]
            let description = match card["description"] with null -> None | d -> Some(d.GetValue<string>())

            after.Name = defaultArg e.Name "Old"
            && after.Role = (match e.Role with Some "" -> None | Some r -> Some r | None -> Some "lead")
            && skills = defaultArg e.Skills [ "x" ]
            && description = (match e.Description with Some "" -> None | Some d -> Some d | None -> Some "old text")
            && card["name"].GetValue<string>() = after.Name
            && after.Id = before.Id && after.Status = before.Status && after.ParentId = before.ParentId)
    )

[<Fact>]
let ``notices: only a loopback listen address starts silently`` () =
    for h in [ "127.0.0.1"; "localhost"; "::1"; "[::1]"; "127.1.2.3" ] do
        Assert.True(Notices.isLoopbackListen h, h)
        Assert.Equal(None, Notices.exposed h 7080)

    for h in [ "0.0.0.0"; "::"; "192.168.1.20"; "*"; "example.com" ] do
        Assert.False(Notices.isLoopbackListen h, h)
        Assert.Contains("reverse proxy with TLS", (Notices.exposed h 7080).Value)

    Assert.Equal<string list>([ Notices.openRegistration; Notices.faults ], (Notices.atStart "127.0.0.1" 1 true true))

[<Fact>]
let ``rule: a stream ticket opens one stream, once, within its minute`` () =
    let gen' =
        gen {
            let! n = Gen.choose (1, 6)
            let! redeemAt = Gen.listOf (Gen.zip (Gen.choose (0, n)) (Gen.choose (-5, 90)))
            return n, redeemAt
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen gen') (fun (n, attempts) ->
            let texts = List.init n (fun i -> Tokens.format (Array.create 32 (byte (i + 1))))
            let book = texts |> List.map (Tickets.issue t0)

            // the model: a ticket works once, before its minute is over; an attempt after the minute drops every
            // expired ticket, so no later attempt (even one stamped earlier) revives them
            let _, _, _, ok =
                attempts
                |> List.fold
                    (fun (book, used: Set<int>, purged, ok) (i, secs) ->
                        let presented = if i < n then texts[i] else "never-issued" // index n: never issued
                        let accepted, rest = Tickets.redeem (t0.AddSeconds(float secs)) presented book
                        let expected = i < n && not (used.Contains i) && secs < 60 && not purged
                        rest, (if accepted then used.Add i else used), purged || secs >= 60, ok && accepted = expected)
                    (book, Set.empty, false, true)

            ok)
    )
