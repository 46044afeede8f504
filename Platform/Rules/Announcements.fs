/// Events as decisions announce them (Model.Announcement): built here once, published by the shell after the
/// store transaction commits. Pure.
module Molecule.Platform.Announcements

open System.Text.Json.Nodes
module Json = Molecule.Protocol.Json

/// An event with a canvas payload and its own workspace-stream payload.
let event (audience: Audience) (kind: string) (anchor: WorkspaceId option) (canvas: (string * JsonNode) list) (stream: JsonObject) : Announcement =
    { Kind = kind
      Anchor = anchor
      Canvas = canvas
      Stream = stream
      Audience = audience }

/// An event for everyone whose stream payload is the canvas payload (keys sorted).
let plain (kind: string) (anchor: WorkspaceId option) (canvas: (string * JsonNode) list) : Announcement =
    event Everyone kind anchor canvas (Json.sorted [ for (k, v) in canvas -> k, Json.clone v ])

/// `WORKSPACE_<STATUS>` with `{status}`: a status change.
let statusChanged (id: WorkspaceId) (status: Status) : Announcement =
    plain ("WORKSPACE_" + (Status.text status).ToUpperInvariant()) (Some id) [ "status", Json.str (Status.text status) ]

/// `ACTIVITY_LOGGED` on a workspace's own stream saying "look at your inbox" without a row: what the agents of a
/// platform process get when it may have missed other processes' events (its listener was reconnected).
let catchUp (id: WorkspaceId) : Announcement =
    event WorkspaceOnly "ACTIVITY_LOGGED" (Some id) [] (Json.sorted [ "activity_type", Json.str "a2a_receive"; "method", Json.str "catch_up" ])
