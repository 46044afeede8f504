namespace Molecule.Agents;

/// <summary>A setting the core refuses, or one that is missing: the variable it names and why (null: it is missing).</summary>
public sealed record MoleculeOptionsProblem(string Setting, string? Reason);

/// <summary>
/// The options cannot start an agent. <see cref="Exception.Message"/> is the text <c>molecule-mcp</c> prints for the
/// same problems (every one of them, with what to set); <see cref="Problems"/> lists them one by one. Never contains
/// a token or another value of the options.
/// </summary>
public sealed class MoleculeOptionsException : Exception
{
    public MoleculeOptionsException(string message, IReadOnlyList<MoleculeOptionsProblem> problems) : base(message)
    {
        Problems = problems;
    }

    public IReadOnlyList<MoleculeOptionsProblem> Problems { get; }
}

/// <summary>
/// A tool call failed: <see cref="Exception.Message"/> is the tool's own answer (what <c>molecule-mcp</c> would have
/// returned as an error result), never with a token in it.
/// </summary>
public sealed class MoleculeToolException : Exception
{
    public MoleculeToolException(string toolName, string message) : base(message)
    {
        ToolName = toolName;
    }

    /// <summary>The MCP tool the call ran (e.g. <c>delegate_task</c>).</summary>
    public string ToolName { get; }
}

/// <summary>
/// The platform stopped the agent: it refused the workspace at registration (the token is not valid for it, or the
/// workspace was deleted). The log says why. <see cref="ExitCode"/> is the code <c>molecule-mcp</c> exits with.
/// </summary>
public sealed class MoleculeAgentStoppedException : Exception
{
    public MoleculeAgentStoppedException(int exitCode)
        : base("The platform refused this workspace; the agent stopped (see the log for why).")
    {
        ExitCode = exitCode;
    }

    public int ExitCode { get; }
}
