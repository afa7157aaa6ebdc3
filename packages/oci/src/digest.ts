import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DigestMismatchError, ErrorCode, RktError, SizeMismatchError } from "./errors.js";

declare const digestBrand: unique symbol;
/**
 * A digest string that is valid by the OCI grammar (descriptor.md): `algorithm ":" encoded`, with
 * the encoded part a registered algorithm requires (lowercase hex of its length). The algorithm
 * may be one this project cannot compute (`multihash+base58:…`): such a digest is valid in a
 * document, and refused only where content has to be verified ({@link verifiableAlgorithm}).
 * Build with parseDigest(); never cast.
 */
export type Digest = string & { readonly [digestBrand]: true };

/** The algorithms this project computes, hence can verify. */
export type Algorithm = "sha256" | "sha512";

// The registered algorithms (image-spec descriptor.md) restrict the encoded part to lowercase hex
// of this many characters. blake3 is registered but not computed here.
const registeredHexLength: Readonly<Record<string, number>> = { sha256: 64, sha512: 128, blake3: 64 };

// digest ::= algorithm ":" encoded ; algorithm ::= component (separator component)*
const grammar = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * Parses a digest by the OCI grammar; a registered algorithm's encoded part must also be the
 * lowercase hex it requires. Any well-formed algorithm is accepted (documents may name ones we
 * cannot compute); pure. Throws RKT_INVALID_DIGEST.
 */
export function parseDigest(s: string): Digest {
  if (!grammar.test(s)) {
    throw new RktError(ErrorCode.InvalidDigest, `invalid digest ${JSON.stringify(s)}: not algorithm:hex`);
  }
  const colon = s.indexOf(":");
  const alg = s.slice(0, colon);
  const hex = s.slice(colon + 1);
  const n = registeredHexLength[alg];
  if (n !== undefined && (hex.length !== n || !/^[0-9a-f]+$/.test(hex))) {
    throw new RktError(
      ErrorCode.InvalidDigest,
      `invalid digest ${JSON.stringify(s)}: ${alg} needs ${n} lowercase hex characters`,
    );
  }
  return s as Digest;
}

/**
 * {@link parseDigest}, and the algorithm must be one this project can verify: for digests that
 * name content about to be fetched or checked (references, store IDs). Throws RKT_INVALID_DIGEST
 * or RKT_UNSUPPORTED_ALGORITHM.
 */
export function parseVerifiableDigest(s: string): Digest {
  const d = parseDigest(s);
  verifiableAlgorithm(d);
  return d;
}

/** True when `s` is a valid digest (any well-formed algorithm). */
export function isDigest(s: string): s is Digest {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

/** True when `s` is a valid digest of an algorithm this project computes. */
export function isVerifiableDigest(s: string): s is Digest {
  return isDigest(s) && isAlgorithm(digestAlgorithm(s));
}

function isAlgorithm(alg: string): alg is Algorithm {
  return alg === "sha256" || alg === "sha512";
}

/** The algorithm part of a digest, as written (`sha256`, `multihash+base58`, …). */
export function digestAlgorithm(d: Digest): string {
  return d.slice(0, d.indexOf(":"));
}

/**
 * The algorithm to hash with when content must be checked against `d`. Throws
 * RKT_UNSUPPORTED_ALGORITHM ("unsupported algorithm") when this project cannot compute it: content
 * under such a digest can never be verified, so it is never trusted.
 */
export function verifiableAlgorithm(d: Digest): Algorithm {
  const alg = digestAlgorithm(d);
  if (!isAlgorithm(alg)) {
    throw new RktError(
      ErrorCode.UnsupportedAlgorithm,
      `cannot verify content of ${d}: unsupported algorithm "${alg}" (sha256 and sha512 are)`,
    );
  }
  return alg;
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
 * until the pipeline has resolved. Throws RKT_UNSUPPORTED_ALGORITHM at once when `expected` names an
 * algorithm this project cannot compute.
 */
export function verifyDigest(expected: Digest, size?: number, what = expected as string): Transform {
  const d = createDigester(verifiableAlgorithm(expected));
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
