/// What a `request_update` activity row says about a request (tasks and approvals, delivery spec §7.1 and the
/// issue-18 contract): the platform writes one on the agent's workspace when someone else responds to, asks about
/// or cancels a request of the agent, or creates one for it, and a `nudge` when a request addressed to the agent has
/// waited (spec §7.1's sweeper). Read and written only here (the platform may write it
/// with `json`, the agent reads it with `ofBody`). Total: never throws.
module Molecule.Protocol.RequestUpdate

open System.Text.Json.Nodes

/// The `method` of the rows.
let method = "request_update"

/// Who raised a request: an agent's own request, Claude Code's permission prompt, or the loop guard's pause.
type Source =
    | FromAgent
    | PermissionRelay
    | LoopGuard

let sourceName (source: Source) =
    match source with
    | FromAgent -> "agent"
    | PermissionRelay -> "permission_relay"
    | LoopGuard -> "loop_guard"

let sourceOf (name: string) =
    match name with
    | "permission_relay" -> PermissionRelay
    | "loop_guard" -> LoopGuard
    | _ -> FromAgent

type Update =
    { RequestId: string
      /// created | responded | message | cancelled | nudge (a reminder of a request still waiting for the agent's answer)
      Event: string
      /// The request's status after the change (pending, info_requested, approved, rejected, done, cancelled, expired).
      Status: string
      /// task | approval
      Kind: string
      Title: string
      /// user | agent | platform (a nudge)
      ActorType: string
      ActorId: string option
      /// The clarification text (`message`) or the detail (`created`, `nudge`).
      Body: string option
      Source: Source }

let private field (name: string) (node: JsonNode) =
    Json.prop name node |> Option.bind Json.asScalarText |> Option.map (fun s -> s.Trim())

let private optional (name: string) (node: JsonNode) =
    Json.prop name node |> Option.bind Json.asString |> Option.filter (fun s -> s.Trim() <> "")

/// The update a row's request_body holds: request_id and event are required.
let ofBody (body: JsonNode) : Update option =
    match body with
    | :? JsonObject ->
        match field "request_id" body |> Option.filter ((<>) ""), field "event" body |> Option.filter ((<>) "") with
        | Some id, Some event ->
            Some
                { RequestId = id
                  Event = event
                  Status = defaultArg (field "status" body) ""
                  Kind = defaultArg (field "kind" body) ""
                  Title = defaultArg (optional "title" body) ""
                  ActorType = defaultArg (field "actor_type" body) ""
                  ActorId = field "actor_id" body |> Option.filter ((<>) "")
                  Body = optional "body" body
                  Source = sourceOf (defaultArg (field "source" body) "") }
        | _ -> None
    | _ -> None

/// The request_body of a row (and the ledger's copy of it).
let json (u: Update) : JsonObject =
    Json.obj
        [ yield "request_id", Json.str u.RequestId
          yield "event", Json.str u.Event
          yield "status", Json.str u.Status
          yield "kind", Json.str u.Kind
          yield "title", Json.str u.Title
          yield "actor_type", Json.str u.ActorType
          match u.ActorId with
          | Some a -> yield "actor_id", Json.str a
          | None -> ()
          match u.Body with
          | Some b -> yield "body", Json.str b
          | None -> ()
          yield "source", Json.str (sourceName u.Source) ]
