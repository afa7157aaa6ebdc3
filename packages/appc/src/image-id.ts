// ACI image IDs (rkt store/imagestore): "sha512-" + the first 64 hex digits of the sha512 of the
// uncompressed archive. rkt prints 32 of them after fetch and 12 in `image list`.
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { ErrorCode, RktError } from "@rkt/oci";

/** Hex digits of the sha512 kept in an image ID (rkt's hashToKey). */
export const aciIdHexLength = 64;
/** The shortest image ID prefix rkt resolves: `sha512-` and 2 hex digits. */
export const minAciIdPrefixLength = 9;

const idRe = /^sha512-[0-9a-f]{64}$/;

/**
 * The image ID for an archive whose uncompressed sha512 is `digest`, given as 128 hex digits or as
 * a `sha512:<hex>` digest. Throws RKT_INVALID_DIGEST for anything else.
 */
export function aciImageId(digest: string): string {
  const hex = digest.startsWith("sha512:") ? digest.slice(7) : digest;
  if (!/^[0-9a-f]{128}$/.test(hex)) {
    throw new RktError(
      ErrorCode.InvalidDigest,
      `invalid sha512 ${JSON.stringify(digest)}: need 128 lowercase hex digits`,
    );
  }
  return `sha512-${hex.slice(0, aciIdHexLength)}`;
}

/** True when `s` is a full image ID (`sha512-` + 64 lowercase hex). */
export function isAciImageId(s: string): boolean {
  return idRe.test(s);
}

/**
 * A display form of an image ID: `sha512-` and the first `hexDigits` hex digits (rkt fetch prints
 * 32, the default; `rkt image list` shows 12). Throws RKT_INVALID_DIGEST if `id` is not an image ID.
 */
export function shortAciId(id: string, hexDigits = 32): string {
  if (!/^sha512-[0-9a-f]+$/.test(id)) {
    throw new RktError(
      ErrorCode.InvalidDigest,
      `invalid image ID ${JSON.stringify(id)}: not sha512- followed by hex`,
    );
  }
  return id.slice(0, 7 + hexDigits);
}

/**
 * Validates a user-supplied image ID or prefix as rkt's ResolveKey does: it must start with
 * `sha512-`, have at least 2 hex digits, and is cut to the 71 characters of a full ID. Returns the
 * prefix to look up. Throws RKT_INVALID_REFERENCE with rkt's reason.
 */
export function normalizeAciIdPrefix(s: string): string {
  if (!s.startsWith("sha512-"))
    throw new RktError(ErrorCode.InvalidReference, `image ID ${JSON.stringify(s)}: wrong key prefix`);
  if (s.length < minAciIdPrefixLength)
    throw new RktError(ErrorCode.InvalidReference, `image ID ${JSON.stringify(s)}: image ID too short`);
  const cut = s.slice(0, 7 + aciIdHexLength);
  if (!/^sha512-[0-9a-f]+$/.test(cut)) {
    throw new RktError(
      ErrorCode.InvalidReference,
      `image ID ${JSON.stringify(s)}: not lowercase hex after sha512-`,
    );
  }
  return cut;
}

/** A pass-through stream that computes the sha512 of every byte that crosses it. */
export interface Sha512PassThrough {
  readonly stream: Transform;
  /** The 128 hex digits; valid once the stream has ended. */
  sha512Hex(): string;
  /** Bytes seen so far. */
  bytes(): number;
}

/**
 * Creates a sha512 pass-through. Put it after the decompressor to get the uncompressed digest an
 * ACI image ID is made of ({@link aciImageId}).
 */
export function createSha512PassThrough(): Sha512PassThrough {
  const h = createHash("sha512");
  let n = 0;
  let hex: string | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      h.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    stream,
    sha512Hex() {
      if (hex === undefined) {
        if (!stream.writableFinished) {
          throw new RktError(ErrorCode.Internal, "sha512 requested before the stream ended");
        }
        hex = h.digest("hex");
      }
      return hex;
    },
    bytes: () => n,
  };
}
