/// The store: everything the platform keeps, read and written in the platform's own terms. Routes see only these
/// interfaces, never SQL. `SqliteStore` implements them on SQLite (the embedded default), `PostgresStore` on a
/// PostgreSQL database shared by several platform processes — the notes below say what each member asks of an
/// engine.
///
/// Reads go through `Read` (a consistent view), writes through `Write` (one transaction: every write inside it is
/// durable together or not at all). Events a write announces reach subscribers only after it has committed.
module Molecule.Platform.Store

open System
open System.Threading.Tasks
open Molecule.Platform

/// The store has as many reads and writes under way as it takes: this one is turned away (at once; a write told ahead
/// after waiting its turn for 5 s) and the platform answers 503 with Retry-After. PostgreSQL only — see
/// PostgresStore's `Engine`.
exception Busy

/// Which rows of the activity log a query reads.
type RowScope =
    /// One workspace's log.
    | LogOf of WorkspaceId
    /// A workspace's log and every row of another log that names it as source or target.
    | Involving of WorkspaceId
    /// Every log.
    | AllLogs

type RowQuery =
    { Scope: RowScope
      /// Only these activity types (empty: any).
      Types: string list
      /// Only rows above this seq.
      AfterSeq: int64 option
      /// Only the newest this many (returned oldest first like the rest).
      Newest: int option
      /// With the JSON bodies (request_body, response_body, tool_trace); without them a row is ~0.3 KB whatever
      /// they weigh.
      Bodies: bool }

module RowQuery =
    /// Every row in the scope, oldest first, without bodies.
    let over (scope: RowScope) =
        { Scope = scope
          Types = []
          AfterSeq = None
          Newest = None
          Bodies = false }

    /// A workspace's whole log, oldest first, without bodies.
    let logOf (ws: WorkspaceId) = over (LogOf ws)

/// The row an append stored, or the row already logged under its message id (spec §6.1: the same message again
/// gets no second row and no new seq).
type Appended =
    | Added of ActivityRow
    | Repeated of ActivityRow

module Appended =
    let row (a: Appended) =
        match a with
        | Added r
        | Repeated r -> r

/// Files the platform keeps: an agent's chat uploads (served back by name) and the canvas's uploads waiting for a
/// poll-mode agent (until it acknowledges them).
[<RequireQualifiedAccess>]
type FileKind =
    | Chat
    | Pending

module FileKind =
    let text (k: FileKind) =
        match k with
        | FileKind.Chat -> "chat"
        | FileKind.Pending -> "pending"

type StoredFile =
    { WorkspaceId: WorkspaceId
      Kind: FileKind
      /// The key within the workspace: `<32 hex>-<name>` for chat uploads, 32 hex digits for pending ones.
      Key: string
      /// The name it was uploaded with (cleaned).
      FileName: string
      MimeType: string
      Size: int64
      CreatedAt: DateTimeOffset }

/// Which requests (spec §7.1) a query reads.
type RequestScope =
    /// Raised by this workspace.
    | RaisedBy of WorkspaceId
    /// Addressed to this workspace (an agent recipient).
    | AddressedTo of WorkspaceId
    /// Every request of the team.
    | EveryRequest

/// A consistent view of the store.
type IReader =
    abstract Workspace: WorkspaceId -> Workspace option
    /// Every workspace, removed ones too, oldest first.
    abstract Workspaces: unit -> Workspace list
    /// The token stored under this hash (live or revoked), if any.
    abstract TokenByHash: byte[] -> Token option
    /// A workspace's tokens (live and revoked), oldest first.
    abstract TokensOf: WorkspaceId -> Token list
    /// The workspace's ack floor; None before its first ack.
    abstract AckFloor: WorkspaceId -> int64 option
    /// GET /workspaces/:id/activity (spec §2): exactly what `Activity.select` answers over the workspace's log, with
    /// the JSON bodies.
    abstract Page: WorkspaceId * Activity.Query * now: DateTimeOffset -> Result<ActivityRow list, Reply>
    /// Rows in (created_at, seq) order.
    abstract Rows: RowQuery -> ActivityRow list
    /// The same rows with their JSON bodies.
    abstract Hydrate: ActivityRow list -> ActivityRow list
    /// A workspace's delegation tracking row with this idempotency key.
    abstract TrackingRow: WorkspaceId * key: string -> ActivityRow option
    abstract Memories: Memories.Selection -> Memory list
    abstract Abilities: WorkspaceId -> Team.Abilities
    /// A stored file and its bytes.
    abstract File: WorkspaceId * FileKind * key: string -> (StoredFile * byte[]) option
    abstract Request: RequestId -> Requests.Request option
    /// The requests in the scope, oldest first.
    abstract Requests: RequestScope -> Requests.Request list
    /// A request's thread, oldest first.
    abstract RequestMessages: RequestId -> Requests.Message list
    abstract Approval: ApprovalId -> Approvals.Approval option
    /// A workspace's newest approvals (at most `Approvals.ListSize`), newest first.
    abstract Approvals: WorkspaceId -> Approvals.Approval list
    /// When each request nudged so far was last nudged (Nudges).
    abstract LastNudges: unit -> Map<RequestId, DateTimeOffset>
    /// The schema version the database is at now (a newer platform sharing it may have migrated it since this one
    /// started): what GET /ready compares with this binary's.
    abstract StoredSchemaVersion: unit -> int

/// One transaction's reads and writes.
type IWriter =
    inherit IReader
    abstract SaveWorkspace: Workspace -> unit
    /// Saves a workspace only if its stored status, last heartbeat and update time are still those of `seen` (read
    /// earlier): a compare-and-set, so a change read before a heartbeat committed (on any process) never overwrites
    /// it. True when saved.
    abstract SaveWorkspaceIf: Workspace * seen: Workspace -> bool
    /// Inserts a token, or updates its last use and revocation.
    abstract SaveToken: Token -> unit
    /// Revokes every live token of a workspace.
    abstract RevokeTokens: WorkspaceId * at: DateTimeOffset -> unit
    /// Appends a row to its workspace's log: seq assigned here, created_at admitted (`Activity.admit` after the
    /// log's newest row). Appends to one log are serialised until the transaction ends, so within a workspace seq
    /// order is commit order (a reader paging with since_id never misses a row committed late).
    abstract Append: ActivityRow -> Appended
    abstract SetRowStatus: ActivityId * status: string -> unit
    abstract DeleteRow: ActivityId -> unit
    /// Records an ack: the floor becomes GREATEST(stored, acked), returned.
    abstract Ack: WorkspaceId * acked: int64 * at: DateTimeOffset -> int64
    /// Deletes what retention says (`Inbox.prunableAt`); returns how many rows.
    abstract Prune: Inbox.Cutoffs -> int
    abstract AddMemory: Memory -> unit
    abstract SetAbilities: WorkspaceId * Team.Abilities * at: DateTimeOffset -> unit
    abstract PutFile: StoredFile * content: byte[] -> unit
    /// Deletes a stored file; false when there was none.
    abstract DeleteFile: WorkspaceId * FileKind * key: string -> bool
    /// Inserts a request, or updates its status, responder and times.
    abstract SaveRequest: Requests.Request -> unit
    abstract AddRequestMessage: Requests.Message -> unit
    /// Inserts an approval, or updates its status and decision.
    abstract SaveApproval: Approvals.Approval -> unit
    /// Records that a request was nudged at this time.
    abstract MarkNudged: RequestId * at: DateTimeOffset -> unit
    abstract IssueTicket: Tickets.Ticket -> unit
    /// Uses up the live ticket stored under this hash (expired ones are dropped); true when there was one.
    abstract RedeemTicket: hash: byte[] * now: DateTimeOffset -> bool
    /// Publishes an event once this transaction has committed, to the subscribers of every platform process on this
    /// store (its own and, on a shared database, the others').
    abstract Announce: PlatformEvent -> unit
    /// Runs an action in this process once the transaction has committed (a log line).
    abstract AfterCommit: (unit -> unit) -> unit

/// What a write asks of the store first, told ahead (IStore.WriteAhead): the tokens it looks up by hash, and the log
/// it appends to first with that row's message id. A wrong or partial foresight costs only time: what it did not
/// foresee is asked when the write asks it.
type Foresight =
    { Tokens: byte[] list
      /// The log of the write's first append and the message id of the row it appends there.
      FirstAppend: (WorkspaceId * string option) option }

/// Rate-limit state (RateLimit rules): the buckets per key and the open streams per key.
type ILimiter =
    abstract Take: key: string * RateLimit.Policy * cost: float * now: DateTimeOffset -> RateLimit.Decision
    /// Charges what an upload of undeclared size used (the bucket may go into debt).
    abstract Charge: key: string * RateLimit.Policy * cost: float * now: DateTimeOffset -> unit
    /// One more open stream for the key, if the cap allows (dispose it when the stream ends).
    abstract OpenStream: key: string * cap: int -> IDisposable option

type IStore =
    inherit IDisposable
    /// Runs `f` on a consistent view.
    abstract Read<'a> : (IReader -> 'a) -> 'a
    /// Runs `f` in one transaction: committed when it returns (then its announcements are published and its
    /// after-commit actions run), rolled back when it throws (nothing of it stays, nothing is published).
    abstract Write<'a> : (IWriter -> 'a) -> 'a
    /// `Write`, told ahead what `f` asks first: an engine whose database is another process (PostgreSQL) asks it in
    /// the transaction's first round trip and waits for its round trips without holding a thread; the others run
    /// `Write`. `f` gets the same answers either way.
    abstract WriteAhead<'a> : Foresight * (IWriter -> 'a) -> Task<'a>
    /// Runs `action` unless another platform process on this store is running one under the same name (sweepers
    /// run on one process at a time); true when it ran.
    abstract Exclusively: name: string * action: (unit -> unit) -> bool
    /// Where rate-limit buckets live for this store.
    abstract Limiter: ILimiter
    /// `sqlite` (or `postgres`).
    abstract Engine: string
    /// The schema version the database is at.
    abstract SchemaVersion: int

/// The maps built so far, by the list they were built from: an engine hands out the same list until the team
/// changes, so nearly every request finds its map here.
let private maps = Runtime.CompilerServices.ConditionalWeakTable<Workspace list, Map<WorkspaceId, Workspace>>()

/// Every workspace by id: what the hierarchy rules and the labels read.
let team (r: IReader) : Map<WorkspaceId, Workspace> =
    maps.GetValue(r.Workspaces(), fun ws -> ws |> List.map (fun w -> w.Id, w) |> Map.ofList)
