/// The Prometheus text exposition format (version 0.0.4), the wire shape of GET /metrics: metric families with their
/// HELP and TYPE lines, samples with escaped label values, histograms as cumulative `_bucket{le=…}` samples with
/// `_sum` and `_count`. Pure.
module Molecule.Platform.Exposition

open System
open System.Globalization
open System.Text

/// The content type Prometheus expects for this format.
[<Literal>]
let ContentType = "text/plain; version=0.0.4; charset=utf-8"

[<RequireQualifiedAccess>]
type Kind =
    | Counter
    | Gauge
    | Histogram

module Kind =
    let text (k: Kind) =
        match k with
        | Kind.Counter -> "counter"
        | Kind.Gauge -> "gauge"
        | Kind.Histogram -> "histogram"

type Sample =
    { /// Appended to the family's name: "" for counters and gauges, `_bucket`, `_sum` or `_count` for histograms.
      Suffix: string
      Labels: (string * string) list
      Value: float }

type Family =
    { Name: string
      Help: string
      Kind: Kind
      Samples: Sample list }

/// A sample without a suffix.
let sample (labels: (string * string) list) (value: float) : Sample =
    { Suffix = ""; Labels = labels; Value = value }

/// What a histogram holds: the upper bounds of its buckets (ascending, +Inf implied), how many observations fell
/// into each bucket (not cumulative; one more than the bounds: the last is above every bound), and their sum.
type Histogram =
    { Bounds: float list
      Counts: int64 list
      Sum: float }

module Histogram =
    /// No observations yet.
    let empty (bounds: float list) : Histogram =
        { Bounds = bounds
          Counts = List.replicate (bounds.Length + 1) 0L
          Sum = 0.0 }

    /// The bucket index of a value: the first bound it does not exceed, else the one above every bound.
    let bucketOf (bounds: float list) (value: float) : int =
        bounds |> List.tryFindIndex (fun b -> value <= b) |> Option.defaultValue bounds.Length

    let observe (value: float) (h: Histogram) : Histogram =
        let i = bucketOf h.Bounds value

        { h with
            Counts = h.Counts |> List.mapi (fun j c -> if j = i then c + 1L else c)
            Sum = h.Sum + value }

    let count (h: Histogram) : int64 = List.sum h.Counts

/// A number as the format writes it: `+Inf`, `-Inf`, `NaN`, else the shortest round-trip form.
let number (v: float) : string =
    if Double.IsPositiveInfinity v then "+Inf"
    elif Double.IsNegativeInfinity v then "-Inf"
    elif Double.IsNaN v then "NaN"
    else v.ToString("R", CultureInfo.InvariantCulture)

/// A label value escaped: backslash, double quote and line feed.
let escapeLabel (s: string) : string =
    s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n")

/// A HELP text escaped: backslash and line feed.
let escapeHelp (s: string) : string = s.Replace("\\", "\\\\").Replace("\n", "\\n")

/// A histogram's samples: a cumulative `_bucket` per bound and `+Inf`, then `_sum` and `_count`, each with `labels`.
let histogramSamples (labels: (string * string) list) (h: Histogram) : Sample list =
    let bounds = (h.Bounds |> List.map number) @ [ "+Inf" ]
    let cumulative = h.Counts |> List.scan (+) 0L |> List.tail

    [ for le, c in List.zip bounds cumulative -> { Suffix = "_bucket"; Labels = labels @ [ "le", le ]; Value = float c } ]
    @ [ { Suffix = "_sum"; Labels = labels; Value = h.Sum }
        { Suffix = "_count"; Labels = labels; Value = float (Histogram.count h) } ]

let private line (sb: StringBuilder) (name: string) (s: Sample) =
    sb.Append(name).Append(s.Suffix) |> ignore

    if not s.Labels.IsEmpty then
        let pairs = s.Labels |> List.map (fun (k, v) -> k + "=\"" + escapeLabel v + "\"")
        sb.Append('{').Append(String.Join(",", pairs)).Append('}') |> ignore

    sb.Append(' ').Append(number s.Value).Append('\n') |> ignore

/// The exposition text of these families, in order.
let render (families: Family list) : string =
    let sb = StringBuilder()

    for f in families do
        sb.Append("# HELP ").Append(f.Name).Append(' ').Append(escapeHelp f.Help).Append('\n') |> ignore
        sb.Append("# TYPE ").Append(f.Name).Append(' ').Append(Kind.text f.Kind).Append('\n') |> ignore

        for s in f.Samples do
            line sb f.Name s

    sb.ToString()
