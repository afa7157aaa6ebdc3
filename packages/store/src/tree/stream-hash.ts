// The tree hash of a snapshot, computed while its layer is extracted instead of by reading the
// files back (hash.ts walks a finished tree; this must give the same bytes in the same order).
//
// The extractor tells this model every change it makes (a name created, replaced or removed,
// attributes, xattrs, hard links), with the attributes the kernel ends up giving it. The hash is
// sequential over the entries in walk order (DFS, names in byte order), so an entry can be fed
// only once everything before it in that order is final:
//   - a regular file's header and bytes are fed as the file is written, after every pending
//     entry that sorts before it (directories, symlinks, devices, empty files: metadata only);
//   - metadata-only entries wait in `pending` (sorted) until a file that sorts after them, or the
//     end of the layer;
//   - a change to an entry already fed, or a new entry sorting before the last one fed (a tar
//     not in walk order: GNU tar writes directories in readdir order), makes the stream order
//     useless ("reordered"): the model then walks itself at the end and reads only the file
//     contents back, in order;
//   - when the model cannot know what the kernel did (not root and a set-group-ID directory, a
//     target directory that was not empty or already had xattrs), it gives up ("unknown") and the
//     caller walks the tree with treeHash.
import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hashHeaderText } from "./hash.js";

/** The typeflags the tree hash knows ("1", hard link, is derived). */
export type Typeflag = "0" | "2" | "3" | "4" | "5" | "6";

/** One inode of the tree being built: what lstat and getfattr will say about each of its names. */
export interface ModelInode {
  tf: Typeflag;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: bytes. */
  size: number;
  /** Symlinks: the target. */
  linkname: string;
  major: number;
  minor: number;
  xattrs: Map<string, Buffer> | undefined;
  /** The name fed first (a regular file's data goes with it; later names are hard links). */
  first?: string | undefined;
}

/** How the hash was (or will be) obtained. */
export type StreamHashSource = "stream" | "reordered";

const sgid = 0o2000;

/** The walk-order key of a root-relative path: components compare before their children (NUL < any byte). */
function walkKey(rel: string): Buffer {
  return Buffer.from(rel.includes("/") ? rel.replaceAll("/", "\0") : rel, "utf8");
}

/**
 * A tree hash fed by the extractor. `isRoot`: created entries are owned by root unless chowned;
 * otherwise by this process. The root directory's attributes come from `root`.
 */
export class StreamTreeHash {
  private readonly h: Hash = createHash("sha512");
  private readonly nodes = new Map<string, ModelInode>();
  private pending: { key: Buffer; rel: string }[] = [];
  private last: Buffer | undefined;
  private reason: string | undefined;
  private unknown = false;
  private readonly isRoot: boolean;
  private readonly euid: number;
  private readonly egid: number;

  constructor(
    root: { mode: number; uid: number; gid: number },
    o: { isRoot: boolean; euid: number; egid: number },
  ) {
    this.isRoot = o.isRoot;
    this.euid = o.euid;
    this.egid = o.egid;
    this.put("", { tf: "5", mode: root.mode & 0o7777, uid: root.uid, gid: root.gid });
  }

  /** Why the stream order could not be used (undefined while it can). */
  get divergence(): string | undefined {
    return this.unknown ? `unknown: ${this.reason}` : this.reason;
  }

  /** Gives up on knowing the tree (the caller walks it instead). */
  giveUp(why: string): void {
    if (!this.unknown) this.reason = why;
    this.unknown = true;
  }

  private diverge(why: string): void {
    this.reason ??= why;
  }

  private fedKey(key: Buffer): boolean {
    return this.last !== undefined && Buffer.compare(key, this.last) <= 0;
  }

  /** The owner a new entry gets from the kernel when nobody chowns it (set-group-ID parents pass their group). */
  owner(parent: string): { uid: number; gid: number } {
    const p = this.nodes.get(parent);
    if (p !== undefined && (p.mode & sgid) !== 0) {
      // Root gets the group and we know it; otherwise later chmods may drop bits in ways we do not model.
      if (!this.isRoot) this.giveUp(`set-group-ID directory ${JSON.stringify(parent)}`);
      return { uid: this.isRoot ? 0 : this.euid, gid: p.gid };
    }
    return { uid: this.isRoot ? 0 : this.euid, gid: this.isRoot ? 0 : this.egid };
  }

  /** True when `rel` names something now. */
  has(rel: string): boolean {
    return this.nodes.has(rel);
  }

  /** A new name with a new inode (the old name, if any, was removed first). */
  put(rel: string, a: Pick<ModelInode, "tf" | "mode" | "uid" | "gid"> & Partial<ModelInode>): ModelInode {
    const node: ModelInode = {
      size: 0,
      linkname: "",
      major: 0,
      minor: 0,
      xattrs: undefined,
      ...a,
      mode: a.mode & 0o7777,
    };
    this.addName(rel, node);
    return node;
  }

  /** Another name of the inode at `target` (a hard link). */
  link(rel: string, target: string): void {
    const node = this.nodes.get(target);
    if (node === undefined) {
      this.giveUp(`hard link target ${JSON.stringify(target)} unknown`);
      return;
    }
    this.addName(rel, node);
  }

  private addName(rel: string, node: ModelInode): void {
    const key = walkKey(rel);
    if (this.nodes.has(rel)) this.remove(rel, false);
    this.nodes.set(rel, node);
    if (this.fedKey(key)) {
      this.diverge(`${JSON.stringify(rel)} comes after an entry that sorts later`);
      return;
    }
    this.insertPending(key, rel);
  }

  private insertPending(key: Buffer, rel: string): void {
    const list = this.pending;
    let lo = 0;
    let hi = list.length;
    // In a tar in walk order, new names sort last: check the end first.
    if (hi > 0 && Buffer.compare(list[hi - 1]!.key, key) < 0) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(list[mid]!.key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, { key, rel });
  }

  private dropPending(key: Buffer): void {
    const list = this.pending;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(list[mid]!.key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo < list.length && Buffer.compare(list[lo]!.key, key) === 0) list.splice(lo, 1);
  }

  /** Removes `rel` (and, with `recursive`, everything under it: `rm -rf`). */
  remove(rel: string, recursive = true): void {
    const doomed = [rel];
    if (recursive && this.nodes.get(rel)?.tf === "5") {
      const prefix = rel === "" ? "" : `${rel}/`;
      for (const k of this.nodes.keys()) if (k !== rel && k.startsWith(prefix)) doomed.push(k);
    }
    for (const k of doomed) {
      if (!this.nodes.delete(k)) continue;
      const key = walkKey(k);
      if (this.fedKey(key)) this.diverge(`${JSON.stringify(k)} changed after it was hashed`);
      else this.dropPending(key);
    }
  }

  /** Changes the attributes of the inode at `rel` (a directory entry over a directory, deferred chmods). */
  attrs(rel: string, a: Partial<Pick<ModelInode, "mode" | "uid" | "gid">>): void {
    const node = this.nodes.get(rel);
    if (node === undefined) return;
    const mode = a.mode === undefined ? node.mode : a.mode & 0o7777;
    const uid = a.uid ?? node.uid;
    const gid = a.gid ?? node.gid;
    if (mode === node.mode && uid === node.uid && gid === node.gid) return;
    this.changed(rel);
    node.mode = mode;
    node.uid = uid;
    node.gid = gid;
  }

  /** Sets one xattr of the inode at `rel`. */
  xattr(rel: string, name: string, value: Buffer): void {
    const node = this.nodes.get(rel);
    if (node === undefined) return;
    const old = node.xattrs?.get(name);
    if (old !== undefined && old.equals(value)) return;
    this.changed(rel);
    (node.xattrs ??= new Map()).set(name, value);
  }

  // A change to an inode is a change to every name of it; with hard links we do not track the
  // names, so any fed entry then counts (the rare case costs a re-walk, never a wrong hash).
  private changed(rel: string): void {
    const node = this.nodes.get(rel)!;
    if (this.fedKey(walkKey(rel)) || (node.tf === "0" && node.first !== undefined))
      this.diverge(`${JSON.stringify(rel)} changed after it was hashed`);
  }

  /**
   * A regular file whose `size` bytes are about to be written: returns the function to pass each
   * chunk to, or undefined when the stream order is no longer used.
   */
  file(rel: string, node: ModelInode): ((chunk: Buffer) => void) | undefined {
    if (this.reason !== undefined || node.size === 0) return undefined;
    const key = walkKey(rel);
    this.flushBefore(key);
    this.dropPending(key);
    feedEntry(this.h, rel, node);
    this.last = key;
    const h = this.h;
    return (chunk) => h.update(chunk);
  }

  private flushBefore(key: Buffer | undefined): void {
    const list = this.pending;
    let n = 0;
    while (n < list.length && (key === undefined || Buffer.compare(list[n]!.key, key) < 0)) {
      const e = list[n++]!;
      feedEntry(this.h, e.rel, this.nodes.get(e.rel)!);
      this.last = e.key;
    }
    if (n > 0) list.splice(0, n);
  }

  /**
   * The tree hash (`sha512-<hex>`) of `dir`, the directory this model describes. In walk order
   * nothing is read; reordered, the model walks itself and reads regular files' bytes back;
   * unknown: undefined (the caller walks the tree with treeHash).
   */
  finish(dir: string): { hash: string; source: StreamHashSource } | undefined {
    if (this.unknown) return undefined;
    if (this.reason === undefined) {
      this.flushBefore(undefined);
      return { hash: `sha512-${this.h.digest("hex")}`, source: "stream" };
    }
    const h = createHash("sha512");
    const names = [...this.nodes.keys()].map((rel) => ({ rel, key: walkKey(rel) }));
    names.sort((a, b) => Buffer.compare(a.key, b.key));
    const first = new Map<ModelInode, string>();
    const buf = Buffer.allocUnsafe(1 << 20);
    for (const { rel } of names) {
      const node = this.nodes.get(rel)!;
      const hard = node.tf === "0" && first.has(node);
      feedEntry(h, rel, node, first);
      if (node.tf !== "0" || hard || node.size === 0) continue;
      const path = rel === "" ? dir : join(dir, rel);
      if (node.size <= 4 << 20) {
        h.update(readFileSync(path));
        continue;
      }
      const fd = openSync(path, "r");
      try {
        for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
      } finally {
        closeSync(fd);
      }
    }
    return { hash: `sha512-${h.digest("hex")}`, source: "reordered" };
  }
}

// One entry's header into `h`. The first name of a regular file's inode carries its data (the
// caller feeds the bytes next); later names are hard links to it. `first` tracks that per inode
// for a walk of its own; without it, the inode remembers.
function feedEntry(h: Hash, rel: string, node: ModelInode, first?: Map<ModelInode, string>): void {
  const name = rel === "" ? "." : rel;
  const seen = first === undefined ? node.first : first.get(node);
  const hard = node.tf === "0" && seen !== undefined;
  if (node.tf === "0" && !hard) {
    if (first === undefined) node.first = name;
    else first.set(node, name);
  }
  const dev = node.tf === "3" || node.tf === "4";
  h.update(
    hashHeaderText({
      Name: name,
      Mode: node.mode,
      Uid: node.uid,
      Gid: node.gid,
      Size: node.tf === "0" && !hard ? node.size : 0,
      Typeflag: hard ? "1" : node.tf,
      Linkname: hard ? seen : node.tf === "2" ? node.linkname : "",
      Devmajor: dev ? node.major : 0,
      Devminor: dev ? node.minor : 0,
      Xattrs: [...(node.xattrs ?? [])].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
    }),
  );
}
