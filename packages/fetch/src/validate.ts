// `rkt image validate`: structured verdicts on OCI layouts (directories and archives), ACIs,
// docker-archives and single JSON documents. Expected failures are returned as issues, never
// thrown; only unexpected I/O failures (permissions, disk errors) throw.
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { detectCompression, parseImageManifest, parsePodManifest, readAci } from "@rkt/appc";
import {
  ErrorCode,
  RktError,
  detectDocumentType,
  isConfigType,
  isForeignLayerType,
  isIndexType,
  isManifestType,
  isRktError,
  parseDescriptor,
  parseImageConfig,
  parseIndex,
  parseJsonStrict,
  parseManifest,
  parseOciLayout,
  type Descriptor,
  type ParseIssue,
  type ParseResult,
} from "@rkt/oci";
import { listArchiveEntries, validateDockerArchiveFile, withExtractedArchive } from "./docker-archive.js";
import { OciLayoutReader, blobRelativePath, maxDocumentBytes, readFileLimited } from "./oci-layout.js";

/** What `rkt image validate --type` accepts. */
export const validateTypes = [
  "aci",
  "image-manifest",
  "pod-manifest",
  "oci-manifest",
  "oci-index",
  "oci-config",
  "descriptor",
  "layout",
  "docker-archive",
] as const;
/** One of {@link validateTypes}. */
export type ValidateType = (typeof validateTypes)[number];

/** One problem found in an input. */
/**
 * One problem found: @rkt/oci's ParseIssue. Its `path` is a JSONPath: for single documents
 * rooted at the document; for layouts at `index.json`, following descriptors into the documents
 * they reference (`$.manifests[0].layers[1]` is the second layer of the first manifest,
 * `$.manifests[0].config.config.Env[0]` a field inside that manifest's config); for
 * docker-archives at `manifest.json`. Problems of the container itself (a missing `oci-layout`,
 * a corrupt archive) have the path `$`.
 */
export type ValidationIssue = ParseIssue;

/** The verdict on one input. */
export interface ValidationResult {
  /** The input path, as given. */
  readonly path: string;
  /** The type it was validated as (given, or detected). */
  readonly type: ValidateType;
  readonly ok: boolean;
  /** Every problem found, in the order found; empty when `ok`. */
  readonly issues: readonly ValidationIssue[];
}

/** Options of the validators. */
export interface ValidateOptions {
  signal?: AbortSignal | undefined;
}

function result(path: string, type: ValidateType, issues: readonly ValidationIssue[]): ValidationResult {
  return { path, type, ok: issues.length === 0, issues };
}

// Appends a document's own JSONPath (`$.a.b`) under the path of the descriptor that led to it.
function under(prefix: string, inner: string): string {
  return inner === "$" ? prefix : prefix + inner.slice(1);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Validates an OCI image layout directory: `oci-layout`, `index.json`, then every descriptor
 * reachable from it (nested indexes, manifests, configs, layers, subjects present in the layout).
 * Every blob is streamed through a digest and size check; manifests, indexes and configs are read
 * (capped at 4 MiB) and validated. Missing blobs are reported, except layers with `urls`
 * (non-distributable or foreign layers may live elsewhere). Reads only; never throws for bad
 * content (RKT_IO for unreadable files).
 */
export async function validateLayout(dir: string, o: ValidateOptions = {}): Promise<ValidationResult> {
  return result(dir, "layout", await layoutIssues(dir, o));
}

async function layoutIssues(dir: string, o: ValidateOptions): Promise<ValidationIssue[]> {
  const issues: ValidationIssue[] = [];
  let st;
  try {
    st = await stat(dir);
  } catch {
    return [{ path: "$", message: "no such file or directory" }];
  }
  if (!st.isDirectory()) return [{ path: "$", message: "not a directory" }];

  const doc = async (name: string): Promise<Uint8Array | undefined> => {
    try {
      return await readFileLimited(join(dir, name), maxDocumentBytes, name);
    } catch (e) {
      if (isRktError(e, ErrorCode.NotFound)) issues.push({ path: "$", message: `${name} is missing` });
      else if (isRktError(e)) issues.push({ path: "$", message: e.message });
      else throw e;
      return undefined;
    }
  };
  const rawLayout = await doc("oci-layout");
  if (rawLayout !== undefined) {
    const r = parseOciLayout(rawLayout);
    if (!r.ok)
      for (const i of r.issues) issues.push({ path: "$", message: `oci-layout: ${i.path}: ${i.message}` });
  }
  const rawIndex = await doc("index.json");
  if (rawIndex === undefined) return issues;
  const idx = parseIndex(rawIndex);
  if (!idx.ok) {
    for (const i of idx.issues) issues.push({ path: i.path, message: `index.json: ${i.message}` });
    return issues;
  }
  const reader = new OciLayoutReader(dir, idx.value, rawIndex);
  const walker = new LayoutWalker(reader, issues, o);
  for (const [i, d] of idx.value.manifests.entries()) await walker.visit(d, `$.manifests[${i}]`);
  return issues;
}

// Walks the descriptor graph of a layout once per blob, recording issues.
class LayoutWalker {
  // digest -> whether the blob was found intact (checked once even when referenced many times).
  private readonly checked = new Map<string, boolean>();

  private readonly layout: OciLayoutReader;
  private readonly issues: ValidationIssue[];
  private readonly o: ValidateOptions;

  constructor(layout: OciLayoutReader, issues: ValidationIssue[], o: ValidateOptions) {
    this.layout = layout;
    this.issues = issues;
    this.o = o;
  }

  async visit(d: Descriptor, path: string): Promise<void> {
    if (isManifestType(d.mediaType) || isIndexType(d.mediaType)) {
      const bytes = await this.document(d, path);
      if (bytes === undefined) return;
      if (isIndexType(d.mediaType)) {
        const r = parseIndex(bytes, d.mediaType);
        if (!this.record(r, path, d)) return;
        for (const [i, m] of r.value.manifests.entries()) await this.visit(m, `${path}.manifests[${i}]`);
        if (r.value.subject !== undefined) await this.optional(r.value.subject, `${path}.subject`);
        return;
      }
      const r = parseManifest(bytes, d.mediaType);
      if (!this.record(r, path, d)) return;
      const m = r.value;
      if (isConfigType(m.config.mediaType)) {
        const cfg = await this.document(m.config, `${path}.config`);
        if (cfg !== undefined) this.record(parseImageConfig(cfg), `${path}.config`, m.config);
      } else {
        await this.blob(m.config, `${path}.config`);
      }
      for (const [i, l] of m.layers.entries()) {
        const lp = `${path}.layers[${i}]`;
        if ((l.urls?.length ?? 0) > 0 && isForeignLayerType(l.mediaType)) await this.optional(l, lp);
        else await this.blob(l, lp);
      }
      if (m.subject !== undefined) await this.optional(m.subject, `${path}.subject`);
      return;
    }
    await this.blob(d, path);
  }

  private record<T>(
    r: ParseResult<T>,
    path: string,
    d: Descriptor,
  ): r is { readonly ok: true; readonly value: T; readonly raw: Uint8Array } {
    if (!r.ok) {
      for (const i of r.issues) {
        this.issues.push({ path: under(path, i.path), message: `${i.message} (in blob ${d.digest})` });
      }
    }
    return r.ok;
  }

  // A blob that may legitimately be absent (foreign layers, subjects): verified only if present.
  private async optional(d: Descriptor, path: string): Promise<void> {
    if ((await this.layout.blobSize(d.digest)) !== undefined) await this.blob(d, path);
  }

  private async document(d: Descriptor, path: string): Promise<Uint8Array | undefined> {
    if (d.data !== undefined) return Buffer.from(d.data, "base64");
    try {
      const bytes = await this.layout.readBlob(d);
      this.checked.set(d.digest, true);
      return bytes;
    } catch (e) {
      if (!isRktError(e)) throw e;
      this.fail(d, path, e);
      return undefined;
    }
  }

  private async blob(d: Descriptor, path: string): Promise<void> {
    if (d.data !== undefined) return; // embedded content: the descriptor schema checked it
    const seen = this.checked.get(d.digest);
    if (seen !== undefined) {
      if (!seen) this.issues.push({ path, message: `blob ${d.digest} is missing or corrupt (see above)` });
      return;
    }
    const size = await this.layout.blobSize(d.digest);
    if (size === undefined) {
      this.fail(
        d,
        path,
        new RktError(ErrorCode.NotFound, `blob ${d.digest} is missing (${blobRelativePath(d.digest)})`),
      );
      return;
    }
    try {
      const s = await this.layout.openBlob(d, this.o);
      await pipeline(s, discard(), this.o.signal === undefined ? {} : { signal: this.o.signal });
      this.checked.set(d.digest, true);
    } catch (e) {
      if (!isRktError(e) || e.code === ErrorCode.Aborted) throw e;
      this.fail(d, path, e);
    }
  }

  private fail(d: Descriptor, path: string, e: RktError): void {
    this.checked.set(d.digest, false);
    this.issues.push({ path, message: e.message });
  }
}

function discard(): Writable {
  return new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });
}

/**
 * Validates an ACI (appc image archive, any compression appc reads): the archive layout (only
 * `manifest` and `rootfs/…`, no duplicates, a rootfs) and the image manifest, reading the whole
 * archive as a stream. Manifest issues carry JSONPaths into the manifest.
 */
export async function validateAci(file: string, o: ValidateOptions = {}): Promise<ValidationResult> {
  const issues: ValidationIssue[] = [];
  try {
    await readAci(createReadStream(file), undefined, o);
  } catch (e) {
    if (!isRktError(e) || e.code === ErrorCode.Aborted) {
      if (isFsError(e)) return result(file, "aci", [{ path: "$", message: messageOf(e) }]);
      throw e;
    }
    if (e.code === ErrorCode.InvalidManifest) {
      // The reader stops at the first issue; re-read the manifest to report each with its path.
      const raw = await aciManifestBytes(file);
      const r = raw === undefined ? undefined : parseImageManifest(raw);
      if (r !== undefined && !r.ok) {
        for (const i of r.issues) issues.push({ path: i.path, message: `manifest: ${i.message}` });
      } else issues.push({ path: "$", message: e.message });
    } else issues.push({ path: "$", message: e.message });
  }
  return result(file, "aci", issues);
}

function isFsError(e: unknown): boolean {
  return typeof e === "object" && e !== null && "syscall" in e;
}

// The raw `manifest` entry of an ACI, or undefined when it cannot be found.
async function aciManifestBytes(file: string): Promise<Uint8Array | undefined> {
  let found: Uint8Array | undefined;
  try {
    await listArchiveEntries(file, async (name, body) => {
      if (name !== "manifest") return false;
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of body) {
        n += (c as Buffer).length;
        if (n > maxDocumentBytes) return true;
        chunks.push(c as Buffer);
      }
      found = new Uint8Array(Buffer.concat(chunks));
      return true;
    });
  } catch {
    return undefined;
  }
  return found;
}

const documentParsers: Record<
  Exclude<ValidateType, "aci" | "layout" | "docker-archive">,
  (b: Uint8Array) => ParseResult<unknown>
> = {
  "image-manifest": parseImageManifest,
  "pod-manifest": parsePodManifest,
  "oci-manifest": (b) => parseManifest(b),
  "oci-index": (b) => parseIndex(b),
  "oci-config": parseImageConfig,
  descriptor: parseDescriptor,
};

/**
 * Validates one JSON document of the given type (appc image or pod manifest, OCI/Docker manifest,
 * index/manifest list, image config, descriptor). Documents are read whole, capped at 4 MiB.
 */
export async function validateDocument(
  file: string,
  type: Exclude<ValidateType, "aci" | "layout" | "docker-archive">,
): Promise<ValidationResult> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileLimited(file, maxDocumentBytes, file);
  } catch (e) {
    if (!isRktError(e)) throw e;
    return result(file, type, [{ path: "$", message: stripPrefix(e.message, file) }]);
  }
  const r = documentParsers[type](bytes);
  return result(
    file,
    type,
    r.ok ? [] : r.issues.map((i: ParseIssue) => ({ path: i.path, message: i.message })),
  );
}

/**
 * Validates an `oci-layout` file on its own (image-layout.md: a JSON object whose
 * `imageLayoutVersion` is "1.0.0"); issue paths are rooted at the file. Read whole, capped at 4 MiB.
 */
export async function validateOciLayoutFile(file: string): Promise<ValidationResult> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileLimited(file, maxDocumentBytes, file);
  } catch (e) {
    if (!isRktError(e)) throw e;
    return result(file, "layout", [{ path: "$", message: stripPrefix(e.message, file) }]);
  }
  const r = parseOciLayout(bytes);
  return result(file, "layout", r.ok ? [] : r.issues.map((i) => ({ path: i.path, message: i.message })));
}

function stripPrefix(message: string, prefix: string): string {
  return message.startsWith(`${prefix}: `) ? message.slice(prefix.length + 2) : message;
}

/**
 * Validates `path` as `type`, or as the type {@link detectInputType} finds. A layout may be a
 * directory, a tar archive of one (`oci-archive`), unpacked into a temporary directory that is
 * removed afterwards, or a layout's `oci-layout` file alone (a JSON file). Never throws for bad content; an input whose type cannot
 * be told gets one issue saying so (type `layout` for directories, else the closest guess).
 */
export async function validateFile(
  path: string,
  type?: ValidateType,
  o: ValidateOptions = {},
): Promise<ValidationResult> {
  let t = type;
  if (t === undefined) {
    const d = await detectInputType(path);
    if ("problem" in d) return result(path, d.guess, [{ path: "$", message: d.problem }]);
    t = d.type;
  }
  switch (t) {
    case "aci":
      return validateAci(path, o);
    case "layout": {
      const st = await stat(path).catch(() => undefined);
      if (st === undefined) return result(path, t, [{ path: "$", message: "no such file or directory" }]);
      if (st.isDirectory()) return validateLayout(path, o);
      // A layout's own `oci-layout` file (JSON) is validated as that document; other files are
      // layout archives.
      if (looksLikeJson(await readHead(path))) return validateOciLayoutFile(path);
      const issues = await withExtractedArchive(path, (dir) => layoutIssues(dir, o));
      return result(path, t, issues);
    }
    case "docker-archive":
      return validateDockerArchive(path, o);
    case "image-manifest":
    case "pod-manifest":
    case "oci-manifest":
    case "oci-index":
    case "oci-config":
    case "descriptor":
      return validateDocument(path, t);
  }
}

/**
 * Validates a `docker save` archive (possibly compressed; current `manifest.json` or legacy
 * `repositories` form) with the same planning code `rkt fetch docker-archive:` uses: each image's
 * config, and each layer file's uncompressed digest against the config's `rootfs.diff_ids`.
 * Streamed in two passes; nothing is unpacked. Issue paths are rooted at manifest.json.
 */
export async function validateDockerArchive(
  file: string,
  _o: ValidateOptions = {},
): Promise<ValidationResult> {
  const issues = await validateDockerArchiveFile(file);
  return result(file, "docker-archive", issues);
}

/** What {@link detectInputType} decided. */
export type DetectedType =
  { readonly type: ValidateType } | { readonly guess: ValidateType; readonly problem: string };

/**
 * Tells what an input is: a directory with `oci-layout` is a layout; a tar (any compression) with
 * an `oci-layout` entry is a layout archive, with `manifest.json` a docker-archive, with `manifest`
 * or `rootfs/…` entries an ACI; a JSON document is classified by `acKind` (appc), then by
 * mediaType and shape (OCI/Docker; `imageLayoutVersion` is an `oci-layout` file, validated as a
 * layout on its own; a bare `{mediaType, digest, size}` is a descriptor). Reads at
 * most the archive's entry headers.
 */
export async function detectInputType(path: string): Promise<DetectedType> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return { guess: "layout", problem: "no such file or directory" };
  }
  if (st.isDirectory()) {
    const layout = await stat(join(path, "oci-layout")).catch(() => undefined);
    return layout === undefined
      ? { guess: "layout", problem: "directory is not an OCI image layout (no oci-layout file)" }
      : { type: "layout" };
  }
  const head = await readHead(path);
  if (head.length === 0) return { guess: "aci", problem: "file is empty" };
  if (looksLikeJson(head)) return detectJson(path);
  const compressed = detectCompression(head) !== "none";
  const isTar = head.length >= 262 && head.toString("latin1", 257, 262) === "ustar";
  if (!compressed && !isTar) {
    return { guess: "aci", problem: "not a JSON document, a tar archive or a compressed archive" };
  }
  let kind: ValidateType | undefined;
  try {
    await listArchiveEntries(path, (name) => {
      if (name === "oci-layout") kind = "layout";
      else if ((name === "manifest.json" || name === "repositories") && kind === undefined)
        kind = "docker-archive";
      else if (
        (name === "manifest" || name === "rootfs" || name.startsWith("rootfs/")) &&
        kind === undefined
      ) {
        kind = "aci";
      }
      // An ACI announces itself early (manifest first); other kinds need every name.
      return Promise.resolve(kind === "aci" || kind === "layout");
    });
  } catch {
    // A corrupt archive: the validator of what it looked like so far (the ACI validator when
    // nothing was recognised, ACIs being the most common archives) says what is wrong.
    return { type: kind ?? "aci" };
  }
  if (kind === undefined) {
    return { guess: "aci", problem: "archive has no oci-layout, manifest.json or ACI manifest entry" };
  }
  return { type: kind };
}

// The first 512 bytes of a file: enough for a tar header or a compression magic.
async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(512);
    const r = await fh.read(head, 0, 512, 0);
    return head.subarray(0, r.bytesRead);
  } finally {
    await fh.close();
  }
}

function looksLikeJson(head: Buffer): boolean {
  const text = head.toString("latin1").trimStart();
  return text.startsWith("{") || text.startsWith("[");
}

async function detectJson(path: string): Promise<DetectedType> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileLimited(path, maxDocumentBytes, path);
  } catch (e) {
    return { guess: "oci-manifest", problem: isRktError(e) ? stripPrefix(e.message, path) : messageOf(e) };
  }
  const j = parseJsonStrict(bytes);
  if (!j.ok) {
    const first = j.issues[0];
    return { guess: "oci-manifest", problem: `${first?.path ?? "$"}: ${first?.message ?? "invalid JSON"}` };
  }
  const v = j.value;
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    const kind = (v as Record<string, unknown>)["acKind"];
    if (kind === "ImageManifest") return { type: "image-manifest" };
    if (kind === "PodManifest") return { type: "pod-manifest" };
    const o = v as Record<string, unknown>;
    switch (detectDocumentType(v)) {
      case "oci-manifest":
      case "docker-manifest":
      case "schema1":
        return { type: "oci-manifest" };
      case "oci-index":
      case "docker-manifest-list":
        return { type: "oci-index" };
      case "image-config":
        return { type: "oci-config" };
      case "oci-layout":
        return { type: "layout" };
      case "unknown":
        if ("digest" in o && "size" in o) return { type: "descriptor" };
        if ("acVersion" in o || "acKind" in o) return { type: "image-manifest" };
        break;
    }
  }
  return {
    guess: "oci-manifest",
    problem: "cannot tell what this JSON document is (no acKind or mediaType, unknown shape); use --type",
  };
}
