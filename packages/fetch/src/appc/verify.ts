// The signature check every ACI import makes before commit (files and http alike), with rkt's
// wording and its `rkt trust` hint.
import type { Readable } from "node:stream";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { TrustedKeySource, Verdict } from "@rkt/trust";

/**
 * The lines rkt prints when no trusted key made the signature, for image `name` (without the
 * logger prefix). Pure.
 */
export function unknownSignerHint(name: string): string[] {
  return ["If you expected the signing key to change, try running:", `    rkt trust --prefix "${name}"`];
}

/**
 * Verifies `signature` over the bytes `open()` yields against the keys trusted for `name`.
 * Failures keep their code (RKT_KEY_UNTRUSTED, RKT_SIGNATURE_INVALID) and read
 * `image "<name>" verification failed: <why>`; on an unknown signer the `rkt trust` hint goes to
 * `onInfo` first. Success reports `signature verified:` and the identities to `onInfo`.
 */
export async function verifyAciSignature(o: {
  readonly name: string;
  readonly open: () => Promise<Readable>;
  readonly signature: Uint8Array;
  readonly keystore: TrustedKeySource;
  readonly signal?: AbortSignal | undefined;
  readonly onInfo?: ((message: string) => void) | undefined;
}): Promise<Verdict> {
  const { name } = o;
  const { unknownEntityMessage, verifyDetached } = await import("@rkt/trust");
  let verdict: Verdict;
  try {
    verdict = await verifyDetached({
      name,
      open: o.open,
      signature: o.signature,
      keystore: o.keystore,
      signal: o.signal,
    });
  } catch (e) {
    if (isRktError(e) && e.message === unknownEntityMessage) {
      for (const line of unknownSignerHint(name)) o.onInfo?.(line);
    }
    if (isRktError(e) && (e.code === ErrorCode.KeyUntrusted || e.code === ErrorCode.SignatureInvalid)) {
      throw new RktError(e.code, `image ${JSON.stringify(name)} verification failed: ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  }
  o.onInfo?.(["signature verified:", ...verdict.identities.map((i) => `  ${i}`)].join("\n"));
  return verdict;
}

// Thrown by the `open` of an early check: reaching it means every check before the content passed.
const contentNotNeeded = new Error("content not needed for the signer check");

/**
 * rkt's checkIdentity: before a (large) ACI is downloaded, checks what the signature alone can
 * tell for image `name`: that it parses, was made by a key trusted for the name, and neither it
 * nor the key has expired or been revoked. Fails as {@link verifyAciSignature} does (with the
 * `rkt trust` hint on an unknown signer); the content is checked later by that function.
 */
export async function checkSignerEarly(o: {
  readonly name: string;
  readonly signature: Uint8Array;
  readonly keystore: TrustedKeySource;
  readonly signal?: AbortSignal | undefined;
  readonly onInfo?: ((message: string) => void) | undefined;
}): Promise<void> {
  try {
    await verifyAciSignature({ ...o, open: () => Promise.reject(contentNotNeeded) });
  } catch (e) {
    if (e !== contentNotNeeded) throw e;
  }
}
