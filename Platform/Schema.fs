/// The SQLite schema of the platform's store, its migrations, the column codecs and the row statements.
module Molecule.Platform.Schema

open System
open Microsoft.Data.Sqlite

[<Literal>]
let Version = 2

let schema =
    [ """CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"""
      """CREATE TABLE IF NOT EXISTS workspaces (
           id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT, tier INTEGER NOT NULL DEFAULT 1,
           status TEXT NOT NULL, agent_card TEXT, url TEXT, parent_id TEXT,
           delivery_mode TEXT NOT NULL DEFAULT 'push', runtime TEXT NOT NULL DEFAULT 'external',
           last_heartbeat_at INTEGER, last_error_rate REAL NOT NULL DEFAULT 0, active_tasks INTEGER NOT NULL DEFAULT 0,
           uptime_seconds INTEGER NOT NULL DEFAULT 0, current_task TEXT NOT NULL DEFAULT '',
           max_concurrent_tasks INTEGER NOT NULL DEFAULT 1, platform_inbound_secret TEXT, last_outbound_at INTEGER,
           created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)"""
      """CREATE TABLE IF NOT EXISTS workspace_auth_tokens (
           id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, prefix TEXT NOT NULL,
           created_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER)"""
      """CREATE TABLE IF NOT EXISTS activity_logs (
           seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL,
           activity_type TEXT NOT NULL, source_id TEXT, target_id TEXT, method TEXT, summary TEXT,
           request_body TEXT, response_body TEXT, tool_trace TEXT, duration_ms INTEGER, status TEXT NOT NULL DEFAULT 'ok',
           error_detail TEXT, created_at INTEGER NOT NULL, idempotency_key TEXT)"""
      """CREATE INDEX IF NOT EXISTS activity_ws ON activity_logs (workspace_id, created_at, seq)"""
      """CREATE TABLE IF NOT EXISTS agent_memories (
           id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, content TEXT NOT NULL, scope TEXT NOT NULL,
           namespace TEXT NOT NULL DEFAULT 'general', created_at INTEGER NOT NULL)""" ]

/// Upgrades from the version before each: (version reached, statements). Each runs once, in one transaction with
/// the version bump.
let migrations =
    [ 2,
      [ // inbound idempotency by A2A messageId (spec §6.1)
        """ALTER TABLE activity_logs ADD COLUMN message_id TEXT"""
        """CREATE UNIQUE INDEX IF NOT EXISTS activity_msg ON activity_logs (workspace_id, message_id) WHERE message_id IS NOT NULL"""
        // the ack floor (spec §3.2)
        """CREATE TABLE IF NOT EXISTS inbox_delivery_state (
             workspace_id TEXT PRIMARY KEY, last_acked_seq INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL)""" ] ]

let ticks (t: DateTimeOffset) = box t.UtcTicks
let optTicks (t: DateTimeOffset option) = match t with Some v -> box v.UtcTicks | None -> box DBNull.Value
let optText (s: string option) = match s with Some v -> box v | None -> box DBNull.Value
let optGuid (g: Guid option) = match g with Some v -> box (v.ToString "D") | None -> box DBNull.Value
let guid (g: Guid) = box (g.ToString "D")
let ofTicks (v: int64) = DateTimeOffset(v, TimeSpan.Zero)

let rdOptText (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetString i)
let rdOptTicks (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(ofTicks (r.GetInt64 i))
let rdOptGuid (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(Guid.Parse(r.GetString i))
let rdOptInt (r: SqliteDataReader) (i: int) = if r.IsDBNull i then None else Some(r.GetInt32 i)

let workspaceColumns =
    "id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at"

let readWorkspace (r: SqliteDataReader) : Workspace =
    { Id = Guid.Parse(r.GetString 0)
      Name = r.GetString 1
      Role = rdOptText r 2
      Tier = r.GetInt32 3
      Status = r.GetString 4
      AgentCard = rdOptText r 5
      Url = rdOptText r 6
      ParentId = rdOptGuid r 7
      DeliveryMode = r.GetString 8
      Runtime = r.GetString 9
      LastHeartbeatAt = rdOptTicks r 10
      LastErrorRate = r.GetDouble 11
      ActiveTasks = r.GetInt32 12
      UptimeSeconds = r.GetInt32 13
      CurrentTask = r.GetString 14
      MaxConcurrentTasks = r.GetInt32 15
      InboundSecret = rdOptText r 16
      LastOutboundAt = rdOptTicks r 17
      CreatedAt = ofTicks (r.GetInt64 18)
      UpdatedAt = ofTicks (r.GetInt64 19) }

let activityColumns =
    "seq,id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

/// The same columns without the three JSON bodies (read as NULL): what the in-memory index holds.
let slimActivityColumns =
    "seq,id,workspace_id,activity_type,source_id,target_id,method,summary,NULL,NULL,NULL,duration_ms,status,error_detail,created_at,idempotency_key,message_id"

let readActivity (r: SqliteDataReader) : ActivityRow =
    { Seq = r.GetInt64 0
      Id = Guid.Parse(r.GetString 1)
      WorkspaceId = Guid.Parse(r.GetString 2)
      ActivityType = r.GetString 3
      SourceId = rdOptGuid r 4
      TargetId = rdOptGuid r 5
      Method = rdOptText r 6
      Summary = rdOptText r 7
      RequestBody = rdOptText r 8
      ResponseBody = rdOptText r 9
      ToolTrace = rdOptText r 10
      DurationMs = rdOptInt r 11
      Status = r.GetString 12
      ErrorDetail = rdOptText r 13
      CreatedAt = ofTicks (r.GetInt64 14)
      IdempotencyKey = rdOptText r 15
      MessageId = rdOptText r 16 }

let upsertWorkspaceSql =
    """INSERT INTO workspaces (id,name,role,tier,status,agent_card,url,parent_id,delivery_mode,runtime,last_heartbeat_at,last_error_rate,active_tasks,uptime_seconds,current_task,max_concurrent_tasks,platform_inbound_secret,last_outbound_at,created_at,updated_at)
       VALUES ($id,$name,$role,$tier,$status,$card,$url,$parent,$dm,$rt,$hb,$er,$at,$up,$ct,$mct,$sec,$out,$ca,$ua)
       ON CONFLICT(id) DO UPDATE SET name=$name,role=$role,tier=$tier,status=$status,agent_card=$card,url=$url,parent_id=$parent,
       delivery_mode=$dm,runtime=$rt,last_heartbeat_at=$hb,last_error_rate=$er,active_tasks=$at,uptime_seconds=$up,current_task=$ct,
       max_concurrent_tasks=$mct,platform_inbound_secret=$sec,last_outbound_at=$out,updated_at=$ua"""

let workspaceParams (w: Workspace) : (string * obj) list =
    [ "$id", guid w.Id
      "$name", box w.Name
      "$role", optText w.Role
      "$tier", box w.Tier
      "$status", box w.Status
      "$card", optText w.AgentCard
      "$url", optText w.Url
      "$parent", optGuid w.ParentId
      "$dm", box w.DeliveryMode
      "$rt", box w.Runtime
      "$hb", optTicks w.LastHeartbeatAt
      "$er", box w.LastErrorRate
      "$at", box w.ActiveTasks
      "$up", box w.UptimeSeconds
      "$ct", box w.CurrentTask
      "$mct", box w.MaxConcurrentTasks
      "$sec", optText w.InboundSecret
      "$out", optTicks w.LastOutboundAt
      "$ca", ticks w.CreatedAt
      "$ua", ticks w.UpdatedAt ]

let insertActivitySql =
    """INSERT INTO activity_logs (id,workspace_id,activity_type,source_id,target_id,method,summary,request_body,response_body,tool_trace,duration_ms,status,error_detail,created_at,idempotency_key,message_id)
       VALUES ($id,$ws,$t,$src,$tgt,$m,$s,$rq,$rs,$tt,$d,$st,$e,$ca,$k,$mid)"""

let activityParams (r: ActivityRow) : (string * obj) list =
    [ "$id", guid r.Id
      "$ws", guid r.WorkspaceId
      "$t", box r.ActivityType
      "$src", optGuid r.SourceId
      "$tgt", optGuid r.TargetId
      "$m", optText r.Method
      "$s", optText r.Summary
      "$rq", optText r.RequestBody
      "$rs", optText r.ResponseBody
      "$tt", optText r.ToolTrace
      "$d", (match r.DurationMs with Some d -> box d | None -> box DBNull.Value)
      "$st", box r.Status
      "$e", optText r.ErrorDetail
      "$ca", ticks r.CreatedAt
      "$k", optText r.IdempotencyKey
      "$mid", optText r.MessageId ]
