/// What the bench scripts share: the repository's root and their command-line options.
module Common

open System.IO

/// The repository's root (the scripts live in bench/).
let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))

let private args = fsi.CommandLineArgs |> Array.tail

/// The value after `name` on the script's command line, or `d`.
let argOr (name: string) (d: string) =
    match Array.tryFindIndex ((=) name) args with
    | Some i when i + 1 < args.Length -> args[i + 1]
    | _ -> d
