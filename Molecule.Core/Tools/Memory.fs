/// commit_memory and recall_memory (P11).
module Molecule.Core.MemoryTools

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Molecule.Protocol
open Molecule.Core.ToolKit

// ---------------------------------------------------------------------------------------------
// Memories
// ---------------------------------------------------------------------------------------------

/// Replaces well-known secret shapes with [REDACTED] before anything leaves the process (spec §3.10).
let redactSecrets (text: string) : string = Secrets.redact text

let commitMemory (ctx: ToolContext) (content: string) (scope: MemoryScope) : Program =
    platform ctx (fun () ->
        if isBlank content then
            fail "Error: content is required."
        else
            call ctx (Api.commitMemory ctx.Config (redactSecrets content) scope) (fun status body ->
                if status = 200 || status = 201 then
                    let node = Json.tryParse body
                    let id = node |> Option.bind (Json.prop "id") |> Option.bind Json.asScalarText |> Option.defaultValue ""
                    let sc = node |> Option.bind (Json.stringProp "scope") |> Option.defaultValue (Api.scopeName scope)

                    Json.obj [ "success", Json.bool true; "id", Json.str id; "scope", Json.str sc ]
                    |> Json.compact
                    |> ok
                else
                    fail (httpFailure status body)))

let recallMemory (ctx: ToolContext) (query: string) (scope: MemoryScope option) : Program =
    platform ctx (fun () ->
        call ctx (Api.recallMemory ctx.Config (if isNull query then "" else query.Trim()) scope) (fun status body ->
            if not (is2xx status) then
                fail (httpFailure status body)
            else
                match Json.tryParse body |> Option.bind Json.asArray with
                | Some [] -> ok "No memories found."
                | Some rows ->
                    rows
                    |> List.map (fun r ->
                        let sc = Json.stringProp "scope" r |> Option.filter (isBlank >> not) |> Option.defaultValue "?"
                        let content = Json.prop "content" r |> Option.bind Json.asScalarText |> Option.defaultValue ""
                        $"[{sc}] {content}")
                    |> fun lines -> ok (String.Join("\n", lines))
                | None -> fail $"Error: the platform's memory answer is not a JSON list: {short body}"))

