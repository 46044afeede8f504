namespace Molecule.Protocol

open System

/// A workspace id as the platform issues it: a UUID, kept in one normal form (lower-case, 8-4-4-4-12), so it is
/// compared, logged and put in file names the same way everywhere. Built only by `WorkspaceId.tryParse`.
[<Struct; CustomEquality; CustomComparison>]
type WorkspaceId =
    private
    | WorkspaceId of string

    member this.Value =
        let (WorkspaceId v) = this
        if isNull v then "" else v

    override this.ToString() = this.Value

    override this.Equals(other: obj) =
        match other with
        | :? WorkspaceId as o -> String.Equals(this.Value, o.Value, StringComparison.Ordinal)
        | _ -> false

    override this.GetHashCode() = StringComparer.Ordinal.GetHashCode this.Value

    interface IComparable with
        member this.CompareTo(other: obj) =
            match other with
            | :? WorkspaceId as o -> String.CompareOrdinal(this.Value, o.Value)
            | _ -> 1

module WorkspaceId =
    /// The id of a UUID text in any case (surrounding whitespace ignored); None for anything else.
    let tryParse (text: string) : WorkspaceId option =
        match Guid.TryParseExact((if isNull text then "" else text.Trim()), "D") with
        | true, g -> Some(WorkspaceId(g.ToString("D")))
        | _ -> None

    /// Whether a text (a row's source id, a header) names this workspace, in any case.
    let names (id: WorkspaceId) (text: string) : bool =
        not (isNull text) && String.Equals(text.Trim(), id.Value, StringComparison.OrdinalIgnoreCase)
