// LocalStore: the content-addressed store on the local file system, indexed by SQLite
// (containerd plugins/content/local, with cross-process locks and a crash-safe publish step).
import { randomUUID } from "node:crypto";
import {
  createReadStream,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
} from "node:fs";
import {
  access,
  chmod,
  constants,
  mkdir,
  open,
  readFile,
  readdir,
  rm,
  stat,
  truncate,
  writeFile,
} from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Writable, type Readable } from "node:stream";
import { finished } from "node:stream/promises";
import {
  DigestMismatchError,
  ErrorCode,
  RktError,
  SizeMismatchError,
  createDigester,
  digestAlgorithm,
  verifiableAlgorithm,
  isDigest,
  parseDigest,
  type Algorithm,
  type BlobInfo,
  type BlobWriter,
  type ContentStore,
  type Descriptor,
  type Digest,
  type Digester,
  type IngestStatus,
  type WriterOptions,
} from "@rkt/oci";
import { openIndex, relaxed, type IndexDb } from "./db.js";
import { acquireLock, type LockHandle } from "./locks.js";
import { errnoOf, ioError, removeQuiet } from "./internal/fs-util.js";
import { keepReserve, releaseReserve } from "./free-space.js";
import { blobPath, ingestDir, storePaths, type StorePaths } from "./internal/paths.js";
import { isAlive, selfProcess } from "./internal/proc.js";
import { registerIndexDb } from "./internal/index-db.js";

/** {@link WriterOptions} plus what only the local store understands. */
export interface LocalWriterOptions extends WriterOptions {
  /** Discard any partial data left under this ref instead of resuming it (e.g. a decompressed stream). */
  fresh?: boolean | undefined;
  /** Media type recorded in the index row of the committed blob. */
  mediaType?: string | undefined;
  /** Lease that protects the committed blob from GC until the caller records it (see {@link LocalStore.createLease}). */
  lease?: string | undefined;
  /**
   * With `lease` (which must already name the blob): commit only fsyncs the data and renames it
   * into place; the caller fsyncs the blob directory and records the blob's row with the image
   * that needs it, in the image's own transaction (one directory fsync and one index commit per
   * image instead of one of each per blob).
   */
  deferIndex?: boolean | undefined;
}

/** Options of {@link LocalStore.createLease}. */
export interface LeaseOptions {
  /** Default: a random id. */
  id?: string | undefined;
  /** Milliseconds since the epoch after which the lease no longer protects anything. */
  expiresAt?: number | undefined;
  /**
   * True (default): the lease belongs to this process and dies with it (an import in progress).
   * False: a GC root that outlives the process (a pod), until deleted or expired.
   */
  process?: boolean | undefined;
  labels?: Readonly<Record<string, string>> | undefined;
}

/** Options of {@link LocalStore.open}. */
export interface OpenOptions {
  /**
   * The caller frees space (image gc, image rm, fsck --repair): the store's reserve file is
   * released before the index opens, so a full disk does not stop the cleanup, and put back by
   * {@link LocalStore.close}. See free-space.ts.
   */
  cleanup?: boolean | undefined;
}

interface UnrecordedBlob {
  size: number;
  mediaType: string | undefined;
}

/** What a lease or GC root protects. */
export type LeaseKind = "image" | "blob" | "tree";

const octetStream = "application/octet-stream";

/**
 * The local content store rooted at `<dir>/cas` (layout in the package README). Implements
 * {@link ContentStore}; also owns the SQLite index used by the image functions of this package.
 * Open with {@link LocalStore.open}; call {@link LocalStore.close} when done. Safe to use from any
 * number of processes at once.
 */
export class LocalStore implements ContentStore {
  /** Absolute paths of the store. */
  readonly paths: StorePaths;
  // The index: internal to this package (see internal/index-db.ts); others use its functions.
  private readonly db: IndexDb;
  private readonly cleanup: boolean;
  // Process leases this process created: their rows are written without fsync (see relaxed).
  private readonly processLeases = new Set<string>();
  // Per lease: blobs committed with deferIndex whose rows nobody has written yet.
  private readonly unrecorded = new Map<
    string,
    Map<string, { size: number; mediaType: string | undefined }>
  >();

  private constructor(paths: StorePaths, db: IndexDb, cleanup: boolean) {
    this.paths = paths;
    this.db = db;
    this.cleanup = cleanup;
    registerIndexDb(this, db);
  }

  /**
   * Opens (creating and migrating if needed) the store under `dir`. RKT_IO naming the directory
   * when it cannot be created or the index cannot be opened (read-only, full disk, permissions).
   * Keeps the reserve of free space in place (released instead with `cleanup`).
   */
  static async open(dir: string, o: OpenOptions = {}): Promise<LocalStore> {
    const p = storePaths(dir);
    try {
      for (const d of [
        p.cas,
        p.blobs,
        join(p.blobs, "sha256"),
        join(p.blobs, "sha512"),
        p.ingest,
        p.layers,
        p.trees,
        p.tmp,
      ]) {
        await mkdir(d, { recursive: true });
      }
      // SQLite in WAL mode cannot open a database on a read-only file system at all (it needs the
      // -shm file); say so plainly instead of "cannot open the index database".
      await access(p.cas, constants.W_OK);
    } catch (e) {
      throw ioError(`store ${dir}`, e);
    }
    const cleanup = o.cleanup === true;
    if (cleanup) releaseReserve(p);
    else keepReserve(p);
    return new LocalStore(p, openIndex(p.db), cleanup);
  }

  /**
   * Closes the index. Writers still open are abandoned (their ingests stay resumable). A store
   * opened for a cleanup puts its reserve of free space back (when there is room for it).
   */
  close(): void {
    if (this.db.open) {
      this.db.close();
      if (this.cleanup) keepReserve(this.paths);
    }
  }

  /**
   * Removes a rendered tree's directory, its `rendered` marker first so a crash midway leaves a
   * tree the tree store treats as incomplete. @internal
   */
  async removeTreeDir(id: string): Promise<void> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) return; // never a path outside trees/
    const dir = join(this.paths.trees, id);
    await rm(join(dir, "rendered"), { force: true }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }

  /** The file of a committed blob (it may not exist). */
  blobFile(digest: Digest): string {
    return blobPath(this.paths, digest);
  }

  async info(digest: Digest): Promise<BlobInfo> {
    let st;
    try {
      st = await stat(this.blobFile(digest));
    } catch (e) {
      if (errnoOf(e) === "ENOENT") throw new RktError(ErrorCode.NotFound, `blob ${digest} not found`);
      throw ioError(`blob ${digest}`, e);
    }
    const row = this.db.prepare("SELECT media_type FROM blobs WHERE digest = ?").get(digest) as
      { media_type: string | null } | undefined;
    const labels: Record<string, string> = {};
    if (row?.media_type != null) labels["mediaType"] = row.media_type;
    return { digest, size: st.size, createdAt: st.mtime, labels };
  }

  /** True when the blob is committed (its file exists). */
  async exists(digest: Digest): Promise<boolean> {
    try {
      await stat(this.blobFile(digest));
      return true;
    } catch {
      return false;
    }
  }

  async open(
    digest: Digest,
    o?: { signal?: AbortSignal | undefined; start?: number | undefined },
  ): Promise<Readable> {
    const path = this.blobFile(digest);
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      if (errnoOf(e) === "ENOENT") throw new RktError(ErrorCode.NotFound, `blob ${digest} not found`);
      throw ioError(`blob ${digest}`, e);
    }
    const opts: { highWaterMark: number; start: number; signal?: AbortSignal } = {
      highWaterMark: 1 << 20,
      start: o?.start ?? 0,
    };
    if (o?.signal !== undefined) opts.signal = o.signal;
    // Reading through the handle we opened keeps the content even if GC unlinks the name meanwhile.
    return fh.createReadStream(opts);
  }

  async writer(o: LocalWriterOptions): Promise<BlobWriter> {
    const what = `ingest ${JSON.stringify(o.ref)}`;
    const lock = await acquireLock(this.db, `ingest:${o.ref}`, {
      wait: o.wait,
      signal: o.signal,
      what,
    });
    try {
      if (o.expected !== undefined && (await this.exists(o.expected.digest))) {
        throw new RktError(ErrorCode.AlreadyExists, `content ${o.expected.digest} already exists`);
      }
      const alg: Algorithm =
        o.expected !== undefined ? verifiableAlgorithm(o.expected.digest) : (o.algorithm ?? "sha256");
      const dir = ingestDir(this.paths, o.ref);
      const data = join(dir, "data");
      const total = o.expected?.size;
      await mkdir(dir, { recursive: true });
      let offset = 0;
      const digester = createDigester(alg);
      const prior = await readFile(join(dir, "ref"), "utf8").catch(() => undefined);
      const priorTotal = await readFile(join(dir, "total"), "utf8").catch(() => undefined);
      const resumable =
        o.fresh !== true &&
        prior === o.ref &&
        (priorTotal === undefined || total === undefined || Number(priorTotal) === total);
      if (resumable) {
        offset = await rehash(data, digester, total);
      } else {
        await rm(data, { force: true });
        await writeFile(join(dir, "ref"), o.ref);
        await writeFile(join(dir, "startedat"), new Date().toISOString());
      }
      if (total !== undefined) await writeFile(join(dir, "total"), String(total));
      else await rm(join(dir, "total"), { force: true });
      const fh = await open(data, "a");
      return new LocalWriter(this, {
        ref: o.ref,
        dir,
        data,
        fh,
        digester,
        offset,
        total,
        expected: o.expected,
        lock,
        mediaType: o.mediaType,
        lease: o.lease,
        deferIndex: o.deferIndex === true && o.lease !== undefined,
      });
    } catch (e) {
      lock.release();
      throw ioError(what, e);
    }
  }

  async delete(digest: Digest): Promise<void> {
    if (!(await this.exists(digest))) throw new RktError(ErrorCode.NotFound, `blob ${digest} not found`);
    try {
      this.db.prepare("DELETE FROM blobs WHERE digest = ?").run(digest);
    } catch (e) {
      if (errnoOf(e) === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `blob ${digest} is used by an image; remove the image instead`,
        );
      }
      throw ioError(`blob ${digest}`, e);
    }
    this.sweepBlobs([digest]);
  }

  async *walk(filter?: (i: BlobInfo) => boolean): AsyncIterable<BlobInfo> {
    for (const alg of ["sha256", "sha512"]) {
      const dir = join(this.paths.blobs, alg);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const d = `${alg}:${name}`;
        if (!isDigest(d)) continue;
        let info: BlobInfo;
        try {
          info = await this.info(d);
        } catch {
          continue; // removed meanwhile
        }
        if (filter === undefined || filter(info)) yield info;
      }
    }
  }

  /**
   * The publish step of {@link LocalWriterOptions.deferIndex}: renames the fsynced ingest data
   * into place unless the blob is there already. @internal
   */
  publishDeferred(
    data: string,
    digest: Digest,
    size: number,
    mediaType: string | undefined,
    lease: string,
  ): void {
    // No transaction needed against GC: the caller's lease names the blob, so GC's sweep (which
    // checks leases under the write lock) never removes this name. A crash before the caller's
    // directory fsync loses at most the rename: the old state.
    const target = this.blobFile(digest);
    if (!existsSync(target)) renameSync(data, target);
    let m = this.unrecorded.get(lease);
    if (m === undefined) this.unrecorded.set(lease, (m = new Map<string, UnrecordedBlob>()));
    m.set(digest, { size, mediaType });
  }

  /** Blobs committed with `deferIndex` whose rows the caller has now written. @internal */
  recorded(digests: Iterable<string>): void {
    for (const d of digests) for (const m of this.unrecorded.values()) m.delete(d);
  }

  // The rows of blobs a lease's holder committed but never recorded (a failed import): written
  // when the lease goes, so what is left is ordinary unreferenced content, as before the import.
  private recordLeftovers(lease: string): void {
    const m = this.unrecorded.get(lease);
    this.unrecorded.delete(lease);
    if (m === undefined || m.size === 0) return;
    try {
      const dirs = new Set([...m.keys()].map((d) => dirname(this.blobFile(d as Digest))));
      for (const dir of dirs) {
        const fd = openSync(dir, "r");
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      const row = this.db.prepare(
        "INSERT OR IGNORE INTO blobs (digest, size, media_type, created) VALUES (?, ?, ?, ?)",
      );
      this.db
        .transaction(() => {
          for (const [d, b] of m)
            if (existsSync(this.blobFile(d as Digest))) row.run(d, b.size, b.mediaType ?? null, Date.now());
        })
        .immediate();
    } catch {
      // Unrecorded blobs are orphans, which GC removes and fsck lists as garbage: still consistent.
    }
  }

  /**
   * The publish step of a commit, in one IMMEDIATE transaction so that GC's sweep (also under the
   * write lock) cannot interleave: if the blob is absent, rename the fsynced ingest data into
   * place and fsync the directory; then record the row (and the lease reference). A crash after
   * the rename but before the transaction commits leaves a complete blob without a row: an orphan
   * GC removes and fsck reports, never a row naming nothing. Returns true when our data was used.
   * @internal
   */
  publish(
    data: string,
    digest: Digest,
    size: number,
    mediaType: string | undefined,
    lease: string | undefined,
  ): boolean {
    const target = this.blobFile(digest);
    const run = this.db.transaction((): boolean => {
      let used = false;
      if (!existsSync(target)) {
        renameSync(data, target);
        const fd = openSync(dirname(target), "r");
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        used = true;
      }
      this.db
        .prepare("INSERT OR IGNORE INTO blobs (digest, size, media_type, created) VALUES (?, ?, ?, ?)")
        .run(digest, size, mediaType ?? null, Date.now());
      if (mediaType !== undefined) {
        this.db
          .prepare("UPDATE blobs SET media_type = ? WHERE digest = ? AND media_type IS NULL")
          .run(mediaType, digest);
      }
      if (lease !== undefined) this.leaseAddSync(lease, "blob", digest);
      return used;
    });
    return run.immediate();
  }

  /**
   * Unlinks each candidate blob that has no index row and no live lease reference, checking and
   * unlinking under the write lock so a concurrent commit cannot re-adopt a file being removed.
   * Callers delete rows first (in their own committed transaction). Returns the bytes freed.
   * @internal
   */
  sweepBlobs(candidates: Iterable<string>): { removed: string[]; bytes: number } {
    const removed: string[] = [];
    let bytes = 0;
    const list = [...candidates];
    // Liveness is read inside each transaction: a lease created after this call started (an
    // import that just decided to reuse a blob) must still protect it.
    const live = this.leaseChecker();
    const hasRow = this.db.prepare("SELECT 1 FROM blobs WHERE digest = ?");
    const leaseRefs = this.db.prepare("SELECT lease_id FROM lease_refs WHERE kind = 'blob' AND ref = ?");
    for (let i = 0; i < list.length; i += 500) {
      const batch = list.slice(i, i + 500);
      this.db
        .transaction(() => {
          for (const d of batch) {
            if (hasRow.get(d) !== undefined) continue;
            const refs = leaseRefs.all(d) as { lease_id: string }[];
            if (refs.some((r) => live(r.lease_id))) continue;
            const file = blobPath(this.paths, d);
            try {
              bytes += statSync(file).size;
              unlinkSync(file);
              removed.push(d);
            } catch {
              // already gone
            }
          }
        })
        .immediate();
    }
    return { removed, bytes };
  }

  /**
   * Creates a lease (or, with `process: false`, a GC root such as a pod). Everything referenced by
   * a live lease is kept by GC. Returns its id.
   */
  createLease(o: LeaseOptions = {}): string {
    const id = o.id ?? `lease-${randomUUID()}`;
    const me = selfProcess();
    const own = o.process !== false;
    const insert = (): void =>
      void this.db
        .prepare(
          "INSERT OR REPLACE INTO leases (id, pid, start_time, expires_at, created, labels) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .run(
          id,
          own ? me.pid : null,
          own ? me.start : null,
          o.expiresAt ?? null,
          Date.now(),
          JSON.stringify(o.labels ?? {}),
        );
    // A process lease dies with this process: it needs no fsync (a GC root does).
    if (own) {
      relaxed(this.db, insert);
      this.processLeases.add(id);
    } else insert();
    return id;
  }

  /** Adds `ref` (an image ID, blob digest or tree ID) to a lease. */
  leaseAdd(lease: string, kind: LeaseKind, ref: string): void {
    this.leaseAddSync(lease, kind, ref);
  }

  private leaseAddSync(lease: string, kind: LeaseKind, ref: string): void {
    const add = (): void =>
      void this.db
        .prepare("INSERT OR IGNORE INTO lease_refs (lease_id, kind, ref) VALUES (?, ?, ?)")
        .run(lease, kind, ref);
    if (this.processLeases.has(lease)) relaxed(this.db, add);
    else add();
  }

  /** Deletes a lease; what it protected becomes collectable. */
  deleteLease(lease: string): void {
    this.recordLeftovers(lease);
    try {
      const del = (): void => void this.db.prepare("DELETE FROM leases WHERE id = ?").run(lease);
      if (this.processLeases.delete(lease)) relaxed(this.db, del);
      else del();
    } catch {
      // A lease we cannot delete (read-only, full) dies with this process or expires.
    }
  }

  /** Ids of leases that still protect: not expired, and for process leases, the process lives. @internal */
  liveLeaseIds(now = Date.now()): Set<string> {
    const rows = this.db.prepare("SELECT id, pid, start_time, expires_at FROM leases").all() as {
      id: string;
      pid: number | null;
      start_time: number | null;
      expires_at: number | null;
    }[];
    const live = new Set<string>();
    for (const r of rows) {
      if (r.expires_at !== null && r.expires_at <= now) continue;
      if (r.pid !== null && !isAlive(r.pid, r.start_time ?? -1)) continue;
      live.add(r.id);
    }
    return live;
  }
  /**
   * A liveness test for lease ids that reads each lease row when first asked (memoised per
   * checker): use it inside a write transaction to see leases created since the caller began.
   * @internal
   */
  leaseChecker(now = Date.now()): (id: string) => boolean {
    const memo = new Map<string, boolean>();
    const get = this.db.prepare("SELECT pid, start_time, expires_at FROM leases WHERE id = ?");
    return (id) => {
      let v = memo.get(id);
      if (v === undefined) {
        const r = get.get(id) as
          { pid: number | null; start_time: number | null; expires_at: number | null } | undefined;
        v =
          r !== undefined &&
          (r.expires_at === null || r.expires_at > now) &&
          (r.pid === null || isAlive(r.pid, r.start_time ?? -1));
        memo.set(id, v);
      }
      return v;
    };
  }
}

// Re-hashes the existing prefix of an ingest so the digest covers every byte (containerd does
// the same on resume). Data longer than the expected total is discarded.
async function rehash(data: string, digester: Digester, total: number | undefined): Promise<number> {
  let size: number;
  try {
    size = (await stat(data)).size;
  } catch {
    return 0;
  }
  if (size === 0) return 0;
  if (total !== undefined && size > total) {
    await truncate(data, 0);
    return 0;
  }
  const rs = createReadStream(data, { highWaterMark: 1 << 20, end: size - 1 });
  let n = 0;
  for await (const chunk of rs as AsyncIterable<Buffer>) {
    digester.update(chunk);
    n += chunk.length;
  }
  if (n !== size) {
    await truncate(data, 0);
    return 0;
  }
  return size;
}

interface WriterState {
  ref: string;
  dir: string;
  data: string;
  fh: FileHandle;
  digester: Digester;
  offset: number;
  total: number | undefined;
  expected: Pick<Descriptor, "digest" | "size"> | undefined;
  lock: LockHandle;
  mediaType: string | undefined;
  lease: string | undefined;
  deferIndex: boolean;
}

/** The writer of {@link LocalStore.writer}. @internal */
export class LocalWriter implements BlobWriter {
  readonly stream: Writable;
  private readonly store: LocalStore;
  private readonly s: WriterState;
  private done = false;

  constructor(store: LocalStore, s: WriterState) {
    this.store = store;
    this.s = s;
    const what = `ingest ${JSON.stringify(s.ref)}`;
    // Chunks that arrive while a write is in flight are written together (writev): network-sized
    // chunks cost one syscall per megabyte, with no copy to join them.
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        this.writeChunks([chunk]).then(
          () => cb(),
          (e: unknown) => cb(ioError(what, e)),
        );
      },
      writev: (chunks, cb) => {
        this.writeChunks(chunks.map((c) => c.chunk as Buffer)).then(
          () => cb(),
          (e: unknown) => cb(ioError(what, e)),
        );
      },
    });
  }

  private async writeChunks(chunks: Buffer[]): Promise<void> {
    let total = 0;
    for (const c of chunks) total += c.length;
    // The write runs on the thread pool while this thread hashes the same bytes: the two overlap
    // instead of taking turns (nothing changes the buffers while both read them).
    const writing = writeAll(this.s.fh, chunks, total);
    writing.catch(() => undefined); // awaited below, after the hash
    for (const c of chunks) this.s.digester.update(c);
    await writing;
    this.s.offset += total;
    if (this.s.total !== undefined && this.s.offset > this.s.total) {
      throw new SizeMismatchError(`ingest ${JSON.stringify(this.s.ref)}`, this.s.total, this.s.offset);
    }
  }

  status(): IngestStatus {
    return { ref: this.s.ref, offset: this.s.offset, total: this.s.total };
  }

  private async settle(): Promise<void> {
    if (!this.stream.writableEnded) this.stream.end();
    if (!this.stream.writableFinished && !this.stream.destroyed) await finished(this.stream);
    if (this.stream.errored !== null) throw this.stream.errored;
  }

  /**
   * Checks what was written against the expected size and digest, without committing: throws
   * RKT_SIZE_MISMATCH or RKT_DIGEST_MISMATCH. The writer can then only be aborted. @internal
   */
  async check(): Promise<void> {
    const what = `ingest ${JSON.stringify(this.s.ref)}`;
    const want = this.s.expected;
    await this.settle();
    if (want === undefined) return;
    if (want.size !== this.s.offset) throw new SizeMismatchError(what, want.size, this.s.offset);
    const digest = this.s.digester.digest();
    if (digest !== want.digest) throw new DigestMismatchError(what, want.digest, digest, this.s.offset);
  }

  async commit(expected?: Pick<Descriptor, "digest" | "size">): Promise<Descriptor> {
    if (this.done)
      throw new RktError(
        ErrorCode.InvalidArgument,
        `ingest ${JSON.stringify(this.s.ref)}: writer already closed`,
      );
    this.done = true;
    const what = `ingest ${JSON.stringify(this.s.ref)}`;
    const want = expected ?? this.s.expected;
    try {
      await this.settle();
      await this.s.fh.sync();
      await this.s.fh.close();
      const size = this.s.offset;
      if (want !== undefined && want.size !== size) throw new SizeMismatchError(what, want.size, size);
      let digest = this.s.digester.digest();
      if (want !== undefined && digestAlgorithm(want.digest) !== digestAlgorithm(digest)) {
        digest = await hashFile(this.s.data, verifiableAlgorithm(want.digest));
      }
      if (want !== undefined && want.digest !== digest)
        throw new DigestMismatchError(what, want.digest, digest, size);
      await chmod(this.s.data, 0o444);
      if (this.s.deferIndex)
        this.store.publishDeferred(this.s.data, digest, size, this.s.mediaType, this.s.lease!);
      else this.store.publish(this.s.data, digest, size, this.s.mediaType, this.s.lease);
      await removeQuiet(this.s.dir);
      return { mediaType: this.s.mediaType ?? octetStream, digest, size };
    } catch (e) {
      // Wrong or unreadable content is never worth resuming.
      await this.s.fh.close().catch(() => undefined);
      await removeQuiet(this.s.dir);
      throw ioError(what, e);
    } finally {
      this.s.lock.release();
    }
  }

  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      this.stream.destroy();
      await this.s.fh.close().catch(() => undefined);
      await removeQuiet(this.s.dir);
      this.s.lock.release();
    }
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.settle().catch(() => undefined);
      await this.s.fh.sync().catch(() => undefined);
      await this.s.fh.close().catch(() => undefined);
      this.s.lock.release();
    }
  }
}

// Writes all of `chunks` (`total` bytes), retrying short writes.
async function writeAll(fh: FileHandle, chunks: Buffer[], total: number): Promise<void> {
  let rest = chunks;
  for (let left = total; left > 0;) {
    const { bytesWritten } = await fh.writev(rest);
    left -= bytesWritten;
    if (left > 0) rest = dropPrefix(rest, bytesWritten);
  }
}

// The buffers left after `n` bytes were written from the front of `bufs`.
function dropPrefix(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
  const out = bufs.slice(i);
  if (n > 0 && out.length > 0) out[0] = out[0]!.subarray(n);
  return out;
}

/** Streams a file through a hasher. @internal */
export async function hashFile(path: string, alg: Algorithm): Promise<Digest> {
  const d = createDigester(alg);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    d.update(chunk);
  }
  return parseDigest(d.digest());
}
