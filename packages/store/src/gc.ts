// Garbage collection: trees, images by last use (rkt image gc), then everything no image needs:
// blobs, ingests of dead writers, temp files, dead locks and leases.
import { readFile, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { isDigest } from "@rkt/oci";
import { removeImages } from "./images.js";
import type { LocalStore } from "./local-store.js";
import { clearDeadLocks, isLocked } from "./locks.js";
import { sweepOutsideTemps } from "./outside-temp.js";
import { isAlive } from "./internal/proc.js";
import { collectSnapshots, releaseStaleMounts } from "./tree/store-render.js";
import { indexDb } from "./internal/index-db.js";

/** Options of {@link gc}. */
export interface GcOptions {
  /** Images used within this many milliseconds are kept; also the minimum age of a stale ingest. Default 24 h (rkt). */
  gracePeriodMs?: number | undefined;
  /**
   * Ingests no live process holds are kept this long for a later resume (default: the grace
   * period). ACI ingests cannot be resumed and go at once.
   */
  ingestGracePeriodMs?: number | undefined;
  /** Only remove rendered trees. */
  treesOnly?: boolean | undefined;
  /** Only remove images (and the blobs they alone needed), not trees. */
  imagesOnly?: boolean | undefined;
  /** The current time in ms (tests). */
  now?: number | undefined;
}

/** What {@link gc} removed. */
export interface GcReport {
  readonly removedImages: string[];
  readonly removedTrees: string[];
  readonly removedBlobs: string[];
  readonly removedIngests: string[];
  /** Layer snapshots no remaining tree references (and stale snapshot temp dirs). */
  readonly removedSnapshots: string[];
  /** Temporaries beside user paths left by killed renders, extracts and exports (outside-temp.ts). */
  readonly removedTemps: string[];
  readonly freedBytes: number;
}

/** rkt's default `--grace-period`. */
export const defaultGracePeriodMs = 24 * 3600 * 1000;

/**
 * Collects garbage. Trees not referenced by a live lease or GC root are removed (rkt removes
 * every tree no pod uses). Images are considered oldest last-use first and the scan stops at the
 * first one used within the grace period (rkt); images a live lease, GC root or pod holds are
 * skipped. Then blobs no image needs and no live lease protects, ingests no live process holds
 * that are older than the grace period, temp files of dead processes (in the store, and those
 * beside user paths that killed renders, extracts and exports recorded), and dead lock/lease rows.
 */
export async function gc(store: LocalStore, o: GcOptions = {}): Promise<GcReport> {
  const now = o.now ?? Date.now();
  const grace = o.gracePeriodMs ?? defaultGracePeriodMs;
  const ingestGrace = o.ingestGracePeriodMs ?? grace;
  const db = indexDb(store);
  const removedTemps = await sweepOutsideTemps(db);
  clearDeadLocks(db);
  // Overlay mounts handed out by `image render` whose target was unmounted stop protecting their tree.
  await releaseStaleMounts(store);
  const live = store.liveLeaseIds(now);
  const dead = (db.prepare("SELECT id FROM leases").all() as { id: string }[]).filter((l) => !live.has(l.id));
  if (dead.length > 0) {
    const del = db.prepare("DELETE FROM leases WHERE id = ?");
    db.transaction(() => dead.forEach((l) => del.run(l.id))).immediate();
  }
  const leased = (kind: string): Set<string> =>
    new Set(
      (
        db.prepare("SELECT lease_id, ref FROM lease_refs WHERE kind = ?").all(kind) as {
          lease_id: string;
          ref: string;
        }[]
      )
        .filter((r) => live.has(r.lease_id))
        .map((r) => r.ref),
    );
  let freed = 0;
  const removedTrees: string[] = [];
  const removedImages: string[] = [];
  if (o.imagesOnly !== true) {
    const keepTrees = leased("tree");
    const rows = db.prepare("SELECT id, size FROM trees").all() as { id: string; size: number }[];
    const gone = rows.filter((t) => !keepTrees.has(t.id) && !isLocked(db, `tree:${t.id}`));
    const del = db.prepare("DELETE FROM trees WHERE id = ?");
    db.transaction(() => gone.forEach((t) => del.run(t.id))).immediate();
    for (const t of gone) {
      await store.removeTreeDir(t.id);
      removedTrees.push(t.id);
      freed += t.size;
    }
    // Temp directories of renders whose process died, and tree directories without a `trees`
    // row (rendered by a library caller that never recorded them) that no lease or render holds.
    const rowed = new Set((db.prepare("SELECT id FROM trees").all() as { id: string }[]).map((r) => r.id));
    for (const name of await readdir(store.paths.trees).catch(() => [] as string[])) {
      const m = /^\.tmp-(\d+)-(\d+)-/.exec(name);
      if (m !== null && !isAlive(Number(m[1]), Number(m[2]))) {
        await rm(join(store.paths.trees, name), { recursive: true, force: true }).catch(() => undefined);
      } else if (m === null && !name.startsWith(".") && !rowed.has(name) && !keepTrees.has(name)) {
        if (isLocked(db, `tree:${name}`)) continue;
        await store.removeTreeDir(name);
        removedTrees.push(name);
      }
    }
  }
  if (o.treesOnly !== true) {
    const keepImages = leased("image");
    const keepTrees = leased("tree");
    const heldByTree = new Set(
      (db.prepare("SELECT id, image_id FROM trees").all() as { id: string; image_id: string }[])
        .filter((t) => keepTrees.has(t.id))
        .map((t) => t.image_id),
    );
    const rows = db.prepare("SELECT id, last_used FROM images ORDER BY last_used ASC").all() as {
      id: string;
      last_used: number;
    }[];
    const victims: string[] = [];
    for (const r of rows) {
      if (now - r.last_used <= grace) break;
      if (keepImages.has(r.id) || heldByTree.has(r.id)) continue;
      victims.push(r.id);
    }
    for (const res of await removeImages(store, victims)) {
      if (res.removed) {
        removedImages.push(res.id);
        freed += res.freedBytes;
      }
    }
  }
  const removedBlobs: string[] = [];
  const removedIngests: string[] = [];
  if (o.treesOnly !== true) {
    // Blob rows no image needs and no live lease protects: rows first (committed), then files
    // (sweepBlobs re-checks rows and leases under the write lock before each unlink).
    const candidatesSql = db.prepare(
      "SELECT digest FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM image_blobs ib WHERE ib.digest = b.digest)",
    );
    const leasesOf = db.prepare("SELECT lease_id FROM lease_refs WHERE kind = 'blob' AND ref = ?");
    const delBlob = db.prepare(
      "DELETE FROM blobs WHERE digest = ? AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE digest = ?)",
    );
    const delLayer = db.prepare("DELETE FROM layers WHERE digest = ?");
    const unreferenced: string[] = [];
    // Decided and deleted in one write transaction, with lease liveness read inside it.
    db.transaction(() => {
      const alive = store.leaseChecker(now);
      for (const { digest: d } of candidatesSql.all() as { digest: string }[]) {
        if ((leasesOf.all(d) as { lease_id: string }[]).some((l) => alive(l.lease_id))) continue;
        if (delBlob.run(d, d).changes > 0) {
          delLayer.run(d);
          unreferenced.push(d);
        }
      }
    }).immediate();
    // Plus files that never got a row (a crash between rename and the row's commit).
    const rowed = new Set(
      (db.prepare("SELECT digest FROM blobs").all() as { digest: string }[]).map((r) => r.digest),
    );
    const candidates = new Set(unreferenced);
    for (const alg of ["sha256", "sha512"]) {
      for (const name of await readdir(join(store.paths.blobs, alg)).catch(() => [] as string[])) {
        const d = `${alg}:${name}`;
        if (!rowed.has(d)) {
          if (isDigest(d)) candidates.add(d);
          else await rm(join(store.paths.blobs, alg, name), { force: true }).catch(() => undefined);
        }
      }
    }
    const swept = store.sweepBlobs(candidates);
    removedBlobs.push(...swept.removed);
    freed += swept.bytes;
    for (const name of await readdir(store.paths.ingest).catch(() => [] as string[])) {
      const dir = join(store.paths.ingest, name);
      const ref = await readFile(join(dir, "ref"), "utf8").catch(() => undefined);
      if (ref !== undefined && isLocked(db, `ingest:${ref}`)) continue;
      const st = await stat(join(dir, "data")).catch(() => stat(dir).catch(() => undefined));
      const resumable = ref === undefined || !ref.startsWith("aci-");
      if (resumable && st !== undefined && now - st.mtimeMs <= ingestGrace) continue;
      freed += st?.size ?? 0;
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      removedIngests.push(ref ?? name);
    }
    await sweepTmp(store, now, grace);
  }
  // Last: trees of the images removed above are gone, so their snapshots are unreferenced now.
  const removedSnapshots = o.imagesOnly === true ? [] : await collectSnapshots(store);
  return {
    removedImages,
    removedTrees,
    removedBlobs,
    removedIngests,
    removedSnapshots,
    removedTemps,
    freedBytes: freed,
  };
}

/** Temp entries are named `<pid>-<start>-<random>`; those of dead processes (or unnamed and old) go. */
export async function sweepTmp(store: LocalStore, now: number, grace: number): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(store.paths.tmp).catch(() => [] as string[])) {
    const m = /^(\d+)-(\d+)-/.exec(name);
    const path = join(store.paths.tmp, name);
    if (m !== null) {
      if (isAlive(Number(m[1]), Number(m[2]))) continue;
    } else {
      const st = await stat(path).catch(() => undefined);
      if (st !== undefined && now - st.mtimeMs <= grace) continue;
    }
    await rm(path, { recursive: true, force: true }).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}
