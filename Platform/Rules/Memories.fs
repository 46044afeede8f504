/// Agent memories: LOCAL / TEAM / GLOBAL scopes, redaction, search. Pure.
/// Search is a simple substitute for the reference's Postgres full-text search: a row matches when its content
/// contains every whitespace-separated query word, case-insensitively (no stemming, no ranking; newest first).
module Molecule.Platform.Memories

open System
open System.Text.RegularExpressions
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

let scopes = MemoryScope.all

let badScope = "scope must be LOCAL, TEAM or GLOBAL"

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
      Scope: MemoryScope
      Namespace: string }

let parseCommit (body: JsonObject) : Result<Commit, Reply> =
    result {
        let! content = reqString "content" body
        let! scopeRaw = reqString "scope" body

        let! scope =
            match MemoryScope.tryParse scopeRaw with
            | Some s -> Ok s
            | None -> Error(bad badScope)

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
let commit (id: MemoryId) (now: DateTimeOffset) (ws: Workspace) (c: Commit) : Result<Memory, Reply> =
    if c.Scope = MemoryScope.Global && ws.ParentId.IsSome then
        Error(Wire.errorReply 403 globalForbidden)
    else
        let content = redact c.Content

        let content =
            if c.Scope = MemoryScope.Global then content.Replace("[MEMORY ", "[_MEMORY ") else content

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

/// What a recall reads from the store.
type Selection =
    /// The reader's own rows, every scope (no scope, or one the platform does not know).
    | Own of WorkspaceId
    /// The reader's own LOCAL rows.
    | OwnLocal of WorkspaceId
    /// TEAM rows written by these workspaces.
    | TeamOf of WorkspaceId list
    /// Every GLOBAL row.
    | AllGlobal

/// The team whose TEAM memories `me` recalls: live workspaces under the same parent (the roots, for a root) that
/// it can communicate with, itself included.
let team (all: Map<WorkspaceId, Workspace>) (me: Workspace) : WorkspaceId list =
    let anchor = defaultArg me.ParentId me.Id

    all
    |> Map.toList
    |> List.map snd
    |> List.filter (fun w ->
        w.Status <> Status.Removed
        && (w.ParentId = Some anchor || w.Id = anchor || (me.ParentId.IsNone && w.ParentId.IsNone && w.Id = me.Id))
        && Hierarchy.canCommunicate all me.Id w.Id)
    |> List.map (fun w -> w.Id)

/// What a recall by `me` with the given scope reads.
let selection (all: Map<WorkspaceId, Workspace>) (me: Workspace) (scope: MemoryScope option) : Selection =
    match scope with
    | Some MemoryScope.Local -> OwnLocal me.Id
    | Some MemoryScope.Team -> TeamOf(team all me)
    | Some MemoryScope.Global -> AllGlobal
    | None -> Own me.Id

/// Whether a row is in a selection (the store's query, stated once).
let selects (s: Selection) (m: Memory) : bool =
    match s with
    | Own id -> m.WorkspaceId = id
    | OwnLocal id -> m.WorkspaceId = id && m.Scope = MemoryScope.Local
    | TeamOf ids -> m.Scope = MemoryScope.Team && List.contains m.WorkspaceId ids
    | AllGlobal -> m.Scope = MemoryScope.Global

/// Rows visible to `me` for a recall with the given scope (None = my own rows, all scopes).
let visible (all: Map<WorkspaceId, Workspace>) (me: Workspace) (scope: MemoryScope option) (memories: Memory seq) : Memory list =
    let s = selection all me scope
    memories |> Seq.filter (selects s) |> List.ofSeq

/// A recall's answer from the selected rows: those matching the query, newest first, at most min(limit, 50).
let rank (query: string option) (limit: int option) (selected: Memory seq) : Memory list =
    let lim =
        match limit with
        | Some l when l > 0 -> min l MaxResults
        | _ -> MaxResults

    selected
    |> Seq.filter (fun m ->
        match query with
        | Some q -> matchesQuery q m.Content
        | None -> true)
    |> Seq.sortByDescending (fun m -> m.CreatedAt, m.Id.Guid)
    |> Seq.truncate lim
    |> List.ofSeq

/// Recall: visible rows matching the query, newest first, at most min(limit, 50).
let recall
    (all: Map<WorkspaceId, Workspace>)
    (me: Workspace)
    (scope: MemoryScope option)
    (query: string option)
    (limit: int option)
    (memories: Memory seq)
    : Memory list =
    rank query limit (visible all me scope memories)

/// Content as returned to readers: GLOBAL rows are wrapped with their provenance.
let displayContent (m: Memory) =
    if m.Scope = MemoryScope.Global then
        $"[MEMORY id={m.Id.Text} scope=GLOBAL from={m.WorkspaceId.Text}]: {m.Content}"
    else
        m.Content

let toJson (m: Memory) : JsonNode =
    Json.obj
        [ "id", Wire.idNode m.Id
          "workspace_id", Wire.idNode m.WorkspaceId
          "content", Json.str (displayContent m)
          "scope", Json.str (MemoryScope.text m.Scope)
          "namespace", Json.str m.Namespace
          "created_at", Wire.timeNode m.CreatedAt ]
