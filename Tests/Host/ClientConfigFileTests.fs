/// `molecule-mcp config <client> --write` never loses or corrupts a byte of the user's config: over a corpus of
/// client configs (Tests/Data/client-configs: comments, other servers, unusual formatting, an existing entry in each
/// shape) every byte outside the entry stays, in-process and through the published binary; properties over generated
/// configs; and every hostile file (unreadable, a symlink, a `.bak` symlink, a FIFO, huge, invalid UTF-8, a read-only
/// folder, a file that does not parse) is left alone with a clear error and a non-zero exit, or written through safely.
module Molecule.Tests.Host.ClientConfigFileTests

open System
open System.Diagnostics
open System.IO
open System.Text
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Protocol
open Molecule.Host.Cli
open Molecule.Host.Cli.ConfigFiles
open Molecule.Tests.Support

let private utf8 = UTF8Encoding(false)

/// Bytes as text, a BOM kept (File.ReadAllText would drop it).
let private readText (path: string) = utf8.GetString(File.ReadAllBytes path)

let private workspace = "1f7e8a52-3b1c-4d2e-8f90-a1b2c3d4e5f6"
let private token = "tok-NEW-abcdefghijklmnopqrstuvwxyz0123456789ABC"
let private corpusCommand = "/opt/molecule/bin/molecule-mcp"
let private env = [ "WORKSPACE_ID", workspace; "PLATFORM_URL", "http://127.0.0.1:7080"; "MOLECULE_WORKSPACE_TOKEN", token ]
let private entry = ServerEntry("molecule", corpusCommand, env)

let private corpusDir () = Path.Combine(TestData.dir (), "client-configs")

/// Every case of the corpus: (client, the case's file, the expected file).
let private cases () =
    [ for dir in Directory.GetDirectories(corpusDir ()) do
          let client = (ClientConfig.parseClient (Path.GetFileName dir)).Value
          for f in Directory.GetFiles dir |> Array.sort do
              let name = Path.GetFileName f
              if not (name.Contains ".expected.") && not (name.StartsWith ".") then
                  let expected = Path.Combine(dir, Path.GetFileNameWithoutExtension f + ".expected" + Path.GetExtension f)
                  yield client, f, expected ]

let private merge client text =
    let edit = ConfigCommand.Merge(client, text, entry)
    match edit.Error with
    | null -> edit.Text
    | e -> failwith e

/// The one place a merge changed: `before` = P + X + S and `after` = P + Y + S with P and S as long as they can be.
let private changed (before: string) (after: string) =
    let mutable p = 0
    while p < before.Length && p < after.Length && before[p] = after[p] do
        p <- p + 1
    let mutable s = 0
    while s < before.Length - p && s < after.Length - p && before[before.Length - 1 - s] = after[after.Length - 1 - s] do
        s <- s + 1
    before.Substring(p, before.Length - p - s), after.Substring(p, after.Length - p - s)

[<Fact>]
let ``corpus: every client config merges to its expected file byte for byte, and merging again changes nothing`` () =
    let all = cases ()
    Assert.True(all.Length >= 20, $"the corpus has {all.Length} cases")
    for client, clientName in [ ClientConfig.ClaudeCode, "claude-code"; ClientConfig.Codex, "codex"; ClientConfig.Hermes, "hermes"; ClientConfig.Cursor, "cursor"; ClientConfig.Cline, "cline"; ClientConfig.Gemini, "gemini"; ClientConfig.OpenCode, "opencode" ] do
        Assert.True(all |> List.exists (fun (c, _, _) -> c = client), $"no {clientName} config in the corpus")
    for client, file, expected in all do
        let text = readText file
        let merged = merge client text
        Assert.True(File.Exists expected, $"no expected file for {file}")
        let want = readText expected
        if merged <> want then
            let kept = TempDirs.keep "config-corpus" (TempDirs.create "actual")
            File.WriteAllText(Path.Combine(kept, Path.GetFileName expected), merged)
            Assert.Fail($"{file}: the merge differs from {Path.GetFileName expected}; the actual text is kept in {kept}")
        Assert.Equal(merged, merge client merged)
        // the old text outside the one changed span is the new text's, byte for byte
        let removed, added = changed text merged
        Assert.Equal(text.Length - removed.Length, merged.Length - added.Length)
        Assert.DoesNotContain("old-token", merged)

[<Fact>]
let ``files that do not parse, or hold mcp servers in a shape that cannot be edited alone, are refused with the reason`` () =
    let refused client text (reason: string) =
        let edit = ConfigCommand.Merge(client, text, entry)
        Assert.True(isNull edit.Text, $"merged {text}")
        Assert.Contains(reason, edit.Error)
    refused ClientConfig.ClaudeCode "{\"mcpServers\": {" "not valid JSON"
    refused ClientConfig.ClaudeCode "[1, 2]" "not a JSON object"
    refused ClientConfig.Cursor "{\"mcpServers\": []}" "\"mcpServers\" is not an object"
    refused ClientConfig.Cursor "{\"mcpServers\": {}, \"mcpServers\": {}}" "\"mcpServers\" more than once"
    refused ClientConfig.Codex "model = \n" "not valid TOML"
    refused ClientConfig.Codex "a = 1\na = 2\n" "not valid TOML"
    refused ClientConfig.Codex "mcp_servers = { other = { command = \"x\" } }\n" "inline table"
    refused ClientConfig.Codex "mcp_servers = 3\n" "not a table"
    refused ClientConfig.Codex "[[mcp_servers.molecule]]\ncommand = \"x\"\n" "array of tables"
    refused ClientConfig.Hermes "mcp_servers: [a, b]\n" "is not a mapping"
    refused ClientConfig.Hermes "a: [\n" "not valid YAML"
    refused ClientConfig.Hermes "a: 1\n---\nb: 2\n" "several YAML documents"
    refused ClientConfig.Hermes "mcp_servers:\n  molecule: 3\n" "is not a mapping"

// ------------------------------------------------------------------------------------------------ properties

let private names = Gen.elements [ "github"; "time"; "fs"; "docs-server"; "a"; "z9" ]
let private words = Gen.elements [ "npx"; "uvx"; "x y"; "quote\"d"; "back\\slash"; "ünï"; "tab\there"; "" ]

/// A JSON config as the pieces it is written from: other servers, maybe an old molecule entry (with a key of the
/// user's), an indentation, line endings.
let private jsonConfigs =
    gen {
        let! others = Gen.listOfLength 3 (Gen.zip names words) |> Gen.map (List.distinctBy fst)
        let! hasOld = Gen.elements [ true; false ]
        let! position = Gen.choose (0, others.Length)
        let! unit = Gen.elements [ "  "; "    "; "\t" ]
        let! nl = Gen.elements [ "\n"; "\r\n" ]
        let! compact = Gen.elements [ false; false; true ]
        let server (name: string, command: string) = name, (Json.obj [ "command", Json.str command; "args", Json.arr [ Json.str "-y" ] ] :> Text.Json.Nodes.JsonNode)
        let servers = others |> List.map server
        let old = "molecule", (Json.obj [ "command", Json.str "env"; "args", Json.arr [ Json.str "WORKSPACE_ID=x" ]; "timeout", Json.num 30 ] :> Text.Json.Nodes.JsonNode)
        let members = if hasOld then List.insertAt position old servers else servers
        let root = Json.obj [ "theme", Json.str "dark"; "mcpServers", (Json.obj members :> Text.Json.Nodes.JsonNode); "tail", Json.bool true ]
        return JsonConfigEdit.Render(root, compact, unit, "", nl) + (if compact then "" else nl), hasOld
    }

[<Fact>]
let ``rule: config --write changes only its own entry in a JSON config: one span, the rest byte for byte, every other server kept`` () =
    Check.One(
        Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll (Arb.fromGen jsonConfigs) (fun (text, hasOld) ->
            let merged = merge ClientConfig.ClaudeCode text
            let before = Json.tryParse text |> Option.get
            let after = Json.tryParse merged |> Option.get
            let removed, _ = changed text merged
            let entryAfter = after["mcpServers"]["molecule"]
            // the entry is ours, the user's own key carried
            Json.stringProp "command" entryAfter = Some corpusCommand
            && Json.stringProp "WORKSPACE_ID" entryAfter["env"] = Some workspace
            && (entryAfter.AsObject().ContainsKey "args" |> not)
            && (not hasOld || entryAfter["timeout"].GetValue<int>() = 30)
            // everything else as it was
            && (before.AsObject() |> Seq.forall (fun kv -> kv.Key = "mcpServers" || Text.Json.Nodes.JsonNode.DeepEquals(kv.Value, after[kv.Key])))
            && (before["mcpServers"].AsObject() |> Seq.forall (fun kv -> kv.Key = "molecule" || Text.Json.Nodes.JsonNode.DeepEquals(kv.Value, after["mcpServers"][kv.Key])))
            // a new entry removes nothing; a replaced one removes only the old entry's text
            && (hasOld || removed = "")
            && (not hasOld || (removed.Contains "WORKSPACE_ID=x" && not (removed.Contains "-y\"")))
            && merge ClientConfig.ClaudeCode merged = merged)
    )

/// A Codex config from pieces: other server tables, maybe the old entry in one of its shapes, comments, blank lines.
let private tomlConfigs =
    gen {
        let! others = Gen.listOfLength 3 (Gen.zip names words) |> Gen.map (List.distinctBy fst)
        let! shape = Gen.choose (0, 3)
        let! position = Gen.choose (0, others.Length)
        let! nl = Gen.elements [ "\n"; "\r\n" ]
        let table (name: string, command: string) =
            $"# {name}\n[mcp_servers.{ClientConfig.tomlString name}]\ncommand = {ClientConfig.tomlString command}\nargs = [\n  \"-y\",  # why\n]\n\n"
        let old =
            match shape with
            | 0 -> ""
            | 1 -> "[mcp_servers.molecule]\ncommand = \"env\"\nstartup_timeout_sec = 30\nenv = { WORKSPACE_ID = \"x\" }\n\n"
            | 2 -> "[mcp_servers.\"molecule\"]\ncommand = 'old'\nstartup_timeout_sec = 30\n\n[mcp_servers.molecule.env]\nWORKSPACE_ID = \"x\"\n\n"
            | _ -> "[mcp_servers.'molecule']\ncommand = \"old\"\nstartup_timeout_sec = 30\nargs = [\n  \"a\",\n  \"b\",\n]\n\n"
        let pieces = others |> List.map table |> List.insertAt position old
        let text = "model = \"o3\"  # top\n\n" + String.concat "" pieces + "[tui]\nnotifications = true\n"
        return text.Replace("\n", nl), shape > 0
    }

let private tomlModel (text: string) =
    Tomlyn.TomlSerializer.Deserialize<Tomlyn.Model.TomlTable>(text, Tomlyn.TomlSerializerOptions())

[<Fact>]
let ``rule: config --write changes only its own entry in a Codex TOML config: valid TOML, the rest byte for byte, comments kept`` () =
    Check.One(
        Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll (Arb.fromGen tomlConfigs) (fun (text, hasOld) ->
            let merged = merge ClientConfig.Codex text
            let before = tomlModel text
            let after = tomlModel merged
            let servers (m: Tomlyn.Model.TomlTable) = m["mcp_servers"] :?> Tomlyn.Model.TomlTable
            let molecule = servers after |> fun s -> s["molecule"] :?> Tomlyn.Model.TomlTable
            let env = molecule["env"] :?> Tomlyn.Model.TomlTable
            let othersKept =
                servers before
                |> Seq.forall (fun kv -> kv.Key = "molecule" || Tomlyn.TomlSerializer.Serialize(kv.Value, Tomlyn.TomlSerializerOptions()) = Tomlyn.TomlSerializer.Serialize((servers after)[kv.Key], Tomlyn.TomlSerializerOptions()))
            string molecule["command"] = corpusCommand
            && string env["MOLECULE_WORKSPACE_TOKEN"] = token
            && not (molecule.ContainsKey "args")
            && (not hasOld || molecule["startup_timeout_sec"] = box 30L)
            && othersKept
            && string after["model"] = "o3"
            // every comment and every other server's text is still there
            && [ "# top"; "# why"; "[tui]" ] |> List.forall merged.Contains
            && merge ClientConfig.Codex merged = merged)
    )

/// A hermes config from pieces: block or flow mcp_servers, indentation, maybe the old entry, a block scalar.
let private yamlConfigs =
    gen {
        let! others = Gen.listOfLength 3 (Gen.zip names words) |> Gen.map (List.distinctBy fst)
        let! unit = Gen.elements [ "  "; "    "; "   " ]
        let! hasOld = Gen.elements [ true; false ]
        let! position = Gen.choose (0, others.Length)
        let! flow = Gen.elements [ false; false; true ]
        let q (s: string) = Json.quote s
        if flow then
            let items = others |> List.map (fun (n, c) -> $"{n}: {{command: {q c}, args: [-y]}}")
            let items = if hasOld then List.insertAt position "molecule: {command: old, timeout: 30}" items else items
            let joined = String.Join(", ", items)
            let text = "model: x\nmcp_servers: {" + joined + "}\nmemory: {enabled: true}\n"
            return text, hasOld
        else
            let block (n: string, c: string) =
                $"{unit}{n}:\n{unit}{unit}command: {q c}\n{unit}{unit}notes: |\n{unit}{unit}{unit}first\n\n{unit}{unit}{unit}third\n\n"
            let old = $"{unit}molecule:\n{unit}{unit}command: old\n{unit}{unit}env:\n{unit}{unit}{unit}A: '1'\n{unit}{unit}timeout: 30  # mine\n"
            let items = others |> List.map block
            let items = if hasOld then List.insertAt position old items else items
            let text = "model: x\nmcp_servers:  # servers\n" + String.concat "" items + "# after\nterminal:\n" + unit + "backend: local\n"
            return text, hasOld
    }

let private yamlRoot (text: string) =
    let s = YamlDotNet.RepresentationModel.YamlStream()
    s.Load(new StringReader(text))
    s.Documents[0].RootNode :?> YamlDotNet.RepresentationModel.YamlMappingNode

let private yamlGet (m: YamlDotNet.RepresentationModel.YamlMappingNode) (key: string) =
    m.Children[YamlDotNet.RepresentationModel.YamlScalarNode key]

[<Fact>]
let ``rule: config --write changes only its own entry in a hermes YAML config: block or flow, any indentation, block scalars kept`` () =
    Check.One(
        Config.QuickThrowOnFailure.WithMaxTest 200,
        Prop.forAll (Arb.fromGen yamlConfigs) (fun (text, hasOld) ->
            let merged = merge ClientConfig.Hermes text
            let before = yamlRoot text
            let after = yamlRoot merged
            let servers (m: YamlDotNet.RepresentationModel.YamlMappingNode) = yamlGet m "mcp_servers" :?> YamlDotNet.RepresentationModel.YamlMappingNode
            let molecule = yamlGet (servers after) "molecule" :?> YamlDotNet.RepresentationModel.YamlMappingNode
            let env = yamlGet molecule "env" :?> YamlDotNet.RepresentationModel.YamlMappingNode
            let othersKept =
                (servers before).Children
                |> Seq.forall (fun kv -> (string kv.Key) = "molecule" || (servers after).Children[kv.Key].Equals(kv.Value))
            string (yamlGet molecule "command") = corpusCommand
            && string (yamlGet env "MOLECULE_WORKSPACE_TOKEN") = token
            && (not hasOld || string (yamlGet molecule "timeout") = "30")
            && othersKept
            && string (yamlGet after "model") = "x"
            && (servers after).Children.Count = (servers before).Children.Count + (if hasOld then 0 else 1)
            && merge ClientConfig.Hermes merged = merged)
    )

// ------------------------------------------------------------------------------------------------ through the binary

type private Run = { Code: int; Out: string; Err: string }

let private isRoot () = Environment.UserName = "root"

/// `molecule-mcp config <args>` with HOME and the entry's environment; as user nobody when `asNobody` (root only).
let private runConfig (home: string) (asNobody: bool) (args: string list) =
    let binary = Binary.path ()
    let file, argv =
        if asNobody then "setpriv", [ "--reuid=65534"; "--regid=65534"; "--clear-groups"; binary ] @ args
        else binary, args
    let psi = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    for a in argv do
        psi.ArgumentList.Add a
    psi.Environment.Clear()
    psi.Environment["PATH"] <- Environment.GetEnvironmentVariable "PATH"
    psi.Environment["HOME"] <- home
    for (k, v) in env do
        psi.Environment[k] <- v
    use p = Process.Start psi
    p.StandardInput.Close()
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit 20000) then
        p.Kill true
        failwith $"molecule-mcp {String.Join(' ', args)} did not finish within 20 s (HOME {home})"
    { Code = p.ExitCode; Out = out.Result; Err = err.Result }

let private sh (command: string) =
    let psi = ProcessStartInfo("/bin/sh", RedirectStandardError = true, UseShellExecute = false)
    psi.ArgumentList.Add "-c"
    psi.ArgumentList.Add command
    use p = Process.Start psi
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    if p.ExitCode <> 0 then failwith $"{command}: {err}"

let private configPath client home = (ClientConfig.configPath client home).Value

[<Fact>]
let ``corpus through the binary: config --write writes the expected file, keeps the old one as .bak and the rest byte for byte`` () =
    let command = ClientConfig.launchCommand (Molecule.Launching.LaunchPath.Facts(Binary.path ()))
    for client, file, expected in cases () do
        let home = TempDirs.create "config-home"
        let target = configPath client home
        Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
        File.Copy(file, target)
        let run = runConfig home false [ "config"; ClientConfig.clientName client; "--write" ]
        Assert.True((run.Code = 0), $"{file}: exit {run.Code}\n{run.Err}")
        Assert.Contains("Wrote server 'molecule'", run.Out)
        Assert.DoesNotContain(token, run.Out + run.Err)
        let want = (readText expected).Replace(corpusCommand, command)
        Assert.Equal(want, readText target)
        Assert.Equal<byte[]>(File.ReadAllBytes file, File.ReadAllBytes(target + ".bak"))
        // again: nothing to change, nothing written, the backup of the user's own file kept
        let again = runConfig home false [ "config"; ClientConfig.clientName client; "--write" ]
        Assert.True((again.Code = 0), again.Err)
        Assert.Contains("nothing changed", again.Out)
        Assert.Equal(want, readText target)
        Assert.Equal<byte[]>(File.ReadAllBytes file, File.ReadAllBytes(target + ".bak"))
        TempDirs.remove home

/// A home with a Claude Code config holding `text`.
let private claudeHome (text: string) =
    let home = TempDirs.create "config-hostile"
    let path = Path.Combine(home, ".claude.json")
    File.WriteAllText(path, text)
    home, path

let private original = "{\n  \"mcpServers\": {\n    \"other\": { \"command\": \"other-server\" }\n  }\n}\n"

let private refusedAlone (run: Run) (what: string) =
    Assert.True((run.Code = 1), $"exit {run.Code}, expected 1\n{run.Out}\n{run.Err}")
    Assert.Contains(what, run.Err)
    Assert.Contains("left", run.Err)
    Assert.Equal("", run.Out)

[<Fact>]
let ``hostile files: unreadable, a FIFO, a device, huge, invalid UTF-8, unparseable, a read-only folder — each left alone with one clear error`` () =
    // A FIFO where the config should be: refused at once, never opened (no hang).
    let home, path = claudeHome ""
    File.Delete path
    sh $"mkfifo '{path}'"
    refusedAlone (runConfig home false [ "config"; "claude-code"; "--write" ]) "named pipe"
    // A link to /dev/zero: a device, never read.
    let home, path = claudeHome ""
    File.Delete path
    File.CreateSymbolicLink(path, "/dev/zero") |> ignore
    refusedAlone (runConfig home false [ "config"; "claude-code"; "--write" ]) "character device"
    // 300 MB (sparse): refused before reading.
    let home, path = claudeHome ""
    using (new FileStream(path, FileMode.Open)) (fun f -> f.SetLength(300L * 1024L * 1024L))
    refusedAlone (runConfig home false [ "config"; "claude-code"; "--write" ]) "larger than"
    Assert.Equal(300L * 1024L * 1024L, FileInfo(path).Length)
    // Invalid UTF-8: not rewritten as U+FFFD.
    let home, path = claudeHome ""
    let bytes = Array.append (Encoding.UTF8.GetBytes "{\"note\": \"caf") [| 0xE9uy; byte '"'; byte '}' |]
    File.WriteAllBytes(path, bytes)
    refusedAlone (runConfig home false [ "config"; "claude-code"; "--write" ]) "not valid UTF-8"
    Assert.Equal<byte[]>(bytes, File.ReadAllBytes path)
    Assert.False(File.Exists(path + ".bak"))
    // Files that do not parse, one per format: untouched, no backup.
    for client, text in [ ClientConfig.ClaudeCode, "{\"mcpServers\": {\"a\": 1,,}}"; ClientConfig.Codex, "[mcp_servers.x\ncommand = 1\n"; ClientConfig.Hermes, "mcp_servers: {a: [\n" ] do
        let home = TempDirs.create "config-broken"
        let path = configPath client home
        Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
        File.WriteAllText(path, text)
        refusedAlone (runConfig home false [ "config"; ClientConfig.clientName client; "--write" ]) "not valid"
        Assert.Equal(text, File.ReadAllText path)
        Assert.False(File.Exists(path + ".bak"))
    // Unreadable (root-owned 0600, as `sudo claude` leaves it) and a read-only folder: as another user.
    let unreadableHome, unreadable = claudeHome original
    let readOnlyHome, readOnly = claudeHome original
    if isRoot () then
        sh $"chown 65534:65534 '{unreadableHome}' && chmod 600 '{unreadable}' && chown 65534:65534 '{readOnly}' && chmod 755 '{readOnlyHome}'"
    else
        sh $"chmod 000 '{unreadable}' && chmod 555 '{readOnlyHome}'"
    let asOther = isRoot ()
    let run = runConfig unreadableHome asOther [ "config"; "claude-code"; "--write" ]
    refusedAlone run "cannot read"
    Assert.Contains("chown", run.Err)
    Assert.Equal(original, File.ReadAllText unreadable)
    Assert.False(File.Exists(unreadable + ".bak"))
    let run = runConfig readOnlyHome asOther [ "config"; "claude-code"; "--write" ]
    refusedAlone run ".bak"
    Assert.Equal(original, File.ReadAllText readOnly)
    if not (isRoot ()) then sh $"chmod 755 '{readOnlyHome}' && chmod 600 '{unreadable}'"

[<Fact>]
let ``links: a symlinked config is written through (the link stays), a .bak link is replaced and its target never touched`` () =
    let home = TempDirs.create "config-links"
    let dotfiles = Directory.CreateDirectory(Path.Combine(home, "dotfiles")).FullName
    let real = Path.Combine(dotfiles, "claude.json")
    File.WriteAllText(real, original)
    let path = Path.Combine(home, ".claude.json")
    File.CreateSymbolicLink(path, real) |> ignore
    let victim = Path.Combine(home, "precious.txt")
    File.WriteAllText(victim, "do not overwrite\n")
    File.CreateSymbolicLink(path + ".bak", victim) |> ignore
    let run = runConfig home false [ "config"; "claude-code"; "--write" ]
    Assert.True((run.Code = 0), run.Err)
    Assert.Contains(real, run.Out)
    Assert.Equal(real, FileInfo(path).LinkTarget)
    let written = Json.tryParse (File.ReadAllText real) |> Option.get
    Assert.Equal(Some "other-server", Json.stringProp "command" (written["mcpServers"]["other"]))
    Assert.NotNull(written["mcpServers"]["molecule"])
    Assert.Equal("do not overwrite\n", File.ReadAllText victim)
    Assert.Null(FileInfo(path + ".bak").LinkTarget)
    Assert.Equal(original, File.ReadAllText(path + ".bak"))
    // A link to nothing: refused, the link left as it is.
    let home = TempDirs.create "config-dangling"
    let path = Path.Combine(home, ".claude.json")
    File.CreateSymbolicLink(path, Path.Combine(home, "gone.json")) |> ignore
    refusedAlone (runConfig home false [ "config"; "claude-code"; "--write" ]) "does not exist"
    Assert.False(File.Exists(Path.Combine(home, "gone.json")))
