/// The store's reads and writes on one SQL session (Sql.Session), the same for every engine.
module Molecule.Platform.SqlStore

open System
open System.Collections.Generic
open System.Threading.Tasks
open Molecule.Platform
open Molecule.Platform.Store
open Molecule.Platform.Sql
open Molecule.Platform.SqlCodec
open Molecule.Platform.SqlFilter

/// A transaction holding one log's lock found another log's taken (Schema.LogLock): waiting there could deadlock
/// with a transaction appending to the two logs the other way round, so the engine rolls it back and runs it again.
exception LogContended of WorkspaceId

/// A transaction saved a workspace after reading the team from a cache that may lag behind another process's commit
/// (Sql.TeamCache): the engine runs it again reading the team afresh.
exception StaleTeam

/// The store's reads and writes on one session. Inside a write it also collects what the transaction announces
/// and what runs after it commits (the engine runs them).
type SqlSession(s: Session, secrets: SecretBox) =
    let announced = ResizeArray<PlatformEvent>()
    let afterCommit = ResizeArray<unit -> unit>()
    /// Rows appended but not sent yet (Dialect.NextSeq): they go with the next statement or with the commit.
    let pending = ResizeArray<string * (string * obj) list>()

    let flush () =
        if pending.Count > 0 then
            let rows = List.ofSeq pending
            pending.Clear()
            sendTogether s rows

    // every statement of the session first sends the rows still pending (its reads see the transaction's writes)
    let query (s: Session) sql ps read = flush (); Sql.query s sql ps read
    let exec (s: Session) sql ps = flush (); Sql.exec s sql ps
    let scalar (s: Session) sql ps = flush (); Sql.scalar s sql ps
    let batch (s: Session) sql ps read = flush (); Sql.batch s sql ps read

    let openSecret (id: string) (stored: string) = secrets.Open(id, stored)
    let workspaces (where: string) ps = query s $"SELECT {workspaceColumns} FROM workspaces {where}" ps (readWorkspace openSecret)
    /// This transaction saved a workspace: its reads see its own writes, never the cache (which it never fills).
    let mutable savedWorkspace = false

    /// The team as this session first read it, without an engine cache (read once per transaction, not per use).
    let mutable read: Workspace list option = None

    /// Whether this transaction read the team from a cache that may lag (it then saves no workspace).
    let mutable lagging = false

    let team () =
        let load () = workspaces "ORDER BY created_at, id" []

        match s.Team, read with
        | Some cache, _ when not savedWorkspace ->
            let t, cached = cache.Get load
            if cached && cache.MayLag then lagging <- true
            t
        | None, Some t when not savedWorkspace -> t
        | _ ->
            let t = load ()
            if not savedWorkspace then read <- Some t
            t

    let saving () =
        if lagging then raise StaleTeam
        savedWorkspace <- true

    let rowById (id: ActivityId) =
        query s $"SELECT {activityColumns} FROM activity_logs WHERE id = @id" [ "@id", idText id ] readActivity
        |> List.tryHead

    let activityWhere (columns: string) (where: string) ps (order: string) (limit: int option) =
        let limitText =
            match limit with
            | Some n -> " LIMIT " + n.ToString(Globalization.CultureInfo.InvariantCulture)
            | None -> ""

        query s $"SELECT {columns} FROM activity_logs WHERE {where} ORDER BY {order}{limitText}" ps readActivity

    let page (ws: WorkspaceId) (q: Activity.Query) (now: DateTimeOffset) =
        let cursor =
            match q.SinceId with
            | None -> Ok None
            | Some t ->
                match Validation.parseGuid t |> Option.map ActivityId |> Option.bind rowById with
                | Some c when c.WorkspaceId = ws -> Ok(Some c)
                | _ -> Error(Wire.errorReply 410 Activity.cursorGone)

        match cursor, q.Source with
        | Error e, _
        | Ok _, Error e -> Error e
        | Ok cursor, Ok source ->
            let where, ps = pageFilter ws q source cursor now
            let order = if cursor.IsSome then "created_at, seq" else "created_at DESC, seq DESC"
            Ok(activityWhere activityColumns where ps order (Some q.Limit))

    let rows (q: RowQuery) =
        let where, ps = rowFilter q
        let columns = if q.Bodies then activityColumns else slimActivityColumns

        match q.Newest with
        | Some n -> activityWhere columns where ps "created_at DESC, seq DESC" (Some n) |> List.rev
        | None -> activityWhere columns where ps "created_at, seq" None

    let hydrate (slim: ActivityRow list) =
        match slim with
        | [] -> []
        | _ ->
            let full = Dictionary<int64, ActivityRow>()

            for chunk in List.chunkBySize 500 slim do
                let names, ps = inList "s" (chunk |> List.map (fun r -> box r.Seq))

                for r in query s $"SELECT {activityColumns} FROM activity_logs WHERE seq IN ({names})" ps readActivity do
                    full[r.Seq] <- r

            slim
            |> List.map (fun r ->
                match full.TryGetValue r.Seq with
                | true, f ->
                    { r with
                        RequestBody = f.RequestBody
                        ResponseBody = f.ResponseBody
                        ToolTrace = f.ToolTrace }
                | _ -> r)

    let memories (sel: Memories.Selection) =
        let where, ps =
            match sel with
            | Memories.Own id -> "workspace_id = @ws", [ "@ws", idText id ]
            | Memories.OwnLocal id -> "workspace_id = @ws AND scope = 'LOCAL'", [ "@ws", idText id ]
            | Memories.TeamOf [] -> "1 = 0", []
            | Memories.TeamOf ids ->
                let names, ps = inList "w" (ids |> List.map idText)
                $"scope = 'TEAM' AND workspace_id IN ({names})", ps
            | Memories.AllGlobal -> "scope = 'GLOBAL'", []

        query s $"SELECT {memoryColumns} FROM agent_memories WHERE {where} ORDER BY created_at" ps readMemory

    /// The logs this transaction has locked (engines with a LogLock).
    let lockedLogs = HashSet<WorkspaceId>()

    /// The statement that takes the log's lock for the rest of the transaction — waiting for the first log, trying
    /// the others — and whether it only tries (None: the engine needs none, or the transaction holds it already).
    let lockFor (ws: WorkspaceId) =
        match s.Dialect.LogLock with
        | Some l when lockedLogs.Add ws -> Some(if lockedLogs.Count = 1 then l.Wait, false else l.Try, true)
        | _ -> None

    /// The command that takes the log's lock, then (after it, each statement seeing what was committed before it took
    /// the lock) reads the log's earlier row with this message id, its newest row's time and, where the engine takes it
    /// ahead, the next seq; and how its result is read (Cursor: `Some earlier`, newest time, next seq).
    let lookup (ws: WorkspaceId) (mid: string option) =
        let lock = lockFor ws
        let earlierSql = $"SELECT {activityColumns} FROM activity_logs WHERE workspace_id = @ws AND message_id = @mid ORDER BY seq LIMIT 1"
        let newestSql = "SELECT created_at FROM activity_logs WHERE workspace_id = @ws ORDER BY created_at DESC, seq DESC LIMIT 1"

        let statements =
            [ yield! lock |> Option.map fst |> Option.toList
              if mid.IsSome then earlierSql
              newestSql
              yield! s.Dialect.NextSeq |> Option.toList ]

        let ps = [ "@ws", idText ws; yield! mid |> Option.map (fun m -> "@mid", box m) |> Option.toList ]

        let read (c: Cursor) =
            task {
                let r = c.Reader

                match lock with
                | Some(_, tries) ->
                    let! row = c.Read()
                    if not (row && (not tries || r.GetBoolean 0)) then raise (LogContended ws)
                    let! _ = c.Next()
                    ()
                | None -> ()

                let! earlier =
                    task {
                        if mid.IsNone then
                            return None
                        else
                            let! found = c.Read()
                            let e = if found then Some(readActivity r) else None
                            let! _ = c.Next()
                            return e
                    }

                let! newest = c.Read()
                let last = if newest then Some(ofTicks (r.GetInt64 0)) else None
                let! more = if s.Dialect.NextSeq.IsSome then c.Next() else Task.FromResult false
                let! seqRow = if more then c.Read() else Task.FromResult false
                return earlier, last, (if seqRow then Some(r.GetInt64 0) else None)
            }

        statements, ps, read

    /// Answers asked ahead (Foresight), each used once at most: tokens by hash (hex), and the first append's lookup.
    let foreseenTokens = Dictionary<string, Token option>()
    let mutable foreseenAppend: (WorkspaceId * string option * (ActivityRow option * DateTimeOffset option * int64 option)) option = None

    /// The log's lookup for this row: the one asked ahead when it is this log's first append with that message id,
    /// else asked now (one round trip).
    let lockedLookup (row: ActivityRow) =
        let now () =
            let statements, ps, read = lookup row.WorkspaceId row.MessageId
            batch s (String.Join(";\n", statements)) ps read

        match foreseenAppend with
        | Some(ws, mid, answer) when ws = row.WorkspaceId ->
            foreseenAppend <- None
            if mid = row.MessageId then answer else now ()
        | _ -> now ()

    let append (row: ActivityRow) =
        match lockedLookup row with
        | Some existing, _, _ -> Repeated existing
        | None, last, Some seq ->
            // its seq taken: the row goes with the transaction's next statement or its commit
            let r = { Activity.admit last row with Seq = seq }
            pending.Add($"INSERT INTO activity_logs (seq,{rowColumns}) VALUES (@seq,{rowValues})", ("@seq", box seq) :: rowParams r)
            Added r
        | None, last, None ->
            let r = Activity.admit last row
            let seq = scalar s $"INSERT INTO activity_logs ({rowColumns}) VALUES ({rowValues}) RETURNING seq" (rowParams r)
            Added { r with Seq = Convert.ToInt64 seq }

    let workspaceParams (w: Workspace) = SqlCodec.workspaceParams (fun x -> secrets.Seal(w.Id.Text, x)) w

    let saveWorkspace (w: Workspace) =
        exec
            s
            """INSERT INTO workspaces (id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at)
               VALUES (@id,@name,@role,@tier,@status,@card,@url,@parent,@dm,@rt,@hb,@er,@at,@up,@ct,@mct,@sec,@out,@ca,@ua)
               ON CONFLICT(id) DO UPDATE SET name=excluded.name,role=excluded.role,tier=excluded.tier,status=excluded.status,
               agent_card=excluded.agent_card,url=excluded.url,parent_id=excluded.parent_id,delivery_mode=excluded.delivery_mode,
               runtime=excluded.runtime,last_heartbeat_at=excluded.last_heartbeat_at,last_error_rate=excluded.last_error_rate,
               active_tasks=excluded.active_tasks,uptime_seconds=excluded.uptime_seconds,current_task=excluded.current_task,
               max_concurrent_tasks=excluded.max_concurrent_tasks,platform_inbound_secret=excluded.platform_inbound_secret,
               last_outbound_at=excluded.last_outbound_at,updated_at=excluded.updated_at"""
            (workspaceParams w)
        |> ignore

    /// Saves `w` only if the stored row's status, last heartbeat and update time are still `seen`'s (no heartbeat,
    /// register or edit committed since `seen` was read, on any process).
    let saveWorkspaceIf (w: Workspace) (seen: Workspace) =
        let heartbeat, hbParam =
            match seen.LastHeartbeatAt with
            | Some t -> "last_heartbeat_at = @seenhb", [ "@seenhb", ticks t ]
            | None -> "last_heartbeat_at IS NULL", []

        exec
            s
            $"""UPDATE workspaces SET name=@name,role=@role,tier=@tier,status=@status,agent_card=@card,url=@url,parent_id=@parent,
               delivery_mode=@dm,runtime=@rt,last_heartbeat_at=@hb,last_error_rate=@er,active_tasks=@at,uptime_seconds=@up,
               current_task=@ct,max_concurrent_tasks=@mct,platform_inbound_secret=@sec,last_outbound_at=@out,updated_at=@ua
               WHERE id=@id AND status=@seenst AND updated_at=@seenua AND {heartbeat}"""
            (List.filter (fun (k, _) -> k <> "@ca") (workspaceParams w)
             @ [ "@seenst", box (Status.text seen.Status); "@seenua", ticks seen.UpdatedAt ]
             @ hbParam)
        > 0

    let saveToken (t: Token) =
        exec
            s
            """INSERT INTO workspace_auth_tokens (id,workspace_id,token_hash,prefix,created_at,last_used_at,revoked_at)
               VALUES (@id,@ws,@h,@p,@ca,@lu,@rv)
               ON CONFLICT(id) DO UPDATE SET last_used_at=excluded.last_used_at, revoked_at=excluded.revoked_at"""
            [ "@id", idText t.Id
              "@ws", idText t.WorkspaceId
              "@h", box t.Hash
              "@p", box t.Prefix
              "@ca", ticks t.CreatedAt
              "@lu", optTicks t.LastUsedAt
              "@rv", optTicks t.RevokedAt ]
        |> ignore

    let ack (ws: WorkspaceId) (acked: int64) (at: DateTimeOffset) =
        let greatest = s.Dialect.Greatest "inbox_delivery_state.last_acked_seq" "excluded.last_acked_seq"

        scalar
            s
            $"""INSERT INTO inbox_delivery_state (workspace_id,last_acked_seq,updated_at) VALUES (@ws,@n,@t)
                ON CONFLICT(workspace_id) DO UPDATE SET last_acked_seq={greatest}, updated_at=excluded.updated_at
                RETURNING last_acked_seq"""
            [ "@ws", idText ws; "@n", box acked; "@t", ticks at ]
        |> Convert.ToInt64

    let prune (c: Inbox.Cutoffs) =
        exec
            s
            """DELETE FROM activity_logs WHERE created_at < @hard OR (created_at < @soft AND seq <= COALESCE(
                 (SELECT d.last_acked_seq FROM inbox_delivery_state d WHERE d.workspace_id = activity_logs.workspace_id), 0))"""
            [ "@hard", ticks c.Hard; "@soft", ticks c.Soft ]

    let file (ws: WorkspaceId) (kind: FileKind) (key: string) =
        query
            s
            "SELECT file_name,mime_type,size,created_at,content FROM stored_files WHERE workspace_id = @ws AND kind = @k AND file_key = @f"
            [ "@ws", idText ws; "@k", box (FileKind.text kind); "@f", box key ]
            (fun r ->
                { WorkspaceId = ws
                  Kind = kind
                  Key = key
                  FileName = r.GetString 0
                  MimeType = r.GetString 1
                  Size = r.GetInt64 2
                  CreatedAt = ofTicks (r.GetInt64 3) },
                r.GetFieldValue<byte[]> 4)
        |> List.tryHead

    let putFile (f: StoredFile) (content: byte[]) =
        exec
            s
            """INSERT INTO stored_files (workspace_id,kind,file_key,file_name,mime_type,size,content,created_at)
               VALUES (@ws,@k,@f,@n,@m,@sz,@c,@ca) ON CONFLICT(workspace_id,kind,file_key) DO NOTHING"""
            [ "@ws", idText f.WorkspaceId
              "@k", box (FileKind.text f.Kind)
              "@f", box f.Key
              "@n", box f.FileName
              "@m", box f.MimeType
              "@sz", box f.Size
              "@c", box content
              "@ca", ticks f.CreatedAt ]
        |> ignore

    let abilities (ws: WorkspaceId) =
        query
            s
            "SELECT broadcast_enabled,talk_to_user_enabled FROM workspace_abilities WHERE workspace_id = @ws"
            [ "@ws", idText ws ]
            (fun r ->
                ({ BroadcastEnabled = Convert.ToInt64(r.GetValue 0) <> 0L
                   TalkToUserEnabled = Convert.ToInt64(r.GetValue 1) <> 0L }
                : Team.Abilities))
        |> List.tryHead
        |> Option.defaultValue Team.defaults

    let setAbilities (ws: WorkspaceId) (a: Team.Abilities) (at: DateTimeOffset) =
        exec
            s
            """INSERT INTO workspace_abilities (workspace_id,broadcast_enabled,talk_to_user_enabled,updated_at) VALUES (@ws,@b,@t,@ua)
               ON CONFLICT(workspace_id) DO UPDATE SET broadcast_enabled=excluded.broadcast_enabled,
               talk_to_user_enabled=excluded.talk_to_user_enabled, updated_at=excluded.updated_at"""
            [ "@ws", idText ws
              "@b", box (if a.BroadcastEnabled then 1L else 0L)
              "@t", box (if a.TalkToUserEnabled then 1L else 0L)
              "@ua", ticks at ]
        |> ignore

    let partyParams (prefix: string) (p: Requests.Party option) =
        [ $"@{prefix}t", (p |> Option.map (Requests.Party.typeText >> box) |> Option.toObj)
          $"@{prefix}i", (p |> Option.bind Requests.Party.idText |> optText) ]

    let saveRequest (q: Requests.Request) =
        exec
            s
            """INSERT INTO requests (id,kind,requester_type,requester_id,recipient_type,recipient_id,title,detail,status,responder_type,responder_id,priority,source,expires_at,created_at,updated_at,responded_at)
               VALUES (@id,@k,@qt,@qi,@ct,@ci,@ti,@d,@st,@rt,@ri,@p,@src,@ex,@ca,@ua,@ra)
               ON CONFLICT(id) DO UPDATE SET status=excluded.status, responder_type=excluded.responder_type,
               responder_id=excluded.responder_id, updated_at=excluded.updated_at, responded_at=excluded.responded_at"""
            ([ "@id", idText q.Id
               "@k", box (Requests.Kind.text q.Kind)
               "@ti", box q.Title
               "@d", optText q.Detail
               "@st", box (Requests.RequestStatus.text q.Status)
               "@p", box q.Priority
               "@src", box (Requests.Source.text q.Source)
               "@ex", optTicks q.ExpiresAt
               "@ca", ticks q.CreatedAt
               "@ua", ticks q.UpdatedAt
               "@ra", optTicks q.RespondedAt ]
             @ partyParams "q" (Some q.Requester)
             @ partyParams "c" (Some q.Recipient)
             @ partyParams "r" q.Responder)
        |> ignore

    let requests (scope: RequestScope) =
        let where, ps =
            match scope with
            | RaisedBy ws -> "requester_type = 'agent' AND requester_id = @ws", [ "@ws", idText ws ]
            | AddressedTo ws -> "recipient_type = 'agent' AND recipient_id = @ws", [ "@ws", idText ws ]
            | EveryRequest -> "1 = 1", []

        query s $"SELECT {requestColumns} FROM requests WHERE {where} ORDER BY created_at, id" ps readRequest

    let saveApproval (a: Approvals.Approval) =
        exec
            s
            """INSERT INTO approvals (id,workspace_id,task_id,action,reason,context,status,decided_by,decided_at,created_at)
               VALUES (@id,@ws,@t,@a,@r,@c,@st,@by,@at,@ca)
               ON CONFLICT(id) DO UPDATE SET status=excluded.status, decided_by=excluded.decided_by, decided_at=excluded.decided_at"""
            [ "@id", idText a.Id
              "@ws", idText a.WorkspaceId
              "@t", optText a.TaskId
              "@a", box a.Action
              "@r", optText a.Reason
              "@c", optText a.Context
              "@st", box (Approvals.ApprovalStatus.text a.Status)
              "@by", optText a.DecidedBy
              "@at", optTicks a.DecidedAt
              "@ca", ticks a.CreatedAt ]
        |> ignore

    /// Asks what the transaction will ask first (Foresight) in one command, waiting for the database without holding a
    /// thread: the tokens, then the first append's lookup (its log's lock taken). Before the transaction's first
    /// statement.
    member _.Foresee(f: Foresight) : Task =
        let tokenSql = f.Tokens |> List.mapi (fun i _ -> $"SELECT {tokenColumns} FROM workspace_auth_tokens WHERE token_hash = @h{i}")
        let tokenPs = f.Tokens |> List.mapi (fun i h -> $"@h{i}", box h)
        let append = f.FirstAppend |> Option.map (fun (ws, mid) -> ws, mid, lookup ws mid)
        let appendSql, appendPs = append |> Option.map (fun (_, _, (sql, ps, _)) -> sql, ps) |> Option.defaultValue ([], [])

        let read (c: Cursor) =
            task {
                for h in f.Tokens do
                    let! found = c.Read()
                    foreseenTokens[Convert.ToHexString h] <- if found then Some(readToken c.Reader) else None
                    let! _ = c.Next()
                    ()

                match append with
                | Some(ws, mid, (_, _, readLookup)) ->
                    let! answer = readLookup c
                    foreseenAppend <- Some(ws, mid, answer)
                | None -> ()
            }

        match tokenSql @ appendSql with
        | [] -> Task.CompletedTask
        | statements -> batchAsync s (String.Join(";\n", statements)) (tokenPs @ appendPs) read

    /// Whether the transaction saved a workspace (the engine then drops its cached team once it has committed).
    member _.SavedWorkspace = savedWorkspace

    /// The rows still to send, taken (the engine sends them with its last statements and the COMMIT).
    member _.TakePending() : (string * (string * obj) list) list =
        let rows = List.ofSeq pending
        pending.Clear()
        rows

    /// What the transaction announced, in order (the engine publishes them after the commit).
    member _.Announced: PlatformEvent list = List.ofSeq announced

    /// What runs after the commit, in order.
    member _.AfterCommitActions: (unit -> unit) list = List.ofSeq afterCommit

    interface IWriter with
        member _.Workspace id =
            // from the team when it is cached or this transaction has read it already
            match s.Team, read with
            | Some _, _
            | None, Some _ when not savedWorkspace -> team () |> List.tryFind (fun w -> w.Id = id)
            | _ -> workspaces "WHERE id = @id" [ "@id", idText id ] |> List.tryHead

        member _.Workspaces() = team ()

        member _.TokenByHash hash =
            match foreseenTokens.TryGetValue(Convert.ToHexString hash) with
            | true, t -> t
            | _ ->
                query s $"SELECT {tokenColumns} FROM workspace_auth_tokens WHERE token_hash = @h" [ "@h", box hash ] readToken
                |> List.tryHead

        member _.TokensOf ws =
            query s $"SELECT {tokenColumns} FROM workspace_auth_tokens WHERE workspace_id = @ws ORDER BY created_at, id" [ "@ws", idText ws ] readToken

        member _.AckFloor ws =
            match scalar s "SELECT last_acked_seq FROM inbox_delivery_state WHERE workspace_id = @ws" [ "@ws", idText ws ] with
            | :? int64 as n -> Some n
            | _ -> None

        member _.Page(ws, q, now) = page ws q now
        member _.Rows q = rows q
        member _.Hydrate slim = hydrate slim

        member _.TrackingRow(ws, key) =
            activityWhere
                activityColumns
                "workspace_id = @ws AND activity_type = 'delegation' AND method = 'delegate' AND idempotency_key = @k"
                [ "@ws", idText ws; "@k", box key ]
                "created_at, seq"
                (Some 1)
            |> List.tryHead

        member _.Memories sel = memories sel
        member _.Abilities ws = abilities ws
        member _.File(ws, kind, key) = file ws kind key

        member _.Request id =
            query s $"SELECT {requestColumns} FROM requests WHERE id = @id" [ "@id", idText id ] readRequest |> List.tryHead

        member _.Requests scope = requests scope

        member _.RequestMessages id =
            query
                s
                $"SELECT {requestMessageColumns} FROM request_messages WHERE request_id = @id ORDER BY created_at, id"
                [ "@id", idText id ]
                readRequestMessage

        member _.Approval id =
            query s $"SELECT {approvalColumns} FROM approvals WHERE id = @id" [ "@id", idText id ] readApproval |> List.tryHead

        member _.Approvals ws =
            query
                s
                $"SELECT {approvalColumns} FROM approvals WHERE workspace_id = @ws ORDER BY created_at DESC, id DESC LIMIT {Approvals.ListSize}"
                [ "@ws", idText ws ]
                readApproval

        member _.LastNudges() =
            query s "SELECT id, last_nudged_at FROM requests WHERE last_nudged_at IS NOT NULL" [] readLastNudge
            |> List.choose (fun (id, at) -> at |> Option.map (fun t -> id, t))
            |> Map.ofList

        member _.MarkNudged(id, at) =
            exec s "UPDATE requests SET last_nudged_at = @at WHERE id = @id" [ "@at", ticks at; "@id", idText id ] |> ignore

        member _.SaveRequest q = saveRequest q

        member _.AddRequestMessage m =
            exec
                s
                $"INSERT INTO request_messages ({requestMessageColumns}) VALUES (@id,@rq,@at,@ai,@b,@ca)"
                [ "@id", idText m.Id
                  "@rq", idText m.RequestId
                  "@at", box (Requests.Party.typeText m.Author)
                  "@ai", optText (Requests.Party.idText m.Author)
                  "@b", box m.Body
                  "@ca", ticks m.CreatedAt ]
            |> ignore

        member _.SaveApproval a = saveApproval a
        member _.StoredSchemaVersion() = schemaVersion s

        member _.SaveWorkspace w =
            saving ()
            saveWorkspace w

        member _.SaveWorkspaceIf(w, seen) =
            saving ()
            saveWorkspaceIf w seen

        member _.SaveToken t =
            foreseenTokens.Clear()
            saveToken t

        member _.RevokeTokens(ws, at) =
            foreseenTokens.Clear()
            exec s "UPDATE workspace_auth_tokens SET revoked_at = @t WHERE workspace_id = @ws AND revoked_at IS NULL" [ "@t", ticks at; "@ws", idText ws ]
            |> ignore

        member _.Append row = append row

        member _.SetRowStatus(id, st) =
            exec s "UPDATE activity_logs SET status = @s WHERE id = @id" [ "@s", box st; "@id", idText id ] |> ignore

        member _.DeleteRow id = exec s "DELETE FROM activity_logs WHERE id = @id" [ "@id", idText id ] |> ignore
        member _.Ack(ws, acked, at) = ack ws acked at
        member _.Prune c = prune c

        member _.AddMemory m =
            exec
                s
                "INSERT INTO agent_memories (id,workspace_id,content,scope,namespace,created_at) VALUES (@id,@ws,@c,@s,@n,@ca)"
                [ "@id", idText m.Id
                  "@ws", idText m.WorkspaceId
                  "@c", box m.Content
                  "@s", box (MemoryScope.text m.Scope)
                  "@n", box m.Namespace
                  "@ca", ticks m.CreatedAt ]
            |> ignore

        member _.SetAbilities(ws, a, at) = setAbilities ws a at
        member _.PutFile(f, content) = putFile f content

        member _.DeleteFile(ws, kind, key) =
            let deleted =
                exec
                    s
                    "DELETE FROM stored_files WHERE workspace_id = @ws AND kind = @k AND file_key = @f"
                    [ "@ws", idText ws; "@k", box (FileKind.text kind); "@f", box key ]

            deleted > 0

        member _.IssueTicket t =
            // issued now: expired tickets go first
            exec s "DELETE FROM stream_tickets WHERE expires_at <= @now" [ "@now", ticks (t.Expires - Tickets.lifetime) ] |> ignore
            exec s "INSERT INTO stream_tickets (ticket_hash,expires_at) VALUES (@h,@e)" [ "@h", box t.Hash; "@e", ticks t.Expires ] |> ignore

        member _.RedeemTicket(hash, now) =
            exec s "DELETE FROM stream_tickets WHERE expires_at <= @now" [ "@now", ticks now ] |> ignore
            exec s "DELETE FROM stream_tickets WHERE ticket_hash = @h AND expires_at > @now" [ "@h", box hash; "@now", ticks now ] > 0

        member _.Announce e = announced.Add e
        member _.AfterCommit f = afterCommit.Add f
