// Trees: an ordered list of snapshots (base first), composed by overlayfs or flattened into a copy.
// On disk: `cas/trees/<id>/tree.json` (the record), `hash` (the tree hash), `rendered` (written
// last: a tree without it is incomplete), and `rootfs/` for a flattened tree.
import { createHash, randomBytes } from "node:crypto";
import {
  copyFile,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  utimes,
  writeFile,
  chmod,
} from "node:fs/promises";
import { chmodSync, copyFileSync, lchownSync, utimesSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import {
  ErrorCode,
  RktError,
  chainIds,
  digestHex,
  parseImageConfigOrThrow,
  parseManifestOrThrow,
  type BlobProgress,
  type ContentStore,
  type Digest,
} from "@rkt/oci";
import type { IndexDb } from "../db.js";
import { fsyncDir, fsyncFile } from "../internal/fs-util.js";
import { ownedTempName } from "../internal/proc.js";
import { treeHash } from "./hash.js";
import {
  buildSnapshot,
  extractLayers,
  getSnapshot,
  layerSnapshotKey,
  snapshotDir,
  type Snapshot,
} from "./snapshot.js";
import { devMajor, devMinor, makeNodes, readXattrsTree, runTool, setXattrs, type NodeSpec } from "./tools.js";
import { opaqueMarker, whiteoutPrefix } from "./extract.js";

/** A tree: snapshots under `layersDir`, base first. */
export interface Tree {
  id: string;
  kind: "oci" | "aci";
  /** The image it renders (manifest digest or ACI image ID). */
  image: string;
  /** Snapshot keys, base (lowest) first. */
  layers: string[];
  layersDir: string;
}

/** Tree record as saved in `tree.json`. */
type TreeRecord = Omit<Tree, "layersDir">;

/** The tree ID of an OCI image: `chain-` + the ChainID hex of its top layer. */
export function ociTreeId(diffIds: readonly Digest[]): string {
  const chain = chainIds(diffIds);
  const top = chain[chain.length - 1];
  if (top === undefined) throw new RktError(ErrorCode.InvalidArgument, "an image with no layers has no tree");
  return `chain-sha256-${digestHex(top)}`;
}

/** The overlay lowerdirs of a tree, top first (overlayfs order). */
export function treeLowerDirs(tree: Tree): string[] {
  return tree.layers.map((k) => join(snapshotDir(tree.layersDir, k), "fs")).reverse();
}

/** Escapes a path for an overlayfs option value (`\`, `:` and `,`). Pure. */
export function escapeOverlayPath(p: string): string {
  return p.replace(/[\\:,]/g, (c) => `\\${c}`);
}

/** Largest mount option string: one page, NUL included. */
export const mountOptionLimit = 4095;

/** Options of {@link mountTree}. */
export interface MountTreeOptions {
  /** Per-consumer upper and work dirs (same file system; created if missing). */
  upper: string;
  work: string;
  /** Option length limit (tests lower it to exercise the fallbacks). */
  optionLimit?: number | undefined;
}

/**
 * Mounts `tree` at `target` with overlayfs: read-only snapshot lowers, `upper`/`work` per consumer.
 * When the absolute lowerdir list does not fit the one-page option limit, the lowers are given
 * relative to the layers dir (mount runs there); when even that does not fit (or over 500 layers,
 * overlayfs' stack limit), the lowest layers are merged into one flattened intermediate snapshot
 * (`flat-<chainID hex>`, cached and shared) until it fits. Needs root. RKT_IO on a mount failure.
 */
export async function mountTree(tree: Tree, target: string, o: MountTreeOptions): Promise<void> {
  const limit = o.optionLimit ?? mountOptionLimit;
  await mkdir(o.upper, { recursive: true });
  await mkdir(o.work, { recursive: true });
  const rest = `,upperdir=${escapeOverlayPath(o.upper)},workdir=${escapeOverlayPath(o.work)}`;
  let keys = [...tree.layers];
  // Whiteouts in the bottom-most lowerdir are not filtered by overlayfs (its directories are passed
  // through: readdir lists them, lookup says ENOENT); nothing is below, so apply them in a copy.
  const bottom = await getSnapshot(tree.layersDir, keys[0]!);
  if ((bottom?.info.whiteouts ?? 0) > 0) keys[0] = (await mergedSnapshot(tree.layersDir, [keys[0]!])).key;
  for (;;) {
    const absOpt = `lowerdir=${keys
      .map((k) => escapeOverlayPath(join(tree.layersDir, k, "fs")))
      .reverse()
      .join(":")}${rest}`;
    if (absOpt.length <= limit && keys.length <= 500) {
      await runTool(
        "mount",
        ["-t", "overlay", "overlay", "-o", absOpt, target],
        undefined,
        `mount tree ${tree.id}`,
      );
      return;
    }
    const relOpt = `lowerdir=${keys
      .map((k) => escapeOverlayPath(`${k}/fs`))
      .reverse()
      .join(":")}${rest}`;
    if (relOpt.length <= limit && keys.length <= 500) {
      await runTool(
        "mount",
        ["-t", "overlay", "overlay", "-o", relOpt, target],
        undefined,
        `mount tree ${tree.id}`,
        {
          cwd: tree.layersDir,
        },
      );
      return;
    }
    if (keys.length === 1) {
      throw new RktError(
        ErrorCode.TooLarge,
        `mount tree ${tree.id}: the overlay options do not fit in ${limit} bytes (paths too long)`,
      );
    }
    // Merge the lower half into one flattened snapshot and retry.
    const n = Math.max(2, Math.floor(keys.length / 2));
    const merged = await mergedSnapshot(tree.layersDir, keys.slice(0, n));
    keys = [merged.key, ...keys.slice(n)];
  }
}

/** Unmounts a tree mounted by {@link mountTree}. */
export async function unmountTree(target: string): Promise<void> {
  await runTool("umount", [target], undefined, `unmount ${target}`);
}

async function mergedSnapshot(layersDir: string, keys: readonly string[]): Promise<Snapshot> {
  const chain = chainIds(keys.map((k) => `sha256:${k.replace(/^flat-/, "")}` as Digest));
  const key = `flat-${digestHex(chain[chain.length - 1]!)}`;
  return buildSnapshot(layersDir, key, async (fsDir) => {
    // Merged layers are always the bottom of the stack: whiteouts are applied, not kept.
    await flattenDirs(
      keys.map((k) => join(snapshotDir(layersDir, k), "fs")),
      fsDir,
    );
    return { format: "flat", entries: 0, uncompressedSize: 0, skipped: [] };
  });
}

const isRoot = process.getuid?.() === 0;
const overlayXattr = /^(trusted|user)\.overlay\./;

/** Options of {@link flattenDirs}. */
export interface FlattenOptions {
  /**
   * Keep whiteouts (0:0 devices) and opaque xattrs in the result instead of applying them, so
   * that it can serve as a merged overlay lower for the layers above it.
   */
  keepWhiteouts?: boolean | undefined;
  /**
   * Which entries to copy (root-relative path, is-directory). A directory left out is still
   * descended into; the parents of copied entries are then created 0755 root:root (appc's rule).
   */
  filter?: ((rel: string, isDir: boolean) => boolean) | undefined;
  /** Hard-link regular files instead of copying them (for read-only derived snapshots). */
  linkFiles?: boolean | undefined;
}

/**
 * Applies snapshot directories (base first) onto `target` (an existing directory): later wins, a
 * directory over a directory merges, anything else replaces; whiteouts (0:0 char devices, or
 * `.wh.` marker files) delete, opaque directories (xattr or `.wh..wh..opq`) hide what was below.
 * Hard links inside one snapshot stay hard links; devices are recreated with mknod (never read).
 */
export async function flattenDirs(
  sources: readonly string[],
  target: string,
  o: FlattenOptions = {},
): Promise<void> {
  const dirTimes = new Map<string, Date>();
  for (const [layerIndex, src] of sources.entries()) {
    const xattrs = await readXattrsTree(src, `snapshot ${src}`);
    const setAttrs = new Map<string, Map<string, Buffer>>();
    const nodes: (NodeSpec & { uid: number; gid: number; mode: number; mtime: Date })[] = [];
    const inodes = new Map<string, string>();
    const visit = async (rel: string): Promise<void> => {
      const s = rel === "" ? src : join(src, rel);
      const t = rel === "" ? target : join(target, rel);
      const st = await lstat(s);
      const attrs = xattrs.get(s) ?? [];
      const opaqueX = attrs.some(
        ([n, v]) => overlayXattr.test(n) && n.endsWith(".opaque") && v.toString() === "y",
      );
      const whiteout = st.isCharacterDevice() && st.rdev === 0;
      const keep = attrs.filter(([n]) => o.keepWhiteouts === true || !overlayXattr.test(n));
      if (rel !== "") {
        const base = rel.slice(rel.lastIndexOf("/") + 1);
        const dir = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
        if (!o.keepWhiteouts && base === opaqueMarker) return; // handled at the directory
        if (!o.keepWhiteouts && base.startsWith(whiteoutPrefix) && st.isFile()) {
          await rm(join(target, dir, base.slice(whiteoutPrefix.length)), { recursive: true, force: true });
          return;
        }
        if (whiteout && o.keepWhiteouts !== true) {
          await rm(t, { recursive: true, force: true });
          return;
        }
      }
      const included = rel === "" || o.filter === undefined || o.filter(rel, st.isDirectory());
      if (!included) {
        if (st.isDirectory())
          for (const n of (await readdir(s)).sort()) await visit(`${rel}/${n}`.replace(/^\//, ""));
        return;
      }
      if (o.filter !== undefined && rel.includes("/")) {
        await mkdir(join(target, rel.slice(0, rel.lastIndexOf("/"))), { recursive: true, mode: 0o755 });
      }
      let existing;
      try {
        existing = await lstat(t);
      } catch {
        existing = undefined;
      }
      if (st.isDirectory()) {
        if (existing !== undefined && !existing.isDirectory()) await rm(t, { recursive: true, force: true });
        if (existing === undefined || !existing.isDirectory()) await mkdir(t, { mode: 0o700 });
        const names = await readdir(s);
        if (layerIndex > 0 && (opaqueX || names.includes(opaqueMarker)) && !(o.keepWhiteouts === true)) {
          // Opaque: what lower layers put here is hidden.
          for (const n of await readdir(t)) await rm(join(t, n), { recursive: true, force: true });
        }
        if (isRoot) await lchown(t, st.uid, st.gid);
        await chmod(t, st.mode & 0o7777);
        dirTimes.set(t, st.mtime);
        if (keep.length > 0 || existing !== undefined) setAttrs.set(t, new Map(keep));
        names.sort();
        for (const n of names) await visit(rel === "" ? n : `${rel}/${n}`);
        return;
      }
      if (existing !== undefined) await rm(t, { recursive: true, force: true });
      if (st.isFile()) {
        const ino = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(ino) : undefined;
        if (first !== undefined) {
          await link(first, t);
          return;
        }
        if (st.nlink > 1) inodes.set(ino, t);
        if (o.linkFiles === true) {
          await link(s, t); // shares the inode, its owner, mode and xattrs
          return;
        }
        // Small files synchronously: threadpool round trips cost more than the syscalls (see extract.ts).
        if (st.size <= 256 * 1024) copyFileSync(s, t);
        else await copyFile(s, t);
        if (isRoot) lchownSync(t, st.uid, st.gid);
        chmodSync(t, st.mode & 0o7777);
        utimesSync(t, st.mtime, st.mtime);
      } else if (st.isSymbolicLink()) {
        await symlink(await readlink(s), t);
        if (isRoot) await lchown(t, st.uid, st.gid);
        await lutimes(t, st.mtime, st.mtime);
      } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
        const kind = st.isFIFO() ? "p" : st.isBlockDevice() ? "b" : "c";
        nodes.push({
          path: t,
          kind,
          major: devMajor(st.rdev),
          minor: devMinor(st.rdev),
          uid: st.uid,
          gid: st.gid,
          mode: st.mode & 0o7777,
          mtime: st.mtime,
        });
      } else return; // sockets are not part of a tree
      if (keep.length > 0) setAttrs.set(t, new Map(keep));
    };
    await visit("");
    await makeNodes(nodes, `flatten ${src}`);
    for (const n of nodes) {
      if (isRoot) await lchown(n.path, n.uid, n.gid);
      await chmod(n.path, n.mode);
      await lutimes(n.path, n.mtime, n.mtime);
    }
    // Replace the xattrs of directories that were merged: clear then set.
    const withValues = new Map([...setAttrs].filter(([, m]) => m.size > 0));
    await setXattrs(withValues, `flatten ${src}`);
  }
  for (const [t, time] of [...dirTimes].sort((a, b) => b[0].length - a[0].length)) {
    await utimes(t, time, time).catch(() => undefined); // a dir later replaced by a file is gone
  }
}

/**
 * Writes a flattened copy of `tree` into `target` (created; must not exist or be empty): whiteouts
 * applied, no overlay needed, works without root (owners and devices then skipped by the kernel's rules).
 */
export async function flattenTree(tree: Tree, target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  await flattenDirs(
    tree.layers.map((k) => join(snapshotDir(tree.layersDir, k), "fs")),
    target,
  );
}

/** Where trees live and where their snapshots live (both under `cas/`). */
export interface TreeStorePaths {
  layers: string;
  trees: string;
}

function treeDir(p: TreeStorePaths, id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) {
    throw new RktError(ErrorCode.InvalidArgument, `tree id ${JSON.stringify(id)} is not a safe name`);
  }
  return join(p.trees, id);
}

/** The tree `id` if it is completely rendered, else undefined. */
export async function getTree(p: TreeStorePaths, id: string): Promise<Tree | undefined> {
  const dir = treeDir(p, id);
  try {
    await lstat(join(dir, "rendered"));
    const rec = JSON.parse(await readFile(join(dir, "tree.json"), "utf8")) as TreeRecord;
    return { ...rec, layersDir: p.layers };
  } catch {
    return undefined;
  }
}

/** The stored hash input of a tree: its snapshots, plus its flattened rootfs if any. */
// A tree's hash combines its snapshots' hashes, each computed once when the snapshot was made
// (so a second tree over the same layers costs no walk); `recompute` walks them all again
// (checkTree). Snapshots from before hashes were recorded are walked.
async function computeTreeHash(p: TreeStorePaths, tree: Tree, recompute = false): Promise<string> {
  const parts: [string, string][] = [];
  for (const k of tree.layers) {
    const snap = await getSnapshot(p.layers, k);
    const fs = join(snapshotDir(p.layers, k), "fs");
    parts.push([k, !recompute && snap?.info.hash !== undefined ? snap.info.hash : await treeHash(fs)]);
  }
  return `sha512-${createHash("sha512").update(JSON.stringify(parts)).digest("hex")}`;
}

/**
 * Records tree `rec` (its snapshots must exist): writes `tree.json`, the tree hash and, last, the
 * `rendered` marker, in a tmp dir renamed into place (first rename wins). With `flatten`, also
 * writes `rootfs/` as a flattened copy. Returns the tree.
 */
export async function saveTree(
  p: TreeStorePaths,
  rec: TreeRecord,
  o: { flatten?: boolean | undefined; manifest?: Uint8Array | undefined } = {},
): Promise<Tree> {
  const existing = await getTree(p, rec.id);
  if (existing !== undefined && (o.flatten !== true || (await exists(join(treeDir(p, rec.id), "rootfs"))))) {
    return existing;
  }
  for (const k of rec.layers) {
    if ((await getSnapshot(p.layers, k)) === undefined) {
      throw new RktError(ErrorCode.NotFound, `tree ${rec.id}: snapshot ${k} is missing`);
    }
  }
  const tree: Tree = { ...rec, layersDir: p.layers };
  await mkdir(p.trees, { recursive: true });
  const tmp = join(p.trees, `.tmp-${ownedTempName(randomBytes(6).toString("hex"))}`);
  await mkdir(tmp);
  try {
    await writeFile(join(tmp, "tree.json"), JSON.stringify(rec));
    if (o.manifest !== undefined) await writeFile(join(tmp, "manifest"), o.manifest);
    if (o.flatten === true) {
      await flattenTree(tree, join(tmp, "rootfs"));
      // The copy is checked on its own: a tampered rootfs/ must fail checkTree like a tampered snapshot.
      await writeFile(join(tmp, rootfsHashFile), await treeHash(join(tmp, "rootfs")));
    }
    await writeFile(join(tmp, "hash"), await computeTreeHash(p, tree));
    // A layered tree is three small files: fsync them (syncfs would flush the whole file system,
    // other users' writes included); a flattened copy is a whole rootfs, synced at once.
    if (o.flatten === true) await runTool("sync", ["-f", tmp], undefined, `tree ${rec.id}`);
    else {
      const files = ["tree.json", "hash", ...(o.manifest === undefined ? [] : ["manifest"])];
      await Promise.all(files.map((f) => fsyncFile(join(tmp, f))));
      await fsyncDir(tmp);
    }
    await writeFile(join(tmp, "rendered"), "");
    const final = treeDir(p, rec.id);
    // Never rm the final name in place: a racing render may be renaming a complete tree there.
    // An existing tree being replaced (rebuild, adding rootfs/) or an incomplete leftover is moved
    // aside atomically first; rebuilds should hold the `tree:<id>` lock, as rkt's Render does.
    const moveAside = async (): Promise<void> => {
      const aside = join(p.trees, `.tmp-${ownedTempName(`old-${randomBytes(6).toString("hex")}`)}`);
      await rename(final, aside).catch(() => undefined);
      await rm(aside, { recursive: true, force: true });
    };
    if (existing !== undefined) await moveAside();
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(tmp, final);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
        const won = await getTree(p, rec.id);
        if (won !== undefined && (o.flatten !== true || (await exists(join(final, "rootfs"))))) {
          await rm(tmp, { recursive: true, force: true });
          return won;
        }
        if (attempt > 1) throw e;
        await moveAside();
      }
    }
    await fsyncDir(p.trees);
    return tree;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/** True when `path` exists (a dangling symlink counts). @internal */
export /** True when `path` exists (a dangling symlink counts). @internal */
async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Recomputes the hash of tree `id` and compares it with the saved one (rkt's `Check`).
 * RKT_NOT_FOUND when the tree or its hash file is missing ("cannot read hash file");
 * RKT_DIGEST_MISMATCH `wrong tree hash: <cur>, expected: <saved>`.
 */
export async function checkTree(p: TreeStorePaths, id: string): Promise<void> {
  const tree = await getTree(p, id);
  if (tree === undefined) throw new RktError(ErrorCode.NotFound, `tree ${id}: not rendered`);
  let saved: string;
  try {
    saved = (await readFile(join(treeDir(p, id), "hash"), "utf8")).trim();
  } catch (e) {
    throw new RktError(ErrorCode.NotFound, `tree ${id}: cannot read hash file`, { cause: e });
  }
  const cur = await computeTreeHash(p, tree, true);
  if (cur !== saved)
    throw new RktError(ErrorCode.DigestMismatch, `wrong tree hash: ${cur}, expected: ${saved}`);
  const rootfs = join(treeDir(p, id), "rootfs");
  if (!(await exists(rootfs))) return;
  let savedRootfs: string;
  try {
    savedRootfs = (await readFile(join(treeDir(p, id), rootfsHashFile), "utf8")).trim();
  } catch (e) {
    throw new RktError(ErrorCode.NotFound, `tree ${id}: cannot read hash file`, { cause: e });
  }
  const curRootfs = await treeHash(rootfs);
  if (curRootfs !== savedRootfs)
    throw new RktError(
      ErrorCode.DigestMismatch,
      `wrong tree hash: ${curRootfs}, expected: ${savedRootfs} (flattened rootfs)`,
    );
}

/** The tree hash of a flattened `rootfs/`, beside it. */
const rootfsHashFile = "rootfs-hash";

/** Removes tree `id` (the `rendered` marker first, then the rest). Absent is fine. */
export async function removeTree(p: TreeStorePaths, id: string): Promise<void> {
  const dir = treeDir(p, id);
  await rm(join(dir, "rendered"), { force: true });
  await rm(dir, { recursive: true, force: true });
}

/** Options of {@link renderOciImage}. */
export interface RenderOciOptions {
  /** Also write a flattened `rootfs/` in the tree dir. */
  flatten?: boolean | undefined;
  /** Layers extracted at once (default 2). */
  concurrency?: number | undefined;
  /** Re-render even when the tree exists (snapshots are still reused). */
  rebuild?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** Each layer's compressed bytes as it is extracted. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * Renders an OCI/Docker image whose manifest, config and layer blobs are in `store`: each layer
 * extracted once into its snapshot (in parallel, diffIDs verified against the config), then the
 * tree recorded under its chain ID. Returns the tree.
 */
export async function renderOciImage(
  store: Pick<ContentStore, "open">,
  p: TreeStorePaths,
  manifestDigest: Digest,
  o: RenderOciOptions = {},
): Promise<Tree> {
  const manifestBytes = await readAll(
    await store.open(manifestDigest),
    4 << 20,
    `manifest ${manifestDigest}`,
  );
  const manifest = parseManifestOrThrow(manifestBytes, undefined, `manifest ${manifestDigest}`).value;
  const configBytes = await readAll(
    await store.open(manifest.config.digest),
    4 << 20,
    `config ${manifest.config.digest}`,
  );
  const config = parseImageConfigOrThrow(configBytes, `config ${manifest.config.digest}`).value;
  const diffIds = config.rootfs.diff_ids as Digest[];
  if (diffIds.length !== manifest.layers.length) {
    throw new RktError(
      ErrorCode.InvalidManifest,
      `image ${manifestDigest}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids in the config`,
    );
  }
  const id = ociTreeId(diffIds);
  if (o.rebuild !== true) {
    const t = await getTree(p, id);
    if (t !== undefined && (o.flatten !== true || (await exists(join(p.trees, id, "rootfs"))))) return t;
  }
  const snaps = await extractLayers(
    p.layers,
    manifest.layers.map((l, i) => ({
      key: layerSnapshotKey(diffIds[i]!),
      diffId: diffIds[i],
      what: `layer ${l.digest}`,
      open: () => store.open(l.digest),
      digest: l.digest,
      size: l.size,
    })),
    { concurrency: o.concurrency, signal: o.signal, onProgress: o.onProgress },
  );
  if (o.rebuild === true) await removeTree(p, id);
  return saveTree(
    p,
    { id, kind: "oci", image: manifestDigest, layers: snaps.map((s) => s.key) },
    { flatten: o.flatten },
  );
}

async function readAll(src: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    n += (c as Buffer).length;
    if (n > max) {
      src.destroy();
      throw new RktError(ErrorCode.TooLarge, `${what}: over ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Records (or touches) tree `tree` in the index's `trees` table so that GC accounts for it and
 * `image rm` removes it with its image (the row cascades). `size` is the bytes the tree alone holds
 * (its flattened rootfs, if any; snapshots are shared and accounted separately). The image row
 * must exist (foreign key).
 */
export function recordTree(db: IndexDb, tree: Tree, size = 0, now = Date.now()): void {
  db.prepare(
    `INSERT INTO trees (id, image_id, size, created, last_used) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET image_id = excluded.image_id, size = excluded.size, last_used = excluded.last_used`,
  ).run(tree.id, tree.image, size, now, now);
}
