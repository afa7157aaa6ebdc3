import { spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, readdir, readlink, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants as zlibConstants, createGzip } from "node:zlib";
import { pack as tarPack, type Header, type Pack } from "tar-stream";
import { ErrorCode, RktError, createDigester, type Digest, type Digester } from "@rkt/oci";

/** The kind of a tar entry; `whiteout` and `opaque` become the OCI `.wh.` marker files. */
export type EntryType =
  "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo" | "whiteout" | "opaque";

/** File content too large to hold: its exact size and a function that opens it (once per build). */
export interface StreamContent {
  size: number;
  open(): Readable;
}

/**
 * One entry of a layer's file tree. `path` is relative to the root (a leading `/` is dropped).
 * `whiteout` at `a/b` writes `a/.wh.b` (b deleted); `opaque` at `a` writes `a/.wh..wh..opq` (a's
 * lower contents hidden). Defaults make builds reproducible: uid/gid 0, mtime 2000-01-01T00:00:00Z,
 * mode 0644 files, 0755 dirs, 0777 symlinks.
 */
export interface FileEntry {
  path: string;
  type: EntryType;
  content?: string | Uint8Array | StreamContent | undefined;
  mode?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  mtime?: Date | undefined;
  /** Target of a symlink (any string) or hardlink (a path earlier in the same layer). */
  linkname?: string | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
}

/** Layer compression; `zstd` runs the `zstd` binary. */
export type Compression = "gzip" | "zstd" | "none";

/** A layer: its entries (possibly generated lazily) and how to compress it (default gzip). */
export interface LayerSpec {
  entries: Iterable<FileEntry> | AsyncIterable<FileEntry>;
  compression?: Compression | undefined;
}

/** What building a layer produced. */
export interface BuiltLayer {
  /** Digest and size of the blob as stored (compressed). */
  digest: Digest;
  size: number;
  /** sha256 of the uncompressed tar (config rootfs.diff_ids). */
  diffId: Digest;
  uncompressedSize: number;
  compression: Compression;
}

const epoch = new Date("2000-01-01T00:00:00Z");

/** A tar-stream header; only `name` is required. */
export type TarHeader = Partial<Header> & { name: string };

function toHeader(e: FileEntry): { header: TarHeader; body?: Uint8Array | StreamContent } {
  const rel = e.path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (rel === "" && e.type !== "dir") {
    throw new RktError(ErrorCode.InvalidArgument, `layer entry ${JSON.stringify(e.path)}: empty path`);
  }
  const base = {
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    mtime: e.mtime ?? epoch,
    uname: "",
    gname: "",
  };
  const slash = rel.lastIndexOf("/");
  const dir = slash < 0 ? "" : rel.slice(0, slash + 1);
  const leaf = rel.slice(slash + 1);
  switch (e.type) {
    case "file": {
      const c = e.content ?? "";
      const body = typeof c === "string" ? Buffer.from(c) : c;
      const size = body instanceof Uint8Array ? body.length : body.size;
      return { header: { ...base, name: rel, type: "file", mode: e.mode ?? 0o644, size }, body };
    }
    case "dir":
      return {
        header: { ...base, name: rel === "" ? "./" : `${rel}/`, type: "directory", mode: e.mode ?? 0o755 },
      };
    case "symlink":
    case "hardlink":
      if (e.linkname === undefined) {
        throw new RktError(ErrorCode.InvalidArgument, `layer entry ${rel}: ${e.type} needs linkname`);
      }
      return {
        header: {
          ...base,
          name: rel,
          type: e.type === "symlink" ? "symlink" : "link",
          mode: e.mode ?? (e.type === "symlink" ? 0o777 : 0o644),
          linkname: e.linkname.replace(e.type === "hardlink" ? /^\/+/ : /^$/, ""),
        },
      };
    case "char":
    case "block":
      return {
        header: {
          ...base,
          name: rel,
          type: e.type === "char" ? "character-device" : "block-device",
          mode: e.mode ?? 0o666,
          devmajor: e.devmajor ?? 0,
          devminor: e.devminor ?? 0,
        },
      };
    case "fifo":
      return { header: { ...base, name: rel, type: "fifo", mode: e.mode ?? 0o644 } };
    case "whiteout":
      return { header: { ...base, name: `${dir}.wh.${leaf}`, type: "file", mode: 0o644, size: 0 } };
    case "opaque":
      return { header: { ...base, name: `${rel}/.wh..wh..opq`, type: "file", mode: 0o644, size: 0 } };
  }
}

/** A pass-through stream that feeds a digester and counts bytes. */
function tap(d: Digester): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      d.update(chunk);
      cb(null, chunk);
    },
  });
}

/** Streams the entries as a tar (tar-stream pack). Errors in the entries destroy the stream. */
export function tarStream(entries: Iterable<FileEntry> | AsyncIterable<FileEntry>): Readable {
  const pack = tarPack();
  const feed = async (): Promise<void> => {
    for await (const e of entries) {
      const { header, body } = toHeader(e);
      await packEntry(pack, header, body instanceof Uint8Array || body === undefined ? body : body.open());
    }
    pack.finalize();
  };
  feed().catch((err: unknown) => pack.destroy(err as Error));
  return Readable.from(pack);
}

/**
 * Adds one entry to a tar-stream pack and resolves when the pack has taken it. A stream body is
 * copied with backpressure (header.size must be exact). A `file` without a body gets an empty
 * one: tar-stream would otherwise wait for its body forever.
 */
export async function packEntry(
  pack: Pack,
  header: TarHeader,
  body: Uint8Array | string | AsyncIterable<Uint8Array> | undefined,
): Promise<void> {
  if (body === undefined || typeof body === "string" || body instanceof Uint8Array) {
    const bytes = body ?? (header.type === "file" || header.type === undefined ? "" : undefined);
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (bytes === undefined) pack.entry(header, cb);
      else
        pack.entry(
          header,
          typeof bytes === "string" ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length),
          cb,
        );
    });
    return;
  }
  let sink!: ReturnType<Pack["entry"]>;
  // The executor runs synchronously, so `sink` is set when the promise is created.
  const done = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
  for await (const chunk of body) {
    if (!sink.write(chunk)) await once(sink, "drain");
  }
  sink.end(undefined);
  await done;
}

/**
 * Builds a layer blob at `file` in one pass: tar → diffID hash → compression → digest hash → file.
 * The file is written under a temporary name and renamed when complete. Memory stays bounded
 * whatever the content size.
 */
export async function writeLayer(spec: LayerSpec, file: string): Promise<BuiltLayer> {
  const compression = spec.compression ?? "gzip";
  const diff = createDigester();
  const blob = createDigester();
  const tmp = `${file}.${process.pid}.partial`;
  try {
    const src = tarStream(spec.entries);
    const out = createWriteStream(tmp);
    switch (compression) {
      case "none":
        await pipeline(src, tap(diff), tap(blob), out);
        break;
      case "gzip":
        // Fixed level and no file name/mtime in the header (zlib writes none): reproducible bytes.
        await pipeline(
          src,
          tap(diff),
          createGzip({ level: zlibConstants.Z_DEFAULT_COMPRESSION }),
          tap(blob),
          out,
        );
        break;
      case "zstd": {
        const z = spawn("zstd", ["-q", "-c", "-3", "-T1", "--no-progress"], {
          stdio: ["pipe", "pipe", "pipe"],
        });
        let stderr = "";
        z.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
        const exited = new Promise<void>((resolve, reject) => {
          z.once("error", (e) =>
            reject(
              new RktError(ErrorCode.Internal, `cannot run zstd (install the zstd package): ${e.message}`),
            ),
          );
          z.once("close", (code) =>
            code === 0
              ? resolve()
              : reject(new RktError(ErrorCode.Internal, `zstd failed (${code}): ${stderr}`)),
          );
        });
        await Promise.all([pipeline(src, tap(diff), z.stdin), pipeline(z.stdout, tap(blob), out), exited]);
        break;
      }
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return {
    digest: blob.digest(),
    size: blob.bytes,
    diffId: diff.digest(),
    uncompressedSize: diff.bytes,
    compression,
  };
}

/**
 * A layer of `bytes` pseudo-random bytes, split into `files` files (default 1) under `dir`
 * (default `random/`). Content is an AES-CTR keystream from `seed`: deterministic, incompressible,
 * generated at GB/s and never held in memory. Use compression `none` for speed: gzip gains nothing.
 */
export function randomLayer(
  bytes: number,
  o: {
    files?: number | undefined;
    seed?: string | undefined;
    dir?: string | undefined;
    compression?: Compression | undefined;
  } = {},
): LayerSpec {
  const files = Math.max(1, o.files ?? 1);
  const dir = (o.dir ?? "random").replace(/^\/+|\/+$/g, "");
  const seed = o.seed ?? "rkt";
  const entries: FileEntry[] = [{ path: dir, type: "dir" }];
  const per = Math.floor(bytes / files);
  for (let i = 0; i < files; i++) {
    const size = i === files - 1 ? bytes - per * (files - 1) : per;
    entries.push({
      path: `${dir}/${String(i).padStart(6, "0")}.bin`,
      type: "file",
      content: { size, open: () => randomStream(size, `${seed}/${i}`) },
    });
  }
  return { entries, compression: o.compression };
}

/** `size` deterministic pseudo-random bytes derived from `seed` (AES-128-CTR keystream). */
export function randomStream(size: number, seed = "rkt"): Readable {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(1 << 20);
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, zeros.length);
      left -= n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

/**
 * Walks a directory on disk as layer entries (sorted, parents first), with file contents streamed
 * from disk, hard links detected by inode, device nodes, fifos and symlinks kept. Sockets are
 * skipped (tar cannot hold them). `prefix` is prepended to every path in the layer.
 */
export async function* directoryEntries(root: string, prefix = ""): AsyncGenerator<FileEntry> {
  const seen = new Map<string, string>();
  const pre = prefix.replace(/^\/+|\/+$/g, "");
  async function* walk(abs: string, rel: string): AsyncGenerator<FileEntry> {
    const names = (await readdir(abs)).sort();
    for (const name of names) {
      const p = join(abs, name);
      const r = rel === "" ? name : `${rel}/${name}`;
      const s = await lstat(p);
      const meta = { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtime: s.mtime };
      if (s.isDirectory()) {
        yield { path: r, type: "dir", ...meta };
        yield* walk(p, r);
      } else if (s.isSymbolicLink()) {
        yield { path: r, type: "symlink", linkname: await readlink(p), ...meta };
      } else if (s.isFile()) {
        const key = `${s.dev}:${s.ino}`;
        const first = s.nlink > 1 ? seen.get(key) : undefined;
        if (first !== undefined) {
          yield { path: r, type: "hardlink", linkname: first, ...meta };
          continue;
        }
        if (s.nlink > 1) seen.set(key, r);
        yield { path: r, type: "file", content: { size: s.size, open: () => createReadStream(p) }, ...meta };
      } else if (s.isCharacterDevice() || s.isBlockDevice()) {
        // Linux dev_t: major in bits 8-19 (and 32+), minor in bits 0-7 and 20-31.
        const major = Number((BigInt(s.rdev) >> 8n) & 0xfffn);
        const minor = Number((BigInt(s.rdev) & 0xffn) | ((BigInt(s.rdev) >> 12n) & 0xfff00n));
        yield {
          path: r,
          type: s.isCharacterDevice() ? "char" : "block",
          devmajor: major,
          devminor: minor,
          ...meta,
        };
      } else if (s.isFIFO()) {
        yield { path: r, type: "fifo", ...meta };
      }
    }
  }
  for await (const e of walk(root, pre)) yield e;
}
