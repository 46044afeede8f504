/// The registry's decisions: what a register and a heartbeat change, what they announce and what they answer.
/// Pure: time, the fresh secret and the workspace as stored are arguments; the token gate has already passed.
module Molecule.Platform.Registry

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- register

/// A register request: `{id, agent_card, delivery_mode?, url?}`.
type Registration =
    { Id: WorkspaceId
      Card: JsonObject
      Mode: DeliveryMode option
      Url: string option }

/// The body → a registration, or the 400 naming the first problem (id, agent_card, delivery_mode).
let parseRegistration (body: JsonObject) : Result<Registration, Reply> =
    result {
        let! idText =
            match Json.prop "id" body |> Option.bind Json.asString with
            | Some s when s <> "" -> Ok s
            | _ -> Error(bad "invalid request body: id is required")

        let! id =
            match parseWorkspaceId idText with
            | Some id -> Ok id
            | None -> Error(bad "invalid request body: id must be a valid UUID")

        let! card =
            match Json.prop "agent_card" body with
            | Some(:? JsonObject as c) -> Ok c
            | Some _ -> Error(bad "invalid request body: agent_card must be an object")
            | None -> Error(bad "invalid request body: agent_card is required")

        let! mode = optString "delivery_mode" body

        let! mode =
            match mode with
            | None
            | Some "" -> Ok None
            | Some m ->
                match DeliveryMode.tryParse m with
                | Some d -> Ok(Some d)
                | None -> Error(bad DeliveryMode.invalid)

        let! url = optString "url" body

        return
            { Id = id
              Card = card
              Mode = mode
              Url = url |> Option.filter (fun u -> u.Trim() <> "") }
    }

let badUrl = "url must be an absolute http(s) URL"
let urlRequired = "url is required for push delivery"

/// The URL a workspace is reached at: an absolute http(s) URL, required for push; a poll workspace keeps none.
let deliveryUrl (mode: DeliveryMode) (url: string option) : Result<string option, Reply> =
    match url with
    | Some u ->
        match Uri.TryCreate(u, UriKind.Absolute) with
        | true, uri when uri.Scheme = "http" || uri.Scheme = "https" -> Ok(if mode = DeliveryMode.Poll then None else Some u)
        | _ -> Error(bad badUrl)
    | None when mode = DeliveryMode.Push -> Error(bad urlRequired)
    | None -> Ok None

/// What a register that passed the gate does.
type Registered =
    {
        /// The workspace as it is now (a removed one: as it was).
        Workspace: Workspace
        /// Save it (never for a removed workspace).
        Save: bool
        /// Mint a token and hand it over (the workspace has no live token and is not removed).
        MintToken: bool
        Announcement: Announcement
    }

/// `WORKSPACE_ONLINE`: canvas `{url, agent_card, delivery_mode, status}`, stream `{agent_card, delivery_mode, url}`.
let online (w: Workspace) : Announcement =
    let fields () =
        [ "url", Json.str (defaultArg w.Url "")
          "agent_card", Json.raw (defaultArg w.AgentCard "{}")
          "delivery_mode", Json.str (DeliveryMode.text w.DeliveryMode) ]

    Announcements.event Everyone "WORKSPACE_ONLINE" (Some w.Id) (fields () @ [ "status", Json.str (Status.text w.Status) ]) (Json.sorted (fields ()))

/// A register: the mode given (else the stored one, else poll), its URL, the card merged (stored skills kept), online,
/// the inbound secret issued once (`freshSecret` when there is none yet). An unknown id (open registration) becomes
/// a tier-1 root named by its id. A removed workspace is left as it is and gets no token.
let register (now: DateTimeOffset) (freshSecret: string) (existing: Workspace option) (hasLiveToken: bool) (r: Registration) : Result<Registered, Reply> =
    let mode =
        r.Mode
        |> Option.orElse (existing |> Option.map (fun w -> w.DeliveryMode))
        |> Option.defaultValue DeliveryMode.Poll

    match deliveryUrl mode r.Url with
    | Error e -> Error e
    | Ok url ->
        match existing with
        | Some w when w.Status = Status.Removed ->
            Ok { Workspace = w; Save = false; MintToken = false; Announcement = online w }
        | _ ->
            let w =
                match existing with
                | Some w ->
                    { w with
                        Url = url
                        AgentCard = Some(Views.mergeCard w.AgentCard r.Card)
                        Status = Liveness.statusAfterRegister w.Status
                        LastHeartbeatAt = Some now
                        DeliveryMode = mode
                        UpdatedAt = now }
                | None ->
                    { Workspace.fresh r.Id now with
                        Name = r.Id.Text
                        Tier = 1
                        Status = Status.Online
                        AgentCard = Some(Views.mergeCard None r.Card)
                        Url = url
                        DeliveryMode = mode
                        LastHeartbeatAt = Some now }

            let w = if w.InboundSecret.IsSome then w else { w with InboundSecret = Some freshSecret }
            Ok { Workspace = w; Save = true; MintToken = not hasLiveToken; Announcement = online w }

/// `{status: "registered", delivery_mode, auth_token?, platform_inbound_secret?}`.
let registeredReply (w: Workspace) (token: string option) : Reply =
    let o = Json.obj [ "status", Json.str "registered"; "delivery_mode", Json.str (DeliveryMode.text w.DeliveryMode) ]
    token |> Option.iter (fun t -> o["auth_token"] <- Json.str t)
    w.InboundSecret |> Option.iter (fun s -> o["platform_inbound_secret"] <- Json.str s)
    Wire.reply 200 o

// ---------------------------------------------------------------- heartbeat

/// The body → (workspace id, heartbeat), or the 400 naming the field. Negative counts become 0.
let parseHeartbeat (body: JsonObject) : Result<WorkspaceId * Liveness.HeartbeatInput, Reply> =
    result {
        let! idText = reqString "workspace_id" body

        let! id =
            match parseWorkspaceId idText with
            | Some id -> Ok id
            | None -> Error(bad "workspace_id must be a valid UUID")

        let! er = optFloat "error_rate" body
        let! se = optString "sample_error" body
        let! at = optInt "active_tasks" body
        let! up = optInt "uptime_seconds" body
        let! ct = optString "current_task" body
        let! rs = optString "runtime_state" body

        return
            id,
            ({ ErrorRate = defaultArg er 0.0
               SampleError = defaultArg se ""
               ActiveTasks = max 0 (defaultArg at 0)
               UptimeSeconds = max 0 (defaultArg up 0)
               CurrentTask = defaultArg ct ""
               RuntimeState = defaultArg rs "" }
            : Liveness.HeartbeatInput)
    }

/// A heartbeat: the workspace after it (Liveness.heartbeat) and what it announces — `WORKSPACE_<STATUS>` when the
/// status changed, `TASK_UPDATED` when the current task did, and always `WORKSPACE_HEARTBEAT`. A removed workspace
/// is unchanged and announces nothing (None: nothing to save).
let heartbeat (now: DateTimeOffset) (hb: Liveness.HeartbeatInput) (w: Workspace) : (Workspace * Announcement list) option =
    if w.Status = Status.Removed then
        None
    else
        let u = Liveness.heartbeat now hb w
        let task () = [ "current_task", Json.str u.CurrentTask ]
        let load () = [ "active_tasks", Json.num u.ActiveTasks ]
        let uptime () = [ "uptime_seconds", Json.num u.UptimeSeconds ]

        Some(
            u,
            [ if u.Status <> w.Status then
                  Announcements.statusChanged u.Id u.Status
              if u.CurrentTask <> w.CurrentTask then
                  Announcements.event Everyone "TASK_UPDATED" (Some u.Id) (task ()) (Json.sorted (task () @ load ()))
              Announcements.event
                  Everyone
                  "WORKSPACE_HEARTBEAT"
                  (Some u.Id)
                  ([ "status", Json.str (Status.text u.Status) ] @ load () @ uptime ())
                  (Json.sorted (load () @ uptime ())) ]
        )

/// `{status: "ok", platform_inbound_secret?}`.
let heartbeatReply (w: Workspace) : Reply =
    let o = Json.obj [ "status", Json.str "ok" ]
    w.InboundSecret |> Option.iter (fun s -> o["platform_inbound_secret"] <- Json.str s)
    Wire.reply 200 o
