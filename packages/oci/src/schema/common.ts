// Building blocks shared by the document schemas, and the translation of zod issues into
// ParseIssues with JSONPath locations.
import type { z } from "zod";
import { digestOf, isVerifiableDigest, parseDigest, verifiableAlgorithm, type Digest } from "../digest.js";
import { ErrorCode, isRktError } from "../errors.js";
import { formatJsonPath, type ParseIssue } from "../result.js";
import { onFirstUse } from "./zod.js";

/**
 * A zod error option that says "required field is missing" when the value is absent and `text`
 * otherwise (a schema-level message would hide the absence).
 */
export function msg(text: string): { error: (iss: { input?: unknown }) => string } {
  return { error: (iss) => (iss.input === undefined ? "required field is missing" : text) };
}

// RFC 6838 section 4.2 restricted-name, as in the image-spec schema (defs-descriptor.json).
const mediaTypeRe = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

// RFC 3986 URI: scheme ":" then only unreserved, reserved and percent-encoded characters.
const uriRe = /^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;

// RFC 4648 section 4: standard alphabet, with padding.
const base64Re = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Field schemas shared by the documents. */
export const commonSchemas = onFirstUse((z) => ({
  /** A syntactically valid media type (RFC 6838). */
  mediaTypeSchema: z.string().regex(mediaTypeRe, msg("not a valid media type (RFC 6838)")),

  /**
   * A digest, validated by parseDigest: any algorithm that matches the OCI grammar passes
   * (descriptor.md: unsupported digests SHOULD pass validation); content under one this project
   * cannot compute is refused when it has to be verified, not here.
   */
  digestSchema: z.string().transform((s, ctx): Digest => {
    try {
      return parseDigest(s);
    } catch (e) {
      if (!isRktError(e)) throw e;
      ctx.addIssue({ code: "custom", message: e.message, params: { rktCode: e.code } });
      return z.NEVER;
    }
  }),

  /** A byte count: a non-negative integer no larger than 2^53-1 (int64 beyond that is not exact in JS). */
  sizeSchema: z
    .number(msg("size must be a number"))
    .int(msg("size must be an integer no larger than 2^53-1"))
    .nonnegative(msg("size must not be negative")),

  /** An absolute URI (RFC 3986). */
  urlSchema: z.string().regex(uriRe, msg("not a valid URI (RFC 3986)")),

  /** Annotations: a map of string to string (annotations.md). */
  annotationsSchema: z.record(z.string(), z.string(msg("annotation values must be strings"))),

  /** Embedded descriptor data: padded standard base64. Its content is checked by {@link checkData}. */
  dataSchema: z.string().regex(base64Re, msg("data must be padded standard base64")),
}));

/**
 * Checks that a descriptor's embedded `data` decodes to exactly `size` bytes hashing to `digest`
 * (descriptor.md: the decoded bytes MUST equal the referenced content). Under a digest whose
 * algorithm this project cannot compute only the size is checked; the content stays unverified.
 */
export function checkData(
  d: { data?: string | undefined; size: number; digest: Digest },
  ctx: z.RefinementCtx,
): void {
  // Another issue (bad size or digest) is already reported; comparing against it says nothing.
  if (d.data === undefined || !Number.isSafeInteger(d.size) || d.size < 0 || typeof d.digest !== "string")
    return;
  const bytes = Buffer.from(d.data, "base64");
  if (bytes.length !== d.size) {
    ctx.addIssue({
      code: "custom",
      path: ["data"],
      message: `data decodes to ${bytes.length} bytes but size is ${d.size}`,
    });
    return;
  }
  if (!isVerifiableDigest(d.digest)) return;
  if (digestOf(bytes, verifiableAlgorithm(d.digest)) !== d.digest) {
    ctx.addIssue({ code: "custom", path: ["data"], message: `data does not match digest ${d.digest}` });
  }
}

// Zod's default for a missing field says "expected string, received undefined"; say it plainly.
const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code === "invalid_type" && iss.input === undefined) return "required field is missing";
  return undefined;
};

/** Runs a schema and maps its issues to ParseIssues with JSONPath locations. */
export function runSchema<T>(
  schema: z.ZodType<T>,
  input: unknown,
): { ok: true; value: T } | { ok: false; issues: ParseIssue[] } {
  const r = schema.safeParse(input, { error: errorMap });
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, issues: r.error.issues.map(toIssue) };
}

function toIssue(iss: z.core.$ZodIssue): ParseIssue {
  const path = formatJsonPath(iss.path);
  const params = iss.code === "custom" ? (iss.params as { rktCode?: unknown } | undefined) : undefined;
  const code = params?.rktCode;
  if (code === ErrorCode.UnsupportedMediaType) {
    return { path, message: iss.message, code };
  }
  return { path, message: iss.message };
}
