// The generic OCI/Docker image recording path: every transport (OCI layout, oci-archive,
// docker-archive, registry) hands a manifest and a way to open blobs; blobs are kept exactly as
// received, so layers are shared between images.
import { createReadStream, existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { buffer } from "node:stream/consumers";
import {
  DigestMismatchError,
  ErrorCode,
  MediaType,
  RktError,
  digestOf,
  isConfigType,
  isLayerType,
  isRktError,
  parseImageConfigOrThrow,
  parseManifestOrThrow,
  type Abortable,
  type Descriptor,
  type Digest,
  type ImageConfig,
} from "@rkt/oci";
import { isNoSpace } from "./free-space.js";
import { ingestPaths } from "./ingest-files.js";
import { recordRemote, type ImportResult, type RemoteInfo } from "./import-aci.js";
import type { LocalStore, LocalWriter } from "./local-store.js";
import { indexDb } from "./internal/index-db.js";
import { fsyncDir } from "./internal/fs-util.js";
import { lockTree, renderLocked } from "./tree/store-render.js";
import {
  discardSnapshot,
  getSnapshot,
  layerSnapshotKey,
  prepareExtracted,
  publishSnapshots,
  type PreparedSnapshot,
} from "./tree/snapshot.js";
import { ociTreeId } from "./tree/tree.js";
import type { LockHandle } from "./locks.js";
import { sideTap, writeSide, type LayerUnpack } from "./unpack.js";

/**
 * Where an importer gets blob bytes from. Transports implement it (an OCI layout reads
 * `blobs/<alg>/<hex>`, a registry GETs `/v2/<name>/blobs/<digest>`). The importer verifies the
 * digest and size of every byte, so the stream need not be verified already.
 */
export interface ImageSource {
  /** A stream of the blob's bytes; the caller consumes or destroys it. RKT_NOT_FOUND if the source lacks it. */
  blob(desc: Descriptor, o?: Abortable): Promise<Readable>;
  /**
   * Optional: the blob's bytes from offset `start` on (an HTTP Range request). When present, an
   * ingest left by an interrupted import of the same blob is resumed instead of restarted.
   */
  blobFrom?: ((desc: Descriptor, start: number, o?: Abortable) => Promise<Readable>) | undefined;
}

/** Options of {@link importOciImage}. */
export interface ImportOciOptions extends Abortable {
  /** The manifest's exact bytes; the image ID is their sha256. */
  rawManifest: Uint8Array;
  /** The type the transport reported (descriptor or Content-Type); checked against the document. */
  mediaType?: string | undefined;
  source: ImageSource;
  /** Repository name to record (e.g. `docker.io/library/busybox`) and show in `image list`. */
  name?: string | undefined;
  /** Tag to point at the image under `name`. */
  tag?: string | undefined;
  latest?: boolean | undefined;
  remote?: RemoteInfo | undefined;
  /** Names the input in errors (e.g. `oci:/srv/layout:v1`). Default: the manifest digest. */
  what?: string | undefined;
  /** Blobs fetched at once; default 3. */
  concurrency?: number | undefined;
  /**
   * Render the image into the tree store as part of the import: layers unpacked on the way in
   * (`unpack`, see ingestBlob) are published once their diffIDs match the config, the others are
   * extracted from their stored blobs, all behind one durability barrier; then the tree is
   * recorded. Ignored for an image without layers or config.
   */
  render?: boolean | undefined;
  /** Layers already unpacked while their blobs were written (the caller discards what is left). */
  unpack?: LayerUnpack | undefined;
}

const configCap = 16 << 20;

/** Options of {@link ingestBlob}. */
export interface IngestBlobOptions extends Abortable {
  /**
   * Protects the committed blob from GC until the caller records it. With a lease the blob's
   * index row is the caller's to write, with the image that needs it (importOciImage does, after
   * one fsync of the blob directory): a blob nobody records is an orphan GC removes once the
   * lease is gone. Without one, the commit records the row itself.
   */
  lease?: string | undefined;
  /**
   * `open` serves from an offset (an HTTP Range, a file): a partial ingest an earlier attempt left
   * is resumed, and on failure what was written is kept for the next attempt. Otherwise a partial
   * ingest is restarted and a failed one discarded.
   */
  ranged?: boolean | undefined;
  /** Bytes of the blob held so far, counted from its start (a resumed prefix included). */
  onProgress?: ((bytes: number) => void) | undefined;
  /**
   * Hears the bytes of a partial ingest dropped because the disk is full (the failure, or the
   * reason `signal` fired with, is ENOSPC/EDQUOT): kept for a resume, it would leave no room.
   */
  onDropped?: ((bytes: number) => void) | undefined;
  /**
   * Unpack the blob, when it is a layer (by media type), in the same pass: its bytes are also
   * decompressed, hashed and
   * extracted into a snapshot that `unpack` keeps for the image import to publish. The blob is
   * committed only when both the blob's digest and the extraction succeed; either failing
   * discards both.
   */
  unpack?: LayerUnpack | undefined;
}

/** How {@link ingestBlob} got the blob, and the bytes of a partial ingest it resumed from. */
export interface IngestOutcome {
  readonly how: "exists" | "written";
  readonly resumed: number;
}

/**
 * Joins network chunks (~64 KiB) into 1 MiB buffers for a store writer, which issues one write
 * per chunk it gets: the per-call cost dominated a profile of cold pulls. `onBytes` hears each
 * buffer's size as it passes.
 */
export async function* batchChunks(
  src: AsyncIterable<Buffer>,
  onBytes?: (n: number) => void,
): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of src) {
    parts.push(c);
    have += c.length;
    if (have >= batchBytes) {
      onBytes?.(have);
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
      parts = [];
      have = 0;
    }
  }
  if (have > 0) {
    onBytes?.(have);
    yield Buffer.concat(parts, have);
  }
}
const batchBytes = 1 << 20;

// Passes chunks on as they are (the store writer joins them with writev) and reports the bytes
// seen about once a megabyte, and at the end.
async function* countChunks(
  src: AsyncIterable<Buffer>,
  onBytes: (n: number) => void,
): AsyncGenerator<Buffer> {
  let unreported = 0;
  for await (const c of src) {
    unreported += c.length;
    if (unreported >= batchBytes) {
      onBytes(unreported);
      unreported = 0;
    }
    yield c;
  }
  if (unreported > 0) onBytes(unreported);
}

/**
 * The store's one blob writer: writes `desc` from `open(start)` unless it is stored. Leases the
 * digest before looking (a concurrent GC must not remove what is reused), takes the ingest
 * `blob-<digest>` (concurrent writers of a blob, in any process, wait on it and then find it
 * committed), resumes or restarts a partial ingest, and commits against digest and size: bytes
 * that do not hash to `desc` are discarded and never visible (RKT_DIGEST_MISMATCH,
 * RKT_SIZE_MISMATCH).
 */
export async function ingestBlob(
  store: LocalStore,
  desc: Descriptor,
  open: (start: number) => Promise<Readable>,
  o: IngestBlobOptions = {},
): Promise<IngestOutcome> {
  if (o.lease !== undefined) store.leaseAdd(o.lease, "blob", desc.digest);
  if (await store.exists(desc.digest)) return { how: "exists", resumed: 0 };
  const ref = `blob-${desc.digest}`;
  let w;
  try {
    w = await store.writer({
      ref,
      expected: { digest: desc.digest, size: desc.size },
      wait: true,
      signal: o.signal,
      mediaType: desc.mediaType,
      lease: o.lease,
      // With a lease the caller records the blob with its image (importOciImage does).
      deferIndex: o.lease !== undefined,
      fresh: o.ranged !== true,
    });
  } catch (e) {
    if (isRktError(e, ErrorCode.AlreadyExists)) return { how: "exists", resumed: 0 };
    throw e;
  }
  const resumed = w.status().offset;
  let tapError: unknown;
  const tap = isLayerType(desc.mediaType) ? o.unpack?.begin(desc, { signal: o.signal }) : undefined;
  tap?.done.catch((e: unknown) => {
    tapError ??= e;
  });
  try {
    if (resumed < desc.size) {
      let bytes = resumed;
      const count = (n: number): void => {
        bytes += n;
        o.onProgress?.(bytes);
      };
      const src = await open(resumed);
      const signal = o.signal ?? new AbortController().signal;
      if (tap === undefined) {
        await pipeline(src, (s: AsyncIterable<Buffer>) => countChunks(s, count), w.stream, { signal });
      } else {
        // The extractor needs the blob from its first byte: a resumed prefix is read back first.
        if (resumed > 0) {
          const { data } = ingestPaths(store, ref);
          await writeSide(tap.input, createReadStream(data, { highWaterMark: 1 << 20, end: resumed - 1 }));
        }
        await pipeline(
          src,
          (s: AsyncIterable<Buffer>) => countChunks(s, count),
          // A failed extraction lets the blob flow on: a corrupt blob is then reported as one.
          sideTap(tap.input, () => tapError, { stop: false }),
          w.stream,
          { signal },
        );
      }
    }
    if (tap !== undefined && resumed >= desc.size) {
      await writeSide(tap.input, createReadStream(ingestPaths(store, ref).data, { highWaterMark: 1 << 20 }));
      tap.input.end();
    }
    // A failed extraction of a blob that is itself corrupt is reported as the corrupt blob.
    if (
      tap !== undefined &&
      (await tap.done.then(
        () => false,
        () => true,
      ))
    )
      await (w as LocalWriter).check();
    const unpacked = await tap?.done;
    await w.commit();
    if (unpacked !== undefined) o.unpack!.add(desc.digest, unpacked);
    return { how: "written", resumed };
  } catch (e) {
    tap?.input.destroy();
    const extracted = await tap?.done.then(
      (u) => u,
      (err: unknown) => {
        tapError ??= err;
        return undefined;
      },
    );
    if (extracted !== undefined) await discardSnapshot(extracted.prepared);
    // Keep what a ranged source can resume (a failed extraction discards the blob too); nothing
    // written is nothing worth keeping, and on a full disk a kept partial would leave the disk full.
    const held = w.status().offset;
    const full = isNoSpace(e) || isNoSpace(tapError) || isNoSpace(o.signal?.reason);
    if (o.ranged === true && held > 0 && !full && tapError === undefined) await w.close();
    else {
      // On a full disk, what the file holds (a short write included) is what dropping it frees.
      const onDisk = full
        ? await stat(ingestPaths(store, ref).data).then(
            (s) => s.size,
            () => 0,
          )
        : 0;
      await w.abort();
      if (onDisk > 0) o.onDropped?.(onDisk);
    }
    throw tapError !== undefined &&
      !isRktError(e, ErrorCode.DigestMismatch) &&
      !isRktError(e, ErrorCode.SizeMismatch)
      ? tapError
      : e;
  }
}

async function runLimited<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrowing what a worker threw, as is
  if (failure !== undefined) throw failure;
}

/**
 * Records an OCI or Docker schema2 image: parses the manifest (an index is refused: select a
 * platform first), writes the manifest, config and every layer through the content store
 * (skipping present blobs; waiting on a blob another process is writing), checks each digest and
 * size, parses the config, and only when everything is durable records the image, its blobs,
 * layer diffIDs, `name:tag` ref and remote in one transaction. The image ID is the manifest
 * digest. Errors name `what`: RKT_INVALID_MANIFEST, RKT_UNSUPPORTED_MEDIA_TYPE, RKT_DIGEST_MISMATCH,
 * RKT_SIZE_MISMATCH, RKT_NOT_FOUND (source lacks a blob), RKT_IO. Blobs written before a failure
 * stay as unreferenced content that GC removes (they may be shared with a retry).
 */
export async function importOciImage(store: LocalStore, o: ImportOciOptions): Promise<ImportResult> {
  const digest = digestOf(o.rawManifest);
  const what = o.what ?? digest;
  let lease: string | undefined;
  let treeLock: LockHandle | undefined;
  try {
    const manifest = parseManifestOrThrow(o.rawManifest, o.mediaType, `${what}: manifest`).value;
    const manifestType = manifest.mediaType ?? MediaType.OciManifest;
    lease = store.createLease({ labels: { purpose: `import ${what}` } });
    const l = lease;
    const signal = o.signal;
    const raw = Buffer.from(o.rawManifest);
    await ingestBlob(
      store,
      { mediaType: manifestType, digest, size: raw.length },
      (start) => Promise.resolve(Readable.from([raw.subarray(start)], { objectMode: false })),
      { lease: l, ranged: true, signal },
    );
    const blobFrom = o.source.blobFrom?.bind(o.source);
    const fromSource = (d: Descriptor) => (start: number) =>
      start > 0 && blobFrom !== undefined ? blobFrom(d, start, { signal }) : o.source.blob(d, { signal });
    const ranged = blobFrom !== undefined;
    await ingestBlob(store, manifest.config, fromSource(manifest.config), { lease: l, ranged, signal });
    let config: ImageConfig | undefined;
    if (isConfigType(manifest.config.mediaType)) {
      if (manifest.config.size > configCap) {
        throw new RktError(
          ErrorCode.TooLarge,
          `config ${manifest.config.digest} is ${manifest.config.size} bytes`,
        );
      }
      const bytes = await buffer(await store.open(manifest.config.digest));
      config = parseImageConfigOrThrow(bytes, `config ${manifest.config.digest}`).value;
      if (config.rootfs.diff_ids.length !== manifest.layers.length) {
        throw new RktError(
          ErrorCode.InvalidManifest,
          `config ${manifest.config.digest}: rootfs.diff_ids has ${config.rootfs.diff_ids.length} entries for ${manifest.layers.length} layers`,
        );
      }
    }
    await runLimited(manifest.layers, o.concurrency ?? 3, (d) =>
      ingestBlob(store, d, fromSource(d), { lease: l, ranged, signal, unpack: o.unpack }).then(
        () => undefined,
      ),
    );
    if (o.render === true && config !== undefined && manifest.layers.length > 0) {
      // Snapshots become visible before the tree that names them: the tree lock, taken first,
      // keeps GC from collecting them in between (and serialises renders of this tree).
      treeLock = await lockTree(store, ociTreeId(config.rootfs.diff_ids), signal);
      await publishLayers(store, manifest.layers, config.rootfs.diff_ids, o.unpack, signal);
    }
    const all: { d: Descriptor; role: "manifest" | "config" | "layer"; pos: number }[] = [
      { d: { mediaType: manifestType, digest, size: raw.length }, role: "manifest", pos: 0 },
      { d: manifest.config, role: "config", pos: 0 },
      ...manifest.layers.map((d, pos) => ({ d, role: "layer" as const, pos })),
    ];
    // Every blob's data is durable and leased, its name renamed into place: one fsync of the
    // directory makes the names durable before the rows that name them. Stat them for the rows
    // (the file is the truth).
    await fsyncDir(join(store.paths.blobs, "sha256"));
    const sizes = new Map<string, number>();
    for (const b of all) sizes.set(b.d.digest, (await stat(store.blobFile(b.d.digest))).size);
    const size = [...sizes.values()].reduce((a, b) => a + b, 0);
    const now = Date.now();
    const labels: Record<string, string> = {};
    if (o.tag !== undefined) labels["version"] = o.tag;
    if (config?.os !== undefined) labels["os"] = config.os;
    if (config?.architecture !== undefined) labels["arch"] = config.architecture;
    const db = indexDb(store);
    db.transaction(() => {
      // Leased blobs cannot have been swept; check anyway so no row can ever name a missing file.
      for (const b of all) {
        if (!existsSync(store.blobFile(b.d.digest))) {
          throw new RktError(ErrorCode.Internal, `blob ${b.d.digest} vanished before the image was recorded`);
        }
      }
      const blobRow = db.prepare(
        "INSERT OR IGNORE INTO blobs (digest, size, media_type, created) VALUES (?, ?, ?, ?)",
      );
      for (const b of all) blobRow.run(b.d.digest, sizes.get(b.d.digest), b.d.mediaType, now);
      db.prepare(
        `INSERT INTO images (id, kind, name, labels, manifest_digest, config_digest, manifest, size, import_time, last_used, latest)
         VALUES (?, 'oci', ?, ?, ?, ?, NULL, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = CASE WHEN excluded.name = '' THEN images.name ELSE excluded.name END,
           labels = excluded.labels, import_time = excluded.import_time, last_used = excluded.last_used,
           latest = excluded.latest`,
      ).run(
        digest,
        o.name ?? "",
        JSON.stringify(labels),
        digest,
        manifest.config.digest,
        size,
        now,
        now,
        o.latest === true ? 1 : 0,
      );
      const link = db.prepare(
        "INSERT OR IGNORE INTO image_blobs (image_id, digest, role, position) VALUES (?, ?, ?, ?)",
      );
      for (const b of all) link.run(digest, b.d.digest, b.role, b.pos);
      if (config !== undefined) {
        const layer = db.prepare("INSERT OR REPLACE INTO layers (digest, diff_id) VALUES (?, ?)");
        manifest.layers.forEach((d, i) => layer.run(d.digest, config.rootfs.diff_ids[i]));
      }
      if (o.name !== undefined && o.name !== "") {
        db.prepare("INSERT OR REPLACE INTO refs (name, tag, image_id, updated) VALUES (?, ?, ?, ?)").run(
          o.name,
          o.tag ?? "latest",
          digest,
          now,
        );
      }
      if (o.remote !== undefined) recordRemote(store, o.remote, digest, digest, now);
    }).immediate();
    store.recorded(all.map((b) => b.d.digest));
    if (treeLock !== undefined) await renderLocked(store, digest, { signal });
    return { id: digest, kind: "oci", name: o.name ?? "", size, cached: false };
  } catch (e) {
    if (isRktError(e))
      throw e.message.startsWith(what) ? e : new RktError(e.code, `${what}: ${e.message}`, { cause: e });
    throw new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    treeLock?.release();
    if (lease !== undefined) store.deleteLease(lease);
  }
}

/**
 * Makes the snapshot of every layer exist: the ones unpacked on the way in (their diffID checked
 * against the config: a mismatch is RKT_DIGEST_MISMATCH and nothing is published), the others
 * extracted from their stored blobs (two at a time), all published behind one syncfs.
 */
async function publishLayers(
  store: LocalStore,
  layers: readonly Descriptor[],
  diffIds: readonly Digest[],
  unpack: LayerUnpack | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const dir = store.paths.layers;
  const ready: { key: string; prepared: PreparedSnapshot }[] = [];
  const missing: { d: Descriptor; diffId: Digest; key: string }[] = [];
  const keys = new Set<string>();
  try {
    for (const [i, d] of layers.entries()) {
      const diffId = diffIds[i]!;
      const key = layerSnapshotKey(diffId);
      const u = unpack?.take(d.digest);
      if (u !== undefined && u.diffId !== diffId) {
        await discardSnapshot(u.prepared);
        throw new DigestMismatchError(
          `layer ${d.digest}: diffID`,
          diffId,
          u.diffId,
          u.prepared.fill.uncompressedSize,
        );
      }
      if (keys.has(key) || (await getSnapshot(dir, key)) !== undefined) {
        if (u !== undefined) await discardSnapshot(u.prepared);
        continue;
      }
      keys.add(key);
      if (u !== undefined) ready.push({ key, prepared: u.prepared });
      else missing.push({ d, diffId, key });
    }
    await runLimited(missing, 2, async (m) => {
      const prepared = await prepareExtracted(dir, () => store.open(m.d.digest, { signal }), {
        what: `layer ${m.d.digest}`,
        diffId: m.diffId,
        signal,
      });
      ready.push({ key: m.key, prepared });
    });
  } catch (e) {
    for (const r of ready) await discardSnapshot(r.prepared);
    throw e;
  }
  await publishSnapshots(dir, ready);
}

/** The layer digest ↔ diffID pairs the store knows (for the tree store and docker2aci). */
export function diffIdOf(store: LocalStore, layer: Digest): Digest | undefined {
  const r = indexDb(store).prepare("SELECT diff_id FROM layers WHERE digest = ?").get(layer) as
    { diff_id: Digest } | undefined;
  return r?.diff_id;
}
