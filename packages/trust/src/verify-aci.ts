// ACI signatures as rkt checks them (pkg/keystore CheckSignature): a detached OpenPGP signature
// over the ACI bytes, made by a key trusted for the image name's prefix (or root).
import { Readable } from "node:stream";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { Key, Signature, Subkey } from "openpgp";
import { errorText } from "./key.js";
import type { TrustedKey } from "./keystore.js";
import { pgp } from "./pgp.js";

/** What a successful verification found. */
export interface Verdict {
  /** Lowercase fingerprint of the trusted key (the primary key; the file name in the keystore). */
  readonly fingerprint: string;
  /** Lowercase fingerprint of the (sub)key that made the signature. */
  readonly signerFingerprint: string;
  /** The trusted key's user IDs, which rkt prints after `signature verified:`. */
  readonly identities: readonly string[];
  /** The prefix the key is trusted for; `""` for a root key. */
  readonly prefix: string;
}

/** Anything that yields the keys trusted for an image name (a `KeyStore`, or a fixed list in tests). */
export interface TrustedKeySource {
  keysFor(name: string): Promise<readonly TrustedKey[]>;
}

/** Input to `verifyDetached`. */
export interface VerifyDetachedInput {
  /** The image name whose prefix selects the keys (the ACI manifest name, e.g. `coreos.com/etcd`). */
  readonly name: string;
  /** Opens the signed bytes. Called at most once, after the cheap checks passed; fully consumed. */
  readonly open: () => Promise<Readable>;
  /** The detached signature file: ASCII-armored or binary. */
  readonly signature: Uint8Array;
  readonly keystore: TrustedKeySource;
  /** The time keys and signatures must be valid at; defaults to now. */
  readonly date?: Date | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** rkt's message when no trusted key made the signature; the CLI adds the `rkt trust` hint. */
export const unknownEntityMessage = "openpgp: signature made by unknown entity";
/** rkt's message when the signature file holds no signature. */
export const noSignaturesMessage = "keystore: no valid signatures found in signature file";

/**
 * Parses a detached signature file as rkt does: ASCII armor first, then binary. Exactly one
 * signature packet is accepted (rkt would silently use the first; we refuse ambiguity). Throws
 * RKT_SIGNATURE_INVALID with `keystore: no valid signatures found in signature file` when there
 * is none, or `signature file contains N signatures; exactly one is expected`.
 */
export async function parseDetachedSignature(bytes: Uint8Array): Promise<Signature> {
  const openpgp = await pgp();
  let sig: Signature | undefined;
  const text = new TextDecoder().decode(bytes.subarray(0, 64));
  try {
    sig = text.includes("-----BEGIN PGP SIGNATURE-----")
      ? await openpgp.readSignature({ armoredSignature: new TextDecoder().decode(bytes) })
      : bytes.length === 0
        ? undefined
        : await openpgp.readSignature({ binarySignature: bytes });
  } catch (e) {
    throw new RktError(ErrorCode.SignatureInvalid, noSignaturesMessage, { cause: e });
  }
  const n = sig?.packets.length ?? 0;
  if (sig === undefined || n === 0) throw new RktError(ErrorCode.SignatureInvalid, noSignaturesMessage);
  if (n > 1) {
    throw new RktError(
      ErrorCode.SignatureInvalid,
      `signature file contains ${n} signatures; exactly one is expected`,
    );
  }
  return sig;
}

/**
 * The key IDs (16 lowercase hex) a detached signature names as its issuer, without verifying it.
 * Throws as {@link parseDetachedSignature}.
 */
export async function detachedSignatureKeyIds(bytes: Uint8Array): Promise<string[]> {
  const sig = await parseDetachedSignature(bytes);
  return sig.getSigningKeyIDs().map((id) => id.toHex().toLowerCase());
}

/**
 * Verifies a detached signature over streamed content against the keys trusted for `name`.
 * Cheap checks come first, before `open()` is called: the signature parses (see
 * `parseDetachedSignature`), its issuer is a trusted key, the signature has not expired and the
 * key (or signing subkey) is neither revoked nor expired at `date`. Then the content is streamed
 * through the hash (memory stays bounded whatever its size) and always fully consumed.
 *
 * Throws RKT_KEY_UNTRUSTED `openpgp: signature made by unknown entity` when no trusted key made
 * it; RKT_SIGNATURE_INVALID for a bad signature (`openpgp: invalid signature: …`), an expired
 * signature (`signature expired at …`), or a revoked or expired key (`signing key <FP> is not
 * valid: primary key is revoked|expired`); keystore errors as `KeyStore.keysFor`; the stream's
 * own errors unchanged; RKT_ABORTED on `signal`.
 */
export async function verifyDetached(input: VerifyDetachedInput): Promise<Verdict> {
  const openpgp = await pgp();
  const date = input.date ?? new Date();
  const sig = await parseDetachedSignature(input.signature);
  const packet = sig.packets[0]!;
  const trusted = await input.keystore.keysFor(input.name);
  const found = findSigner(trusted, sig);
  if (found === undefined) throw new RktError(ErrorCode.KeyUntrusted, unknownEntityMessage);
  const { entry, key, signer } = found;
  const fp = key.getFingerprint().toLowerCase();
  if (packet.isExpired(date)) {
    const exp = new Date((packet.created?.getTime() ?? 0) + (packet.signatureExpirationTime ?? 0) * 1000);
    throw new RktError(
      ErrorCode.SignatureInvalid,
      `signature expired at ${exp.toISOString()} (made by key ${fp})`,
    );
  }
  try {
    await key.getSigningKey(signer.getKeyID(), date);
  } catch (e) {
    throw new RktError(ErrorCode.SignatureInvalid, `signing key ${fp} is not valid: ${errorText(e)}`, {
      cause: e,
    });
  }
  input.signal?.throwIfAborted();

  const source = await input.open();
  let sourceError: unknown;
  source.once("error", (e) => (sourceError ??= e));
  const onAbort = (): void => {
    source.destroy(new RktError(ErrorCode.Aborted, `verification of ${input.name} aborted`));
  };
  input.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const message = await openpgp.createMessage({
      binary: Readable.toWeb(source) as ReadableStream<Uint8Array>,
    });
    const result = await openpgp.verify({
      message,
      signature: sig,
      verificationKeys: [key],
      expectSigned: true,
      format: "binary",
      date,
    });
    // With expectSigned the hash is checked as the data ends: the error surfaces from this loop.
    for await (const _ of result.data as ReadableStream<Uint8Array>) void _;
    await result.signatures[0]!.verified;
  } catch (e) {
    if (sourceError !== undefined) {
      throw isRktError(sourceError)
        ? sourceError
        : new RktError(ErrorCode.Io, `reading ${input.name}: ${errorText(sourceError)}`, {
            cause: sourceError,
          });
    }
    if (isRktError(e)) throw e;
    throw new RktError(ErrorCode.SignatureInvalid, `openpgp: invalid signature: ${cleanOpenPgp(e)}`, {
      cause: e,
    });
  } finally {
    input.signal?.removeEventListener("abort", onAbort);
    if (!source.destroyed) source.destroy();
  }
  return {
    fingerprint: fp,
    signerFingerprint: signer.getFingerprint().toLowerCase(),
    identities: key.getUserIDs(),
    prefix: entry.prefix,
  };
}

/** A `Verifier` over a key source (STYLE.md 2.5): `verifyDetached` with the subject split out. */
export interface Verifier {
  verify(
    subject: { readonly name: string; open(): Promise<Readable> },
    signature: Uint8Array,
    o?: { signal?: AbortSignal | undefined },
  ): Promise<Verdict>;
}

/** Builds a `Verifier` that checks ACI signatures against `keystore`. */
export function createAciVerifier(keystore: TrustedKeySource): Verifier {
  return {
    verify: (subject, signature, o) =>
      verifyDetached({
        name: subject.name,
        open: () => subject.open(),
        signature,
        keystore,
        signal: o?.signal,
      }),
  };
}

interface FoundSigner {
  readonly entry: TrustedKey;
  readonly key: Key;
  readonly signer: Key | Subkey;
}

// The trusted key holding the signature's issuer key ID (primary or subkey). The most specific
// trust (latest in load order) wins when several files hold the same key.
function findSigner(trusted: readonly TrustedKey[], sig: Signature): FoundSigner | undefined {
  const ids = sig.getSigningKeyIDs();
  for (const entry of [...trusted].reverse()) {
    for (const key of entry.keys) {
      for (const id of ids) {
        const signer = key.getKeys(id)[0];
        if (signer !== undefined) return { entry, key, signer };
      }
    }
  }
  return undefined;
}

function cleanOpenPgp(e: unknown): string {
  return errorText(e).replace(/^error verifying signed message: /i, "");
}
