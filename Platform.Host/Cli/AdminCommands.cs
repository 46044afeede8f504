using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Molecule.PlatformHost.Cli;

/// <summary>Where the admin commands find the platform (from the shared options).</summary>
public sealed record AdminTarget(string? DataDir, string? PlatformUrl, string? AdminToken)
{
    public AdminClient Connect()
    {
        var dataDir = PlatformLocation.DataDir(DataDir);
        var url = PlatformLocation.ResolveUrl(PlatformUrl, dataDir);
        var token = PlatformLocation.ResolveAdminToken(AdminToken, dataDir);
        return new AdminClient(url, token, PlatformLocation.StartHint(dataDir));
    }
}

/// <summary>`workspace create|list|delete` and `token mint|list|revoke`: interactive, output on stdout.</summary>
public static class AdminCommands
{
    public static string RequireId(string? value, string what)
    {
        var v = (value ?? "").Trim();
        if (!Guid.TryParse(v, out var g))
            throw new CliException($"{what} must be a workspace/token UUID, got '{value}'", ExitCodes.Usage);
        return g.ToString();
    }

    public static List<string> SplitSkills(string? raw) =>
        (raw ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Distinct(StringComparer.Ordinal).ToList();

    public static async Task<int> CreateWorkspaceAsync(AdminTarget target, string name, string? role, string? parent,
        string? skills, string? description, TextWriter output, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new CliException("--name must not be empty", ExitCodes.Usage);
        var body = new JsonObject { ["name"] = name.Trim() };
        if (!string.IsNullOrWhiteSpace(role)) body["role"] = role.Trim();
        if (parent is not null) body["parent_id"] = RequireId(parent, "--parent");
        var skillList = SplitSkills(skills);
        if (skillList.Count > 0) body["skills"] = new JsonArray(skillList.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
        if (!string.IsNullOrWhiteSpace(description)) body["description"] = description.Trim();

        using var admin = target.Connect();
        var created = await admin.PostAsync("/workspaces", body, ct).ConfigureAwait(false);
        var id = AdminClient.Str(created, "id") ?? AdminClient.Str(created, "workspace_id")
                 ?? throw new CliException("the platform's answer has no workspace id");
        var token = AdminClient.Str(created, "auth_token") ?? throw new CliException("the platform's answer has no auth_token");
        var workspaceName = AdminClient.Str(created, "name") ?? name.Trim();

        output.WriteLine($"Workspace created: {workspaceName}");
        output.WriteLine($"  id:       {id}");
        output.WriteLine($"  token:    {token}");
        output.WriteLine("            " + Molecule.Platform.Connection.shownOnce);
        output.WriteLine($"  platform: {admin.BaseUrl}");
        output.WriteLine();
        output.Write(ConnectionLines.Block(workspaceName, id, admin.BaseUrl, token));
        return ExitCodes.Ok;
    }

    public static IReadOnlyList<string> SkillsOf(JsonNode? workspace)
    {
        var card = workspace?["agent_card"];
        if (card is JsonValue v && v.TryGetValue<string>(out var text))
        {
            try { card = JsonNode.Parse(text); } catch (System.Text.Json.JsonException) { card = null; }
        }
        if (card is not JsonObject o || o["skills"] is not JsonArray arr) return [];
        var list = new List<string>();
        foreach (var s in arr)
        {
            var name = s switch
            {
                JsonValue sv when sv.TryGetValue<string>(out var str) => str,
                JsonObject so => AdminClient.Str(so, "name") ?? AdminClient.Str(so, "id"),
                _ => null,
            };
            if (!string.IsNullOrWhiteSpace(name)) list.Add(name);
        }
        return list;
    }

    /// <summary>Left-aligned text table with a header row.</summary>
    public static string Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var r in all)
            sb.AppendLine(string.Join("  ", r.Select((cell, i) => i == r.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        return sb.ToString();
    }

    /// <summary>`workspace update ID [--name] [--role] [--skills] [--description]`: PATCH /workspaces/:id ("" clears role/description).</summary>
    public static async Task<int> UpdateWorkspaceAsync(AdminTarget target, string id, string? name, string? role,
        string? skills, string? description, TextWriter output, CancellationToken ct)
    {
        id = RequireId(id, "ID");
        var body = new JsonObject();
        if (name is not null)
        {
            if (string.IsNullOrWhiteSpace(name)) throw new CliException("--name must not be empty", ExitCodes.Usage);
            body["name"] = name.Trim();
        }
        if (role is not null) body["role"] = role.Trim();
        if (skills is not null) body["skills"] = new JsonArray(SplitSkills(skills).Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
        if (description is not null) body["description"] = description.Trim();
        if (body.Count == 0) throw new CliException("nothing to change: give --name, --role, --skills or --description", ExitCodes.Usage);

        using var admin = target.Connect();
        var updated = await admin.SendAsync(HttpMethod.Patch, $"/workspaces/{id}", body, ct).ConfigureAwait(false);
        var skillList = SkillsOf(updated);
        output.WriteLine($"Workspace {id} updated: {AdminClient.Str(updated, "name")}" +
                         (AdminClient.Str(updated, "role") is { } r ? $" ({r})" : "") +
                         (skillList.Count > 0 ? $"; skills {string.Join(",", skillList)}" : ""));
        return ExitCodes.Ok;
    }

    /// <summary>"12 s ago", "5 min ago", "3 h ago", "2 d ago", or "never".</summary>
    public static string Ago(JsonNode? seconds)
    {
        if (seconds is not JsonValue v || !v.TryGetValue<long>(out var s)) return "never";
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return s switch
        {
            < 60 => s.ToString(inv) + " s ago",
            < 3600 => (s / 60).ToString(inv) + " min ago",
            < 86400 => (s / 3600).ToString(inv) + " h ago",
            _ => (s / 86400).ToString(inv) + " d ago",
        };
    }

    public static async Task<int> ListWorkspacesAsync(AdminTarget target, TextWriter output, CancellationToken ct)
    {
        using var admin = target.Connect();
        var list = await admin.GetAsync("/admin/workspaces", ct).ConfigureAwait(false) as JsonArray ?? [];
        if (list.Count == 0)
        {
            output.WriteLine($"No workspaces on {admin.BaseUrl} yet. Create one: molecule-platform workspace create --name NAME");
            return ExitCodes.Ok;
        }
        var rows = list.OfType<JsonObject>().Select(w => new[]
        {
            AdminClient.Str(w, "id") ?? "",
            AdminClient.Str(w, "name") ?? "",
            AdminClient.Str(w, "role") ?? "-",
            AdminClient.Str(w, "status") ?? "",
            Ago(w["last_seen_seconds"]),
            AdminClient.Str(w, "parent_id") ?? "-",
            SkillsOf(w) is { Count: > 0 } s ? string.Join(",", s) : "-",
        });
        output.Write(Table(["ID", "NAME", "ROLE", "STATUS", "LAST SEEN", "PARENT", "SKILLS"], rows));
        return ExitCodes.Ok;
    }

    public static async Task<int> DeleteWorkspaceAsync(AdminTarget target, string id, bool confirm, TextWriter output, CancellationToken ct)
    {
        id = RequireId(id, "ID");
        using var admin = target.Connect();
        var path = $"/workspaces/{id}" + (confirm ? "?confirm=true" : "");
        var (status, body, _) = await admin.TrySendAsync(HttpMethod.Delete, path, null, ct).ConfigureAwait(false);
        if (status == 409 && AdminClient.Str(body, "status") == "confirmation_required")
        {
            var names = (body?["children"] as JsonArray ?? []).Select(c => AdminClient.Str(c, "name") ?? AdminClient.Str(c, "id") ?? "?");
            throw new CliException($"workspace {id} has live children ({string.Join(", ", names)}); " +
                                   "repeat with --confirm to delete it together with all its descendants.");
        }
        if (status is < 200 or >= 300)
            await admin.SendAsync(HttpMethod.Delete, path, null, ct).ConfigureAwait(false); // throws with the platform's message
        var cascade = body?["cascade_deleted"] is JsonValue v && v.TryGetValue<int>(out var n) ? n : 0;
        output.WriteLine($"Workspace {id} deleted" +
                         (cascade > 0 ? $" together with {cascade.ToString(CultureInfo.InvariantCulture)} descendant(s)" : "") +
                         "; its tokens are revoked. A running molecule-mcp for it will report the deletion.");
        return ExitCodes.Ok;
    }

    public static async Task<int> MintTokenAsync(AdminTarget target, string workspaceId, TextWriter output, CancellationToken ct)
    {
        workspaceId = RequireId(workspaceId, "WORKSPACE_ID");
        using var admin = target.Connect();
        var minted = await admin.PostAsync($"/workspaces/{workspaceId}/tokens", new JsonObject(), ct).ConfigureAwait(false);
        var token = AdminClient.Str(minted, "auth_token") ?? throw new CliException("the platform's answer has no auth_token");
        var tokenId = AdminClient.Str(minted, "id") ?? "";
        var (_, ws, _) = await admin.TrySendAsync(HttpMethod.Get, $"/workspaces/{workspaceId}", null, ct).ConfigureAwait(false);
        var name = AdminClient.Str(ws, "name") ?? "";
        output.WriteLine($"Token minted for workspace {workspaceId}" + (name == "" ? "" : $" ({name})"));
        output.WriteLine($"  token:    {token}");
        output.WriteLine("            " + Molecule.Platform.Connection.shownOnce);
        output.WriteLine($"  token id: {tokenId} (to revoke: molecule-platform token revoke {workspaceId} {tokenId})");
        output.WriteLine();
        output.Write(ConnectionLines.Block(name, workspaceId, admin.BaseUrl, token));
        return ExitCodes.Ok;
    }

    public static async Task<int> ListTokensAsync(AdminTarget target, string workspaceId, TextWriter output, CancellationToken ct)
    {
        workspaceId = RequireId(workspaceId, "WORKSPACE_ID");
        using var admin = target.Connect();
        var answer = await admin.GetAsync($"/workspaces/{workspaceId}/tokens", ct).ConfigureAwait(false);
        var tokens = answer?["tokens"] as JsonArray ?? [];
        if (tokens.Count == 0)
        {
            var (status, _, _) = await admin.TrySendAsync(HttpMethod.Get, $"/workspaces/{workspaceId}", null, ct).ConfigureAwait(false);
            output.WriteLine(status == 410
                ? $"Workspace {workspaceId} was deleted on the platform; it has no live tokens."
                : $"Workspace {workspaceId} has no live tokens. Mint one: molecule-platform token mint {workspaceId}");
            return ExitCodes.Ok;
        }
        var rows = tokens.OfType<JsonObject>().Select(t => new[]
        {
            AdminClient.Str(t, "id") ?? "",
            (AdminClient.Str(t, "prefix") ?? "") + "…",
            AdminClient.Str(t, "created_at") ?? "",
            AdminClient.Str(t, "last_used_at") ?? "never",
        });
        output.Write(Table(["TOKEN ID", "PREFIX", "CREATED", "LAST USED"], rows));
        return ExitCodes.Ok;
    }

    public static async Task<int> RevokeTokenAsync(AdminTarget target, string workspaceId, string tokenId, TextWriter output, CancellationToken ct)
    {
        workspaceId = RequireId(workspaceId, "WORKSPACE_ID");
        tokenId = RequireId(tokenId, "TOKEN_ID");
        using var admin = target.Connect();
        await admin.DeleteAsync($"/workspaces/{workspaceId}/tokens/{tokenId}", ct).ConfigureAwait(false);
        output.WriteLine($"Token {tokenId} of workspace {workspaceId} revoked. " + Molecule.Platform.Connection.revoked);
        return ExitCodes.Ok;
    }
}
