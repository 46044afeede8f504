/// The requests tools (delivery spec §7.1): create_request (and create_approval), list_requests, get_request,
/// respond_to_request, add_request_message, cancel_request. The answers are the platform's JSON; the decision or a
/// question about a request comes back later as a `request_update` inbox message.
module Molecule.Core.RequestTools

open System
open System.Text.Json.Nodes
open Molecule.Protocol
open Molecule.Core.ToolKit

/// The one line a platform without the requests routes gets (`route`: method and path that answered 404).
let noInbox (route: string) =
    $"Error: this platform has no requests inbox (HTTP 404 on {route}); ask the user with send_message_to_user instead."

/// A 404 of the requests routes names the request (`request not found`, `… or already resolved`); any other 404 is a
/// platform that does not serve them.
let isRouteMissing (status: int) (body: string) =
    status = 404 && not ((platformMessage body).Contains("request", StringComparison.OrdinalIgnoreCase))

/// `POST /workspaces/…/requests` — how a line names the route (the path only: never the host or a query).
let routeOf (req: Request) =
    let path =
        match Uri.TryCreate(req.Url, UriKind.Absolute) with
        | true, uri -> uri.AbsolutePath
        | _ -> "the requests route"
    let verb =
        match req.Method with
        | Get -> "GET"
        | Post -> "POST"
        | Delete -> "DELETE"
    $"{verb} {path}"

/// One request of a requests tool: its 2xx body, or the call ends with why not.
let private ask (ctx: ToolContext) (what: string) (req: Request) : Program<Result<string, ToolOutput>> =
    program {
        let! status, body = call ctx req
        if isRouteMissing status body then do! refuse (noInbox (routeOf req))
        if not (is2xx status) then do! refuse $"Error: {what} failed: {httpDetail status body}"
        return body
    }

/// The platform's answer as compact JSON when it is an object (or an array, `list`); else the call fails.
let private jsonAnswer (what: string) (list: bool) (body: string) : ToolOutput =
    match Json.tryParse body with
    | Some(:? JsonArray as a) when list -> ok (Json.compact a)
    | Some(:? JsonObject as o) when not list -> ok (Json.compact o)
    | _ ->
        let shape = if list then "list" else "object"
        failure $"Error: {what}: the platform's answer is not a JSON {shape}: {short body}"

/// Where the answer to a request will come from.
let followUp =
    "The answer arrives in your inbox as a request_update message (pushed when your host shows channel events); get_request shows it and the thread meanwhile."

let private created (r: NewRequest) (body: string) : ToolOutput =
    match Json.tryParse body |> Option.bind (Json.stringProp "request_id") |> Option.filter (isBlank >> not) with
    | None -> failure $"Error: create_request: the platform's answer has no request_id: {short body}"
    | Some rid ->
        let status = Json.tryParse body |> Option.bind (Json.stringProp "status") |> Option.defaultValue "pending"
        let recipient =
            match r.Recipient with
            | ToUser -> "user"
            | ToAgent ws -> ws.Value
        Json.obj
            [ "request_id", Json.str rid
              "status", Json.str status
              "kind", Json.str (Api.requestKindName r.Kind)
              "recipient", Json.str recipient
              "note", Json.str followUp ]
        |> Json.compact
        |> ok

/// The request with its title, detail and priority redacted of secret shapes (it is shown to people and agents).
let private redacted (r: NewRequest) : NewRequest =
    { r with
        Title = Secrets.redact r.Title
        Detail = r.Detail |> Option.map Secrets.redact }

let createRequest (ctx: ToolContext) (r: NewRequest) : Program<ToolOutput> =
    platform ctx (program {
        match r.Recipient with
        | ToAgent ws when ws = ctx.Config.WorkspaceId ->
            return failure "Error: a request cannot be addressed to this workspace itself."
        | _ ->
            let! body = ask ctx "create_request" (Api.createRequest ctx.Config (redacted r) [])
            return created r body
    })

let listRequests (ctx: ToolContext) (box: RequestBox) (status: string option) : Program<ToolOutput> =
    platform ctx (program {
        let! body = ask ctx "list_requests" (Api.listRequests ctx.Config box status)
        return jsonAnswer "list_requests" true body
    })

let getRequest (ctx: ToolContext) (rid: RequestId) : Program<ToolOutput> =
    platform ctx (program {
        let! body = ask ctx "get_request" (Api.getRequest ctx.Config rid)
        return jsonAnswer "get_request" false body
    })

let respondToRequest (ctx: ToolContext) (rid: RequestId) (action: RequestAction) : Program<ToolOutput> =
    platform ctx (program {
        let! body = ask ctx "respond_to_request" (Api.respondToRequest ctx.Config rid action)
        return jsonAnswer "respond_to_request" false body
    })

let addRequestMessage (ctx: ToolContext) (rid: RequestId) (text: string) : Program<ToolOutput> =
    platform ctx (program {
        let! body = ask ctx "add_request_message" (Api.addRequestMessage ctx.Config rid (Secrets.redact text))
        return jsonAnswer "add_request_message" false body
    })

let cancelRequest (ctx: ToolContext) (rid: RequestId) : Program<ToolOutput> =
    platform ctx (program {
        let! body = ask ctx "cancel_request" (Api.cancelRequest ctx.Config rid)
        return jsonAnswer "cancel_request" false body
    })
