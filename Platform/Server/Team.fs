/// Team routes of the reference at CORE@0520 (addendum §7.1–7.5): POST /registry/update-card, POST
/// /workspaces/:id/broadcast, PATCH /workspaces/:id/abilities (admin) and the talk_to_user gate on notify.
module internal Molecule.Platform.Routes.TeamRoutes

open System
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http
open Molecule.Platform.Routes.Gates
open Molecule.Platform.Routes.Publish
module Json = Molecule.Protocol.Json

/// PATCH /workspaces/:id/abilities (admin).
let patchAbilities (env: Env) (ctx: HttpContext) : Task<Reply> =
    task {
        match adminGate env ctx, routeId ctx with
        | Error e, _ -> return e
        | Ok(), None -> return invalidId
        | Ok(), Some id ->
            match! readJson ctx with
            | Error _ -> return bad "invalid request body"
            | Ok body ->
                match Team.parsePatch body with
                | Error e -> return e
                | Ok change ->
                    return
                        env.Store.Write(fun w ->
                            match w.Workspace id with
                            | None -> notFound
                            | Some _ ->
                                w.SetAbilities(id, change (w.Abilities id), env.Now())
                                okStatus "updated")
    }

/// POST /registry/update-card `{"workspace_id", "agent_card"}`: the registry's token gate, then the card replaced.
let updateCard (env: Env) (ctx: HttpContext) : Task<Reply> =
    withJson ctx (fun body ->
        match Json.prop "workspace_id" body |> Option.bind Json.asString |> Option.bind parseWorkspaceId, Json.prop "agent_card" body with
        | Some id, Some card ->
            env.Store.Write(fun w ->
                match registryGate env w Auth.missingToken Auth.invalidToken id (bearer ctx), w.Workspace id with
                | Error e, _ -> e
                | Ok _, None -> notFound
                | Ok _, Some ws when ws.Status = Status.Removed -> Views.removed ws
                | Ok principal, Some ws ->
                    touchIn env w principal
                    w.SaveWorkspace { ws with AgentCard = Some(Json.compact card); UpdatedAt = env.Now() }
                    announce env w (Announcements.plain "AGENT_CARD_UPDATED" (Some id) [ "agent_card", Json.clone card ])
                    okStatus "updated")
        | _ -> bad "invalid request body")

/// POST /workspaces/:id/broadcast `{"message"}`: every other live workspace of the organisation gets a
/// `broadcast_receive` row; the sender a `broadcast_sent` one.
let broadcast (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strict env ctx (fun (id, ws) ->
        withJson ctx (fun body ->
            match ws, Json.prop "message" body |> Option.bind Json.asString with
            | None, _ -> notFound
            | Some w, _ when w.Status = Status.Removed -> notFound
            | _, None -> bad "message is required"
            | _, Some m when String.IsNullOrWhiteSpace m -> bad "message is required"
            | Some sender, Some message ->
                env.Store.Write(fun w ->
                    if not (w.Abilities id).BroadcastEnabled then
                        Team.broadcastDisabled
                    else
                        let now = env.Now()
                        let targets = Team.recipients (Store.team w) id
                        let summary = Team.broadcastSummary (if sender.Name = "" then id.Text else sender.Name) message
                        let body = Json.compact (Json.obj [ "message", Json.str message ])

                        for t in targets do
                            insertQuiet
                                env
                                w
                                { Activity.row (newActivityId ()) now t.Id "broadcast_receive" with
                                    SourceId = Some id
                                    TargetId = Some t.Id
                                    Method = Some "broadcast"
                                    Summary = Some summary
                                    RequestBody = Some body }
                            |> ignore

                        insertQuiet
                            env
                            w
                            { Activity.row (newActivityId ()) now id "broadcast_sent" with
                                SourceId = Some id
                                Method = Some "broadcast"
                                Summary = Some $"Broadcast sent to {targets.Length} workspace(s)"
                                RequestBody = Some body }
                        |> ignore

                        ok (Json.obj [ "status", Json.str "sent"; "delivered", Json.num targets.Length ]))))

/// POST /workspaces/:id/notify behind the talk_to_user ability (403 `talk_to_user_disabled` when an admin turned it off).
let notifyGated (env: Env) (ctx: HttpContext) : Task<Reply> =
    match strict env ctx with
    | Ok(id, Some _) when not (env.Store.Read(fun r -> r.Abilities id)).TalkToUserEnabled -> Task.FromResult Team.talkToUserDisabled
    | _ -> A2aRoutes.notify env ctx
