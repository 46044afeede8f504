/// In-process broadcast of platform events (for the SSE stream GET /events).
namespace Molecule.Platform

open System
open System.Threading.Channels
open System.Text.Json.Nodes

type PlatformEvent =
    { Type: string
      WorkspaceId: Guid option
      Payload: JsonObject
      At: DateTimeOffset }

type EventHub() =
    let gate = obj ()
    let subscribers = ResizeArray<Channel<PlatformEvent>>()

    member _.Publish(e: PlatformEvent) =
        let subs = lock gate (fun () -> List.ofSeq subscribers)

        for s in subs do
            s.Writer.TryWrite e |> ignore

    member _.Subscribe() : Channel<PlatformEvent> =
        let c =
            Channel.CreateBounded<PlatformEvent>(BoundedChannelOptions(1000, FullMode = BoundedChannelFullMode.DropOldest))

        lock gate (fun () -> subscribers.Add c)
        c

    member _.Unsubscribe(c: Channel<PlatformEvent>) =
        lock gate (fun () -> subscribers.Remove c |> ignore)
        c.Writer.TryComplete() |> ignore

    member _.CompleteAll() =
        lock gate (fun () ->
            for s in subscribers do
                s.Writer.TryComplete() |> ignore

            subscribers.Clear())

module PlatformEvent =
    let toJson (e: PlatformEvent) : string =
        Json.compact (
            Json.obj
                [ "type", Json.str e.Type
                  "workspace_id", Json.optGuid e.WorkspaceId
                  "payload", e.Payload.DeepClone()
                  "at", Json.timeNode e.At ]
        )
