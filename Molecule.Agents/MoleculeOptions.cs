using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Molecule.Core;

namespace Molecule.Agents;

/// <summary>
/// How an agent connects: the variables <c>molecule-mcp</c> reads (WORKSPACE_ID, PLATFORM_URL,
/// MOLECULE_WORKSPACE_TOKEN, …), set in code, read from the environment or bound from configuration. The options hold
/// the values as given; the core alone judges them (<see cref="Validate"/>, <see cref="MoleculeAgent.ConnectAsync"/>),
/// with the same rules, defaults and texts as <c>molecule-mcp</c> — every problem at once.
/// </summary>
/// <remarks>
/// Every documented variable can be set by its name through the indexer (<c>options["MOLECULE_MCP_POLL_INTERVAL_SECS"] =
/// "1"</c>); the common ones also have properties. Configuration keys may be the property names or the variable names.
/// </remarks>
public sealed class MoleculeOptions
{
    /// <summary>Property name → variable name (configuration keys may use either).</summary>
    private static readonly IReadOnlyDictionary<string, string> Names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        [nameof(WorkspaceId)] = "WORKSPACE_ID",
        [nameof(PlatformUrl)] = "PLATFORM_URL",
        [nameof(Token)] = "MOLECULE_WORKSPACE_TOKEN",
        [nameof(TokenFile)] = "MOLECULE_WORKSPACE_TOKEN_FILE",
        [nameof(Workspaces)] = "MOLECULE_WORKSPACES",
        [nameof(StateDirectory)] = "CONFIGS_DIR",
        [nameof(AgentName)] = "MOLECULE_AGENT_NAME",
        [nameof(AgentDescription)] = "MOLECULE_AGENT_DESCRIPTION",
        [nameof(AgentSkills)] = "MOLECULE_AGENT_SKILLS",
        ["Verbose"] = "MOLECULE_MCP_VERBOSE",
    };

    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>A variable's value as given (null when unset); setting null unsets it.</summary>
    public string? this[string variable]
    {
        get => _values.TryGetValue(variable, out var v) ? v : null;
        set
        {
            ArgumentNullException.ThrowIfNull(variable);
            if (value is null) _values.Remove(variable);
            else _values[variable] = value;
        }
    }

    /// <summary>WORKSPACE_ID: the workspace's UUID, as the canvas shows it.</summary>
    public string? WorkspaceId { get => this["WORKSPACE_ID"]; set => this["WORKSPACE_ID"] = value; }

    /// <summary>PLATFORM_URL: the platform's base URL, e.g. https://your-tenant.moleculesai.app.</summary>
    public string? PlatformUrl { get => this["PLATFORM_URL"]; set => this["PLATFORM_URL"] = value; }

    /// <summary>MOLECULE_WORKSPACE_TOKEN: the workspace's bearer token (never logged).</summary>
    public string? Token { get => this["MOLECULE_WORKSPACE_TOKEN"]; set => this["MOLECULE_WORKSPACE_TOKEN"] = value; }

    /// <summary>MOLECULE_WORKSPACE_TOKEN_FILE: a file holding the token, read again whenever it changes.</summary>
    public string? TokenFile { get => this["MOLECULE_WORKSPACE_TOKEN_FILE"]; set => this["MOLECULE_WORKSPACE_TOKEN_FILE"] = value; }

    /// <summary>
    /// MOLECULE_WORKSPACES: several workspaces for one agent, as JSON — <c>[{"id":"…","token":"…"}, …]</c>, each entry
    /// optionally with its own <c>"platform_url"</c>; the first is the primary. Wins over the single-workspace settings.
    /// </summary>
    public string? Workspaces { get => this["MOLECULE_WORKSPACES"]; set => this["MOLECULE_WORKSPACES"] = value; }

    /// <summary>CONFIGS_DIR: where the inbox ledger and state files live (default ~/.molecule-workspace).</summary>
    public string? StateDirectory { get => this["CONFIGS_DIR"]; set => this["CONFIGS_DIR"] = value; }

    /// <summary>MOLECULE_AGENT_NAME: the name on the agent card.</summary>
    public string? AgentName { get => this["MOLECULE_AGENT_NAME"]; set => this["MOLECULE_AGENT_NAME"] = value; }

    /// <summary>MOLECULE_AGENT_DESCRIPTION: the description on the agent card.</summary>
    public string? AgentDescription { get => this["MOLECULE_AGENT_DESCRIPTION"]; set => this["MOLECULE_AGENT_DESCRIPTION"] = value; }

    /// <summary>MOLECULE_AGENT_SKILLS: the skills on the agent card, comma-separated.</summary>
    public string? AgentSkills { get => this["MOLECULE_AGENT_SKILLS"]; set => this["MOLECULE_AGENT_SKILLS"] = value; }

    /// <summary>Every variable set, by name.</summary>
    public IReadOnlyDictionary<string, string> Variables => _values;

    /// <summary>The process environment (as <c>molecule-mcp</c> reads it).</summary>
    public static MoleculeOptions FromEnvironment() => FromVariables(AgentBoot.ProcessEnvironment());

    /// <summary>Options from variables by their documented names (an environment of your own).</summary>
    public static MoleculeOptions FromVariables(IEnumerable<KeyValuePair<string, string>> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var options = new MoleculeOptions();
        foreach (var (name, value) in variables)
            if (name is not null && value is not null) options._values[name] = value;
        return options;
    }

    /// <summary>
    /// Options from a configuration section (e.g. <c>configuration.GetSection("Molecule")</c>): each key is a property
    /// name (<c>WorkspaceId</c>, <c>PlatformUrl</c>, <c>Token</c>, …; <c>Verbose</c> for MOLECULE_MCP_VERBOSE) or a variable name
    /// (<c>MOLECULE_MCP_POLL_INTERVAL_SECS</c>); values are taken as given.
    /// </summary>
    public static MoleculeOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new MoleculeOptions();
        foreach (var child in configuration.GetChildren())
            if (child.Value is { } value)
                options._values[Names.TryGetValue(child.Key, out var variable) ? variable : child.Key] = value;
        return options;
    }

    /// <summary>
    /// Every problem the core finds in these options (empty when an agent can start with them): the same rules as
    /// <c>molecule-mcp</c>. Reads the token files the options name.
    /// </summary>
    public IReadOnlyList<MoleculeOptionsProblem> Validate()
    {
        var parsed = AgentBoot.Parse(_values, new AgentLog(NullLogger.Instance));
        return parsed.IsOk ? [] : Problems(parsed.ErrorValue);
    }

    internal static IReadOnlyList<MoleculeOptionsProblem> Problems(IEnumerable<ConfigModule.ConfigError> errors) =>
        errors.Select(e => e switch
        {
            ConfigModule.ConfigError.Invalid invalid => new MoleculeOptionsProblem(invalid.var, invalid.reason),
            ConfigModule.ConfigError.Missing missing => new MoleculeOptionsProblem(missing.var, null),
            _ => new MoleculeOptionsProblem("", null),
        }).ToList();

    /// <summary>The variables, for the core.</summary>
    internal IReadOnlyDictionary<string, string> ToVariables() => new Dictionary<string, string>(_values, StringComparer.Ordinal);

    /// <summary>Lists the variables set, the token's value masked.</summary>
    public override string ToString() =>
        string.Join(", ", _values.Keys.Order(StringComparer.Ordinal).Select(k => k.Contains("TOKEN", StringComparison.Ordinal) || k.StartsWith("MOLECULE_WORKSPACES", StringComparison.Ordinal) ? $"{k}=***" : $"{k}={_values[k]}"));
}
