import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DigestMismatchError, ErrorCode, RktError, SizeMismatchError } from "./errors.js";

declare const digestBrand: unique symbol;
/** "sha256:<64 hex>" or "sha512:<128 hex>", validated. Build with parseDigest(); never cast. */
export type Digest = string & { readonly [digestBrand]: true };

/** The algorithms this project computes. */
export type Algorithm = "sha256" | "sha512";

const hexLength: Record<Algorithm, number> = { sha256: 64, sha512: 128 };

// Registered in the OCI image spec (descriptor.md) or seen in the wild; recognised so that the
// error says "unsupported" instead of "malformed".
const knownUnsupported = new Set(["blake3", "sha384", "sha1", "md5"]);

// digest ::= algorithm ":" encoded ; algorithm ::= component (separator component)*
const grammar = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Parses and validates a digest string. Throws RKT_INVALID_DIGEST or RKT_UNSUPPORTED_ALGORITHM. */
export function parseDigest(s: string): Digest {
  if (!grammar.test(s)) {
    throw new RktError(ErrorCode.InvalidDigest, `invalid digest ${JSON.stringify(s)}: not algorithm:hex`);
  }
  const colon = s.indexOf(":");
  const alg = s.slice(0, colon);
  const hex = s.slice(colon + 1);
  if (alg !== "sha256" && alg !== "sha512") {
    const why = knownUnsupported.has(alg) ? "unsupported algorithm" : "unknown algorithm";
    throw new RktError(
      ErrorCode.UnsupportedAlgorithm,
      `invalid digest ${JSON.stringify(s)}: ${why} "${alg}"`,
    );
  }
  if (hex.length !== hexLength[alg] || !/^[0-9a-f]+$/.test(hex)) {
    throw new RktError(
      ErrorCode.InvalidDigest,
      `invalid digest ${JSON.stringify(s)}: ${alg} needs ${hexLength[alg]} lowercase hex characters`,
    );
  }
  return s as Digest;
}

/** True when `s` is a valid, supported digest. */
export function isDigest(s: string): s is Digest {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestAlgorithm(d: Digest): Algorithm {
  return d.slice(0, d.indexOf(":")) as Algorithm;
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(":") + 1);
}

/** The digest of bytes held in memory (manifests, configs: small documents only). */
export function digestOf(bytes: Uint8Array | string, alg: Algorithm = "sha256"): Digest {
  return `${alg}:${createHash(alg).update(bytes).digest("hex")}` as Digest;
}

/** An incremental hasher whose result is a Digest. */
export interface Digester {
  update(chunk: Uint8Array): void;
  digest(): Digest;
  readonly bytes: number;
}

export function createDigester(alg: Algorithm = "sha256"): Digester {
  const h: Hash = createHash(alg);
  let bytes = 0;
  return {
    update(chunk) {
      h.update(chunk);
      bytes += chunk.length;
    },
    digest: () => `${alg}:${h.digest("hex")}` as Digest,
    get bytes() {
      return bytes;
    },
  };
}

/**
 * A pass-through stream that hashes every byte and enforces the size. It fails as soon as more
 * than `size` bytes arrive, and at the end of the stream on a short body or a digest mismatch
 * (ggcr verify.ReadCloser). Downstream consumers must therefore not trust what they received
 * until the pipeline has resolved.
 */
export function verifyDigest(expected: Digest, size?: number, what = expected as string): Transform {
  const d = createDigester(digestAlgorithm(expected));
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      d.update(chunk);
      if (size !== undefined && d.bytes > size) {
        cb(new SizeMismatchError(what, size, d.bytes));
        return;
      }
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (size !== undefined && d.bytes !== size) {
        cb(new SizeMismatchError(what, size, d.bytes));
        return;
      }
      const actual = d.digest();
      cb(actual === expected ? null : new DigestMismatchError(what, expected, actual, d.bytes));
    },
  });
}
