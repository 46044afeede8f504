/// Memory routes: commit and recall.
module internal Molecule.Platform.Routes.MemoryRoutes

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

/// POST /workspaces/:id/memories: a memory (redacted); a GLOBAL one leaves an audit row.
let commitMemory (env: Env) (ctx: HttpContext) : Task<Reply> =
    gatedAsync strictLive env ctx (fun ws ->
        withJson ctx (fun body ->
            match Memories.parseCommit body |> Result.bind (Memories.commit (MemoryId(newGuid ())) (env.Now()) ws) with
            | Error e -> e
            | Ok m ->
                env.Store.Write(fun w ->
                    w.AddMemory m

                    if m.Scope = MemoryScope.Global then
                        insertQuiet
                            env
                            w
                            { Activity.row (newActivityId ()) m.CreatedAt ws.Id "memory_write_global" with
                                SourceId = Some ws.Id
                                Summary = Some(cap 256 m.Content)
                                RequestBody = Some(Json.compact (Json.obj [ "memory_id", Wire.idNode m.Id ])) }
                        |> ignore)

                Wire.reply 201 (Json.obj [ "id", Wire.idNode m.Id; "scope", Json.str (MemoryScope.text m.Scope); "namespace", Json.str m.Namespace ])))

/// The memories `me` recalls in a scope (None, or one the platform does not know: its own rows), matching `q`.
let recallFor (env: Env) (me: Workspace) (scope: MemoryScope option) (q: string option) (limit: int option) : Memory list =
    env.Store.Read(fun r ->
        let all = Store.team r
        r.Memories(Memories.selection all me scope) |> Memories.rank q limit)

/// GET /workspaces/:id/memories?scope=&q=&limit=.
let recallMemory (env: Env) (ctx: HttpContext) : Task<Reply> =
    strictHandler env ctx (fun ws ->
        let limit =
            match query ctx "limit" |> Option.map Int32.TryParse with
            | Some(true, n) -> Some n
            | _ -> None

        let q = query ctx "q" |> Option.filter (fun s -> s.Trim() <> "")
        let scope = query ctx "scope" |> Option.bind MemoryScope.tryParse
        recallFor env ws scope q limit |> List.map Memories.toJson |> Json.arr |> ok)
