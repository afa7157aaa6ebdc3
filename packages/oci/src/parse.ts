// Pure parsers for the JSON documents of OCI and Docker images: bytes in, a typed value (with the
// exact bytes kept) or every issue with its JSONPath out. Throwing variants wrap them.
import type { z } from "zod";
import { ErrorCode, RktError } from "./errors.js";
import { parseJsonStrict } from "./json.js";
import {
  MediaType,
  isIndexType,
  isManifestType,
  isSchema1,
  normalizeMediaType,
  schema1Message,
} from "./media-types.js";
import type { ParseIssue, ParseResult } from "./result.js";
import { runSchema } from "./schema/common.js";
import { imageConfigSchema, type ImageConfig } from "./schema/config.js";
import { descriptorSchemas, type Descriptor } from "./schema/descriptor.js";
import { ociLayoutSchema, type OciLayout } from "./schema/layout.js";
import { manifestSchemas, type Index, type Manifest } from "./schema/manifest.js";

/** What a JSON document is, as {@link detectDocumentType} sees it. */
export type DocumentType =
  | "oci-manifest"
  | "oci-index"
  | "docker-manifest"
  | "docker-manifest-list"
  | "schema1"
  | "image-config"
  | "oci-layout"
  | "unknown";

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function byMediaType(mediaType: string): DocumentType | undefined {
  switch (normalizeMediaType(mediaType)) {
    case MediaType.OciManifest:
      return "oci-manifest";
    case MediaType.OciIndex:
      return "oci-index";
    case MediaType.DockerManifest:
      return "docker-manifest";
    case MediaType.DockerManifestList:
      return "docker-manifest-list";
    case MediaType.DockerSchema1:
    case MediaType.DockerSchema1Signed:
      return "schema1";
    case MediaType.OciConfig:
    case MediaType.DockerConfig:
      return "image-config";
    case MediaType.OciLayoutHeader:
      return "oci-layout";
    default:
      return undefined;
  }
}

/**
 * Classifies a parsed JSON document: by its `mediaType` field when it names a type we know, else
 * by shape (`schemaVersion: 1` or `fsLayers`: schema1; `manifests`: index; `config` + `layers`:
 * manifest; `imageLayoutVersion`: layout; `rootfs` or `architecture` + `os`: image config). A
 * document without `mediaType` is classified as OCI, since Docker types require the field. Does
 * not validate; pure.
 */
export function detectDocumentType(json: unknown): DocumentType {
  if (!isObject(json)) return "unknown";
  const mt = json["mediaType"];
  if (typeof mt === "string") {
    const t = byMediaType(mt);
    if (t !== undefined) return t;
  }
  if (json["schemaVersion"] === 1 || "fsLayers" in json) return "schema1";
  if ("manifests" in json) return "oci-index";
  if ("config" in json && "layers" in json) return "oci-manifest";
  if ("imageLayoutVersion" in json) return "oci-layout";
  if ("rootfs" in json || ("architecture" in json && "os" in json)) return "image-config";
  return "unknown";
}

type Kind = "manifest" | "index";

// Picks the schema for a manifest or index from the document's mediaType, the transport's hint
// (Content-Type or the referencing descriptor) and the shape, or explains why none applies.
function pickSchema(
  json: Record<string, unknown>,
  kind: Kind,
  hint: string | undefined,
): { schema: z.ZodType<Manifest> | z.ZodType<Index> } | { issue: ParseIssue } {
  const own = typeof json["mediaType"] === "string" ? json["mediaType"] : undefined;
  const hinted = hint === undefined ? undefined : normalizeMediaType(hint);
  if (own !== undefined && hinted !== undefined && byMediaType(hinted) !== undefined && own !== hinted) {
    // distribution: clients SHOULD reject when mediaType and Content-Type disagree.
    return {
      issue: { path: "$.mediaType", message: `mediaType ${own} does not match the expected type ${hinted}` },
    };
  }
  const declared = own ?? (hinted !== undefined && byMediaType(hinted) !== undefined ? hinted : undefined);
  if ((declared !== undefined && isSchema1(declared)) || json["schemaVersion"] === 1) {
    return { issue: { path: "$", message: schema1Message, code: ErrorCode.UnsupportedMediaType } };
  }
  let type: DocumentType;
  if (declared !== undefined) {
    const t = byMediaType(declared);
    if (t === undefined) {
      return {
        issue: {
          path: "$.mediaType",
          message: `unsupported ${kind} media type ${declared}`,
          code: ErrorCode.UnsupportedMediaType,
        },
      };
    }
    type = t;
  } else {
    type = "manifests" in json ? "oci-index" : "oci-manifest";
  }
  const { ociManifestSchema, dockerManifestSchema, ociIndexSchema, dockerManifestListSchema } =
    manifestSchemas();
  if (kind === "manifest") {
    if (type === "oci-manifest") return { schema: ociManifestSchema };
    if (type === "docker-manifest") return { schema: dockerManifestSchema };
  } else {
    if (type === "oci-index") return { schema: ociIndexSchema };
    if (type === "docker-manifest-list") return { schema: dockerManifestListSchema };
  }
  const is = type === "oci-index" || type === "docker-manifest-list" ? "an image index" : type;
  return { issue: { path: "$", message: `expected an image ${kind}, got ${is}` } };
}

/** A manifest or an index, as {@link parseManifestOrIndex} found it. */
export type ImageDocument =
  | { readonly kind: "manifest"; readonly manifest: Manifest }
  | { readonly kind: "index"; readonly index: Index };

/**
 * Parses a document that may be either a manifest or an index (the answer to a manifest request
 * by tag), choosing by `mediaType`, then the hint, then the shape; same rules as
 * {@link parseManifest} otherwise (schema1 refused, mediaType and hint must agree). Pure.
 */
export function parseManifestOrIndex(
  bytes: Uint8Array | string,
  mediaTypeHint?: string,
): ParseResult<ImageDocument> {
  const j = parseJsonStrict(bytes);
  if (!j.ok) return j;
  if (!isObject(j.value))
    return { ok: false, issues: [{ path: "$", message: "manifest must be a JSON object" }] };
  const own = typeof j.value["mediaType"] === "string" ? j.value["mediaType"] : undefined;
  const declared = own ?? mediaTypeHint;
  const isIndex =
    declared !== undefined && byMediaType(declared) !== undefined
      ? isIndexType(declared)
      : detectDocumentType(j.value) === "oci-index";
  const kind: Kind = isIndex ? "index" : "manifest";
  const pick = pickSchema(j.value, kind, mediaTypeHint);
  if ("issue" in pick) return { ok: false, issues: [pick.issue] };
  const r = runSchema<Manifest | Index>(pick.schema, j.value);
  if (!r.ok) return r;
  const value: ImageDocument = isIndex
    ? { kind: "index", index: r.value as Index }
    : { kind: "manifest", manifest: r.value as Manifest };
  return { ok: true, value, raw: j.raw };
}

/** {@link parseManifestOrIndex}, throwing like {@link parseManifestOrThrow}. */
export function parseManifestOrIndexOrThrow(
  bytes: Uint8Array | string,
  mediaTypeHint?: string,
  what = "manifest",
): { value: ImageDocument; raw: Uint8Array } {
  return orThrow(parseManifestOrIndex(bytes, mediaTypeHint), what, ErrorCode.InvalidManifest);
}

function parseWith<T>(bytes: Uint8Array | string, schema: z.ZodType<T>): ParseResult<T> {
  const j = parseJsonStrict(bytes);
  if (!j.ok) return j;
  const r = runSchema(schema, j.value);
  return r.ok ? { ok: true, value: r.value, raw: j.raw } : r;
}

function parseDocument<T>(bytes: Uint8Array | string, kind: Kind, hint: string | undefined): ParseResult<T> {
  const j = parseJsonStrict(bytes);
  if (!j.ok) return j;
  if (!isObject(j.value))
    return { ok: false, issues: [{ path: "$", message: `${kind} must be a JSON object` }] };
  const pick = pickSchema(j.value, kind, hint);
  if ("issue" in pick) return { ok: false, issues: [pick.issue] };
  const r = runSchema(pick.schema as z.ZodType<T>, j.value);
  return r.ok ? { ok: true, value: r.value, raw: j.raw } : r;
}

/**
 * Parses an OCI image manifest or a Docker schema2 manifest. `mediaTypeHint` is the type the
 * transport reported (Content-Type, or the referencing descriptor's mediaType); when both it and
 * the document's `mediaType` name known types they must agree. Schema1 is refused (issue code
 * RKT_UNSUPPORTED_MEDIA_TYPE), and so is an index. `value.mediaType` tells the two formats apart:
 * the Docker type, or the OCI type / absent. Pure.
 */
export function parseManifest(bytes: Uint8Array | string, mediaTypeHint?: string): ParseResult<Manifest> {
  return parseDocument<Manifest>(bytes, "manifest", mediaTypeHint);
}

/** Parses an OCI image index or a Docker manifest list; same rules as {@link parseManifest}. Pure. */
export function parseIndex(bytes: Uint8Array | string, mediaTypeHint?: string): ParseResult<Index> {
  return parseDocument<Index>(bytes, "index", mediaTypeHint);
}

/**
 * Parses an OCI or Docker image config. Nulls in optional fields count as absent (config.md);
 * unknown fields are ignored. Pure.
 */
export function parseImageConfig(bytes: Uint8Array | string): ParseResult<ImageConfig> {
  return parseWith(bytes, imageConfigSchema());
}

/** Parses a standalone descriptor (`application/vnd.oci.descriptor.v1+json`). Pure. */
export function parseDescriptor(bytes: Uint8Array | string): ParseResult<Descriptor> {
  return parseWith(bytes, descriptorSchemas().descriptorSchema);
}

/** Parses an `oci-layout` file: `imageLayoutVersion` must be "1.0.0". Pure. */
export function parseOciLayout(bytes: Uint8Array | string): ParseResult<OciLayout> {
  return parseWith(bytes, ociLayoutSchema());
}

function orThrow<T>(r: ParseResult<T>, what: string, code: ErrorCode): { value: T; raw: Uint8Array } {
  if (r.ok) return { value: r.value, raw: r.raw };
  const [first] = r.issues;
  const more = r.issues.length > 1 ? ` (and ${r.issues.length - 1} more)` : "";
  const where = first === undefined ? "" : `${first.path}: ${first.message}`;
  throw new RktError(first?.code ?? code, `${what}: ${where}${more}`);
}

/**
 * {@link parseManifest}, throwing RktError (RKT_INVALID_MANIFEST, RKT_UNSUPPORTED_MEDIA_TYPE for
 * schema1 or an unknown type) whose message starts with `what` (a
 * reference or digest) and names the first issue's path.
 */
export function parseManifestOrThrow(
  bytes: Uint8Array | string,
  mediaTypeHint?: string,
  what = "manifest",
): { value: Manifest; raw: Uint8Array } {
  return orThrow(parseManifest(bytes, mediaTypeHint), what, ErrorCode.InvalidManifest);
}

/** {@link parseIndex}, throwing like {@link parseManifestOrThrow}. */
export function parseIndexOrThrow(
  bytes: Uint8Array | string,
  mediaTypeHint?: string,
  what = "index",
): { value: Index; raw: Uint8Array } {
  return orThrow(parseIndex(bytes, mediaTypeHint), what, ErrorCode.InvalidManifest);
}

/** {@link parseImageConfig}, throwing like {@link parseManifestOrThrow} (RKT_INVALID_MANIFEST). */
export function parseImageConfigOrThrow(
  bytes: Uint8Array | string,
  what = "image config",
): { value: ImageConfig; raw: Uint8Array } {
  return orThrow(parseImageConfig(bytes), what, ErrorCode.InvalidManifest);
}

/** {@link parseDescriptor}, throwing like {@link parseManifestOrThrow} (RKT_INVALID_MANIFEST). */
export function parseDescriptorOrThrow(
  bytes: Uint8Array | string,
  what = "descriptor",
): { value: Descriptor; raw: Uint8Array } {
  return orThrow(parseDescriptor(bytes), what, ErrorCode.InvalidManifest);
}

/** {@link parseOciLayout}, throwing RKT_INVALID_ARCHIVE: a bad `oci-layout` means a bad layout. */
export function parseOciLayoutOrThrow(
  bytes: Uint8Array | string,
  what = "oci-layout",
): { value: OciLayout; raw: Uint8Array } {
  return orThrow(parseOciLayout(bytes), what, ErrorCode.InvalidArchive);
}

/** Whether `mediaType` names a manifest or an index we parse (used to pick a parser). */
export function documentKind(mediaType: string): "manifest" | "index" | undefined {
  if (isManifestType(mediaType)) return "manifest";
  if (isIndexType(mediaType)) return "index";
  return undefined;
}
