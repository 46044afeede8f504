/// The suite's own data files (Tests/Data/, copied beside the test assembly): the reference's set-up lines, the
/// client-config corpus. Nothing is read from outside the repository.
module Molecule.Tests.Support.TestData

open System
open System.IO
open System.Text.RegularExpressions

/// The clone this test assembly was built in: the first folder above it holding Molecule.Functional.sln.
let repoRoot () =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "repository root (Molecule.Functional.sln) not found above the test assembly"
        elif File.Exists(Path.Combine(d.FullName, "Molecule.Functional.sln")) then d.FullName
        else up d.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

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

/// A POSIX shell's word split of one command: backslash-newline joins lines, a word is made of unquoted characters,
/// '…' and "…" runs (`NAME='Research Assistant'` is one word, its quotes removed).
let shellWords (block: string) : string list =
    let text = block.Replace("\\\r\n", " ").Replace("\\\n", " ")
    let words = ResizeArray<string>()
    let word = Text.StringBuilder()
    let mutable inWord = false
    let mutable quote = None
    for c in text do
        match quote, c with
        | Some q, c when c = q -> quote <- None
        | Some _, c -> word.Append c |> ignore
        | None, ('\'' | '"') ->
            quote <- Some c
            inWord <- true
        | None, c when Char.IsWhiteSpace c ->
            if inWord then words.Add(word.ToString())
            word.Clear() |> ignore
            inWord <- false
        | None, c ->
            word.Append c |> ignore
            inWord <- true
    if inWord then words.Add(word.ToString())
    List.ofSeq words

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
