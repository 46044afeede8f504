/// Acknowledged delivery: the ack floor (POST /workspaces/:id/activity/ack), the unread view
/// (GET /workspaces/:id/mail/summary) and activity retention. Pure; time is an argument.
module Molecule.Platform.Inbox

open System
open System.Globalization
open System.Text.Json
open System.Text.Json.Nodes
open Molecule.Platform.Validation
module Json = Molecule.Protocol.Json

let ackRequired = "acked_seq is required"
let ackNegative = "acked_seq must be >= 0"
let ackFailed = "failed to record ack"

/// `{"acked_seq": N}` → N. Like a Go `*int64` field: the value must be an integer literal in int64 range;
/// anything else (missing, null, a string, a fraction, an exponent, not JSON) is "required"; negative is refused.
let parseAck (text: string) : Result<int64, Reply> =
    match Json.tryParseObject text |> Option.bind (Json.prop "acked_seq") with
    | Some(:? JsonValue as v) when v.GetValueKind() = JsonValueKind.Number ->
        let literal = v.ToJsonString()

        let isInteger =
            literal.Length > 0
            && literal |> Seq.forall (fun c -> Char.IsAsciiDigit c || c = '-')

        match Int64.TryParse(literal, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
        | true, n when isInteger && n < 0L -> Error(bad ackNegative)
        | true, n when isInteger -> Ok n
        | _ -> Error(bad ackRequired)
    | _ -> Error(bad ackRequired)

/// The stored floor after an ack: GREATEST(stored, incoming); it never decreases.
let mergeAck (stored: int64 option) (incoming: int64) : int64 =
    match stored with
    | Some s -> max s incoming
    | None -> incoming

/// `{"last_acked_seq": N}`.
let ackReply (floor: int64) : Reply =
    Wire.reply 200 (Json.obj [ "last_acked_seq", Json.num64 floor ])

// ---------------------------------------------------------------- mail summary

[<Literal>]
let ReceivedListCap = 25

[<Literal>]
let DefaultOverdueAfterSeconds = 21600

let badOverdue = "overdue_after_seconds must be an integer >= 60"

/// `overdue_after_seconds`: an integer ≥ 60, default 21600.
let parseOverdue (raw: string option) : Result<int, Reply> =
    match raw with
    | None
    | Some "" -> Ok DefaultOverdueAfterSeconds
    | Some s ->
        match Int32.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
        | true, n when n >= 60 -> Ok n
        | _ -> Error(bad badOverdue)

let private isReply (r: ActivityRow) = r.Method = Some "delegate_result"

/// The summary body. `floor` is the workspace's stored ack (None: never acked → queued_backlog mode, which
/// this platform reports with zero counts: it has no push queue). `rows`: the workspace's rows.
let mailSummary (floor: int64 option) (overdueAfter: int) (rows: ActivityRow seq) : JsonObject =
    let unread =
        match floor with
        | Some f -> rows |> Seq.filter (fun r -> r.ActivityType = "a2a_receive" && r.Seq > f) |> List.ofSeq
        | None -> []

    let received =
        unread
        |> List.filter (fun r -> not (isReply r))
        |> List.sortByDescending (fun r -> r.Seq)
        |> List.truncate ReceivedListCap
        |> List.map (fun r ->
            let o = Json.obj [ "id", Wire.idNode r.Id ]
            r.MessageId |> Option.filter (fun m -> m <> "") |> Option.iter (fun m -> o["message_id"] <- Json.str m)
            r.Method |> Option.filter (fun m -> m <> "") |> Option.iter (fun m -> o["method"] <- Json.str m)
            r.SourceId |> Option.iter (fun s -> o["sender_id"] <- Wire.idNode s)
            o["seq"] <- Json.num64 r.Seq
            o :> JsonNode)

    Json.obj
        [ "mode", Json.str (if floor.IsSome then "acked_seq" else "queued_backlog")
          "overdue", Json.arr []
          "overdue_after_seconds", Json.num overdueAfter
          "overdue_count", Json.num 0
          "received", Json.arr received
          "received_list_cap", Json.num ReceivedListCap
          "received_unread", Json.num (unread |> List.filter (isReply >> not) |> List.length)
          "replies_unread", Json.num (unread |> List.filter isReply |> List.length)
          "sent_awaiting_reply", Json.num 0 ]

// ---------------------------------------------------------------- retention

/// How long activity rows are kept: acked rows after `SoftDays`, every row after `HardDays`.
type Retention = { SoftDays: int; HardDays: int }

module Retention =
    let defaults = { SoftDays = 7; HardDays = 30 }

    /// At most a century, so every age stays representable.
    [<Literal>]
    let MaxDays = 36500

    /// Non-positive soft days → 7; hard days non-positive → 30, and never below soft days; both ≤ MaxDays.
    let normalise (r: Retention) : Retention =
        let soft = min MaxDays (if r.SoftDays > 0 then r.SoftDays else defaults.SoftDays)
        let hard = min MaxDays (if r.HardDays > 0 then r.HardDays else defaults.HardDays)
        { SoftDays = soft; HardDays = max soft hard }

/// The instants before which rows go: acked rows created before `Soft`, every row created before `Hard`.
type Cutoffs = { Soft: DateTimeOffset; Hard: DateTimeOffset }

let cutoffs (now: DateTimeOffset) (retention: Retention) : Cutoffs =
    let p = Retention.normalise retention

    { Soft = Activity.ago now (TimeSpan.FromDays(float p.SoftDays))
      Hard = Activity.ago now (TimeSpan.FromDays(float p.HardDays)) }

/// A row is pruned when it was created before the soft cutoff and is covered by its workspace's ack floor (absent
/// → 0), or before the hard cutoff. (The stores' retention query states the same.)
let prunableAt (c: Cutoffs) (floorOf: WorkspaceId -> int64 option) (r: ActivityRow) : bool =
    let floor = defaultArg (floorOf r.WorkspaceId) 0L
    (r.CreatedAt < c.Soft && r.Seq <= floor) || r.CreatedAt < c.Hard

/// A row is pruned when it is older than the soft age and covered by its workspace's ack floor (absent → 0),
/// or older than the hard age.
let prunable (now: DateTimeOffset) (retention: Retention) (floorOf: WorkspaceId -> int64 option) (r: ActivityRow) : bool =
    prunableAt (cutoffs now retention) floorOf r
