/// The MCP tools: their specs (Tools/Specs.fs) and the validation of their arguments (Tools/Args.fs).
module Molecule.Core.Tools

/// The argument that selects the workspace a tool acts for (MOLECULE_WORKSPACES); None for the primary/inbox tools.
let routingArg (toolName: string) : string option = ToolSpecs.routingArg toolName

/// The tools in the reference's `tools/list` order.
let specs: ToolSpec list = ToolSpecs.specs

/// Validates a `tools/call` once, at the edge: tool name + arguments (None = {}) → the typed call and the workspace it
/// names (its route), or a short error sentence for the agent. Nothing after it reads the arguments again. Total: never
/// throws, whatever the name or the JSON.
let parse (name: string) (args: System.Text.Json.Nodes.JsonObject option) : Result<ParsedCall, string> = ToolArgs.parse name args
