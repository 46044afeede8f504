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

/// An id the platform issues as text, kept in one normal form (trimmed; a peer's workspace UUID in lower case).
/// `'names` only says what it names — a peer, an activity, a file — so that one is never taken for another. Built only
/// by the `tryParse` of PeerId, ActivityId or FileId.
[<Struct>]
type TextId<'names> =
    private
    | TextId of string

    member this.Value =
        let (TextId v) = this
        if isNull v then "" else v

    override this.ToString() = this.Value

/// What a PeerId names: a workspace of the team, as a tool call or the platform's registry names it.
[<AbstractClass; Sealed>]
type OfPeer = class end

/// What an ActivityId names: a message of the inbox (an activity row).
[<AbstractClass; Sealed>]
type OfActivity = class end

/// What a FileId names: a file uploaded to the platform (a pending upload).
[<AbstractClass; Sealed>]
type OfUpload = class end

/// What a RequestId names: a request (a task or an approval) of the platform's requests inbox.
[<AbstractClass; Sealed>]
type OfRequest = class end

/// A peer as a tool call names it (chat_history's peer_id, a peer list_peers showed): a workspace UUID in WorkspaceId's
/// normal form, any other text trimmed as given — the platform judges it, as the reference leaves it to.
type PeerId = TextId<OfPeer>

/// An inbox message's id as the platform gave it, trimmed.
type ActivityId = TextId<OfActivity>

/// The id of a file uploaded to the platform (a pending upload's `file_id`), trimmed.
type FileId = TextId<OfUpload>

/// A request's id as the platform gave it (`request_id`), trimmed.
type RequestId = TextId<OfRequest>

module private TextId =
    /// The id of a text, trimmed; None for a blank text.
    let tryParse (text: string) : TextId<'names> option =
        if String.IsNullOrWhiteSpace text then None else Some(TextId(text.Trim()))

module PeerId =
    /// The peer a text names (surrounding whitespace ignored); None for a blank text.
    let tryParse (text: string) : PeerId option =
        match WorkspaceId.tryParse text with
        | Some ws -> Some(TextId ws.Value)
        | None -> TextId.tryParse text

    /// The peer that is this workspace.
    let ofWorkspace (ws: WorkspaceId) : PeerId = TextId ws.Value

module ActivityId =
    /// The id a text names (surrounding whitespace ignored); None for a blank text.
    let tryParse (text: string) : ActivityId option = TextId.tryParse text

module FileId =
    /// The id a text names (surrounding whitespace ignored); None for a blank text.
    let tryParse (text: string) : FileId option = TextId.tryParse text

module RequestId =
    /// The id a text names (surrounding whitespace ignored); None for a blank text.
    let tryParse (text: string) : RequestId option = TextId.tryParse text
