/// Request guards that close the doors a browser could open: DNS rebinding (a foreign `Host`), cross-site
/// state changes (a foreign `Origin`) and form posts (a non-JSON content type). Pure: the platform's names and the
/// request's headers are arguments.
module Molecule.Platform.Guard

open System
open System.Net

/// Which names the platform answers to.
type Names =
    {
        /// Names and addresses of this machine (and the listen address), lower case.
        Own: Set<string>
        /// Names given with `--allowed-host` (e.g. the public name behind a reverse proxy): accepted as `Host` and as
        /// the host of an `Origin` on any scheme and port.
        Public: Set<string>
    }

module Names =
    let private norm (s: string) =
        (if isNull s then "" else s.Trim().TrimEnd('.')).ToLowerInvariant().Trim('[', ']')

    /// Names from lists of own names and public names (trimmed, lower case, brackets and a trailing dot dropped).
    let create (own: string seq) (extra: string seq) : Names =
        let clean xs = xs |> Seq.map norm |> Seq.filter (fun s -> s <> "") |> Set.ofSeq
        { Own = clean own; Public = clean extra }

/// Host and port of a `Host` header value (`name`, `name:port`, `[v6]:port`): the host lower case, without
/// brackets or a trailing dot. None when it is empty or malformed.
let authorityOf (header: string) : (string * int option) option =
    if String.IsNullOrWhiteSpace header then
        None
    else
        let h = header.Trim()

        let port (p: string) =
            if p <> "" && p.Length <= 5 && p |> Seq.forall Char.IsAsciiDigit then Some(Some(int p)) else None

        let split =
            if h.StartsWith "[" then
                match h.IndexOf ']' with
                | -1 -> None
                | i ->
                    match h.Substring(i + 1) with
                    | "" -> Some(h.Substring(1, i - 1), None)
                    | rest when rest.StartsWith ":" -> port (rest.Substring 1) |> Option.map (fun p -> h.Substring(1, i - 1), p)
                    | _ -> None
            else
                match h.Split ':' with
                | [| name |] -> Some(name, None)
                | [| name; p |] -> port p |> Option.map (fun p -> name, p)
                | _ -> None

        split
        |> Option.map (fun (host, p) -> host.TrimEnd('.').ToLowerInvariant(), p)
        |> Option.filter (fun (host, _) ->
            host <> ""
            && host |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-' || c = '.' || c = ':' || c = '_'))

/// The host of a `Host` header value (see authorityOf).
let hostOf (header: string) : string option = authorityOf header |> Option.map fst

/// `localhost`, `*.localhost`, 127.0.0.0/8, ::1 (also IPv4-mapped).
let isLoopback (host: string) : bool =
    match IPAddress.TryParse host with
    | true, ip -> IPAddress.IsLoopback ip || (ip.IsIPv4MappedToIPv6 && IPAddress.IsLoopback(ip.MapToIPv4()))
    | _ -> host = "localhost" || host.EndsWith ".localhost"

/// The `Host` header names the platform (one of its own names, a public name) or a loopback address.
let hostAllowed (names: Names) (header: string option) : bool =
    match header |> Option.bind hostOf with
    | None -> false
    | Some h -> isLoopback h || names.Own.Contains h || names.Public.Contains h

/// Methods that change state (everything but GET, HEAD, OPTIONS, TRACE).
let changesState (httpMethod: string) =
    match (if isNull httpMethod then "" else httpMethod.ToUpperInvariant()) with
    | "GET"
    | "HEAD"
    | "OPTIONS"
    | "TRACE" -> false
    | _ -> true

let private defaultPort (scheme: string) = if scheme = "https" then 443 else 80

/// An `Origin` is this platform's when it is http(s) and names the request's own `Host` (same host and port; a
/// missing port is the scheme's default), or its host is a public name. `null`, opaque and other schemes are foreign.
let originAllowed (names: Names) (hostHeader: string option) (origin: string) : bool =
    match Uri.TryCreate((if isNull origin then "" else origin.Trim()), UriKind.Absolute) with
    | true, o when (o.Scheme = "http" || o.Scheme = "https") && o.AbsolutePath = "/" && o.Query = "" && o.UserInfo = "" ->
        let originHost = o.Host.ToLowerInvariant().Trim('[', ']').TrimEnd('.')

        if names.Public.Contains originHost then
            true
        else
            match hostHeader |> Option.bind authorityOf with
            | None -> false
            | Some(host, port) -> host = originHost && defaultArg port (defaultPort o.Scheme) = o.Port
    | _ -> false

/// A JSON media type: `application/json` or `application/<x>+json`, parameters ignored.
let isJsonType (contentType: string) : bool =
    if String.IsNullOrWhiteSpace contentType then
        false
    else
        let media = contentType.Split(';').[0].Trim().ToLowerInvariant()
        media = "application/json" || (media.StartsWith "application/" && media.EndsWith "+json")

/// What the guard looks at.
type Request =
    { Method: string
      Host: string option
      Origin: string option
      ContentType: string option
      /// The request carries a body (Content-Length > 0, or chunked).
      HasBody: bool
      /// The route reads a JSON body (every state-changing route but the multipart upload).
      JsonRoute: bool }

let foreignHost =
    "Host not allowed: this platform answers to its own names and loopback addresses only (add a name with --allowed-host NAME)"

let foreignOrigin = "cross-origin request refused: the Origin is not this platform"
let notJson = "Content-Type must be application/json"

/// The refusal for a request, if any: a foreign Host → 421; a state change with a foreign Origin → 403; a
/// JSON route with a body that is not JSON → 415. An absent Origin passes (non-browser clients).
let check (names: Names) (r: Request) : Reply option =
    if not (hostAllowed names r.Host) then
        Some(Wire.errorReply 421 foreignHost)
    elif changesState r.Method && (r.Origin |> Option.exists (fun o -> not (originAllowed names r.Host o))) then
        Some(Wire.errorReply 403 foreignOrigin)
    elif changesState r.Method && r.JsonRoute && (r.HasBody || r.ContentType.IsSome) && not (r.ContentType |> Option.exists isJsonType) then
        Some(Wire.errorReply 415 notJson)
    else
        None
