/// Several workspaces in one process: which workspace a tool acts for, and the shared inbox.
module Molecule.Tests.Core.RoutingTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol
open Molecule.Tests.Core.Sim

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private ids =
    [ "1111aaaa-0000-4000-8000-000000000001"; "2222bbbb-0000-4000-8000-000000000002"; "3333cccc-0000-4000-8000-000000000003" ]
    |> List.map (fun s -> (WorkspaceId.tryParse s).Value)

let private modelOf (n: int) =
    Agent.initMany [ for id in List.truncate n ids -> { config with WorkspaceId = id; Token = "tok-" + id.Value }, boot [] ]

let private peer = "9eea0000-0000-4000-8000-0000000000a1"

let private toolGen =
    Gen.elements
        [ "delegate_task", [ "workspace_id", peer; "task", "t" ]
          "delegate_task_async", [ "workspace_id", peer; "task", "t" ]
          "check_task_status", [ "workspace_id", peer ]
          "list_peers", []
          "get_workspace_info", []
          "send_message_to_user", [ "message", "hi" ]
          "commit_memory", [ "content", "fact" ]
          "recall_memory", []
          "create_request", [ "kind", "approval"; "title", "ok?" ]
          "list_requests", [] ]

type private Routing =
    | Omitted
    | Named of index: int * upper: bool
    | Stranger
    | Garbage

[<Fact>]
let ``rule: any set of workspaces and tool arguments selects exactly one workspace or refuses (list_peers: all)`` () =
    let scenario =
        gen {
            let! n = Gen.choose (1, 3)
            let! tool, args = toolGen
            let! routing =
                Gen.oneof
                    [ Gen.constant Omitted
                      Gen.zip (Gen.choose (0, n - 1)) (Gen.elements [ true; false ]) |> Gen.map Named
                      Gen.constant Stranger
                      Gen.constant Garbage ]
            let! listedFrom = Gen.subListOf (List.truncate n ids)
            return n, tool, args, routing, listedFrom
        }
    Check.One(
        quick 400,
        Prop.forAll (Arb.fromGen scenario) (fun (n, tool, args, routing, listedFrom) ->
            let model = modelOf n
            let model = { model with PeerSources = if listedFrom.IsEmpty then Map.empty else Map.ofList [ (PeerId.tryParse peer).Value, Set.ofList listedFrom ] }
            let arg = Tools.routingArg tool |> Option.get
            let extra =
                match routing with
                | Omitted -> []
                | Named(i, upper) -> [ arg, Json.str (if upper then ids[i].Value.ToUpperInvariant() else ids[i].Value) ]
                | Stranger -> [ arg, Json.str "4444dddd-0000-4000-8000-000000000004" ]
                | Garbage -> [ arg, Json.str "not a workspace" ]
            let argsObj = Json.obj ((args |> List.map (fun (k, v) -> k, Json.str v)) @ extra)
            let call = (Tools.parse tool (Some argsObj)) |> function Ok c -> c | Result.Error e -> failwith e
            match Agent.route model call, routing with
            | Ok [ ws ], Named(i, _) -> Workspace.id ws = ids[i]
            | Result.Error text, (Stranger | Garbage) -> text.StartsWith "Error:" && text.Contains "not a workspace of this server"
            | Ok all, Omitted when tool = "list_peers" && n > 1 -> all.Length = n
            | Ok [ ws ], Omitted when n = 1 -> Workspace.id ws = ids[0]
            | Result.Error text, Omitted when tool = "send_message_to_user" -> n > 1 && text.Contains "arrival_workspace_id"
            | Result.Error text, Omitted -> n > 1 && listedFrom.Length > 1 && text.Contains "source_workspace_id"
            | Ok [ ws ], Omitted ->
                match tool, listedFrom with
                | ("delegate_task" | "delegate_task_async"), [ only ] -> Workspace.id ws = only
                | ("delegate_task" | "delegate_task_async"), (_ :: _ :: _) -> false
                | _ -> Workspace.id ws = ids[0]
            | _ -> false)
    )

[<Fact>]
let ``the shared inbox: messages of every workspace, oldest first, each naming its workspace; a pop finds its ledger`` () =
    let model = modelOf 2
    let rowFor (ws: WorkspaceId) (ms: int64) (id: string) =
        let text = (rowJson { Id = id; Seq = ms; At = ms; Kind = Peer; Text = id }).Replace(selfId.Value, ws.Value)
        Reply(200, "[" + text + "]")
    let poll ws response (m: Agent.Model) =
        let m, _ = Agent.update (Agent.Responded(Background(ws, Poll), Reply(200, "{\"last_acked_seq\":0}"), 0.5)) m
        fst (Agent.update (Agent.Responded(Background(ws, Poll), response, 0.5)) m)
    let m, _ = Agent.update Agent.Start model
    let m = poll ids[1] (rowFor ids[1] 10L "b0000000-0000-4000-8000-000000000001") m
    let m = poll ids[0] (rowFor ids[0] 20L "a0000000-0000-4000-8000-000000000001") m
    let m, peeked = Agent.update (Agent.ToolCalled(1L, "n", Tools.parse "inbox_peek" None)) m
    let text = peeked |> List.pick (function Answer(1L, o, _) -> Some o.Text | _ -> None)
    let items = (Json.tryParse text |> Option.bind Json.asArray).Value
    Assert.Equal<string list>([ ids[1].Value; ids[0].Value ], items |> List.choose (Json.stringProp "arrival_workspace_id"))
    let _, popped = Agent.update (Agent.ToolCalled(2L, "n", Tools.parse "inbox_pop" (Some(Json.obj [ "activity_id", Json.str "a0000000-0000-4000-8000-000000000001" ])))) m
    Assert.Contains(Persist(ids[0], Append [ Journal.event (Ledger.Popped "a0000000-0000-4000-8000-000000000001") ]), popped)
    // One workspace: no arrival_workspace_id anywhere.
    let single = Agent.init config (boot [])
    let single, _ = Agent.update Agent.Start single
    let single = poll selfId (Reply(200, "[" + rowJson { Id = "c0000000-0000-4000-8000-000000000001"; Seq = 1L; At = 1L; Kind = Peer; Text = "x" } + "]")) single
    let _, one = Agent.update (Agent.ToolCalled(3L, "n", Tools.parse "inbox_peek" None)) single
    Assert.DoesNotContain("arrival_workspace_id", one |> List.pick (function Answer(3L, o, _) -> Some o.Text | _ -> None))
