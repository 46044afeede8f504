/// Claude Code's permission prompts relayed to the team's user (the channel permission relay): a prompt
/// (`notifications/claude/channel/permission_request {request_id, tool_name, description, input_preview}`) becomes an
/// approval for the user (`source: permission_relay`) that expires after a timeout; its decision goes back as
/// `notifications/claude/channel/permission {request_id, behavior}` — once, and never after it expired (the terminal's
/// own answer may have come first; Claude Code does not tell the server). Pure: the agent keeps the prompts waiting.
module Molecule.Core.Permissions

open System
open Molecule.Protocol

/// A prompt as the client sent it (the host reads the notification; `Now`: when it arrived, the host's clock).
type Prompt =
    { RequestId: string
      ToolName: string
      Description: string
      InputPreview: string
      Now: DateTimeOffset }

/// A prompt relayed: the platform's request for it (once created) and when it expires.
type Waiting =
    { Workspace: WorkspaceId
      Request: string option
      ExpiresAt: DateTimeOffset }

/// The capability a server declares when it relays prompts.
let capability = "claude/channel/permission"

/// The notification a prompt arrives as, and the one its answer goes back as.
let requestMethod = "notifications/claude/channel/permission_request"
let answerMethod = "notifications/claude/channel/permission"

/// A prompt's id as Claude Code makes them (five lower-case letters); anything else is not taken.
let isPromptId (id: string) =
    not (String.IsNullOrEmpty id) && id.Length <= 64 && id |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-' || c = '_')

/// A client's text as a person may be shown it: one line (controls and separators become spaces), secret shapes
/// redacted, at most `max` characters.
let shown (max: int) (text: string) : string =
    let t = if isNull text then "" else text
    let line = String(t.ToCharArray() |> Array.map (fun c -> if Char.IsControl c || c = '\u2028' || c = '\u2029' then ' ' else c))
    let line = (Secrets.redact line).Trim()
    if line.Length <= max then line
    else
        let cut = if Char.IsHighSurrogate line[max - 2] then max - 2 else max - 1
        line.Substring(0, cut) + "\u2026"

/// The approval a prompt becomes.
let request (p: Prompt) : NewRequest =
    let tool = shown 64 p.ToolName
    let tool = if tool = "" then "a tool" else tool
    let description = shown 120 p.Description
    let preview = shown 600 p.InputPreview
    { Kind = ApprovalRequest
      Recipient = ToUser
      Title = shown ToolSpecs.maxTitleChars (if description = "" then $"Claude Code asks to use {tool}" else $"Claude Code asks to use {tool}: {description}")
      Detail = Some(if preview = "" then $"Tool: {tool}" else $"Tool: {tool}\nInput: {preview}")
      Priority = Some "high" }

/// When a prompt relayed now expires.
let expiresAt (timeoutSecs: int) (now: DateTimeOffset) = now.AddSeconds(float timeoutSecs)

/// The local platform's extensions of a relayed prompt's request: its source and expiry.
let extras (expires: DateTimeOffset) =
    [ "source", RequestUpdate.sourceName RequestUpdate.PermissionRelay; "expires_at", Activity.formatTime expires ]

/// The answer an update carries for a prompt: allow (approved), deny (rejected), or none (anything else) — and none
/// once the prompt expired: the update's time (the platform's) must not be after the expiry.
let behavior (w: Waiting) (u: RequestUpdate.Update) (at: DateTimeOffset option) : string option =
    let inTime = match at with Some t -> t <= w.ExpiresAt | None -> false
    match u.Event, u.Status with
    | "responded", "approved" when inTime -> Some "allow"
    | "responded", "rejected" when inTime -> Some "deny"
    | _ -> None

/// The lines the user of the log reads.
let relayedLine (id: string) (rid: string) = $"permission prompt {id} relayed as approval {rid}"
let failedLine (id: string) (why: string) = $"permission prompt {id} could not be relayed: {why}"
let expiredLine (id: string) = $"permission prompt {id} expired unanswered: no answer will be sent for it"
