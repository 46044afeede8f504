/// Secrets the platform must give back, sealed at rest: AES-256-GCM under a key kept outside the database, bound to
/// the row they belong to. (Tokens and tickets are only ever verified, so only their SHA-256 is stored.)
namespace Molecule.Platform

open System
open System.Collections.Concurrent
open System.IO
open System.Security.Cryptography
open System.Text

type SecretBox(key: byte[]) =
    do
        if isNull key || key.Length <> 32 then
            invalidArg "key" "a secret box key is 32 bytes"

    static let prefix = "v1:"
    static let nonceSize = 12
    static let tagSize = 16

    /// The last (sealed, secret) pair of each owner: a workspace is read far more often than its secret changes, and
    /// opening costs a cipher set-up each time. Saving the same secret again reuses its sealed form.
    let known = ConcurrentDictionary<string, struct (string * string)>()

    /// Whether a stored value is sealed (values written before sealing are clear text).
    static member IsSealed(stored: string) = not (isNull stored) && stored.StartsWith prefix

    /// `v1:` + base64url(nonce | tag | ciphertext); `context` (the owner's id) must be the same to open it. The same
    /// secret of the same owner seals to the form it had.
    member this.Seal(context: string, secret: string) : string =
        match known.TryGetValue context with
        | true, struct (sealedText, plain) when plain = secret -> sealedText
        | _ ->
            let sealedText = this.SealFresh(context, secret)
            known[context] <- struct (sealedText, secret)
            sealedText

    /// A new sealed form (a fresh nonce) of a secret.
    member private _.SealFresh(context: string, secret: string) : string =
        let plain = Encoding.UTF8.GetBytes secret
        let nonce = RandomNumberGenerator.GetBytes nonceSize
        let sealedBytes = Array.zeroCreate<byte> (nonceSize + tagSize + plain.Length)
        use aes = new AesGcm(key, tagSize)

        aes.Encrypt(
            ReadOnlySpan nonce,
            ReadOnlySpan plain,
            Span(sealedBytes, nonceSize + tagSize, plain.Length),
            Span(sealedBytes, nonceSize, tagSize),
            ReadOnlySpan(Encoding.UTF8.GetBytes context)
        )

        Buffer.BlockCopy(nonce, 0, sealedBytes, 0, nonceSize)
        prefix + Tokens.base64Url sealedBytes

    /// The secret of a stored value: opened when sealed, as is when clear text (written before sealing); None when it
    /// cannot be opened (another key, another owner, damaged).
    member this.Open(context: string, stored: string) : string option =
        match known.TryGetValue context with
        | true, struct (sealedText, plain) when sealedText = stored -> Some plain
        | _ ->
            let opened = this.OpenFresh(context, stored)
            opened |> Option.iter (fun plain -> if SecretBox.IsSealed stored then known[context] <- struct (stored, plain))
            opened

    member private _.OpenFresh(context: string, stored: string) : string option =
        if isNull stored then
            None
        elif not (SecretBox.IsSealed stored) then
            Some stored
        else
            let text = stored.Substring(prefix.Length).Replace('-', '+').Replace('_', '/')
            let padded = text + String('=', (4 - text.Length % 4) % 4)

            let bytes =
                try
                    Some(Convert.FromBase64String padded)
                with :? FormatException ->
                    None

            match bytes with
            | Some b when b.Length >= nonceSize + tagSize ->
                let plain = Array.zeroCreate<byte> (b.Length - nonceSize - tagSize)
                use aes = new AesGcm(key, tagSize)

                try
                    aes.Decrypt(
                        ReadOnlySpan(b, 0, nonceSize),
                        ReadOnlySpan(b, nonceSize + tagSize, plain.Length),
                        ReadOnlySpan(b, nonceSize, tagSize),
                        Span plain,
                        ReadOnlySpan(Encoding.UTF8.GetBytes context)
                    )

                    Some(Encoding.UTF8.GetString plain)
                with :? CryptographicException ->
                    None
            | _ -> None

module SecretBox =
    /// The key file's name in the data directory.
    [<Literal>]
    let KeyFile = "secret_key"

    /// The box of the key in `path` (base64, 32 bytes), created with mode 0600 when missing. A file that is not a
    /// key is an error naming it (never replaced: the secrets sealed with it would be lost).
    let load (path: string) : SecretBox =
        if File.Exists path then
            let text = File.ReadAllText(path).Trim()

            let key =
                try
                    Convert.FromBase64String text
                with :? FormatException ->
                    [||]

            if key.Length <> 32 then
                raise (InvalidDataException($"{path} is not a secret key (32 bytes, base64): restore it, or move it away to start with a new key (inbound secrets sealed with the old one are then issued anew)"))

            SecretBox key
        else
            let key = RandomNumberGenerator.GetBytes 32
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path)) |> ignore
            use fs = new FileStream(path, DataDir.privateFile FileMode.CreateNew)
            let bytes = Encoding.ASCII.GetBytes(Convert.ToBase64String key + "\n")
            fs.Write(bytes, 0, bytes.Length)
            fs.Flush true
            SecretBox key
