/// Rate-limit state held in this process (RateLimit rules): token buckets per key and open streams per key, each
/// under one lock. The SQLite store's limiter (one process per data directory, so per process is per team).
namespace Molecule.Platform

open System
open System.Collections.Generic

type LocalLimiter() =
    let buckets = Dictionary<string, RateLimit.Bucket>()
    let streams = Dictionary<string, int>()

    let bucketOf (key: string) =
        match buckets.TryGetValue key with
        | true, b -> Some b
        | _ -> None

    /// Full buckets are forgotten when there are many (a bucket idle for a minute is full again).
    let forgetIdle (now: DateTimeOffset) =
        if buckets.Count > 10000 then
            for k in List.ofSeq buckets.Keys do
                if now - buckets[k].At > TimeSpan.FromMinutes 1.0 then
                    buckets.Remove k |> ignore

    interface Store.ILimiter with
        member _.Take(key, policy, cost, now) =
            lock buckets (fun () ->
                forgetIdle now

                match RateLimit.takeCost policy cost now (bucketOf key) with
                | RateLimit.Allowed b as d ->
                    buckets[key] <- b
                    d
                | d -> d)

        member _.Charge(key, policy, cost, now) =
            lock buckets (fun () -> buckets[key] <- RateLimit.charge policy cost now (bucketOf key))

        member _.OpenStream(key, cap) =
            lock streams (fun () ->
                let n =
                    match streams.TryGetValue key with
                    | true, n -> n
                    | _ -> 0

                if RateLimit.streamAllowed cap n then
                    streams[key] <- n + 1
                    let mutable closed = false

                    Some
                        { new IDisposable with
                            member _.Dispose() =
                                lock streams (fun () ->
                                    if not closed then
                                        closed <- true

                                        match streams.TryGetValue key with
                                        | true, m when m > 1 -> streams[key] <- m - 1
                                        | _ -> streams.Remove key |> ignore) }
                else
                    None)
