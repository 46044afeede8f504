/// commit_memory and recall_memory (P11).
module Molecule.Core.MemoryTools

open System
open System.Text.Json.Nodes
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// Memories
// ---------------------------------------------------------------------------------------------

/// Replaces well-known secret shapes with [REDACTED] before anything leaves the process (spec §3.10).
let redactSecrets (text: string) : string = Secrets.redact text

let commitMemory (ctx: ToolContext) (content: string) (scope: MemoryScope) : Program<ToolOutput> =
    platform ctx (program {
        if isBlank content then do! refuse "Error: content is required."
        let! status, body = call ctx (Api.commitMemory ctx.Config (redactSecrets content) scope)
        if status <> 200 && status <> 201 then do! refuse (httpFailure status body)
        let node = Json.tryParse body
        let id = node |> Option.bind (Json.prop "id") |> Option.bind Json.asScalarText |> Option.defaultValue ""
        let sc = node |> Option.bind (Json.stringProp "scope") |> Option.defaultValue (Api.scopeName scope)
        return ok (Json.compact (Json.obj [ "success", Json.bool true; "id", Json.str id; "scope", Json.str sc ]))
    })

/// One line per memory: `[scope] content`.
let private memoryLine (row: JsonNode) : string =
    let sc = Json.stringProp "scope" row |> Option.filter (isBlank >> not) |> Option.defaultValue "?"
    let content = Json.prop "content" row |> Option.bind Json.asScalarText |> Option.defaultValue ""
    $"[{sc}] {content}"

let recallMemory (ctx: ToolContext) (query: string) (scope: MemoryScope option) : Program<ToolOutput> =
    platform ctx (program {
        let! status, body = call ctx (Api.recallMemory ctx.Config (if isNull query then "" else query.Trim()) scope)
        if not (is2xx status) then do! refuse (httpFailure status body)
        match Json.tryParse body |> Option.bind Json.asArray with
        | Some [] -> return ok "No memories found."
        | Some rows -> return ok (String.Join("\n", rows |> List.map memoryLine))
        | None -> return failure $"Error: the platform's memory answer is not a JSON list: {short body}"
    })
