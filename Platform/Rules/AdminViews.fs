/// The console's views and edits (canvas and CLI share them through the admin API): the public card, the workspace
/// overview (last seen, uptime, delivery state, tokens), workspace edits and the delegations view. Pure.
module Molecule.Platform.AdminViews

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- public card

/// What anyone who reaches the port may read about a workspace (GET /workspaces/:id without the admin token or
/// the workspace's own token): who it is and whether it is up, not where it listens or what it is doing.
let publicCard (w: Workspace) : JsonObject =
    Json.obj
        [ "id", Wire.idNode w.Id
          "name", Json.str w.Name
          "role", Json.optStr w.Role
          "tier", Json.num w.Tier
          "status", Json.str (Status.text w.Status)
          "parent_id", Wire.optId w.ParentId
          "delivery_mode", Json.str (DeliveryMode.text w.DeliveryMode)
          "agent_card", (match w.AgentCard with Some c -> Json.raw c | None -> null) ]

// ---------------------------------------------------------------- overview

/// An online workspace without a heartbeat for this long is shown as silent (its agent heartbeats every 20 s;
/// the sweep marks it awaiting_agent only after 90 s).
let silentAfter = TimeSpan.FromSeconds 45.0

/// Whether inbound messages were acknowledged: counts of the rows still kept.
type Delivery =
    { Inbound: int
      Acknowledged: int
      /// Inbound rows above the ack floor (all of them before the first ack): still queued on the platform.
      Queued: int
      AckedSeq: int64 option
      LastInboundAt: DateTimeOffset option }

/// Inbound rows: messages to the workspace from the user or another workspace (not its own notify or reports).
let isInbound (r: ActivityRow) =
    r.ActivityType = "a2a_receive" && r.Method <> Some "notify" && r.SourceId <> Some r.WorkspaceId

let delivery (floor: int64 option) (rows: ActivityRow seq) : Delivery =
    let inbound = rows |> Seq.filter isInbound |> List.ofSeq
    let acked = inbound |> List.filter (fun r -> floor |> Option.exists (fun f -> r.Seq <= f)) |> List.length

    { Inbound = inbound.Length
      Acknowledged = acked
      Queued = inbound.Length - acked
      AckedSeq = floor
      LastInboundAt = inbound |> List.tryLast |> Option.map (fun r -> r.CreatedAt) }

/// Seconds since `t` (never negative).
let ageSeconds (now: DateTimeOffset) (t: DateTimeOffset) : int64 =
    max 0L (int64 (now - t).TotalSeconds)

/// The overview of one workspace: the workspace view plus `last_seen_at`, `last_seen_seconds`, `silent`,
/// `live_tokens` and `delivery`.
let overview (now: DateTimeOffset) (w: Workspace) (liveTokens: int) (d: Delivery) : JsonObject =
    let o = Views.workspace w
    o["last_seen_at"] <- Wire.optTime w.LastHeartbeatAt

    o["last_seen_seconds"] <-
        match w.LastHeartbeatAt with
        | Some t -> Json.num64 (ageSeconds now t)
        | None -> null

    o["silent"] <-
        Json.bool (
            (w.Status = Status.Online || w.Status = Status.Degraded)
            && w.LastHeartbeatAt |> Option.forall (fun t -> now - t > silentAfter)
        )

    o["live_tokens"] <- Json.num liveTokens

    o["delivery"] <-
        Json.obj
            [ "inbound", Json.num d.Inbound
              "acknowledged", Json.num d.Acknowledged
              "queued", Json.num d.Queued
              "acked_seq", (match d.AckedSeq with Some s -> Json.num64 s | None -> null)
              "last_inbound_at", Wire.optTime d.LastInboundAt ]

    o

// ---------------------------------------------------------------- edits

/// PATCH /workspaces/:id: the fields given change; `role` or `description` "" clears it.
type Edit =
    { Name: string option
      Role: string option
      Skills: string list option
      Description: string option }

let parseEdit (body: JsonObject) : Result<Edit, Reply> =
    result {
        let! name = optString "name" body

        do!
            match name with
            | Some n when n.Trim() = "" -> Error(bad "name must not be empty")
            | Some n when n.Trim().Length > 200 -> Error(bad "name must be at most 200 characters")
            | _ -> Ok()

        let! role = optString "role" body
        let! skills = optStringList "skills" body
        let! description = optString "description" body

        do!
            if name.IsNone && role.IsNone && skills.IsNone && description.IsNone then
                Error(bad "nothing to change: give name, role, skills or description")
            else
                Ok()

        return
            { Name = name |> Option.map (fun n -> n.Trim())
              Role = role |> Option.map (fun r -> r.Trim())
              Skills = skills |> Option.map (List.map (fun s -> s.Trim()) >> List.filter ((<>) "") >> List.distinct)
              Description = description |> Option.map (fun d -> d.Trim()) }
    }

/// The workspace after an edit: name and role on the row, skills and description in the agent card.
let applyEdit (now: DateTimeOffset) (e: Edit) (w: Workspace) : Workspace =
    let card =
        w.AgentCard
        |> Option.bind Json.tryParseObject
        |> Option.defaultWith (fun () -> Json.obj [ "name", Json.str w.Name ])

    e.Skills
    |> Option.iter (fun s -> card["skills"] <- Json.arr (s |> List.map (fun x -> Json.obj [ "name", Json.str x ] :> JsonNode)))

    match e.Description with
    | Some "" -> card.Remove "description" |> ignore
    | Some d -> card["description"] <- Json.str d
    | None -> ()

    // the card's name follows the workspace name unless the agent gave it another one
    match e.Name, Json.prop "name" card |> Option.bind Json.asString with
    | Some n, Some old when old = w.Name -> card["name"] <- Json.str n
    | Some n, None -> card["name"] <- Json.str n
    | _ -> ()

    { w with
        Name = defaultArg e.Name w.Name
        Role =
            match e.Role with
            | Some "" -> None
            | Some r -> Some r
            | None -> w.Role
        AgentCard = Some(Json.compact card)
        UpdatedAt = now }

// ---------------------------------------------------------------- delegations

/// One delegation: who asked whom, what, and how it ended. `Mode` is "async" (the platform's /delegate) or "sync"
/// (an agent's delegate_task, from its own reports).
type DelegationView =
    { Id: string
      Mode: string
      SourceId: WorkspaceId
      TargetId: WorkspaceId option
      Task: string
      Status: string
      Result: string
      CreatedAt: DateTimeOffset
      UpdatedAt: DateTimeOffset }

let private bodyText (name: string) (s: string option) =
    s |> Option.bind Json.tryParseDecoded |> Option.bind (Json.prop name) |> Option.bind Json.asString |> Option.defaultValue ""

let private cut (s: string) = if s.Length > 300 then s.Substring(0, 299) + "…" else s

let private asyncViews (rows: ActivityRow list) : DelegationView list =
    let results =
        rows
        |> List.filter (fun r -> r.Method = Some "delegate_result")
        |> List.choose (fun r -> Feed.delegationOf r |> Option.map (fun d -> d, r))
        |> List.groupBy fst
        |> Map.ofList

    rows
    |> List.filter Delegations.isTracking
    |> List.map (fun t ->
        let later = results.TryFind(t.Id.Text) |> Option.defaultValue [] |> List.map snd |> List.sortBy Activity.orderKey

        let result =
            later
            |> List.filter (fun r -> r.ActivityType = "delegation")
            |> List.map (fun r -> match r.ErrorDetail with Some e -> e | None -> bodyText "text" r.ResponseBody)
            |> List.filter ((<>) "")
            |> List.tryLast
            |> Option.defaultValue ""

        { Id = t.Id.Text
          Mode = "async"
          SourceId = t.WorkspaceId
          TargetId = t.TargetId
          Task = cut (bodyText "task" t.RequestBody)
          // the result row's status (the tracking row is updated in place too, but may lag behind)
          Status =
            later
            |> List.filter (fun r -> r.ActivityType = "delegation")
            |> List.tryLast
            |> Option.map (fun r -> r.Status)
            |> Option.defaultValue t.Status
          Result = cut result
          CreatedAt = t.CreatedAt
          UpdatedAt = later |> List.tryLast |> Option.map (fun r -> r.CreatedAt) |> Option.defaultValue t.CreatedAt })

/// An agent's delegate_task leaves its own reports: `a2a_send` (the task) then an `a2a_receive` about the same peer
/// (the outcome). Each send is paired with the next outcome for that peer.
let private syncViews (rows: ActivityRow list) : DelegationView list =
    rows
    |> List.filter (fun r -> r.SourceId = Some r.WorkspaceId && (r.ActivityType = "a2a_send" || r.ActivityType = "a2a_receive") && r.Method <> Some "notify" && r.Method <> Some "delegate_result")
    |> List.groupBy (fun r -> r.WorkspaceId, r.TargetId)
    |> List.collect (fun (_, group) ->
        let sorted = group |> List.sortBy Activity.orderKey

        let rec pair (open': DelegationView list) (acc: DelegationView list) (rest: ActivityRow list) =
            match rest with
            | [] -> (List.rev acc) @ open'
            | r :: tail when r.ActivityType = "a2a_send" ->
                let v =
                    { Id = r.Id.Text
                      Mode = "sync"
                      SourceId = r.WorkspaceId
                      TargetId = r.TargetId
                      Task = cut (bodyText "task" r.RequestBody)
                      Status = "pending"
                      Result = ""
                      CreatedAt = r.CreatedAt
                      UpdatedAt = r.CreatedAt }

                pair (open' @ [ v ]) acc tail
            | r :: tail ->
                match open' with
                | [] -> pair open' acc tail
                | v :: others ->
                    let answer = bodyText "result" r.ResponseBody

                    let status =
                        if r.Status = "error" then "failed"
                        elif answer <> "" then "completed"
                        else "queued"

                    let result = if r.Status = "error" then defaultArg r.ErrorDetail "" else answer
                    pair others ({ v with Status = status; Result = cut result; UpdatedAt = r.CreatedAt } :: acc) tail

        pair [] [] sorted)

/// The rows a delegation view is made of: async delegations' rows and an agent's own reports of its sends and
/// their outcomes.
let isDelegationRow (r: ActivityRow) =
    r.ActivityType = "delegation"
    || (r.SourceId = Some r.WorkspaceId && (r.ActivityType = "a2a_send" || r.ActivityType = "a2a_receive"))

/// Every delegation once, newest first.
let delegations (rows: ActivityRow seq) : DelegationView list =
    let all = List.ofSeq rows
    asyncViews all @ syncViews all |> List.sortByDescending (fun v -> v.CreatedAt, v.Id)

let delegationJson (name: WorkspaceId -> string) (v: DelegationView) : JsonObject =
    Json.obj
        [ "delegation_id", Json.str v.Id
          "mode", Json.str v.Mode
          "source_id", Wire.idNode v.SourceId
          "source_name", Json.str (name v.SourceId)
          "target_id", Wire.optId v.TargetId
          "target_name", (match v.TargetId with Some t -> Json.str (name t) | None -> null)
          "task_preview", Json.str v.Task
          "status", Json.str v.Status
          "result_preview", Json.str (Feed.withNames name v.Result)
          "created_at", Wire.timeNode v.CreatedAt
          "updated_at", Wire.timeNode v.UpdatedAt ]
