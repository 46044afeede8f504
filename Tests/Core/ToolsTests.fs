module Molecule.Tests.Core.ToolsTests

open Molecule.Protocol

open System
open System.Text.Json
open System.Text.Json.Nodes
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core

let private cfg n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private names = Tools.specs |> List.map (fun s -> s.Name)

let private propertyNames =
    [ "workspace_id"; "task"; "task_id"; "message"; "attachments"; "timeout_secs"; "limit"; "activity_id"; "content"; "scope"; "query" ]

/// The typed call Tools.parse makes of a tool's arguments (its route aside).
let private parse name args = Tools.parse name args |> Result.map (fun parsed -> parsed.Call)

let private parseWith name (fields: (string * JsonNode) list) = parse name (Some(Json.obj fields))

/// Json.asFloat that tolerates nodes which cannot be serialized (NaN, ±Infinity built by hand).
let private safeFloat (node: JsonNode) =
    try
        Json.asFloat node
    with _ ->
        None

let private isError =
    function
    | Result.Error _ -> true
    | Ok _ -> false

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

let private genString: Gen<string> =
    Gen.frequency
        [ 6, ArbMap.defaults |> ArbMap.generate<string>
          3, Gen.elements [ ""; " "; "\t\n"; "LOCAL"; "team"; "Global"; "local "; "/tmp/a"; "C:\\x"; "60"; "-1"; "1e999"; "NaN"; "ünï🙂"; "\u0000" ]
          1, Gen.choose (0, 200_000) |> Gen.map (fun n -> String('x', n)) ]

let private genNumber: Gen<JsonNode> =
    Gen.oneof
        [ ArbMap.defaults |> ArbMap.generate<int> |> Gen.map Json.num
          ArbMap.defaults |> ArbMap.generate<float> |> Gen.map (fun f -> if Double.IsFinite f then Json.numf f else Json.numf 1e308)
          Gen.elements [ nan; infinity; -infinity ] |> Gen.map (fun f -> JsonValue.Create f :> JsonNode)
          Gen.elements [ 0.0; -0.0; 1e308; -1e308; 0.5; 299.999; 300.0001; 4.9e-324; 1e15; 201.0 ] |> Gen.map Json.numf
          ArbMap.defaults |> ArbMap.generate<int64> |> Gen.map (fun n -> JsonValue.Create n :> JsonNode)
          ArbMap.defaults |> ArbMap.generate<decimal> |> Gen.map (fun n -> JsonValue.Create n :> JsonNode) ]

/// Any JSON value, nested up to the size budget. Every node is freshly built (a node can have
/// only one parent).
let rec private genJson (size: int) : Gen<JsonNode> =
    let leaves =
        [ Gen.constant () |> Gen.map (fun () -> Json.nul)
          ArbMap.defaults |> ArbMap.generate<bool> |> Gen.map Json.bool
          genNumber
          genString |> Gen.map (fun s -> if isNull s then Json.nul else Json.str s) ]

    if size <= 0 then
        Gen.oneof leaves
    else
        let child = genJson (size / 3)

        Gen.frequency
            [ 6, Gen.oneof leaves
              1, Gen.listOf child |> Gen.map (fun xs -> Json.arr xs)
              1, genObject (size / 3) |> Gen.map (fun o -> o :> JsonNode) ]

and private genObject (size: int) : Gen<JsonObject> =
    let key = Gen.oneof [ Gen.elements propertyNames; genString |> Gen.map (fun s -> if isNull s then "k" else s) ]

    Gen.listOf (Gen.zip key (genJson size))
    |> Gen.map (fun fields ->
        let o = JsonObject()

        for (k, v) in fields do
            o[k] <- v // later duplicates overwrite earlier ones

        o)

let private genArgs: Gen<JsonObject option> =
    Gen.frequency
        [ 1, Gen.constant () |> Gen.map (fun () -> None)
          1, Gen.constant () |> Gen.map (fun () -> Some null)
          8, Gen.sized (fun s -> genObject (min s 30)) |> Gen.map Some ]

let private genName: Gen<string> =
    Gen.oneof [ Gen.elements names; genString; Gen.elements [ null; "DELEGATE_TASK"; " list_peers"; "list_peers\n" ] ]

let private genGuid: Gen<Guid> =
    Gen.arrayOfLength 16 (ArbMap.defaults |> ArbMap.generate<byte>) |> Gen.map (fun b -> Guid b)

/// A UUID as an agent might type it: random letter case, surrounding blanks.
let private genUuidText: Gen<Guid * string> =
    gen {
        let! g = genGuid
        let! upper = ArbMap.defaults |> ArbMap.generate<bool>
        let! pad = Gen.elements [ ""; " "; "\n"; "  \t" ]
        let text = g.ToString "D"
        return g, pad + (if upper then text.ToUpperInvariant() else text) + pad
    }

/// Non-blank text that keeps its surrounding whitespace.
let private genText: Gen<string> =
    gen {
        let! core = ArbMap.defaults |> ArbMap.generate<NonWhiteSpaceString>
        let! pre = Gen.elements [ ""; " "; "\n" ]
        let! post = Gen.elements [ ""; " "; "\n\n" ]
        return pre + core.Get + post
    }

let private genAbsPath: Gen<string> =
    gen {
        let! rest = ArbMap.defaults |> ArbMap.generate<NonWhiteSpaceString>
        let! root = Gen.elements [ "/"; "/home/me/"; "C:\\"; "d:/"; @"\\server\share\" ]
        return root + rest.Get
    }

let private genScope: Gen<MemoryScope * string> =
    gen {
        let! scope, word = Gen.elements [ Local, "LOCAL"; Team, "TEAM"; Global, "GLOBAL" ]
        let! lower = ArbMap.defaults |> ArbMap.generate<bool>
        return scope, (if lower then word.ToLowerInvariant() else word)
    }

/// Valid arguments for one tool, with the call they must produce.
let private genValid: Gen<string * (string * JsonNode) list * ToolCall> =
    let delegateLike name make =
        gen {
            let! g, wsText = genUuidText
            let! task = genText
            return name, [ "workspace_id", Json.str wsText; "task", Json.str task ], make ((WorkspaceId.tryParse (g.ToString "D")).Value, task)
        }

    Gen.oneof
        [ delegateLike "delegate_task" DelegateTask
          delegateLike "delegate_task_async" DelegateTaskAsync
          gen {
              let! _, wsText = genUuidText
              let! taskId = Gen.oneof [ Gen.constant "" |> Gen.map Some; genText |> Gen.map Some; Gen.constant None ]

              let fields =
                  [ "workspace_id", Json.str wsText ]
                  @ (match taskId with
                     | Some t -> [ "task_id", Json.str t ]
                     | None -> [])

              let expected =
                  match taskId with
                  | Some t when t.Trim() <> "" -> Some(t.Trim())
                  | _ -> None

              return "check_task_status", fields, CheckTaskStatus expected
          }
          Gen.constant ("list_peers", [], ListPeers)
          Gen.constant ("get_workspace_info", [], GetWorkspaceInfo)
          gen {
              let! message = genText
              let! files = Gen.listOf genAbsPath
              let! asArray = ArbMap.defaults |> ArbMap.generate<bool>

              let attachments =
                  if files.IsEmpty && not asArray then [] else [ "attachments", Json.arr (files |> List.map Json.str) ]

              return "send_message_to_user", [ "message", Json.str message ] @ attachments, SendMessageToUser(message, files)
          }
          gen {
              let! t = Gen.choose (0, 300000) |> Gen.map (fun n -> float n / 1000.0)
              let! asText = ArbMap.defaults |> ArbMap.generate<bool>

              let node =
                  if asText then Json.str (t.ToString(Globalization.CultureInfo.InvariantCulture)) else Json.numf t

              return "wait_for_message", [ "timeout_secs", node ], WaitForMessage t
          }
          gen {
              let! n = Gen.choose (1, 200)
              return "inbox_peek", [ "limit", Json.num n ], InboxPeek n
          }
          gen {
              let! id = genText
              return "inbox_pop", [ "activity_id", Json.str id ], InboxPop (ActivityId.tryParse id).Value
          }
          gen {
              let! content = genText
              let! scope, word = genScope
              return "commit_memory", [ "content", Json.str content; "scope", Json.str word ], CommitMemory(content, scope)
          }
          gen {
              let! query = genText
              let! scope = Gen.oneof [ genScope |> Gen.map Some; Gen.constant None ]

              let fields, expected =
                  match scope with
                  | Some(s, word) -> [ "query", Json.str query; "scope", Json.str word ], Some s
                  | None -> [ "query", Json.str query ], None

              return "recall_memory", fields, RecallMemory(query.Trim(), expected)
          } ]

/// Any JSON value for one argument (fresh node each time), or absent.
let private genArgValue: Gen<JsonNode option> =
    Gen.frequency [ 1, Gen.constant () |> Gen.map (fun () -> None); 9, genJson 6 |> Gen.map Some ]

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: tool argument validation is total`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip genName genArgs)) (fun (name, args) ->
            match Tools.parse name args with
            | Ok _ -> List.contains name names
            | Result.Error e -> not (String.IsNullOrWhiteSpace e))
    )

[<Fact>]
let ``rule: every spec schema is an object schema whose required names are properties`` () =
    for spec in Tools.specs do
        let schema = Json.tryParse spec.InputSchema |> Option.bind Json.asObject
        Assert.True(schema.IsSome, $"{spec.Name}: schema must be a JSON object")
        let schema = schema.Value
        Assert.Equal(Some "object", Json.stringProp "type" schema)
        let props = Json.prop "properties" schema |> Option.bind Json.asObject
        Assert.True(props.IsSome, $"{spec.Name}: properties must be an object")

        let required =
            match Json.prop "required" schema with
            | None -> []
            | Some r -> r |> Json.asArray |> Option.defaultValue [ Json.nul ] |> List.map Json.asString

        for r in required do
            Assert.True(r.IsSome && props.Value.ContainsKey r.Value, $"{spec.Name}: required {r} is not a property")

        for KeyValue(p, def) in props.Value do
            Assert.True((Json.stringProp "type" def).IsSome, $"{spec.Name}.{p} needs a type")

        Assert.False(String.IsNullOrWhiteSpace spec.Description)
        // The MCP SDK validates input schemas when a Tool is built; it must accept ours.
        let tool =
            ModelContextProtocol.Protocol.Tool(
                Name = spec.Name,
                Description = spec.Description,
                InputSchema = JsonDocument.Parse(spec.InputSchema).RootElement.Clone()
            )

        Assert.Equal(spec.Name, tool.Name)

[<Fact>]
let ``rule: valid arguments round-trip`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen genValid) (fun (name, fields, expected) ->
            Tools.parse name (Some(Json.obj fields)) = Ok { Call = expected; Route = Unnamed })
    )

[<Fact>]
let ``rule: timeout is clamped to 0..300`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen genArgValue) (fun value ->
            let fields = value |> Option.map (fun v -> [ "timeout_secs", v ]) |> Option.defaultValue []
            let expected = value |> Option.bind safeFloat |> Option.map (fun f -> Math.Clamp(f, 0.0, 300.0))

            match parseWith "wait_for_message" fields with
            | Ok(WaitForMessage t) -> t >= 0.0 && t <= 300.0 && t = Option.defaultValue 60.0 expected
            | _ -> false)
    )

[<Fact>]
let ``rule: limit is 1..200`` () =
    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen genArgValue) (fun value ->
            let fields = value |> Option.map (fun v -> [ "limit", v ]) |> Option.defaultValue []

            let expected =
                match value |> Option.bind safeFloat with
                | Some f when f >= 1.0 && f = Math.Floor f -> min f 200.0 |> int
                | _ -> 10

            match parseWith "inbox_peek" fields with
            | Ok(InboxPeek n) -> n >= 1 && n <= 200 && n = expected
            | _ -> false)
    )

[<Fact>]
let ``rule: unknown scope is rejected`` () =
    let known = set [ "LOCAL"; "TEAM"; "GLOBAL"; "" ]

    let genScopeText =
        Gen.oneof [ genString; Gen.elements [ "PRIVATE"; "L0CAL"; "teams"; "GLOBAL."; "ALL"; "*" ] ]
        |> Gen.map (fun s -> if isNull s then "" else s)

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen genScopeText) (fun s ->
            let upper = s.Trim().ToUpperInvariant()
            let commit = parseWith "commit_memory" [ "content", Json.str "fact"; "scope", Json.str s ]
            let recall = parseWith "recall_memory" [ "scope", Json.str s ]

            if known.Contains upper && s.Trim() |> Seq.forall (fun c -> c < '\u0080') then
                not (isError commit) && not (isError recall)
            else
                commit = Result.Error "scope must be one of LOCAL, TEAM, GLOBAL"
                && recall = Result.Error "scope must be one of LOCAL, TEAM, GLOBAL")
    )

[<Fact>]
let ``rule: workspace_id must be a UUID`` () =
    let genCandidate =
        Gen.oneof
            [ genUuidText |> Gen.map snd
              genString |> Gen.map (fun s -> if isNull s then "" else s)
              genGuid |> Gen.map (fun g -> g.ToString "N")
              genGuid |> Gen.map (fun g -> g.ToString "B")
              genGuid |> Gen.map (fun g -> (g.ToString "D").Substring 1)
              Gen.elements [ "peer-1"; "00000000-0000-0000-0000-00000000000g"; "workspace" ] ]

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen genCandidate) (fun s ->
            let isUuid, g = Guid.TryParseExact(s.Trim(), "D")

            [ "delegate_task"; "delegate_task_async" ]
            |> List.forall (fun tool ->
                match parseWith tool [ "workspace_id", Json.str s; "task", Json.str "do it" ] with
                | Ok(DelegateTask(ws, _))
                | Ok(DelegateTaskAsync(ws, _)) -> isUuid && ws.Value = g.ToString("D") && ws.Value = ws.Value.ToLowerInvariant()
                | Result.Error e when String.IsNullOrWhiteSpace s -> e = "workspace_id is required"
                | Result.Error e -> not isUuid && e = "workspace_id must be a workspace UUID (from list_peers)"
                | Ok _ -> false))
    )

[<Fact>]
let ``rule: the routing argument is read once, into the call's route`` () =
    let genRouting = Gen.oneof [ Gen.constant None; genUuidText |> Gen.map (snd >> Some); genString |> Gen.map Some ]

    Check.One(
        cfg 500,
        Prop.forAll (Arb.fromGen (Gen.zip genValid genRouting)) (fun ((name, fields, expected), value) ->
            // A tool without a routing argument ignores one given anyway.
            let arg = Tools.routingArg name |> Option.defaultValue "source_workspace_id"
            let given = value |> Option.filter (String.IsNullOrWhiteSpace >> not) |> Option.map (fun v -> v.Trim())
            let fields = fields @ (value |> Option.map (fun v -> arg, Json.str v) |> Option.toList)

            let route =
                match Tools.routingArg name, given with
                | Some arg, Some text ->
                    match Guid.TryParseExact(text, "D") with
                    | true, g -> Named(arg, text, (WorkspaceId.tryParse (g.ToString "D")).Value)
                    | _ -> NotAWorkspace(arg, text)
                | _ -> Unnamed

            Tools.parse name (Some(Json.obj fields)) = Ok { Call = expected; Route = route })
    )

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

let private ws = "0b7e7a2c-1111-4222-8333-944445555666"
let private wsId = (WorkspaceId.tryParse ws).Value

[<Fact>]
let ``example: specs are the 15 reference tools in order (addendum §1), then the requests tools`` () =
    Assert.Equal<string list>(
        [ "delegate_task"
          "delegate_task_async"
          "check_task_status"
          "list_peers"
          "get_workspace_info"
          "get_runtime_identity"
          "update_agent_card"
          "broadcast_message"
          "send_message_to_user"
          "wait_for_message"
          "inbox_peek"
          "inbox_pop"
          "chat_history"
          "commit_memory"
          "recall_memory"
          "create_request"
          "create_approval"
          "list_requests"
          "get_request"
          "respond_to_request"
          "add_request_message"
          "cancel_request" ],
        names
    )

let private schemaOf name =
    let spec = Tools.specs |> List.find (fun s -> s.Name = name)
    (Json.tryParse spec.InputSchema).Value

let private propsOf name =
    schemaOf name |> Json.prop "properties" |> Option.bind Json.asObject |> Option.map (fun o -> o |> Seq.map (fun kv -> kv.Key, Json.stringProp "type" kv.Value) |> List.ofSeq)

let private requiredOf name =
    match schemaOf name |> Json.prop "required" with
    | Some r -> r |> Json.asArray |> Option.defaultValue [] |> List.choose Json.asString
    | None -> []

[<Fact>]
let ``example: schemas match the reference property names, types and required lists`` () =
    let expect name (props: (string * string) list) (required: string list) =
        Assert.Equal<(string * string option) list>(props |> List.map (fun (p, t) -> p, Some t), (propsOf name).Value)
        Assert.Equal<string list>(required, requiredOf name)

    // The optional routing properties are those of the reference at CORE@0520 (addendum §2).
    let source = "source_workspace_id", "string"
    expect "delegate_task" [ "workspace_id", "string"; "task", "string"; source ] [ "workspace_id"; "task" ]
    expect "delegate_task_async" [ "workspace_id", "string"; "task", "string"; source ] [ "workspace_id"; "task" ]
    expect "check_task_status" [ "workspace_id", "string"; "task_id", "string"; source ] [ "workspace_id" ]
    expect "list_peers" [ source ] []
    expect "get_workspace_info" [ source ] []
    expect "send_message_to_user" [ "message", "string"; "attachments", "array"; "workspace_id", "string" ] [ "message" ]
    expect "wait_for_message" [ "timeout_secs", "number" ] []
    expect "inbox_peek" [ "limit", "integer" ] []
    expect "inbox_pop" [ "activity_id", "string" ] [ "activity_id" ]
    expect "commit_memory" [ "content", "string"; "scope", "string"; source ] [ "content" ]
    expect "recall_memory" [ "query", "string"; "scope", "string"; source ] []

    let enumOf name =
        schemaOf name
        |> Json.path [ "properties"; "scope"; "enum" ]
        |> Option.bind Json.asArray
        |> Option.map (List.choose Json.asString)

    Assert.Equal(Some [ "LOCAL"; "TEAM"; "GLOBAL" ], enumOf "commit_memory")
    Assert.Equal(Some [ "LOCAL"; "TEAM"; "GLOBAL"; "" ], enumOf "recall_memory")

    Assert.Equal(
        Some "string",
        schemaOf "send_message_to_user" |> Json.path [ "properties"; "attachments"; "items"; "type" ] |> Option.bind Json.asString
    )

[<Fact>]
let ``example: descriptions state our behaviour`` () =
    let desc name = (Tools.specs |> List.find (fun s -> s.Name = name)).Description
    Assert.Contains("queued", desc "delegate_task")
    Assert.Contains("inbox", desc "delegate_task")
    Assert.Contains("inbox_pop", desc "wait_for_message")
    Assert.Contains("NOT removed", desc "wait_for_message")
    Assert.Contains("attachments", desc "send_message_to_user")
    Assert.Contains("URLs", desc "send_message_to_user")
    Assert.Contains("25 MB", desc "send_message_to_user")
    Assert.Contains("full-text", desc "recall_memory")
    Assert.Contains("your own memories of every scope", desc "recall_memory")
    Assert.Contains("ignored", desc "check_task_status")

[<Fact>]
let ``example: delegate_task`` () =
    Assert.Equal(Ok(DelegateTask(wsId, "Summarise the report")), parseWith "delegate_task" [ "workspace_id", Json.str (" " + ws.ToUpperInvariant()); "task", Json.str "Summarise the report" ])
    Assert.Equal(Result.Error "workspace_id is required", parseWith "delegate_task" [ "task", Json.str "x" ])
    Assert.Equal(Result.Error "workspace_id is required", parseWith "delegate_task" [ "workspace_id", Json.str "  "; "task", Json.str "x" ])
    Assert.Equal(Result.Error "workspace_id must be a string", parseWith "delegate_task" [ "workspace_id", Json.num 7; "task", Json.str "x" ])
    Assert.Equal(Result.Error "workspace_id must be a workspace UUID (from list_peers)", parseWith "delegate_task" [ "workspace_id", Json.str "research-bot"; "task", Json.str "x" ])
    Assert.Equal(Result.Error "task is required", parseWith "delegate_task" [ "workspace_id", Json.str ws ])
    Assert.Equal(Result.Error "task is required", parseWith "delegate_task" [ "workspace_id", Json.str ws; "task", Json.str " \n" ])
    Assert.Equal(Result.Error "task must be a string", parseWith "delegate_task" [ "workspace_id", Json.str ws; "task", Json.arr [ Json.str "x" ] ])
    Assert.Equal(Ok(DelegateTask(wsId, " keep me ")), parseWith "delegate_task" [ "workspace_id", Json.str ws; "task", Json.str " keep me "; "extra", Json.bool true ])

[<Fact>]
let ``example: delegate_task_async`` () =
    Assert.Equal(Ok(DelegateTaskAsync(wsId, "Run the tests")), parseWith "delegate_task_async" [ "workspace_id", Json.str ws; "task", Json.str "Run the tests" ])
    Assert.Equal(Result.Error "workspace_id is required", parse "delegate_task_async" None)

[<Fact>]
let ``example: check_task_status`` () =
    Assert.Equal(Ok(CheckTaskStatus(Some "d-1")), parseWith "check_task_status" [ "workspace_id", Json.str ws; "task_id", Json.str " d-1 " ])
    Assert.Equal(Ok(CheckTaskStatus None), parse "check_task_status" None)
    Assert.Equal(Ok(CheckTaskStatus None), parseWith "check_task_status" [ "workspace_id", Json.str "anything"; "task_id", Json.str "" ])
    Assert.Equal(Ok(CheckTaskStatus None), parseWith "check_task_status" [ "workspace_id", Json.num 1; "task_id", Json.nul ])
    Assert.Equal(Result.Error "task_id must be a string", parseWith "check_task_status" [ "task_id", Json.num 5 ])

[<Fact>]
let ``example: list_peers and get_workspace_info ignore arguments`` () =
    Assert.Equal(Ok ListPeers, parse "list_peers" None)
    Assert.Equal(Ok ListPeers, parseWith "list_peers" [ "q", Json.str "x" ])
    Assert.Equal(Ok GetWorkspaceInfo, parse "get_workspace_info" (Some(JsonObject())))

[<Fact>]
let ``example: send_message_to_user`` () =
    Assert.Equal(Ok(SendMessageToUser("hello", [])), parseWith "send_message_to_user" [ "message", Json.str "hello" ])
    Assert.Equal(Ok(SendMessageToUser("hello", [])), parseWith "send_message_to_user" [ "message", Json.str "hello"; "attachments", Json.nul ])
    Assert.Equal(Ok(SendMessageToUser("see file", [ "/tmp/report.pdf"; "C:\\out\\a.png" ])), parseWith "send_message_to_user" [ "message", Json.str "see file"; "attachments", Json.arr [ Json.str "/tmp/report.pdf"; Json.str "C:\\out\\a.png" ] ])
    Assert.Equal(Result.Error "message is required", parseWith "send_message_to_user" [ "message", Json.str "" ])
    Assert.Equal(Result.Error "message is required", parse "send_message_to_user" None)
    Assert.Equal(Result.Error "attachments must be an array of file paths", parseWith "send_message_to_user" [ "message", Json.str "m"; "attachments", Json.str "/tmp/a" ])
    Assert.Equal(Result.Error "attachments must be an array of file paths", parseWith "send_message_to_user" [ "message", Json.str "m"; "attachments", Json.arr [ Json.str "/tmp/a"; Json.num 3 ] ])
    Assert.Equal(Result.Error "attachments must be an array of file paths", parseWith "send_message_to_user" [ "message", Json.str "m"; "attachments", Json.arr [ Json.str "" ] ])
    Assert.Equal(Result.Error "attachment path must be absolute: report.pdf", parseWith "send_message_to_user" [ "message", Json.str "m"; "attachments", Json.arr [ Json.str "/ok"; Json.str "report.pdf" ] ])

[<Fact>]
let ``example: wait_for_message`` () =
    Assert.Equal(Ok(WaitForMessage 60.0), parse "wait_for_message" None)
    Assert.Equal(Ok(WaitForMessage 2.5), parseWith "wait_for_message" [ "timeout_secs", Json.numf 2.5 ])
    Assert.Equal(Ok(WaitForMessage 30.0), parseWith "wait_for_message" [ "timeout_secs", Json.str "30" ])
    Assert.Equal(Ok(WaitForMessage 300.0), parseWith "wait_for_message" [ "timeout_secs", Json.num 3600 ])
    Assert.Equal(Ok(WaitForMessage 0.0), parseWith "wait_for_message" [ "timeout_secs", Json.num -5 ])
    Assert.Equal(Ok(WaitForMessage 60.0), parseWith "wait_for_message" [ "timeout_secs", Json.str "soon" ])
    Assert.Equal(Ok(WaitForMessage 60.0), parseWith "wait_for_message" [ "timeout_secs", Json.nul ])

[<Fact>]
let ``example: inbox_peek`` () =
    Assert.Equal(Ok(InboxPeek 10), parse "inbox_peek" None)
    Assert.Equal(Ok(InboxPeek 3), parseWith "inbox_peek" [ "limit", Json.num 3 ])
    Assert.Equal(Ok(InboxPeek 3), parseWith "inbox_peek" [ "limit", Json.str "3" ])
    Assert.Equal(Ok(InboxPeek 4), parseWith "inbox_peek" [ "limit", Json.numf 4.0 ])
    Assert.Equal(Ok(InboxPeek 10), parseWith "inbox_peek" [ "limit", Json.numf 4.5 ])
    Assert.Equal(Ok(InboxPeek 10), parseWith "inbox_peek" [ "limit", Json.num 0 ])
    Assert.Equal(Ok(InboxPeek 10), parseWith "inbox_peek" [ "limit", Json.num -3 ])
    Assert.Equal(Ok(InboxPeek 200), parseWith "inbox_peek" [ "limit", Json.num 100000 ])

[<Fact>]
let ``example: inbox_pop`` () =
    Assert.Equal(Ok(InboxPop (ActivityId.tryParse "a-1").Value), parseWith "inbox_pop" [ "activity_id", Json.str " a-1 " ])
    Assert.Equal(Result.Error "activity_id is required", parse "inbox_pop" None)
    Assert.Equal(Result.Error "activity_id must be a string", parseWith "inbox_pop" [ "activity_id", Json.num 12 ])

[<Fact>]
let ``example: commit_memory`` () =
    Assert.Equal(Ok(CommitMemory("The build uses Paket", Local)), parseWith "commit_memory" [ "content", Json.str "The build uses Paket" ])
    Assert.Equal(Ok(CommitMemory("x", Local)), parseWith "commit_memory" [ "content", Json.str "x"; "scope", Json.str "" ])
    Assert.Equal(Ok(CommitMemory("x", Team)), parseWith "commit_memory" [ "content", Json.str "x"; "scope", Json.str "team" ])
    Assert.Equal(Ok(CommitMemory("x", Global)), parseWith "commit_memory" [ "content", Json.str "x"; "scope", Json.str " Global " ])
    Assert.Equal(Result.Error "scope must be one of LOCAL, TEAM, GLOBAL", parseWith "commit_memory" [ "content", Json.str "x"; "scope", Json.str "PRIVATE" ])
    Assert.Equal(Result.Error "scope must be one of LOCAL, TEAM, GLOBAL", parseWith "commit_memory" [ "content", Json.str "x"; "scope", Json.num 1 ])
    Assert.Equal(Result.Error "content is required", parseWith "commit_memory" [ "scope", Json.str "LOCAL" ])

[<Fact>]
let ``example: recall_memory`` () =
    Assert.Equal(Ok(RecallMemory("", None)), parse "recall_memory" None)
    Assert.Equal(Ok(RecallMemory("paket", None)), parseWith "recall_memory" [ "query", Json.str " paket "; "scope", Json.str "" ])
    Assert.Equal(Ok(RecallMemory("deploy", Some Team)), parseWith "recall_memory" [ "query", Json.str "deploy"; "scope", Json.str "TEAM" ])
    Assert.Equal(Result.Error "scope must be one of LOCAL, TEAM, GLOBAL", parseWith "recall_memory" [ "scope", Json.str "everything" ])
    Assert.Equal(Result.Error "query must be a string", parseWith "recall_memory" [ "query", Json.obj [] ])

[<Fact>]
let ``example: unknown tool names are reported, truncated to 100 characters`` () =
    Assert.Equal(Result.Error "Unknown tool: chat_histories", parse "chat_histories" None)
    Assert.Equal(Result.Error "Unknown tool: ", parse null None)

    match Tools.parse (String('z', 5000)) None with
    | Result.Error e ->
        Assert.StartsWith("Unknown tool: zzz", e)
        Assert.True(e.Length <= "Unknown tool: ".Length + 100)
    | Ok _ -> Assert.Fail "expected an error"
