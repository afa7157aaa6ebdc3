// Local OCI imports: `oci:DIR[:REF|:@N]` and `oci-archive:FILE[:REF|:@N]`, each a copy from the
// layout or archive source into the store sink. Blobs are handed to the store exactly as the
// layout holds them (no recompression), so images that share a layer share its blob on disk.
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, join, resolve } from "node:path";
import {
  ErrorCode,
  RktError,
  hostPlatform,
  isRktError,
  platformImage,
  type Abortable,
  type ImageOrIndex,
  type Platform,
} from "@rkt/oci";
import type { ImportResult, LocalStore } from "@rkt/store";
import { copyImage } from "./image/copy.js";
import { layoutImage } from "./image/layout.js";
import { openOciArchive } from "./image/oci-archive.js";
import { storeSink } from "./image/store.js";
import { refNameAnnotation, type OciLayoutReader } from "./oci-layout.js";

/** Which image of a layout to import, and how to record it. */
export interface ImportOciLayoutOptions extends Abortable {
  /** `org.opencontainers.image.ref.name` to select; without it (and `index`) the only entry. */
  ref?: string | undefined;
  /** The N-th entry of index.json (0-based), as `oci:DIR:@N`. */
  index?: number | undefined;
  /** Platform an index entry is resolved for; default the host's. */
  platform?: Platform | undefined;
  /** Repository name to record; default derived from the ref name or the layout's directory name. */
  name?: string | undefined;
  /** Names the input in errors (e.g. `oci:/srv/layout:v1`). */
  what?: string | undefined;
}

/** The outcome of a layout import: the store's result plus every blob digest the image uses. */
export interface OciLayoutImportResult extends ImportResult {
  /** Manifest, config, then layers, as stored. */
  readonly digests: readonly string[];
  /** Config and layer bytes copied from the layout into the store. */
  readonly bytesWritten: number;
  /** Config and layer bytes the store already had. */
  readonly bytesReused: number;
}

/**
 * A ref name that is itself a reference (`example.com/app:1.0`) gives name and tag; a bare tag
 * (`latest`, what skopeo and umoci write for `oci:DIR:TAG`) is a tag of the directory's name.
 */
export function nameAndTag(ref: string | undefined, base: string): { name: string; tag: string | undefined } {
  if (ref === undefined || ref === "") return { name: base, tag: undefined };
  const colon = ref.lastIndexOf(":");
  if (ref.includes("/") && colon > ref.lastIndexOf("/")) {
    return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  }
  if (ref.includes("/")) return { name: ref, tag: "latest" };
  return { name: base, tag: ref };
}

// Errors name the input as the user typed it; a reader's own path (for an archive, a temporary
// directory that means nothing to the user) is dropped.
function named(e: unknown, what: string, dir: string): RktError {
  if (isRktError(e) && e.message.startsWith(what)) return e;
  if (isRktError(e)) {
    let m = e.message;
    for (const p of [`${dir}: `, `oci-archive:${dir}: `]) if (m.startsWith(p)) m = m.slice(p.length);
    return new RktError(e.code, `${what}: ${m}`, { cause: e });
  }
  return new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

async function importFound(
  store: LocalStore,
  found: ImageOrIndex,
  refName: string | undefined,
  base: string,
  o: ImportOciLayoutOptions,
  what: string,
): Promise<OciLayoutImportResult> {
  const image = await platformImage(found, o.platform ?? hostPlatform(), what, o);
  const { name, tag } = nameAndTag(refName, base);
  const sink = storeSink(store, { name: o.name ?? name, what });
  const c = await copyImage(image, sink, { tag, signal: o.signal });
  const result = sink.imported[0];
  if (result === undefined) throw new RktError(ErrorCode.Internal, `${what}: nothing was imported`);
  const m = image.manifest;
  return {
    ...result,
    digests: [result.id, m.config.digest, ...m.layers.map((l) => l.digest)],
    bytesWritten: c.bytes.written,
    bytesReused: c.bytes.exists,
  };
}

/**
 * Imports one image of an opened OCI layout into `store`: the ref (or `@N`, or the only entry) of
 * index.json; an index is resolved to the manifest for `o.platform` (default the host's). The
 * image ID is the platform manifest's digest. Errors name `o.what`: RKT_NOT_FOUND (no such ref,
 * missing blob), RKT_AMBIGUOUS (several entries, none named), RKT_DIGEST_MISMATCH /
 * RKT_SIZE_MISMATCH (corrupt blob), RKT_INVALID_MANIFEST, RKT_NO_MATCHING_PLATFORM. No image row
 * is written on failure.
 */
export async function importOciLayout(
  store: LocalStore,
  reader: OciLayoutReader,
  o: ImportOciLayoutOptions = {},
): Promise<OciLayoutImportResult> {
  const what = o.what ?? `oci:${reader.dir}${o.ref !== undefined ? `:${o.ref}` : ""}`;
  try {
    const found = await layoutImage(reader, o, what);
    const refName = o.ref ?? found.descriptor.annotations?.[refNameAnnotation];
    return await importFound(store, found, refName, basename(resolve(reader.dir)), o, what);
  } catch (e) {
    throw named(e, what, reader.dir);
  }
}

/** Options of {@link importOciArchive}. */
export type ImportOciArchiveOptions = ImportOciLayoutOptions;

// `<pid>-<start ticks>-<random>`: the store's GC removes temp entries of dead processes by this name.
function tempName(): string {
  let start = 0;
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]) || 0;
  } catch {
    // No /proc: the entry is then swept by age only.
  }
  return `${process.pid}-${start}-oci-archive-${randomBytes(6).toString("hex")}`;
}

/**
 * Imports one image of an OCI archive (a tar of an image layout): an uncompressed archive is read
 * in place; a compressed one is unpacked under the store's `tmp/` (GC sweeps it if the process
 * dies) and always removed after. Errors as {@link importOciLayout}, plus RKT_INVALID_ARCHIVE for
 * an unreadable tar and RKT_NOT_FOUND when the archive holds no layout, naming `o.what`.
 */
export async function importOciArchive(
  store: LocalStore,
  file: string,
  o: ImportOciArchiveOptions = {},
): Promise<OciLayoutImportResult> {
  const what = o.what ?? `oci-archive:${file}${o.ref !== undefined ? `:${o.ref}` : ""}`;
  const unpackTo = join(store.paths.tmp, tempName());
  let opened;
  try {
    opened = await openOciArchive(file, { ref: o.ref, index: o.index, unpackTo });
    const refName = o.ref ?? opened.image.descriptor.annotations?.[refNameAnnotation];
    const base = basename(resolve(file)).replace(/\.(?:tar|tgz|tar\.\w+)$/, "");
    return await importFound(store, opened.image, refName, base, o, what);
  } catch (e) {
    throw named(e, what, file);
  } finally {
    await opened?.close();
  }
}
