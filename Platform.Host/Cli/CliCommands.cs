using System.CommandLine;
using Molecule.Platform;

namespace Molecule.PlatformHost.Cli;

/// <summary>The subcommands of molecule-platform (platform, workspace, token, demo).</summary>
public static class CliCommands
{
    public static void AddTo(RootCommand root)
    {
        root.Add(Platform());
        root.Add(Workspace());
        root.Add(Token());
        root.Add(DemoCommand());
        root.Add(MigrateCommand());
    }

    /// <summary>Runs an action; a <see cref="CliException"/> becomes "error: …" on stderr and its exit code.</summary>
    private static async Task<int> Guarded(Func<Task<int>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (CliException e)
        {
            Console.Out.Flush();
            Console.Error.WriteLine("error: " + e.Message);
            return e.ExitCode;
        }
    }

    private static Option<string> DataDirOption(bool recursive) => new("--data-dir")
    {
        Description = $"Platform data directory (default: ${PlatformLocation.DataDirVariable} or ~/.molecule-platform).",
        HelpName = "DIR",
        Recursive = recursive,
    };

    private static Option<int> RateOption(string name, string what, int fallback) => new(name)
    {
        Description = $"Per-token limit of {what} a minute (0 = no limit).",
        HelpName = "N",
        DefaultValueFactory = _ => fallback,
    };

    private static Command Platform()
    {
        var dataDir = DataDirOption(false);
        var host = new Option<string>("--host") { Description = "Address to listen on (a non-loopback address prints what it exposes).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0 = any free port).", DefaultValueFactory = _ => 7080 };
        port.Validators.Add(r =>
        {
            // Only a number that parsed is checked here; a non-number already has its own parse error.
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, System.Globalization.NumberStyles.Integer,
                    System.Globalization.CultureInfo.InvariantCulture, out var v) && v is < 0 or > 65535)
                r.AddError("--port must be between 0 and 65535");
        });
        var allowedHost = new Option<string[]>("--allowed-host")
        {
            Description = "Another name this platform answers to (e.g. a reverse proxy's public name); repeatable.",
            HelpName = "NAME",
            AllowMultipleArgumentsPerToken = false,
        };
        var database = new Option<string>("--database")
        {
            Description = $"A PostgreSQL database (postgres://user:password@host:port/name) shared by every platform process of a team; default ${PlatformLocation.DatabaseVariable}, else SQLite in the data directory.",
            HelpName = "URL",
        };
        database.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && !PostgresStore.isUrl(r.Tokens[0].Value))
                r.AddError("--database takes a postgres:// (or postgresql://) URL");
        });
        var openRegistration = new Option<bool>("--open-registration")
            { Description = "Let unknown workspace ids register and get a token (the reference's behaviour; prints a warning)." };
        var enableFaults = new Option<bool>("--enable-faults")
            { Description = "Serve the test fault-injection routes /admin/faults and /admin/requests (tests only; prints a warning)." };
        var defaults = RateLimit.LimitsModule.defaults;
        var rateRegister = RateOption("--rate-register", "registrations", defaults.Register.PerMinute);
        var rateRegistry = RateOption("--rate-registry", "registry calls (heartbeats, discover, peers, card updates, workspace reads)", defaults.Registry.PerMinute);
        var rateA2a = RateOption("--rate-a2a", "A2A sends and delegations", defaults.A2a.PerMinute);
        var rateNotify = RateOption("--rate-notify", "notifications (send_message_to_user)", defaults.Notify.PerMinute);
        var rateActivity = RateOption("--rate-activity", "activity calls (reads, reports, acknowledgements, mail summaries)", defaults.Activity.PerMinute);
        var rateMemories = RateOption("--rate-memories", "memory writes and recalls", defaults.Memories.PerMinute);
        var rateBroadcast = RateOption("--rate-broadcast", "broadcasts", defaults.Broadcast.PerMinute);
        var rateFiles = RateOption("--rate-files", "file requests (uploads, downloads, pending-upload acknowledgements)", defaults.Files.PerMinute);
        var rateRequests = RateOption("--rate-requests", "requests-inbox calls (requests and approvals: raise, read, respond, message, cancel)", defaults.Requests.PerMinute);
        var uploadMib = new Option<int>("--upload-mib")
        {
            Description = "Per-token MiB of uploads a minute (0 = no limit).",
            HelpName = "N",
            DefaultValueFactory = _ => defaults.UploadBytes.PerMinute / (1024 * 1024),
        };
        var streams = new Option<int>("--streams-per-token")
        {
            Description = "Event streams one token may hold open at once (0 = no cap).",
            HelpName = "N",
            DefaultValueFactory = _ => defaults.Streams,
        };
        var instance = new Option<string>("--instance-name")
        {
            Description = $"This instance's name in /health, /ready, /metrics and the log (default: ${PlatformCommand.InstanceVariable}, else <host name>-<pid>).",
            HelpName = "NAME",
        };
        var logFormat = new Option<string>("--log-format")
        {
            Description = "The log on stderr: text ('[molecule-platform] …' lines) or json (one {time, instance, message} object a line).",
            HelpName = "text|json",
            DefaultValueFactory = _ => "text",
        };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var cmd = new Command("platform", "Run a local Molecule platform in the foreground (Ctrl+C stops it).")
        {
            dataDir, database, host, port, allowedHost, openRegistration, enableFaults, rateRegister, rateRegistry, rateA2a, rateNotify,
            rateActivity, rateMemories, rateBroadcast, rateFiles, rateRequests, uploadMib, streams, instance, logFormat,
        };
        RateLimit.Policy Per(ParseResult pr, Option<int> o) => new(pr.GetValue(o));
        cmd.SetAction((pr, ct) => Guarded(() => PlatformCommand.RunAsync(new PlatformCommand.Settings(
            pr.GetValue(dataDir), pr.GetValue(host) ?? "127.0.0.1", pr.GetValue(port),
            pr.GetValue(allowedHost) ?? [], pr.GetValue(openRegistration), pr.GetValue(enableFaults), pr.GetValue(database),
            new RateLimit.Limits(Per(pr, rateRegister), Per(pr, rateRegistry), Per(pr, rateA2a), Per(pr, rateNotify),
                Per(pr, rateActivity), Per(pr, rateMemories), Per(pr, rateBroadcast), Per(pr, rateFiles), Per(pr, rateRequests),
                new RateLimit.Policy((int)Math.Min(int.MaxValue, (long)pr.GetValue(uploadMib) * 1024 * 1024)), pr.GetValue(streams)),
            pr.GetValue(instance), pr.GetValue(logFormat) == "json"), ct)));
        return cmd;
    }

    private sealed record AdminOptions(Option<string> DataDir, Option<string> Url, Option<string> Token)
    {
        public AdminTarget Target(ParseResult pr) => new(pr.GetValue(DataDir), pr.GetValue(Url), pr.GetValue(Token));
    }

    private static AdminOptions AddAdminOptions(Command parent)
    {
        var o = new AdminOptions(
            DataDirOption(true),
            new Option<string>("--platform-url") { Description = "Platform URL (default: from <data-dir>/platform.json of a running `molecule-platform platform`).", HelpName = "URL", Recursive = true },
            new Option<string>("--admin-token") { Description = "Admin token (default: read from <data-dir>/admin_token).", HelpName = "TOKEN", Recursive = true });
        parent.Add(o.DataDir);
        parent.Add(o.Url);
        parent.Add(o.Token);
        return o;
    }

    private static Command Workspace()
    {
        var ws = new Command("workspace", "Create, list and delete workspaces on a running local platform.");
        var admin = AddAdminOptions(ws);

        var name = new Option<string>("--name") { Description = "Workspace (agent) name.", Required = true };
        var role = new Option<string>("--role") { Description = "Role shown to peers, e.g. 'backend reviewer'." };
        var parent = new Option<string>("--parent") { Description = "ID of the parent workspace (makes this one its child).", HelpName = "ID" };
        var skills = new Option<string>("--skills") { Description = "Comma-separated skills, e.g. csharp,testing.", HelpName = "a,b" };
        var description = new Option<string>("--description") { Description = "Short description of the agent." };
        var create = new Command("create", "Create a workspace and print its token and ready-to-paste MCP connection lines.")
            { name, role, parent, skills, description };
        create.SetAction((pr, ct) => Guarded(() => AdminCommands.CreateWorkspaceAsync(admin.Target(pr), pr.GetValue(name)!,
            pr.GetValue(role), pr.GetValue(parent), pr.GetValue(skills), pr.GetValue(description), Console.Out, ct)));

        var list = new Command("list", "List the platform's workspaces (id, name, role, status, parent, skills).");
        list.SetAction((pr, ct) => Guarded(() => AdminCommands.ListWorkspacesAsync(admin.Target(pr), Console.Out, ct)));

        var id = new Argument<string>("ID") { Description = "ID of the workspace to delete." };
        var confirm = new Option<bool>("--confirm") { Description = "Also delete its live descendants." };
        var delete = new Command("delete", "Delete a workspace: its tokens are revoked and its agent is told so.") { id, confirm };
        delete.SetAction((pr, ct) => Guarded(() => AdminCommands.DeleteWorkspaceAsync(admin.Target(pr), pr.GetValue(id)!, pr.GetValue(confirm), Console.Out, ct)));

        var updId = new Argument<string>("ID") { Description = "ID of the workspace to change." };
        var updName = new Option<string>("--name") { Description = "New name." };
        var updRole = new Option<string>("--role") { Description = "New role ('' clears it)." };
        var updSkills = new Option<string>("--skills") { Description = "New comma-separated skills (replace the old ones).", HelpName = "a,b" };
        var updDescription = new Option<string>("--description") { Description = "New description ('' clears it)." };
        var update = new Command("update", "Change a workspace's name, role, skills or description.") { updId, updName, updRole, updSkills, updDescription };
        update.SetAction((pr, ct) => Guarded(() => AdminCommands.UpdateWorkspaceAsync(admin.Target(pr), pr.GetValue(updId)!,
            pr.GetValue(updName), pr.GetValue(updRole), pr.GetValue(updSkills), pr.GetValue(updDescription), Console.Out, ct)));

        ws.Add(create);
        ws.Add(list);
        ws.Add(update);
        ws.Add(delete);
        return ws;
    }

    private static Command Token()
    {
        var token = new Command("token", "Mint, list and revoke workspace tokens on a running local platform.");
        var admin = AddAdminOptions(token);

        var mintWs = new Argument<string>("WORKSPACE_ID");
        var mint = new Command("mint", "Mint a new token for a workspace and print ready-to-paste connection lines.") { mintWs };
        mint.SetAction((pr, ct) => Guarded(() => AdminCommands.MintTokenAsync(admin.Target(pr), pr.GetValue(mintWs)!, Console.Out, ct)));

        var listWs = new Argument<string>("WORKSPACE_ID");
        var list = new Command("list", "List a workspace's live tokens (id and prefix only).") { listWs };
        list.SetAction((pr, ct) => Guarded(() => AdminCommands.ListTokensAsync(admin.Target(pr), pr.GetValue(listWs)!, Console.Out, ct)));

        var revokeWs = new Argument<string>("WORKSPACE_ID");
        var revokeId = new Argument<string>("TOKEN_ID");
        var revoke = new Command("revoke", "Revoke one token of a workspace.") { revokeWs, revokeId };
        revoke.SetAction((pr, ct) => Guarded(() => AdminCommands.RevokeTokenAsync(admin.Target(pr), pr.GetValue(revokeWs)!, pr.GetValue(revokeId)!, Console.Out, ct)));

        token.Add(mint);
        token.Add(list);
        token.Add(revoke);
        return token;
    }

    private static Command MigrateCommand()
    {
        var from = new Option<string>("--from")
        {
            Description = "The data directory of the team to copy (SQLite; stop the platform serving it first).",
            HelpName = "DIR",
            Required = true,
        };
        var to = new Option<string>("--to")
        {
            Description = "Where the team goes: a postgres:// URL (or another data directory, SQLite).",
            HelpName = "URL",
            Required = true,
        };
        var force = new Option<bool>("--force") { Description = "Delete what the target holds when it is not a copy of this team, then copy." };
        var batch = new Option<int>("--batch-size")
        {
            Description = "Rows per target transaction (an interrupted copy keeps the batches it committed; run it again to complete it).",
            HelpName = "N",
            DefaultValueFactory = _ => 500,
        };
        batch.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, out var v) && v < 1) r.AddError("--batch-size must be at least 1");
        });
        var cmd = new Command("migrate",
            "Copy a team from its SQLite data directory into another database: every table, with its row count and checksum compared on both sides. Refuses a target holding another team unless --force; run again after an interruption to complete the copy.")
        {
            from, to, force, batch,
        };
        cmd.SetAction((pr, _) => Task.FromResult(Migrate.commandTo(pr.GetValue(from)!, pr.GetValue(to)!, pr.GetValue(force), pr.GetValue(batch),
            line => Console.Out.WriteLine(line), line => Console.Error.WriteLine(line))));
        return cmd;
    }

    private static Command DemoCommand()
    {
        var keep = new Option<string>("--data-dir")
        {
            Description = $"Keep the platform's data here after the demo (a new or empty directory): its team, with the agents' tokens in {Demo.TeamFile}, for `platform --data-dir` or `migrate --from`.",
            HelpName = "DIR",
        };
        var cmd = new Command("demo", "End-to-end demo: a temporary local platform and three real molecule-mcp agents, driven over MCP.") { keep };
        cmd.SetAction((pr, ct) => Guarded(() => Demo.RunAsync(Console.Out, pr.GetValue(keep), ct)));
        return cmd;
    }
}
