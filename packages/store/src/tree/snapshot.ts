// Layer snapshots: `cas/layers/<key>/` holds `fs/` (the extracted layer, an overlay lowerdir) and
// `snapshot.json` (the completion marker, written last). A snapshot is built in
// `cas/layers/.tmp-<pid>-<start>-<random>/` and renamed into place only when complete, so a crash
// leaves a tmp dir (removed by removeStaleSnapshotTemps once its owner is dead), never a
// complete-looking snapshot. Two processes extracting the same layer build in distinct tmp dirs;
// the first rename wins and the loser discards its copy.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream";
import { ErrorCode, RktError, byteCounter, type BlobProgress, type Digest } from "@rkt/oci";
import { fsyncDir } from "../internal/fs-util.js";
import { isAlive, ownedTempName } from "../internal/proc.js";
import { extractLayer, type ExtractLayerOptions, type ExtractLayerResult } from "./extract.js";
import { treeHash } from "./hash.js";
import { readXattrsTree, runTool } from "./tools.js";

/** The completion marker of a snapshot. */
export interface SnapshotInfo {
  key: string;
  format: "oci" | "aci" | "flat" | "derived";
  diffId?: string | undefined;
  entries: number;
  uncompressedSize: number;
  /** Whiteouts and opaque dirs in overlay form; such a snapshot must not be the bottom lowerdir. */
  whiteouts?: number | undefined;
  /** The tree hash of `fs/` when the snapshot was made (see treeHash). */
  hash?: string | undefined;
  /** How `hash` was computed (see ExtractLayerResult.treeHashFrom); absent: walked. */
  hashFrom?: "stream" | "reordered" | "walk" | undefined;
  /** Directories the layer did not name (created 0755 as parents). */
  implicitDirs?: string[] | undefined;
  created: string;
  skipped: string[];
}

/** A complete snapshot on disk. */
export interface Snapshot {
  key: string;
  /** The directory to use as an overlay lowerdir (or to copy from). */
  fs: string;
  info: SnapshotInfo;
  /** True when this call extracted it; false when an existing snapshot was reused. */
  created: boolean;
}

const marker = "snapshot.json";
const tmpPrefix = ".tmp-";

/** The snapshot key of an OCI layer: the hex of its diffID. */
export function layerSnapshotKey(diffId: Digest): string {
  return diffId.slice(diffId.indexOf(":") + 1);
}

/** The directory of snapshot `key` under `layersDir`. */
export function snapshotDir(layersDir: string, key: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(key)) {
    throw new RktError(ErrorCode.InvalidArgument, `snapshot key ${JSON.stringify(key)} is not a safe name`);
  }
  return join(layersDir, key);
}

/** The complete snapshot `key`, or undefined (absent or incomplete). */
export async function getSnapshot(layersDir: string, key: string): Promise<Snapshot | undefined> {
  const dir = snapshotDir(layersDir, key);
  try {
    const info = JSON.parse(await readFile(join(dir, marker), "utf8")) as SnapshotInfo;
    return { key, fs: join(dir, "fs"), info, created: false };
  } catch {
    return undefined;
  }
}

/** What a snapshot's `fill` reports (its tree hash when it computed one while writing). */
export type SnapshotFill = Omit<SnapshotInfo, "key" | "created">;

/**
 * A snapshot built in its temp dir under `layersDir` and not yet visible: {@link publishSnapshots}
 * makes it durable and renames it into place; {@link discardSnapshot} removes it.
 */
export interface PreparedSnapshot {
  /** The temp dir (`fs/` inside it holds the tree). */
  readonly tmp: string;
  readonly fill: SnapshotFill;
}

// Whether a fresh directory under `layersDir` carries xattrs of its own (an inherited default
// ACL, a security label): the stream hash cannot know those, so snapshots there are walked.
const plainDirs = new Map<string, Promise<boolean>>();
function plainDir(layersDir: string, sample: string): Promise<boolean> {
  let p = plainDirs.get(layersDir);
  if (p === undefined) {
    p = readXattrsTree(sample, `snapshot ${sample}`).then(
      (m) => [...m.values()].every((l) => l.length === 0),
      () => false,
    );
    plainDirs.set(layersDir, p);
  }
  return p;
}

/**
 * Builds a snapshot with `fill(fsDir)` in a temp dir of `layersDir` (owned by this process: GC
 * removes it once the process is dead). The tree hash is `fill`'s own when it reports one (see
 * extractLayer's `treeHash`), else `fs/` is walked. `streamHash` tells `fill` whether a hash
 * computed from what it writes can be trusted here. A failure removes the temp dir and rethrows.
 */
export async function prepareSnapshot(
  layersDir: string,
  fill: (fsDir: string, o: { streamHash: boolean }) => Promise<SnapshotFill>,
): Promise<PreparedSnapshot> {
  await mkdir(layersDir, { recursive: true });
  const tmp = join(layersDir, `${tmpPrefix}${ownedTempName(randomBytes(6).toString("hex"))}`);
  await mkdir(join(tmp, "fs"), { recursive: true, mode: 0o755 });
  try {
    const partial = await fill(join(tmp, "fs"), { streamHash: await plainDir(layersDir, join(tmp, "fs")) });
    const hash = partial.hash ?? (await treeHash(join(tmp, "fs")));
    if (process.env["RKT_CHECK_STREAM_HASH"] && partial.hash !== undefined) {
      const walked = await treeHash(join(tmp, "fs"));
      if (walked !== hash) throw new Error(`STREAM HASH MISMATCH ${tmp}: ${hash} vs ${walked}`);
    }
    return { tmp, fill: { ...partial, hash } };
  } catch (e) {
    await discardSnapshot({ tmp });
    throw e;
  }
}

/** Removes a prepared snapshot that will not be published. */
export async function discardSnapshot(p: Pick<PreparedSnapshot, "tmp">): Promise<void> {
  await rm(p.tmp, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Makes prepared snapshots visible under their keys, with one durability barrier for all of them:
 * each gets its marker, then (with `durable`, the default) one `sync -f` (syncfs) flushes every
 * file, then each is renamed into place (the first rename of a key wins: a complete snapshot
 * already there is kept and ours discarded) and the layers dir is fsynced. Returns the snapshots
 * in input order. On failure every one not yet renamed is discarded.
 */
export async function publishSnapshots(
  layersDir: string,
  list: readonly { key: string; prepared: PreparedSnapshot }[],
  o: { durable?: boolean | undefined } = {},
): Promise<Snapshot[]> {
  const out: Snapshot[] = [];
  let done = 0;
  try {
    const infos = list.map(({ key, prepared }): SnapshotInfo => {
      snapshotDir(layersDir, key); // refuse an unsafe key before anything moves
      return { key, created: new Date().toISOString(), ...prepared.fill };
    });
    for (const [i, { prepared }] of list.entries())
      await writeFile(join(prepared.tmp, marker), JSON.stringify(infos[i]));
    if (o.durable !== false && list.length > 0)
      await runTool("sync", ["-f", layersDir], undefined, `snapshots in ${layersDir}`);
    for (const [i, { key, prepared }] of list.entries()) {
      out.push(await renameSnapshot(layersDir, key, prepared.tmp, infos[i]!));
      done = i + 1;
    }
    if (o.durable !== false && list.length > 0) await fsyncDir(layersDir);
    return out;
  } catch (e) {
    for (const { prepared } of list.slice(done)) await discardSnapshot(prepared);
    throw e;
  }
}

async function renameSnapshot(
  layersDir: string,
  key: string,
  tmp: string,
  info: SnapshotInfo,
): Promise<Snapshot> {
  const final = snapshotDir(layersDir, key);
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(tmp, final);
      return { key, fs: join(final, "fs"), info, created: true };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
      const won = await getSnapshot(layersDir, key);
      if (won !== undefined) {
        // Someone else finished first: theirs is as good as ours.
        await rm(tmp, { recursive: true, force: true });
        return won;
      }
      if (attempt > 0) throw e;
      // An incomplete leftover under the final name (this code only ever renames complete
      // snapshots, so it is damage): move it aside atomically, never rm it in place, since a
      // racing process may be renaming a complete one there right now.
      const aside = join(
        layersDir,
        `${tmpPrefix}${ownedTempName(`stale-${randomBytes(6).toString("hex")}`)}`,
      );
      await rename(final, aside).catch(() => undefined);
      await rm(aside, { recursive: true, force: true });
    }
  }
}

/**
 * Builds snapshot `key` with `fill(fsDir)` unless a complete one exists. Atomic: visible only
 * when complete. With `durable` (default true) the tree is synced (`sync -f`, i.e. syncfs) before
 * it is renamed into place. A failure removes the tmp dir and rethrows.
 */
export async function buildSnapshot(
  layersDir: string,
  key: string,
  fill: (fsDir: string, o: { streamHash: boolean }) => Promise<SnapshotFill>,
  o: { durable?: boolean | undefined } = {},
): Promise<Snapshot> {
  snapshotDir(layersDir, key);
  const existing = await getSnapshot(layersDir, key);
  if (existing !== undefined) return existing;
  const prepared = await prepareSnapshot(layersDir, fill);
  return (await publishSnapshots(layersDir, [{ key, prepared }], o))[0]!;
}

/** Options of {@link extractSnapshot}. */
export interface ExtractSnapshotOptions extends Omit<ExtractLayerOptions, "what"> {
  what?: string | undefined;
  durable?: boolean | undefined;
  /** Bytes of the (compressed) input read so far; not called when the snapshot exists. */
  onBytes?: ((n: number) => void) | undefined;
}

/** Extracts `src` into a prepared snapshot (verified; tree hash from the stream where it can). */
export async function prepareExtracted(
  layersDir: string,
  open: () => Promise<Readable>,
  o: ExtractSnapshotOptions & { what: string },
): Promise<PreparedSnapshot> {
  return prepareSnapshot(layersDir, async (fsDir, { streamHash }) => {
    const src = counted(await open(), o.onBytes);
    const r: ExtractLayerResult = await extractLayer(src, fsDir, { ...o, treeHash: streamHash });
    if (r.manifest !== undefined) await writeFile(join(fsDir, "..", "manifest"), r.manifest);
    return {
      format: o.format ?? "oci",
      diffId: r.diffId,
      entries: r.entries,
      whiteouts: r.whiteouts,
      implicitDirs: r.implicitDirs,
      uncompressedSize: r.uncompressedSize,
      skipped: r.skipped,
      hash: r.treeHash,
      hashFrom: r.treeHashFrom,
    };
  });
}

/**
 * Extracts a layer (or an ACI) into snapshot `key` once: an existing complete snapshot is reused
 * and `open` is not called. The diffID / image ID is verified while extracting; a mismatch (or any
 * refusal) discards the snapshot.
 */
export async function extractSnapshot(
  layersDir: string,
  key: string,
  open: () => Promise<Readable>,
  o: ExtractSnapshotOptions = {},
): Promise<Snapshot> {
  const { onBytes, ...rest } = o;
  const l = {
    key,
    open: async () => counted(await open(), onBytes),
    diffId: o.diffId,
    aciImageId: o.aciImageId,
    what: o.what,
  };
  return (await extractLayers(layersDir, [l], rest))[0]!;
}

// The stream as read, counted for progress.
function counted(src: Readable, onBytes: ((n: number) => void) | undefined): Readable {
  if (onBytes === undefined) return src;
  const c = byteCounter(onBytes);
  // Errors of either end reach the other (extraction destroys its input on failure).
  pipeline(src, c, () => undefined);
  return c;
}

/** The ACI manifest saved beside an ACI snapshot. */
export async function readSnapshotManifest(layersDir: string, key: string): Promise<Buffer> {
  return readFile(join(snapshotDir(layersDir, key), "manifest"));
}

/** One layer to extract with {@link extractLayers}. */
export interface LayerSource {
  key: string;
  open: () => Promise<Readable>;
  diffId?: Digest | undefined;
  /** An ACI's image ID, verified while extracting (format `aci`). */
  aciImageId?: string | undefined;
  what?: string | undefined;
  /** The blob's digest and size, for progress events. */
  digest?: Digest | undefined;
  size?: number | undefined;
}

/**
 * Extracts layers concurrently (default 2 at a time: this machine's cores) and returns their
 * snapshots in input order; snapshots that exist are reused. Plain async concurrency: gunzip runs
 * on the libuv threadpool and the file writes too, so two layers in flight keep both cores busy
 * without worker threads (measured: see the README). All new snapshots are published together,
 * behind one durability barrier ({@link publishSnapshots}). The first failure aborts the rest and
 * discards every snapshot prepared.
 */
export async function extractLayers(
  layersDir: string,
  layers: readonly LayerSource[],
  o: Omit<ExtractSnapshotOptions, "diffId" | "what" | "onBytes"> & {
    concurrency?: number | undefined;
    /** Each layer's compressed bytes as they are extracted; an existing snapshot is done at once. */
    onProgress?: ((p: BlobProgress) => void) | undefined;
  } = {},
): Promise<Snapshot[]> {
  const out: (Snapshot | undefined)[] = new Array<Snapshot | undefined>(layers.length);
  const prepared: { i: number; key: string; prepared: PreparedSnapshot }[] = [];
  const ac = new AbortController();
  const signal = o.signal === undefined ? ac.signal : AbortSignal.any([o.signal, ac.signal]);
  let next = 0;
  let first: { e: unknown } | undefined; // the root cause, not the aborts it triggered
  const worker = async (): Promise<void> => {
    while (next < layers.length && first === undefined) {
      const i = next++;
      const l = layers[i]!;
      const report =
        o.onProgress === undefined || l.digest === undefined || l.size === undefined
          ? undefined
          : { on: o.onProgress, digest: l.digest, total: l.size };
      try {
        snapshotDir(layersDir, l.key);
        const existing = await getSnapshot(layersDir, l.key);
        if (existing !== undefined) {
          out[i] = existing;
          report?.on({ digest: report.digest, bytes: report.total, total: report.total });
          continue;
        }
        // The same layer twice in one image is extracted once.
        if (layers.findIndex((x) => x.key === l.key) !== i) continue;
        const { concurrency: _c, durable: _d, ...rest } = o;
        const p = await prepareExtracted(layersDir, l.open, {
          ...rest,
          signal,
          diffId: l.diffId,
          aciImageId: l.aciImageId,
          what: l.what ?? `layer ${l.key}`,
          onBytes: report && ((n) => report.on({ digest: report.digest, bytes: n, total: report.total })),
        });
        prepared.push({ i, key: l.key, prepared: p });
        report?.on({ digest: report.digest, bytes: report.total, total: report.total });
      } catch (e) {
        first ??= { e };
        ac.abort();
        throw e;
      }
    }
  };
  const n = Math.max(1, Math.min(o.concurrency ?? 2, layers.length));
  await Promise.allSettled(Array.from({ length: n }, worker));
  if (first !== undefined) {
    for (const p of prepared) await discardSnapshot(p.prepared);
    throw first.e;
  }
  const published = await publishSnapshots(layersDir, prepared, { durable: o.durable });
  for (const [j, p] of prepared.entries()) out[p.i] = published[j];
  for (const [i, l] of layers.entries()) out[i] ??= out[layers.findIndex((x) => x.key === l.key)];
  return out as Snapshot[];
}

/**
 * Removes snapshot tmp dirs whose owning process is gone (crash leftovers) and directories under
 * a snapshot name without a marker (incomplete: never produced by this code, which renames only
 * complete snapshots). Returns the names removed.
 */
export async function removeStaleSnapshotTemps(layersDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(layersDir).catch(() => [] as string[])) {
    let stale = false;
    if (name.startsWith(tmpPrefix)) {
      const m = /^(\d+)-(\d+)-/.exec(name.slice(tmpPrefix.length));
      stale = m === null || !isAlive(Number(m[1]), Number(m[2]));
    } else {
      stale = (await getSnapshot(layersDir, name).catch(() => undefined)) === undefined;
    }
    if (stale) {
      await rm(join(layersDir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** Keys of the complete snapshots under `layersDir`. */
export async function listSnapshots(layersDir: string): Promise<string[]> {
  const keys: string[] = [];
  for (const name of await readdir(layersDir).catch(() => [] as string[])) {
    if (!name.startsWith(".") && (await getSnapshot(layersDir, name)) !== undefined) keys.push(name);
  }
  return keys.sort();
}

/** Removes snapshot `key` (marker first, so a crash midway leaves an incomplete, not a damaged-but-complete, one). */
export async function removeSnapshot(layersDir: string, key: string): Promise<void> {
  const dir = snapshotDir(layersDir, key);
  await rm(join(dir, marker), { force: true });
  await rm(dir, { recursive: true, force: true });
}
