/// Reading MCP tool results in tests.
module Molecule.Tests.Support.Tool

open ModelContextProtocol.Protocol

/// The text content of a tool result, text blocks joined by newlines.
let textOf (r: CallToolResult) : string =
    r.Content
    |> Seq.choose (fun c ->
        match c with
        | :? TextContentBlock as t -> Some t.Text
        | _ -> None)
    |> String.concat "\n"
