/// A strict reader of the Prometheus text exposition format (0.0.4), written from the format's description and
/// independent of the platform's writer: it refuses what Prometheus would refuse (bad names, bad escapes, a sample
/// before its TYPE or away from its family, a series twice, a histogram without +Inf or with falling buckets or a
/// `_count` unlike its +Inf bucket, a negative counter) and returns every sample.
module Molecule.Tests.Platform.PrometheusText

open System
open System.Globalization
open System.Text.RegularExpressions

type Sample =
    { Name: string
      Labels: Map<string, string>
      Value: float }

type Family =
    { Name: string
      Type: string
      Help: string option
      Samples: Sample list }

let private metricName = Regex(@"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
let private labelName = Regex(@"^[a-zA-Z_][a-zA-Z0-9_]*$")
let private types = set [ "counter"; "gauge"; "histogram"; "summary"; "untyped" ]

let private fail (n: int) (why: string) : 'a = failwith $"line {n}: {why}"

let private number (n: int) (s: string) : float =
    match s with
    | "+Inf" -> Double.PositiveInfinity
    | "-Inf" -> Double.NegativeInfinity
    | "NaN" -> Double.NaN
    | _ ->
        match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v -> v
        | _ -> fail n $"not a number: {s}"

/// `{a="x",b="y"}` from position `i` (at the brace); the labels and the position after the closing brace.
let private labels (n: int) (line: string) (start: int) : Map<string, string> * int =
    let mutable i = start + 1
    let mutable acc = Map.empty

    let expect (c: char) =
        if i >= line.Length || line[i] <> c then fail n $"expected '{c}' at {i}"
        i <- i + 1

    while i < line.Length && line[i] <> '}' do
        let nameStart = i

        while i < line.Length && line[i] <> '=' do
            i <- i + 1

        let name = line.Substring(nameStart, i - nameStart)
        if not (labelName.IsMatch name) then fail n $"bad label name '{name}'"
        if acc.ContainsKey name then fail n $"label {name} twice"
        expect '='
        expect '"'
        let value = Text.StringBuilder()

        while i < line.Length && line[i] <> '"' do
            if line[i] = '\\' then
                if i + 1 >= line.Length then fail n "dangling escape"

                match line[i + 1] with
                | '\\' -> value.Append('\\') |> ignore
                | '"' -> value.Append('"') |> ignore
                | 'n' -> value.Append('\n') |> ignore
                | c -> fail n $"bad escape \\{c}"

                i <- i + 2
            else
                value.Append(line[i]) |> ignore
                i <- i + 1

        expect '"'
        acc <- Map.add name (value.ToString()) acc

        if i < line.Length && line[i] = ',' then
            i <- i + 1

    expect '}'
    acc, i

let private sampleLine (n: int) (line: string) : Sample =
    let brace = line.IndexOf '{'
    let space = line.IndexOf ' '
    let nameEnd = if brace >= 0 && (space < 0 || brace < space) then brace else space
    if nameEnd <= 0 then fail n "no value"
    let name = line.Substring(0, nameEnd)
    if not (metricName.IsMatch name) then fail n $"bad metric name '{name}'"

    let ls, rest =
        if nameEnd = brace then labels n line brace else Map.empty, nameEnd

    let parts = line.Substring(rest).Split(' ', StringSplitOptions.None)

    match parts with
    | [| ""; v |] -> { Name = name; Labels = ls; Value = number n v }
    | [| ""; v; ts |] when Int64.TryParse ts |> fst -> { Name = name; Labels = ls; Value = number n v }
    | _ -> fail n $"bad sample: {line}"

/// A HELP text read: `\\` and `\n` are the only escapes; any other backslash stays as it is.
let private unescapeHelp (n: int) (s: string) : string =
    let sb = Text.StringBuilder()
    let mutable i = 0

    while i < s.Length do
        if s[i] = '\\' && i + 1 < s.Length && (s[i + 1] = '\\' || s[i + 1] = 'n') then
            sb.Append(if s[i + 1] = 'n' then '\n' else '\\') |> ignore
            i <- i + 2
        elif s[i] = '\\' && i + 1 >= s.Length then
            fail n "dangling escape in HELP"
        else
            sb.Append(s[i]) |> ignore
            i <- i + 1

    sb.ToString()

/// The family a sample name belongs to (a histogram's `_bucket`, `_sum` and `_count` belong to it).
let private familyOf (declared: Map<string, string>) (name: string) : string option =
    if declared.ContainsKey name then
        Some name
    else
        [ "_bucket"; "_sum"; "_count" ]
        |> List.tryPick (fun s ->
            if name.EndsWith s then
                let b = name.Substring(0, name.Length - s.Length)
                if Map.tryFind b declared = Some "histogram" || Map.tryFind b declared = Some "summary" then Some b else None
            else
                None)

let private checkHistogram (f: Family) =
    let series = f.Samples |> List.groupBy (fun s -> s.Labels |> Map.remove "le")

    for (ls, samples) in series do
        let buckets = samples |> List.filter (fun s -> s.Name = f.Name + "_bucket")
        let les = buckets |> List.map (fun b -> number 0 (Map.find "le" b.Labels))
        if les <> List.sort les then failwith $"{f.Name}: buckets out of order"
        if List.tryLast les <> Some Double.PositiveInfinity then failwith $"{f.Name}: no +Inf bucket"
        let counts = buckets |> List.map (fun b -> b.Value)
        if counts <> List.sort counts then failwith $"{f.Name}: buckets not cumulative"

        match samples |> List.tryFind (fun s -> s.Name = f.Name + "_count"), samples |> List.tryFind (fun s -> s.Name = f.Name + "_sum") with
        | Some c, Some _ when c.Value = List.last counts -> ()
        | _ -> failwith $"{f.Name} {ls}: _count missing or unlike the +Inf bucket, or no _sum"

/// Every family of the text, in order; fails on anything the format does not allow.
let parse (text: string) : Family list =
    if text <> "" && not (text.EndsWith "\n") then failwith "the text does not end with a line feed"
    let lines = text.Split('\n') |> Array.truncate (max 0 (text.Split('\n').Length - 1))
    let mutable declared = Map.empty<string, string>
    let mutable helps = Map.empty<string, string>
    let mutable order = []
    let mutable samples = Map.empty<string, Sample list>
    let mutable current: string option = None
    let mutable seen = Set.empty<string * Map<string, string>>

    for i, line in Array.indexed lines do
        let n = i + 1

        if line.StartsWith "# HELP " || line.StartsWith "# TYPE " then
            let rest = line.Substring 7
            let sp = rest.IndexOf ' '
            if sp <= 0 then fail n "HELP/TYPE without text"
            let name = rest.Substring(0, sp)
            if not (metricName.IsMatch name) then fail n $"bad metric name '{name}'"

            if line.StartsWith "# TYPE " then
                let t = rest.Substring(sp + 1)
                if not (types.Contains t) then fail n $"unknown type {t}"
                if declared.ContainsKey name then fail n $"TYPE of {name} twice"
                if samples.ContainsKey name then fail n $"TYPE of {name} after its samples"
                declared <- Map.add name t declared
                order <- order @ [ name ]
            else
                if helps.ContainsKey name then fail n $"HELP of {name} twice"
                helps <- Map.add name (unescapeHelp n (rest.Substring(sp + 1))) helps
        elif line.StartsWith "#" then
            ()
        elif line = "" then
            fail n "empty line"
        else
            let s = sampleLine n line

            match familyOf declared s.Name with
            | None -> fail n $"{s.Name} has no TYPE before it"
            | Some f ->
                if current <> Some f && samples.ContainsKey f then fail n $"{f}'s samples are not together"
                current <- Some f
                if seen.Contains(s.Name, s.Labels) then fail n $"series {s.Name} {s.Labels} twice"
                seen <- seen.Add(s.Name, s.Labels)
                if declared[f] = "counter" && s.Value < 0.0 then fail n $"negative counter {s.Name}"
                if declared[f] = "histogram" && s.Name.EndsWith "_bucket" && not (s.Labels.ContainsKey "le") then fail n "bucket without le"
                samples <- Map.add f ((Map.tryFind f samples |> Option.defaultValue []) @ [ s ]) samples

    let families =
        [ for name in order ->
              { Name = name
                Type = declared[name]
                Help = Map.tryFind name helps
                Samples = Map.tryFind name samples |> Option.defaultValue [] } ]

    families |> List.filter (fun f -> f.Type = "histogram") |> List.iter checkHistogram
    families

/// The value of the sample named `name` whose labels include `labels`: 0 when there is none (a series not counted
/// yet), a failure when there are several.
let value (families: Family list) (name: string) (labels: (string * string) list) : float =
    let matching =
        families
        |> List.collect (fun f -> f.Samples)
        |> List.filter (fun s -> s.Name = name && labels |> List.forall (fun (k, v) -> Map.tryFind k s.Labels = Some v))

    match matching with
    | [ s ] -> s.Value
    | [] -> 0.0
    | many -> failwith $"{many.Length} samples of {name} with {labels}"
