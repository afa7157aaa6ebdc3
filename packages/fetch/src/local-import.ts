// Local imports: `oci:DIR[:REF|:@N]`, `oci-archive:FILE[:REF|:@N]` and
// `docker-archive:FILE[:NAME:TAG|:@DIGEST|:@N]`, each a copy from the layout or archive source
// into the store sink (the one import path every fetch shares). Blobs are handed to the store
// exactly as the source holds them (no recompression), so images that share a layer share its
// blob on disk.
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, join, resolve } from "node:path";
import {
  ErrorCode,
  RktError,
  hostPlatform,
  isRktError,
  parseDockerReference,
  platformImage,
  type Abortable,
  type BlobProgress,
  type ImageOrIndex,
  type Platform,
} from "@rkt/oci";
import type { ArchiveSelector } from "./docker-archive-plan.js";
import { openDockerArchive } from "./image/docker-archive.js";
import type { ImportResult, LocalStore } from "@rkt/store";
import { copyImage, copyProgress } from "./image/copy.js";
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
  /** Each blob's bytes as they are copied into the store (blobs the store has: done at once). */
  onProgress?: ((p: BlobProgress) => void) | undefined;
  /** Render the image in the same pass (storeSink's `render`). */
  render?: boolean | undefined;
}

/** The outcome of a local import: the store's result plus every blob digest the image uses. */
export interface LocalImportResult extends ImportResult {
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

/** An archive's file name without its `.tar`/`.tgz`/`.tar.*` suffix: the name of last resort. */
export function archiveBase(file: string): string {
  return basename(resolve(file)).replace(/\.(?:tar|tgz|tar\.\w+)$/, "");
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
  named: { name: string; tag?: string | undefined },
  o: Abortable & {
    platform?: Platform | undefined;
    name?: string | undefined;
    render?: boolean | undefined;
    onProgress?: ((p: BlobProgress) => void) | undefined;
  },
  what: string,
): Promise<LocalImportResult> {
  const image = await platformImage(found, o.platform ?? hostPlatform(), what, o);
  const { name, tag } = named;
  const sink = storeSink(store, { name: o.name ?? name, what, render: o.render });
  const c = await copyImage(image, sink, { tag, signal: o.signal, onProgress: copyProgress(o.onProgress) });
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
): Promise<LocalImportResult> {
  const what = o.what ?? `oci:${reader.dir}${o.ref !== undefined ? `:${o.ref}` : ""}`;
  try {
    const found = await layoutImage(reader, o, what);
    const refName = o.ref ?? found.descriptor.annotations?.[refNameAnnotation];
    return await importFound(store, found, nameAndTag(refName, basename(resolve(reader.dir))), o, what);
  } catch (e) {
    throw named(e, what, reader.dir);
  }
}

/** Options of {@link importOciArchive}. */
export type ImportOciArchiveOptions = ImportOciLayoutOptions;

// `<pid>-<start ticks>-<random>`: the store's GC removes temp entries of dead processes by this name.
export function tempName(kind: string): string {
  let start = 0;
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]) || 0;
  } catch {
    // No /proc: the entry is then swept by age only.
  }
  return `${process.pid}-${start}-${kind}-${randomBytes(6).toString("hex")}`;
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
): Promise<LocalImportResult> {
  const what = o.what ?? `oci-archive:${file}${o.ref !== undefined ? `:${o.ref}` : ""}`;
  const unpackTo = join(store.paths.tmp, tempName("oci-archive"));
  let opened;
  try {
    opened = await openOciArchive(file, { ref: o.ref, index: o.index, unpackTo });
    const refName = o.ref ?? opened.image.descriptor.annotations?.[refNameAnnotation];
    return await importFound(store, opened.image, nameAndTag(refName, archiveBase(file)), o, what);
  } catch (e) {
    throw named(e, what, file);
  } finally {
    await opened?.close();
  }
}

/** Options of {@link importDockerArchive}. */
export interface ImportDockerArchiveOptions extends Abortable, ArchiveSelector {
  /** Render the image in the same pass (storeSink's `render`). */
  render?: boolean | undefined;
  /** Repository name to record; default the selected RepoTag's, else the file's base name. */
  name?: string | undefined;
  /** Names the input in errors (e.g. `docker-archive:/media/app.tar:app:1`). */
  what?: string | undefined;
  /** Each blob's bytes as they are copied into the store. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * A RepoTag recorded as a pull of it would be (`busybox:1` → `docker.io/library/busybox`, `1`),
 * so `rkt image list` and later `docker://` fetches name it the same way.
 */
export function repoTagName(t: string): { name: string; tag: string } {
  try {
    const r = parseDockerReference(t);
    return { name: `${r.registry}/${r.repository}`, tag: r.tag ?? "latest" };
  } catch {
    const colon = t.lastIndexOf(":");
    return colon > t.lastIndexOf("/")
      ? { name: t.slice(0, colon), tag: t.slice(colon + 1) }
      : { name: t, tag: "latest" };
  }
}

/**
 * Imports the selected image of a `docker save` archive (plain or compressed tar; current,
 * legacy or Docker 25 form) into `store`, recorded under the selector's name, else its first
 * RepoTag, else the file's base name. The image ID is the digest of the synthesized Docker
 * schema2 manifest. A compressed archive's layers are unpacked under the store's `tmp/` (GC
 * sweeps it if the process dies) and always removed after. Errors as {@link openDockerArchive},
 * naming `o.what`; no image, ref or ingest is left on failure.
 */
export async function importDockerArchive(
  store: LocalStore,
  file: string,
  o: ImportDockerArchiveOptions = {},
): Promise<LocalImportResult> {
  const what = o.what ?? `docker-archive:${file}`;
  let opened;
  try {
    opened = await openDockerArchive(file, {
      ...o,
      what,
      unpackTo: join(store.paths.tmp, tempName("docker-archive")),
    });
    const first = opened.repoTags[0];
    const recorded =
      o.ref !== undefined
        ? { name: `${o.ref.registry}/${o.ref.repository}`, tag: o.ref.tag ?? "latest" }
        : first !== undefined
          ? repoTagName(first)
          : { name: archiveBase(file) };
    return await importFound(store, opened.image, recorded, o, what);
  } catch (e) {
    throw named(opened === undefined ? e : opened.explain(e), what, file);
  } finally {
    await opened?.close();
  }
}
