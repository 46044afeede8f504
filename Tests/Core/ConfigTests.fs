module Molecule.Tests.Core.ConfigTests

open System
open Xunit
open FsCheck
open FsCheck.FSharp
open Molecule.Core
open Molecule.Protocol

let private check (n: int) (prop: Property) =
    Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest n, prop)

let private ok r =
    match r with
    | Ok v -> v
    | Result.Error e -> failwith ("expected Ok, got Error: " + (e.ToString()))

let private errs r =
    match r with
    | Ok _ -> []
    | Result.Error es -> es

let private strOf (chars: char list) = String(List.toArray chars)

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

let private hex = "0123456789abcdefABCDEF" |> Seq.toList

let genUuid: Gen<string> =
    gen {
        let! cs = Gen.listOfLength 32 (Gen.elements hex)
        let s = strOf cs
        return $"{s.Substring(0, 8)}-{s.Substring(8, 4)}-{s.Substring(12, 4)}-{s.Substring(16, 4)}-{s.Substring(20)}"
    }

let private tokenChars =
    [ 'a' .. 'z' ] @ [ 'A' .. 'Z' ] @ [ '0' .. '9' ] @ [ '-'; '_'; '.'; '~'; '+'; '/'; '=' ]

/// Realistic tokens (base64url-ish, ≥ 16 characters).
let genToken: Gen<string> =
    gen {
        let! n = Gen.choose (16, 48)
        let! cs = Gen.listOfLength n (Gen.elements tokenChars)
        return strOf cs
    }

let genSpaces: Gen<string> = Gen.elements [ ""; " "; "  "; "\t"; "\n"; " \r\n " ]

let genBlank: Gen<string option> = Gen.elements [ None; Some ""; Some "  "; Some "\t\n" ]

let private label: Gen<string> =
    gen {
        let! first = Gen.elements ([ 'a' .. 'z' ] @ [ 'A' .. 'Z' ])
        let! rest = Gen.listOf (Gen.elements ([ 'a' .. 'z' ] @ [ 'A' .. 'Z' ] @ [ '0' .. '9' ]))
        return strOf (first :: List.truncate 10 rest)
    }

/// (host as written, canonical host in the origin)
let genHost: Gen<string * string> =
    Gen.oneof
        [ gen {
              let! labels = Gen.listOf label
              let! tld = label
              let h = String.Join(".", labels @ [ tld ] |> List.truncate 4)
              return h, h.ToLowerInvariant()
          }
          gen {
              let! a = Gen.choose (1, 254)
              let! b = Gen.choose (0, 255)
              let! c = Gen.choose (0, 255)
              let! d = Gen.choose (0, 255)
              let h = $"{a}.{b}.{c}.{d}"
              return h, h
          }
          Gen.elements
              [ "[::1]", "[::1]"
                "[2001:DB8::1]", "[2001:db8::1]"
                "[fe80::1:2]", "[fe80::1:2]"
                "localhost", "localhost" ] ]

type UrlParts =
    { Scheme: string
      Host: string
      CanonicalHost: string
      Port: int option
      Path: string
      Trailing: string
      Pad: string }

let genUrlParts: Gen<UrlParts> =
    gen {
        let! scheme = Gen.elements [ "http"; "https"; "HTTP"; "Https" ]
        let! host, canon = genHost
        let! port = Gen.optionOf (Gen.oneof [ Gen.choose (1, 65535); Gen.elements [ 80; 443 ] ])
        let! segs = Gen.listOf label
        let path = segs |> List.truncate 3 |> List.map (fun s -> "/" + s) |> String.concat ""
        let! slashes = Gen.choose (0, 4)
        let! pad = genSpaces
        return
            { Scheme = scheme
              Host = host
              CanonicalHost = canon
              Port = port
              Path = path
              Trailing = String('/', slashes)
              Pad = pad }
    }

let urlOf (p: UrlParts) =
    let port =
        match p.Port with
        | Some n -> $":{n}"
        | None -> ""
    p.Pad + p.Scheme + "://" + p.Host + port + p.Path + p.Trailing + p.Pad

let expectedOrigin (p: UrlParts) =
    let scheme = p.Scheme.ToLowerInvariant()
    let defaultPort = if scheme = "https" then 443 else 80
    let port =
        match p.Port with
        | Some n when n <> defaultPort -> $":{n}"
        | _ -> ""
    scheme + "://" + p.CanonicalHost + port

/// Any string at all, including odd URLs.
let genAnyUrl: Gen<string> =
    Gen.oneof
        [ genUrlParts |> Gen.map urlOf
          ArbMap.defaults |> ArbMap.generate<string>
          Gen.elements
              [ "ftp://host"
                "https://"
                "https:///x"
                "//host/x"
                "host.example"
                "https://h/x?y=1"
                "https://h/#frag"
                "https://user:pw@h/"
                "http://h:99999/"
                "http://h:/"
                "http://[::1"
                "https://a b/"
                "https://h//x"
                "HTTP://EXAMPLE.com:80//"
                "https://bücher.de/"
                "  https://h.example/api/  " ] ]

let private validEnv id url token =
    Map.ofList [ "WORKSPACE_ID", id; "PLATFORM_URL", url; "MOLECULE_WORKSPACE_TOKEN", token ]

let genValidEnv: Gen<Map<string, string>> =
    gen {
        let! id = genUuid
        let! parts = genUrlParts
        let! token = genToken
        let! pad = genSpaces
        return validEnv (pad + id + pad) (urlOf parts) (pad + token + pad)
    }

let knownVars =
    [ "WORKSPACE_ID"
      "PLATFORM_URL"
      "MOLECULE_WORKSPACE_TOKEN"
      "MOLECULE_AGENT_NAME"
      "MOLECULE_AGENT_DESCRIPTION"
      "MOLECULE_AGENT_SKILLS"
      "CONFIGS_DIR"
      "MOLECULE_MCP_VERBOSE"
      "MOLECULE_MCP_DISABLE_HEARTBEAT"
      "MOLECULE_MCP_DISABLE_INBOX"
      "MOLECULE_MCP_POLL_TIMEOUT_SECS"
      "WORKSPACE_TIER" ]

/// Env maps mixing known names with arbitrary (possibly null) values and arbitrary keys.
let genAnyEnv: Gen<Map<string, string>> =
    let anyString = ArbMap.defaults |> ArbMap.generate<string>
    let value =
        Gen.oneof [ anyString; genUuid; genToken; genAnyUrl; Gen.elements [ "0"; "off"; "61"; "-3"; "  7 "; null ] ]
    let known = Gen.listOf (Gen.zip (Gen.elements knownVars) value)
    let other = Gen.listOf (Gen.zip (anyString |> Gen.filter (fun k -> not (isNull k))) anyString)
    Gen.map2 (fun a b -> Map.ofList (b @ a)) known other

let dir = "/home/u/.molecule-workspace"

// ---------------------------------------------------------------------------------------------
// URL normalisation
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: config normalisation is idempotent`` () =
    check 400 (
        Prop.forAll (Arb.fromGen genAnyUrl) (fun url ->
            match Config.normaliseUrl url with
            | Ok(b, o) -> Config.normaliseUrl b = Ok(b, o) && Config.normaliseUrl o = Ok(o, o)
            | Result.Error _ -> true)
    )
    // The whole config: re-parsing the normalised values yields the same config.
    check 300 (
        Prop.forAll (Arb.fromGen genValidEnv) (fun env ->
            let c = Config.parse env dir None |> ok
            let env2 = validEnv c.WorkspaceId.Value c.PlatformUrl c.Token
            Config.parse env2 dir None = Ok c)
    )

[<Fact>]
let ``rule: origin is scheme://host[:port] of the platform url`` () =
    check 400 (
        Prop.forAll (Arb.fromGen genUrlParts) (fun p ->
            let b, o = Config.normaliseUrl (urlOf p) |> ok
            o = expectedOrigin p && b = o + p.Path)
    )

[<Fact>]
let ``rule: trailing slashes never reach the base url`` () =
    check 400 (
        Prop.forAll (Arb.fromGen (Gen.zip genAnyUrl (Gen.choose (0, 5)))) (fun (url, n) ->
            let withSlashes = (if isNull url then "" else url.Trim()) + String('/', n)
            match Config.normaliseUrl withSlashes, Config.normaliseUrl url with
            | Ok(b, o), Ok(b2, o2) -> not (b.EndsWith "/") && not (o.EndsWith "/") && b = b2 && o = o2
            | Ok _, Result.Error _ -> false
            | Result.Error _, _ -> true)
    )

[<Fact>]
let ``normaliseUrl examples`` () =
    Assert.Equal(Ok("https://h.example/api", "https://h.example"), Config.normaliseUrl "  https://h.example/api//  ")
    Assert.Equal(Ok("https://tenant.moleculesai.app", "https://tenant.moleculesai.app"), Config.normaliseUrl "https://Tenant.MoleculesAI.app/")
    Assert.Equal(Ok("http://127.0.0.1:8080", "http://127.0.0.1:8080"), Config.normaliseUrl "http://127.0.0.1:8080/")
    Assert.Equal(Ok("https://h", "https://h"), Config.normaliseUrl "HTTPS://h:443")
    Assert.Equal(Ok("http://[::1]:9000/x", "http://[::1]:9000"), Config.normaliseUrl "http://[::1]:9000/x/")
    Assert.Equal(Ok("https://xn--bcher-kva.de", "https://xn--bcher-kva.de"), Config.normaliseUrl "https://bücher.de")
    for bad in [ ""; "   "; "ftp://h"; "h.example"; "https://h/?a=1"; "https://h/#x"; "https://"; "http://h:99999"; "https://u:p@h" ] do
        match Config.normaliseUrl bad with
        | Ok v -> failwith $"'{bad}' should be rejected, got {v}"
        | Result.Error reason -> Assert.False(String.IsNullOrWhiteSpace reason)
    match Config.normaliseUrl "https://h/x?y" with
    | Result.Error reason -> Assert.Contains("query", reason)
    | Ok _ -> failwith "query accepted"

// ---------------------------------------------------------------------------------------------
// Token
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: env token wins over token file (one precedence)`` () =
    let g =
        gen {
            let! envTok = Gen.oneof [ genBlank; genToken |> Gen.map Some ]
            let! fileTok = Gen.oneof [ genBlank; genToken |> Gen.map Some ]
            let! pad = genSpaces
            let! id = genUuid
            return envTok |> Option.map (fun t -> pad + t + pad), fileTok |> Option.map (fun t -> t + pad), id
        }
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun (envTok, fileTok, id) ->
            let env =
                [ "WORKSPACE_ID", id; "PLATFORM_URL", "https://h.example" ]
                @ (envTok |> Option.map (fun t -> "MOLECULE_WORKSPACE_TOKEN", t) |> Option.toList)
                |> Map.ofList
            let blank (o: string option) = o |> Option.forall String.IsNullOrWhiteSpace
            match Config.parse env "/cfg/" fileTok with
            | Ok c when not (blank envTok) -> c.Token = envTok.Value.Trim() && c.TokenSource = FromEnv
            | Ok c when not (blank fileTok) -> c.Token = fileTok.Value.Trim() && c.TokenSource = FromFile "/cfg/.auth_token"
            | Ok _ -> false
            | Result.Error es -> blank envTok && blank fileTok && es = [ Config.Missing "MOLECULE_WORKSPACE_TOKEN" ])
    )

[<Fact>]
let ``token examples (spec 1.2, P1)`` () =
    let id = "0F8FAD5B-D9CB-469F-A165-70867728950E"
    let env = Map.ofList [ "WORKSPACE_ID", id; "PLATFORM_URL", "https://h/" ]
    let c = Config.parse env "/configs" (Some " file-token\n") |> ok
    Assert.Equal("file-token", c.Token)
    Assert.Equal(FromFile "/configs/.auth_token", c.TokenSource)
    let c2 = Config.parse (env.Add("MOLECULE_WORKSPACE_TOKEN", " env-token ")) "/configs" (Some "file-token") |> ok
    Assert.Equal("env-token", c2.Token)
    Assert.Equal(FromEnv, c2.TokenSource)
    // A token with a space inside is rejected, without echoing it.
    let es = Config.parse (env.Add("MOLECULE_WORKSPACE_TOKEN", "abc defsecret")) "/configs" None |> errs
    match es with
    | [ Config.Invalid("MOLECULE_WORKSPACE_TOKEN", reason) ] -> Assert.DoesNotContain("defsecret", reason)
    | other -> failwith $"unexpected {other}"
    let es2 = Config.parse env "/configs" (Some "bad\u0001tok") |> errs
    match es2 with
    | [ Config.Invalid("MOLECULE_WORKSPACE_TOKEN", reason) ] -> Assert.Contains("/configs/.auth_token", reason)
    | other -> failwith $"unexpected {other}"

[<Fact>]
let ``rule: no error or help text contains the token`` () =
    let g =
        gen {
            let! token = genToken
            let! pos = Gen.choose (0, token.Length)
            let! inner = Gen.elements [ ""; " "; "\t"; "\u0007"; "é" ]
            let! tokenVal = Gen.elements [ token; token.Insert(pos, inner) ]
            let! env = genAnyEnv
            // The token also lands in wrong variables (a classic copy/paste slip).
            let! misplaced = Gen.subListOf [ "WORKSPACE_ID"; "PLATFORM_URL"; "MOLECULE_AGENT_NAME"; "CONFIGS_DIR" ]
            let! inUrl = Gen.elements [ tokenVal; "https://" + tokenVal; "https://h/?t=" + tokenVal ]
            let! useFile = Gen.elements [ true; false ]
            let env =
                misplaced
                |> List.fold (fun (m: Map<string, string>) k -> m.Add(k, (if k = "PLATFORM_URL" then inUrl else tokenVal))) env
            let env = if useFile then env.Remove "MOLECULE_WORKSPACE_TOKEN" else env.Add("MOLECULE_WORKSPACE_TOKEN", tokenVal)
            return token, tokenVal, env, (if useFile then Some tokenVal else None)
        }
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun (token, tokenVal, env, file) ->
            let es = Config.parse env "/cfg" file |> errs
            let texts =
                Config.helpText es
                :: (es
                    |> List.collect (function
                        | Config.Missing v -> [ v ]
                        | Config.Invalid(v, r) -> [ v; r ]))
            texts |> List.forall (fun t -> not (t.Contains token) && not (t.Contains tokenVal)))
    )

[<Fact>]
let ``rule: scrub hides every occurrence of the token (any token of 8 characters or more)`` () =
    let g =
        gen {
            let! token = Gen.oneof [ genToken |> Gen.filter (fun t -> t.Length >= Secrets.minMasked); Gen.elements [ "********"; "*#~[redacted]"; "a*a*a*a*"; "aaaaaaaa" ] ]
            let! parts = Gen.listOf (Gen.oneof [ Gen.constant token; ArbMap.defaults |> ArbMap.generate<string> ])
            return token, parts |> List.map (fun s -> if isNull s then "" else s) |> String.concat ""
        }
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun (token, text) ->
            let c = { (Config.parse (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "x") "/d" None |> ok) with Token = token }
            not ((Config.scrub c text).Contains token))
    )
    let c = Config.parse (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" " s3cret-token ") "/d" None |> ok
    Assert.Equal("Bearer *** and *** again", Config.scrub c "Bearer s3cret-token and s3cret-token again")
    Assert.Equal("", Config.scrub c null)
    // Shorter values are placeholders, not issued tokens: masking them would rewrite ordinary words.
    let short = Config.parse (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "x") "/d" None |> ok
    Assert.Equal("x marks the spot", Config.scrub short "x marks the spot")

// ---------------------------------------------------------------------------------------------
// Required vars, id, agent card, flags
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: every missing required var is reported`` () =
    let g =
        gen {
            let! id = Gen.oneof [ genBlank; genUuid |> Gen.map Some ]
            let! url = Gen.oneof [ genBlank; genUrlParts |> Gen.map (urlOf >> Some) ]
            let! tok = Gen.oneof [ genBlank; genToken |> Gen.map Some ]
            let! file = Gen.oneof [ genBlank; genToken |> Gen.map Some ]
            return id, url, tok, file
        }
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun (id, url, tok, file) ->
            let env =
                [ "WORKSPACE_ID", id; "PLATFORM_URL", url; "MOLECULE_WORKSPACE_TOKEN", tok ]
                |> List.choose (fun (k, v) -> v |> Option.map (fun v -> k, v))
                |> Map.ofList
            let blank (o: string option) = o |> Option.forall String.IsNullOrWhiteSpace
            let expected =
                [ if blank id then Config.Missing "WORKSPACE_ID"
                  if blank url then Config.Missing "PLATFORM_URL"
                  if blank tok && blank file then Config.Missing "MOLECULE_WORKSPACE_TOKEN" ]
            let es = Config.parse env "/cfg" file |> errs
            let help = Config.helpText es
            es = expected
            && (expected.IsEmpty || help.Contains "Currently missing: ")
            && expected
               |> List.forall (function
                   | Config.Missing v -> help.Contains v
                   | _ -> false))
    )

[<Fact>]
let ``help text example (spec 1.2)`` () =
    let es = Config.parse Map.empty "/cfg" None |> errs
    Assert.Equal<Config.ConfigError list>(
        [ Config.Missing "WORKSPACE_ID"; Config.Missing "PLATFORM_URL"; Config.Missing "MOLECULE_WORKSPACE_TOKEN" ],
        es
    )
    let help = Config.helpText es
    let lines = help.Split '\n'
    Assert.Equal("molecule-mcp: missing or invalid environment.", lines[0])
    Assert.Contains(
        "Currently missing: WORKSPACE_ID, PLATFORM_URL, MOLECULE_WORKSPACE_TOKEN (or CONFIGS_DIR/.auth_token)",
        lines
    )
    for key in
        [ "https://your-tenant.moleculesai.app"
          "http://127.0.0.1:<port>"
          "Tokens tab"
          "CONFIGS_DIR/.auth_token"
          "MOLECULE_AGENT_NAME"
          "MOLECULE_AGENT_DESCRIPTION"
          "MOLECULE_AGENT_SKILLS" ] do
        Assert.Contains(key, help)
    Assert.Contains("", lines)
    // Invalid values: one line each, no "Currently missing" when nothing is missing.
    let es2 =
        Config.parse (validEnv "not-a-uuid" "ftp://h" "tok") "/cfg" None |> errs
    match es2 with
    | [ Config.Invalid("WORKSPACE_ID", _); Config.Invalid("PLATFORM_URL", _) ] -> ()
    | other -> failwith $"unexpected {other}"
    let help2 = Config.helpText es2
    Assert.DoesNotContain("Currently missing", help2)
    Assert.Contains("Invalid WORKSPACE_ID: ", help2)
    Assert.Contains("Invalid PLATFORM_URL: ", help2)

[<Fact>]
let ``rule: workspace id must be a UUID and is stored lower-case`` () =
    let g = Gen.oneof [ genUuid; ArbMap.defaults |> ArbMap.generate<string> ]
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun id ->
            let env = validEnv id "https://h" "tok"
            let trimmed = if isNull id then "" else id.Trim()
            let isUuid = fst (Guid.TryParseExact(trimmed, "D"))
            match Config.parse env "/d" None with
            | Ok c -> isUuid && c.WorkspaceId.Value = trimmed.ToLowerInvariant()
            | Result.Error [ Config.Invalid("WORKSPACE_ID", _) ] -> not isUuid && trimmed <> ""
            | Result.Error [ Config.Missing "WORKSPACE_ID" ] -> trimmed = ""
            | Result.Error _ -> false)
    )

[<Fact>]
let ``rule: skills are trimmed, non-empty, unique`` () =
    let skill = Gen.oneof [ label; Gen.elements [ ""; " "; "code review"; "Python"; "python" ] ]
    let g = Gen.listOf (Gen.zip skill genSpaces)
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun items ->
            let raw = items |> List.map (fun (s, pad) -> pad + s + pad) |> String.concat ","
            let env = (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok").Add("MOLECULE_AGENT_SKILLS", raw)
            let skills = (Config.parse env "/d" None |> ok).AgentCard.Skills
            let expected = items |> List.map fst |> List.filter (fun s -> s.Trim() <> "") |> List.distinct
            skills = expected
            && skills |> List.forall (fun s -> s = s.Trim() && s <> "")
            && List.distinct skills = skills)
    )

[<Fact>]
let ``rule: default agent name is molecule-mcp-<id8>`` () =
    let g = Gen.zip genUuid (Gen.oneof [ genBlank; label |> Gen.map (fun l -> Some(" " + l + " ")) ])
    check 300 (
        Prop.forAll (Arb.fromGen g) (fun (id, name) ->
            let env = validEnv id "https://h" "tok"
            let env =
                match name with
                | Some n -> env.Add("MOLECULE_AGENT_NAME", n)
                | None -> env
            let c = Config.parse env "/d" None |> ok
            match name with
            | Some n when n.Trim() <> "" -> c.AgentCard.Name = n.Trim()
            | _ -> c.AgentCard.Name = "molecule-mcp-" + id.Substring(0, 8).ToLowerInvariant())
    )

[<Fact>]
let ``agent card example (spec 1.1)`` () =
    let env =
        (validEnv "0F8FAD5B-D9CB-469F-A165-70867728950E" "https://h" "tok")
            .Add("MOLECULE_AGENT_DESCRIPTION", "   ")
            .Add("MOLECULE_AGENT_SKILLS", " review , ,tests,review,")
    let c = Config.parse env "/d" None |> ok
    Assert.Equal("molecule-mcp-0f8fad5b", c.AgentCard.Name)
    Assert.Equal(None, c.AgentCard.Description)
    Assert.Equal<string list>([ "review"; "tests" ], c.AgentCard.Skills)
    let c2 = Config.parse (env.Add("MOLECULE_AGENT_DESCRIPTION", " Laptop agent ")) "/d" None |> ok
    Assert.Equal(Some "Laptop agent", c2.AgentCard.Description)
    Assert.Equal(1, c.Tier)
    Assert.Equal(2, c.PollTimeoutSecs)
    Assert.True(c.HeartbeatEnabled && c.InboxEnabled && not c.Verbose)
    Assert.Equal(Warning, Config.minLogLevel c)

[<Fact>]
let ``rule: flags are on for any non-empty value except 0/false/no/off`` () =
    let g =
        Gen.oneof
            [ ArbMap.defaults |> ArbMap.generate<string>
              Gen.elements [ "0"; "false"; "FALSE"; " no "; "Off"; "1"; "true"; "yes"; "on"; "x"; "" ] ]
    check 300 (
        Prop.forAll (Arb.fromGen (Gen.zip3 g g g)) (fun (v, h, i) ->
            let on (s: string) =
                let t = if isNull s then "" else s.Trim().ToLowerInvariant()
                t <> "" && not (List.contains t [ "0"; "false"; "no"; "off" ])
            let env =
                (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok")
                    .Add("MOLECULE_MCP_VERBOSE", v)
                    .Add("MOLECULE_MCP_DISABLE_HEARTBEAT", h)
                    .Add("MOLECULE_MCP_DISABLE_INBOX", i)
            let c = Config.parse env "/d" None |> ok
            c.Verbose = on v
            && c.HeartbeatEnabled = not (on h)
            && c.InboxEnabled = not (on i)
            && Config.minLogLevel c = (if on v then Info else Warning))
    )

[<Fact>]
let ``rule: poll timeout is always within 0..60`` () =
    let g =
        Gen.oneof
            [ ArbMap.defaults |> ArbMap.generate<string>
              ArbMap.defaults |> ArbMap.generate<int> |> Gen.map (fun n -> n.ToString())
              Gen.elements [ "99999999999999999999"; "-99999999999999999999"; "+5"; " 7 "; "1e3"; "0x10" ] ]
    check 400 (
        Prop.forAll (Arb.fromGen g) (fun v ->
            let env = (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok").Add("MOLECULE_MCP_POLL_TIMEOUT_SECS", v)
            let t = (Config.parse env "/d" None |> ok).PollTimeoutSecs
            let expected =
                match Int32.TryParse((if isNull v then "" else v.Trim())) with
                | true, n when n < 0 -> 2
                | true, n -> min n 60
                | _ -> t // non-int32 strings: only the range is checked
            0 <= t && t <= 60 && t = expected)
    )

[<Fact>]
let ``poll timeout and tier examples (spec 1.1)`` () =
    let parseWith k v =
        Config.parse ((validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok").Add(k, v)) "/d" None |> ok
    for v, expected in [ "", 2; "abc", 2; "-5", 2; "0", 0; "30", 30; "60", 60; "61", 60; "99999999999999999999", 60; "2.5", 2 ] do
        Assert.Equal(expected, (parseWith "MOLECULE_MCP_POLL_TIMEOUT_SECS" v).PollTimeoutSecs)
    for v, expected in [ "", 1; "0", 0; "2", 2; "x", 1; "-1", 1 ] do
        Assert.Equal(expected, (parseWith "WORKSPACE_TIER" v).Tier)

[<Fact>]
let ``rule: parse never throws for any env map`` () =
    let g =
        Gen.zip3
            genAnyEnv
            (ArbMap.defaults |> ArbMap.generate<string>)
            (Gen.optionOf (Gen.oneof [ genToken; ArbMap.defaults |> ArbMap.generate<string> ]))
    check 500 (
        Prop.forAll (Arb.fromGen g) (fun (env, sd, file) ->
            match Config.parse env sd file with
            | Ok c -> c.PollTimeoutSecs >= 0 && c.Token <> "" && c.Origin <> ""
            | Result.Error es -> not es.IsEmpty && (Config.helpText es).StartsWith "molecule-mcp: ")
    )

// ---------------------------------------------------------------------------------------------
// State dir
// ---------------------------------------------------------------------------------------------

[<Fact>]
let ``rule: state dir is CONFIGS_DIR, else /configs when writable, else home/.molecule-workspace`` () =
    let g = Gen.zip3 (Gen.oneof [ genBlank; label |> Gen.map (fun l -> Some(" /x/" + l + "/ ")) ]) (Gen.elements [ "/home/u"; "/home/u/"; "/"; "" ]) (Gen.elements [ true; false ])
    check 200 (
        Prop.forAll (Arb.fromGen g) (fun (cd, home, writable) ->
            let env = cd |> Option.map (fun d -> Map.ofList [ "CONFIGS_DIR", d ]) |> Option.defaultValue Map.empty
            let d = Config.stateDir env home writable
            not (d.Contains "//")
            && (match cd with
                | Some c when c.Trim() <> "" -> d = c.Trim().TrimEnd('/')
                | _ when writable -> d = "/configs"
                | _ -> d = home.TrimEnd('/') + "/.molecule-workspace"))
    )

[<Fact>]
let ``state dir examples (spec 1.3)`` () =
    Assert.Equal("/srv/cfg", Config.stateDir (Map.ofList [ "CONFIGS_DIR", " /srv/cfg " ]) "/home/u" true)
    Assert.Equal("/configs", Config.stateDir Map.empty "/home/u" true)
    Assert.Equal("/home/u/.molecule-workspace", Config.stateDir (Map.ofList [ "CONFIGS_DIR", "  " ]) "/home/u/" false)
    Assert.Equal(".auth_token", Config.tokenFileName)

[<Fact>]
let ``rule: heartbeat and poll intervals default to the platform cadence and stay within bounds`` () =
    let g =
        Gen.oneof
            [ ArbMap.defaults |> ArbMap.generate<string>
              ArbMap.defaults |> ArbMap.generate<float> |> Gen.map (fun f -> f.ToString(Globalization.CultureInfo.InvariantCulture))
              Gen.elements [ ""; "0"; "-1"; "NaN"; "Infinity"; "0.01"; "1e9"; "0.5" ] ]
    check 300 (
        Prop.forAll (Arb.fromGen g) (fun v ->
            let env =
                (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok")
                    .Add("MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", v)
                    .Add("MOLECULE_MCP_POLL_INTERVAL_SECS", v)
            let c = Config.parse env "/d" None |> ok
            c.HeartbeatIntervalSecs >= 0.2 && c.HeartbeatIntervalSecs <= 300.0
            && c.PollIntervalSecs >= 0.2 && c.PollIntervalSecs <= 60.0)
    )
    let defaults = Config.parse (validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok") "/d" None |> ok
    Assert.Equal(20.0, defaults.HeartbeatIntervalSecs)
    Assert.Equal(5.0, defaults.PollIntervalSecs)
    let fast =
        Config.parse ((validEnv "0f8fad5b-d9cb-469f-a165-70867728950e" "https://h" "tok").Add("MOLECULE_MCP_HEARTBEAT_INTERVAL_SECS", "0.5")) "/d" None |> ok
    Assert.Equal(0.5, fast.HeartbeatIntervalSecs)
