/// Files the user uploads to a poll-mode workspace (addendum §7.5; P34, P35): the workspace's hidden upload messages
/// (Uploads) are downloaded under `<state dir>/uploads/<workspace id>/`, recorded in the ledger once on disk,
/// acknowledged to the platform, and announced to the agent as ONE message per batch. A file is one file by its id
/// (two rows naming it are one upload); a failed download is tried again as the pacing policy says (Pacing.upload),
/// at most `Uploads.maxAttempts` times. Pure, like Workspace.
module Molecule.Core.Staging

open System.Globalization
open Molecule.Protocol
open Molecule.Core.Workspace

let private pendings (ws: State) : (InboxMessage * Uploads.Pending) list =
    Ledger.pendingUploads ws.Ledger |> List.choose (fun m -> Uploads.decode m |> Option.map (fun p -> m, p))

let private tookOne (m: InboxMessage) = Ledger.Took { Messages = [ m ]; Cursor = None; Horizon = None; Newest = None }

/// Moves the uploaded files on: this workspace's own are dropped (never fetched or acknowledged — P35), waiting ones
/// are downloaded (one download per file at a time), and a batch whose files are all on disk or gone becomes ONE
/// message for the agent. Returns that message when there is one.
let uploads (ws: State) : State * Effect list * InboxMessage list =
    if not (inboxActive ws) then
        ws, [], []
    else
        let isOwn (p: Uploads.Pending) = ws.OwnUploads.Contains p.Upload.FileId
        let all = pendings ws
        let dropped = all |> List.filter (snd >> isOwn) |> List.map (fun (m, _) -> Ledger.Popped m.ActivityId)
        let rest = all |> List.filter (snd >> isOwn >> not)
        let announced =
            rest
            |> List.groupBy (fun (_, p) -> p.Group)
            |> List.filter (fun (_, members) -> members |> List.forall (fun (_, p) -> p.Stage <> Uploads.Waiting))
            |> List.choose (fun (_, members) ->
                Uploads.announce members
                |> Option.map (fun msg -> (members |> List.map (fun (m, _) -> Ledger.Popped m.ActivityId)) @ [ tookOne msg ], msg))
        let paced (fileId: string) = ws.DownloadPace.TryFind fileId |> Option.exists (fun p -> p.Waiting)
        let fetch =
            rest
            |> List.filter (fun (_, p) -> p.Stage = Uploads.Waiting && not (ws.Downloading.Contains p.Upload.FileId) && not (paced p.Upload.FileId))
            |> List.distinctBy (fun (_, p) -> p.Upload.FileId)
        let ws = { ws with Downloading = fetch |> List.fold (fun acc (_, p) -> Set.add p.Upload.FileId acc) ws.Downloading }
        let downloads =
            fetch
            |> List.map (fun (_, p) ->
                Download(Background(id ws, FetchUpload p.Upload.FileId), Api.uploadContent ws.Config p.Upload.FileId, Uploads.path ws.Config.StateDir (id ws) p.Upload))
        let ws, persisted = apply (dropped @ List.collect fst announced) ws
        ws, persisted @ downloads, List.map snd announced

/// A download ended: the file is on disk (recorded, then acknowledged to the platform), gone (404/410, or too many
/// failures: recorded so), or to be tried again when its retry timer fires. The ledger says a file is staged only once
/// it is — every waiting row naming the file at once.
let onDownload (uptime: float) (sample: float) (fileId: string) (result: DownloadResult) (ws: State) : State * Effect list * InboxMessage list =
    let ws = { ws with Downloading = ws.Downloading.Remove fileId }
    let waiting = pendings ws |> List.filter (fun (_, p) -> p.Upload.FileId = fileId && p.Stage = Uploads.Waiting)
    match waiting with
    | [] -> ws, [], []
    | (_, p) :: _ ->
        // the platform's strings are shown sanitised, also in log lines
        let name = Uploads.displayName p.Upload.Name
        let shownId = Uploads.displayName fileId
        let pace = defaultArg (ws.DownloadPace.TryFind fileId) Pacing.ready
        let failures = pace.Failures + 1
        let why =
            match result with
            | Saved _ -> ""
            | DownloadRefused(status, body) -> $"HTTP {status.ToString(CultureInfo.InvariantCulture)}{ToolKit.withMessage (ToolKit.platformMessage body)}"
            | DownloadFailed message -> message
        let settled, effects =
            match result with
            | Saved bytes ->
                let path = Uploads.path ws.Config.StateDir (id ws) p.Upload
                Some(Uploads.Staged(path, bytes)),
                [ Log(Info, $"saved the uploaded file {name} to {path}"); send ws (AckUpload fileId) (Api.ackUpload ws.Config fileId) ]
            | DownloadRefused(status, _) when status = 404 || status = 410 ->
                Some(Uploads.Gone $"the platform no longer has it: {why}"), [ Log(Info, $"uploaded file {name} ({shownId}) is already gone on the platform ({why}); skipping it") ]
            | _ when failures >= Uploads.maxAttempts ->
                Some(Uploads.Gone why), [ Log(Warning, $"giving up on the uploaded file {name} ({shownId}) after {failures.ToString(CultureInfo.InvariantCulture)} failed downloads: {why}") ]
            | _ -> None, []
        match settled with
        | None ->
            let pace, wait, logs =
                Pacing.failed Pacing.upload Warning $"downloading the uploaded file {name} ({shownId})" (Uploads.displayName why) uptime sample pace
            { ws with DownloadPace = ws.DownloadPace.Add(fileId, pace) }, logs @ [ After(wait, RetryTimer(id ws, FetchUpload fileId)) ], []
        | Some stage ->
            let ws = { ws with DownloadPace = ws.DownloadPace.Remove fileId }
            // durable first: the ack and the announcement leave after the ledger says where the file is
            let events = waiting |> List.collect (fun (m, _) -> [ Ledger.Popped m.ActivityId; tookOne (Uploads.withStage stage m) ])
            let ws, persisted = apply events ws
            let ws, more, announced = uploads ws
            ws, persisted @ effects @ more, announced

/// A file's retry timer fired: its download may be tried again.
let retry (fileId: string) (ws: State) : State * Effect list * InboxMessage list =
    match ws.DownloadPace.TryFind fileId with
    | Some pace -> uploads { ws with DownloadPace = ws.DownloadPace.Add(fileId, Pacing.due pace) }
    | None -> uploads ws

/// The platform's answer to an upload acknowledgement: only logged (the file is on disk either way).
let onUploadAck (fileId: string) (response: Response) (ws: State) : State * Effect list =
    match response with
    | Reply(status, _) when status >= 200 && status < 300 -> ws, []
    | Reply(status, body) ->
        ws, [ Log(Debug, $"acknowledging the uploaded file {Uploads.displayName fileId} failed: HTTP {status.ToString(CultureInfo.InvariantCulture)}{ToolKit.withMessage (ToolKit.platformMessage body)}") ]
    | TransportError m -> ws, [ Log(Debug, $"acknowledging the uploaded file {Uploads.displayName fileId} failed: {m}") ]
    | TimedOut _ -> ws, [ Log(Debug, $"acknowledging the uploaded file {Uploads.displayName fileId} timed out") ]

/// Files this workspace uploaded itself: their rows are not the user's.
let ownUploads (fileIds: string list) (ws: State) : State * Effect list * InboxMessage list =
    uploads { ws with OwnUploads = fileIds |> List.fold (fun acc f -> Set.add f acc) ws.OwnUploads }

