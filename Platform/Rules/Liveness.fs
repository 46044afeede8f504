/// Workspace status transitions: stale sweep, heartbeat and register. Time is an argument.
module Molecule.Platform.Liveness

open System

/// External workspaces in online/degraded without a heartbeat for this long become awaiting_agent.
let staleAfter = TimeSpan.FromSeconds 90.0

/// Time of the last sign of life (last heartbeat, else last update).
let lastSeen (w: Workspace) =
    defaultArg w.LastHeartbeatAt w.UpdatedAt

let isStale (now: DateTimeOffset) (w: Workspace) =
    (w.Status = Status.Online || w.Status = Status.Degraded)
    && w.Runtime = "external"
    && now - lastSeen w > staleAfter

/// The sweep: a stale workspace becomes awaiting_agent (Some updated), anything else is unchanged (None).
let sweep (now: DateTimeOffset) (w: Workspace) : Workspace option =
    if isStale now w then
        Some
            { w with
                Status = Status.AwaitingAgent
                UpdatedAt = now }
    else
        None

/// Status after a heartbeat (reference `evaluateStatus`); removed never changes.
let statusAfterHeartbeat (errorRate: float) (runtimeState: string) (current: Status) : Status =
    match current with
    | Status.Removed -> Status.Removed
    | Status.Offline
    | Status.Provisioning
    | Status.AwaitingAgent -> Status.Online
    | Status.Online when runtimeState = "wedged" || errorRate >= 0.5 -> Status.Degraded
    | Status.Degraded when errorRate < 0.1 && String.IsNullOrEmpty runtimeState -> Status.Online
    | s -> s

type HeartbeatInput =
    { ErrorRate: float
      SampleError: string
      ActiveTasks: int
      UptimeSeconds: int
      CurrentTask: string
      RuntimeState: string }

/// Applies a heartbeat; a removed workspace is returned unchanged.
let heartbeat (now: DateTimeOffset) (hb: HeartbeatInput) (w: Workspace) : Workspace =
    if w.Status = Status.Removed then
        w
    else
        { w with
            Status = statusAfterHeartbeat hb.ErrorRate hb.RuntimeState w.Status
            LastHeartbeatAt = Some now
            LastErrorRate = hb.ErrorRate
            ActiveTasks = hb.ActiveTasks
            UptimeSeconds = hb.UptimeSeconds
            CurrentTask = hb.CurrentTask
            UpdatedAt = now }

/// Status after a register: online unless removed.
let statusAfterRegister (current: Status) =
    if current = Status.Removed then Status.Removed else Status.Online

let isOnline (w: Workspace) = w.Status = Status.Online
