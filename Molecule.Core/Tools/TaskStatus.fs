/// check_task_status (spec §3.3; P6): the platform's delegations list, one delegation whole or the recent ones in
/// short, a poll-mode peer's queued envelope never shown as a completed result.
module Molecule.Core.TaskStatusTools

open System
open System.Globalization
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Molecule.Protocol
open Molecule.Core.ToolKit

let private queuedEnvelope = Regex("\"status\"\\s*:\\s*\"queued\"", RegexOptions.CultureInvariant)

/// The fields with `name` set to `value`: in its place when present, else at the end.
let private withField (name: string) (value: JsonNode) (fields: (string * JsonNode) list) =
    if fields |> List.exists (fun (k, _) -> k = name) then
        fields |> List.map (fun (k, v) -> if k = name then k, value else k, v)
    else
        fields @ [ name, value ]

/// A delegation as check_task_status shows it. P6: a poll-mode peer's queued envelope (`preview`) is not a completed
/// result: such an entry is shown as queued, with a note.
let private shownEntry (preview: string) (fields: (string * JsonNode) list) : JsonObject =
    if queuedEnvelope.IsMatch preview && preview.Contains("poll", StringComparison.Ordinal) then
        fields
        |> withField "status" (Json.str "queued")
        |> withField
            "note"
            (Json.str
                "The peer is a poll-mode workspace: the task was queued for it, not completed. Its reply will arrive in your inbox as a peer_agent message (wait_for_message / inbox_peek).")
        |> Json.obj
    else
        Json.obj fields

let private createdAt (entry: JsonNode) : DateTimeOffset option =
    match Json.stringProp "created_at" entry with
    | Some s ->
        match DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) with
        | true, d -> Some d
        | _ -> None
    | None -> None

let private preview (entry: JsonNode) = Json.stringProp "response_preview" entry |> Option.defaultValue ""

/// check_task_status with a task_id: the newest entry of that delegation, whole.
let private delegationStatus (id: string) (entries: JsonObject list) : string =
    match entries |> List.filter (fun e -> Json.prop "delegation_id" e |> Option.bind Json.asScalarText = Some id) with
    | [] -> Json.compact (Json.obj [ "status", Json.str "not_found"; "delegation_id", Json.str id ])
    | first :: _ as matches ->
        // newest first from the platform; prefer a strictly later timestamp if present
        let newest =
            matches
            |> List.fold
                (fun (best: JsonObject) e ->
                    match createdAt e, createdAt best with
                    | Some a, Some b when a > b -> e
                    | _ -> best)
                first
        Json.compact (shownEntry (preview newest) [ for kv in newest -> kv.Key, Json.clone kv.Value ])

/// check_task_status without one: the 10 most recent delegations, in short.
let private recentDelegations (entries: JsonObject list) : string =
    let brief (e: JsonObject) =
        let field name = Json.prop name e |> Option.bind Json.asScalarText |> Option.defaultValue ""
        [ "delegation_id"; "target_id"; "status"; "summary"; "response_preview" ]
        |> List.map (fun name -> name, Json.str (field name))
        |> shownEntry (field "response_preview")
        :> JsonNode
    Json.obj
        [ "delegations", Json.arr (entries |> List.truncate 10 |> List.map brief)
          "count", Json.num entries.Length ]
    |> Json.compact

let checkTaskStatus (ctx: ToolContext) (taskId: string option) : Program<ToolOutput> =
    platform ctx (program {
        let! status, body = call ctx (Api.delegations ctx.Config)
        if not (is2xx status) then do! refuse $"Error: failed to check delegations: {httpDetail status body}"
        match Json.tryParse body |> Option.bind Json.asArray with
        | None -> return failure $"Error: failed to check delegations: the platform's answer is not a JSON list: {short body}"
        | Some items ->
            let entries = items |> List.choose Json.asObject
            match taskId |> Option.filter (isBlank >> not) with
            | Some id -> return ok (delegationStatus id entries)
            | None -> return ok (recentDelegations entries)
    })
