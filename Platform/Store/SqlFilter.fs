/// The WHERE clauses of the store's activity queries, with their parameters.
module Molecule.Platform.SqlFilter

open System
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.SqlCodec

/// `@p0, @p1, …` for a list of values, with their parameters.
let inList (prefix: string) (values: obj list) : string * (string * obj) list =
    let names = values |> List.mapi (fun i _ -> $"@{prefix}{i}")
    String.Join(",", names), List.zip names values

/// The WHERE clause and parameters of GET /workspaces/:id/activity: Activity.select's filters, stated in SQL.
let pageFilter (ws: WorkspaceId) (q: Activity.Query) (source: Activity.SourceFilter option) (cursor: ActivityRow option) (now: DateTimeOffset) =
    [ Some("workspace_id = @ws", [ "@ws", idText ws ])
      q.Type |> Option.map (fun t -> "activity_type = @type", [ "@type", box t ])
      source
      |> Option.map (fun s ->
          match s with
          | Activity.Canvas -> "source_id IS NULL", []
          | Activity.Agent -> "source_id IS NOT NULL", [])
      q.PeerId |> Option.map (fun p -> "(source_id = @peer OR target_id = @peer)", [ "@peer", idText p ])
      q.SinceSecs
      |> Option.map (fun secs -> "created_at >= @lower", [ "@lower", ticks (Activity.ago now (TimeSpan.FromSeconds(float secs))) ])
      q.BeforeTs |> Option.map (fun b -> "created_at < @before", [ "@before", ticks b ])
      cursor
      |> Option.map (fun c ->
          "created_at >= @cts AND (created_at > @cts OR seq > @cseq)", [ "@cts", ticks c.CreatedAt; "@cseq", box c.Seq ]) ]
    |> List.choose id
    |> fun parts -> String.Join(" AND ", parts |> List.map fst), parts |> List.collect snd

/// The WHERE clause and parameters of a RowQuery.
let rowFilter (q: RowQuery) =
    let scope =
        match q.Scope with
        | LogOf ws -> Some("workspace_id = @ws", [ "@ws", idText ws ])
        | Involving ws -> Some("(workspace_id = @ws OR source_id = @ws OR target_id = @ws)", [ "@ws", idText ws ])
        | AllLogs -> None

    let types =
        match q.Types with
        | [] -> None
        | ts ->
            let names, ps = inList "t" (ts |> List.map box)
            Some($"activity_type IN ({names})", ps)

    let after = q.AfterSeq |> Option.map (fun s -> "seq > @after", [ "@after", box s ])

    match List.choose id [ scope; types; after ] with
    | [] -> "1 = 1", []
    | parts -> String.Join(" AND ", parts |> List.map fst), parts |> List.collect snd
