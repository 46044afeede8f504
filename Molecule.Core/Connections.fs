/// The workspaces one process serves: `MOLECULE_WORKSPACES='[{"id":…,"token":…}, …]'` (the reference's format; also
/// the channel plugin's `MOLECULE_WORKSPACES_JSON`, whose entries may carry their own `platform_url`) wins over the
/// single-workspace variables; the first entry is the primary. Pure and total.
module Molecule.Core.Connections

open System
open System.Text.Json
open System.Text.Json.Nodes
open Molecule.Protocol

let private variables = [ "MOLECULE_WORKSPACES"; "MOLECULE_WORKSPACES_JSON" ]

let private expected = """Expected: '[{"id":"<wsid>","token":"<tok>"},{...}]'"""

/// The Python type name the reference reports for a JSON value.
let private typeName (node: JsonNode) =
    match node with
    | null -> "NoneType"
    | n ->
        match n.GetValueKind() with
        | JsonValueKind.String -> "str"
        | JsonValueKind.Number -> "int"
        | JsonValueKind.Array -> "list"
        | JsonValueKind.True
        | JsonValueKind.False -> "bool"
        | JsonValueKind.Object -> "dict"
        | _ -> "NoneType"

type private Entry =
    { Id: WorkspaceId
      Token: string
      Platform: (string * string) option }

let private entry (var: string) (i: int) (node: JsonNode) : Result<Entry, string> =
    let at = $"{var}[{i}]"
    match node with
    | :? JsonObject as o ->
        let text name = Json.prop name o |> Option.bind Json.asScalarText |> Option.map (fun s -> s.Trim()) |> Option.filter ((<>) "")
        match text "id", text "token" with
        | Some id, Some token ->
            match WorkspaceId.tryParse id with
            | None -> Result.Error $"{at} id is not a workspace UUID (8-4-4-4-12 hex digits)"
            | Some _ when token |> Seq.exists (fun c -> c <= ' ' || c >= '\u007f') ->
                Result.Error $"{at} token contains whitespace, control or non-ASCII characters"
            | Some wsId ->
                match text "platform_url" with
                | None -> Ok { Id = wsId; Token = token; Platform = None }
                | Some url ->
                    match Config.normaliseUrl url with
                    | Ok pair -> Ok { Id = wsId; Token = token; Platform = Some pair }
                    | Result.Error reason -> Result.Error $"{at} platform_url {reason}"
        | _ -> Result.Error $"{at} missing 'id' or 'token'"
    | other -> Result.Error $"{at} is not an object — got {typeName other}"

/// The entries of a MOLECULE_WORKSPACES value, or every problem found.
let private entries (var: string) (text: string) : Result<Entry list, string list> =
    match Json.tryParse text with
    | None -> Result.Error [ $"{var} is not valid JSON. {expected}" ]
    | Some(:? JsonArray as a) when a.Count > 0 ->
        let results = a |> Seq.mapi (fun i n -> i, entry var i n) |> List.ofSeq
        let errors = results |> List.choose (function _, Result.Error e -> Some e | _, Ok _ -> None)
        let ok = results |> List.choose (function i, Ok e -> Some(i, e) | _, Result.Error _ -> None)
        let duplicates =
            ok
            |> List.filter (fun (i, e) -> ok |> List.exists (fun (j, p) -> j < i && p.Id = e.Id))
            |> List.map (fun (i, e) -> $"{var}[{i}] duplicate workspace id '{e.Id.Value}'")
        let ok = ok |> List.map snd
        if errors.IsEmpty && duplicates.IsEmpty then Ok ok else Result.Error(errors @ duplicates)
    | Some _ -> Result.Error [ $"{var} must be a non-empty JSON array of {{\"id\":\"...\",\"token\":\"...\"}} objects" ]

/// Every workspace this process serves, the primary first; or all the problems (then exit 2).
let parse
    (env: Map<string, string>)
    (stateDir: string)
    (authToken: string option)
    (tokenFile: Config.FileRead option)
    : Result<Config list, Config.ConfigError list> =
    let env = if isNull (box env) then Map.empty else env
    let multi =
        variables
        |> List.tryPick (fun v ->
            match Map.tryFind v env with
            | Some text when not (String.IsNullOrWhiteSpace text) -> Some(v, text)
            | _ -> None)
    match multi with
    | None -> Config.parseSingle env stateDir authToken tokenFile |> Result.map List.singleton
    | Some(var, text) ->
        match entries var text with
        | Result.Error problems -> Result.Error(problems |> List.map (fun p -> Config.Invalid(var, p)))
        | Ok list ->
            let shared = lazy (Config.platformOf env)
            let configs =
                list
                |> List.map (fun e ->
                    match e.Platform with
                    | Some pair -> Ok(Config.build env stateDir e.Id pair (e.Token, FromWorkspaces))
                    | None ->
                        match shared.Force() with
                        | Ok pair -> Ok(Config.build env stateDir e.Id pair (e.Token, FromWorkspaces))
                        | Result.Error problem -> Result.Error problem)
            let problems = (configs |> List.choose (function Result.Error e -> Some e | Ok _ -> None)) @ Config.sharedErrors env
            match problems |> List.distinct with
            | [] -> Ok(configs |> List.choose (function Ok c -> Some c | Result.Error _ -> None))
            | problems -> Result.Error problems

/// The reference's text for invalid MOLECULE_WORKSPACES, else the usual help; for stderr before exit 2.
let helpText (errors: Config.ConfigError list) : string =
    let multi =
        errors
        |> List.choose (function
            | Config.Invalid(v, reason) when List.contains v variables -> Some(v, reason)
            | _ -> None)
    match multi with
    | (var, _) :: _ when multi.Length = errors.Length ->
        String.Join("\n", $"molecule-mcp: invalid {var}:" :: (multi |> List.map (fun (_, r) -> "  - " + r)))
    | _ -> Config.helpText errors
