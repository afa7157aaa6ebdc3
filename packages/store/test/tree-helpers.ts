// Helpers of the tree-store tests: raw tar building (names kept exactly as given, so hostile
// entries can be written), gzip, a sentinel directory that must stay untouched.
import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { pack, type Header } from "tar-stream";
import type { Digest } from "@rkt/oci";
import type { FileEntry } from "@rkt/testkit";

export interface RawEntry {
  name: string;
  type?: Header["type"] | undefined;
  content?: string | Buffer | undefined;
  linkname?: string | undefined;
  mode?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
  pax?: Record<string, string> | undefined;
  mtime?: Date | undefined;
}

/** An uncompressed tar of the entries, exactly as given. */
export async function tarOf(entries: readonly RawEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    const body = e.content === undefined ? undefined : Buffer.from(e.content);
    const h: Partial<Header> & { name: string } = {
      name: e.name,
      type,
      mode: e.mode ?? (type === "directory" ? 0o755 : type === "symlink" ? 0o777 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date("2001-02-03T04:05:06Z"),
      size: body?.length ?? 0,
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
      ...(e.pax !== undefined ? { pax: e.pax } : {}),
    };
    await new Promise<void>((res, rej) => {
      const cb = (err?: Error | null): void => (err ? rej(err) : res());
      if (body === undefined) p.entry(h, cb);
      else p.entry(h, body, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const gz = (b: Buffer): Buffer => gzipSync(b);
export const diffIdOf = (tar: Buffer): Digest =>
  `sha256:${createHash("sha256").update(tar).digest("hex")}` as Digest;
export const streamOf = (b: Buffer): Readable => Readable.from([b]);

/** A fresh temp dir under /tmp (same fs as the work tree here). */
export async function tempDir(prefix = "rkt-tree-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A sentinel directory beside the target: its listing must not change. */
export async function sentinel(root: string): Promise<{ dir: string; check: () => Promise<string[]> }> {
  const dir = join(root, "sentinel");
  await mkdir(dir, { recursive: true });
  return { dir, check: async () => (await readdir(dir)).sort() };
}

/** A listing of a tree: path -> "type mode uid:gid size|target|dev". */
export async function listTree(
  root: string,
  o: { contents?: boolean } = {},
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const visit = async (rel: string): Promise<void> => {
    const p = rel === "" ? root : join(root, rel);
    const st = await lstat(p);
    const mode = (st.mode & 0o7777).toString(8);
    let desc: string;
    if (st.isDirectory()) desc = `dir ${mode} ${st.uid}:${st.gid}`;
    else if (st.isSymbolicLink()) desc = `symlink ${st.uid}:${st.gid} -> ${await readlink(p)}`;
    else if (st.isFile()) {
      desc = `file ${mode} ${st.uid}:${st.gid} ${st.size}`;
      if (o.contents === true)
        desc += ` ${createHash("sha256")
          .update(await readFile(p))
          .digest("hex")
          .slice(0, 12)}`;
    } else if (st.isCharacterDevice()) desc = `char ${mode} ${st.uid}:${st.gid} ${st.rdev}`;
    else if (st.isBlockDevice()) desc = `block ${mode} ${st.uid}:${st.gid} ${st.rdev}`;
    else if (st.isFIFO()) desc = `fifo ${mode} ${st.uid}:${st.gid}`;
    else desc = "other";
    if (rel !== "") out[rel] = desc;
    if (st.isDirectory())
      for (const n of (await readdir(p)).sort()) await visit(rel === "" ? n : `${rel}/${n}`);
  };
  await visit("");
  return out;
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

// Base, then a layer with whiteouts (plain, of a directory, opaque) and replacements, then one
// that turns a symlink into a directory and a file into a directory.
export const layersWithWhiteouts: FileEntry[][] = [
  [
    { path: "etc", type: "dir" },
    { path: "etc/passwd", type: "file", content: "root:x:0:0\n" },
    { path: "etc/gone", type: "file", content: "bye" },
    { path: "dd", type: "dir", mode: 0o700 },
    { path: "dd/inner", type: "file", content: "i" },
    { path: "opq", type: "dir" },
    { path: "opq/a", type: "file", content: "a" },
    { path: "opq/sub", type: "dir" },
    { path: "opq/sub/b", type: "file", content: "b" },
    { path: "bin", type: "dir" },
    { path: "bin/tool", type: "file", content: "tool", mode: 0o4755 },
    { path: "bin/alias", type: "hardlink", linkname: "bin/tool" },
    { path: "lnk", type: "symlink", linkname: "/etc" },
    { path: "f2d", type: "file", content: "file" },
    { path: "dev", type: "dir" },
    { path: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
    { path: "dev/fifo", type: "fifo", mode: 0o600 },
    { path: "home", type: "dir", uid: 1000, gid: 1000, mode: 0o750 },
    { path: "home/u", type: "file", content: "mine", uid: 1000, gid: 1000 },
  ],
  [
    { path: "etc", type: "dir" },
    { path: "etc/gone", type: "whiteout" },
    { path: "etc/passwd", type: "file", content: "root:x:0:0\nuser:x:1000:1000\n" },
    { path: "dd", type: "whiteout" },
    { path: "opq", type: "opaque" },
    { path: "opq/c", type: "file", content: "c" },
    { path: "home", type: "dir", uid: 1000, gid: 1000, mode: 0o700 },
  ],
  [
    { path: "lnk", type: "dir", mode: 0o711 },
    { path: "lnk/x", type: "file", content: "x" },
    { path: "f2d", type: "dir" },
    { path: "f2d/y", type: "file", content: "y" },
    { path: "dd", type: "dir" },
    { path: "dd/new", type: "file", content: "n" },
  ],
];
