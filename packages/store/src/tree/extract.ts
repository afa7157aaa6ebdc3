// The safe layer extractor: one layer (or one ACI) tar stream -> one directory, with every write
// confined to that directory. Decisions (documented in the README of this folder):
//   - names: a leading `/` and `./` are stripped (absolute names are rooted at the image root, as
//     GNU tar, containerd and umoci do); a `..` that would climb above the root is refused; NUL refused.
//   - parents: every parent component is lstat'ed from the root (cached per layer); a symlink in the
//     way is refused (including one the same layer created), a non-directory in the way is refused;
//     missing parents are created 0755 root:root. Files are opened O_CREAT|O_EXCL|O_NOFOLLOW after the
//     old entry (if any) was removed, so the final component never follows a link either.
//   - duplicates: the later entry wins (tar semantics); a directory over a directory keeps the
//     contents and takes the new attributes (image-spec "applying changesets").
//   - hard links: the target is root-relative, resolved the same way, must already exist in this
//     layer and must not be a directory; a link to a symlink links the symlink itself (never followed).
//   - devices/FIFOs: created by mknod (batched, root only) and never opened or read.
//   - sparse files (GNU `S`, PAX GNU.sparse.*) are refused: OCI layers SHOULD NOT use them, and
//     refusing is the only way to bound the work without trusting the declared real size.
//   - whiteouts (OCI layers only): `.wh.x` -> 0:0 character device `x`; `.wh..wh..opq` -> the opaque
//     xattr on its directory; other `.wh..wh.*` meta entries are skipped (moby). Without root, they
//     are kept as empty `.wh.` marker files ("aufs" form) which flattening understands.
import { createHash, type Hash } from "node:crypto";
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  futimesSync,
  openSync,
  readFileSync,
  writevSync,
} from "node:fs";
import {
  chmod,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  rm,
  symlink,
  utimes,
} from "node:fs/promises";
import { join, posix } from "node:path";
import type { Readable } from "node:stream";
import type { Header } from "tar-stream";
import { decompressStream, tarStream, type Compression } from "@rkt/appc";
import { DigestMismatchError, ErrorCode, RktError, verifiableAlgorithm, type Digest } from "@rkt/oci";
import { treeHash } from "./hash.js";
import { StreamTreeHash, type StreamHashSource } from "./stream-hash.js";
import { makeNodes, setXattrs, type NodeSpec } from "./tools.js";

/** How whiteouts are materialized: overlayfs form (root) or kept as `.wh.` marker files. */
export type WhiteoutMode = "overlay" | "aufs";

/** Options of {@link extractLayer}. */
export interface ExtractLayerOptions {
  /** Names the layer in errors (e.g. its digest). */
  what: string;
  /** `oci`: a layer tar with whiteouts. `aci`: an ACI; only `rootfs/…` is extracted, `manifest` is returned. */
  format?: "oci" | "aci" | undefined;
  /** sha256 of the uncompressed tar (OCI diffID) to verify while extracting. */
  diffId?: Digest | undefined;
  /** For ACIs: the image ID (`sha512-<64 hex>`) the uncompressed archive must hash to. */
  aciImageId?: string | undefined;
  /** Largest entry (declared size), bytes. Default 64 GiB. Over it: RKT_TOO_LARGE. */
  maxEntrySize?: number | undefined;
  /** Most entries in the archive. Default 1,000,000. Over it: RKT_TOO_LARGE. */
  maxEntries?: number | undefined;
  /** Whiteout form; default `overlay` as root, `aufs` otherwise. */
  whiteouts?: WhiteoutMode | undefined;
  /** Opaque xattr name; default `trusted.overlay.opaque` as root, `user.overlay.opaque` otherwise. */
  opaqueXattr?: string | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Compute the tree hash of `dest` (see treeHash) as entries are written, so that nothing is
   * read back when the tar is in walk order (result `treeHash`). Default false.
   */
  treeHash?: boolean | undefined;
}

/** What {@link extractLayer} did. */
export interface ExtractLayerResult {
  /** sha256 of the uncompressed tar (always computed). */
  diffId: Digest;
  /** sha512 hex of the uncompressed stream (computed for ACIs). */
  sha512Hex?: string | undefined;
  compression: Compression;
  entries: number;
  uncompressedSize: number;
  /** The ACI manifest bytes (format `aci`). */
  manifest?: Buffer | undefined;
  /** Whiteouts and opaque directories written in overlay form (0 means the layer hides nothing). */
  whiteouts: number;
  /** Directories created as parents of entries, with no entry of their own (sorted). */
  implicitDirs: string[];
  /** Entries not materialized, each with the reason (devices when not root, non-UTF-8 xattr values). */
  skipped: string[];
  /** With `treeHash`: the tree hash of `dest` as treeHash computes it. */
  treeHash?: string | undefined;
  /**
   * How it was computed: `stream` from the tar stream alone; `reordered` from the entries
   * recorded while extracting, in walk order, with file contents read back (a tar not in walk
   * order); `walk` by treeHash over the finished directory.
   */
  treeHashFrom?: StreamHashSource | "walk" | undefined;
}

const isRoot = process.getuid?.() === 0;
const rootGroup = process.getegid?.() === 0;

// The umask, read without changing it (process.umask() with no argument is deprecated).
let umaskCache: number | undefined;
function umask(): number {
  if (umaskCache === undefined) {
    const m = /^Umask:\s*([0-7]+)/m.exec(readFileSync("/proc/self/status", "utf8"));
    umaskCache = m === null ? 0o777 : parseInt(m[1]!, 8); // unknown: assume the worst, always chmod
  }
  return umaskCache;
}
const defaultMaxEntrySize = 64 * 1024 ** 3;
// The largest owner id: 2^32 - 1 means "unchanged" to chown.
const maxId = 2 ** 32 - 2;
const defaultMaxEntries = 1_000_000;
const maxManifest = 1 << 20;
const smallFile = 256 * 1024;
// gunzip output per threadpool round trip: zlib's 16 KiB default made ~20,000 round trips (and
// main-thread callbacks) per 300 MB; 256 KiB makes ~1,200.
const inflateChunk = 256 << 10;
const opaqueValue = Buffer.from("y");

function xattrMap(list: readonly [string, Buffer][]): Map<string, Buffer> | undefined {
  return list.length === 0 ? undefined : new Map(list);
}
/** A whiteout device is a 0:0 character device (overlayfs). */
export const whiteoutPrefix = ".wh.";
export const opaqueMarker = ".wh..wh..opq";

function refuse(what: string, name: string, problem: string): RktError {
  return new RktError(ErrorCode.InvalidArchive, `${what}: entry ${JSON.stringify(name)}: ${problem}`);
}

/**
 * Cleans a tar entry name to a root-relative POSIX path ("" for the root). Strips leading `/` and
 * `./`; refuses NUL and any `..` that climbs above the root. Pure.
 */
export function cleanEntryName(raw: string, what: string): string {
  if (raw.includes("\0")) throw refuse(what, raw, "name contains a NUL byte");
  const stripped = raw.replace(/^\/+/, "");
  if (stripped === "") return "";
  const n = posix.normalize(stripped).replace(/\/+$/, "");
  if (n === ".." || n.startsWith("../")) throw refuse(what, raw, "path escapes the target directory");
  return n === "." ? "" : n;
}

// tar-stream's Header, as it really arrives: `type` is null for typeflags it does not know (GNU
// sparse `S`…), `pax` holds the decoded PAX records.
type Headers = Omit<Header, "type" | "pax"> & {
  type: Header["type"] | null;
  pax?: Record<string, string> | null | undefined;
};

interface Deferred extends NodeSpec {
  rel: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  whiteout: boolean;
}

function paxNumber(h: Headers, key: string): number | undefined {
  const v = h.pax?.[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Extracts one layer stream (compressed or not: detected by magic) into `dest`, an existing
 * directory that this call owns (normally empty). The stream is hashed while extracting; with
 * `diffId`/`aciImageId` a mismatch fails after the last byte (RKT_DIGEST_MISMATCH) and the caller
 * must discard `dest` (the snapshot layer does). Errors: RKT_INVALID_ARCHIVE naming the entry
 * (escape, symlink or non-directory in the path, bad hard link, bad whiteout, sparse or unknown
 * entry type, corrupt or truncated compression/tar), RKT_TOO_LARGE (caps), RKT_IO (tools, fs).
 */
export async function extractLayer(
  src: Readable,
  dest: string,
  o: ExtractLayerOptions,
): Promise<ExtractLayerResult> {
  const what = o.what;
  const format = o.format ?? "oci";
  const maxEntrySize = o.maxEntrySize ?? defaultMaxEntrySize;
  const maxEntries = o.maxEntries ?? defaultMaxEntries;
  const wmode: WhiteoutMode = o.whiteouts ?? (isRoot ? "overlay" : "aufs");
  const opaqueName = o.opaqueXattr ?? (isRoot ? "trusted.overlay.opaque" : "user.overlay.opaque");

  // Refused before any byte is read: content that cannot be verified is never extracted.
  const diffAlg = o.diffId === undefined ? "sha256" : verifiableAlgorithm(o.diffId);
  // Read before any stream is wired: nothing may await between piping and consuming the entries.
  const fresh = (await readdir(dest)).length === 0;
  const model =
    o.treeHash === true && fresh
      ? new StreamTreeHash(await lstat(dest), {
          isRoot,
          euid: process.geteuid?.() ?? 0,
          egid: process.getegid?.() ?? 0,
        })
      : undefined;
  let decompressed: { compression: Compression; stream: Readable };
  try {
    decompressed = await decompressStream(src, { chunkSize: inflateChunk });
  } catch (e) {
    throw new RktError(ErrorCode.InvalidArchive, `${what}: cannot read the layer: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const sha256: Hash = createHash("sha256");
  const sha512: Hash | undefined =
    format === "aci" || o.aciImageId !== undefined || diffAlg === "sha512" ? createHash("sha512") : undefined;
  let size = 0;
  const ex = tarStream().extract();
  const raw = decompressed.stream;
  raw.on("data", (chunk: Buffer) => {
    sha256.update(chunk);
    sha512?.update(chunk);
    size += chunk.length;
  });
  let feedError: unknown;
  raw.on("error", (e) => {
    feedError = e;
    ex.destroy(e);
  });
  raw.pipe(ex);
  const onAbort = (): void => {
    ex.destroy(new RktError(ErrorCode.Aborted, `${what}: aborted`));
  };
  o.signal?.addEventListener("abort", onAbort, { once: true });

  const dirs = new Set<string>([""]); // verified real directories (root-relative)
  const deferred = new Map<string, Deferred>();
  const deferredLinks: { rel: string; target: string }[] = [];
  const xattrs = new Map<string, Map<string, Buffer>>();
  const dirTimes = new Map<string, Date>();
  const whitedOut = new Set<string>();
  const opaque = new Set<string>();
  const implicit = new Set<string>(); // parents created without an entry of their own
  // When `dest` starts empty, a path this layer never created cannot exist: skip the lstat.
  const created = new Set<string>();
  const skipped: string[] = [];
  let manifest: Buffer | undefined;
  let entries = 0;

  const abs = (rel: string): string => (rel === "" ? dest : join(dest, rel));
  const underOpaque = (k: string): boolean =>
    [...opaque].some((op) => op !== k && (op === "" || k.startsWith(`${op}/`)));
  const under = (rel: string, p: string): boolean => p === rel || p.startsWith(`${rel}/`);

  // Ensures `rel` is a real directory reached without symlinks, creating missing ones (0755).
  async function ensureDir(rel: string, entry: string, create = true): Promise<void> {
    if (dirs.has(rel)) return;
    const parts = rel.split("/");
    let cur = "";
    for (const part of parts) {
      cur = cur === "" ? part : `${cur}/${part}`;
      if (dirs.has(cur)) continue;
      if (deferred.has(cur)) throw refuse(what, entry, `parent ${JSON.stringify(cur)} is not a directory`);
      let st;
      try {
        st = await lstat(abs(cur));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        if (!create) throw refuse(what, entry, `${JSON.stringify(cur)} does not exist in this layer`);
        await mkdir(abs(cur));
        await chmod(abs(cur), 0o755); // exact, whatever the umask
        if (model !== undefined) {
          const parentRel = posix.dirname(cur) === "." ? "" : posix.dirname(cur);
          model.put(cur, { tf: "5", mode: 0o755, ...model.owner(parentRel) });
        }
        created.add(cur);
        dirs.add(cur);
        implicit.add(cur);
        continue;
      }
      if (st.isSymbolicLink())
        throw refuse(what, entry, `path goes through the symlink ${JSON.stringify(cur)}`);
      if (!st.isDirectory()) throw refuse(what, entry, `parent ${JSON.stringify(cur)} is not a directory`);
      dirs.add(cur);
    }
  }

  // Removes whatever is at `rel` unless both it and the new entry are directories; returns true when
  // an existing directory is kept (merge).
  async function clearFor(rel: string, isDir: boolean): Promise<boolean> {
    if (deferred.has(rel)) {
      deferred.delete(rel);
      model?.remove(rel);
      return false;
    }
    if (fresh && !created.has(rel)) {
      created.add(rel); // the caller creates it next
      return false;
    }
    let st;
    try {
      st = await lstat(abs(rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw e;
    }
    if (isDir && st.isDirectory()) return true;
    if (st.isDirectory()) {
      for (const d of [...dirs]) if (under(rel, d)) dirs.delete(d);
      for (const d of [...implicit]) if (under(rel, d)) implicit.delete(d);
      for (const k of [...deferred.keys()]) if (under(rel, k)) deferred.delete(k);
      for (const k of [...xattrs.keys()]) if (under(rel, k)) xattrs.delete(k);
      for (const k of [...dirTimes.keys()]) if (under(rel, k)) dirTimes.delete(k);
    }
    xattrs.delete(rel);
    await rm(abs(rel), { recursive: true, force: true });
    model?.remove(rel);
    return false;
  }

  // The xattrs an entry's PAX records carry. tar-stream decodes PAX values as UTF-8; a binary
  // value (e.g. security.capability) cannot be recovered exactly, so it is skipped (once, when
  // recorded) rather than written corrupted.
  function paxXattrs(h: Headers): [string, Buffer][] {
    const pax = h.pax;
    if (pax === undefined || pax === null) return [];
    const out: [string, Buffer][] = [];
    for (const [k, v] of Object.entries(pax)) {
      if (!k.startsWith("SCHILY.xattr.") || v.includes("\uFFFD")) continue;
      out.push([k.slice("SCHILY.xattr.".length), Buffer.from(v, "utf8")]);
    }
    return out;
  }

  function addXattrs(rel: string, h: Headers): void {
    const pax = h.pax;
    if (pax === undefined || pax === null) return;
    for (const [k, v] of Object.entries(pax)) {
      if (k.startsWith("SCHILY.xattr.") && v.includes("\uFFFD"))
        skipped.push(`${rel}: xattr ${k.slice("SCHILY.xattr.".length)} (binary value)`);
    }
    for (const [name, value] of paxXattrs(h)) {
      let m = xattrs.get(rel);
      if (m === undefined) xattrs.set(rel, (m = new Map<string, Buffer>()));
      m.set(name, value);
      model?.xattr(rel, name, value);
    }
  }

  async function handle(h: Headers, body: AsyncIterable<unknown>): Promise<void> {
    const rawName = h.name;
    if (h.type === null || h.type === undefined) {
      throw refuse(what, rawName, "unsupported entry type (GNU sparse or unknown typeflag)");
    }
    if (
      h.pax !== undefined &&
      h.pax !== null &&
      Object.keys(h.pax).some((k) => k.startsWith("GNU.sparse."))
    ) {
      throw refuse(what, rawName, "sparse files are not supported");
    }
    const declared = h.size ?? 0;
    if (declared > maxEntrySize) {
      throw new RktError(
        ErrorCode.TooLarge,
        `${what}: entry ${JSON.stringify(rawName)}: ${declared} bytes is over the ${maxEntrySize}-byte cap`,
      );
    }
    let rel = cleanEntryName(rawName, what);
    if (format === "aci") {
      if (rel === "manifest" && h.type === "file") {
        if (declared > maxManifest) throw new RktError(ErrorCode.TooLarge, `${what}: manifest is over 1 MiB`);
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c as Buffer);
        manifest = Buffer.concat(chunks);
        return;
      }
      if (rel === "rootfs") rel = "";
      else if (rel.startsWith("rootfs/")) rel = rel.slice(7);
      else return; // appc: anything outside rootfs/ is ignored
    }
    const uid = paxNumber(h, "uid") ?? h.uid ?? 0;
    const gid = paxNumber(h, "gid") ?? h.gid ?? 0;
    // PAX records are text: a negative or huge owner reached lchown as a RangeError (test/fuzz).
    for (const [k, v] of [
      ["uid", uid],
      ["gid", gid],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > maxId) throw refuse(what, rawName, `invalid ${k} ${v}`);
    }
    const mtimeSec = paxNumber(h, "mtime");
    const mtime = mtimeSec !== undefined ? new Date(mtimeSec * 1000) : (h.mtime ?? new Date(0));
    if (Number.isNaN(mtime.getTime())) throw refuse(what, rawName, "invalid mtime");
    const mode = (h.mode ?? 0o644) & 0o7777;

    if (rel === "") {
      if (h.type !== "directory") throw refuse(what, rawName, "the root must be a directory");
      if (isRoot) await lchown(dest, uid, gid);
      await chmod(dest, mode);
      model?.attrs("", isRoot ? { mode, uid, gid } : { mode });
      dirTimes.set("", mtime);
      addXattrs("", h);
      return;
    }
    const base = posix.basename(rel);
    const parent = posix.dirname(rel) === "." ? "" : posix.dirname(rel);

    if (format === "oci" && base.startsWith(whiteoutPrefix)) {
      await ensureDir(parent, rawName);
      if (base === opaqueMarker) {
        if (wmode === "aufs") await writeMarker(rel, parent);
        else {
          opaque.add(parent);
          model?.xattr(parent, opaqueName, opaqueValue);
        }
        return;
      }
      if (base.startsWith(`${whiteoutPrefix}${whiteoutPrefix}`)) return; // AUFS meta (.wh..wh.plnk…)
      const target = base.slice(whiteoutPrefix.length);
      if (target === "" || target === "." || target === "..") throw refuse(what, rawName, "invalid whiteout");
      const trel = parent === "" ? target : `${parent}/${target}`;
      if (wmode === "aufs") {
        await writeMarker(rel, parent);
        return;
      }
      // Whiteouts only hide lower layers: a same-layer entry already hides them, and a same-layer
      // directory must also hide the lower directory's children (opaque).
      let st;
      try {
        st = deferred.has(trel) ? undefined : await lstat(abs(trel));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
      if (deferred.has(trel)) return;
      if (st?.isDirectory() === true) {
        opaque.add(trel);
        model?.xattr(trel, opaqueName, opaqueValue);
      }
      if (st !== undefined) return;
      deferred.set(trel, {
        rel: trel,
        path: abs(trel),
        kind: "c",
        major: 0,
        minor: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        mtime,
        whiteout: true,
      });
      // Under a directory already known to be opaque the whiteout is dropped at the end (below):
      // never in the tree, so never in its hash.
      if (!underOpaque(trel)) model?.put(trel, { tf: "3", mode: 0, uid: 0, gid: 0 });
      whitedOut.add(trel);
      return;
    }

    switch (h.type) {
      case "directory": {
        await ensureDir(parent, rawName);
        const wasWhiteout = whitedOut.has(rel) && deferred.get(rel)?.whiteout === true;
        const merge = await clearFor(rel, true);
        if (!merge) await mkdir(abs(rel), { mode: 0o700 });
        dirs.add(rel);
        implicit.delete(rel);
        if (isRoot) await lchown(abs(rel), uid, gid);
        await chmod(abs(rel), mode);
        if (model !== undefined) {
          const own = isRoot ? { uid, gid } : undefined;
          if (merge) model.attrs(rel, { mode, ...own });
          else model.put(rel, { tf: "5", mode, ...(own ?? model.owner(parent)) });
        }
        dirTimes.set(rel, mtime);
        if (wasWhiteout) {
          opaque.add(rel);
          model?.xattr(rel, opaqueName, opaqueValue);
        }
        addXattrs(rel, h);
        return;
      }
      case "file":
      case "contiguous-file": {
        await ensureDir(parent, rawName);
        await clearFor(rel, false);
        const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
        // New files are root:root when we are root, and get `mode` minus the umask: only chown
        // and chmod when that is not already right (two syscalls less per file).
        const chown = isRoot && (uid !== 0 || gid !== 0 || !rootGroup);
        const chmodNeeded = chown || (mode & 0o7000) !== 0 || (mode & umask()) !== 0;
        let hashData: ((chunk: Buffer) => void) | undefined;
        if (model !== undefined) {
          const node = model.put(rel, {
            tf: "0",
            mode,
            ...(chown ? { uid, gid } : model.owner(parent)),
            size: declared,
            xattrs: xattrMap(paxXattrs(h)),
          });
          hashData = model.file(rel, node);
        }
        if (declared <= smallFile) {
          // Small files (most of a rootfs) are written with synchronous calls once their bytes are
          // in memory: four threadpool round trips per file cost more than the syscalls themselves
          // (profiled), and decompression of other layers keeps running on the threadpool meanwhile.
          const chunks: Buffer[] = [];
          for await (const c of body) chunks.push(c as Buffer);
          if (hashData !== undefined) for (const c of chunks) hashData(c);
          const fd = openSync(abs(rel), flags, mode & 0o777);
          try {
            if (chunks.length > 0) writevSync(fd, chunks);
            if (chown) fchownSync(fd, uid, gid);
            if (chmodNeeded) fchmodSync(fd, mode); // after chown, which clears setuid/setgid
            futimesSync(fd, mtime, mtime);
          } finally {
            closeSync(fd);
          }
          addXattrs(rel, h);
          return;
        }
        const fh = await open(abs(rel), flags, mode & 0o777);
        try {
          let pending: Buffer[] = [];
          let pendingBytes = 0;
          for await (const c of body) {
            hashData?.(c as Buffer);
            pending.push(c as Buffer);
            pendingBytes += (c as Buffer).length;
            if (pendingBytes >= 1 << 20) {
              await fh.writev(pending);
              pending = [];
              pendingBytes = 0;
            }
          }
          if (pending.length > 0) await fh.writev(pending);
          if (chown) await fh.chown(uid, gid);
          if (chmodNeeded) await fh.chmod(mode); // after chown, which clears setuid/setgid
          await fh.utimes(mtime, mtime);
        } finally {
          await fh.close();
        }
        addXattrs(rel, h);
        return;
      }
      case "symlink": {
        await ensureDir(parent, rawName);
        await clearFor(rel, false);
        // The target is kept verbatim: it is interpreted inside the container, never by us.
        const target = h.linkname ?? "";
        if (target === "") throw refuse(what, rawName, "symlink with an empty target");
        if (target.includes("\0")) throw refuse(what, rawName, "symlink target contains a NUL byte");
        await symlink(target, abs(rel));
        if (isRoot) await lchown(abs(rel), uid, gid);
        model?.put(rel, {
          tf: "2",
          mode: 0o777,
          ...(isRoot ? { uid, gid } : model.owner(parent)),
          linkname: target,
        });
        await lutimes(abs(rel), mtime, mtime);
        addXattrs(rel, h);
        return;
      }
      case "link": {
        let target = cleanEntryName(h.linkname ?? "", what);
        if (format === "aci") {
          if (!target.startsWith("rootfs/"))
            throw refuse(what, rawName, "hard link target is outside rootfs");
          target = target.slice(7);
        }
        if (target === "") throw refuse(what, rawName, "hard link to the root directory");
        const tparent = posix.dirname(target) === "." ? "" : posix.dirname(target);
        await ensureDir(tparent, rawName, false);
        await ensureDir(parent, rawName);
        if (target === rel) return;
        if (deferred.has(target)) {
          await clearFor(rel, false);
          deferredLinks.push({ rel, target });
          return;
        }
        let st;
        try {
          st = await lstat(abs(target));
        } catch {
          throw refuse(
            what,
            rawName,
            `hard link target ${JSON.stringify(h.linkname)} does not exist in this layer`,
          );
        }
        if (st.isDirectory()) throw refuse(what, rawName, "hard link to a directory");
        await clearFor(rel, false);
        await link(abs(target), abs(rel));
        if (model !== undefined && !model.has(target)) model.giveUp(`hard link to ${JSON.stringify(target)}`);
        model?.link(rel, target);
        return;
      }
      case "character-device":
      case "block-device":
      case "fifo": {
        await ensureDir(parent, rawName);
        await clearFor(rel, false);
        if (!isRoot && h.type !== "fifo") {
          skipped.push(`${rel}: ${h.type} (not root)`);
          return;
        }
        const kind = h.type === "fifo" ? "p" : h.type === "block-device" ? "b" : "c";
        model?.put(rel, {
          tf: kind === "p" ? "6" : kind === "b" ? "4" : "3",
          mode,
          ...(isRoot ? { uid, gid } : model.owner(parent)),
          major: kind === "p" ? 0 : (h.devmajor ?? 0),
          minor: kind === "p" ? 0 : (h.devminor ?? 0),
        });
        deferred.set(rel, {
          rel,
          path: abs(rel),
          kind,
          major: h.devmajor ?? 0,
          minor: h.devminor ?? 0,
          mode,
          uid,
          gid,
          mtime,
          whiteout: false,
        });
        whitedOut.delete(rel);
        addXattrs(rel, h);
        return;
      }
      default:
        throw refuse(what, rawName, `unsupported entry type ${String(h.type)}`);
    }
  }

  async function writeMarker(rel: string, parent: string): Promise<void> {
    await clearFor(rel, false);
    const fh = await open(abs(rel), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    await fh.close();
    model?.put(rel, { tf: "0", mode: 0o600 & ~umask(), ...model.owner(parent) });
  }

  try {
    for await (const entry of ex) {
      entries++;
      if (entries > maxEntries) {
        throw new RktError(ErrorCode.TooLarge, `${what}: more than ${maxEntries} entries`);
      }
      const h = entry.header as Headers;
      try {
        await handle(h, entry);
      } catch (e) {
        throw entryError(e, what, h.name);
      }
      entry.resume(); // drain what handle() did not read (dirs, links, skipped entries)
    }
  } catch (e) {
    raw.destroy();
    src.destroy();
    throw asArchiveError(e, feedError, what);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
  if (feedError !== undefined) throw asArchiveError(feedError, feedError, what);

  // Deferred work, in an order that keeps attributes right: nodes, links to nodes, xattrs, then
  // times (directories last, since creating children changes them).
  // Whiteouts beneath an opaque directory of the same layer are redundant and confuse overlayfs (umoci).
  for (const [k, d] of deferred) {
    if (d.whiteout && underOpaque(k)) {
      deferred.delete(k);
      model?.remove(k);
    }
  }
  for (const d of deferred.values()) {
    await ensureDir(posix.dirname(d.rel) === "." ? "" : posix.dirname(d.rel), d.rel); // re-check: no symlink crept in
  }
  await makeNodes([...deferred.values()], what);
  for (const d of deferred.values()) {
    if (isRoot) await lchown(d.path, d.uid, d.gid);
    if (!d.whiteout) await chmod(d.path, d.mode);
    await lutimes(d.path, d.mtime, d.mtime);
  }
  for (const l of deferredLinks) {
    await link(abs(l.target), abs(l.rel));
    model?.link(l.rel, l.target);
  }
  for (const op of opaque) {
    let m = xattrs.get(op);
    if (m === undefined) xattrs.set(op, (m = new Map<string, Buffer>()));
    m.set(opaqueName, opaqueValue);
    model?.xattr(op, opaqueName, opaqueValue);
  }
  const absAttrs = new Map<string, Map<string, Buffer>>();
  for (const [k, v] of xattrs) absAttrs.set(abs(k), v);
  await setXattrs(absAttrs, what);
  const sortedDirs = [...dirTimes.entries()].sort((a, b) => b[0].length - a[0].length);
  for (const [rel, t] of sortedDirs) await utimes(abs(rel), t, t);

  const diffId = `sha256:${sha256.digest("hex")}` as Digest;
  const sha512Hex = sha512?.digest("hex");
  const actualDiffId = diffAlg === "sha512" ? `sha512:${sha512Hex ?? ""}` : diffId;
  if (o.diffId !== undefined && o.diffId !== actualDiffId) {
    throw new DigestMismatchError(`${what}: diffID`, o.diffId, actualDiffId, size);
  }
  if (o.aciImageId !== undefined && sha512Hex !== undefined) {
    const id = `sha512-${sha512Hex.slice(0, 64)}`;
    if (id !== o.aciImageId) {
      throw new DigestMismatchError(`${what}: image ID`, o.aciImageId, id, size);
    }
  }
  if (format === "aci" && manifest === undefined) throw refuse(what, "manifest", "the ACI has no manifest");
  const whiteouts = [...deferred.values()].filter((d) => d.whiteout).length + opaque.size;
  let hashed: { hash: string; source: StreamHashSource | "walk" } | undefined;
  if (o.treeHash === true) hashed = model?.finish(dest) ?? { hash: await treeHash(dest), source: "walk" };
  return {
    treeHash: hashed?.hash,
    treeHashFrom: hashed?.source,
    diffId,
    whiteouts,
    implicitDirs: [...implicit].sort(),
    sha512Hex,
    compression: decompressed.compression,
    entries,
    uncompressedSize: size,
    manifest,
    skipped,
  };
}

// Errors the file system gives because of what an entry asks for (a name too long, a component
// that cannot be created), not because the disk failed: the layer is refused, naming the entry.
const contentErrnos = new Set([
  "ENAMETOOLONG",
  "EINVAL",
  "ELOOP",
  "ENOTDIR",
  "EISDIR",
  "EEXIST",
  "EMLINK",
  "ENOENT",
]);

function entryError(e: unknown, what: string, name: string): unknown {
  if (e instanceof RktError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  if (
    err?.code === "ERR_INVALID_ARG_VALUE" ||
    (err?.syscall !== undefined && contentErrnos.has(err.code ?? ""))
  ) {
    const why =
      err.code === "ENAMETOOLONG" ? "its path is too long for the file system" : "cannot be created";
    return new RktError(
      ErrorCode.InvalidArchive,
      `${what}: entry ${JSON.stringify(name)}: ${why} (${err.code})`,
      {
        cause: e,
      },
    );
  }
  return e;
}

function asArchiveError(e: unknown, feedError: unknown, what: string): unknown {
  if (e instanceof RktError) return e;
  const err = (feedError ?? e) as NodeJS.ErrnoException | undefined;
  // File-system failures carry a syscall; everything else comes from the decompressor or the tar
  // parser and means the layer is corrupt or truncated.
  if (err?.syscall !== undefined) return err;
  const msg =
    err?.code === "STREAM_DESTROYED" ? "unexpected end of the tar stream" : (err?.message ?? String(e));
  return new RktError(ErrorCode.InvalidArchive, `${what}: corrupt or truncated layer: ${msg}`, { cause: e });
}
