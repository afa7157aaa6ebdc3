// An OCI image layout directory as a source and as a sink (ggcr's layout package).
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  byteCounter,
  ErrorCode,
  MediaType,
  RktError,
  imageFromRaw,
  maxManifestBytes,
  verifyDigest,
  type BlobFetcher,
  type Descriptor,
  type ImageOrIndex,
  type ImageSink,
  type Index,
} from "@rkt/oci";
import { blobRelativePath, openOciLayout, refNameAnnotation, type OciLayoutReader } from "../oci-layout.js";

/**
 * Blobs of an opened layout: files under `blobs/`, checked for presence and size before a byte
 * is read; the digest is checked by whoever consumes the stream (the image model or a sink).
 */
export function layoutFetcher(reader: OciLayoutReader): BlobFetcher {
  return {
    readDocument: (desc, max) => reader.readBlob(desc, max),
    async openBlob(desc, o = {}) {
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
        start: o.start ?? 0,
        ...(o.signal === undefined ? {} : { signal: o.signal }),
      });
    },
  };
}

/** Which entry of index.json: by ref name, by position (`@N`), or the only one. */
export interface LayoutSelector {
  ref?: string | undefined;
  index?: number | undefined;
}

/** The entry of `reader`'s index.json that `sel` names. RKT_NOT_FOUND, RKT_AMBIGUOUS. */
export function layoutEntry(reader: OciLayoutReader, sel: LayoutSelector): Descriptor {
  if (sel.index === undefined) return reader.resolve(sel.ref);
  const d = reader.index.manifests[sel.index];
  if (d === undefined) {
    throw new RktError(
      ErrorCode.NotFound,
      `${reader.dir}: index.json has ${reader.index.manifests.length} entries, no @${sel.index}`,
    );
  }
  return d;
}

/** The image or index an entry of an opened layout names. */
export async function layoutImage(
  reader: OciLayoutReader,
  sel: LayoutSelector,
  what: string,
): Promise<ImageOrIndex> {
  const desc = layoutEntry(reader, sel);
  const raw = await reader.readBlob(desc, maxManifestBytes);
  return imageFromRaw(raw, desc, layoutFetcher(reader), what);
}

// `.tmp-<random>` beside the final name: a rename within one directory is atomic.
function tempBeside(path: string): string {
  return join(dirname(path), `.tmp-${randomBytes(8).toString("hex")}`);
}

// The one byte counter of the project lives in @rkt/oci; re-exported for this package's modules.
export { byteCounter };

async function readIndexIfAny(dir: string): Promise<Index> {
  try {
    return (await openOciLayout(dir)).index;
  } catch (e) {
    if (e instanceof RktError && e.code === ErrorCode.NotFound) {
      return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
    }
    throw e;
  }
}

// index.json is read, changed and renamed over: commits into one layout from this process take
// turns (skopeo loses entries when copies into one layout run at once).
const commits = new Map<string, Promise<void>>();
function serialized(dir: string, fn: () => Promise<void>): Promise<void> {
  const p = (commits.get(dir) ?? Promise.resolve()).then(fn);
  const tail = p.catch(() => undefined);
  commits.set(dir, tail);
  void tail.then(() => {
    if (commits.get(dir) === tail) commits.delete(dir);
  });
  return p;
}

/** Options of {@link layoutSink}. */
export interface LayoutSinkOptions {
  /** Names the destination in messages; default `oci:<dir>`. */
  what?: string | undefined;
}

/**
 * Writes into the layout `dir` (created when absent; an existing layout keeps its other images).
 * Each blob is hashed while written to a temporary name and renamed into `blobs/<alg>/<hex>` only
 * when it matches its descriptor; index.json is rewritten atomically at commit, an entry with the
 * same ref name replaced, as skopeo and umoci do. Blobs are not fsynced one by one: a layout is an
 * export, and the rename order already keeps a crashed copy from naming a missing blob.
 */
export function layoutSink(dir: string, o: LayoutSinkOptions = {}): ImageSink {
  const what = o.what ?? `oci:${dir}`;
  let index: Promise<Index> | undefined;
  const entries: { desc: Descriptor; tag: string | undefined }[] = [];
  const blobPath = (d: Descriptor): string => join(dir, blobRelativePath(d.digest));
  const put = async (d: Descriptor, src: Readable, onBytes?: (n: number) => void): Promise<void> => {
    const final = blobPath(d);
    await mkdir(dirname(final), { recursive: true });
    const tmp = tempBeside(final);
    try {
      await pipeline(
        src,
        verifyDigest(d.digest, d.size, `${what}: blob ${d.digest}`),
        byteCounter(onBytes),
        createWriteStream(tmp, { highWaterMark: 1 << 20 }),
      );
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  };
  return {
    what,
    acceptsIndex: true,
    ociOnly: true,
    async has(d) {
      index ??= readIndexIfAny(dir);
      await index;
      return stat(blobPath(d)).then(
        (st) => st.isFile() && st.size === d.size,
        () => false,
      );
    },
    async writeBlob(d, open, wo = {}) {
      await put(d, await open(0), wo.onProgress);
      return "written";
    },
    async writeManifest(x: ImageOrIndex, mo = {}) {
      await put(x.descriptor, Readable.from([Buffer.from(x.rawManifest)]));
      if (mo.top === true) entries.push({ desc: x.descriptor, tag: mo.tag });
    },
    commit: () =>
      serialized(resolve(dir), async () => {
        // Read again now, not at the first blob: another copy into this layout (a sync writes
        // several at once) may have committed since, and its entries must stay.
        const current = await readIndexIfAny(dir);
        let manifests = [...current.manifests];
        for (const { desc, tag } of entries) {
          const entry: Descriptor = {
            mediaType: desc.mediaType,
            digest: desc.digest,
            size: desc.size,
            ...(tag === undefined ? {} : { annotations: { [refNameAnnotation]: tag } }),
          };
          manifests =
            tag === undefined
              ? manifests.filter(
                  (m) => m.digest !== desc.digest || m.annotations?.[refNameAnnotation] !== undefined,
                )
              : manifests.filter((m) => m.annotations?.[refNameAnnotation] !== tag);
          manifests.push(entry);
        }
        const doc = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
        // Renamed into place like index.json: a reader of this layout never sees a half-written file.
        const marker = join(dir, "oci-layout");
        const markerTmp = tempBeside(marker);
        await writeFile(markerTmp, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
        await rename(markerTmp, marker);
        const file = join(dir, "index.json");
        const tmp = tempBeside(file);
        await writeFile(tmp, JSON.stringify(doc));
        await rename(tmp, file);
        entries.length = 0;
      }),
    abort: () => Promise.resolve(),
  };
}
