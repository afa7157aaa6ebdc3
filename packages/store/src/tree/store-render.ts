// The tree store on a LocalStore: render an imported image (ACI with its dependencies, or OCI)
// into a tree recorded in the index, verify and repair it, hand it to a user as an overlay mount
// or a flattened copy, and collect what nothing references. `rkt image render|verify`, render on
// fetch and `rkt image gc` are thin layers over these functions.
import { randomUUID } from "node:crypto";
import { mkdir, readFile, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Dependency } from "@rkt/appc";
import {
  ErrorCode,
  RktError,
  isRktError,
  parseDigest,
  parseImageConfigOrThrow,
  parseManifestOrThrow,
  type BlobProgress,
  type Digest,
} from "@rkt/oci";
import { readBlobLimited } from "../content-helpers.js";
import { catManifest, findImageByName, getImage, resolveImageKey, touchImage } from "../images.js";
import type { LocalStore } from "../local-store.js";
import { acquireLock } from "../locks.js";
import { treeHash } from "./hash.js";
import { aciTreeId, createDepList, renderAci, type AciImage, type AciResolver } from "./aci.js";
import { getSnapshot, listSnapshots, removeSnapshot, removeStaleSnapshotTemps } from "./snapshot.js";
import {
  checkTree,
  exists,
  flattenTree,
  getTree,
  mountTree,
  ociTreeId,
  recordTree,
  renderOciImage,
  unmountTree,
  type Tree,
  type TreeStorePaths,
} from "./tree.js";
import { indexDb } from "../internal/index-db.js";
import { withOutsideTemp } from "../outside-temp.js";

const metaCap = 4 << 20;

/** The tree store paths of a LocalStore. */
export function storeTreePaths(store: LocalStore): TreeStorePaths {
  return { layers: store.paths.layers, trees: store.paths.trees };
}

/** Where per-consumer overlay upper/work dirs live: `cas/mounts/<uuid>/`. */
function mountsDir(store: LocalStore): string {
  return join(store.paths.cas, "mounts");
}

/** The stored ACI `id` as the renderer's input: its manifest from the index, its archive blob. */
function storedAci(store: LocalStore, id: string): AciImage {
  const row = indexDb(store)
    .prepare("SELECT kind, manifest, manifest_digest, size FROM images WHERE id = ?")
    .get(id) as { kind: string; manifest: Buffer | null; manifest_digest: string; size: number } | undefined;
  if (row === undefined) throw new RktError(ErrorCode.NotFound, `cannot find image with key: ${id}`);
  if (row.kind !== "aci" || row.manifest === null)
    throw new RktError(ErrorCode.InvalidArgument, `image ${id} is not an ACI`);
  return {
    key: id,
    manifest: JSON.parse(row.manifest.toString("utf8")) as AciImage["manifest"],
    open: () => store.open(parseDigest(row.manifest_digest)),
    digest: parseDigest(row.manifest_digest),
    size: row.size,
  };
}

/**
 * Resolves ACI dependencies from the store only (no discovery, as rkt): by image ID when the
 * manifest pins one, else by name and labels (rkt `GetACI`). RKT_NOT_FOUND naming the dependency.
 */
function storeResolver(store: LocalStore): AciResolver {
  return (dep: Dependency, dependent: AciImage) => {
    try {
      const id =
        dep.imageID !== undefined && dep.imageID !== ""
          ? resolveImageKey(store, dep.imageID)
          : findImageByName(store, {
              name: dep.imageName,
              labels: Object.fromEntries((dep.labels ?? []).map((l) => [l.name, l.value])),
            });
      return Promise.resolve(storedAci(store, id));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      return Promise.reject(
        new RktError(
          ErrorCode.NotFound,
          `image ${dependent.key}: dependency ${JSON.stringify(dep.imageName)} is not in the store: ${msg}`,
        ),
      );
    }
  };
}

/** The diffIDs of stored OCI image `id`, from its config. */
async function ociDiffIds(store: LocalStore, id: string): Promise<Digest[]> {
  const m = parseManifestOrThrow(
    await readBlobLimited(store, id as Digest, metaCap),
    undefined,
    `manifest ${id}`,
  ).value;
  const cfg = parseImageConfigOrThrow(
    await readBlobLimited(store, m.config.digest, metaCap),
    `config ${m.config.digest}`,
  ).value;
  return cfg.rootfs.diff_ids as Digest[];
}

/**
 * The ID of the tree image `id` renders to, without rendering: ACIs `deps-sha512-…` over the
 * dependency list as resolved now; OCI images `chain-sha256-…`.
 */
export async function storedTreeId(store: LocalStore, id: string): Promise<string> {
  const img = getImage(store, id);
  if (img.kind === "oci") return ociTreeId(await ociDiffIds(store, id));
  const list = await createDepList(storedAci(store, id), storeResolver(store));
  return aciTreeId(list.map((e) => e.image.key));
}

/** Options of {@link renderStoredImage}. */
export interface RenderStoredOptions {
  /** Also keep a flattened `rootfs/` in the tree (checked by verify). */
  flatten?: boolean | undefined;
  /** Render again even when the tree exists (snapshots are reused unless removed first). */
  rebuild?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Runs with the tree before its lock is released, so that GC cannot remove the tree or its
   * snapshots between the render and a mount (which then holds them) or a copy.
   */
  use?: ((tree: Tree) => Promise<void>) | undefined;
  /** Each layer's (or ACI's) bytes as it is extracted into its snapshot. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * Renders stored image `id` into its tree (snapshots extracted once, shared between trees) under
 * the `tree:<id>` lock, records the tree row (GC, `image rm`) and touches the image's last use.
 */
export async function renderStoredImage(
  store: LocalStore,
  id: string,
  o: RenderStoredOptions = {},
): Promise<Tree> {
  const treeId = await storedTreeId(store, id);
  // GC skips locked trees and, while any render holds a tree lock, snapshots: a snapshot made for
  // this tree is unreferenced until the tree is saved.
  const lock = await lockTree(store, treeId, o.signal);
  try {
    return await renderLocked(store, id, o);
  } finally {
    lock.release();
  }
}

/** Takes the `tree:<id>` lock renders hold (waiting for another render of the tree). @internal */
export function lockTree(store: LocalStore, treeId: string, signal?: AbortSignal) {
  return acquireLock(indexDb(store), `tree:${treeId}`, { wait: true, signal, what: `tree ${treeId}` });
}

/** {@link renderStoredImage} for a caller that holds the tree's lock ({@link lockTree}). @internal */
export async function renderLocked(
  store: LocalStore,
  id: string,
  o: RenderStoredOptions = {},
): Promise<Tree> {
  const img = getImage(store, id);
  {
    const paths = storeTreePaths(store);
    const render = (rebuild: boolean | undefined): Promise<Tree> => {
      const opts = { flatten: o.flatten, rebuild, signal: o.signal, onProgress: o.onProgress };
      return img.kind === "oci"
        ? renderOciImage(store, paths, id as Digest, opts)
        : renderAci(paths, storedAci(store, id), storeResolver(store), opts);
    };
    let tree = await render(o.rebuild);
    // A tree whose snapshot went missing (removed by hand, or by an older GC) is rebuilt: the
    // missing snapshots are extracted again. A stat per layer; contents are verify's job.
    let size = await treeContentSize(paths, tree);
    if (size === undefined) {
      tree = await render(true);
      size = (await treeContentSize(paths, tree)) ?? 0;
    }
    recordTree(indexDb(store), tree, size);
    touchImage(store, id);
    await o.use?.(tree);
    return tree;
  }
}

/**
 * The tree's own size (unlike rkt's one size per image, #2968): the uncompressed layer bytes of its
 * snapshots, counted again for a flattened copy kept in the store. Snapshots shared with other
 * trees count in each. Undefined when a snapshot is missing.
 */
async function treeContentSize(p: TreeStorePaths, tree: Tree): Promise<number | undefined> {
  let size = 0;
  for (const k of tree.layers) {
    const snap = await getSnapshot(p.layers, k);
    if (snap === undefined) return undefined;
    size += snap.info.uncompressedSize;
  }
  const flattened = await stat(join(p.trees, tree.id, "rootfs")).then(
    () => true,
    () => false,
  );
  return flattened ? 2 * size : size;
}

/** What {@link verifyStoredImage} found. */
export type VerifyResult =
  | { status: "not-rendered"; treeId: string }
  | { status: "ok"; treeId: string }
  | { status: "repaired"; treeId: string; problem: RktError; removedSnapshots: string[] };

/**
 * rkt's `image verify` for one image: recomputes the tree hash (snapshots re-walked, devices never
 * read; a flattened rootfs against its own hash) and compares it with the saved one. A bad tree is
 * repaired: snapshots whose content no longer matches their recorded hash are removed (so they
 * are extracted again from the verified blobs), then the tree is rendered again.
 */
export async function verifyStoredImage(
  store: LocalStore,
  id: string,
  o: { signal?: AbortSignal | undefined } = {},
): Promise<VerifyResult> {
  const treeId = await storedTreeId(store, id);
  const paths = storeTreePaths(store);
  const tree = await getTree(paths, treeId);
  if (tree === undefined) return { status: "not-rendered", treeId };
  try {
    await checkTree(paths, treeId);
    return { status: "ok", treeId };
  } catch (e) {
    if (!isRktError(e) || (e.code !== ErrorCode.DigestMismatch && e.code !== ErrorCode.NotFound)) throw e;
    const damaged: string[] = [];
    for (const key of tree.layers) {
      const snap = await getSnapshot(paths.layers, key);
      if (snap?.info.hash === undefined || (await treeHash(snap.fs)) !== snap.info.hash) damaged.push(key);
    }
    // A snapshot is a live overlay mount's lowerdir: removing it would pull files from under a
    // running consumer. The user unmounts first (GC then forgets the mount) and verifies again.
    const inUse = await mountedSnapshots(store, paths);
    const busy = damaged.find((k) => inUse.has(k));
    if (busy !== undefined) {
      throw new RktError(
        ErrorCode.Unavailable,
        `tree ${treeId} is damaged (${e.message}), but its snapshot ${busy} is in use by the overlay mount at ${inUse.get(busy)}; unmount it and verify again`,
      );
    }
    for (const key of damaged) await removeSnapshot(paths.layers, key);
    const removedSnapshots = damaged;
    const flattened = await exists(join(paths.trees, treeId, "rootfs"));
    await renderStoredImage(store, id, { rebuild: true, flatten: flattened, signal: o.signal });
    return { status: "repaired", treeId, problem: e, removedSnapshots };
  }
}

/** Snapshot key → mount target, for every tree a consumer still has mounted. */
async function mountedSnapshots(store: LocalStore, paths: TreeStorePaths): Promise<Map<string, string>> {
  await releaseStaleMounts(store);
  const rows = indexDb(store)
    .prepare(
      `SELECT r.ref AS tree, l.labels AS labels FROM lease_refs r JOIN leases l ON l.id = r.lease_id
       WHERE r.kind = 'tree' AND r.lease_id LIKE 'mount-%'`,
    )
    .all() as { tree: string; labels: string }[];
  const out = new Map<string, string>();
  for (const row of rows) {
    const target = (JSON.parse(row.labels) as { target?: string }).target ?? row.tree;
    for (const key of (await getTree(paths, row.tree))?.layers ?? []) out.set(key, target);
  }
  return out;
}

/** True when overlayfs can be used here: root, and the kernel knows overlay. */
export async function overlaySupported(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const fss = await readFile("/proc/filesystems", "utf8").catch(() => "");
  return /\toverlay$/m.test(fss);
}

/** Mount points (unescaped) of file system type `fstype` in a mountinfo text. Pure. */
export function mountPointsOf(mountinfo: string, fstype?: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(" ");
    const type = line.slice(sep + 3).split(" ")[0];
    if (fstype !== undefined && type !== fstype) continue;
    const mp = fields[4];
    if (mp !== undefined)
      out.add(mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

async function currentMountPoints(fstype?: string): Promise<Set<string>> {
  return mountPointsOf(await readFile("/proc/self/mountinfo", "utf8").catch(() => ""), fstype);
}

/**
 * Mounts `tree` at `target` for one consumer: its upper and work dirs in `cas/mounts/<uuid>/`,
 * and a GC root (lease `mount-<uuid>`, not tied to this process) that keeps the tree, its image
 * and its snapshots until the mount is gone. Returns the lease id.
 */
export async function mountStoredTree(store: LocalStore, tree: Tree, target: string): Promise<string> {
  const uuid = randomUUID();
  const dir = join(mountsDir(store), uuid);
  const lease = store.createLease({ id: `mount-${uuid}`, process: false, labels: { target } });
  try {
    store.leaseAdd(lease, "tree", tree.id);
    store.leaseAdd(lease, "image", tree.image);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await mountTree(tree, target, { upper: join(dir, "upper"), work: join(dir, "work") });
    // Written once mounted: a consumer without it is being set up (or its process died doing so).
    await writeFile(join(dir, "target"), target);
    return lease;
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    store.deleteLease(lease);
    throw e;
  }
}

/** How long a consumer dir without `target` is taken to be still mounting. */
const setupGraceMs = 10 * 60_000;

/**
 * Releases consumer mounts whose target is no longer an overlay mount point (the user ran umount,
 * or the host rebooted): their upper/work dirs and GC roots go. Returns the targets released.
 */
export async function releaseStaleMounts(store: LocalStore): Promise<string[]> {
  const mounted = await currentMountPoints("overlay");
  const released: string[] = [];
  for (const name of await readdir(mountsDir(store)).catch(() => [] as string[])) {
    const dir = join(mountsDir(store), name);
    const target = await readFile(join(dir, "target"), "utf8").catch(() => undefined);
    if (target !== undefined && mounted.has(target)) continue;
    if (target === undefined) {
      const st = await stat(dir).catch(() => undefined);
      if (st !== undefined && Date.now() - st.mtimeMs < setupGraceMs) continue;
    }
    store.deleteLease(`mount-${name}`);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    released.push(target ?? name);
  }
  return released;
}

/**
 * Removes snapshots no tree references (plus stale snapshot temp dirs). Nothing is collected while
 * a render holds a tree lock; merged `flat-…` snapshots (made at mount time, not named by any
 * tree) are kept while any consumer mount or pod exists. Returns the keys removed.
 */
export async function collectSnapshots(store: LocalStore): Promise<string[]> {
  const busy = indexDb(store).prepare("SELECT 1 FROM locks WHERE key LIKE 'tree:%' LIMIT 1").get();
  if (busy !== undefined) {
    const { clearDeadLocks } = await import("../locks.js");
    clearDeadLocks(indexDb(store));
    if (indexDb(store).prepare("SELECT 1 FROM locks WHERE key LIKE 'tree:%' LIMIT 1").get() !== undefined)
      return [];
  }
  const paths = storeTreePaths(store);
  const referenced = new Set<string>();
  for (const name of await readdir(paths.trees).catch(() => [] as string[])) {
    if (name.startsWith(".")) continue;
    const t = await getTree(paths, name);
    if (t !== undefined) for (const k of t.layers) referenced.add(k);
  }
  // Pods mount trees with upper dirs of their own (not under mountsDir): their GC roots count too.
  const liveMounts =
    (await readdir(mountsDir(store)).catch(() => [] as string[])).length > 0 ||
    [...store.liveLeaseIds()].some((id) => id.startsWith("pod-"));
  const removed = await removeStaleSnapshotTemps(paths.layers);
  for (const key of await listSnapshots(paths.layers)) {
    if (referenced.has(key) || (liveMounts && key.startsWith("flat-"))) continue;
    await removeSnapshot(paths.layers, key);
    removed.push(key);
  }
  return removed;
}

/** Options of {@link renderImageTo}. */
export interface RenderToOptions {
  /** `dir` is the root filesystem itself (no `manifest`, no `rootfs/`). */
  rootfsOnly?: boolean | undefined;
  /** Replace an existing `dir` (an overlay mount we made there is unmounted first). */
  overwrite?: boolean | undefined;
  /** Always write a flattened copy, even where overlay is available. */
  flatten?: boolean | undefined;
  /** Called when overlay was expected but the mount failed and a copy is written instead. */
  onFallback?: ((why: RktError | Error) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** Each layer's (or ACI's) bytes as it is extracted; see {@link RenderStoredOptions}. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/** What {@link renderImageTo} did. */
export interface RenderToResult {
  tree: Tree;
  /** `overlay`: `rootfs` is an overlay mount (umount it when done); `copy`: an independent copy. */
  mode: "overlay" | "copy";
  /** The root filesystem: `dir/rootfs`, or `dir` with `rootfsOnly`. */
  rootfs: string;
}

/**
 * `rkt image render`: renders image `id` (tree store) and gives `dir` its root filesystem: as root
 * with overlayfs, an overlay mount of the tree (read-only snapshots below, a private upper dir);
 * otherwise, or with `flatten`, a flattened copy built beside `dir` and renamed into place. Without
 * `rootfsOnly`, `dir/manifest` holds the image's stored manifest. Errors: RKT_INVALID_ARGUMENT
 * for `/` or a `dir` holding another mount, RKT_ALREADY_EXISTS `output directory exists (try
 * --overwrite)`; a failed render leaves `dir` absent.
 */
export async function renderImageTo(
  store: LocalStore,
  id: string,
  dir: string,
  o: RenderToOptions = {},
): Promise<RenderToResult> {
  const target = resolve(dir);
  if (target === "/")
    throw new RktError(ErrorCode.InvalidArgument, "this would delete your root filesystem. Refusing.");
  const present = await exists(target);
  if (present && o.overwrite !== true)
    throw new RktError(ErrorCode.AlreadyExists, "output directory exists (try --overwrite)");
  getImage(store, id); // RKT_NOT_FOUND before any work
  let result: RenderToResult | undefined;
  await renderStoredImage(store, id, {
    signal: o.signal,
    onProgress: o.onProgress,
    use: async (tree) => {
      result = await materialize(store, id, tree, target, present, o);
    },
  });
  return result!;
}

/** Gives `target` the rootfs of `tree` (and the manifest): an overlay mount or a flattened copy. */
async function materialize(
  store: LocalStore,
  id: string,
  tree: Tree,
  target: string,
  present: boolean,
  o: RenderToOptions,
): Promise<RenderToResult> {
  const manifest = o.rootfsOnly === true ? undefined : await catManifest(store, id);
  if (present) await clearTarget(target);
  if (o.flatten !== true && (await overlaySupported())) {
    const rootfs = o.rootfsOnly === true ? target : join(target, "rootfs");
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    try {
      await mountStoredTree(store, tree, rootfs);
      if (manifest !== undefined) await writeFile(join(target, "manifest"), manifest, { mode: 0o644 });
      return { tree, mode: "overlay", rootfs };
    } catch (e) {
      if (await currentMountPoints().then((m) => m.has(rootfs)))
        await unmountTree(rootfs).catch(() => undefined);
      await rm(target, { recursive: true, force: true }).catch(() => undefined);
      if (!(e instanceof Error)) throw e;
      o.onFallback?.(e);
    }
  }
  const tmp = join(dirname(target), `.${basename(target)}.rkt-${randomUUID()}`);
  await withOutsideTemp(store, tmp, async () => {
    try {
      const rootfs = o.rootfsOnly === true ? tmp : join(tmp, "rootfs");
      await mkdir(tmp, { mode: 0o755 });
      await flattenTree(tree, rootfs);
      if (manifest !== undefined) await writeFile(join(tmp, "manifest"), manifest, { mode: 0o644 });
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
  });
  return { tree, mode: "copy", rootfs: o.rootfsOnly === true ? target : join(target, "rootfs") };
}

/**
 * Empties the way for `--overwrite`: our overlay mount at `target` or `target/rootfs` is unmounted
 * (its consumer record is released by GC); any other mount below `target` is refused rather than
 * recursed into.
 */
async function clearTarget(target: string): Promise<void> {
  const mounts = await currentMountPoints();
  for (const mp of [target, join(target, "rootfs")]) {
    if (mounts.has(mp)) {
      await unmountTree(mp);
      mounts.delete(mp);
    }
  }
  for (const mp of mounts) {
    if (mp === target || mp.startsWith(`${target}/`))
      throw new RktError(
        ErrorCode.InvalidArgument,
        `output directory ${target} contains the mount point ${mp}; unmount it first`,
      );
  }
  await rm(target, { recursive: true, force: true });
  await rmdir(target).catch(() => undefined);
}
