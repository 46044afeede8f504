/// Who may talk to whom (CanCommunicate) and who is listed as a peer. Pure; the workspace set is an argument.
module Molecule.Platform.Hierarchy

open System

/// Maximum number of ancestor levels walked.
[<Literal>]
let MaxDepth = 32

let private parentOf (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : WorkspaceId option =
    match all.TryFind id with
    | Some w -> w.ParentId
    | None -> None

/// Ancestors of `id`, nearest first, at most MaxDepth levels (cycles cannot loop forever).
let ancestors (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : WorkspaceId list =
    let rec walk current depth acc =
        if depth >= MaxDepth then
            List.rev acc
        else
            match parentOf all current with
            | Some p when p <> id && not (List.contains p acc) -> walk p (depth + 1) (p :: acc)
            | _ -> List.rev acc

    walk id 0 []

/// The reference access rule: same id; siblings (same non-null parent); both roots; parent↔child;
/// ancestor↔descendant (≤ 32 levels). Status is not considered. Unknown ids only talk to themselves.
let canCommunicate (all: Map<WorkspaceId, Workspace>) (a: WorkspaceId) (b: WorkspaceId) : bool =
    if a = b then
        true
    else
        match all.TryFind a, all.TryFind b with
        | Some wa, Some wb ->
            match wa.ParentId, wb.ParentId with
            | Some pa, Some pb when pa = pb -> true
            | None, None -> true
            | _ ->
                wa.ParentId = Some b
                || wb.ParentId = Some a
                || List.contains a (ancestors all b)
                || List.contains b (ancestors all a)
        | _ -> false

/// Peers listed to `id`: siblings (or all other roots when root) + children + parent; never removed, never self.
let peers (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : Workspace list =
    match all.TryFind id with
    | None -> []
    | Some me ->
        all
        |> Map.toList
        |> List.map snd
        |> List.filter (fun w ->
            w.Id <> id
            && w.Status <> Status.Removed
            && (w.ParentId = me.ParentId // siblings, or both roots
                || w.ParentId = Some id // children
                || me.ParentId = Some w.Id)) // parent
        |> List.sortBy (fun w -> w.CreatedAt, w.Id)

/// Every descendant of `id` (any depth: not bounded by MaxDepth, so a cascade removal reaches the whole subtree),
/// excluding `id` itself. Walks children breadth-first; a visited set stops cycles.
let descendants (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : WorkspaceId list =
    let children =
        all
        |> Map.toList
        |> List.choose (fun (k, w) -> w.ParentId |> Option.map (fun p -> p, k))
        |> List.groupBy fst
        |> List.map (fun (p, ks) -> p, ks |> List.map snd)
        |> Map.ofList

    let rec walk (frontier: WorkspaceId list) (seen: Set<WorkspaceId>) (acc: WorkspaceId list) =
        match frontier with
        | [] -> List.rev acc
        | _ ->
            let next =
                frontier
                |> List.collect (fun f -> defaultArg (children.TryFind f) [])
                |> List.distinct
                |> List.filter (fun k -> not (seen.Contains k))

            walk next (Set.union seen (set next)) (List.rev next @ acc)

    walk [ id ] (Set.singleton id) []

/// Direct children that are not removed.
let liveChildren (all: Map<WorkspaceId, Workspace>) (id: WorkspaceId) : Workspace list =
    all
    |> Map.toList
    |> List.map snd
    |> List.filter (fun w -> w.ParentId = Some id && w.Id <> id && w.Status <> Status.Removed)
