// Local OCI imports: `oci:DIR[:REF|:@N]` and `oci-archive:FILE[:REF|:@N]`. Blobs are handed to the
// store exactly as the layout holds them (no recompression), so images that share a layer share
// its blob on disk.
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import {
  ErrorCode,
  RktError,
  hostPlatform,
  isIndexType,
  isRktError,
  parseIndexOrThrow,
  parseManifest,
  parseManifestOrThrow,
  selectPlatform,
  type Abortable,
  type Descriptor,
  type Platform,
} from "@rkt/oci";
import { importOciImage, type ImageSource, type ImportResult, type LocalStore } from "@rkt/store";
import { listArchiveEntries } from "./docker-archive.js";
import { blobRelativePath, openOciLayout, refNameAnnotation, type OciLayoutReader } from "./oci-layout.js";

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
  /** Config and layer bytes the store already had (looked up before the import; informational). */
  readonly bytesReused: number;
}

// Nested indexes are legal; bound the depth so a cycle of digests cannot loop forever.
const maxIndexDepth = 4;

/**
 * An {@link ImageSource} over a layout: each blob is read from `blobs/<alg>/<hex>`. A missing
 * blob fails at once (RKT_NOT_FOUND naming its path) and a blob of the wrong size before any
 * byte is read (RKT_SIZE_MISMATCH); the digest is not checked here because the store's writer
 * hashes every byte and refuses a mismatch at commit (one hash pass instead of two).
 */
export function layoutImageSource(reader: OciLayoutReader): ImageSource {
  return {
    blob: async (desc, o) => {
      const size = await reader.blobSize(desc.digest);
      if (size === undefined) {
        throw new RktError(
          ErrorCode.NotFound,
          `blob ${desc.digest} is missing (${blobRelativePath(desc.digest)})`,
        );
      }
      if (size !== desc.size) {
        throw new RktError(
          ErrorCode.SizeMismatch,
          `blob ${desc.digest}: size mismatch: descriptor says ${desc.size} bytes, file has ${size}`,
        );
      }
      return createReadStream(reader.blobPath(desc.digest), {
        highWaterMark: 1 << 20,
        ...(o?.signal === undefined ? {} : { signal: o.signal }),
      });
    },
  };
}

// A ref name that is itself a reference (`example.com/app:1.0`) gives name and tag; a bare tag
// (`latest`, what skopeo and umoci write for `oci:DIR:TAG`) is a tag of the directory's name.
function nameAndTag(ref: string | undefined, base: string): { name: string; tag: string | undefined } {
  if (ref === undefined || ref === "") return { name: base, tag: undefined };
  const colon = ref.lastIndexOf(":");
  if (ref.includes("/") && colon > ref.lastIndexOf("/")) {
    return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  }
  if (ref.includes("/")) return { name: ref, tag: "latest" };
  return { name: base, tag: ref };
}

/**
 * Imports one image of an opened OCI layout into `store`: resolves the ref (or `@N`, or the only
 * entry) in index.json; an index (image index or Docker manifest list) is resolved to the
 * manifest for `o.platform` (default: the host's) with {@link selectPlatform}; then the manifest,
 * config and layers go to the store as they are, each verified. The image ID is the platform
 * manifest's digest. Errors name `o.what`: RKT_NOT_FOUND (no such ref, missing blob),
 * RKT_AMBIGUOUS (several entries, none named), RKT_DIGEST_MISMATCH / RKT_SIZE_MISMATCH (corrupt
 * blob), RKT_INVALID_MANIFEST, RKT_NO_MATCHING_PLATFORM. No image row is written on failure.
 */
export async function importOciLayout(
  store: LocalStore,
  reader: OciLayoutReader,
  o: ImportOciLayoutOptions = {},
): Promise<OciLayoutImportResult> {
  return importFromReader(store, reader, o, basename(resolve(reader.dir)));
}

async function importFromReader(
  store: LocalStore,
  reader: OciLayoutReader,
  o: ImportOciLayoutOptions,
  baseName: string,
): Promise<OciLayoutImportResult> {
  const what = o.what ?? `oci:${reader.dir}${o.ref !== undefined ? `:${o.ref}` : ""}`;
  try {
    let desc: Descriptor;
    if (o.index !== undefined) {
      const d = reader.index.manifests[o.index];
      if (d === undefined) {
        throw new RktError(
          ErrorCode.NotFound,
          `index.json has ${reader.index.manifests.length} entries, no entry @${o.index}`,
        );
      }
      desc = d;
    } else {
      desc = reader.resolve(o.ref);
    }
    const refName = o.ref ?? desc.annotations?.[refNameAnnotation];
    const want = o.platform ?? hostPlatform();
    for (let depth = 0; isIndexType(desc.mediaType); depth++) {
      if (depth >= maxIndexDepth) {
        throw new RktError(ErrorCode.InvalidManifest, `indexes nested more than ${maxIndexDepth} deep`);
      }
      const raw = await reader.readBlob(desc);
      const index = parseIndexOrThrow(raw, desc.mediaType, `index ${desc.digest}`).value;
      desc = selectPlatform(index.manifests, want, `index ${desc.digest}`);
    }
    const rawManifest = await reader.readBlob(desc);
    const { name, tag } = nameAndTag(refName, baseName);
    // What the store already has, for the summary (a bad manifest is importOciImage's to report).
    const pre = parseManifest(rawManifest, desc.mediaType);
    const blobs = (pre.ok ? [pre.value.config, ...pre.value.layers] : []).filter(
      (d, i, a) => a.findIndex((x) => x.digest === d.digest) === i,
    );
    let bytesReused = 0;
    for (const d of blobs) if (await store.exists(d.digest)) bytesReused += d.size;
    const bytesTotal = blobs.reduce((a, d) => a + d.size, 0);
    const result = await importOciImage(store, {
      rawManifest,
      mediaType: desc.mediaType,
      source: layoutImageSource(reader),
      name: o.name ?? name,
      tag,
      what,
      signal: o.signal,
    });
    // importOciImage validated the manifest; read its blob list from the same bytes.
    const m = parseManifestOrThrow(rawManifest, desc.mediaType, `manifest ${desc.digest}`).value;
    return {
      ...result,
      digests: [result.id, m.config.digest, ...m.layers.map((l) => l.digest)],
      bytesWritten: bytesTotal - bytesReused,
      bytesReused,
    };
  } catch (e) {
    if (isRktError(e) && e.message.startsWith(what)) throw e;
    // The reader names its directory; `what` already names the input (and for an archive the
    // directory is a temp path that means nothing to the user).
    if (isRktError(e)) {
      const m = e.message.startsWith(`${reader.dir}: `) ? e.message.slice(reader.dir.length + 2) : e.message;
      throw new RktError(e.code, `${what}: ${m}`, { cause: e });
    }
    throw new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
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

// Only the layout's own files are unpacked: anything else in the archive is ignored, so a hostile
// archive cannot write outside the temp directory.
const layoutEntry = /^(?:oci-layout|index\.json|blobs\/[a-z0-9]+\/[a-f0-9]{32,128})$/;

/**
 * Imports one image of an OCI archive (a tar, possibly compressed, of an image layout): the
 * layout's files are unpacked into a temp directory under the store's `tmp/` (same file system as
 * the blobs), imported with {@link importOciLayout}, and the directory is always removed (GC
 * sweeps it if the process dies). Errors as {@link importOciLayout}, plus RKT_INVALID_ARCHIVE
 * for an unreadable tar and RKT_NOT_FOUND when the archive holds no layout, naming `o.what`.
 */
export async function importOciArchive(
  store: LocalStore,
  file: string,
  o: ImportOciArchiveOptions = {},
): Promise<OciLayoutImportResult> {
  const what = o.what ?? `oci-archive:${file}${o.ref !== undefined ? `:${o.ref}` : ""}`;
  const dir = join(store.paths.tmp, tempName());
  try {
    await mkdir(dir, { recursive: true });
    try {
      await listArchiveEntries(file, async (name, body, type) => {
        if ((type !== "file" && type !== "contiguous-file") || !layoutEntry.test(name)) return false;
        const dest = join(dir, name);
        await mkdir(dirname(dest), { recursive: true });
        await pipeline(body, createWriteStream(dest, { highWaterMark: 1 << 20 }));
        return false;
      });
    } catch (e) {
      if (isRktError(e))
        throw new RktError(e.code, `${what}: ${e.message.replace(`${file}: `, "")}`, { cause: e });
      throw new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
    }
    let reader: OciLayoutReader;
    try {
      reader = await openOciLayout(dir);
    } catch (e) {
      const m = isRktError(e) ? e.message.replace(`${dir}: `, "") : String(e);
      throw new RktError(
        isRktError(e) ? e.code : ErrorCode.Io,
        `${what}: ${m.replace("OCI image layout", "OCI archive")}`,
        {
          cause: e,
        },
      );
    }
    const base = basename(resolve(file)).replace(/\.(?:tar|tgz|tar\.\w+)$/, "");
    return await importFromReader(store, reader, { ...o, what }, base);
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
