/// The admin's decisions about workspaces: creating one (the request, its parent, its first row) and removing one
/// with its descendants. Pure: ids, time, the fresh secret and the stored workspaces are arguments.
module Molecule.Platform.Workspaces

open System
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

// ---------------------------------------------------------------- create

/// POST /workspaces: `{name, role?, parent_id?, skills?, tier?, description?, delivery_mode?, platform_url?}`.
type NewWorkspace =
    { Name: string
      Role: string option
      Parent: WorkspaceId option
      Skills: string list
      Tier: int option
      Description: string option
      Mode: DeliveryMode
      /// `platform_url` as given (checked by Connection.platformUrl).
      PlatformUrl: string option }

/// The body → a request, or the 400 naming the first bad field.
let parseCreate (body: JsonObject) : Result<NewWorkspace, Reply> =
    result {
        let! name = reqString "name" body

        do!
            if name.Length > 200 then
                Error(bad "name must be at most 200 characters")
            else
                Ok()

        let! role = optString "role" body
        let! parent = optWorkspaceId "parent_id" body
        let! skills = optStringList "skills" body
        let! tier = optInt "tier" body

        do!
            match tier with
            | Some t when t < 0 || t > 10 -> Error(bad "tier must be an integer between 0 and 10")
            | _ -> Ok()

        let! description = optString "description" body
        let! mode = optString "delivery_mode" body

        let! mode =
            match mode with
            | None -> Ok DeliveryMode.Poll
            | Some m ->
                match DeliveryMode.tryParse m with
                | Some d -> Ok d
                | None -> Error(bad DeliveryMode.invalid)

        let! platformUrl = optString "platform_url" body

        return
            { Name = name.Trim()
              Role = role
              Parent = parent
              Skills = defaultArg skills []
              Tier = tier
              Description = description
              Mode = mode
              PlatformUrl = platformUrl }
    }

let parentMissing = "parent_id: workspace not found"
let parentRemoved = "parent_id: workspace is removed"

/// The new workspace: awaiting its agent, tier 0 for a root and 1 for a child unless given, its card from the name,
/// skills and description, its inbound secret issued. Only under a parent that exists and is not removed
/// (`parent` is the stored row of `req.Parent`).
let create (id: WorkspaceId) (now: DateTimeOffset) (secret: string) (parent: Workspace option) (req: NewWorkspace) : Result<Workspace, Reply> =
    let parentOk =
        match req.Parent, parent with
        | None, _ -> Ok()
        | Some _, None -> Error(bad parentMissing)
        | Some _, Some p when p.Status = Status.Removed -> Error(bad parentRemoved)
        | Some _, Some _ -> Ok()

    parentOk
    |> Result.map (fun () ->
        { Workspace.fresh id now with
            Name = req.Name
            Role = req.Role |> Option.filter (fun r -> r.Trim() <> "")
            Tier = defaultArg req.Tier (if req.Parent.IsNone then 0 else 1)
            Status = Status.AwaitingAgent
            AgentCard = Some(Views.cardOf req.Name req.Skills req.Description)
            ParentId = req.Parent
            DeliveryMode = req.Mode
            InboundSecret = Some secret })

/// `WORKSPACE_CREATED` with `{workspace}`.
let created (w: Workspace) : Announcement =
    Announcements.plain "WORKSPACE_CREATED" (Some w.Id) [ "workspace", Views.workspace w ]

/// The 201 answer: the workspace, its token (shown once), where to connect and the connection lines.
let createdReply (w: Workspace) (token: string) (platformUrl: string) (lines: JsonNode) : Reply =
    let o = Views.workspace w
    o["auth_token"] <- Json.str token
    o["workspace_id"] <- Wire.idNode w.Id
    o["platform_url"] <- Json.str platformUrl

    o["connection"] <-
        Json.obj
            [ "workspace_id", Wire.idNode w.Id
              "auth_token", Json.str token
              "platform_url", Json.str platformUrl ]

    o["message"] <- Json.str Connection.shownOnce
    o["connection_lines"] <- lines
    Wire.reply 201 o

// ---------------------------------------------------------------- remove

/// What a removal does: the rows to save (each removed), what they announce, and the ids whose tokens are revoked
/// (the root and every descendant, removed before or not).
type Removal =
    { Removed: Workspace list
      Announcements: Announcement list
      Revoke: WorkspaceId list
      Reply: Reply }

let private confirmation (children: Workspace list) : Reply =
    Wire.reply
        409
        (Json.obj
            [ "status", Json.str "confirmation_required"
              "message", Json.str "workspace has live children; repeat with ?confirm=true to remove it and all descendants"
              "children", Json.arr (children |> List.map (fun c -> Json.obj [ "id", Wire.idNode c.Id; "name", Json.str c.Name ] :> JsonNode))
              "children_count", Json.num children.Length ])

/// DELETE /workspaces/:id: with live children only when confirmed (else 409 naming them); the workspace and every
/// descendant become removed (those not removed yet announce WORKSPACE_REMOVED: the root's stream says how many went
/// with it, the descendants' `{}`), and all their tokens are revoked. None when the workspace does not exist.
let remove (now: DateTimeOffset) (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) (confirmed: bool) : Result<Removal, Reply> option =
    match all.TryFind id with
    | None -> None
    | Some _ ->
        let children = Hierarchy.liveChildren all id

        if not children.IsEmpty && not confirmed then
            Some(Error(confirmation children))
        else
            let descendants = Hierarchy.descendants all id
            let targets = id :: descendants

            let removed =
                targets
                |> List.choose all.TryFind
                |> List.filter (fun w -> w.Status <> Status.Removed)
                |> List.map (fun w -> { w with Status = Status.Removed; UpdatedAt = now })

            let announce (w: Workspace) =
                let data = if w.Id = id then Json.obj [ "cascade_deleted", Json.num descendants.Length ] else Json.obj []
                Announcements.event Everyone "WORKSPACE_REMOVED" (Some w.Id) [ "status", Json.str (Status.text Status.Removed) ] data

            Some(
                Ok
                    { Removed = removed
                      Announcements = removed |> List.map announce
                      Revoke = targets
                      Reply =
                        Wire.reply
                            200
                            (Json.obj
                                [ "status", Json.str "removed"
                                  "id", Wire.idNode id
                                  "cascade_deleted", Json.num descendants.Length ]) }
            )
