/// The canvas page — the team console: a static single-page UI (Platform/Canvas/*: index.html, ES modules, CSS,
/// embedded in this assembly) served at `/` and `/canvas/*`. It talks to the platform only through the admin API
/// (admin bearer from the URL fragment or the sign-in form) and the SSE stream `GET /events`. Registered through
/// `Server.startWith`.
module Molecule.Platform.Canvas

open System
open System.IO
open System.Reflection
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing

/// File name → content type of every asset the page consists of (also the embedded resource names).
let assets: (string * string) list =
    [ "index.html", "text/html; charset=utf-8"
      for m in [ "canvas"; "core"; "tree"; "chat"; "workspace"; "dialogs"; "tokens"; "memories"; "feed"; "delegations"; "requests"; "approvals"; "live" ] do
          m + ".js", "text/javascript; charset=utf-8"
      "canvas.css", "text/css; charset=utf-8"
      "console.css", "text/css; charset=utf-8" ]

/// The strict policy the page is written for: only same-origin scripts, styles and connections; no inline code.
let contentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

let private load (name: string) : byte[] option =
    use s = Assembly.GetExecutingAssembly().GetManifestResourceStream("canvas/" + name)

    if isNull s then
        None
    else
        use ms = new MemoryStream()
        s.CopyTo ms
        Some(ms.ToArray())

/// The embedded assets, read once: (name, content type, bytes).
let private loaded: Lazy<Map<string, string * byte[]>> =
    lazy
        (assets
         |> List.choose (fun (name, ctype) -> load name |> Option.map (fun bytes -> name, (ctype, bytes)))
         |> Map.ofList)

/// The bytes of an embedded asset (tests, diagnostics).
let asset (name: string) : byte[] option =
    loaded.Value.TryFind name |> Option.map snd

let private serve (name: string) (ctx: HttpContext) : Task =
    match loaded.Value.TryFind name with
    | None ->
        ctx.Response.StatusCode <- 404
        ctx.Response.ContentType <- "application/json; charset=utf-8"
        ctx.Response.WriteAsync """{"error":"not found"}"""
    | Some(ctype, bytes) ->
        let h = ctx.Response.Headers
        ctx.Response.StatusCode <- 200
        ctx.Response.ContentType <- ctype
        h["Cache-Control"] <- "no-cache"
        h["Content-Security-Policy"] <- contentSecurityPolicy
        h["Referrer-Policy"] <- "no-referrer"
        h["X-Frame-Options"] <- "DENY"
        h["X-Content-Type-Options"] <- "nosniff"
        ctx.Response.ContentLength <- Nullable(int64 bytes.Length)

        if HttpMethods.IsHead ctx.Request.Method then
            Task.CompletedTask
        else
            ctx.Response.Body.WriteAsync(bytes, 0, bytes.Length)

/// Adds `GET /` (index.html) and `GET /canvas/{file}` to the platform (pass to `Server.startWith`).
let map (app: WebApplication) : unit =
    app.MapMethods("/", [| "GET"; "HEAD" |], RequestDelegate(serve "index.html")) |> ignore

    app.MapMethods(
        "/canvas/{file}",
        [| "GET"; "HEAD" |],
        RequestDelegate(fun ctx ->
            let file =
                match ctx.Request.RouteValues.TryGetValue "file" with
                | true, (:? string as s) -> s
                | _ -> ""

            serve file ctx)
    )
    |> ignore

/// Starts the platform with the canvas page.
let start (options: Server.PlatformOptions) : Task<Server.RunningPlatform> = Server.startWith map options

/// Starts the platform with the canvas page (C# hosts): system clock, default sweep interval.
let startAt (dataDir: string) (host: string) (port: int) : Task<Server.RunningPlatform> =
    start
        { Server.PlatformOptions.defaults dataDir with
            Host = host
            Port = port }

/// The page's address with the admin token in the fragment (the fragment never reaches the server).
let pageUrl (baseUrl: string) (adminToken: string) : string =
    $"{baseUrl.TrimEnd('/')}/#token={Uri.EscapeDataString adminToken}"
