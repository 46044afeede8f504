/// In-process broadcast of platform events: the admin canvas stream (GET /events) and the per-workspace
/// doorbell streams (GET /workspaces/:id/events/stream). On a store shared with other platform processes
/// (`relayed`), every event committed here also reaches their subscribers, whatever this process's are.
namespace Molecule.Platform

open System
open System.Collections.Generic
open System.Threading.Channels
module Json = Molecule.Protocol.Json

type EventHub(relayed: bool) =
    let gate = obj ()
    let subscribers = ResizeArray<Channel<PlatformEvent>>()
    let workspaceSubscribers = Dictionary<WorkspaceId, ResizeArray<Channel<PlatformEvent>>>()

    /// Capacity of a workspace stream's buffer; an event that finds it full is dropped for that subscriber.
    static member WorkspaceBuffer = 64

    member _.Publish(e: PlatformEvent) =
        let canvas, own =
            lock gate (fun () ->
                let canvas = if e.Audience <> WorkspaceOnly then List.ofSeq subscribers else []

                let own =
                    match e.WorkspaceId with
                    | Some id when e.Audience <> CanvasOnly ->
                        match workspaceSubscribers.TryGetValue id with
                        | true, l -> List.ofSeq l
                        | _ -> []
                    | _ -> []

                canvas, own)

        for s in canvas do
            s.Writer.TryWrite e |> ignore

        // non-blocking fan-out: a full buffer drops the event for that subscriber only
        for s in own do
            s.Writer.TryWrite e |> ignore

    /// The workspaces with an open stream in this process.
    member _.ListeningWorkspaces: WorkspaceId list = lock gate (fun () -> List.ofSeq workspaceSubscribers.Keys)

    /// The hub of a platform whose events stay in this process (one process on its store).
    new() = EventHub(false)

    /// True when a canvas stream (GET /events) may see this process's events: one is open here, or the events are
    /// relayed (another process's canvases are not counted here, so they are always assumed).
    member _.CanvasListening = relayed || lock gate (fun () -> subscribers.Count > 0)

    member _.Subscribe() : Channel<PlatformEvent> =
        let c =
            Channel.CreateBounded<PlatformEvent>(BoundedChannelOptions(1000, FullMode = BoundedChannelFullMode.DropOldest))

        lock gate (fun () -> subscribers.Add c)
        c

    member _.Unsubscribe(c: Channel<PlatformEvent>) =
        lock gate (fun () ->
            subscribers.Remove c |> ignore

            for kv in List.ofSeq workspaceSubscribers do
                if kv.Value.Remove c && kv.Value.Count = 0 then
                    workspaceSubscribers.Remove kv.Key |> ignore)

        c.Writer.TryComplete() |> ignore

    /// Events anchored on `workspaceId` only, buffered up to WorkspaceBuffer (newer events dropped when full).
    member _.SubscribeWorkspace(workspaceId: WorkspaceId) : Channel<PlatformEvent> =
        let c =
            Channel.CreateBounded<PlatformEvent>(
                BoundedChannelOptions(EventHub.WorkspaceBuffer, FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true)
            )

        lock gate (fun () ->
            match workspaceSubscribers.TryGetValue workspaceId with
            | true, l -> l.Add c
            | _ -> workspaceSubscribers[workspaceId] <- ResizeArray [ c ])

        c

    member _.CompleteAll() =
        lock gate (fun () ->
            for s in subscribers do
                s.Writer.TryComplete() |> ignore

            for l in workspaceSubscribers.Values do
                for s in l do
                    s.Writer.TryComplete() |> ignore

            subscribers.Clear()
            workspaceSubscribers.Clear())

[<CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module PlatformEvent =
    /// Canvas frame data: `{type, workspace_id, payload, at}`.
    let toJson (e: PlatformEvent) : string =
        Json.compact (
            Json.obj
                [ "type", Json.str e.Type
                  "workspace_id", Wire.optId e.WorkspaceId
                  "payload", e.Payload.DeepClone()
                  "at", Wire.timeNode e.At ]
        )

    /// Workspace-stream frame data: the AG-UI-style envelope `{type, timestamp (Unix ms), data}` (spec §1.1).
    let toEnvelope (e: PlatformEvent) : string =
        Json.compact (
            Json.obj
                [ "type", Json.str e.Type
                  "timestamp", Json.num64 (e.At.ToUnixTimeMilliseconds())
                  "data", e.Data.DeepClone() ]
        )
