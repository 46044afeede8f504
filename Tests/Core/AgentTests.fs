module Molecule.Tests.Core.AgentTests

open Molecule.Protocol

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core

let selfId = "11111111-2222-3333-4444-555555555555"
let peerId = "99999999-8888-7777-6666-555555555555"

let config: Config =
    { WorkspaceId = selfId
      PlatformUrl = "http://127.0.0.1:9"
      Origin = "http://127.0.0.1:9"
      Token = "tok-secret-value"
      TokenSource = FromEnv
      AgentCard = { Name = "agent"; Description = None; Skills = [] }
      StateDir = "/tmp/state"
      Verbose = false
      HeartbeatEnabled = true
      InboxEnabled = true
      PollTimeoutSecs = 2
      HeartbeatIntervalSecs = 20.0
      PollIntervalSecs = 5.0
      Tier = 1 }

let row (id: string) (seconds: int) (text: string) =
    let ts = DateTimeOffset(2026, 11, 21, 12, 0, 0, TimeSpan.Zero).AddSeconds(float seconds)
    let stamp = ts.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", Globalization.CultureInfo.InvariantCulture)
    let body = Json.obj [ "params", Json.obj [ "message", Json.obj [ "parts", Json.arr [ Json.obj [ "kind", Json.str "text"; "text", Json.str text ] ] ] ] ]

    Json.obj
        [ "id", Json.str id
          "workspace_id", Json.str selfId
          "activity_type", Json.str "a2a_receive"
          "source_id", Json.str peerId
          "method", Json.str "message/send"
          "created_at", Json.str stamp
          "request_body", body ]

let page (rows: System.Text.Json.Nodes.JsonObject list) = Reply(200, Json.compact (Json.arr (rows |> List.map (fun r -> r :> System.Text.Json.Nodes.JsonNode))))

let notifications (effects: Effect list) =
    effects |> List.choose (function Notify ev -> Some ev | _ -> None)

let afterTimers (effects: Effect list) =
    effects |> List.choose (function After(s, t) -> Some(s, t) | _ -> None)

/// A step of a random session: a poll delivering some new rows, or the client finishing its handshake.
type SessionStep =
    | Deliver of count: int
    | Initialize

let genSession =
    Gen.listOf (Gen.oneof [ Gen.choose (0, 3) |> Gen.map Deliver; Gen.constant Initialize ])

[<Fact>]
let ``rule: channel notifications flow only after notifications/initialized, each message exactly once`` () =
    let prop (steps: SessionStep list) =
        let mutable model = Agent.init config Inbox.empty
        let mutable initialized = false
        let mutable next = 0
        let mutable notified: string list = []
        let mutable delivered: string list = []

        for step in steps do
            match step with
            | Initialize ->
                let m, effects = Agent.update Agent.ClientInitialized model
                model <- m
                initialized <- true
                notified <- notified @ (notifications effects |> List.map (fun e -> e.Content))
            | Deliver n ->
                let rows =
                    [ for _ in 1..n do
                          next <- next + 1
                          row (Guid(next, 0s, 0s, Array.zeroCreate 8).ToString()) (next * 10) $"m{next}" ]

                delivered <- delivered @ [ for i in next - n + 1 .. next -> $"m{i}" ]
                let m, effects = Agent.update (Agent.Responded(Poll, page rows)) model
                model <- m
                let sent = notifications effects |> List.map (fun e -> e.Content)
                if not initialized && not sent.IsEmpty then failwith "notification before initialized"
                notified <- notified @ sent

        let expected = if initialized then delivered else []
        (List.sort notified = List.sort expected) |> Prop.label $"notified {notified} expected {expected}"

    Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest 200, Prop.forAll (Arb.fromGen genSession) prop)

/// Whatever answer a background request gets, exactly one timer for the next one is set, one interval later.
let private repeatsAfterEveryAnswer (purpose: Purpose) (body: string) (expected: float * Timer) =
    let responses =
        Gen.oneof
            [ Gen.choose (100, 599) |> Gen.map (fun s -> Reply(s, body))
              Gen.constant (TransportError "refused")
              Gen.constant (TimedOut 10.0) ]

    let prop (response: Response) =
        let _, effects = Agent.update (Agent.Responded(purpose, response)) (Agent.init config Inbox.empty)
        afterTimers effects = [ expected ]

    Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest 200, Prop.forAll (Arb.fromGen responses) prop)

[<Fact>]
let ``rule: heartbeats repeat one interval (20 s) after every answer`` () =
    repeatsAfterEveryAnswer Heartbeat "" (config.HeartbeatIntervalSecs, HeartbeatTimer)

[<Fact>]
let ``rule: polls repeat one interval (5 s) after every answer`` () =
    repeatsAfterEveryAnswer Poll "[]" (config.PollIntervalSecs, PollTimer)

[<Fact>]
let ``rule: a rejected register exits 3 and starts no heartbeat`` () =
    for status in [ 401; 403 ] do
        let _, effects = Agent.update (Agent.Responded(Register, Reply(status, "{}"))) (Agent.init config Inbox.empty)
        Assert.Contains(Exit 3, effects)
        Assert.Empty(afterTimers effects)

[<Fact>]
let ``rule: an accepted register starts the heartbeat at once`` () =
    let _, effects = Agent.update (Agent.Responded(Register, Reply(200, "{}"))) (Agent.init config Inbox.empty)
    Assert.Equal<(float * Timer) list>([ 0.0, HeartbeatTimer ], afterTimers effects)
    Assert.DoesNotContain(Exit 3, effects)

[<Fact>]
let ``start registers, probes the workspace and polls; disabled parts send nothing`` () =
    let sends cfg =
        Agent.update Agent.Start (Agent.init cfg Inbox.empty)
        |> snd
        |> List.choose (function Send(p, _) -> Some p | _ -> None)

    Assert.Equal<Purpose list>([ Register; WorkspaceProbe; Poll ], sends config)
    Assert.Equal<Purpose list>([ WorkspaceProbe; Poll ], sends { config with HeartbeatEnabled = false })
    Assert.Equal<Purpose list>([ Register; WorkspaceProbe ], sends { config with InboxEnabled = false })

[<Fact>]
let ``inbox operations: peek, wait and pop through the agent`` () =
    let model, _ = Agent.update (Agent.Responded(Poll, page [ row "a0000000-0000-0000-0000-000000000001" 0 "hello" ])) (Agent.init config Inbox.empty)
    let _, answer, _ = Agent.inbox (Wait 1.0) model

    match answer with
    | Waited(Some m) -> Assert.Equal("hello", m.Text)
    | other -> failwith $"unexpected wait answer"

    let model2, popped, _ = Agent.inbox (Pop "a0000000-0000-0000-0000-000000000001") model
    Assert.Equal(Popped true, popped)
    Assert.True(Agent.inboxVersion model2 > Agent.inboxVersion model)
    let _, again, _ = Agent.inbox (Wait 1.0) model2
    Assert.Equal(Waited None, again)
    let _, disabled, _ = Agent.inbox (Peek 10) (Agent.init { config with InboxEnabled = false } Inbox.empty)
    Assert.Equal(InboxDisabled, disabled)

[<Fact>]
let ``a removed workspace observed by a tool reaches the tool context`` () =
    let info = { Id = selfId; RemovedAt = Some "2026-11-21T12:00:00Z"; Hint = Text.defaultRemovedHint }
    let model, _ = Agent.update (Agent.ToolObserved [ WorkspaceRemoved info; PeerNames [ peerId, "Peer" ] ]) (Agent.init config Inbox.empty)
    let ctx = Agent.context model
    Assert.Equal(Some info, ctx.Removed)
    Assert.Equal(Some "Peer", ctx.PeerNames.TryFind peerId)

[<Fact>]
let ``rule: unread messages restored from the state file are announced once after notifications/initialized`` () =
    // A message persisted by an earlier run whose notification never reached the client (the process or the
    // client stopped in between) is still unread; a push-only agent learns of it only through the channel.
    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 100,
        Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 6)) (Gen.choose (0, 6)))) (fun (n, popped) ->
            let ids = [ for i in 1..n -> $"a0000000-0000-0000-0000-{i:D12}" ]
            let earlier, _, _ = Inbox.onPoll selfId (page [ for i, id in List.indexed ids -> row id i $"m{i}" ]) Inbox.empty
            let restored = Inbox.restore (Some(Inbox.snapshot earlier)) None
            let model = Agent.init config restored
            // The agent pops some of them (poll path) before the handshake completes.
            let model =
                ids
                |> List.truncate popped
                |> List.fold (fun m id -> let m, _, _ = Agent.inbox (Pop id) m in m) model
            let model, effects = Agent.update Agent.ClientInitialized model
            let _, again = Agent.update Agent.ClientInitialized model
            let announced =
                notifications effects
                |> List.choose (fun ev -> ev.Meta |> List.tryFind (fun (k, _) -> k = "activity_id") |> Option.map snd)
            announced = List.skip (min popped n) ids && List.isEmpty (notifications again))
    )

