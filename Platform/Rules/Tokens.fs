/// Workspace and admin tokens: format, hash, prefix, constant-time verification. Random bytes are an argument.
module Molecule.Platform.Tokens

open System
open System.Security.Cryptography
open System.Text

/// Number of random bytes in a token.
[<Literal>]
let ByteLength = 32

/// base64url without padding.
let base64Url (bytes: byte[]) : string =
    Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_')

/// Token text from 32 random bytes: base64url without padding, 43 characters.
let format (bytes: byte[]) : string = base64Url bytes

/// SHA-256 of the token's UTF-8 text: the only thing stored.
let hash (token: string) : byte[] =
    SHA256.HashData(Encoding.UTF8.GetBytes(if isNull token then "" else token))

/// The first 8 characters, kept for display.
let prefix (token: string) : string =
    if isNull token then "" elif token.Length <= 8 then token else token.Substring(0, 8)

/// Constant-time comparison of a presented token against a stored hash.
let matches (storedHash: byte[]) (presented: string) : bool =
    not (isNull storedHash)
    && storedHash.Length = 32
    && CryptographicOperations.FixedTimeEquals(ReadOnlySpan storedHash, ReadOnlySpan(hash presented))

/// A new stored token record (never contains the token text).
let create (id: TokenId) (workspaceId: WorkspaceId) (now: DateTimeOffset) (token: string) : Token =
    { Id = id
      WorkspaceId = workspaceId
      Hash = hash token
      Prefix = prefix token
      CreatedAt = now
      LastUsedAt = None
      RevokedAt = None }

let isLive (t: Token) = t.RevokedAt.IsNone

/// Well-formed token text: 43 base64url characters.
let isWellFormed (s: string) =
    not (isNull s)
    && s.Length = 43
    && s |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-' || c = '_')

/// The live token of `workspaceId` that the presented text matches, if any.
let findLive (tokens: Token seq) (workspaceId: WorkspaceId) (presented: string) : Token option =
    tokens
    |> Seq.filter (fun t -> t.WorkspaceId = workspaceId && isLive t)
    |> Seq.tryFind (fun t -> matches t.Hash presented)

/// The stored token a presented text names (its hash is the store's key), checked in constant time.
let named (lookup: byte[] -> Token option) (presented: string) : Token option =
    lookup (hash presented) |> Option.filter (fun t -> matches t.Hash presented)

/// Constant-time comparison of two secrets given as text (admin token).
let equalSecrets (a: string) (b: string) : bool =
    if isNull a || isNull b then
        false
    else
        CryptographicOperations.FixedTimeEquals(ReadOnlySpan(hash a), ReadOnlySpan(hash b))
