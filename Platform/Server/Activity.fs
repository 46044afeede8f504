/// Activity routes: the workspace activity feed and self-reports.
module internal Molecule.Platform.Routes.ActivityRoutes

open System
open System.IO
open System.Net
open System.Net.Http
open System.Security.Cryptography
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.AspNetCore.StaticFiles
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Hosting
open Molecule.Platform
open Molecule.Platform.Validation
open Molecule.Platform.Routes.Http

let listActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        match Activity.parseQuery (query ctx) with
        | Error e -> e
        | Ok q ->
            let rows = env.Store.Atomically(fun () -> List.ofSeq (env.Store.Activity w.Id))

            match Activity.select (env.Now()) w.Id rows q with
            | Error e -> e
            | Ok selected -> ok (Json.arr (selected |> List.map Views.activity)))

let postActivity (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        withJson ctx (fun body ->
            match Activity.report (newId ()) (env.Now()) w.Id body with
            | Error e -> e
            | Ok row ->
                env.Store.Atomically(fun () -> insertRow env row |> ignore)
                okStatus "logged"))
