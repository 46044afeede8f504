/// A2A envelopes as they travel through the platform: the `message/send` request the wheel sends, the text of parts
/// (text parts, and one line per file part), the text of a JSON-RPC result (a Message, or a Task's artifacts and
/// status message), and the agent card a workspace registers.
module Molecule.Protocol.A2a

open System
open System.Text.Json.Nodes

let private kindOf (part: JsonNode) =
    match Json.stringProp "kind" part |> Option.orElse (Json.stringProp "type" part) with
    | Some k -> k
    // A part with only a "text" member is a text part.
    | None -> if (Json.stringProp "text" part).IsSome then "text" else ""

/// The lines one part contributes: its text, or `[attachment: name uri]` for a file part.
let partLines (part: JsonNode) : string list =
    match kindOf part with
    | "text" ->
        match Json.stringProp "text" part with
        | Some t when t <> "" -> [ t ]
        | _ -> []
    | "file" ->
        let file = Json.prop "file" part
        let field n = file |> Option.bind (Json.stringProp n) |> Option.filter (fun s -> s.Trim() <> "")
        match [ field "name"; field "uri" ] |> List.choose id with
        | [] -> []
        | fields -> [ "[attachment: " + String.Join(" ", fields) + "]" ]
    | _ -> []

/// The lines of a parts array ([] when it is not one).
let lines (parts: JsonNode) : string list =
    match Json.asArray parts with
    | Some items -> items |> List.collect partLines
    | None -> []

/// The text of a parts array, lines joined by newlines; None when there is none.
let textOfParts (parts: JsonNode) : string option =
    match lines parts with
    | [] -> None
    | ls -> Some(String.Join("\n", ls))

/// Every text of a JSON-RPC `result`: a Message's parts, or a Task's artifacts and status message (P9).
let resultLines (result: JsonNode) : string list =
    match Json.asString result with
    | Some s -> [ s ]
    | None ->
        let parts name = Json.prop name result |> Option.map lines |> Option.defaultValue []
        let artifacts =
            match Json.prop "artifacts" result |> Option.bind Json.asArray with
            | Some arts -> arts |> List.collect (fun a -> Json.prop "parts" a |> Option.map lines |> Option.defaultValue [])
            | None -> []
        let status = Json.path [ "status"; "message"; "parts" ] result |> Option.map lines |> Option.defaultValue []
        parts "parts" @ artifacts @ status

/// A JSON-RPC `message/send` request with one text part.
let messageSend (rpcId: string) (messageId: string) (text: string) : JsonObject =
    let part = Json.obj [ "kind", Json.str "text"; "text", Json.str text ]
    let message =
        Json.obj
            [ "role", Json.str "user"
              "messageId", Json.str messageId
              "parts", Json.arr [ part :> JsonNode ] ]
    Json.obj
        [ "jsonrpc", Json.str "2.0"
          "id", Json.str rpcId
          "method", Json.str "message/send"
          "params", Json.obj [ "message", message :> JsonNode ] ]

/// The agent card a workspace registers: name, skills (as `{"name":…}`), description when there is one.
let agentCard (name: string) (description: string option) (skills: string list) : JsonObject =
    Json.obj
        [ yield "name", Json.str name
          yield "skills", Json.arr (skills |> List.map (fun s -> Json.obj [ "name", Json.str s ] :> JsonNode))
          match description with
          | Some d -> yield "description", Json.str d
          | None -> () ]

/// The skill names of an agent card (strings, or objects with a name).
let skillNames (card: JsonNode) : string list =
    match Json.prop "skills" card |> Option.bind Json.asArray with
    | Some items ->
        items
        |> List.choose (fun s -> Json.asString s |> Option.orElse (Json.stringProp "name" s))
        |> List.filter (fun s -> s.Trim() <> "")
    | None -> []

/// The markers that frame a peer's answer in a tool result (P28): the agent sees where the peer's words start and
/// end, so text inside reads as data from another agent, not as instructions from the user or the system.
let peerResultOpen = "[A2A_RESULT_FROM_PEER]"
let peerResultClose = "[/A2A_RESULT_FROM_PEER]"

let private markerLike =
    Text.RegularExpressions.Regex(
        @"\[(\s*/?\s*A2A_RESULT_FROM_PEER\s*)\]",
        Text.RegularExpressions.RegexOptions.IgnoreCase ||| Text.RegularExpressions.RegexOptions.CultureInvariant
    )

/// A peer's answer between the real markers. A marker-like sequence the peer wrote itself (any case, any spacing) is
/// kept but turned into parentheses, so the only real markers are the frame's; nothing else is changed — no words
/// rewritten, nothing cut (unlike the reference's sanitiser).
let framePeerResult (text: string) : string =
    let inner = markerLike.Replace((if isNull text then "" else text), "($1)")
    peerResultOpen + "\n" + inner + "\n" + peerResultClose
