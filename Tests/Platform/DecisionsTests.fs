/// Properties of the registry's and the admin's decisions (Rules/Registry.fs, Rules/Workspaces.fs): what a register,
/// a heartbeat, a workspace's creation and its removal change, announce and answer.
module Molecule.Tests.Platform.DecisionsTests

open System
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform
module Json = Molecule.Protocol.Json

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 4, 1, 10, 0, 0, TimeSpan.Zero)
let private wid () = WorkspaceId(Guid.NewGuid())

let private statusGen = Gen.elements Status.all
let private modeGen = Gen.elements [ None; Some DeliveryMode.Poll; Some DeliveryMode.Push ]
let private urlGen = Gen.elements [ None; Some "http://agent.local:9000/"; Some "https://a.example/rpc"; Some "ftp://x"; Some "/relative"; Some "not a url" ]

let private stored (status: Status) (mode: DeliveryMode) (secret: string option) : Workspace =
    { Workspace.fresh (wid ()) t0 with
        Name = "stored"
        Status = status
        DeliveryMode = mode
        InboundSecret = secret
        AgentCard = Some """{"name":"stored","skills":[{"name":"kept"}]}""" }

/// A register of an existing workspace (or an unknown id: None) with random mode, URL, card and token state.
let private registerGen =
    gen {
        let! existing =
            Gen.oneof
                [ Gen.constant None
                  gen {
                      let! st = statusGen
                      let! mode = Gen.elements [ DeliveryMode.Poll; DeliveryMode.Push ]
                      let! secret = Gen.elements [ None; Some "issued-before" ]
                      return Some(stored st mode secret)
                  } ]

        let! mode = modeGen
        let! url = urlGen
        let! live = Gen.elements [ true; false ]
        let! skills = Gen.elements [ []; [ "new" ] ]
        let id = existing |> Option.map (fun w -> w.Id) |> Option.defaultWith wid

        let reg: Registry.Registration =
            { Id = id
              Card = Json.obj [ "name", Json.str "agent"; "skills", Json.arr [ for s in skills -> Json.obj [ "name", Json.str s ] :> JsonNode ] ]
              Mode = mode
              Url = url }

        return existing, live, reg
    }

let private isHttpUrl (u: string) =
    match Uri.TryCreate(u, UriKind.Absolute) with
    | true, uri -> uri.Scheme = "http" || uri.Scheme = "https"
    | _ -> false

[<Fact>]
let ``rule: register never changes a removed workspace and never mints it a token`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen registerGen) (fun (existing, live, reg) ->
            match existing, Registry.register t0 "fresh" existing live reg with
            | Some w, Ok r when w.Status = Status.Removed -> r.Workspace = w && not r.Save && not r.MintToken
            | _ -> true)
    )

[<Fact>]
let ``rule: register mints a token exactly when a workspace that is not removed has no live token`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen registerGen) (fun (existing, live, reg) ->
            match Registry.register t0 "fresh" existing live reg with
            | Ok r -> r.MintToken = (not live && r.Workspace.Status <> Status.Removed)
            | Error _ -> true)
    )

[<Fact>]
let ``rule: a push registration needs an absolute http(s) URL; a poll registration keeps none`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen registerGen) (fun (existing, live, reg) ->
            let mode = reg.Mode |> Option.orElse (existing |> Option.map (fun w -> w.DeliveryMode)) |> Option.defaultValue DeliveryMode.Poll

            match Registry.register t0 "fresh" existing live reg with
            | Error e ->
                e.Code = 400
                && ((reg.Url |> Option.exists (isHttpUrl >> not)) || (mode = DeliveryMode.Push && reg.Url.IsNone))
            | Ok r when r.Save ->
                r.Workspace.DeliveryMode = mode
                && (match mode with
                    | DeliveryMode.Poll -> r.Workspace.Url.IsNone
                    | DeliveryMode.Push -> r.Workspace.Url = reg.Url && reg.Url |> Option.exists isHttpUrl)
            | Ok _ -> true)
    )

[<Fact>]
let ``rule: register brings a workspace online with its inbound secret kept once issued, the card's stored skills kept when the agent gives none`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen registerGen) (fun (existing, live, reg) ->
            match Registry.register t0 "fresh" existing live reg with
            | Ok r when r.Save ->
                let skills = Json.tryParseObject r.Workspace.AgentCard.Value |> Option.bind (Json.prop "skills") |> Option.bind Json.asArray
                let expectedSecret = existing |> Option.bind (fun w -> w.InboundSecret) |> Option.defaultValue "fresh"
                let given = Json.prop "skills" reg.Card |> Option.bind Json.asArray |> Option.exists (not << List.isEmpty)

                r.Workspace.Status = Status.Online
                && r.Workspace.LastHeartbeatAt = Some t0
                && r.Workspace.InboundSecret = Some expectedSecret
                && (given || existing.IsNone || skills |> Option.exists (fun s -> s.Length = 1))
                && r.Announcement.Kind = "WORKSPACE_ONLINE"
                && (Registry.registeredReply r.Workspace None).Body.Contains expectedSecret
            | _ -> true)
    )

let private beatGen =
    gen {
        let! st = statusGen
        let! rate = Gen.elements [ 0.0; 0.05; 0.3; 0.7 ]
        let! state = Gen.elements [ ""; "wedged" ]
        let! task' = Gen.elements [ ""; "reviewing"; "writing" ]
        let! current = Gen.elements [ ""; "reviewing" ]

        let hb: Liveness.HeartbeatInput =
            { ErrorRate = rate; SampleError = ""; ActiveTasks = 1; UptimeSeconds = 5; CurrentTask = task'; RuntimeState = state }

        return { stored st DeliveryMode.Poll None with CurrentTask = current }, hb
    }

[<Fact>]
let ``rule: a heartbeat announces WORKSPACE_HEARTBEAT, and a status or task change when there is one; a removed workspace is left alone`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen beatGen) (fun (w, hb) ->
            match Registry.heartbeat t0 hb w with
            | None -> w.Status = Status.Removed
            | Some(u, announced) ->
                let kinds = announced |> List.map (fun a -> a.Kind)

                let expected =
                    [ if u.Status <> w.Status then "WORKSPACE_" + (Status.text u.Status).ToUpperInvariant()
                      if u.CurrentTask <> w.CurrentTask then "TASK_UPDATED"
                      "WORKSPACE_HEARTBEAT" ]

                w.Status <> Status.Removed
                && u = Liveness.heartbeat t0 hb w
                && kinds = expected
                && announced |> List.forall (fun a -> a.Anchor = Some w.Id)
                && (Registry.heartbeatReply w).Code = 200)
    )

[<Fact>]
let ``register and heartbeat bodies: the spec's 400 texts`` () =
    let parse text = Validation.body text |> Result.bind Registry.parseRegistration
    let error r = match r with Error(e: Reply) -> Wire.errorText e | Ok _ -> "accepted"
    Assert.Equal("invalid request body: id is required", error (parse "{}"))
    Assert.Equal("invalid request body: id must be a valid UUID", error (parse """{"id":"x"}"""))
    Assert.Equal("invalid request body: agent_card is required", error (parse $$"""{"id":"{{Guid.NewGuid()}}"}"""))
    Assert.Equal("delivery_mode must be 'push' or 'poll'", error (parse $$"""{"id":"{{Guid.NewGuid()}}","agent_card":{},"delivery_mode":"x"}"""))
    let beat text = Validation.body text |> Result.bind Registry.parseHeartbeat
    Assert.Equal("workspace_id is required", error (beat "{}"))
    Assert.Equal("workspace_id must be a valid UUID", error (beat """{"workspace_id":"x"}"""))

    match beat $$"""{"workspace_id":"{{Guid.NewGuid()}}","active_tasks":-3}""" with
    | Ok(_, hb) -> Assert.Equal(0, hb.ActiveTasks)
    | Error e -> failwith e.Body

// ---------------------------------------------------------------- workspaces

let private createGen =
    gen {
        let! parent = Gen.elements [ None; Some Status.Online; Some Status.Removed; Some Status.AwaitingAgent ]
        let! exists = Gen.elements [ true; false ]
        let! tier = Gen.elements [ None; Some 0; Some 3 ]
        let! mode = Gen.elements [ DeliveryMode.Poll; DeliveryMode.Push ]
        let! role = Gen.elements [ None; Some ""; Some "reviewer" ]
        let p = parent |> Option.map (fun st -> stored st DeliveryMode.Poll None)

        let req: Workspaces.NewWorkspace =
            { Name = "new"
              Role = role
              Parent = p |> Option.map (fun w -> w.Id)
              Skills = [ "a" ]
              Tier = tier
              Description = None
              Mode = mode
              PlatformUrl = None }

        return req, (if exists then p else None)
    }

[<Fact>]
let ``rule: a workspace is created only under a parent that exists and is not removed`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen createGen) (fun (req, parent) ->
            match Workspaces.create (wid ()) t0 "secret" parent req with
            | Ok w -> w.ParentId = req.Parent && (req.Parent.IsNone || parent |> Option.exists (fun p -> p.Status <> Status.Removed))
            | Error e ->
                e.Code = 400
                && req.Parent.IsSome
                && (match parent with
                    | None -> e.Body.Contains Workspaces.parentMissing
                    | Some p -> p.Status = Status.Removed && e.Body.Contains Workspaces.parentRemoved))
    )

[<Fact>]
let ``rule: a new workspace awaits its agent in the mode asked for, tier 0 as a root and 1 as a child unless given, with its secret issued`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen createGen) (fun (req, parent) ->
            match Workspaces.create (wid ()) t0 "secret" parent req with
            | Ok w ->
                w.Status = Status.AwaitingAgent
                && w.DeliveryMode = req.Mode
                && w.Tier = defaultArg req.Tier (if req.Parent.IsNone then 0 else 1)
                && w.InboundSecret = Some "secret"
                && w.Role = (req.Role |> Option.filter (fun r -> r <> ""))
                && (Workspaces.created w).Kind = "WORKSPACE_CREATED"
            | Error _ -> true)
    )

/// A random forest of workspaces with random statuses (occasionally a cycle).
let private forestGen =
    gen {
        let! n = Gen.choose (1, 9)
        let ids = List.init n (fun _ -> wid ())
        let! parents = Gen.listOfLength n (Gen.choose (-3, n - 1))
        let! statuses = Gen.listOfLength n (Gen.elements [ Status.Online; Status.Removed; Status.AwaitingAgent ])
        let! pick = Gen.choose (0, n - 1)
        let! confirmed = Gen.elements [ true; false ]

        let all =
            List.zip3 ids parents statuses
            |> List.map (fun (id, p, st) -> id, { stored st DeliveryMode.Poll None with Id = id; ParentId = (if p < 0 then None else Some ids[p]) })
            |> Map.ofList

        return all, ids[pick], confirmed
    }

[<Fact>]
let ``rule: a removal with live children needs confirmation; confirmed, it removes the whole subtree and revokes every token in it`` () =
    Check.One(
        cfg 400,
        Prop.forAll (Arb.fromGen forestGen) (fun (all, id, confirmed) ->
            let subtree = id :: Hierarchy.descendants all id
            let liveChildren = Hierarchy.liveChildren all id

            match Workspaces.remove t0 all id confirmed with
            | None -> false
            | Some(Error e) -> e.Code = 409 && not confirmed && not liveChildren.IsEmpty
            | Some(Ok r) ->
                (confirmed || liveChildren.IsEmpty)
                && set r.Revoke = set subtree
                && (r.Removed |> List.map (fun w -> w.Id) |> set) = (subtree |> List.filter (fun x -> all[x].Status <> Status.Removed) |> set)
                && r.Removed |> List.forall (fun w -> w.Status = Status.Removed && w.UpdatedAt = t0)
                && r.Announcements.Length = r.Removed.Length
                && r.Announcements |> List.forall (fun a -> a.Kind = "WORKSPACE_REMOVED"))
    )
    Assert.Equal(None, Workspaces.remove t0 Map.empty (wid ()) true)
