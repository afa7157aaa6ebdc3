// ACI import in one streaming pass: decompress by magic, hash the uncompressed bytes (sha512,
// the image ID) while writing them to an ingest, and read the manifest from the same bytes.
import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { PassThrough, Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
// @rkt/appc (zod schemas, decompressors) is loaded on first import only: listing, resolving and
// removing images must not pay for it (process start counts in every CLI figure).
import type * as Appc from "@rkt/appc";
import type { AciReadResult, Compression, ImageManifest } from "@rkt/appc";
import { ErrorCode, MediaType, RktError, isRktError, type BlobWriter } from "@rkt/oci";
import { aciImageId } from "./images.js";
import { ingestDir } from "./internal/paths.js";
import type { LocalStore } from "./local-store.js";
import { acquireLock, type LockHandle } from "./locks.js";
import { aciTreeId } from "./tree/aci.js";
import { discardSnapshot, publishSnapshots, type PreparedSnapshot } from "./tree/snapshot.js";
import { lockTree, renderLocked } from "./tree/store-render.js";
import { asError, sideTap, unpackTap, type UnpackTap } from "./unpack.js";
import { indexDb } from "./internal/index-db.js";

/** Where an image came from, recorded in `remotes` for cache revalidation (rkt's remote table). */
export interface RemoteInfo {
  /** The URL fetched (`https://…/x.aci`, `file:///…/x.aci`, `docker://…`). Primary key. */
  readonly url: string;
  /** ETag (or for files a size+mtime tag): a re-import with the same URL and tag reuses the stored image. */
  readonly etag?: string | undefined;
  /** Cache-Control max-age in seconds. */
  readonly maxAge?: number | undefined;
  readonly sigUrl?: string | undefined;
}

/** Options of {@link importAci}. */
export interface ImportAciOptions {
  /** Names the input in errors (a file path or URL). Default "ACI". */
  what?: string | undefined;
  /** Mark the image as fetched through the "latest" pattern (rkt: name without version). */
  latest?: boolean | undefined;
  remote?: RemoteInfo | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Called once the whole input was read and the archive validated, before anything is
   * committed (signature verification). Throwing refuses the image: the ingest is discarded,
   * nothing becomes visible, and the error reaches the caller unchanged.
   */
  beforeCommit?: ((info: BeforeCommitInfo) => Promise<void>) | undefined;
  /**
   * Render the image in the same pass: the decompressed bytes are also extracted into the
   * image's snapshot while they are hashed and stored; after the commit the snapshot is
   * published and, for an image without dependencies, its tree recorded (one with dependencies
   * gets its tree when rendered, once they are stored). A failed extraction fails the import.
   */
  render?: boolean | undefined;
}

/** What {@link ImportAciOptions.beforeCommit} gets to decide on an image before it is stored. */
export interface BeforeCommitInfo {
  readonly manifest: ImageManifest;
  /** The manifest bytes exactly as in the archive. */
  readonly rawManifest: Uint8Array;
  /** How the input was compressed ("none": the ingest holds the input's exact bytes). */
  readonly compression: Compression;
  /** Uncompressed size in bytes. */
  readonly size: number;
  /** Re-reads the ingested (uncompressed) archive from its first byte; the caller consumes or destroys it. */
  open(): Promise<Readable>;
}

/** The outcome of an import. */
export interface ImportResult {
  /** The image ID (`sha512-<64 hex>` or `sha256:<hex>`). */
  readonly id: string;
  readonly kind: "aci" | "oci";
  readonly name: string;
  /** Stored bytes. */
  readonly size: number;
  /** True when nothing was written because the remote's cached image was still current. */
  readonly cached: boolean;
}

const manifestCap = 16 << 20;

// Reads the first bytes to pick a decompressor; the sniffed bytes are replayed.
async function sniff(
  appc: typeof Appc,
  src: Readable,
): Promise<{ compression: Compression; rest: Readable }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let have = 0;
  let done = false;
  const next = async (): Promise<IteratorResult<Buffer>> => {
    try {
      return await it.next();
    } catch (e) {
      throw isRktError(e) ? e : new StageError("input", e);
    }
  };
  while (have < appc.compressionMagicLength) {
    const r = await next();
    if (r.done === true) {
      done = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    head.push(chunk);
    have += chunk.length;
  }
  const first = Buffer.concat(head);
  async function* replay(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    if (done) return;
    for (;;) {
      const r = await next();
      if (r.done === true) return;
      yield r.value;
    }
  }
  return { compression: appc.detectCompression(first), rest: Readable.from(replay(), { objectMode: false }) };
}

class StageError extends Error {
  readonly stage: "input" | "decompress" | "tar";
  constructor(stage: "input" | "decompress" | "tar", cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.stage = stage;
  }
}

// Passes every byte on unchanged while feeding it (with backpressure) to @rkt/appc's validating
// ACI reader, which checks the layout (manifest, rootfs, entry types, hard links) and parses the
// manifest from the same pass.
function aciTap(appc: typeof Appc): { tap: Transform; result: () => AciReadResult | undefined } {
  const inner = new PassThrough({ highWaterMark: 1 << 20 });
  let result: AciReadResult | undefined;
  let failed: Error | undefined;
  let waiting: ((e: Error | undefined) => void) | undefined;
  const fail = (e: unknown): void => {
    failed ??= isRktError(e) ? e : new StageError("tar", e);
    const w = waiting;
    waiting = undefined;
    w?.(failed);
  };
  const reading = appc.readAci(inner, undefined, { maxManifestSize: manifestCap }).then(
    (r) => {
      result = r;
    },
    (e: unknown) => fail(e),
  );
  const tap = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (failed !== undefined) return cb(failed);
      if (inner.write(chunk)) return cb(null, chunk);
      waiting = (e) => cb(e ?? null, e === undefined ? chunk : undefined);
      inner.once("drain", () => {
        const w = waiting;
        waiting = undefined;
        w?.(undefined);
      });
    },
    flush(cb: TransformCallback) {
      if (failed !== undefined) return cb(failed);
      inner.end();
      void reading.then(() => cb(failed ?? null));
    },
  });
  return { tap, result: () => result };
}

function classify(e: unknown, what: string, compression: Compression | undefined): RktError {
  if (e instanceof StageError) {
    if (e.stage === "input")
      return new RktError(ErrorCode.Io, `${what}: cannot read: ${e.message}`, { cause: e.cause });
    if (e.stage === "decompress") {
      return new RktError(
        ErrorCode.InvalidArchive,
        `${what}: corrupt or truncated ${compression === undefined || compression === "none" ? "" : `${compression} `}data: ${e.message}`,
        {
          cause: e.cause,
        },
      );
    }
    return new RktError(ErrorCode.InvalidArchive, `${what}: not a valid ACI tar archive: ${e.message}`, {
      cause: e.cause,
    });
  }
  if (isRktError(e) && e.message.startsWith("ACI archive: ")) {
    return new RktError(e.code, `${what}: ${e.message.slice("ACI archive: ".length)}`, { cause: e });
  }
  if (isRktError(e)) {
    return e.message.startsWith(what) ? e : new RktError(e.code, `${what}: ${e.message}`, { cause: e });
  }
  const name = (e as { name?: unknown } | null)?.name;
  if (name === "AbortError") return new RktError(ErrorCode.Aborted, `${what}: aborted`, { cause: e });
  return new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/**
 * Imports an ACI from `src` (gzip, or a plain tar; decompressed by magic), streaming with bounded
 * memory: the uncompressed bytes are hashed (sha512: the image ID) and written to an ingest while
 * the manifest is read and then validated. Commit follows, then one transaction records the
 * image. Re-importing an image refreshes its import time, last use and latest flag (rkt).
 * With `remote`, concurrent imports of one URL serialise and a current cached copy (same ETag) is
 * reused. Errors (one line naming `what`): RKT_INVALID_ARCHIVE (corrupt, truncated, not a tar, no
 * manifest), RKT_INVALID_MANIFEST, RKT_UNSUPPORTED_MEDIA_TYPE (compression), RKT_IO (disk full,
 * read-only store), RKT_ABORTED. Nothing is left behind by a failed import.
 */
export async function importAci(
  store: LocalStore,
  src: Readable,
  o: ImportAciOptions = {},
): Promise<ImportResult> {
  const what = o.what ?? "ACI";
  let w: BlobWriter | undefined;
  let compression: Compression | undefined;
  let lease: string | undefined;
  let decompressError: unknown;
  let remoteLock: LockHandle | undefined;
  let hookError: { e: unknown } | undefined;
  let unpack: UnpackTap | undefined;
  let unpackError: unknown;
  try {
    lease = store.createLease({ labels: { purpose: `import ${what}` } });
    if (o.remote !== undefined) {
      // Held until the rows are recorded, so a concurrent import of the same URL waits and then
      // finds the image (the work is done once); a killed holder's lock is taken over.
      remoteLock = await acquireLock(indexDb(store), `remote:${o.remote.url}`, {
        wait: true,
        signal: o.signal,
        what: `import of ${o.remote.url}`,
      });
    }
    // The uncompressed stream cannot be resumed from an offset, so each import has its own ingest.
    const ref = `aci-${randomUUID()}`;
    w = await store.writer({
      ref,
      algorithm: "sha512",
      wait: true,
      fresh: true,
      lease,
      mediaType: MediaType.AppcAci,
      signal: o.signal,
    });
    if (o.remote?.etag !== undefined) {
      const hit = cachedRemote(store, o.remote);
      if (hit !== undefined) {
        await w.abort();
        w = undefined;
        src.destroy();
        return hit;
      }
    }
    const appc = await import("@rkt/appc");
    const sniffed = await sniff(appc, src);
    compression = sniffed.compression;
    // Larger gunzip steps: fewer threadpool round trips (see extract.ts).
    const dec = appc.decompressor(compression, { chunkSize: 256 << 10 });
    dec.on("error", (e: unknown) => {
      decompressError ??= e;
    });
    const { tap, result } = aciTap(appc);
    if (o.render === true) unpack = unpackTap(store.paths.layers, what, "aci", o.signal);
    const u = unpack;
    u?.done.catch((e: unknown) => {
      unpackError ??= e;
    });
    try {
      const signal = o.signal ?? new AbortController().signal;
      if (u === undefined) await pipeline(sniffed.rest, dec, tap, w.stream, { signal });
      else
        await pipeline(
          sniffed.rest,
          dec,
          tap,
          sideTap(u.input, () => unpackError, { stop: true }),
          w.stream,
          { signal },
        );
    } catch (e) {
      if (unpackError !== undefined && !(e === decompressError)) throw asError(unpackError);
      throw e === decompressError && !isRktError(e) && !(e instanceof StageError)
        ? new StageError("decompress", e)
        : e;
    }
    const unpacked = await u?.done;
    const read = result();
    if (read === undefined)
      throw new RktError(ErrorCode.Internal, `${what}: archive was not read to its end`);
    const m = read.manifest;
    const bytes = read.rawManifest;
    if (o.beforeCommit !== undefined) {
      const data = join(ingestDir(store.paths, ref), "data");
      try {
        await o.beforeCommit({
          manifest: m,
          rawManifest: bytes,
          compression,
          size: w.status().offset,
          open: () => Promise.resolve(createReadStream(data, { highWaterMark: 1 << 20 })),
        });
      } catch (e) {
        hookError = { e };
        throw e;
      }
    }
    const desc = await w.commit();
    w = undefined;
    const id = aciImageId(desc.digest);
    const labels: Record<string, string> = {};
    for (const l of m.labels ?? []) labels[l.name] = l.value;
    const now = Date.now();
    const db = indexDb(store);
    db.transaction(() => {
      db.prepare(
        `INSERT INTO images (id, kind, name, labels, manifest_digest, config_digest, manifest, size, import_time, last_used, latest)
         VALUES (?, 'aci', ?, ?, ?, NULL, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, labels = excluded.labels, manifest = excluded.manifest,
           size = excluded.size, import_time = excluded.import_time, last_used = excluded.last_used, latest = excluded.latest`,
      ).run(
        id,
        m.name,
        JSON.stringify(labels),
        desc.digest,
        Buffer.from(bytes),
        desc.size,
        now,
        now,
        o.latest === true ? 1 : 0,
      );
      db.prepare(
        "INSERT OR IGNORE INTO image_blobs (image_id, digest, role, position) VALUES (?, ?, 'aci', 0)",
      ).run(id, desc.digest);
      if (o.remote !== undefined) recordRemote(store, o.remote, id, desc.digest, now);
    }).immediate();
    if (unpacked !== undefined) {
      unpack = undefined;
      await renderImported(store, id, m, unpacked.prepared, o.signal);
    }
    return { id, kind: "aci", name: m.name, size: desc.size, cached: false };
  } catch (e) {
    await w?.abort().catch(() => undefined);
    unpack?.input.destroy();
    const left = await unpack?.done.catch(() => undefined);
    if (left !== undefined) await discardSnapshot(left.prepared);
    src.destroy();
    if (hookError !== undefined && hookError.e === e) throw e;
    throw classify(e, what, compression);
  } finally {
    remoteLock?.release();
    if (lease !== undefined) store.deleteLease(lease);
  }
}

// Publishes the snapshot extracted during the import of ACI `id` and, without dependencies,
// records its tree. Under the tree lock: GC must not collect the snapshot before a tree names it.
async function renderImported(
  store: LocalStore,
  id: string,
  m: ImageManifest,
  prepared: PreparedSnapshot,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deps = (m.dependencies ?? []).length > 0;
  const lock = await lockTree(store, deps ? `pending-${id}` : aciTreeId([id]), signal);
  try {
    await publishSnapshots(store.paths.layers, [{ key: id, prepared }]);
    if (!deps) await renderLocked(store, id, { signal });
  } finally {
    lock.release();
  }
}

/**
 * Records where image `id` came from: the remote `r.url` (e.g. `docker://host/repo:tag`) and the
 * `digest` it resolved to (an index's, for a tag that names one), so the next `update` can compare.
 */
export function recordRemote(
  store: LocalStore,
  r: RemoteInfo,
  id: string,
  digest: string,
  now: number,
): void {
  indexDb(store)
    .prepare(
      `INSERT OR REPLACE INTO remotes (url, etag, max_age, download_time, manifest_digest, image_id, sig_url)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(r.url, r.etag ?? null, r.maxAge ?? null, now, digest, id, r.sigUrl ?? null);
}

// The remote's image when the URL was imported before with the same ETag and is still stored;
// refreshes its import time as a re-import would.
function cachedRemote(store: LocalStore, r: RemoteInfo): ImportResult | undefined {
  const row = indexDb(store)
    .prepare(
      `SELECT i.id, i.kind, i.name, i.size FROM remotes r JOIN images i ON i.id = r.image_id WHERE r.url = ? AND r.etag = ?`,
    )
    .get(r.url, r.etag) as { id: string; kind: "aci" | "oci"; name: string; size: number } | undefined;
  if (row === undefined) return undefined;
  const now = Date.now();
  indexDb(store)
    .prepare("UPDATE images SET import_time = ?, last_used = ? WHERE id = ?")
    .run(now, now, row.id);
  indexDb(store).prepare("UPDATE remotes SET download_time = ? WHERE url = ?").run(now, r.url);
  return { ...row, cached: true };
}

/** Information about an existing remote row. */
export interface RemoteRecord extends RemoteInfo {
  readonly imageId: string;
  readonly manifestDigest?: string | undefined;
  readonly downloadTime: number;
}

/** The remote row for `url`, or undefined. */
export function getRemote(store: LocalStore, url: string): RemoteRecord | undefined {
  const r = indexDb(store).prepare("SELECT * FROM remotes WHERE url = ?").get(url) as
    | {
        url: string;
        etag: string | null;
        max_age: number | null;
        download_time: number;
        manifest_digest: string | null;
        image_id: string;
        sig_url: string | null;
      }
    | undefined;
  if (r === undefined) return undefined;
  return {
    url: r.url,
    etag: r.etag ?? undefined,
    maxAge: r.max_age ?? undefined,
    sigUrl: r.sig_url ?? undefined,
    imageId: r.image_id,
    manifestDigest: r.manifest_digest ?? undefined,
    downloadTime: r.download_time,
  };
}

/**
 * Reads and validates the manifest of a stored ACI (fsck's rebuild path). RKT_INVALID_ARCHIVE /
 * RKT_INVALID_MANIFEST naming `what`. @internal
 */
export async function readStoredAciManifest(
  src: Readable,
  what: string,
): Promise<{ manifest: ImageManifest; raw: Uint8Array }> {
  try {
    const appc = await import("@rkt/appc");
    const r = await appc.readAciManifest(src, { maxManifestSize: manifestCap });
    return { manifest: r.manifest, raw: r.rawManifest };
  } catch (e) {
    throw classify(e, what, "none");
  }
}
