// Digests by image-spec descriptor.md: the grammar decides validity; only the algorithms this
// project computes can verify content, and verification is where the others are refused.
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  digestAlgorithm,
  digestOf,
  isDigest,
  isRktError,
  isVerifiableDigest,
  parseDigest,
  parseVerifiableDigest,
  verifiableAlgorithm,
  verifyDigest,
} from "@rkt/oci";

const hex64 = "c86f7763873b6c0aae22d963bab59b4f5debbed6685761b5951584f6efb0633b";

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (isRktError(e)) return e.code;
    throw e;
  }
  return undefined;
}

describe("digest grammar (descriptor.md)", () => {
  // The examples of descriptor.md's table and of the schema's tests; all match the grammar.
  const unsupportedButValid = [
    "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
    "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    `sha256.foo-bar:${hex64}`,
    `blake3:${hex64}`,
    "md5:abc",
  ];

  it("accepts well-formed digests of any algorithm", () => {
    for (const s of unsupportedButValid) {
      expect(parseDigest(s)).toBe(s);
      expect(isDigest(s)).toBe(true);
      expect(isVerifiableDigest(s)).toBe(false);
    }
    expect(digestAlgorithm(parseDigest(unsupportedButValid[0]!))).toBe("multihash+base58");
  });

  it("refuses what breaks the grammar, and a registered algorithm's wrong encoding", () => {
    for (const s of [
      "sha256",
      `:${hex64}`,
      `SHA256:${hex64}`,
      `sha256+-b:${hex64}`,
      "sha256:",
      "a:b/c",
      `sha256:${hex64.toUpperCase()}`,
      `sha256:${hex64}0`,
      `sha512:${hex64}`,
      `blake3:${hex64.slice(1)}`,
    ]) {
      expect(codeOf(() => parseDigest(s))).toBe(ErrorCode.InvalidDigest);
    }
  });
});

describe("verification", () => {
  it("computes sha256 and sha512", () => {
    expect(verifiableAlgorithm(digestOf("x"))).toBe("sha256");
    expect(verifiableAlgorithm(digestOf("x", "sha512"))).toBe("sha512");
    expect(parseVerifiableDigest(digestOf("x"))).toBe(digestOf("x"));
  });

  it("refuses content under other algorithms with RKT_UNSUPPORTED_ALGORITHM", () => {
    const d = parseDigest(`blake3:${hex64}`);
    for (const f of [
      () => verifiableAlgorithm(d),
      () => parseVerifiableDigest(d),
      () => verifyDigest(d, 1),
    ]) {
      expect(codeOf(f)).toBe(ErrorCode.UnsupportedAlgorithm);
    }
    expect(() => verifyDigest(d)).toThrow(/unsupported algorithm "blake3"/);
    // The grammar still comes first.
    expect(codeOf(() => parseVerifiableDigest("blake3:xyz"))).toBe(ErrorCode.InvalidDigest);
  });

  it("still verifies supported content as a stream", async () => {
    await pipeline(Readable.from([Buffer.from("x")]), verifyDigest(digestOf("x", "sha512"), 1));
    await expect(
      pipeline(Readable.from([Buffer.from("y")]), verifyDigest(digestOf("x"), 1)),
    ).rejects.toMatchObject({ code: ErrorCode.DigestMismatch });
  });
});
