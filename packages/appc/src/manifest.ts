// Pure parsers for appc manifests: bytes in, the typed value with the exact bytes kept, or every
// issue with its JSONPath. Throwing variants wrap them.
import { ErrorCode, RktError, parseJsonStrict, type ParseResult } from "@rkt/oci";
import type { z } from "zod";
import { runSchema } from "./schema/common.js";
import { imageManifestSchemas, type ImageManifest } from "./schema/image-manifest.js";
import { podManifestSchemas, type PodManifest } from "./schema/pod-manifest.js";

// The one place JSON text becomes a value: @rkt/oci's I-JSON parser refuses duplicate keys, which
// JSON.parse would silently resolve to the last one.
function parseWith<T>(bytes: Uint8Array | string, schema: z.ZodType<T>): ParseResult<T> {
  const j = parseJsonStrict(bytes);
  if (!j.ok) return j;
  const r = runSchema(schema, j.value);
  return r.ok ? { ok: true, value: r.value, raw: j.raw } : r;
}

/** Parses an appc image manifest (JSON, I-JSON rules, appc's validation). Pure. */
export function parseImageManifest(bytes: Uint8Array | string): ParseResult<ImageManifest> {
  return parseWith(bytes, imageManifestSchemas().imageManifestSchema);
}

/** Parses an appc pod manifest. Pure. */
export function parsePodManifest(bytes: Uint8Array | string): ParseResult<PodManifest> {
  return parseWith(bytes, podManifestSchemas().podManifestSchema);
}

function orThrow<T>(r: ParseResult<T>, what: string): { value: T; raw: Uint8Array } {
  if (r.ok) return { value: r.value, raw: r.raw };
  const [first] = r.issues;
  const more = r.issues.length > 1 ? ` (and ${r.issues.length - 1} more)` : "";
  const where = first === undefined ? "" : `${first.path}: ${first.message}`;
  throw new RktError(ErrorCode.InvalidManifest, `${what}: ${where}${more}`);
}

/**
 * {@link parseImageManifest}, throwing RKT_INVALID_MANIFEST whose message starts with `what` (a
 * file name or image name) and names the first issue's path.
 */
export function parseImageManifestOrThrow(
  bytes: Uint8Array | string,
  what = "image manifest",
): { value: ImageManifest; raw: Uint8Array } {
  return orThrow(parseImageManifest(bytes), what);
}

/** {@link parsePodManifest}, throwing like {@link parseImageManifestOrThrow}. */
export function parsePodManifestOrThrow(
  bytes: Uint8Array | string,
  what = "pod manifest",
): { value: PodManifest; raw: Uint8Array } {
  return orThrow(parsePodManifest(bytes), what);
}
