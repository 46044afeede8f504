module Molecule.Tests.Core.ConnectionsTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol

let private quick n = FsCheck.Config.QuickThrowOnFailure.WithMaxTest n

let private idA = "1111aaaa-0000-4000-8000-000000000001"
let private idB = "2222bbbb-0000-4000-8000-000000000002"
let private idC = "3333cccc-0000-4000-8000-000000000003"

let private env (pairs: (string * string) list) = Map.ofList pairs

let private parse pairs = Connections.parse (env pairs) "/state" None None

let private help pairs =
    match parse pairs with
    | Ok _ -> failwith "expected errors"
    | Result.Error es -> Connections.helpText es

[<Fact>]
let ``example: MOLECULE_WORKSPACES gives one connection per entry, the first is the primary, each with its own token`` () =
    let json = $"""[{{"id":"{idA}","token":"tokenAAAAAAAA"}},{{"id":" {idB.ToUpperInvariant()} ","token":"tokenBBBBBBBB"}}]"""
    match parse [ "MOLECULE_WORKSPACES", json; "PLATFORM_URL", "https://h/"; "WORKSPACE_ID", idC; "MOLECULE_WORKSPACE_TOKEN", "ignored" ] with
    | Ok [ a; b ] ->
        Assert.Equal(idA, a.WorkspaceId.Value)
        Assert.Equal(idB, b.WorkspaceId.Value)
        Assert.Equal("tokenAAAAAAAA", a.Token)
        Assert.Equal("tokenBBBBBBBB", b.Token)
        Assert.Equal(FromWorkspaces, b.TokenSource)
        Assert.Equal("https://h", b.PlatformUrl)
    | other -> failwith $"unexpected {other}"

[<Fact>]
let ``example: MOLECULE_WORKSPACES_JSON entries may carry their own platform_url`` () =
    let json = $"""[{{"id":"{idA}","token":"tokenAAAAAAAA","platform_url":"http://127.0.0.1:7080"}}]"""
    match parse [ "MOLECULE_WORKSPACES_JSON", json ] with
    | Ok [ a ] -> Assert.Equal("http://127.0.0.1:7080", a.PlatformUrl)
    | other -> failwith $"unexpected {other}"

[<Fact>]
let ``example: the reference's MOLECULE_WORKSPACES errors, every one listed`` () =
    let text = help [ "MOLECULE_WORKSPACES", $"""[{{"id":"{idA}","token":"t1t1t1t1"}}, 5, {{"id":"{idA}","token":"t2t2t2t2"}}, {{"id":"x"}}]"""; "PLATFORM_URL", "https://h" ]
    Assert.StartsWith("molecule-mcp: invalid MOLECULE_WORKSPACES:", text)
    Assert.Contains("  - MOLECULE_WORKSPACES[1] is not an object — got int", text)
    Assert.Contains("  - MOLECULE_WORKSPACES[3] missing 'id' or 'token'", text)
    Assert.Contains($"  - MOLECULE_WORKSPACES[2] duplicate workspace id '{idA}'", text)
    Assert.Contains("must be a non-empty JSON array", help [ "MOLECULE_WORKSPACES", "[]" ])
    Assert.Contains("must be a non-empty JSON array", help [ "MOLECULE_WORKSPACES", "{}" ])
    Assert.Contains("is not valid JSON", help [ "MOLECULE_WORKSPACES", "[{" ])
    // A blank value is unset: single mode.
    Assert.Contains("WORKSPACE_ID", help [ "MOLECULE_WORKSPACES", "   " ])

[<Fact>]
let ``rule: MOLECULE_WORKSPACE_TOKEN_FILE comes after the env token and before .auth_token, and its problems never fall back`` () =
    let single tokenEnv read authToken =
        Connections.parse
            (env ([ "WORKSPACE_ID", idA; "PLATFORM_URL", "https://h"; "MOLECULE_WORKSPACE_TOKEN_FILE", "/run/tok" ] @ tokenEnv))
            "/state" authToken (Some read)
    match single [] (Config.Contents "  from-the-file-0123\n") (Some "auth-token-file") with
    | Ok [ c ] ->
        Assert.Equal("from-the-file-0123", c.Token)
        Assert.Equal(FromTokenFile "/run/tok", c.TokenSource)
    | other -> failwith $"unexpected {other}"
    match single [ "MOLECULE_WORKSPACE_TOKEN", "from-env-0123" ] Config.NotFound None with
    | Ok [ c ] -> Assert.Equal(FromEnv, c.TokenSource)
    | other -> failwith $"unexpected {other}"
    let problem read =
        match single [] read (Some "auth-token-file") with
        | Result.Error [ Config.Invalid("MOLECULE_WORKSPACE_TOKEN_FILE", reason) ] -> reason
        | other -> failwith $"expected one token-file error, got {other}"
    Assert.Equal("points to '/run/tok' which does not exist", problem Config.NotFound)
    Assert.Equal("'/run/tok' is empty", problem (Config.Contents "  \n"))
    Assert.Equal("'/run/tok' is not readable (permission denied)", problem Config.Denied)
    Assert.Equal("'/run/tok' is not valid UTF-8", problem Config.NotUtf8)
    Assert.Equal("'/run/tok' contains internal whitespace — expected a single token", problem (Config.Contents "two words"))
    Assert.Contains("is a directory", problem Config.IsDirectory)
    Assert.Equal("points to '/run/tok' which is a named pipe (FIFO), not a regular file", problem (Config.NotRegular "a named pipe (FIFO), not a regular file"))
    Assert.Equal("'/run/tok' is larger than 4096 bytes — expected a single token", problem (Config.TooLarge Config.tokenFileLimit))
    Assert.Equal("'/run/tok' contains control or non-ASCII characters — expected the token exactly as the canvas shows it", problem (Config.Contents "t\u00f6ken\n"))

[<Fact>]
let ``rule: single-workspace environments parse exactly as before`` () =
    Check.One(
        quick 200,
        Prop.forAll (Arb.fromGen ConfigTests.genUuid) (fun id ->
            let e = env [ "WORKSPACE_ID", id; "PLATFORM_URL", "https://h"; "MOLECULE_WORKSPACE_TOKEN", "tok-0123456789" ]
            Connections.parse e "/s" None None = (Config.parse e "/s" None |> Result.map List.singleton))
    )
