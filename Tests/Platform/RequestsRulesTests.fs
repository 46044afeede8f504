/// Properties of the requests inbox's decider (Rules/RequestsDecider.fs) and of approvals (Rules/Approvals.fs): who may
/// answer, what each kind takes, what a message does, that a resolved request stays resolved, expiry, and to whom a
/// change is delivered.
module Molecule.Tests.Platform.RequestsRulesTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
open Molecule.Platform.Requests
open Molecule.Platform.RequestsDecider
open Molecule.Platform.RequestsWire
module Json = Molecule.Protocol.Json

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 6, 1, 10, 0, 0, TimeSpan.Zero)
let private a = WorkspaceId(Guid.Parse "aaaaaaaa-0000-4000-8000-000000000001")
let private b = WorkspaceId(Guid.Parse "bbbbbbbb-0000-4000-8000-000000000002")
let private c = WorkspaceId(Guid.Parse "cccccccc-0000-4000-8000-000000000003")
let private parties = [ Party.User None; Party.User(Some "someone"); Party.Agent a; Party.Agent b; Party.Agent c ]
let private partyGen = Gen.elements parties
let private stored = RequestStatus.all |> List.filter (fun s -> s <> RequestStatus.Expired)
let private actions = [ RequestStatus.Done; RequestStatus.Rejected; RequestStatus.Approved ]

let private requestGen =
    gen {
        let! requester = Gen.elements [ a; b ]
        let! recipient = partyGen
        let! kind = Gen.elements [ Kind.Task; Kind.Approval ]
        let! status = Gen.elements stored
        let! expires = Gen.elements [ None; Some(t0.AddMinutes -1.0); Some(t0.AddMinutes 10.0) ]
        let! source = Gen.elements Source.all

        return
            { Id = RequestId(Guid.NewGuid())
              Kind = kind
              Requester = Party.Agent requester
              Recipient = recipient
              Title = "Deploy v2?"
              Detail = None
              Priority = "normal"
              Source = source
              ExpiresAt = expires
              Status = status
              Responder = None
              CreatedAt = t0.AddMinutes -5.0
              UpdatedAt = t0.AddMinutes -5.0
              RespondedAt = None }
    }

let private message (text: string) : Message =
    { Id = RequestMessageId(Guid.NewGuid())
      RequestId = RequestId Guid.Empty
      Author = Party.User None
      Body = text
      CreatedAt = t0 }

let private commandGen =
    gen {
        let! actor = partyGen
        let! action = Gen.elements actions
        return! Gen.elements [ Respond(actor, action); Say(actor, message "which host?"); Cancel actor ]
    }

let private isOk r =
    match r with
    | Ok _ -> true
    | Error _ -> false

let private code (r: Result<Change, Reply>) =
    match r with
    | Ok _ -> 0
    | Error e -> e.Code

[<Fact>]
let ``rule: only the recipient responds`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip3 requestGen partyGen (Gen.elements actions))) (fun (r, actor, action) ->
            match decide t0 (Some r) (Respond(actor, action)) with
            | Ok ch -> Party.same actor r.Recipient && ch.Request.Responder = Some actor && ch.Request.Status = action
            | Error _ -> true)
    )

[<Fact>]
let ``rule: a requester cannot respond`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen (Gen.elements actions))) (fun (r, action) ->
            let refused = decide t0 (Some r) (Respond(r.Requester, action))
            not (isOk refused) && (Party.same r.Requester r.Recipient |> not || code refused <> 403))
    )

[<Fact>]
let ``rule: an approval takes approved or rejected, a task done or rejected`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen (Gen.elements actions))) (fun (r, action) ->
            let answerable = RequestStatus.isOpen (statusAt t0 r) && not (Party.same r.Recipient r.Requester)

            let allowed =
                match r.Kind, action with
                | Kind.Approval, (RequestStatus.Approved | RequestStatus.Rejected)
                | Kind.Task, (RequestStatus.Done | RequestStatus.Rejected) -> true
                | _ -> false

            let result = decide t0 (Some r) (Respond(r.Recipient, action))

            if answerable then
                isOk result = allowed && (allowed || code result = 400)
            else
                not (isOk result))
    )

[<Fact>]
let ``rule: a message from anyone but the requester flips an open request to info_requested; the requester's keeps its status`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen partyGen)) (fun (r, actor) ->
            match decide t0 (Some r) (Say(actor, message "which host?")) with
            | Ok ch ->
                let expected = if Party.same actor r.Requester then r.Status else RequestStatus.InfoRequested

                isParticipant actor r
                && RequestStatus.isOpen (statusAt t0 r)
                && ch.Request.Status = expected
                && (match ch.Event with
                    | MessageAdded m -> m.Author = actor && m.RequestId = r.Id && m.Body = "which host?"
                    | _ -> false)
            | Error e -> (not (isParticipant actor r) && e.Code = 403) || not (RequestStatus.isOpen (statusAt t0 r)))
    )

[<Fact>]
let ``rule: only the requester cancels, and only an open request`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen partyGen)) (fun (r, actor) ->
            match decide t0 (Some r) (Cancel actor) with
            | Ok ch -> Party.same actor r.Requester && RequestStatus.isOpen (statusAt t0 r) && ch.Request.Status = RequestStatus.Cancelled
            | Error e -> not (Party.same actor r.Requester) && e.Code = 403 || not (RequestStatus.isOpen (statusAt t0 r)))
    )

[<Fact>]
let ``rule: a resolved request stays resolved under any commands`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen (Gen.listOf commandGen))) (fun (r, commands) ->
            let step (cur: Request, ok: bool) (cmd: Command) =
                let before = statusAt t0 cur

                match decide t0 (Some cur) cmd with
                | Ok ch -> ch.Request, ok && RequestStatus.isOpen before
                | Error _ -> cur, ok

            snd (List.fold step (r, true) commands))
    )

[<Fact>]
let ``rule: past expires_at an open request reads expired and takes no answer, message or cancellation`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen commandGen)) (fun (r, cmd) ->
            let late = { r with ExpiresAt = Some(t0.AddSeconds -1.0) }
            let result = decide t0 (Some late) cmd

            if RequestStatus.isOpen r.Status then
                statusAt t0 late = RequestStatus.Expired
                && not (isOk result)
                && (code result = 409 || code result = 403 || code result = 400)
                && (statusAt (t0.AddSeconds -2.0) late = r.Status)
            else
                statusAt t0 late = r.Status)
    )

[<Fact>]
let ``rule: a change is delivered to every agent taking part except the one who acted`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip requestGen commandGen)) (fun (r, cmd) ->
            match decide t0 (Some r) cmd with
            | Ok ch ->
                let targets = deliveredTo ch
                let agents = [ r.Requester; r.Recipient ] |> List.choose Party.agent |> List.distinct

                targets = (agents |> List.filter (fun w -> not (Party.same (Party.Agent w) ch.Actor)))
                && targets
                   |> List.forall (fun w ->
                       let row = updateRow (ActivityId(Guid.NewGuid())) t0 (fun _ -> "Beta") w ch
                       let body = (Json.tryParseObject row.RequestBody.Value).Value

                       row.ActivityType = "a2a_receive"
                       && row.Method = Some "request_update"
                       && row.WorkspaceId = w
                       && row.SourceId = Party.agent ch.Actor
                       && Json.stringProp "request_id" body = Some r.Id.Text
                       && Json.stringProp "status" body = Some(RequestStatus.text (statusAt t0 ch.Request)))
            | Error _ -> true)
    )

[<Fact>]
let ``rule: a new request is pending, delivered to its recipient agent and rung on it (or on the requester for the user)`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip partyGen (Gen.elements [ Kind.Task; Kind.Approval ]))) (fun (recipient, kind) ->
            let n =
                { Kind = kind
                  Recipient = recipient
                  Title = "t"
                  Detail = Some "why"
                  Priority = "normal"
                  Source = Source.Agent
                  ExpiresAt = None }

            let ws = Party.agent recipient |> Option.map (fun w -> { Workspace.fresh w t0 with Name = "peer" })

            match create (RequestId(Guid.NewGuid())) t0 a ws n with
            | Ok ch ->
                let bell = announcement t0 ch
                let anchor = Party.agent recipient |> Option.defaultValue a

                ch.Request.Status = RequestStatus.Pending
                && deliveredTo ch = (Party.agent recipient |> Option.filter (fun w -> w <> a) |> Option.toList)
                && bell.Kind = "REQUEST_CREATED"
                && bell.Anchor = Some anchor
            | Error _ -> false)
    )

[<Fact>]
let ``rule: a loop-guard pause raised again while its request is open is that request; nothing else is merged`` () =
    let newGen =
        gen {
            let! source = Gen.elements Source.all
            let! title = Gen.elements [ "Deploy v2?"; "Loop guard: Beta (b) sent 31 messages within a minute with no human turn. Resume the pair?" ]
            return { Kind = Kind.Approval; Recipient = Party.User None; Title = title; Detail = None; Priority = "normal"; Source = source; ExpiresAt = None }
        }

    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip newGen (Gen.listOf (Gen.zip requestGen (Gen.elements [ true; false ]))))) (fun (n, raised) ->
            let raised = raised |> List.map (fun (r, same) -> { r with Title = if same then n.Title else "other" })
            let twins =
                raised
                |> List.filter (fun r ->
                    r.Source = Source.LoopGuard && r.Requester = Party.Agent a && r.Title = n.Title && RequestStatus.isOpen (statusAt t0 r))

            match twinOf t0 a n (fun () -> raised) with
            | Some r -> n.Source = Source.LoopGuard && List.contains r twins
            | None -> n.Source <> Source.LoopGuard || twins.IsEmpty)
    )

[<Fact>]
let ``requests: the feed shows a request_update row by its summary, for the agent it reached`` () =
    let r =
        { Id = RequestId(Guid.NewGuid()); Kind = Kind.Approval; Requester = Party.Agent a; Recipient = Party.User None
          Title = "Deploy v2?"; Detail = None; Priority = "normal"; Source = Source.Agent; ExpiresAt = None
          Status = RequestStatus.Approved; Responder = Some(Party.User None); CreatedAt = t0; UpdatedAt = t0; RespondedAt = Some t0 }

    let ch = { Request = r; Event = Responded; Actor = Party.User None }
    let row = updateRow (ActivityId(Guid.NewGuid())) t0 (fun _ -> "Alpha") a ch

    match Feed.ofRow (fun _ -> "Alpha") row with
    | Some e -> Assert.Equal(("chat", "Request \"Deploy v2?\" approved by the user", "for Alpha"), (e.Kind, e.Text, e.Detail))
    | None -> failwith "no feed entry"

[<Fact>]
let ``requests: a recipient agent that is not a workspace of the team is refused`` () =
    let n =
        { Kind = Kind.Task
          Recipient = Party.Agent c
          Title = "t"
          Detail = None
          Priority = "normal"
          Source = Source.Agent
          ExpiresAt = None }

    match create (RequestId(Guid.NewGuid())) t0 a None n with
    | Error e -> Assert.Equal((404, unknownRecipient), (e.Code, Wire.errorText e))
    | Ok _ -> failwith "created"

[<Fact>]
let ``requests: bodies parse as the reference binds them, expires_at needs an offset`` () =
    let parse (text: string) =
        match parseCreate (Json.tryParseObject text).Value with
        | Ok n -> Ok n
        | Error e -> Error(Wire.errorText e)

    Assert.Equal(Error invalidBody, parse """{"kind":"task","recipient_type":"user"}""")
    Assert.Equal(Error badKind, parse """{"kind":"chore","recipient_type":"user","title":"t"}""")
    Assert.Equal(Error badType, parse """{"kind":"task","recipient_type":"bot","title":"t"}""")
    Assert.Equal(Error badRecipient, parse """{"kind":"task","recipient_type":"agent","title":"t"}""")
    Assert.Equal(Error badExpiry, parse """{"kind":"task","recipient_type":"user","title":"t","expires_at":"2026-06-01T10:00:00"}""")
    Assert.Equal(Error Source.invalid, parse """{"kind":"task","recipient_type":"user","title":"t","source":"cron"}""")

    match parse """{"kind":"approval","recipient_type":"user","title":" t ","expires_at":"2026-06-01T12:00:00.123456789+02:00","source":"permission_relay"}""" with
    | Ok n ->
        Assert.Equal(Some(DateTimeOffset(2026, 6, 1, 10, 0, 0, TimeSpan.Zero).AddTicks 1234567L), n.ExpiresAt)
        Assert.Equal(("t", "normal", Source.PermissionRelay), (n.Title, n.Priority, n.Source))
    | Error e -> failwith e

// ---------------------------------------------------------------- approvals

let private approvalGen =
    gen {
        let! status = Gen.elements Approvals.ApprovalStatus.all
        let! owner = Gen.elements [ a; b ]

        return
            ({ Id = ApprovalId(Guid.NewGuid())
               WorkspaceId = owner
               TaskId = None
               Action = "deploy"
               Reason = None
               Context = None
               Status = status
               DecidedBy = None
               DecidedAt = None
               CreatedAt = t0 }
            : Approvals.Approval)
    }

[<Fact>]
let ``rule: an approval is decided once, by its own workspace's route, and withdrawn only by its creator while pending`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen (Gen.zip3 approvalGen (Gen.elements [ a; b ]) (Gen.elements [ "approved"; "denied"; "maybe" ]))) (fun (ap, ws, d) ->
            let body = Json.obj [ "decision", Json.str d ]
            let pending = ap.Status = Approvals.ApprovalStatus.Pending

            let decided =
                match Approvals.decide t0 ws ws.Text (Some ap) body with
                | Ok x -> pending && ap.WorkspaceId = ws && Approvals.ApprovalStatus.text x.Status = d && x.DecidedBy = Some ws.Text
                | Error e -> (d = "maybe" && e.Code = 400) || (d <> "maybe" && e.Code = 404 && (not pending || ap.WorkspaceId <> ws))

            let withdrawn =
                match Approvals.withdraw t0 ws (Some ap) with
                | Ok x -> pending && ap.WorkspaceId = ws && x.Status = Approvals.ApprovalStatus.Withdrawn
                | Error e -> (ap.WorkspaceId <> ws && e.Code = 403) || (ap.WorkspaceId = ws && not pending && e.Code = 409)

            decided && withdrawn)
    )

// ---------------------------------------------------------------- the nudge sweeper (Rules/Nudges.fs)

let private nudgeSettings = Nudges.Settings.defaults

/// A recipient workspace as the platform knows it: online or not, with or without work in hand.
let private workspaceGen (id: WorkspaceId) =
    gen {
        let! status = Gen.elements [ Status.Online; Status.Online; Status.Offline; Status.AwaitingAgent; Status.Removed ]
        let! active = Gen.elements [ 0; 0; 1; 3 ]
        let! current = Gen.elements [ ""; ""; "deploying" ]
        return { Workspace.fresh id t0 with Status = status; ActiveTasks = active; CurrentTask = current }
    }

/// A team (a, b, c) and requests among them, each changed up to an hour before t0.
let private nudgeWorldGen =
    gen {
        let! team = Gen.sequenceToList [ for w in [ a; b; c ] -> workspaceGen w ]
        let! requests = Gen.listOf requestGen
        let! ages = Gen.listOfLength requests.Length (Gen.choose (0, 60))
        let aged = List.map2 (fun (r: Request) (m: int) -> { r with UpdatedAt = t0.AddMinutes(float -m); CreatedAt = t0.AddMinutes(float -m) }) requests ages
        return Map.ofList [ for w in team -> w.Id, w ], aged
    }

/// The sweeps at t0 and after each step (minutes): every nudge as (request, time).
let private sweeps (team: Map<WorkspaceId, Workspace>) (requests: Request list) (steps: int list) =
    let mutable last = Map.empty
    let mutable now = t0

    [ for step in 0 :: steps do
          now <- now.AddMinutes(float step)

          for r in Nudges.due nudgeSettings now team.TryFind last.TryFind requests do
              last <- last.Add(r.Id, now)
              yield r, now ]

let private stepsGen = Gen.listOf (Gen.choose (1, 40))

/// Over any team, requests and sweep times: `holds` of every nudge made (the team, then each request and time).
let private everyNudge (holds: Map<WorkspaceId, Workspace> -> (Request * DateTimeOffset) list -> bool) =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip nudgeWorldGen stepsGen)) (fun ((team, requests), steps) ->
            holds team (sweeps team requests steps))
    )

[<Fact>]
let ``rule: a request is nudged at most once an hour`` () =
    everyNudge (fun _ nudges ->
        nudges
        |> List.groupBy (fun (r, _) -> r.Id)
        |> List.forall (fun (_, times) ->
            times |> List.map snd |> List.pairwise |> List.forall (fun (x, y) -> y - x >= nudgeSettings.Every)))

[<Fact>]
let ``rule: a resolved request is never nudged`` () =
    everyNudge (fun _ nudges -> nudges |> List.forall (fun (r, at) -> RequestStatus.isOpen (statusAt at r)))

[<Fact>]
let ``rule: a user recipient is never nudged`` () =
    everyNudge (fun _ nudges ->
        nudges
        |> List.forall (fun (r, _) ->
            match r.Recipient with
            | Party.Agent _ -> true
            | Party.User _ -> false))

[<Fact>]
let ``rule: a busy recipient is not nudged`` () =
    everyNudge (fun team nudges ->
        nudges
        |> List.forall (fun (r, _) ->
            match Party.agent r.Recipient |> Option.bind team.TryFind with
            | Some w -> w.Status = Status.Online && w.ActiveTasks = 0 && w.CurrentTask = ""
            | None -> false))

[<Fact>]
let ``rule: an open request on an idle agent, unchanged past the threshold and not nudged within the hour, is nudged`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen (Gen.zip nudgeWorldGen (Gen.choose (0, 120)))) (fun ((team, requests), lastAgo) ->
            let last = t0.AddMinutes(float -lastAgo)
            let due = Nudges.due nudgeSettings t0 team.TryFind (fun _ -> Some last) requests |> List.map (fun r -> r.Id)

            requests
            |> List.forall (fun r ->
                let idle = Party.agent r.Recipient |> Option.bind team.TryFind |> Option.exists Nudges.isIdle

                let expected =
                    idle
                    && RequestStatus.isOpen (statusAt t0 r)
                    && t0 - r.UpdatedAt >= nudgeSettings.After
                    && t0 - last >= nudgeSettings.Every

                List.contains r.Id due = expected))
    )

[<Fact>]
let ``nudges: the row is a request_update with event nudge, the request's header fields and a reminder summary`` () =
    let r =
        { Id = RequestId(Guid.NewGuid()); Kind = Kind.Approval; Requester = Party.Agent a; Recipient = Party.Agent b
          Title = "Ship it?"; Detail = Some "v2 to prod"; Priority = "high"; Source = Source.Agent; ExpiresAt = None
          Status = RequestStatus.InfoRequested; Responder = None; CreatedAt = t0; UpdatedAt = t0; RespondedAt = None }

    let name (w: WorkspaceId) = if w = a then "Alpha" else "other"
    let row = Nudges.row (ActivityId(Guid.NewGuid())) (t0.AddMinutes 75.0) name b r
    Assert.Equal((Some "request_update", "a2a_receive", Some b, None), (row.Method, row.ActivityType, row.TargetId, row.SourceId))
    Assert.Equal(Some "Reminder: the approval request \"Ship it?\" from Alpha has waited 1 h 15 min for your answer", row.Summary)
    let u = Molecule.Protocol.RequestUpdate.ofBody (Json.tryParse row.RequestBody.Value |> Option.get) |> Option.get
    Assert.Equal((r.Id.Text, "nudge", "info_requested", "approval", "Ship it?", "platform", Some "v2 to prod"), (u.RequestId, u.Event, u.Status, u.Kind, u.Title, u.ActorType, u.Body))
    Assert.Equal<string list>([ "12 min"; "2 h"; "3 days" ], [ Nudges.waited (TimeSpan.FromMinutes 12.5); Nudges.waited (TimeSpan.FromHours 2.0); Nudges.waited (TimeSpan.FromDays 3.2) ])

[<Fact>]
let ``nudges: thresholds from the environment, seconds > 0; anything else names the variable`` () =
    let env (pairs: (string * string) list) (name: string) = pairs |> List.tryFind (fst >> (=) name) |> Option.map snd
    let d = Nudges.Settings.defaults
    Assert.Equal(Ok(d, Nudges.Settings.defaultInterval), Nudges.ofVariables (env []) d Nudges.Settings.defaultInterval)

    let given = env [ "MOLECULE_PLATFORM_NUDGE_AFTER_SECS", "1.5"; "MOLECULE_PLATFORM_NUDGE_EVERY_SECS", "30"; "MOLECULE_PLATFORM_NUDGE_INTERVAL_SECS", " 2 " ]
    Assert.Equal(Ok(({ After = TimeSpan.FromSeconds 1.5; Every = TimeSpan.FromSeconds 30.0 }: Nudges.Settings), TimeSpan.FromSeconds 2.0), Nudges.ofVariables given d Nudges.Settings.defaultInterval)

    match Nudges.ofVariables (env [ "MOLECULE_PLATFORM_NUDGE_EVERY_SECS", "hourly" ]) d Nudges.Settings.defaultInterval with
    | Error e -> Assert.StartsWith("MOLECULE_PLATFORM_NUDGE_EVERY_SECS must be a number of seconds", e)
    | Ok _ -> Assert.Fail "an invalid value was taken"
