/// Moving a team from one database to another (`molecule-platform migrate`): which tables make a team, how a row is
/// checksummed the same whatever engine read it, and whether a target may be copied into — fresh, resumed after an
/// interruption, replaced when told, or refused. Pure.
module Molecule.Platform.Migration

open System
open System.Globalization
open System.Security.Cryptography
open System.Text

/// A column value as copied and checksummed: engines answer integers of several widths; they are one here.
type Value =
    | Null
    | Int of int64
    | Real of float
    | Text of string
    | Bytes of byte[]

module Value =
    /// A value as an ADO.NET reader returns it (None: a type no platform column has).
    let ofObj (o: obj) : Value option =
        match o with
        | null -> Some Null
        | :? DBNull -> Some Null
        | :? int64 as n -> Some(Int n)
        | :? int32 as n -> Some(Int(int64 n))
        | :? int16 as n -> Some(Int(int64 n))
        | :? bool as b -> Some(Int(if b then 1L else 0L))
        | :? float as f -> Some(Real f)
        | :? float32 as f -> Some(Real(float f))
        | :? string as s -> Some(Text s)
        | :? (byte[]) as b -> Some(Bytes b)
        | _ -> None

    /// The value as a command parameter.
    let toObj (v: Value) : obj =
        match v with
        | Null -> box DBNull.Value
        | Int n -> box n
        | Real f -> box f
        | Text s -> box s
        | Bytes b -> box b

/// A table of the team: its columns (copied as they are: token hashes, sealed secrets, seq numbers, file bytes).
type Table = { Name: string; Columns: string list }

/// The tables that make a team, parents first. Stream tickets (one minute each) and the schema version (the target
/// is migrated by its own engine) are not copied.
let tables: Table list =
    [ { Name = "workspaces"
        Columns =
          [ "id"; "name"; "role"; "tier"; "status"; "agent_card"; "url"; "parent_id"; "delivery_mode"; "runtime"
            "last_heartbeat_at"; "last_error_rate"; "active_tasks"; "uptime_seconds"; "current_task"
            "max_concurrent_tasks"; "platform_inbound_secret"; "last_outbound_at"; "created_at"; "updated_at" ] }
      { Name = "workspace_auth_tokens"
        Columns = [ "id"; "workspace_id"; "token_hash"; "prefix"; "created_at"; "last_used_at"; "revoked_at" ] }
      { Name = "activity_logs"
        Columns =
          [ "seq"; "id"; "workspace_id"; "activity_type"; "source_id"; "target_id"; "method"; "summary"; "request_body"
            "response_body"; "tool_trace"; "duration_ms"; "status"; "error_detail"; "created_at"; "idempotency_key"
            "message_id" ] }
      { Name = "inbox_delivery_state"
        Columns = [ "workspace_id"; "last_acked_seq"; "updated_at" ] }
      { Name = "agent_memories"
        Columns = [ "id"; "workspace_id"; "content"; "scope"; "namespace"; "created_at" ] }
      { Name = "workspace_abilities"
        Columns = [ "workspace_id"; "broadcast_enabled"; "talk_to_user_enabled"; "updated_at" ] }
      { Name = "stored_files"
        Columns = [ "workspace_id"; "kind"; "file_key"; "file_name"; "mime_type"; "size"; "content"; "created_at" ] }
      { Name = "requests"
        Columns =
          [ "id"; "kind"; "requester_type"; "requester_id"; "recipient_type"; "recipient_id"; "title"; "detail"; "status"
            "responder_type"; "responder_id"; "priority"; "source"; "expires_at"; "created_at"; "updated_at"; "responded_at"
            "last_nudged_at" ] }
      { Name = "request_messages"
        Columns = [ "id"; "request_id"; "author_type"; "author_id"; "body"; "created_at" ] }
      { Name = "approvals"
        Columns = [ "id"; "workspace_id"; "task_id"; "action"; "reason"; "context"; "status"; "decided_by"; "decided_at"; "created_at" ] } ]

// ---------------------------------------------------------------- checksums

let private hex (bytes: byte[]) = Convert.ToHexString(bytes).ToLowerInvariant()

/// A row's digest: SHA-256 of its values, each written with its kind and length, so no two different rows share
/// an encoding.
let rowDigest (values: Value list) : byte[] =
    use h = IncrementalHash.CreateHash HashAlgorithmName.SHA256

    let put (tag: byte) (body: byte[]) =
        h.AppendData [| tag |]
        h.AppendData(BitConverter.GetBytes(int64 body.Length))
        h.AppendData body

    for v in values do
        match v with
        | Null -> put 0uy [||]
        | Int n -> put 1uy (BitConverter.GetBytes n)
        | Real f -> put 2uy (BitConverter.GetBytes f)
        | Text s -> put 3uy (Encoding.UTF8.GetBytes s)
        | Bytes b -> put 4uy b

    h.GetHashAndReset()

/// What one side holds of a table: its rows and their checksum.
type Summary = { Table: string; Rows: int64; Checksum: string }

/// A table's summary from its rows' digests, in any order: the checksum is SHA-256 over the sorted digests (the
/// engines' orders of text differ; a table's content does not depend on it).
let summarise (table: string) (digests: byte[] seq) : Summary =
    let sorted = digests |> Seq.map hex |> Seq.sort |> Array.ofSeq
    let all = SHA256.HashData(Encoding.ASCII.GetBytes(String.Join("\n", sorted)))
    { Table = table; Rows = int64 sorted.Length; Checksum = hex all }

/// One fingerprint for a whole side (the source's identity for a resume).
let fingerprint (summaries: Summary list) : string =
    summaries
    |> List.map (fun s -> s.Table + " " + s.Rows.ToString(CultureInfo.InvariantCulture) + " " + s.Checksum)
    |> fun lines -> hex (SHA256.HashData(Encoding.UTF8.GetBytes(String.Join("\n", lines))))

/// The tables whose target differs from the source (rows or checksum).
let differences (source: Summary list) (target: Summary list) : string list =
    [ for s in source do
          match target |> List.tryFind (fun t -> t.Table = s.Table) with
          | Some t when t.Rows = s.Rows && t.Checksum = s.Checksum -> ()
          | _ -> yield s.Table ]

/// The report's lines: per table the rows on each side, the checksum (its first 16 hex digits) and whether they match.
let reportLines (source: Summary list) (target: Summary list) : string list =
    let width = tables |> List.map (fun t -> t.Name.Length) |> List.max
    let n (v: int64) = v.ToString(CultureInfo.InvariantCulture)

    [ yield "table".PadRight width + "  source rows  target rows  checksum (sha256)  match"
      for s in source do
          let t = target |> List.tryFind (fun t -> t.Table = s.Table)
          let rows = t |> Option.map (fun t -> t.Rows) |> Option.defaultValue 0L
          let same = t |> Option.exists (fun t -> t.Rows = s.Rows && t.Checksum = s.Checksum)

          yield
              s.Table.PadRight width
              + "  " + (n s.Rows).PadLeft 11
              + "  " + (n rows).PadLeft 11
              + "  " + s.Checksum.Substring(0, 16) + " "
              + "  " + (if same then "ok" else "DIFFERENT") ]

// ---------------------------------------------------------------- may the target be copied into?

/// A copy recorded in the target: the source's fingerprint and whether it finished.
type Marker = { Source: string; Finished: bool }

/// What the target holds before a copy.
type TargetState =
    { /// Rows in the team's tables.
      Rows: int64
      /// Copies recorded in it.
      Markers: Marker list }

/// How a copy starts.
type Start =
    /// An empty target.
    | Fresh
    /// The target holds an interrupted (or finished) copy of this very source: copy what is missing.
    | Resume
    /// The target's team is deleted first (told to).
    | Replace

let private rows (n: int64) = n.ToString(CultureInfo.InvariantCulture)

/// The refusal of a target that holds something else.
let notEmpty (n: int64) : string =
    $"the target database is not empty ({rows n} rows of a team that is not a copy of this data directory as it is now): "
    + "nothing copied; pass --force to delete what it holds and copy this team into it"

/// The decision: an empty target is copied into; one holding a copy of this source (same fingerprint) is resumed
/// (a finished copy then copies nothing); anything else is refused unless `force`, which replaces it.
let decide (source: string) (force: bool) (target: TargetState) : Result<Start, string> =
    let ofThisSource = target.Markers |> List.exists (fun m -> m.Source = source)
    let others = target.Markers |> List.exists (fun m -> m.Source <> source)

    if target.Rows = 0L && target.Markers.IsEmpty then Ok Fresh
    elif ofThisSource && not others then Ok Resume
    elif force then Ok Replace
    else Error(notEmpty target.Rows)
