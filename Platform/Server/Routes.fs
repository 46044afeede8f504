/// The route table and the request pipeline: which handler answers each method and pattern, behind which doors.
module internal Molecule.Platform.Routes.RouteTable

open System
open System.Net
open System.Net.NetworkInformation
open System.Net.Sockets
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Molecule.Platform
open Molecule.Platform.Routes
open Molecule.Platform.Routes.Env
open Molecule.Platform.Routes.Http

/// What the pipeline needs of the platform options: the listen address, the extra names, the fault routes switch.
type Options =
    { Host: string
      AllowedHosts: string list
      EnableFaults: bool }

/// The names of this machine: the listen address (unless a wildcard), the host name (also as `<name>.local`) and
/// every interface address (no DNS lookups: other names are given with `AllowedHosts`).
let private ownNames (listen: string) : string list =
    let wildcard = [ "0.0.0.0"; "::"; "[::]"; "*"; "+" ]

    let hostNames () =
        try
            let h = Dns.GetHostName()
            [ h; h + ".local" ]
        with :? SocketException ->
            []

    let addresses () =
        try
            [ for ni in NetworkInterface.GetAllNetworkInterfaces() do
                  for a in ni.GetIPProperties().UnicastAddresses do
                      a.Address.ToString().Split('%').[0] ]
        with :? NetworkInformationException ->
            []

    (if List.contains listen wildcard then [] else [ listen ]) @ hostNames () @ addresses ()

/// The routes: (method, pattern, handler).
let routeTable (env: Env) (enableFaults: bool) : (string * string * RequestDelegate) list =
    let json (f: HttpContext -> Task<Reply>) = handle f

    [ "GET", "/health", json (OperationsRoutes.health env)
      "GET", "/ready", json (OperationsRoutes.ready env)
      "GET", "/metrics", RequestDelegate(OperationsRoutes.metrics env)
      "POST", "/registry/register", json (RegistryRoutes.register env)
      "POST", "/registry/heartbeat", json (RegistryRoutes.heartbeat env)
      "POST", "/registry/update-card", json (TeamRoutes.updateCard env)
      "GET", "/registry/discover/{id}", json (RegistryRoutes.discover env)
      "GET", "/registry/{id}/peers", json (RegistryRoutes.peers env)
      "GET", "/workspaces/{id}", json (AdminRoutes.getWorkspace env)
      "PATCH", "/workspaces/{id}", json (ConsoleRoutes.editWorkspace env)
      "GET", "/workspaces/{id}/activity", json (ActivityRoutes.listActivity env)
      "POST", "/workspaces/{id}/activity", json (ActivityRoutes.postActivity env)
      "POST", "/workspaces/{id}/activity/ack", json (ActivityRoutes.ackActivity env)
      "GET", "/workspaces/{id}/mail/summary", json (ActivityRoutes.mailSummary env)
      "POST", "/workspaces/{id}/a2a", json (A2aRoutes.a2a env)
      "POST", "/workspaces/{id}/delegate", json (A2aRoutes.delegateTask env)
      "GET", "/workspaces/{id}/delegations", json (A2aRoutes.delegations env)
      "POST", "/workspaces/{id}/notify", json (TeamRoutes.notifyGated env)
      "POST", "/workspaces/{id}/broadcast", json (TeamRoutes.broadcast env)
      "PATCH", "/workspaces/{id}/abilities", json (TeamRoutes.patchAbilities env)
      "POST", "/workspaces/{id}/chat/uploads", json (FileRoutes.upload env)
      "GET", "/workspaces/{id}/chat/uploads/{file}", RequestDelegate(FileRoutes.download env)
      "GET", "/workspaces/{id}/pending-uploads/{file}/content", RequestDelegate(FileRoutes.pendingContent env)
      "POST", "/workspaces/{id}/pending-uploads/{file}/ack", json (FileRoutes.pendingAck env)
      "POST", "/workspaces/{id}/memories", json (MemoryRoutes.commitMemory env)
      "GET", "/workspaces/{id}/memories", json (MemoryRoutes.recallMemory env)
      "GET", "/workspaces/{id}/events/stream", RequestDelegate(StreamRoutes.workspaceStream env)
      "POST", "/workspaces/{id}/requests", json (RequestRoutes.create env)
      "GET", "/workspaces/{id}/requests", json (RequestRoutes.raised env)
      "GET", "/workspaces/{id}/requests/inbox", json (RequestRoutes.inbox env)
      "GET", "/workspaces/{id}/requests/{requestId}", json (RequestRoutes.thread env)
      "POST", "/workspaces/{id}/requests/{requestId}/respond", json (RequestRoutes.respond env)
      "POST", "/workspaces/{id}/requests/{requestId}/messages", json (RequestRoutes.message env)
      "POST", "/workspaces/{id}/requests/{requestId}/cancel", json (RequestRoutes.cancel env)
      "POST", "/workspaces/{id}/approvals", json (RequestRoutes.createApproval env)
      "GET", "/workspaces/{id}/approvals", json (RequestRoutes.listApprovals env)
      "POST", "/workspaces/{id}/approvals/{approvalId}/decide", json (RequestRoutes.decideApproval env)
      "POST", "/workspaces/{id}/approvals/{approvalId}/withdraw", json (RequestRoutes.withdrawApproval env)
      "POST", "/workspaces", json (AdminRoutes.createWorkspace env)
      "GET", "/workspaces", json (AdminRoutes.listWorkspaces env)
      "DELETE", "/workspaces/{id}", json (AdminRoutes.deleteWorkspace env)
      "POST", "/workspaces/{id}/tokens", json (AdminRoutes.mintToken env)
      "GET", "/workspaces/{id}/tokens", json (AdminRoutes.listTokens env)
      "DELETE", "/workspaces/{id}/tokens/{tokenId}", json (AdminRoutes.revokeToken env)
      "GET", "/admin/workspaces", json (ConsoleRoutes.overviewList env)
      "GET", "/admin/feed", json (ConsoleRoutes.feedView env)
      "GET", "/admin/delegations", json (ConsoleRoutes.delegationsView env)
      "GET", "/admin/memories", json (ConsoleRoutes.memoriesView env)
      "GET", "/admin/inbox", json (RequestRoutes.teamInbox env)
      "GET", "/admin/inbox/{requestId}", json (RequestRoutes.teamThread env)
      "POST", "/admin/inbox/{requestId}/respond", json (RequestRoutes.userRespond env)
      "POST", "/admin/inbox/{requestId}/messages", json (RequestRoutes.userMessage env)
      "GET", "/admin/approvals", json (RequestRoutes.teamApprovals env)
      "POST", "/admin/approvals/{approvalId}/decide", json (RequestRoutes.userDecideApproval env)
      // fault injection over HTTP only when asked for (tests); otherwise these paths fall through to 404
      if enableFaults then
          "POST", "/admin/faults", json (AdminRoutes.addFault env)
          "DELETE", "/admin/faults", json (AdminRoutes.clearFaults env)
          "POST", "/admin/faults/cut-streams", json (AdminRoutes.cutStreams env)
          "GET", "/admin/requests", json (AdminRoutes.requestCount env)
      "POST", "/admin/sweep", json (AdminRoutes.sweepNow env)
      "POST", "/admin/retention", json (AdminRoutes.retentionNow env)
      "GET", "/events", RequestDelegate(StreamRoutes.events env)
      "POST", "/admin/stream-ticket", json (StreamRoutes.streamTicket env) ]

/// Every route served, as ASP.NET routing has them: (method, pattern).
let servedRoutes (app: WebApplication) : (string * string) list =
    (app :> IEndpointRouteBuilder).DataSources
    |> Seq.collect (fun ds -> ds.Endpoints)
    |> Seq.choose (fun e ->
        match e with
        | :? RouteEndpoint as r -> Some r
        | _ -> None)
    |> Seq.collect (fun r ->
        match r.Metadata.GetMetadata<HttpMethodMetadata>() with
        | null -> [ "*", r.RoutePattern.RawText ]
        | m -> [ for v in m.HttpMethods -> v, r.RoutePattern.RawText ])
    |> List.ofSeq

/// The pipeline (errors, the doors, faults, limits) and the routes, then whatever `configure` adds.
let mapApp (app: WebApplication) (env: Env) (options: Options) (configure: WebApplication -> unit) =
    let names = Guard.Names.create (ownNames options.Host) options.AllowedHosts
    let step (f: HttpContext -> RequestDelegate -> Task) = app.Use(Func<HttpContext, RequestDelegate, Task>(f)) |> ignore
    step (OperationsRoutes.countRequests env)
    step (Middleware.errorMiddleware env.Log)
    step (Middleware.guardMiddleware names env.Log)
    step (fun ctx next -> Middleware.faultMiddleware env.Faults env.Stopping ctx next)
    step (Limits.middleware env)

    for (m, pattern, handler) in routeTable env options.EnableFaults do
        app.MapMethods(pattern, [| m |], handler) |> ignore

    app.MapFallback(RequestDelegate(fun ctx -> send ctx (Wire.errorReply 404 "not found"))) |> ignore
    configure app
