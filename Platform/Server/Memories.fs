/// Memory routes: commit and recall.
module internal Molecule.Platform.Routes.MemoryRoutes

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
module Json = Molecule.Protocol.Json

let commitMemory (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun w ->
        withJson ctx (fun body ->
            match Memories.parseCommit body with
            | Error e -> e
            | Ok c ->
                match Memories.commit (newId ()) (env.Now()) w c with
                | Error e -> e
                | Ok m ->
                    env.Store.Transaction(fun () ->
                        env.Store.InsertMemory m

                        if m.Scope = "GLOBAL" then
                            insertQuiet
                                env
                                { Activity.row (newId ()) m.CreatedAt w.Id "memory_write_global" with
                                    SourceId = Some w.Id
                                    Summary = Some(cap 256 m.Content)
                                    RequestBody = Some(Json.compact (Json.obj [ "memory_id", Wire.guidNode m.Id ])) }
                            |> ignore)

                    Wire.reply 201 (Json.obj [ "id", Wire.guidNode m.Id; "scope", Json.str m.Scope; "namespace", Json.str m.Namespace ])))

let recallMemory (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun w ->
        let limit =
            match query ctx "limit" with
            | Some s ->
                match Int32.TryParse s with
                | true, n -> Some n
                | _ -> None
            | None -> None

        let q = query ctx "q" |> Option.filter (fun s -> s.Trim() <> "")
        let scope = query ctx "scope" |> Option.filter (fun s -> s.Trim() <> "")

        env.Store.Atomically(fun () ->
            Memories.recall env.Store.Workspaces w scope q limit env.Store.Memories
            |> List.map Memories.toJson
            |> Json.arr
            |> ok))
