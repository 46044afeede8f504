/// A model of the activity log for the delivery properties: rows indexed per workspace in (created_at, seq) order,
/// by id and by (workspace, message id), read by the pure `Activity.select`. The stores answer the same queries in
/// SQL (StoreTests check that they agree).
namespace Molecule.Tests.Platform

open Molecule.Platform

open System
open System.Collections.Generic

type ActivityIndex() =
    let byWorkspace = Dictionary<WorkspaceId, List<ActivityRow>>()
    let byId = Dictionary<ActivityId, ActivityRow>()
    let byMessage = Dictionary<struct (WorkspaceId * string), ActivityId>()
    static let empty = List<ActivityRow>()

    let listOf (ws: WorkspaceId) =
        match byWorkspace.TryGetValue ws with
        | true, l -> l
        | _ ->
            let l = List<ActivityRow>()
            byWorkspace[ws] <- l
            l

    /// Position of a row in its workspace's list (binary search on its order key), or -1.
    let positionOf (r: ActivityRow) =
        match byWorkspace.TryGetValue r.WorkspaceId with
        | true, l ->
            let key = Activity.orderKey r
            let i = Activity.firstIndex l (fun x -> compare (Activity.orderKey x) key >= 0)
            if i < l.Count && l[i].Id = r.Id then i else -1
        | _ -> -1

    let indexMessage (r: ActivityRow) =
        match r.MessageId with
        | Some m -> byMessage[struct (r.WorkspaceId, m)] <- r.Id
        | None -> ()

    let unindexMessage (r: ActivityRow) =
        match r.MessageId with
        | Some m -> byMessage.Remove(struct (r.WorkspaceId, m)) |> ignore
        | None -> ()

    /// A workspace's rows in (created_at, seq) order (a live view: read it under the store lock).
    member _.Rows(ws: WorkspaceId) : IReadOnlyList<ActivityRow> =
        match byWorkspace.TryGetValue ws with
        | true, l -> l :> _
        | _ -> empty :> _

    /// The newest row of a workspace.
    member _.Last(ws: WorkspaceId) : ActivityRow option =
        match byWorkspace.TryGetValue ws with
        | true, l when l.Count > 0 -> Some l[l.Count - 1]
        | _ -> None

    member _.Find(id: ActivityId) : ActivityRow option =
        match byId.TryGetValue id with
        | true, r -> Some r
        | _ -> None

    member this.FindByMessage(ws: WorkspaceId, messageId: string) : ActivityRow option =
        match byMessage.TryGetValue(struct (ws, messageId)) with
        | true, id -> this.Find id
        | _ -> None

    member _.Count = byId.Count

    /// Adds a row at its place in the order (the end, for a row admitted by Activity.admit).
    member _.Add(r: ActivityRow) =
        let l = listOf r.WorkspaceId
        let key = Activity.orderKey r

        if l.Count = 0 || compare (Activity.orderKey l[l.Count - 1]) key < 0 then
            l.Add r
        else
            l.Insert(Activity.firstIndex l (fun x -> compare (Activity.orderKey x) key > 0), r)

        byId[r.Id] <- r
        indexMessage r

    /// Replaces a row by id (same order key).
    member _.Replace(r: ActivityRow) =
        match byId.TryGetValue r.Id with
        | true, old ->
            let i = positionOf old

            if i >= 0 then
                byWorkspace[old.WorkspaceId][i] <- r
                byId[r.Id] <- r
                unindexMessage old
                indexMessage r
        | _ -> ()

    member _.Remove(id: ActivityId) =
        match byId.TryGetValue id with
        | true, r ->
            let i = positionOf r
            if i >= 0 then byWorkspace[r.WorkspaceId].RemoveAt i
            byId.Remove id |> ignore
            unindexMessage r
        | _ -> ()

    /// Every row matching `pred`, over all workspaces.
    member _.Where(pred: ActivityRow -> bool) : ActivityRow list =
        [ for l in byWorkspace.Values do
              for r in l do
                  if pred r then yield r ]

    /// Removes every row whose id is in `ids` (one pass per workspace).
    member _.RemoveAll(ids: HashSet<ActivityId>) =
        for l in byWorkspace.Values do
            l.RemoveAll(fun r -> ids.Contains r.Id) |> ignore

        for id in ids do
            match byId.TryGetValue id with
            | true, r ->
                byId.Remove id |> ignore
                unindexMessage r
            | _ -> ()
