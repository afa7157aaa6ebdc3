// ACI rendering as appc's acirenderer (rkt.md §5.2-5.3), on top of snapshots: each ACI's rootfs is
// one snapshot keyed by its image ID; an image filtered by a pathWhitelist (its own, or an
// ancestor's) gets a derived snapshot holding only the allowed entries (files hard-linked, so it
// costs inodes, not bytes). The tree is then the dependency list reversed (base first), so that
// overlayfs (or flattening) gives appc's precedence: the upper image wins, a directory over a
// directory merges with the upper's attributes, a non-directory shadows a lower directory.
//
// Implicit directories (parents an image's tar never named, or directories its filter left out
// while keeping children) are 0755 root:root, as appc creates them; when a lower image names such
// a directory, appc gives it that entry's attributes, and so do we (derived snapshot, see below).
import { createHash } from "node:crypto";
import { chmod, lchown, lstat, readdir, utimes } from "node:fs/promises";
import type { Stats } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Dependency, ImageManifest } from "@rkt/appc";
import { parseImageManifestOrThrow } from "@rkt/appc";
import { ErrorCode, RktError, type BlobProgress, type Digest } from "@rkt/oci";
import { buildSnapshot, extractLayers, readSnapshotManifest, snapshotDir } from "./snapshot.js";
import { flattenDirs, getTree, removeTree, saveTree, type Tree, type TreeStorePaths } from "./tree.js";

/** An ACI in the store: its image ID, manifest and a way to read the archive (any compression). */
export interface AciImage {
  key: string;
  manifest: ImageManifest;
  open: () => Promise<Readable>;
  /** The archive's digest and size, for progress events. */
  digest?: Digest | undefined;
  size?: number | undefined;
}

/** Resolves a dependency to an image already in the store (no discovery, as rkt). RKT_NOT_FOUND otherwise. */
export type AciResolver = (dep: Dependency, dependent: AciImage) => Promise<AciImage>;

/** One element of a dependency list. */
export interface DepEntry {
  image: AciImage;
  /** Depth: 0 for the top image. */
  level: number;
}

/**
 * The dependency list of `top`, top first, as appc's CreateDepListFromImageID: each image's
 * dependencies are inserted right after it, so siblings end up in reverse manifest order and each
 * subtree follows its root (A deps [B, C], C deps [D] -> [A, C, D, B]). Like appc there is no
 * de-duplication; unlike appc a cycle is refused (RKT_INVALID_MANIFEST) instead of looping.
 */
export async function createDepList(
  top: AciImage,
  resolve: AciResolver,
  maxImages = 256,
): Promise<DepEntry[]> {
  const list: DepEntry[] = [{ image: top, level: 0 }];
  for (let i = 0; i < list.length; i++) {
    const cur = list[i]!;
    for (const dep of cur.image.manifest.dependencies ?? []) {
      const img = await resolve(dep, cur.image);
      list.splice(i + 1, 0, { image: img, level: cur.level + 1 });
      if (list.length > maxImages) {
        throw new RktError(
          ErrorCode.InvalidManifest,
          `image ${top.key}: more than ${maxImages} images in its dependency list (a dependency cycle?)`,
        );
      }
    }
  }
  return list;
}

/** The tree ID of a dependency list, as rkt: `deps-sha512-<64 hex>` over the comma-joined image keys. Pure. */
export function aciTreeId(keys: readonly string[]): string {
  const hex = createHash("sha512").update(keys.join(",")).digest("hex");
  return `deps-sha512-${hex.slice(0, 64)}`;
}

/** appc's pathWhitelist entries as root-relative paths (`/c/` -> `c`). Pure. */
export function whitelistPaths(pwl: readonly string[] | undefined): Set<string> | undefined {
  if (pwl === undefined || pwl.length === 0) return undefined;
  return new Set(
    pwl.map((p) =>
      p
        .split("/")
        .filter((c) => c !== "" && c !== ".")
        .join("/"),
    ),
  );
}

/**
 * The whitelist an image inherits from its ancestors (appc getUpperPWLM): walking back from `pos`
 * to the top, every image at a lower level than the previous one visited that has a whitelist
 * replaces the result, so the one closest to the top wins. Quirk kept: a preceding sibling
 * subtree can count as an ancestor when the real ancestors have none. Pure.
 */
export function upperPathWhitelist(list: readonly DepEntry[], pos: number): Set<string> | undefined {
  let pwlm: Set<string> | undefined;
  let curlevel = list[pos]!.level;
  for (let i = pos; i >= 0; i--) {
    const e = list[i]!;
    const own = whitelistPaths(e.image.manifest.pathWhitelist);
    if (e.level < curlevel && own !== undefined) pwlm = own;
    curlevel = e.level;
  }
  return pwlm;
}

/** Options of {@link renderAci}. */
export interface RenderAciOptions {
  flatten?: boolean | undefined;
  rebuild?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** Each image's archive bytes as it is extracted. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * Renders ACI `top` with its dependencies (resolved from the store by `resolve`) into a tree
 * `deps-sha512-…`: one snapshot per image (verified against its image ID while extracting), a
 * derived snapshot per whitelisted image, and the top image's manifest saved with the tree.
 */
export async function renderAci(
  p: TreeStorePaths,
  top: AciImage,
  resolve: AciResolver,
  o: RenderAciOptions = {},
): Promise<Tree> {
  const list = await createDepList(top, resolve);
  const id = aciTreeId(list.map((e) => e.image.key));
  if (o.rebuild !== true) {
    const t = await getTree(p, id);
    if (t !== undefined && o.flatten !== true) return t;
  } else await removeTree(p, id);
  const keys: string[] = [];
  // Each image extracted once (in parallel: they are independent), all published together.
  const snaps = await extractLayers(
    p.layers,
    list.map((e) => ({
      key: e.image.key,
      open: e.image.open,
      aciImageId: e.image.key,
      what: `image ${e.image.key}`,
      digest: e.image.digest,
      size: e.image.size,
    })),
    { format: "aci", signal: o.signal, onProgress: o.onProgress },
  );
  // Per image: its filter (own whitelist for non-directories, inherited whitelist for all) and
  // the directories it has only implicitly (parents created 0755, or left out by a filter).
  const views = list.map((e, i) => {
    const own = whitelistPaths(e.image.manifest.pathWhitelist);
    const pwlm = upperPathWhitelist(list, i);
    const filter =
      own === undefined && pwlm === undefined
        ? undefined
        : (rel: string, isDir: boolean): boolean =>
            (isDir || own === undefined || own.has(rel)) && (pwlm === undefined || pwlm.has(rel));
    const implicit = new Set(snaps[i]!.info.implicitDirs ?? []);
    return { own, pwlm, filter, implicit, fs: join(snapshotDir(p.layers, e.image.key), "fs") };
  });
  // appc extracts upper images first and lets a lower image's directory entry set the attributes
  // of a directory that the upper ones only created as a parent; overlayfs would show the upper's
  // implicit 0755 instead, so such directories get the lower entry's attributes in a derived snapshot.
  const explicitDir = async (j: number, rel: string): Promise<Stats | undefined> => {
    const v = views[j]!;
    if (v.implicit.has(rel) || (v.filter !== undefined && !v.filter(rel, true))) return undefined;
    const st = await lstat(join(v.fs, rel)).catch(() => undefined);
    return st?.isDirectory() === true ? st : undefined;
  };
  for (const [i, e] of list.entries()) {
    const v = views[i]!;
    const fixes: [string, Stats][] = [];
    const candidates = new Set(v.implicit);
    if (v.filter !== undefined)
      for (const d of await dirsUnder(v.fs)) if (!v.filter(d, true)) candidates.add(d);
    for (const rel of [...candidates].sort()) {
      if (!(await lstat(join(v.fs, rel)).catch(() => undefined))?.isDirectory()) continue;
      for (let j = i + 1; j < list.length; j++) {
        const st = await explicitDir(j, rel);
        if (st !== undefined) {
          fixes.push([rel, st]);
          break;
        }
      }
    }
    if (v.filter === undefined && fixes.length === 0) {
      keys.push(snaps[i]!.key);
      continue;
    }
    const tag = createHash("sha256")
      .update(
        JSON.stringify([
          [...(v.own ?? [])].sort(),
          v.pwlm === undefined ? null : [...v.pwlm].sort(),
          fixes.map(([r, st]) => [r, st.mode, st.uid, st.gid, st.mtimeMs]),
        ]),
      )
      .digest("hex")
      .slice(0, 32);
    const key = `${e.image.key}-derived-${tag}`;
    await buildSnapshot(p.layers, key, async (fsDir) => {
      await flattenDirs([v.fs], fsDir, { keepWhiteouts: true, linkFiles: true, filter: v.filter });
      for (const [rel, st] of fixes) {
        const d = join(fsDir, rel);
        if (!(await lstat(d).catch(() => undefined))?.isDirectory()) continue; // filtered away
        await lchown(d, st.uid, st.gid);
        await chmod(d, st.mode & 0o7777);
        await utimes(d, st.mtime, st.mtime);
      }
      return { format: "derived", entries: 0, uncompressedSize: 0, skipped: [] };
    });
    keys.push(key);
  }
  const manifest = await readSnapshotManifest(p.layers, top.key);
  parseImageManifestOrThrow(manifest); // the stored manifest must still be the image's
  return saveTree(
    p,
    { id, kind: "aci", image: top.key, layers: keys.reverse() },
    { flatten: o.flatten, manifest },
  );
}

/** All directories under `root` (root-relative), without following symlinks. */
async function dirsUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const ent of await readdir(rel === "" ? root : join(root, rel), { withFileTypes: true })) {
      if (!ent.isDirectory()) continue;
      const r = rel === "" ? ent.name : `${rel}/${ent.name}`;
      out.push(r);
      await walk(r);
    }
  };
  await walk("");
  return out;
}
