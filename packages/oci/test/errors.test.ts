import { describe, expect, it } from "vitest";
import { DigestMismatchError, ErrorCode, RktError, isRktError } from "@rkt/oci";

describe("RktError", () => {
  it("pins the stable code list", () => {
    expect(Object.values(ErrorCode)).toMatchInlineSnapshot(`
      [
        "RKT_INVALID_REFERENCE",
        "RKT_INVALID_DIGEST",
        "RKT_UNSUPPORTED_ALGORITHM",
        "RKT_INVALID_MANIFEST",
        "RKT_UNSUPPORTED_MEDIA_TYPE",
        "RKT_INVALID_ARCHIVE",
        "RKT_INVALID_NAME",
        "RKT_INVALID_ARGUMENT",
        "RKT_NOT_FOUND",
        "RKT_ALREADY_EXISTS",
        "RKT_AMBIGUOUS",
        "RKT_UNAVAILABLE",
        "RKT_DIGEST_MISMATCH",
        "RKT_SIZE_MISMATCH",
        "RKT_TOO_LARGE",
        "RKT_NO_MATCHING_PLATFORM",
        "RKT_REGISTRY",
        "RKT_UNAUTHORIZED",
        "RKT_SIGNATURE_INVALID",
        "RKT_KEY_UNTRUSTED",
        "RKT_IO",
        "RKT_ABORTED",
        "RKT_INTERNAL",
      ]
    `);
  });

  it("is recognised by brand and code, and keeps its cause", () => {
    const cause = new Error("disk on fire");
    const e = new RktError(ErrorCode.Io, "writing blob", { cause, temporary: true });
    expect(isRktError(e)).toBe(true);
    expect(isRktError(e, ErrorCode.Io)).toBe(true);
    expect(isRktError(e, ErrorCode.NotFound)).toBe(false);
    expect(isRktError(new Error("plain"))).toBe(false);
    expect(e.cause).toBe(cause);
    expect(e.temporary).toBe(true);
  });

  it("survives a structural copy from another module instance", () => {
    const other = Object.defineProperty({ code: ErrorCode.NotFound }, Symbol.for("rkt.error"), {
      value: true,
    });
    expect(isRktError(other, ErrorCode.NotFound)).toBe(true);
  });

  it("keeps both digests on a mismatch", () => {
    const e = new DigestMismatchError("blob", "sha256:aa", "sha256:bb", 3);
    expect(e.code).toBe(ErrorCode.DigestMismatch);
    expect([e.expected, e.actual, e.bytes]).toEqual(["sha256:aa", "sha256:bb", 3]);
    expect(e.message).toBe("blob: digest mismatch: expected sha256:aa, got sha256:bb");
  });
});
