namespace Molecule.Host.Cli;

/// <summary>What <c>molecule-mcp --help</c> says: the server and the environment it reads, not only the subcommands.</summary>
public static class HelpText
{
    public const string Root =
        "molecule-mcp: MCP stdio server that lets a coding agent join a Molecule agent team.\n" +
        "Run without arguments from an MCP client; configuration comes from the environment:\n" +
        "  WORKSPACE_ID                  workspace UUID (canvas)                         required\n" +
        "  PLATFORM_URL                  platform base URL                               required\n" +
        "  MOLECULE_WORKSPACE_TOKEN      workspace token (or MOLECULE_WORKSPACE_TOKEN_FILE, watched, or <state dir>/.auth_token)\n" +
        "  MOLECULE_WORKSPACES           JSON [{\"id\",\"token\"},…]: several workspaces in one process\n" +
        "  MOLECULE_AGENT_NAME / _DESCRIPTION / _SKILLS   the agent card\n" +
        "  CONFIGS_DIR                   state directory (default /configs if writable, else ~/.molecule-workspace)\n" +
        "  MOLECULE_MCP_VERBOSE          info logs on stderr\n" +
        "  MOLECULE_MCP_POLL_TIMEOUT_SECS  wait_for_message timeout the instructions suggest (0 = push only)\n" +
        "  MOLECULE_MCP_REPLAY_SECS      look-back without acknowledgements (default 600)\n" +
        "  MOLECULE_MCP_RENOTIFY_SECS    push an unpopped message once more after (default 300, 0 = off)\n" +
        "  MOLECULE_MCP_MAX_LINE_BYTES   longest JSON-RPC line accepted (default 4 MiB)\n" +
        "  MOLECULE_MCP_DISABLE_STREAM / _HEARTBEAT / _INBOX   switch parts off\n" +
        "  DELEGATION_SYNC_VIA_INBOX, DELEGATION_TIMEOUT        sync delegate_task via /delegate polling\n" +
        "  MOLECULE_MCP_PERMISSION_RELAY   0 = do not relay Claude Code's permission prompts to the console (default on)\n" +
        "  MOLECULE_MCP_PERMISSION_TIMEOUT_SECS   how long a relayed prompt may be answered (default 600)\n" +
        "  MOLECULE_MCP_LOOP_MAX_EXCHANGES / _PER_MINUTE / _REPEATS   loop guard bounds per peer (100 / 30 / 8; 0 = off)\n" +
        "Logs go to stderr; stdout carries only JSON-RPC.";
}
