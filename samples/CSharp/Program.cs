// A Molecule workspace agent in C# without MCP: register, poll the inbox, answer each peer's delegation, acknowledge.
//
//   WORKSPACE_ID=… PLATFORM_URL=… MOLECULE_WORKSPACE_TOKEN=… dotnet run --project samples/CSharp [-- --once]
//
// Molecule.Core (F#) decides everything as data: which request to send, what an activity row means, what a tool
// call does. This program only performs the requests (HttpExecutor from Molecule.Runtime) and loops.
using System.Collections;
using System.Text.Json.Nodes;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Molecule.Core;
using Molecule.Protocol;
using Molecule.Runtime.Effects;

using var http = new HttpExecutor();
Response Send(Request request) => http.ExecuteAsync(request).GetAwaiter().GetResult();
static bool Ok(Response r) => r is Response.Reply { status: >= 200 and < 300 };

var env = MapModule.OfSeq(Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
    .Select(e => Tuple.Create((string)e.Key, e.Value as string ?? "")));
var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
var parsed = ConfigModule.parse(env, ConfigModule.stateDir(env, home, false), FSharpOption<string>.None);
if (parsed.IsError)
{
    Console.Error.Write(ConfigModule.helpText(parsed.ErrorValue));
    return 2;
}
var config = parsed.ResultValue;

// 1. register (what the canvas shows as online)
if (!Ok(Send(Api.register(config))))
{
    Console.Error.WriteLine("register failed");
    return 3;
}
Console.Error.WriteLine($"registered {config.WorkspaceId} as {config.AgentCard.Name}");

var once = args.Contains("--once");
var seen = new HashSet<string>();
// what this workspace acknowledged before (acked_seq 0 only reads it): those rows are not answered again
var floor = Send(Api.ack(config, 0L)) is Response.Reply { status: 200, body: var ackBody }
    && Json.tryParse(ackBody) is { } ackJson
    && Json.prop("last_acked_seq", ackJson.Value) is { } last
    && Json.asFloat(last.Value) is { } f
    ? (long)f.Value
    : 0L;
// 2. poll: the last 10 minutes first, then everything after the newest row seen
var query = PollQuery.NewWindow(600, FSharpOption<string>.None, 100);
while (true)
{
    if (Send(Api.activity(config, query)) is Response.Reply { status: 200, body: var body }
        && Activity.parsePage(body) is { IsOk: true } page)
    {
        var rows = page.ResultValue
            .Select(Activity.parseRow).Where(r => r.IsOk).Select(r => r.ResultValue)
            .OrderBy(row => row.At?.Value).ToList();
        foreach (var row in rows)
        {
            var handledBefore = row.Seq is { } rowSeq && rowSeq.Value <= floor;
            if (!seen.Add(row.Id) || handledBefore || Ledger.isEcho(config.WorkspaceId, row)) continue;
            var message = Ledger.messageOf(config.WorkspaceId, row);
            Console.Error.WriteLine($"message {message.ActivityId} from {message.PeerId}: {message.Text}");
            // 3. answer a peer's delegation (a canvas user's message would get send_message_to_user)
            if (message.Kind.IsPeerAgent) Reply(message);
            // 4. acknowledge it, so the platform does not deliver it again
            if (message.Seq is { } seq) Send(Api.ack(config, seq.Value));
        }
        if (rows.Count > 0) query = PollQuery.NewSinceId(rows[^1].Id, 100);
    }
    if (once) return 0;
    Thread.Sleep(2000);
}

// Replies to the sender through the same tool an MCP client would call (delegate_task).
void Reply(InboxMessage message)
{
    var arguments = new JsonObject { ["workspace_id"] = message.PeerId, ["task"] = $"Done: {message.Text}" };
    var call = Tools.parse("delegate_task", FSharpOption<JsonObject>.Some(arguments));
    if (call.IsError)
    {
        Console.Error.WriteLine($"cannot reply: {call.ErrorValue}");
        return;
    }
    var context = Dispatch.context(config, Guid.NewGuid().ToString());
    var program = Dispatch.run(context, call.ResultValue.Call);
    if (program is not null) Console.Error.WriteLine($"replied to {message.PeerId}: {Perform(program.Value).Text}");
}

// Runs a tool call's program: performs each request (and file check) it asks for and feeds the answer back.
ToolOutput Perform(Program<ToolOutput> program)
{
    while (true)
    {
        switch (program)
        {
            case Program<ToolOutput>.Done done:
                return done.Item1;
            case Program<ToolOutput>.Call call:
                program = call.Item2.Invoke(Send(call.Item1));
                break;
            case Program<ToolOutput>.CheckFiles check:
                var checks = check.paths.Select(p => File.Exists(p) ? FileCheck.NewFileOk(new FileInfo(p).Length) : FileCheck.FileMissing);
                program = check.Item2.Invoke(ListModule.OfSeq(checks));
                break;
            case Program<ToolOutput>.Pause pause:
                Thread.Sleep(TimeSpan.FromSeconds(pause.seconds));
                program = pause.Item2.Invoke(Environment.TickCount64 / 1000.0);
                break;
        }
    }
}
