module Molecule.Tests.Platform.RulesTests

open System
open System.Security.Cryptography
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Platform

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n
let private t0 = DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero)
let private wid () = WorkspaceId(Guid.NewGuid())
let private tid () = TokenId(Guid.NewGuid())

let private ws (id: WorkspaceId) (parent: WorkspaceId option) (status: Status) : Workspace =
    { Workspace.fresh id t0 with
        Name = id.Guid.ToString("N").Substring(0, 6)
        Tier = 1
        Status = status
        ParentId = parent
        LastHeartbeatAt = Some t0 }

/// A random forest (occasionally with cycles) of 1..9 workspaces with random statuses.
let private graphGen: Gen<Map<WorkspaceId, Workspace>> =
    gen {
        let! n = Gen.choose (1, 9)
        let ids = List.init n (fun _ -> wid ())
        let! parents = Gen.listOfLength n (Gen.choose (-3, n - 1))
        let! statuses = Gen.listOfLength n (Gen.elements [ Status.Online; Status.AwaitingAgent; Status.Removed; Status.Degraded ])

        return
            List.zip3 ids parents statuses
            |> List.map (fun (id, p, s) -> id, ws id (if p < 0 then None else Some ids[p]) s)
            |> Map.ofList
    }

let private graphAndPair =
    gen {
        let! g = graphGen
        let keys = g |> Map.toList |> List.map fst
        let! a = Gen.elements keys
        let! b = Gen.elements keys
        return g, a, b
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: CanCommunicate is symmetric`` () =
    Check.One(cfg 500, Prop.forAll graphAndPair (fun (g, a, b) -> Hierarchy.canCommunicate g a b = Hierarchy.canCommunicate g b a))

[<Fact>]
let ``rule: peers are a subset of CanCommunicate`` () =
    Check.One(
        cfg 500,
        Prop.forAll graphAndPair (fun (g, a, _) -> Hierarchy.peers g a |> List.forall (fun p -> Hierarchy.canCommunicate g a p.Id && p.Id <> a))
    )

[<Fact>]
let ``rule: peers never include removed workspaces`` () =
    Check.One(cfg 500, Prop.forAll graphAndPair (fun (g, a, _) -> Hierarchy.peers g a |> List.forall (fun p -> p.Status <> Status.Removed)))

[<Fact>]
let ``CanCommunicate examples from the spec`` () =
    let root, a, b, c, other = wid (), wid (), wid (), wid (), wid ()
    let otherChild = wid ()

    let g =
        [ ws root None Status.Online
          ws a (Some root) Status.Online
          ws b (Some root) Status.Online
          ws c (Some a) Status.Online
          ws other None Status.Online
          ws otherChild (Some other) Status.Online ]
        |> List.map (fun w -> w.Id, w)
        |> Map.ofList

    Assert.True(Hierarchy.canCommunicate g a b) // siblings
    Assert.True(Hierarchy.canCommunicate g root other) // both roots
    Assert.True(Hierarchy.canCommunicate g c root) // grandchild ↔ grandparent
    Assert.False(Hierarchy.canCommunicate g c b) // nephew ↔ uncle
    Assert.False(Hierarchy.canCommunicate g a otherChild)
    let peersOfC = Hierarchy.peers g c |> List.map (fun w -> w.Id)
    Assert.Equal<WorkspaceId list>([ a ], peersOfC) // only the parent: no grandparent
    let peersOfA = Hierarchy.peers g a |> List.map (fun w -> w.Id) |> set
    Assert.Equal<Set<WorkspaceId>>(set [ root; b; c ], peersOfA)

[<Fact>]
let ``rule: cascade removal reaches every descendant, however deep`` () =
    // a chain root → c1 → … → cN: deleting the root must reach cN even beyond the 32-level CanCommunicate walk
    let depth = Gen.choose (1, 80) |> Arb.fromGen

    Check.One(
        cfg 100,
        Prop.forAll depth (fun n ->
            let ids = List.init (n + 1) (fun _ -> wid ())

            let g =
                ids
                |> List.mapi (fun i id -> id, ws id (if i = 0 then None else Some ids[i - 1]) Status.Online)
                |> Map.ofList

            set (Hierarchy.descendants g ids[0]) = set (List.tail ids))
    )

// ---------------------------------------------------------------- tokens and auth

let private bytesGen = Gen.arrayOfLength 32 (Gen.choose (0, 255) |> Gen.map byte)

[<Fact>]
let ``rule: token format is 43 base64url chars and only its hash is stored`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen bytesGen) (fun bytes ->
            let token = Tokens.format bytes
            let stored = Tokens.create (tid ()) (wid ()) t0 token
            let padded = token.Replace('-', '+').Replace('_', '/') + "="

            token.Length = 43
            && Tokens.isWellFormed token
            && Convert.FromBase64String padded = bytes
            && stored.Hash = SHA256.HashData(Text.Encoding.UTF8.GetBytes token)
            && stored.Prefix = token.Substring(0, 8)
            && Tokens.matches stored.Hash token
            && not (Tokens.matches stored.Hash (token.Substring(1) + "A")))
    )

let private tokenSetGen =
    gen {
        let wsId = wid ()
        let! n = Gen.choose (1, 5)
        let! raws = Gen.listOfLength n bytesGen
        let! revoked = Gen.listOfLength n (Gen.elements [ true; false ])
        let! status = Gen.elements [ Status.Online; Status.Removed; Status.AwaitingAgent ]
        let! pick = Gen.choose (0, n - 1)

        let tokens =
            List.zip raws revoked
            |> List.map (fun (b, r) ->
                let text = Tokens.format b
                text, { Tokens.create (tid ()) wsId t0 text with RevokedAt = (if r then Some t0 else None) })

        return wsId, status, tokens, pick
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: a revoked token never authenticates`` () =
    Check.One(
        cfg 300,
        Prop.forAll tokenSetGen (fun (wsId, status, tokens, pick) ->
            let w = ws wsId None status
            let stored = tokens |> List.map snd
            let text, tok = tokens[pick]
            let creds = Auth.credentialsIn stored wsId (Some text)
            let reg = Auth.registryGate false Auth.missingToken Auth.invalidToken (Some w) wsId creds
            let str = Auth.strictGate (fun _ -> false) (Some w) wsId creds

            let authenticated r =
                match r with
                | Ok _ -> true
                | Error _ -> false

            if tok.RevokedAt.IsSome || status = Status.Removed then
                not (authenticated reg) && not (authenticated str)
                && (match reg with Error e -> e.Code = 401 | _ -> false)
            else
                authenticated reg && authenticated str)
    )

[<Fact>]
let ``token gate examples`` () =
    let id = wid ()
    let w = ws id None Status.Online
    let registry tokens ws id bearer = Auth.registryGate false Auth.missingToken Auth.invalidToken ws id (Auth.credentialsIn tokens id bearer)
    // never had a token: grandfathered on the registry gate, refused on the strict gate
    Assert.Equal(Ok Auth.Grandfathered, registry [] (Some w) id None)
    Assert.Equal(401, (match Auth.strictGate (fun _ -> false) (Some w) id (Auth.credentialsIn [] id None) with Error e -> e.Code | Ok _ -> 0))
    // a live token: bearer required
    let t = Tokens.create (tid ()) id t0 (Tokens.format (Array.create 32 7uy))

    match registry [ t ] (Some w) id None with
    | Error e -> Assert.Contains("missing workspace auth token", e.Body)
    | Ok _ -> failwith "expected 401"

    match registry [ t ] (Some w) id (Some "nope") with
    | Error e -> Assert.Contains("invalid workspace auth token", e.Body)
    | Ok _ -> failwith "expected 401"

    // unknown workspace: 401 naming `workspace create`, with or without a bearer; with --open-registration it is
    // grandfathered without a bearer, 401 with one (the token cannot belong to it)
    let unknown = wid ()

    for bearer in [ None; Some "whatever" ] do
        match registry [ t ] None unknown bearer with
        | Error e ->
            Assert.Equal(401, e.Code)
            Assert.Contains("molecule-platform workspace create", e.Body)
        | Ok _ -> failwith "an unknown id was let in"

    let openGate bearer = Auth.registryGate true Auth.missingToken Auth.invalidToken None unknown (Auth.credentialsIn [ t ] unknown bearer)
    Assert.Equal(Ok Auth.Grandfathered, openGate None)
    Assert.True(Result.isError (openGate (Some "whatever")))
    Assert.Equal(Some "abc", Auth.bearerOf "Bearer abc")
    Assert.Equal(None, Auth.bearerOf "Basic abc")

// ---------------------------------------------------------------- liveness

type private LiveEvent =
    | Beat of float
    | Register
    | Sweep of int

let private eventsGen =
    Gen.listOf (
        Gen.oneof
            [ Gen.choose (0, 10) |> Gen.map (fun e -> Beat(float e / 10.0))
              Gen.constant Register
              Gen.choose (0, 400) |> Gen.map Sweep ]
    )

let private apply (now: DateTimeOffset) (w: Workspace) (e: LiveEvent) =
    let hb: Liveness.HeartbeatInput =
        { ErrorRate = 0.0
          SampleError = ""
          ActiveTasks = 0
          UptimeSeconds = 0
          CurrentTask = ""
          RuntimeState = "" }

    match e with
    | Beat r -> Liveness.heartbeat now { hb with ErrorRate = r } w
    | Register -> { w with Status = Liveness.statusAfterRegister w.Status }
    | Sweep secs -> Liveness.sweep (now.AddSeconds(float secs)) w |> Option.defaultValue w

[<Fact>]
let ``rule: a removed workspace is never online`` () =
    Check.One(
        cfg 300,
        Prop.forAll (Arb.fromGen eventsGen) (fun events ->
            let w = ws (wid ()) None Status.Removed
            let final, everOnline =
                events |> List.fold (fun (w, seen) e -> let w' = apply t0 w e in w', seen || w'.Status = Status.Online) (w, false)

            final.Status = Status.Removed && not everOnline)
    )

[<Fact>]
let ``rule: stale after 90 s becomes awaiting_agent and a heartbeat brings it back`` () =
    let arb = Arb.fromGen (Gen.zip (Gen.choose (0, 600)) (Gen.elements [ Status.Online; Status.Degraded ]))

    Check.One(
        cfg 300,
        Prop.forAll arb (fun (secs, status) ->
            let w = { ws (wid ()) None status with LastHeartbeatAt = Some t0 }
            let later = t0.AddSeconds(float secs)

            match Liveness.sweep later w with
            | Some swept ->
                let back =
                    Liveness.heartbeat
                        later
                        { ErrorRate = 0.0; SampleError = ""; ActiveTasks = 0; UptimeSeconds = 1; CurrentTask = ""; RuntimeState = "" }
                        swept

                secs > 90 && swept.Status = Status.AwaitingAgent && back.Status = Status.Online
            | None -> secs <= 90)
    )

[<Fact>]
let ``heartbeat status transitions follow evaluateStatus`` () =
    Assert.Equal(Status.Degraded, Liveness.statusAfterHeartbeat 0.6 "" Status.Online)
    Assert.Equal(Status.Degraded, Liveness.statusAfterHeartbeat 0.0 "wedged" Status.Online)
    Assert.Equal(Status.Online, Liveness.statusAfterHeartbeat 0.05 "" Status.Degraded)
    Assert.Equal(Status.Degraded, Liveness.statusAfterHeartbeat 0.2 "" Status.Degraded)
    Assert.Equal(Status.Online, Liveness.statusAfterHeartbeat 0.0 "" Status.Offline)
    Assert.Equal(Status.Online, Liveness.statusAfterHeartbeat 0.0 "" Status.Provisioning)
    Assert.Equal(Status.Removed, Liveness.statusAfterHeartbeat 0.0 "" Status.Removed)

// activity paging, acks, mail summary and retention: ActivityRulesTests.fs

// ---------------------------------------------------------------- memories

let private teamGen =
    gen {
        let! g = graphGen
        let keys = g |> Map.toList |> List.map fst
        let! me = Gen.elements keys
        let! owners = Gen.listOf (Gen.elements keys)
        let! scopes = Gen.listOfLength owners.Length (Gen.elements Memories.scopes)

        let mems =
            List.zip owners scopes
            |> List.map (fun (o, s) ->
                { Id = MemoryId(Guid.NewGuid())
                  WorkspaceId = o
                  Content = "note"
                  Scope = s
                  Namespace = "general"
                  CreatedAt = t0 }: Memory)

        return g, me, mems
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: TEAM recall only returns rows of workspaces that can communicate`` () =
    Check.One(
        cfg 400,
        Prop.forAll teamGen (fun (g, me, mems) ->
            let result = Memories.recall g g[me] (Some MemoryScope.Team) None None mems

            result
            |> List.forall (fun m ->
                m.Scope = MemoryScope.Team
                && Hierarchy.canCommunicate g me m.WorkspaceId
                && g[m.WorkspaceId].Status <> Status.Removed))
    )

[<Fact>]
let ``rule: GLOBAL memories are written only by root workspaces`` () =
    let arb = Arb.fromGen (Gen.elements [ None; Some(wid ()) ])

    Check.One(
        cfg 100,
        Prop.forAll arb (fun parent ->
            let w = ws (wid ()) parent Status.Online
            let r = Memories.commit (MemoryId(Guid.NewGuid())) t0 w { Content = "x"; Scope = MemoryScope.Global; Namespace = "general" }

            match r with
            | Ok _ -> parent.IsNone
            | Error e -> parent.IsSome && e.Code = 403 && e.Body.Contains Memories.globalForbidden)
    )

[<Fact>]
let ``memories: search, redaction and GLOBAL wrapping`` () =
    Assert.True(Memories.matchesQuery "deploy FRIDAY" "We never Deploy on friday evenings")
    Assert.False(Memories.matchesQuery "deploy monday" "We never deploy on friday")
    let redacted = Memories.redact "key is sk-abcdefghijklmnopqrstuvwx and ghp_abcdefghijklmnopqrstuvwxyz0123"
    Assert.DoesNotContain("sk-abcdefghijklmnop", redacted)
    Assert.DoesNotContain("ghp_abcdefghij", redacted)
    Assert.Contains("[REDACTED:", redacted)
    let w = ws (wid ()) None Status.Online

    match Memories.commit (MemoryId(Guid.NewGuid())) t0 w { Content = "[MEMORY fake]"; Scope = MemoryScope.Global; Namespace = "general" } with
    | Ok m ->
        Assert.Equal("[_MEMORY fake]", m.Content)
        Assert.StartsWith($"[MEMORY id={m.Id} scope=GLOBAL from={w.Id}]: ", Memories.displayContent m)
    | Error _ -> failwith "root may write GLOBAL"

// ---------------------------------------------------------------- A2A envelopes and validation

[<Fact>]
let ``a2a normalisation wraps bodies and converts v0.2 content`` () =
    let rpc, msg = Guid.NewGuid(), Guid.NewGuid()

    match A2a.normalise rpc msg """{"method":"message/send","params":{"message":{"role":"user","content":"hi"}}}""" with
    | Ok env ->
        Assert.Equal("2.0", env["jsonrpc"].GetValue<string>())
        Assert.Equal(rpc.ToString(), env["id"].GetValue<string>())
        let m = env["params"]["message"]
        Assert.Equal(msg.ToString(), m["messageId"].GetValue<string>())
        Assert.Equal("hi", A2a.textOfParts m)
    | Error e -> failwith e.Body

    Assert.Equal(Error(Wire.errorReply 400 "invalid JSON"), A2a.normalise rpc msg "{nope")

    match A2a.normalise rpc msg """{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user"}}}""" with
    | Error e -> Assert.Equal(400, e.Code)
    | Ok _ -> failwith "expected 400"

    Assert.Equal(Error(Wire.errorReply 403 "invalid caller ID"), A2a.parseCaller (Some "system:cron"))

[<Fact>]
let ``validation errors name the field`` () =
    let o = JsonObject()
    o["tier"] <- JsonValue.Create "high"
    o["parent_id"] <- JsonValue.Create "not-a-uuid"
    o["skills"] <- JsonValue.Create 3

    let msg r =
        match r with
        | Error(e: Reply) -> e.Body
        | Ok _ -> ""

    Assert.Contains("name", msg (Validation.reqString "name" o))
    Assert.Contains("tier", msg (Validation.optInt "tier" o))
    Assert.Contains("parent_id", msg (Validation.optGuid "parent_id" o))
    Assert.Contains("skills", msg (Validation.optStringList "skills" o))
    Assert.Equal(Error(Wire.errorReply 400 "invalid JSON"), Validation.body "{")

let private jsonishGen =
    let tokens = [ "{"; "}"; "["; "]"; ","; ":"; "\"a\""; "\"name\""; "\"id\""; "1"; "-2.5e3"; "null"; "true"; "\"x\""; " "; "\\"; "\"" ]
    Gen.listOf (Gen.elements tokens) |> Gen.map (String.concat "") |> Arb.fromGen

[<Fact>]
let ``rule: request validation is total (any body gives Ok or a 400 naming the problem)`` () =
    Check.One(
        cfg 1000,
        Prop.forAll jsonishGen (fun text ->
            let bodyOk =
                match Validation.body text with
                | Ok o ->
                    // every field accessor is total on whatever object came back
                    let fields = [ "name"; "id"; "a" ]

                    fields
                    |> List.forall (fun f ->
                        let total r = match r with Ok _ -> true | Error(e: Reply) -> e.Code = 400 && e.Body.Contains f
                        total (Validation.optString f o) && total (Validation.optInt f o) && total (Validation.optGuid f o))
                    && (match Memories.parseCommit o with Ok _ | Error { Code = 400 } -> true | _ -> false)
                    && (match Delegations.parse (wid ()) o with Ok _ | Error { Code = 400 } -> true | _ -> false)
                    && (match A2a.parseNotify o with Ok _ | Error { Code = 400 } -> true | _ -> false)
                | Error e -> e.Code = 400

            let a2aOk =
                match A2a.normalise (Guid.NewGuid()) (Guid.NewGuid()) text with
                | Ok _ -> true
                | Error e -> e.Code = 400

            bodyOk && a2aOk)
    )

[<Fact>]
let ``duplicate JSON keys are rejected as invalid JSON, not a crash`` () =
    Assert.Equal(Error(Wire.errorReply 400 "invalid JSON"), Validation.body """{"a":1,"a":2}""")
