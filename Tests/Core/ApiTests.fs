module Molecule.Tests.Core.ApiTests

open Molecule.Protocol

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core

let ownId = "11111111-2222-3333-4444-555555555555"
let peerId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

let cfg: Config =
    { WorkspaceId = (WorkspaceId.tryParse ownId).Value
      PlatformUrl = "https://tenant.example.com"
      Origin = "https://tenant.example.com"
      Token = "tok_SECRET_0123456789"
      TokenSource = FromEnv
      AgentCard =
        { Name = "Research Assistant"
          Description = None
          Skills = [ "research"; "citations" ] }
      StateDir = "/tmp/state"
      Verbose = false
      HeartbeatEnabled = true
      InboxEnabled = true
      StreamEnabled = true
      PollTimeoutSecs = 30
      HeartbeatIntervalSecs = 20.0
      PollIntervalSecs = 5.0
      Tier = 1
      ReplaySecs = 600
      RenotifySecs = 300.0
      MaxLineBytes = 4194304
      DelegationSyncViaInbox = false
      DelegationTimeoutSecs = 300.0
      LoopGuard = Config.defaultLoopBounds
      PermissionRelay = true
      PermissionTimeoutSecs = 600
      Identity =
        { Model = ""
          ModelProvider = ""
          MoleculeModel = ""
          AnthropicBaseUrl = ""
          Tier = ""
          Runtime = "" } }

let header (name: string) (r: Request) =
    r.Headers |> List.filter (fun (k, _) -> k = name) |> List.map snd

let bodyJson (r: Request) =
    match r.Body with
    | JsonBody s -> Json.tryParse s
    | _ -> None

let bodyText (r: Request) =
    match r.Body with
    | JsonBody s -> s
    | _ -> ""

let str path (r: Request) =
    bodyJson r |> Option.bind (Json.path path) |> Option.bind Json.asScalarText

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``register posts a poll-mode agent card without description when none is set`` () =
    let r = Api.register cfg
    Assert.Equal(Post, r.Method)
    Assert.Equal("https://tenant.example.com/registry/register", r.Url)
    Assert.Equal(10.0, r.TimeoutSecs)
    Assert.Equal(Some ownId, str [ "id" ] r)
    Assert.Equal(Some "", str [ "url" ] r)
    Assert.Equal(Some "poll", str [ "delivery_mode" ] r)
    Assert.Equal(Some "Research Assistant", str [ "agent_card"; "name" ] r)
    let skills = bodyJson r |> Option.bind (Json.path [ "agent_card"; "skills" ]) |> Option.bind Json.asArray
    Assert.Equal<string list>([ "research"; "citations" ], skills.Value |> List.choose (Json.stringProp "name"))
    Assert.Equal(None, bodyJson r |> Option.bind (Json.path [ "agent_card"; "description" ]))
    Assert.Empty(header "X-Workspace-ID" r)

[<Fact>]
let ``register includes the description when one is set`` () =
    let r = Api.register { cfg with AgentCard = { cfg.AgentCard with Description = Some "Finds papers" } }
    Assert.Equal(Some "Finds papers", str [ "agent_card"; "description" ] r)

[<Fact>]
let ``heartbeat body matches the reference shape`` () =
    let r = Api.heartbeat cfg 42
    Assert.Equal("https://tenant.example.com/registry/heartbeat", r.Url)
    Assert.Equal(Post, r.Method)
    Assert.Equal(Some ownId, str [ "workspace_id" ] r)
    Assert.Equal(Some "42", str [ "uptime_seconds" ] r)
    Assert.Equal(Some "0", str [ "active_tasks" ] r)
    Assert.Equal(Some "", str [ "sample_error" ] r)
    Assert.Equal(Some 0.0, bodyJson r |> Option.bind (Json.prop "error_rate") |> Option.bind Json.asFloat)

[<Fact>]
let ``activity asks for a2a_receive rows since a cursor or a window, with the sender's peer info`` () =
    let a = Api.activity cfg (SinceId("row 1/2", 100))
    Assert.Equal(Get, a.Method)
    Assert.Equal("https://tenant.example.com/workspaces/" + ownId + "/activity?type=a2a_receive&since_id=row%201%2F2&limit=100&include=peer_info", a.Url)
    let b = Api.activity cfg (Window(600, None, 50))
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/activity?type=a2a_receive&since_secs=600&limit=50&include=peer_info", b.Url)
    Assert.Equal(10.0, b.TimeoutSecs)
    let c = Api.activity cfg (Window(2592000, Some "2026-05-01T12:00:00.0000010Z", 500))
    Assert.Equal(
        "https://tenant.example.com/workspaces/" + ownId + "/activity?type=a2a_receive&since_secs=2592000&limit=500&before_ts=2026-05-01T12%3A00%3A00.0000010Z&include=peer_info",
        c.Url
    )

[<Fact>]
let ``ack posts the handled seq to the workspace's activity/ack`` () =
    let r = Api.ack cfg 42L
    Assert.Equal(Post, r.Method)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/activity/ack", r.Url)
    Assert.Equal(JsonBody "{\"acked_seq\":42}", r.Body)
    Assert.Contains(("Authorization", "Bearer tok_SECRET_0123456789"), r.Headers)

[<Fact>]
let ``workspace peers and discover use the reference paths`` () =
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}", (Api.workspace cfg).Url)
    Assert.Equal($"https://tenant.example.com/registry/{ownId}/peers", (Api.peers cfg).Url)
    Assert.Equal($"https://tenant.example.com/registry/discover/{peerId}", (Api.discover cfg peerId).Url)
    Assert.Equal("https://tenant.example.com/registry/discover/a%2Fb%3Fc", (Api.discover cfg "a/b?c").Url)
    Assert.Equal<string list>([ ownId ], header "X-Workspace-ID" (Api.peers cfg))

[<Fact>]
let ``a2a send is a JSON-RPC message-send with a 300 s timeout and connect-only retry`` () =
    let r = Api.a2aSend cfg peerId "rpc-1" "msg-1" "Summarise the paper"
    Assert.Equal($"https://tenant.example.com/workspaces/{peerId}/a2a", r.Url)
    Assert.Equal(300.0, r.TimeoutSecs)
    Assert.Equal(TransientConnect, r.Retry)
    Assert.Equal(Some "2.0", str [ "jsonrpc" ] r)
    Assert.Equal(Some "rpc-1", str [ "id" ] r)
    Assert.Equal(Some "message/send", str [ "method" ] r)
    Assert.Equal(Some "user", str [ "params"; "message"; "role" ] r)
    Assert.Equal(Some "msg-1", str [ "params"; "message"; "messageId" ] r)
    let parts = bodyJson r |> Option.bind (Json.path [ "params"; "message"; "parts" ]) |> Option.bind Json.asArray
    Assert.Equal(1, parts.Value.Length)
    Assert.Equal(Some "text", Json.stringProp "kind" parts.Value.Head)
    Assert.Equal(Some "Summarise the paper", Json.stringProp "text" parts.Value.Head)
    Assert.Equal<string list>([ ownId ], header "X-Workspace-ID" r)

[<Fact>]
let ``report activity truncates summary and error detail`` () =
    let r =
        Api.reportActivity cfg "a2a_receive" peerId (String('s', 300)) "error" None (Some(Json.obj [ "result", Json.str "x" ])) (Some(String('e', 5000)))
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/activity", r.Url)
    Assert.Equal(5.0, r.TimeoutSecs)
    Assert.Equal(256, (str [ "summary" ] r).Value.Length)
    Assert.Equal(4096, (str [ "error_detail" ] r).Value.Length)
    Assert.Equal(Some ownId, str [ "source_id" ] r)
    Assert.Equal(Some peerId, str [ "target_id" ] r)
    Assert.Equal(Some "message/send", str [ "method" ] r)
    Assert.Equal(Some "x", str [ "response_body"; "result" ] r)
    Assert.Equal(None, bodyJson r |> Option.bind (Json.prop "request_body"))

[<Fact>]
let ``delegate and delegations target the own workspace`` () =
    let d = Api.``delegate`` cfg peerId "do it" "0123456789abcdef0123456789abcdef"
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/delegate", d.Url)
    Assert.Equal(Some peerId, str [ "target_id" ] d)
    Assert.Equal(Some "do it", str [ "task" ] d)
    Assert.Equal(Some "0123456789abcdef0123456789abcdef", str [ "idempotency_key" ] d)
    let l = Api.delegations cfg
    Assert.Equal(Get, l.Method)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/delegations", l.Url)

[<Fact>]
let ``notify sends attachments only when there are some`` () =
    let plain = Api.notify cfg "hello" []
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/notify", plain.Url)
    Assert.Equal(60.0, plain.TimeoutSecs)
    Assert.Equal(None, bodyJson plain |> Option.bind (Json.prop "attachments"))
    let entry = Json.obj [ "uri", Json.str "workspace:/a.png"; "name", Json.str "a.png" ]
    let withFile = Api.notify cfg "see file" [ entry ]
    Assert.Equal(Some "workspace:/a.png", bodyJson withFile |> Option.bind (Json.prop "attachments") |> Option.bind Json.asArray |> Option.bind List.tryHead |> Option.bind (Json.stringProp "uri"))

[<Fact>]
let ``uploads are multipart with the given files`` () =
    let files = [ { Path = "/tmp/a.png"; FileName = "a.png"; ContentType = "image/png" } ]
    let r = Api.uploads cfg files
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/chat/uploads", r.Url)
    Assert.Equal(Multipart files, r.Body)
    Assert.Equal(60.0, r.TimeoutSecs)

[<Fact>]
let ``memories commit and recall`` () =
    let c = Api.commitMemory cfg "fact" Team
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/memories", c.Url)
    Assert.Equal(Some "TEAM", str [ "scope" ] c)
    Assert.Equal(Some "fact", str [ "content" ] c)
    Assert.Equal(Some ownId, str [ "workspace_id" ] c)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/memories?workspace_id={ownId}", (Api.recallMemory cfg "" None).Url)
    Assert.Equal(
        "https://tenant.example.com/workspaces/" + ownId + "/memories?workspace_id=" + ownId + "&q=deploy%20keys&scope=GLOBAL",
        (Api.recallMemory cfg "deploy keys" (Some Global)).Url
    )

[<Fact>]
let ``scope names and content types`` () =
    Assert.Equal<string list>([ "LOCAL"; "TEAM"; "GLOBAL" ], [ Local; Team; Global ] |> List.map Api.scopeName)
    Assert.Equal("image/png", Api.contentTypeOf "shot.PNG")
    Assert.Equal("application/pdf", Api.contentTypeOf "report.pdf")
    Assert.Equal("application/octet-stream", Api.contentTypeOf "noext")
    Assert.Equal("application/octet-stream", Api.contentTypeOf "dir.d/file")
    Assert.Equal("application/octet-stream", Api.contentTypeOf "weird.")

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

let private chars (alphabet: string) (lo: int) (hi: int) =
    gen {
        let! n = Gen.choose (lo, hi)
        let! cs = Gen.listOfLength n (Gen.elements (alphabet.ToCharArray()))
        return String(List.toArray cs)
    }

/// Text with spaces, URL-special characters and non-ASCII (whole code points only).
let private textGen =
    Gen.listOf (Gen.elements [ "a"; "b"; "k"; "z"; " "; "/"; "?"; "&"; "="; "#"; "%"; "+"; "é"; "😀"; "ü" ])
    |> Gen.map (fun parts -> String.Join("", parts))

let private configGen =
    gen {
        let! host = chars "abcdefghijklmnopqrstuvwxyz" 3 12
        let! scheme = Gen.elements [ "http"; "https" ]
        let! port = Gen.elements [ ""; ":8080"; ":443" ]
        let! prefix = Gen.elements [ ""; "/api"; "/x/y" ]
        let! token = chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" 20 43
        let! id = ArbMap.defaults |> ArbMap.generate<Guid>
        let origin = $"{scheme}://{host}{port}"

        return
            { cfg with
                WorkspaceId = (WorkspaceId.tryParse (id.ToString())).Value
                PlatformUrl = origin + prefix
                Origin = origin
                Token = "tok_" + token }
    }

/// Every request the Api can build, named.
let private allRequests =
    gen {
        let! c = configGen
        let! a = textGen
        let! b = textGen
        let! n = Gen.choose (0, 100000)

        return
            c,
            [ "register", Api.register c
              "heartbeat", Api.heartbeat c n
              "activity", Api.activity c (SinceId(a, 100))
              "activity", Api.activity c (Window(n, Some a, 100))
              "ack", Api.ack c (int64 n)
              "workspace", Api.workspace c
              "peers", Api.peers c
              "discover", Api.discover c a
              "a2a", Api.a2aSend c a b b a
              "report", Api.reportActivity c "a2a_send" a b "ok" None None (Some a)
              "delegate", Api.``delegate`` c a b a
              "delegations", Api.delegations c
              "notify", Api.notify c a []
              "uploads", Api.uploads c [ { Path = a; FileName = b; ContentType = "text/plain" } ]
              "commit", Api.commitMemory c a Global
              "recall", Api.recallMemory c a (Some Team) ]
    }
    |> Arb.fromGen

[<Fact>]
let ``rule: origin header is the normalised origin on every request`` () =
    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll allRequests (fun (c, reqs) ->
            reqs
            |> List.forall (fun (_, r) -> header "Origin" r = [ c.Origin ] && r.Url.StartsWith(c.PlatformUrl + "/", StringComparison.Ordinal)))
    )

[<Fact>]
let ``rule: X-Workspace-ID only on discover, peers and a2a`` () =
    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll allRequests (fun (c, reqs) ->
            reqs
            |> List.forall (fun (name, r) ->
                let expected = if List.contains name [ "discover"; "peers"; "a2a" ] then [ c.WorkspaceId.Value ] else []
                header "X-Workspace-ID" r = expected))
    )

[<Fact>]
let ``rule: every request carries the bearer token in Authorization and nowhere else (not in URL)`` () =
    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll allRequests (fun (c, reqs) ->
            reqs
            |> List.forall (fun (_, r) ->
                header "Authorization" r = [ $"Bearer {c.Token}" ]
                && not (r.Url.Contains c.Token)
                && not ((bodyText r).Contains c.Token)
                && r.Headers |> List.forall (fun (k, v) -> k = "Authorization" || not (v.Contains c.Token))))
    )

[<Fact>]
let ``rule: ids and query values are escaped into the URL`` () =
    Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll (Arb.fromGen (Gen.zip configGen textGen)) (fun (c, target) ->
            let r = Api.discover c target
            let tail = r.Url.Substring(c.PlatformUrl.Length)
            tail = "/registry/discover/" + Uri.EscapeDataString target
            && Uri.UnescapeDataString(tail.Substring("/registry/discover/".Length)) = target)
    )

[<Fact>]
let ``team requests: update-card with the workspace's own token, broadcast, chat history, pending uploads`` () =
    let u = Api.updateCard cfg "{\"name\":\"Docs\"}"
    Assert.Equal(Post, u.Method)
    Assert.Equal("https://tenant.example.com/registry/update-card", u.Url)
    Assert.Equal<string list>([ $"Bearer {cfg.Token}" ], header "Authorization" u)
    Assert.Equal($"{{\"workspace_id\":\"{ownId}\",\"agent_card\":{{\"name\":\"Docs\"}}}}", (match u.Body with JsonBody b -> b | _ -> ""))
    let b = Api.broadcast cfg "hello all"
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/broadcast", b.Url)
    Assert.Equal(30.0, b.TimeoutSecs)
    let h = Api.chatHistory cfg peerId 20 (Some "2026-05-01T00:00:00Z")
    Assert.Equal(Get, h.Method)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/activity?peer_id={peerId}&limit=20&before_ts=" + "2026-05-01T00%3A00%3A00Z", h.Url)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/activity?peer_id={peerId}&limit=5", (Api.chatHistory cfg peerId 5 None).Url)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/pending-uploads/abc/content", (Api.uploadContent cfg "abc").Url)
    let ack = Api.ackUpload cfg "abc"
    Assert.Equal(Post, ack.Method)
    Assert.Equal($"https://tenant.example.com/workspaces/{ownId}/pending-uploads/abc/ack", ack.Url)
