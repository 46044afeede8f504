/// The Requests view in headless Chromium (`node Tests/Browser/requests.e2e.mjs`): agents raise requests over HTTP
/// with their workspace tokens (an approval, a task, a loop guard's paused pair, an expired tool-permission prompt);
/// the console lists them with counts, approves one, asks for details on another, resumes the pair, shows the expired
/// prompt without answers, follows a new request live and filters by workspace — by keyboard where a user would. An
/// approval of spec §7.2 is listed in the same inbox, marked as one, and denied by keyboard; another, asked for while
/// the view is open, appears live and is approved. Then the agents' own activity holds the request_update rows the
/// console's answers wrote, and their approvals read decided by the user.
module Molecule.Tests.Browser.RequestsBrowserTests

open System
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Threading.Tasks
open Xunit
open Xunit.Abstractions
open Molecule.Platform

let private call (meth: string) (url: string) (token: string) (body: string option) : Task<JsonNode> =
    ConsoleBrowserTests.call meth url token None body

let private str (n: JsonNode) (name: string) = n[name].GetValue<string>()

let private scriptDir () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwith "Tests/Browser/requests.e2e.mjs not found above the test assembly"
        elif File.Exists(Path.Combine(dir.FullName, "Tests", "Browser", "requests.e2e.mjs")) then Path.Combine(dir.FullName, "Tests", "Browser")
        else up dir.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

/// Runs the script to its end (at most 150 s); its stdout and stderr lines and exit code.
let private runScript (configFile: string) : Task<int * string list> =
    task {
        let psi = ProcessStartInfo("node", WorkingDirectory = scriptDir (), RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        psi.ArgumentList.Add(Path.Combine(scriptDir (), "requests.e2e.mjs"))
        psi.ArgumentList.Add configFile
        let lines = ResizeArray<string>()
        use node = new Process(StartInfo = psi)
        node.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lock lines (fun () -> lines.Add e.Data))
        node.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock lines (fun () -> lines.Add("stderr: " + e.Data)))
        node.Start() |> ignore
        node.BeginOutputReadLine()
        node.BeginErrorReadLine()
        let finished = node.WaitForExit 150000

        if not finished then
            node.Kill true
            node.WaitForExit()

        node.WaitForExit() // the output is read to its end
        return (if finished then node.ExitCode else -1), lock lines (fun () -> List.ofSeq lines)
    }

/// The request_update rows of a workspace's log (its own token), oldest first: (event, status, actor_type, body).
let private updates (url: string) (id: string) (token: string) =
    task {
        let! log = call "GET" $"{url}/workspaces/{id}/activity?type=a2a_receive" token None

        return
            [ for r in log.AsArray() |> Seq.rev do
                  if (r["method"] |> Option.ofObj |> Option.map (fun m -> m.GetValue<string>())) = Some "request_update" then
                      let b = r["request_body"]
                      let text (k: string) = b[k] |> Option.ofObj |> Option.map (fun v -> v.GetValue<string>()) |> Option.defaultValue ""
                      yield text "request_id", text "event", text "status", text "actor_type", text "body" ]
    }

type RequestsBrowserTests(output: ITestOutputHelper) =

    [<Fact>]
    member _.``requests: the console lists the agents' requests, answers them by keyboard and live; the agents' activity holds the answers``() =
        task {
            match CanvasBrowserTests.missingPrerequisites () with
            | [] -> ()
            | missing -> Assert.Fail("the browser test cannot run:\n  " + String.Join("\n  ", missing))

            let work = Molecule.Tests.Support.TempDirs.create "requests"
            let! platform = Canvas.start (Server.PlatformOptions.defaults (Path.Combine(work, "platform")))

            try
                let admin = platform.AdminToken
                let u (p: string) = platform.Url + p
                let! alpha = call "POST" (u "/workspaces") admin (Some """{"name":"Alpha","role":"builder"}""")
                let! beta = call "POST" (u "/workspaces") admin (Some """{"name":"Beta","role":"ops"}""")
                let alphaId, alphaToken, betaId, betaToken = str alpha "id", str alpha "auth_token", str beta "id", str beta "auth_token"

                let raise (id: string) (token: string) (body: string) =
                    task {
                        let! r = call "POST" (u $"/workspaces/{id}/requests") token (Some body)
                        return str r "request_id"
                    }

                let! approval = raise alphaId alphaToken """{"kind":"approval","recipient_type":"user","title":"Deploy v2?","detail":"blue-green, 5 % first","priority":"high"}"""
                let! task' = raise betaId betaToken """{"kind":"task","recipient_type":"user","title":"Rotate the keys"}"""
                let past = DateTimeOffset.UtcNow.AddMinutes(-1.0).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'")

                let! relay =
                    raise alphaId alphaToken $$"""{"kind":"approval","recipient_type":"user","title":"Bash","detail":"rm -rf build && make","source":"permission_relay","expires_at":"{{past}}"}"""

                let! loop =
                    raise alphaId alphaToken """{"kind":"approval","recipient_type":"user","title":"Alpha and Beta exchanged 40 messages in 2 minutes — pause them?","source":"loop_guard"}"""

                let! gate =
                    call "POST" (u $"/workspaces/{alphaId}/approvals") alphaToken
                        (Some """{"action":"Drop the staging database","reason":"a clean slate for the migration","context":{"migration":42}}""")

                let shots =
                    match Environment.GetEnvironmentVariable "CONSOLE_SCREENSHOTS" with
                    | s when not (String.IsNullOrWhiteSpace s) -> Path.GetFullPath s
                    | _ -> Path.Combine(work, "screenshots")

                let ws (id: string) (token: string) = JsonObject(dict [ "id", JsonValue.Create id :> JsonNode; "token", JsonValue.Create token ])
                let config = JsonObject()
                config["url"] <- JsonValue.Create platform.Url
                config["token"] <- JsonValue.Create admin
                config["alpha"] <- ws alphaId alphaToken
                config["beta"] <- ws betaId betaToken
                config["approvalId"] <- JsonValue.Create approval
                config["taskId"] <- JsonValue.Create task'
                config["relayId"] <- JsonValue.Create relay
                config["loopId"] <- JsonValue.Create loop
                config["gateId"] <- JsonValue.Create(str gate "approval_id")
                config["screenshots"] <- JsonValue.Create shots
                let configFile = Path.Combine(work, "requests.json")
                File.WriteAllText(configFile, config.ToJsonString())

                let! code, lines = runScript configFile
                let out = String.Join("\n", lines)
                output.WriteLine out
                Assert.True((code = 0), $"requests.e2e.mjs exited with {code}:\n{out}")
                Assert.Contains("OK", lines)
                Assert.Equal(11, lines |> List.filter (fun l -> l.StartsWith "STEP ") |> List.length)

                // what the agents read: the user's answers as request_update rows in their own activity
                let! forAlpha = updates platform.Url alphaId alphaToken
                Assert.Equal<(string * string * string * string * string) list>(
                    [ approval, "responded", "approved", "user", ""; loop, "responded", "approved", "user", "" ],
                    forAlpha
                )

                let! forBeta = updates platform.Url betaId betaToken
                Assert.Equal<(string * string * string * string * string) list>([ task', "message", "info_requested", "user", "Which keys, and by when?" ], forBeta)

                // the approvals, decided by the user: Alpha's denied, Beta's (asked for live) approved
                let decided (id: string) (token: string) =
                    task {
                        let! list = call "GET" (u $"/workspaces/{id}/approvals") token None
                        return [ for a in list.AsArray() -> str a "action", str a "status", str a "decided_by" ]
                    }

                let! alphaGates = decided alphaId alphaToken
                Assert.Equal<(string * string * string) list>([ "Drop the staging database", "denied", "user" ], alphaGates)
                let! betaGates = decided betaId betaToken
                Assert.Equal<(string * string * string) list>([ "Restart the worker pool", "approved", "user" ], betaGates)

                for name in [ "thread"; "approval"; "loop-guard"; "expired"; "filtered"; "420" ] do
                    let f = Path.Combine(shots, $"requests-{name}.png")
                    Assert.True(File.Exists f && FileInfo(f).Length > 10000L, "no screenshot " + f)
            finally
                platform.StopAsync().Wait(TimeSpan.FromSeconds 10.0) |> ignore
        }
