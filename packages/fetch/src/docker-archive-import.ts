// `rkt fetch docker-archive:FILE[:NAME:TAG|:@DIGEST|:@N]`: imports one image of a `docker save`
// archive (air-gapped sites). Two streaming passes: the first reads only the entry list and the
// small documents, the second streams the chosen image's layers straight into the store's ingests.
// Layers are kept as the archive holds them (plain tars, so their digest is the diff_id) and a
// Docker schema2 manifest is made for them, byte-for-byte the same on every import.
import { randomBytes } from "node:crypto";
import { basename, resolve } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressStream, detectCompression, type Compression } from "@rkt/appc";
import {
  ErrorCode,
  MediaType,
  RktError,
  createDigester,
  digestOf,
  isRktError,
  parseDockerReference,
  type Abortable,
  type Digest,
} from "@rkt/oci";
import { importOciImage, type ImportResult, type LocalStore } from "@rkt/store";
import {
  diffIdMismatchMessage,
  forEachArchiveFile,
  scanDockerArchive,
  unstorableCompressionMessage,
} from "./docker-archive.js";
import {
  archiveManifest,
  legacyConfig,
  planDockerArchive,
  selectArchiveImage,
  type ArchiveSelector,
  type ManifestLayer,
  type PlannedImage,
  type PlannedLayer,
} from "./docker-archive-plan.js";

/** Options of {@link importDockerArchive}. */
export interface ImportDockerArchiveOptions extends Abortable, ArchiveSelector {
  /** Repository name to record; default the selected RepoTag's, else the file's base name. */
  name?: string | undefined;
  /** Names the input in errors (e.g. `docker-archive:/media/app.tar:app:1`). */
  what?: string | undefined;
}

/** The outcome: the store's result, every blob digest, and what was written vs already stored. */
export interface DockerArchiveImportResult extends ImportResult {
  /** Manifest, config, then layers. */
  readonly digests: readonly string[];
  /** Layer bytes written into the store from the archive. */
  readonly bytesWritten: number;
  /** Layer bytes the store already had (not written again). */
  readonly bytesReused: number;
}

const layerType: Record<"none" | "gzip" | "zstd", string> = {
  none: MediaType.DockerLayer,
  gzip: MediaType.DockerLayerGzip,
  zstd: MediaType.DockerLayerZstd,
};

// Splits the first chunk off a stream to sniff its compression, then yields everything.
async function sniff(body: Readable): Promise<{ compression: Compression; stream: Readable }> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const head = first.done === true ? Buffer.alloc(0) : first.value;
  async function* all(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
  }
  return { compression: detectCompression(head), stream: Readable.from(all(), { objectMode: false }) };
}

function hashSink(d: ReturnType<typeof createDigester>): Writable {
  return new Writable({
    write(c: Buffer, _e, cb) {
      d.update(c);
      cb();
    },
  });
}

interface StoredLayer extends ManifestLayer {
  readonly diffId: Digest;
  readonly written: number;
}

/**
 * Stores one layer entry under `lease`. A plain tar with a known diff_id goes in against that
 * digest (the store hashes every byte and refuses a mismatch before commit; present content is
 * not rewritten). A legacy layer (no diff_id yet) is committed under the digest of what was read.
 * A gzip or zstd layer is kept compressed, its diff_id computed on the way through a
 * decompressor and checked before commit.
 */
async function storeLayer(
  store: LocalStore,
  layer: PlannedLayer,
  body: Readable,
  lease: string,
  signal: AbortSignal | undefined,
): Promise<StoredLayer> {
  const { compression, stream } = await sniff(body);
  if (compression !== "none" && compression !== "gzip" && compression !== "zstd")
    throw new RktError(ErrorCode.UnsupportedMediaType, unstorableCompressionMessage(layer.name, compression));
  const mediaType = layerType[compression];
  const want = layer.diffId?.startsWith("sha256:") === true ? layer.diffId : undefined;
  const sig = { signal: signal ?? new AbortController().signal };
  const present = async (digest: Digest): Promise<StoredLayer> => {
    stream.resume();
    if (!stream.readableEnded) await new Promise((r) => stream.once("end", r));
    return { mediaType, digest, size: layer.size, diffId: digest, written: 0 };
  };
  if (compression === "none" && want !== undefined) {
    store.leaseAdd(lease, "blob", want);
    if (await store.exists(want)) return present(want);
  }
  let w: Awaited<ReturnType<LocalStore["writer"]>>;
  try {
    w = await store.writer({
      // A known digest shares the registry path's ingest name, so two imports of it wait on each other.
      ref:
        want !== undefined && compression === "none"
          ? `blob-${want}`
          : `docker-archive-${randomBytes(8).toString("hex")}`,
      ...(compression === "none" && want !== undefined
        ? { expected: { digest: want, size: layer.size } }
        : {}),
      wait: true,
      signal,
      mediaType,
      lease,
      fresh: true,
    });
  } catch (e) {
    // Another import or pull committed it while we waited for its ingest.
    if (isRktError(e, ErrorCode.AlreadyExists) && want !== undefined) return present(want);
    throw e;
  }
  try {
    let diffId: Digest | undefined;
    if (compression === "none") {
      await pipeline(stream, w.stream, sig);
    } else {
      // One source, two readers: the store's ingest and a decompressor feeding the diff_id hash.
      // A failure of either destroys the source, which fails the other.
      const tee = new PassThrough({ highWaterMark: 1 << 20 });
      const d = createDigester("sha256");
      const hashing = (async () => {
        const plain = await decompressStream(tee);
        await pipeline(plain.stream, hashSink(d), sig);
      })().catch((e: unknown) => {
        stream.destroy(e as Error);
        throw e;
      });
      await Promise.all([pipeline(stream, w.stream, sig), pipeline(stream, tee), hashing]);
      diffId = d.digest();
      if (layer.diffId !== undefined && layer.diffId !== diffId)
        throw new RktError(ErrorCode.DigestMismatch, diffIdMismatchMessage(layer.name, layer.diffId, diffId));
    }
    const desc = await w.commit();
    return {
      mediaType,
      digest: desc.digest,
      size: desc.size,
      diffId: diffId ?? desc.digest,
      written: desc.size,
    };
  } catch (e) {
    await w.abort();
    if (isRktError(e, ErrorCode.DigestMismatch) && want !== undefined && "actual" in e)
      throw new RktError(
        ErrorCode.DigestMismatch,
        diffIdMismatchMessage(layer.name, want, String(e.actual)),
        {
          cause: e,
        },
      );
    throw e;
  }
}

// A RepoTag recorded as a pull of it would be (`busybox:1` → `docker.io/library/busybox`, `1`),
// so `rkt image list` and later `docker://` fetches name it the same way.
function splitRepoTag(t: string): { name: string; tag: string } {
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

function recordedName(img: PlannedImage, sel: ArchiveSelector, file: string): { name: string; tag?: string } {
  if (sel.ref !== undefined) {
    return { name: `${sel.ref.registry}/${sel.ref.repository}`, tag: sel.ref.tag ?? "latest" };
  }
  const first = img.repoTags[0];
  if (first !== undefined) return splitRepoTag(first);
  return { name: basename(resolve(file)).replace(/\.(?:tar|tgz|tar\.\w+)$/, "") };
}

/**
 * Imports the selected image of a `docker save` archive (plain or compressed tar; current or
 * legacy form) into `store`. Everything the plan can find wrong is refused before any byte is
 * written; layers then stream into the store, each verified against its diff_id before it is
 * committed; the image row is written last. The image ID is the digest of the synthesized Docker
 * schema2 manifest ({@link archiveManifest}). Errors name `o.what`: RKT_INVALID_ARCHIVE (unreadable
 * or truncated tar, or a problem of the image's documents, with its JSONPath), RKT_AMBIGUOUS,
 * RKT_NOT_FOUND, RKT_DIGEST_MISMATCH (a layer that is not what the config says),
 * RKT_UNSUPPORTED_MEDIA_TYPE. Layers committed before a later failure are unreferenced content
 * (GC removes them); no image, ref or ingest is left.
 */
export async function importDockerArchive(
  store: LocalStore,
  file: string,
  o: ImportDockerArchiveOptions = {},
): Promise<DockerArchiveImportResult> {
  const what = o.what ?? `docker-archive:${file}`;
  let lease: string | undefined;
  try {
    const index = await scanDockerArchive(file);
    const plan = planDockerArchive(index);
    if (plan.images.length === 0) {
      const i = plan.issues[0];
      throw new RktError(ErrorCode.InvalidArchive, i === undefined ? "no images" : `${i.path}: ${i.message}`);
    }
    const img = selectArchiveImage(plan, o);
    const own = img.issues[0];
    if (own !== undefined) throw new RktError(ErrorCode.InvalidArchive, `${own.path}: ${own.message}`);
    lease = store.createLease({ labels: { purpose: `import ${what}` } });
    const l = lease;
    const stored = new Map<string, StoredLayer>();
    const byEntry = new Map<string, PlannedLayer>();
    for (const x of img.layers) if (!byEntry.has(x.entry)) byEntry.set(x.entry, x);
    const missing = await forEachArchiveFile(file, index, new Set(byEntry.keys()), async (name, body) => {
      stored.set(name, await storeLayer(store, byEntry.get(name)!, body, l, o.signal));
    });
    if (missing.size > 0)
      throw new RktError(
        ErrorCode.InvalidArchive,
        `layer ${[...missing][0]} vanished between two reads of the archive`,
      );
    const layers = img.layers.map((x) => stored.get(x.entry)!);
    let configBytes: Uint8Array;
    if (img.config !== undefined) configBytes = img.config.bytes;
    else {
      configBytes = legacyConfig(
        img.legacy ?? [],
        layers.map((x) => x.diffId),
      );
      // Legacy layers carry no diff_id to check against: they are recorded as read.
    }
    const config = { digest: digestOf(configBytes), size: configBytes.length };
    const rawManifest = archiveManifest(config, layers);
    const { name, tag } = recordedName(img, o, file);
    const cfg = Buffer.from(configBytes);
    const r = await importOciImage(store, {
      rawManifest,
      mediaType: MediaType.DockerManifest,
      source: {
        blob: (d) =>
          d.digest === config.digest
            ? Promise.resolve(Readable.from([cfg], { objectMode: false }))
            : Promise.reject(new RktError(ErrorCode.NotFound, `blob ${d.digest} is not in the archive`)),
      },
      name: o.name ?? name,
      tag,
      what,
      signal: o.signal,
    });
    const bytesWritten = [...stored.values()].reduce((a, b) => a + b.written, 0);
    const total = [...stored.values()].reduce((a, b) => a + b.size, 0);
    return {
      ...r,
      digests: [r.id, config.digest, ...layers.map((x) => x.digest)],
      bytesWritten,
      bytesReused: total - bytesWritten,
    };
  } catch (e) {
    if (isRktError(e) && e.message.startsWith(what)) throw e;
    if (isRktError(e)) {
      const m = e.message.startsWith(`${file}: `) ? e.message.slice(file.length + 2) : e.message;
      throw new RktError(e.code, `${what}: ${m}`, { cause: e });
    }
    throw new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    if (lease !== undefined) store.deleteLease(lease);
  }
}
