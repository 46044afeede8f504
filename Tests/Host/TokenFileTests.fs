/// MOLECULE_WORKSPACE_TOKEN_FILE on the real binary: files that are not a token (a FIFO, /dev/zero, 1 GB, control or
/// non-ASCII characters) stop the start with one clear line and exit 2, at once; rotations are seen however they are
/// made (a Kubernetes secret's `..data` link swapped, `cp -p` / `rsync -t` keeping size and time stamp); a rotation to
/// a bad file keeps the token in use and says why.
module Molecule.Tests.Host.TokenFileTests

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Xunit
open Molecule.Tests.Host.Harness

let private sh (command: string) =
    use p = Process.Start(ProcessStartInfo("/bin/sh", [| "-c"; command |], UseShellExecute = false))
    p.WaitForExit()
    if p.ExitCode <> 0 then failwith $"{command}: exit {p.ExitCode}"

let private fileEnv (platform: Platform) (ws: Workspace) (path: string) =
    (agentEnv platform ws |> List.filter (fun (k, _) -> k <> "MOLECULE_WORKSPACE_TOKEN"))
    @ [ "MOLECULE_WORKSPACE_TOKEN_FILE", path; "MOLECULE_MCP_VERBOSE", "1" ]

let private mint (platform: Platform) (ws: Workspace) =
    task {
        let! minted = platform.Send("POST", $"/workspaces/{ws.Id}/tokens", "{}", platform.AdminToken)
        return minted.Json["auth_token"].GetValue<string>()
    }

/// Revokes every token of the workspace but `keep`.
let private revokeAllBut (platform: Platform) (ws: Workspace) (keep: string) =
    task {
        let! listed = platform.Send("GET", $"/workspaces/{ws.Id}/tokens", token = platform.AdminToken)
        let all = listed.Json["tokens"].AsArray() |> Seq.map (fun t -> t["id"].GetValue<string>()) |> List.ofSeq
        // the token to keep is the newest one (minted last)
        for id in List.take (all.Length - 1) all do
            let! _ = platform.Send("DELETE", $"/workspaces/{ws.Id}/tokens/{id}", token = platform.AdminToken)
            ()
        ignore keep
    }

let private callWorks (p: RawProcess) =
    task {
        let! r = p.CallTool("get_workspace_info", "{}")
        Assert.False(resultIsError r, resultText r + "\n" + p.Describe())
    }

[<Fact>]
let ``a token file that is a FIFO, a device, 1 GB or holds control or non-ASCII characters stops the start: one clear line, exit 2, at once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "bad token files"
        let dir = tempDir "token-files"
        let fifo = Path.Combine(dir, "fifo")
        sh $"mkfifo '{fifo}'"
        let huge = Path.Combine(dir, "huge")
        using (new FileStream(huge, FileMode.CreateNew)) (fun f -> f.SetLength(1024L * 1024L * 1024L))
        let nonAscii = Path.Combine(dir, "non-ascii")
        File.WriteAllText(nonAscii, "t\u00f6ken-with-umlaut-0123456789\n")
        let control = Path.Combine(dir, "control")
        File.WriteAllText(control, "token\u0007with-bell-0123456789\n")
        for path, expected in
            [ fifo, "named pipe (FIFO)"
              "/dev/zero", "character device"
              huge, "larger than 4096 bytes"
              nonAscii, "control or non-ASCII characters"
              control, "control or non-ASCII characters" ] do
            let sw = Stopwatch.StartNew()
            use p = RawProcess.Start(fileEnv platform ws path)
            let! code = p.WaitExit 15.0
            Assert.True((code = 2), $"{path}: exit {code}\n{p.Describe()}")
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds 10.0, $"{path}: the start took {sw.Elapsed}")
            let lines = p.StderrLines |> List.filter (fun l -> l.Contains "MOLECULE_WORKSPACE_TOKEN_FILE" && l.Contains expected)
            Assert.True(lines.Length = 1, $"{path}: expected one line naming the variable and '{expected}':\n{p.Stderr}")
            Assert.DoesNotContain(p.StderrLines, fun l -> l.TrimStart().StartsWith "at " || l.Contains "Exception")
            Assert.DoesNotContain("umlaut", p.Stderr)
            Assert.Equal("", p.StdoutText)
    }

[<Fact>]
let ``a Kubernetes secret rotation (the ..data link swapped to a new folder) is used without a restart`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "k8s secret"
        // what the kubelet lays out: token → ..data/token, ..data → ..<timestamp>/
        let dir = tempDir "k8s-secret"
        let first = Directory.CreateDirectory(Path.Combine(dir, "..2026_01_01_00_00_00.1")).FullName
        File.WriteAllText(Path.Combine(first, "token"), ws.Token)
        File.CreateSymbolicLink(Path.Combine(dir, "..data"), Path.GetFileName first) |> ignore
        let path = Path.Combine(dir, "token")
        File.CreateSymbolicLink(path, "..data/token") |> ignore
        use p = RawProcess.Start(fileEnv platform ws path)
        let! _ = p.Initialize()
        do! callWorks p
        // rotate as the kubelet does: a new folder, a new ..data link renamed over the old one, the old folder removed
        let! fresh = mint platform ws
        let second = Directory.CreateDirectory(Path.Combine(dir, "..2026_01_01_01_00_00.2")).FullName
        File.WriteAllText(Path.Combine(second, "token"), fresh)
        File.CreateSymbolicLink(Path.Combine(dir, "..data_tmp"), Path.GetFileName second) |> ignore
        sh $"cd '{dir}' && mv -T ..data_tmp ..data" // rename(2) over the old link, as the kubelet does
        Directory.Delete(first, true)
        do! waitUntil (secs 10.0) "the new token in use" p.Describe (fun () -> let lines = p.StderrLines in lines |> List.exists (fun l -> l.Contains "a new token from"))
        do! revokeAllBut platform ws fresh
        do! callWorks p
        do! Task.Delay 1000 // heartbeats under the new token
        Assert.DoesNotContain(p.StderrLines, fun l -> l.Contains "auth failure")
        assertNoSecrets [ ws.Token; fresh ] "stderr" p.StderrLines
    }

[<Fact>]
let ``a rotation that keeps size and time stamp (cp -p, rsync -t) is used without a restart`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "cp -p"
        let path = Path.Combine(tempDir "token-cp", "token")
        File.WriteAllText(path, ws.Token)
        let stamp = File.GetLastWriteTimeUtc path
        use p = RawProcess.Start(fileEnv platform ws path)
        let! _ = p.Initialize()
        do! callWorks p
        let! fresh = mint platform ws
        Assert.Equal(ws.Token.Length, fresh.Length)
        File.WriteAllText(path, fresh)
        File.SetLastWriteTimeUtc(path, stamp) // same size, same time stamp
        do! waitUntil (secs 10.0) "the new token in use" p.Describe (fun () -> let lines = p.StderrLines in lines |> List.exists (fun l -> l.Contains "a new token from"))
        do! revokeAllBut platform ws fresh
        do! callWorks p
        assertNoSecrets [ ws.Token; fresh ] "stderr" p.StderrLines
    }

[<Fact>]
let ``a rotation to a bad file keeps the token in use and says why, once`` () =
    task {
        use! platform = Platform.StartAsync()
        let! ws = platform.CreateWorkspace "bad rotation"
        let dir = tempDir "token-bad-rotation"
        let path = Path.Combine(dir, "token")
        File.WriteAllText(path, ws.Token + "\n")
        use p = RawProcess.Start(fileEnv platform ws path)
        let! _ = p.Initialize()
        do! callWorks p
        let kept (what: string) = p.StderrLines |> List.filter (fun l -> l.Contains "keeping the token read before" && l.Contains what)
        // non-ASCII characters (the start refuses them; so does a rotation)
        File.WriteAllText(path, "t\u00f6ken-with-umlaut-0123456789\n")
        do! waitUntil (secs 10.0) "the non-ASCII token refused" p.Describe (fun () -> not (kept "non-ASCII").IsEmpty)
        do! callWorks p
        // a FIFO in its place: never opened, the server does not hang
        File.Delete path
        sh $"mkfifo '{path}'"
        do! waitUntil (secs 10.0) "the FIFO refused" p.Describe (fun () -> not (kept "named pipe").IsEmpty)
        do! callWorks p
        // 1 GB: never read
        File.Delete path
        using (new FileStream(path, FileMode.CreateNew)) (fun f -> f.SetLength(1024L * 1024L * 1024L))
        do! waitUntil (secs 10.0) "the huge file refused" p.Describe (fun () -> not (kept "larger than").IsEmpty)
        do! Task.Delay 1500 // several looks at the same bad file: said once
        do! callWorks p
        Assert.Equal(1, (kept "larger than").Length)
        Assert.Equal(1, (kept "non-ASCII").Length)
        Assert.DoesNotContain("umlaut", p.Stderr)
        assertNoSecrets [ ws.Token ] "stderr" p.StderrLines
    }
