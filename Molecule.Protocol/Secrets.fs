/// Secrets never leave the process: masking of the values this process holds (the workspace token), and redaction of
/// well-known secret shapes in text that is stored or shown (memories, error details). Written once, used by the
/// wheel, its runtime and the local platform.
module Molecule.Protocol.Secrets

open System
open System.Text.RegularExpressions

/// Values shorter than this are not secrets a platform issues (it mints 43 characters); masking them would rewrite
/// ordinary words.
let minMasked = 8

/// Replaces every occurrence of each secret by a mask that shares no character with it ("***", else "###", …).
/// Should masks of one secret spell another (or no disjoint mask exist), what remains is removed until no secret is
/// left, so the result can never contain one.
let mask (secrets: string seq) (text: string) : string =
    let secrets = secrets |> Seq.filter (fun s -> not (isNull s) && s.Length >= minMasked) |> Seq.distinct |> List.ofSeq
    let masked =
        ((if isNull text then "" else text), secrets)
        ||> List.fold (fun text secret ->
            let disjoint (m: string) = m |> Seq.forall (fun c -> not (secret.Contains c))
            match [ "***"; "###"; "~~~"; "[redacted]" ] |> List.tryFind disjoint with
            | Some m when text.Contains(secret, StringComparison.Ordinal) -> text.Replace(secret, m, StringComparison.Ordinal)
            | _ -> text)
    let mutable t = masked
    // Every pass removes at least one character, so this ends.
    while secrets |> List.exists (fun s -> t.Contains(s, StringComparison.Ordinal)) do
        for s in secrets do
            t <- t.Replace(s, "", StringComparison.Ordinal)
    t

let private rx (pattern: string) =
    Regex(pattern, RegexOptions.CultureInvariant ||| RegexOptions.Compiled, TimeSpan.FromMilliseconds 200.0)

/// Well-known secret shapes: label, pattern, and the group kept in front of the secret (a `key=` prefix).
let private shapes: (string * Regex) list =
    [ "PRIVATE_KEY", rx @"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
      "ANTHROPIC_KEY", rx @"(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_\-]{16,}"
      "OPENAI_KEY", rx @"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}"
      "GITHUB_TOKEN", rx @"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"
      "AWS_ACCESS_KEY", rx @"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
      "SLACK_TOKEN", rx @"\bxox[abposr]-[A-Za-z0-9\-]{10,}"
      "BEARER_TOKEN", rx @"(?i)(?<keep>\bbearer\s+)[A-Za-z0-9\-_\.=+/]{16,}"
      "SECRET", rx @"(?i)(?<keep>\b(?:password|passwd|secret|api[_-]?key|key|token)\s*[:=]\s*[""']?)[^\s""',;]{6,}" ]

/// Replaces well-known secret shapes by `marker label` (a `key=` or `Bearer ` prefix is kept). A pattern that times
/// out leaves the text as it is.
let redactWith (marker: string -> string) (text: string) : string =
    shapes
    |> List.fold
        (fun (text: string) (label, r) ->
            try
                r.Replace(text, MatchEvaluator(fun m -> m.Groups["keep"].Value + marker label))
            with :? RegexMatchTimeoutException ->
                text)
        (if isNull text then "" else text)

/// `[REDACTED]` for every secret shape (what the wheel sends).
let redact (text: string) : string = redactWith (fun _ -> "[REDACTED]") text

/// `[REDACTED:<LABEL>]` (what the platform stores).
let redactLabelled (text: string) : string = redactWith (fun label -> $"[REDACTED:{label}]") text
