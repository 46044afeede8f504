/// The suite's own data files (Tests/Data/, copied beside the test assembly): the reference's set-up lines, the
/// client-config corpus. Nothing is read from outside the repository.
module Molecule.Tests.Support.TestData

open System
open System.IO
open System.Text.RegularExpressions

/// Tests/Data as copied to the test output directory.
let dir () = Path.Combine(AppContext.BaseDirectory, "Data")

/// A data file's path (relative to Tests/Data); missing = test failure naming it.
let path (relative: string) =
    let p = Path.Combine(dir (), relative)
    if not (File.Exists p) then failwith $"test data Tests/Data/{relative} is missing from {dir ()}"
    p

let text (relative: string) = File.ReadAllText(path relative)

/// The fenced code blocks of a markdown text in a language (```bash … ```).
let codeBlocks (lang: string) (doc: string) =
    Regex.Matches(doc.Replace("\r\n", "\n"), "```" + lang + "\\s*\\n(.*?)```", RegexOptions.Singleline)
    |> Seq.map (fun m -> m.Groups[1].Value)
    |> Seq.toList

/// Shell-ish word split of one logical command: backslash-newline joins lines, quotes group words.
let shellWords (block: string) : string list =
    let joined = block.Replace("\\\r\n", " ").Replace("\\\n", " ")
    Regex.Matches(joined, "'([^']*)'|\"([^\"]*)\"|(\\S+)")
    |> Seq.map (fun m ->
        if m.Groups[1].Success then m.Groups[1].Value
        elif m.Groups[2].Success then m.Groups[2].Value
        else m.Groups[3].Value)
    |> Seq.toList

/// The reference's set-up lines (Tests/Data/reference-snippets.md).
module Snippets =
    let doc () = text "reference-snippets.md"

    /// The `bash` block holding all of `parts`; missing = test failure.
    let bash (parts: string list) =
        match codeBlocks "bash" (doc ()) |> List.tryFind (fun b -> parts |> List.forall b.Contains) with
        | Some b -> b
        | None -> failwith $"""no bash block with {String.Join(" … ", parts)} in Tests/Data/reference-snippets.md"""

    let json () =
        match codeBlocks "json" (doc ()) |> List.tryFind (fun b -> b.Contains "mcpServers") with
        | Some b -> b
        | None -> failwith "no JSON mcpServers block in Tests/Data/reference-snippets.md"

    /// The Claude Code line's words after `--` (`env K=V … molecule-mcp`).
    let claudeCode () =
        let words = shellWords (bash [ "claude mcp add molecule -s user -- env"; "<your-token>" ])
        words |> List.skipWhile (fun w -> w <> "--") |> List.tail
