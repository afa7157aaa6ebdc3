// `rkt image fsck [--repair]`: re-hash every blob and check the index against the disk. The
// index is a cache of what the blobs say, so repair can rebuild image rows from the blobs.
import { readFile, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import {
  MediaType,
  detectDocumentType,
  isConfigType,
  isDigest,
  parseImageConfig,
  parseJsonStrict,
  parseManifest,
  type Digest,
} from "@rkt/oci";
import { aciImageId } from "./images.js";
import { readStoredAciManifest } from "./import-aci.js";
import type { LocalStore } from "./local-store.js";
import { hashFile } from "./local-store.js";
import { isLocked } from "./locks.js";
import { outsideTempPrefix, sweepOutsideTemps } from "./outside-temp.js";
import { isAlive } from "./internal/proc.js";
import { indexDb } from "./internal/index-db.js";

/** The kinds of finding. */
export type FsckFindingKind =
  | "index-corrupt"
  | "corrupt-blob"
  | "bad-blob-name"
  | "missing-blob"
  | "image-without-content"
  | "orphan-blob"
  | "stale-ingest"
  | "stale-temp"
  | "dead-lock"
  | "dead-lease";

/** One finding. */
export interface FsckFinding {
  readonly kind: FsckFindingKind;
  /** The blob digest, image ID, ingest ref, path or lock key concerned. */
  readonly subject: string;
  readonly message: string;
  /** True when `repair` fixed it. */
  readonly repaired: boolean;
}

/** What {@link fsck} found. */
export interface FsckReport {
  /** Integrity problems: content that does not match its name, rows naming nothing. */
  readonly problems: FsckFinding[];
  /** Leftovers a crash or kill can leave (orphan blobs, stale ingests, dead locks): harmless, GC removes them. */
  readonly garbage: FsckFinding[];
  readonly blobsChecked: number;
  readonly imagesChecked: number;
  /** Image rows rebuilt from blobs by `repair`. */
  readonly rebuiltImages: string[];
  /** No problems (garbage allowed). */
  readonly ok: boolean;
  /** No problems and no garbage. */
  readonly clean: boolean;
}

/** Options of {@link fsck}. */
export interface FsckOptions {
  /** Fix what can be fixed: drop corrupt blobs and rows naming nothing, adopt and rebuild from orphan blobs, clear garbage. */
  repair?: boolean | undefined;
}

const docCap = 4 << 20;

/**
 * Checks the store: SQLite integrity, every blob re-hashed against its name, every blob row
 * against its file, every image against its content, and leftovers (orphan blobs, ingests no
 * live process holds, temp files of dead processes, dead locks and leases). With `repair`:
 * corrupt blobs are deleted with the images that need them, rows naming nothing are dropped,
 * orphan blobs are adopted and images rebuilt from them (ACIs re-read for their manifest; OCI
 * manifests found among the blobs, when their config and layers are present), garbage removed.
 */
export async function fsck(store: LocalStore, o: FsckOptions = {}): Promise<FsckReport> {
  const repair = o.repair === true;
  const db = indexDb(store);
  const problems: FsckFinding[] = [];
  const garbage: FsckFinding[] = [];
  const rebuiltImages: string[] = [];
  const add = (
    list: FsckFinding[],
    kind: FsckFindingKind,
    subject: string,
    message: string,
    repaired = repair,
  ): void => {
    list.push({ kind, subject, message, repaired });
  };

  const integrity = db.pragma("quick_check", { simple: true }) as string;
  if (integrity !== "ok") add(problems, "index-corrupt", store.paths.db, `index: ${integrity}`, false);

  // 1. Every blob file against its name.
  const corrupt = new Set<string>();
  const files = new Map<string, number>();
  let blobsChecked = 0;
  for (const alg of ["sha256", "sha512"] as const) {
    const dir = join(store.paths.blobs, alg);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const d = `${alg}:${name}`;
      const path = join(dir, name);
      if (!isDigest(d)) {
        add(problems, "bad-blob-name", path, `blob file ${path} is not named by a digest`);
        if (repair) await rm(path, { force: true, recursive: true });
        continue;
      }
      let size: number;
      let actual: string;
      try {
        size = (await stat(path)).size;
        actual = await hashFile(path, alg);
      } catch {
        continue; // removed meanwhile
      }
      blobsChecked++;
      if (actual !== d) {
        corrupt.add(d);
        add(problems, "corrupt-blob", d, `blob ${d} hashes to ${actual}`);
      } else {
        files.set(d, size);
      }
    }
  }

  // 2. Rows against files.
  const rows = db.prepare("SELECT digest, size FROM blobs").all() as { digest: string; size: number }[];
  const rowSet = new Set(rows.map((r) => r.digest));
  const missing = new Set<string>();
  for (const r of rows) {
    if (corrupt.has(r.digest)) continue;
    const size = files.get(r.digest);
    if (size === undefined) {
      // Re-check: a commit or sweep may have run since the directory was listed.
      const still = db.prepare("SELECT 1 FROM blobs WHERE digest = ?").get(r.digest) !== undefined;
      if (still && !(await store.exists(r.digest as Digest))) {
        missing.add(r.digest);
        add(problems, "missing-blob", r.digest, `index names blob ${r.digest} but its file is missing`);
      }
    } else if (size !== r.size) {
      add(problems, "corrupt-blob", r.digest, `blob ${r.digest} is ${size} bytes, index says ${r.size}`);
      if (repair) db.prepare("UPDATE blobs SET size = ? WHERE digest = ?").run(size, r.digest);
    }
  }

  // 3. Images against their content.
  const images = db.prepare("SELECT id, kind FROM images").all() as { id: string; kind: "aci" | "oci" }[];
  const blobsOf = db.prepare("SELECT digest, role FROM image_blobs WHERE image_id = ?");
  const broken: string[] = [];
  for (const img of images) {
    const bs = blobsOf.all(img.id) as { digest: string; role: string }[];
    const need = img.kind === "aci" ? ["aci"] : ["manifest", "config"];
    const lacking = need.filter((role) => !bs.some((b) => b.role === role));
    const bad = bs.filter((b) => corrupt.has(b.digest) || missing.has(b.digest));
    if (lacking.length > 0 || bad.length > 0) {
      broken.push(img.id);
      const why =
        bad.length > 0
          ? `blob ${bad[0]!.digest} is ${corrupt.has(bad[0]!.digest) ? "corrupt" : "missing"}`
          : `no ${lacking[0]} blob recorded`;
      add(problems, "image-without-content", img.id, `image ${img.id}: ${why}`);
    }
  }
  if (repair) {
    db.transaction(() => {
      const delImage = db.prepare("DELETE FROM images WHERE id = ?");
      for (const id of broken) delImage.run(id);
      const delBlob = db.prepare("DELETE FROM image_blobs WHERE digest = ?");
      const delRow = db.prepare("DELETE FROM blobs WHERE digest = ?");
      for (const d of [...corrupt, ...missing]) {
        delBlob.run(d);
        delRow.run(d);
        db.prepare("DELETE FROM layers WHERE digest = ?").run(d);
      }
    }).immediate();
    for (const d of corrupt) await rm(store.blobFile(d as Digest), { force: true });
  }

  // 4. Orphan blobs: files without rows (a crash between rename and the row's commit).
  const orphans = [...files.keys()].filter(
    (d) => !rowSet.has(d) && db.prepare("SELECT 1 FROM blobs WHERE digest = ?").get(d) === undefined,
  );
  for (const d of orphans) add(garbage, "orphan-blob", d, `blob ${d} has no index row`);
  if (repair) {
    const now = Date.now();
    const adopt = db.prepare(
      "INSERT OR IGNORE INTO blobs (digest, size, media_type, created) VALUES (?, ?, NULL, ?)",
    );
    db.transaction(() => orphans.forEach((d) => adopt.run(d, files.get(d), now))).immediate();
    rebuiltImages.push(...(await rebuildImages(store, files)));
  }

  // 5. Leftovers of dead processes.
  for (const name of await readdir(store.paths.ingest).catch(() => [] as string[])) {
    const dir = join(store.paths.ingest, name);
    const ref = await readFile(join(dir, "ref"), "utf8").catch(() => undefined);
    if (ref !== undefined && isLocked(db, `ingest:${ref}`)) continue;
    add(
      garbage,
      "stale-ingest",
      ref ?? name,
      `ingest ${JSON.stringify(ref ?? name)} is held by no live process`,
    );
    if (repair) await rm(dir, { recursive: true, force: true });
  }
  for (const name of await readdir(store.paths.tmp).catch(() => [] as string[])) {
    const m = /^(\d+)-(\d+)-/.exec(name);
    if (m !== null && isAlive(Number(m[1]), Number(m[2]))) continue;
    add(garbage, "stale-temp", name, `temp entry ${name} belongs to no live process`);
    if (repair) await rm(join(store.paths.tmp, name), { recursive: true, force: true });
  }
  const locks = db.prepare("SELECT key, pid, start_time FROM locks").all() as {
    key: string;
    pid: number;
    start_time: number;
  }[];
  for (const l of locks) {
    if (isAlive(l.pid, l.start_time)) continue;
    if (l.key.startsWith(outsideTempPrefix)) {
      const path = l.key.slice(outsideTempPrefix.length);
      add(garbage, "stale-temp", path, `temporary ${path} was left by process ${l.pid}, which is gone`);
      continue;
    }
    add(garbage, "dead-lock", l.key, `lock ${l.key} was held by process ${l.pid}, which is gone`);
    if (repair)
      db.prepare("DELETE FROM locks WHERE key = ? AND pid = ? AND start_time = ?").run(
        l.key,
        l.pid,
        l.start_time,
      );
  }
  if (repair) await sweepOutsideTemps(db);
  const live = store.liveLeaseIds();
  for (const l of db.prepare("SELECT id FROM leases").all() as { id: string }[]) {
    if (live.has(l.id)) continue;
    add(garbage, "dead-lease", l.id, `lease ${l.id} has expired or its process is gone`);
    if (repair) db.prepare("DELETE FROM leases WHERE id = ?").run(l.id);
  }

  return {
    problems,
    garbage,
    blobsChecked,
    imagesChecked: images.length,
    rebuiltImages,
    ok: problems.length === 0 || (repair && problems.every((p) => p.repaired)),
    clean: problems.length === 0 && garbage.length === 0,
  };
}

// Recreates image rows for content that has none: ACIs (sha512 blobs) and OCI manifests whose
// config and layers are all present. Names are lost for OCI images (they live only in rows).
async function rebuildImages(store: LocalStore, files: Map<string, number>): Promise<string[]> {
  const db = indexDb(store);
  const has = db.prepare("SELECT 1 FROM images WHERE id = ?");
  const used = db.prepare("SELECT 1 FROM image_blobs WHERE digest = ?");
  const rebuilt: string[] = [];
  const now = Date.now();
  for (const [d, size] of files) {
    if (used.get(d) !== undefined) continue;
    const digest = d as Digest;
    if (d.startsWith("sha512:")) {
      const id = aciImageId(d);
      if (has.get(id) !== undefined) continue;
      let m: Awaited<ReturnType<typeof readStoredAciManifest>>;
      try {
        m = await readStoredAciManifest(await store.open(digest), `blob ${d}`);
      } catch {
        continue; // not an ACI: left for GC
      }
      const bytes = Buffer.from(m.raw);
      const labels: Record<string, string> = {};
      for (const l of m.manifest.labels ?? []) labels[l.name] = l.value;
      db.transaction(() => {
        db.prepare(
          `INSERT OR IGNORE INTO images (id, kind, name, labels, manifest_digest, config_digest, manifest, size, import_time, last_used, latest)
           VALUES (?, 'aci', ?, ?, ?, NULL, ?, ?, ?, ?, 0)`,
        ).run(id, m.manifest.name, JSON.stringify(labels), d, bytes, size, now, now);
        db.prepare("UPDATE blobs SET media_type = ? WHERE digest = ?").run(MediaType.AppcAci, d);
        db.prepare(
          "INSERT OR IGNORE INTO image_blobs (image_id, digest, role, position) VALUES (?, ?, 'aci', 0)",
        ).run(id, d);
      }).immediate();
      rebuilt.push(id);
      continue;
    }
    if (size > docCap || has.get(d) !== undefined) continue;
    const bytes = await buffer(await store.open(digest));
    if (bytes[0] !== 0x7b) continue; // not JSON: a layer
    const j = parseJsonStrict(bytes);
    if (!j.ok) continue;
    const type = detectDocumentType(j.value);
    if (type !== "oci-manifest" && type !== "docker-manifest") continue;
    const m = parseManifest(bytes);
    if (!m.ok) continue;
    const parts = [m.value.config, ...m.value.layers];
    if (!parts.every((p) => files.has(p.digest))) continue;
    let diffIds: readonly string[] | undefined;
    if (isConfigType(m.value.config.mediaType)) {
      const c = parseImageConfig(await buffer(await store.open(m.value.config.digest)));
      if (c.ok && c.value.rootfs.diff_ids.length === m.value.layers.length) diffIds = c.value.rootfs.diff_ids;
    }
    const total = size + parts.reduce((n, p) => n + (files.get(p.digest) ?? 0), 0);
    db.transaction(() => {
      const blobRow = db.prepare(
        "INSERT OR IGNORE INTO blobs (digest, size, media_type, created) VALUES (?, ?, ?, ?)",
      );
      blobRow.run(d, size, m.value.mediaType ?? MediaType.OciManifest, now);
      for (const p of parts) blobRow.run(p.digest, files.get(p.digest), p.mediaType, now);
      db.prepare(
        `INSERT OR IGNORE INTO images (id, kind, name, labels, manifest_digest, config_digest, manifest, size, import_time, last_used, latest)
         VALUES (?, 'oci', '', '{}', ?, ?, NULL, ?, ?, ?, 0)`,
      ).run(d, d, m.value.config.digest, total, now, now);
      const link = db.prepare(
        "INSERT OR IGNORE INTO image_blobs (image_id, digest, role, position) VALUES (?, ?, ?, ?)",
      );
      link.run(d, d, "manifest", 0);
      link.run(d, m.value.config.digest, "config", 0);
      m.value.layers.forEach((l, i) => link.run(d, l.digest, "layer", i));
      if (diffIds !== undefined) {
        const layer = db.prepare("INSERT OR IGNORE INTO layers (digest, diff_id) VALUES (?, ?)");
        m.value.layers.forEach((l, i) => layer.run(l.digest, diffIds[i]));
      }
    }).immediate();
    rebuilt.push(d);
  }
  return rebuilt;
}
