// A local ACI file into the store, verified as rkt's fileFetcher does (rkt/image/filefetcher.go):
// the detached signature from `--signature FILE` or `<image>.aci.asc` beside the file, checked
// against the keys trusted for the image's MANIFEST name. Unlike rkt, which verified the file and
// then imported it again from disk, the image is imported once into an invisible ingest and
// committed only after the signature checks out, so untrusted bytes never become visible.
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { Transform, pipeline, type Readable, type TransformCallback } from "node:stream";
import { ErrorCode, RktError, byteCounter, isRktError } from "@rkt/oci";
import { importAci, type BeforeCommitInfo, type ImportResult, type LocalStore } from "@rkt/store";
import type { TrustedKeySource, Verdict } from "@rkt/trust";
import { verifyAciSignature } from "./appc/verify.js";

export { unknownSignerHint } from "./appc/verify.js";

/** Options of {@link importAciFile}. */
export interface ImportAciFileOptions {
  /** The ACI file (any compression the store accepts). */
  readonly path: string;
  /** rkt's `--signature FILE`; default {@link ascPathFromImgPath}(path). */
  readonly signaturePath?: string | undefined;
  /** Keys to verify with; `null` is `--insecure-options=image`: no verification, a warning. */
  readonly keystore: TrustedKeySource | null;
  readonly signal?: AbortSignal | undefined;
  /** Warnings for the user (rkt's `image: ` logger); without the prefix. */
  readonly onWarning?: ((message: string) => void) | undefined;
  /**
   * Informational lines for the user (rkt's `image: ` logger), without the prefix:
   * `signature verified:` with the signer's identities, and the `rkt trust` hint after an
   * unknown signer.
   */
  readonly onInfo?: ((message: string) => void) | undefined;
  /** Mark the stored image "latest" (default false: rkt's file fetches never are). */
  readonly latest?: boolean | undefined;
  /** Bytes of the file read so far, of its size. */
  readonly onProgress?: ((p: { bytes: number; total: number }) => void) | undefined;
  /** Extract the image into its snapshot (and tree) in the same pass (`importAci`'s `render`). */
  readonly render?: boolean | undefined;
}

/** The stored image and, unless verification was disabled, who signed it. */
export interface ImportAciFileResult extends ImportResult {
  readonly verdict?: Verdict | undefined;
}

/** What rkt prints when `--insecure-options=image` is given (rkt itself printed nothing). */
export const verificationDisabledWarning = "warning: image signature verification has been disabled";

/**
 * rkt's `ascPathFromImgPath`: the signature beside an image file, `/x/image.aci` →
 * `/x/image.aci.asc` and `/x/image` → `/x/image.aci.asc`. Pure.
 */
export function ascPathFromImgPath(path: string): string {
  return `${path.endsWith(".aci") ? path.slice(0, -4) : path}.aci.asc`;
}

/**
 * Imports the ACI at `o.path` into `store`, streaming it once into an ingest. The file is opened
 * first (missing: RKT_IO `error opening ACI file: …`); with a keystore the signature is read next
 * (missing or unreadable: RKT_IO `error opening signature file: …`),
 * then, after the archive is read and validated and before anything is committed, verified over
 * the signed bytes against the keys trusted for the manifest name (`verifyDetached`). The signed
 * bytes are the file as given: an uncompressed ACI is re-read from the ingest itself; a
 * compressed one from the file, checked to hash to exactly the bytes imported (else RKT_IO
 * `<path> changed while it was being imported`). Verification failures keep their code
 * (RKT_KEY_UNTRUSTED, RKT_SIGNATURE_INVALID) and read `image "<name>" verification failed: <why>`;
 * on an unknown signer the `rkt trust` hint goes to `onInfo` first. Success reports
 * `signature verified:` and the identities to `onInfo`. With `keystore: null` nothing is verified
 * and {@link verificationDisabledWarning} goes to `onWarning`. On any failure nothing is stored.
 * Other errors are the store's (`importAci`), naming the path.
 */
export async function importAciFile(
  store: LocalStore,
  o: ImportAciFileOptions,
): Promise<ImportAciFileResult> {
  const path = o.path;
  if (o.keystore === null) {
    o.onWarning?.(verificationDisabledWarning);
    const src = await openAci(path, o.onProgress);
    return importAci(store, src, { what: path, latest: o.latest, signal: o.signal, render: o.render });
  }
  // The image first: a missing image is reported as such, not as its missing signature.
  let first: Readable | undefined = await openAci(path, o.onProgress);
  let signature: Uint8Array;
  try {
    signature = await readSignatureFile(o.signaturePath ?? ascPathFromImgPath(path));
  } catch (e) {
    first.destroy();
    throw e;
  }
  return importSignedAci(store, {
    ...o,
    keystore: o.keystore,
    // The import reads the stream opened above (with progress); a re-read for the signature opens anew.
    open: () => {
      const s = first ?? openAci(path);
      first = undefined;
      return Promise.resolve(s);
    },
    what: path,
    signature,
  });
}

/** Options of {@link importSignedAci}. */
export interface ImportSignedAciOptions {
  /** The signed bytes (an ACI in any compression); opened for the import, and again if compressed. */
  readonly open: () => Promise<Readable>;
  /** Names the input in errors. */
  readonly what: string;
  /** The detached signature (armored or binary). */
  readonly signature: Uint8Array;
  readonly keystore: TrustedKeySource;
  readonly signal?: AbortSignal | undefined;
  readonly onInfo?: ((message: string) => void) | undefined;
  readonly latest?: boolean | undefined;
  /** Extract the image into its snapshot (and tree) in the same pass. */
  readonly render?: boolean | undefined;
}

/**
 * Imports the ACI `o.open()` streams, committed only once `o.signature` verifies over those bytes
 * with the keys trusted for its manifest name, as {@link importAciFile} does for a file (the same
 * errors; `what` names the input). A compressed input is read a second time for the signature,
 * and must hash to what was imported. On any failure nothing is stored.
 */
export async function importSignedAci(
  store: LocalStore,
  o: ImportSignedAciOptions,
): Promise<ImportAciFileResult> {
  const { keystore, signature, what } = o;
  const src = await o.open();
  const tap = hashTap();
  // Errors and early destruction of either end close the file (the import destroys `tap` on failure).
  pipeline(src, tap, () => undefined);
  let verdict: Verdict | undefined;
  const beforeCommit = async (info: BeforeCommitInfo): Promise<void> => {
    const name = info.manifest.name;
    const imported = tap.digest();
    const openSigned =
      info.compression === "none"
        ? () => info.open()
        : () =>
            o.open().then((s) => {
              const check = expectDigest(imported, what);
              pipeline(s, check, () => undefined);
              return check;
            });
    verdict = await verifyAciSignature({
      name,
      open: openSigned,
      signature,
      keystore,
      signal: o.signal,
      onInfo: o.onInfo,
    });
  };
  const result = await importAci(store, tap, {
    what,
    latest: o.latest,
    signal: o.signal,
    render: o.render,
    beforeCommit,
  });
  return { ...result, verdict };
}

async function openAci(
  path: string,
  onProgress?: (p: { bytes: number; total: number }) => void,
): Promise<Readable> {
  // Open eagerly so a missing file fails here with rkt's wording, not inside the import.
  try {
    const fh = await open(path, "r");
    const s = fh.createReadStream({ highWaterMark: 1 << 20 });
    if (onProgress === undefined) return s;
    const total = (await fh.stat()).size;
    const counted = byteCounter((bytes) => onProgress({ bytes, total }));
    // Errors of either end reach the other (the import destroys what it reads on failure).
    pipeline(s, counted, () => undefined);
    return counted;
  } catch (e) {
    throw new RktError(ErrorCode.Io, `error opening ACI file: ${path}: ${errText(e)}`, { cause: e });
  }
}

/**
 * Reads a detached signature file (rkt's `--signature FILE`, or one beside an ACI): RKT_IO
 * `error opening signature file: <path>: <why>`, RKT_TOO_LARGE past `maxSignatureBytes`.
 */
export async function readSignatureFile(path: string): Promise<Uint8Array> {
  const { maxSignatureBytes } = await import("@rkt/trust");
  try {
    const fh = await open(path, "r");
    try {
      const st = await fh.stat();
      if (st.size > maxSignatureBytes) {
        throw new RktError(
          ErrorCode.TooLarge,
          `error opening signature file: ${path}: larger than ${maxSignatureBytes} bytes`,
        );
      }
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (isRktError(e)) throw e;
    throw new RktError(ErrorCode.Io, `error opening signature file: ${path}: ${errText(e)}`, { cause: e });
  }
}

interface HashTap extends Transform {
  /** sha512 of every byte that went through; throws if the input has not ended. */
  digest(): string;
}

// Passes bytes on unchanged and hashes them: the digest of exactly what the import consumed.
function hashTap(): HashTap {
  const h = createHash("sha512");
  let final: string | undefined;
  const t = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      h.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      final = h.digest("hex");
      cb();
    },
  }) as HashTap;
  t.digest = () => {
    if (final === undefined) throw new RktError(ErrorCode.Internal, "ACI input was not read to its end");
    return final;
  };
  return t;
}

// Re-reads the signed file, failing at its end unless it hashes to what was imported (a file
// replaced between the import and the verification must not lend the new bytes its signature).
function expectDigest(want: string, path: string): Transform {
  const h = createHash("sha512");
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      h.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      cb(
        h.digest("hex") === want
          ? null
          : new RktError(ErrorCode.Io, `${path} changed while it was being imported`),
      );
    },
  });
}

function errText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === "ENOENT") return "no such file or directory";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return e instanceof Error ? e.message : String(e);
}
