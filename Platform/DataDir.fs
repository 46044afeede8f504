/// The data directory is private to its owner: the directory and its subdirectories 0700, every file 0600 (the
/// database and its -wal/-shm, the admin token, uploads, platform.json), also when an older platform left it open.
module Molecule.Platform.DataDir

open System
open System.IO

let private dirMode =
    UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute

let private fileMode = UnixFileMode.UserRead ||| UnixFileMode.UserWrite

let private isLink (path: string) =
    try
        not (isNull (FileInfo(path).LinkTarget))
    with
    | :? IOException
    | :? UnauthorizedAccessException -> false

/// Creates a directory (and missing parents) with mode 0700; an existing one is set to 0700.
let createPrivateDir (path: string) : unit =
    if OperatingSystem.IsWindows() then
        Directory.CreateDirectory path |> ignore
    else
        Directory.CreateDirectory(path, dirMode) |> ignore

        try
            if not (isLink path) && File.GetUnixFileMode path <> dirMode then
                File.SetUnixFileMode(path, dirMode)
        with
        | :? IOException
        | :? UnauthorizedAccessException -> ()

/// Creates an empty file with mode 0600 when it does not exist (so SQLite's -wal and -shm, which copy the
/// database's mode, are private too).
let touchPrivate (path: string) : unit =
    if not (File.Exists path) && not (OperatingSystem.IsWindows()) then
        let opts =
            FileStreamOptions(Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = Nullable fileMode)

        try
            use _ = new FileStream(path, opts)
            ()
        with :? IOException when File.Exists path ->
            ()

/// Options for a new private file (mode 0600) opened for writing.
let privateFile (mode: FileMode) : FileStreamOptions =
    if OperatingSystem.IsWindows() then
        FileStreamOptions(Mode = mode, Access = FileAccess.Write)
    else
        FileStreamOptions(Mode = mode, Access = FileAccess.Write, UnixCreateMode = Nullable fileMode)

/// Restricts the directory and everything under it (symbolic links are left alone): directories 0700, files
/// 0600. Returns how many modes were changed.
let secure (dir: string) : int =
    if OperatingSystem.IsWindows() then
        0
    else
        createPrivateDir dir
        let mutable changed = 0

        let set (path: string) (mode: UnixFileMode) =
            try
                if not (isLink path) && File.GetUnixFileMode path <> mode then
                    File.SetUnixFileMode(path, mode)
                    changed <- changed + 1
            with
            | :? IOException
            | :? UnauthorizedAccessException -> ()

        let rec walk (d: string) =
            for f in Directory.EnumerateFiles d do
                set f fileMode

            for sub in Directory.EnumerateDirectories d do
                if not (isLink sub) then
                    set sub dirMode
                    walk sub

        walk dir
        changed

/// The mode of a path as an octal string (e.g. "600"), for messages and tests.
let modeOf (path: string) : string =
    if OperatingSystem.IsWindows() then
        ""
    else
        Convert.ToString(int (File.GetUnixFileMode path), 8)

/// Reads `<dataDir>/<fileName>` (a secret of at least 32 characters), or writes a fresh one from `create ()` with
/// mode 0600 and returns it.
let adminToken (dataDir: string) (fileName: string) (create: unit -> string) : string =
    createPrivateDir dataDir
    let path = Path.Combine(dataDir, fileName)

    let existing =
        if File.Exists path then
            let t = File.ReadAllText(path).Trim()
            if t.Length >= 32 then Some t else None
        else
            None

    match existing with
    | Some t -> t
    | None ->
        let t = create ()
        use fs = new FileStream(path, privateFile FileMode.Create)
        let bytes = Text.Encoding.UTF8.GetBytes(t + "\n")
        fs.Write(bytes, 0, bytes.Length)
        fs.Flush true

        if not (OperatingSystem.IsWindows()) then
            File.SetUnixFileMode(path, fileMode)

        t

/// The file a platform process holds open, unshared, for as long as it serves a data directory.
[<Literal>]
let LockFile = "platform.lock"

/// Takes the data directory for this process (one platform process per directory, whatever its database); dispose
/// to let it go. A directory another process holds is an InvalidOperationException.
let lock (dataDir: string) : IDisposable =
    Directory.CreateDirectory dataDir |> ignore

    try
        let options = privateFile FileMode.OpenOrCreate
        options.Access <- FileAccess.ReadWrite
        options.Share <- FileShare.None
        new FileStream(Path.Combine(dataDir, LockFile), options) :> IDisposable
    with :? IOException ->
        raise (InvalidOperationException($"data directory {dataDir} is in use by another platform process"))
