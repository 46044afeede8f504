/// The public surface of the library packages a C# developer adds holds no F# type: reflection over every public type
/// and member finds no FSharp.Core or F#-core type (Microsoft.FSharp.*, Molecule.Core, Molecule.Protocol), no tuple
/// (Item1/Item2), and no settable delegate property. The listing itself is checked at compile time
/// (PublicAPI.Unshipped.txt); here it is checked to name every public type.
module Molecule.Tests.Agents.PublicApiTests

open System
open System.IO
open System.Reflection
open Xunit
open Molecule.Agents

/// The assemblies of the library packages for C#: the agent, its hosting and its AI integration.
let libraries =
    [ typeof<MoleculeAgent>.Assembly
      typeof<Molecule.Agents.Hosting.IMoleculeMessageHandler>.Assembly
      typeof<Molecule.Agents.AI.MoleculeAIFunctions>.Assembly ]

let private fsharpAssemblies = set [ "FSharp.Core"; "Molecule.Core"; "Molecule.Protocol" ]

/// Why a type may not appear in a public C# signature (None: it may).
let rec private leak (t: Type) : string option =
    if isNull t then None
    elif t.HasElementType then leak (t.GetElementType())
    elif fsharpAssemblies.Contains(t.Assembly.GetName().Name) then Some $"F# type {t.FullName}"
    elif not (isNull t.Namespace) && t.Namespace.StartsWith("Microsoft.FSharp", StringComparison.Ordinal) then Some $"F# type {t.FullName}"
    elif t.IsGenericType && (t.Name.StartsWith("Tuple`", StringComparison.Ordinal) || t.Name.StartsWith("ValueTuple`", StringComparison.Ordinal)) then
        Some $"tuple {t.Name} (Item1/Item2)"
    elif t.IsGenericType && not t.IsGenericTypeDefinition then t.GetGenericArguments() |> Array.tryPick leak
    else None

let private flags = BindingFlags.Public ||| BindingFlags.Instance ||| BindingFlags.Static ||| BindingFlags.DeclaredOnly

let private visible (m: MethodBase) = not (isNull m) && (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly)

/// Every violation of a type's public surface: "Type.Member: why".
let violations (t: Type) : string list =
    let at (what: string) (ty: Type) = leak ty |> Option.map (fun why -> $"{t.FullName}.{what}: {why}")
    [ yield! [ t.BaseType ] @ List.ofArray (t.GetInterfaces()) |> List.choose (at "(base)")
      for c in t.GetConstructors(flags) do
          yield! c.GetParameters() |> Array.choose (fun p -> at $".ctor({p.Name})" p.ParameterType)
      for m in t.GetMethods(flags) |> Array.filter visible do
          yield! at $"{m.Name}()" m.ReturnType |> Option.toList
          yield! m.GetParameters() |> Array.choose (fun p -> at $"{m.Name}({p.Name})" p.ParameterType)
      for p in t.GetProperties(flags) do
          yield! at p.Name p.PropertyType |> Option.toList
          if visible (p.GetSetMethod true) && typeof<Delegate>.IsAssignableFrom p.PropertyType then
              yield $"{t.FullName}.{p.Name}: a settable {p.PropertyType.Name} property (a callback belongs in a method or an interface)"
      for f in t.GetFields(flags) do
          if f.IsPublic || f.IsFamily then yield! at f.Name f.FieldType |> Option.toList
      for e in t.GetEvents(flags) do
          yield! at e.Name e.EventHandlerType |> Option.toList ]

let private exported () = libraries |> List.collect (fun a -> List.ofArray (a.GetExportedTypes()))

[<Fact>]
let ``no public type or member of the library packages shows an F# type, a tuple or a settable callback`` () =
    let types = exported ()
    Assert.True(types.Length >= 10, $"only {types.Length} public types found")
    let found = types |> List.collect violations
    Assert.True(found.IsEmpty, "public API leaks:\n" + String.Join("\n", found))

/// The checker finds what it must: an F# list, an F# option, a tuple and a settable Func in a type made to have them.
type Leaky() =
    member val Handler: Func<int, int> = Func<int, int>(id) with get, set
    member _.Names: string list = [ "a" ]
    member _.Pair: int * int = 1, 2
    member _.Maybe(x: int option) = x.IsSome

[<Fact>]
let ``the public API check finds an F# list, an F# option, a tuple and a settable callback`` () =
    let found = violations typeof<Leaky>
    for what in [ "Handler"; "Names"; "Pair"; "Maybe" ] do
        Assert.Contains(found, fun v -> v.Contains $".{what}")
    // the F# core's own types are F# types too
    Assert.NotEmpty(violations typeof<Molecule.Core.Config>)

/// The repository's root (where Molecule.Functional.sln is), from the test's working directory up.
let repoRoot () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwith "Molecule.Functional.sln not found above the test directory"
        elif File.Exists(Path.Combine(dir.FullName, "Molecule.Functional.sln")) then dir.FullName
        else up dir.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

[<Fact>]
let ``the API listing of each library package names every public type`` () =
    for library in libraries do
        let project = library.GetName().Name
        let listing =
            [ "PublicAPI.Shipped.txt"; "PublicAPI.Unshipped.txt" ]
            |> List.collect (fun f -> List.ofArray (File.ReadAllLines(Path.Combine(repoRoot (), project, f))))
            |> set
        for t in library.GetExportedTypes() do
            Assert.True(listing.Contains t.FullName, $"{t.FullName} is public but not in {project}/PublicAPI.*.txt")

[<Fact>]
let ``every public member of the hosting and AI packages has an XML doc comment`` () =
    for library in libraries |> List.filter (fun a -> a <> typeof<MoleculeAgent>.Assembly) do
        let xml = Path.ChangeExtension(library.Location, ".xml")
        Assert.True(File.Exists xml, $"{xml} is missing: the package ships no docs")
        let documented = System.Xml.Linq.XDocument.Load(xml).Descendants(System.Xml.Linq.XName.Get "member") |> Seq.map (fun m -> m.Attribute(System.Xml.Linq.XName.Get "name").Value) |> set
        for t in library.GetExportedTypes() do
            Assert.True(documented.Contains $"T:{t.FullName}", $"{t.FullName} has no doc comment")
