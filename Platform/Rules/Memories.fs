/// Agent memories: LOCAL / TEAM / GLOBAL scopes, redaction, search. Pure.
/// Search is a simple substitute for the reference's Postgres full-text search: a row matches when its content
/// contains every whitespace-separated query word, case-insensitively (no stemming, no ranking; newest first).
module Molecule.Platform.Memories

open System
open System.Text.RegularExpressions
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

let scopes = [ "LOCAL"; "TEAM"; "GLOBAL" ]

[<Literal>]
let MaxResults = 50

let globalForbidden = "only root workspaces can write GLOBAL memories"

let private patterns: (string * Regex) list =
    let rx p = Regex(p, RegexOptions.CultureInvariant ||| RegexOptions.Compiled, TimeSpan.FromMilliseconds 200.0)

    [ "PRIVATE_KEY", rx @"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
      "ANTHROPIC_KEY", rx @"\bsk-ant-[A-Za-z0-9_\-]{16,}"
      "OPENAI_KEY", rx @"\bsk-[A-Za-z0-9_\-]{16,}"
      "GITHUB_TOKEN", rx @"\b(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}"
      "AWS_ACCESS_KEY", rx @"\b(AKIA|ASIA)[0-9A-Z]{16}\b"
      "SLACK_TOKEN", rx @"\bxox[abposr]-[A-Za-z0-9\-]{10,}"
      "BEARER_TOKEN", rx @"(?i)\bbearer\s+[A-Za-z0-9\-_\.=+/]{16,}"
      "SECRET", rx @"(?i)\b(password|passwd|secret|api[_-]?key|token)\s*[:=]\s*[""']?[^\s""']{6,}" ]

/// Replaces obvious secrets by `[REDACTED:<LABEL>]`.
let redact (content: string) : string =
    patterns
    |> List.fold
        (fun (text: string) (label, rx) ->
            try
                rx.Replace(text, $"[REDACTED:{label}]")
            with :? RegexMatchTimeoutException ->
                text)
        (if isNull content then "" else content)

type Commit =
    { Content: string
      Scope: string
      Namespace: string }

let parseCommit (body: JsonObject) : Result<Commit, Reply> =
    result {
        let! content = reqString "content" body
        let! scopeRaw = reqString "scope" body
        let scope = scopeRaw.Trim().ToUpperInvariant()

        do!
            if List.contains scope scopes then
                Ok()
            else
                Error(bad "scope must be LOCAL, TEAM or GLOBAL")

        let! ns = optString "namespace" body

        let! ns =
            match ns with
            | None -> Ok "general"
            | Some s when String.IsNullOrWhiteSpace s -> Ok "general"
            | Some s when s.Length > 50 -> Error(bad "namespace must be at most 50 characters")
            | Some s -> Ok s

        return
            { Content = content
              Scope = scope
              Namespace = ns }
    }

/// The stored memory for a commit by `ws`, or 403 for GLOBAL from a non-root workspace.
let commit (id: Guid) (now: DateTimeOffset) (ws: Workspace) (c: Commit) : Result<Memory, Reply> =
    if c.Scope = "GLOBAL" && ws.ParentId.IsSome then
        Error(Wire.errorReply 403 globalForbidden)
    else
        let content = redact c.Content

        let content =
            if c.Scope = "GLOBAL" then content.Replace("[MEMORY ", "[_MEMORY ") else content

        Ok
            { Id = id
              WorkspaceId = ws.Id
              Content = content
              Scope = c.Scope
              Namespace = c.Namespace
              CreatedAt = now }

let private words (q: string) =
    q.ToLowerInvariant().Split([| ' '; '\t'; '\n'; '\r' |], StringSplitOptions.RemoveEmptyEntries)

/// Case-insensitive: every query word occurs in the content. An empty query matches everything.
let matchesQuery (q: string) (content: string) =
    let c = content.ToLowerInvariant()
    words q |> Array.forall (fun w -> c.Contains w)

/// Rows visible to `me` for a recall with the given scope (None/other = my own rows, all scopes).
let visible (all: Map<Guid, Workspace>) (me: Workspace) (scope: string option) (memories: Memory seq) : Memory list =
    let scope = scope |> Option.map (fun s -> s.Trim().ToUpperInvariant())
    let anchor = defaultArg me.ParentId me.Id

    let inTeam (wsId: Guid) =
        match all.TryFind wsId with
        | Some w ->
            w.Status <> Status.Removed
            && (w.ParentId = Some anchor || w.Id = anchor || (me.ParentId.IsNone && w.ParentId.IsNone && w.Id = me.Id))
            && Hierarchy.canCommunicate all me.Id w.Id
        | None -> false

    memories
    |> Seq.filter (fun m ->
        match scope with
        | Some "LOCAL" -> m.WorkspaceId = me.Id && m.Scope = "LOCAL"
        | Some "TEAM" -> m.Scope = "TEAM" && inTeam m.WorkspaceId
        | Some "GLOBAL" -> m.Scope = "GLOBAL"
        | _ -> m.WorkspaceId = me.Id)
    |> List.ofSeq

/// Recall: visible rows matching the query, newest first, at most min(limit, 50).
let recall
    (all: Map<Guid, Workspace>)
    (me: Workspace)
    (scope: string option)
    (query: string option)
    (limit: int option)
    (memories: Memory seq)
    : Memory list =
    let lim =
        match limit with
        | Some l when l > 0 -> min l MaxResults
        | _ -> MaxResults

    visible all me scope memories
    |> List.filter (fun m ->
        match query with
        | Some q -> matchesQuery q m.Content
        | None -> true)
    |> List.sortByDescending (fun m -> m.CreatedAt, m.Id)
    |> List.truncate lim

/// Content as returned to readers: GLOBAL rows are wrapped with their provenance.
let displayContent (m: Memory) =
    if m.Scope = "GLOBAL" then
        $"[MEMORY id={Wire.guid m.Id} scope=GLOBAL from={Wire.guid m.WorkspaceId}]: {m.Content}"
    else
        m.Content

let toJson (m: Memory) : JsonNode =
    Json.obj
        [ "id", Wire.guidNode m.Id
          "workspace_id", Wire.guidNode m.WorkspaceId
          "content", Json.str (displayContent m)
          "scope", Json.str m.Scope
          "namespace", Json.str m.Namespace
          "created_at", Wire.timeNode m.CreatedAt ]
