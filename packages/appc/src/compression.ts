// Compression of ACI archives: detection by magic number and streaming decompressors. appc allows
// gzip, bzip2, xz and none; zstd is accepted too because tools produce it and detection is
// unambiguous.
import { createRequire } from "node:module";
import { Duplex, Readable, Transform, type TransformCallback } from "node:stream";
import { createGunzip } from "node:zlib";
import type * as Fzstd from "fzstd";
import type unbzip2Stream from "unbzip2-stream";
import type * as XzDecompress from "xz-decompress";

// The three decoders are CommonJS, required on first use: loading them (xz-decompress compiles
// WebAssembly) cost every command that imports this package, even those that decompress nothing.
const require = createRequire(import.meta.url);

/** How an archive is compressed. `none` is a plain tar (or something that is not an archive). */
export type Compression = "gzip" | "bzip2" | "xz" | "zstd" | "none";

/** The most bytes {@link detectCompression} needs to look at. */
export const compressionMagicLength = 6;

const magics: readonly (readonly [Compression, readonly number[]])[] = [
  ["gzip", [0x1f, 0x8b]],
  ["bzip2", [0x42, 0x5a, 0x68]], // "BZh"
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

/**
 * The compression named by the magic number at the start of `firstBytes` (pass at least
 * {@link compressionMagicLength} bytes when available), or `none`. Pure.
 */
export function detectCompression(firstBytes: Uint8Array): Compression {
  for (const [kind, magic] of magics) {
    if (firstBytes.length >= magic.length && magic.every((b, i) => firstBytes[i] === b)) return kind;
  }
  return "none";
}

/** Options of {@link decompressor} and {@link decompressStream}. */
export interface DecompressOptions {
  /**
   * gzip: bytes decompressed per step (zlib's `chunkSize`, default 16 KiB). Each step is one
   * round trip to the libuv threadpool, so large streams go faster with larger steps.
   */
  chunkSize?: number | undefined;
}

/**
 * A streaming decompressor for `kind`: write compressed bytes, read decompressed ones. Truncated
 * or corrupt input ends in an 'error' event. `none` is a pass-through.
 */
export function decompressor(kind: Compression, o: DecompressOptions = {}): Duplex {
  switch (kind) {
    case "gzip":
      return o.chunkSize === undefined ? createGunzip() : createGunzip({ chunkSize: o.chunkSize });
    case "bzip2":
      return bzip2Decompressor();
    case "xz":
      return xzDecompressor();
    case "zstd":
      return zstdDecompressor();
    case "none":
      return new Transform({
        transform(chunk: Buffer, _enc, cb) {
          cb(null, chunk);
        },
      });
  }
}

// fzstd decompresses chunk by chunk through a callback; push(_, true) checks the frame ended.
function zstdDecompressor(): Transform {
  const out: Transform = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        z.push(chunk);
        cb();
      } catch (e) {
        cb(asError(e, "zstd"));
      }
    },
    flush(cb: TransformCallback) {
      try {
        z.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(asError(e, "zstd"));
      }
    },
  });
  const { Decompress } = require("fzstd") as typeof Fzstd;
  const z = new Decompress((data) => {
    out.push(data);
  });
  return out;
}

// unbzip2-stream is a classic `through` stream; adapt it so that backpressure and errors follow
// the Transform contract.
function bzip2Decompressor(): Transform {
  const bz = (require("unbzip2-stream") as typeof unbzip2Stream)();
  let failed: Error | undefined;
  let ended = false;
  let onEnd: (() => void) | undefined;
  const out: Transform = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      bz.write(chunk);
      cb(failed);
    },
    flush(cb: TransformCallback) {
      if (failed !== undefined) return cb(failed);
      if (ended) return cb();
      onEnd = () => cb(failed);
      bz.end();
    },
  });
  bz.on("data", (d: Buffer) => out.push(d));
  bz.on("error", (e: unknown) => {
    failed = asError(e, "bzip2");
    // An error raised while flushing must reach flush's callback; one raised while writing is
    // reported by the next transform call, or here if the stream is idle.
    if (onEnd !== undefined) onEnd();
    else out.destroy(failed);
  });
  bz.on("end", () => {
    ended = true;
    onEnd?.();
  });
  return out;
}

// xz-decompress works on web streams (WebAssembly xz-embedded); bridge it with Duplex.fromWeb.
function xzDecompressor(): Duplex {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const { XzReadableStream } = require("xz-decompress") as typeof XzDecompress;
  const xz = new XzReadableStream(readable);
  return Duplex.fromWeb({ readable: xz, writable }, { objectMode: false });
}

function asError(e: unknown, what: string): Error {
  return e instanceof Error ? e : new Error(`${what}: ${String(e)}`);
}

/**
 * Reads the first bytes of `src` to detect its compression and returns a stream of the
 * decompressed bytes (the sniffed bytes are not lost). Empty input yields kind `none` and an
 * empty stream.
 */
export async function decompressStream(
  src: Readable,
  o: DecompressOptions = {},
): Promise<{ compression: Compression; stream: Readable }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  const head: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < compressionMagicLength) {
    const r = await it.next();
    if (r.done === true) {
      done = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array | string);
    head.push(chunk);
    have += chunk.length;
  }
  const first = Buffer.concat(head);
  const compression = detectCompression(first);
  async function* rest(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done === true) return;
      yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array | string);
    }
  }
  const raw = Readable.from(rest(), { objectMode: false });
  let out: Readable = raw;
  if (compression !== "none") {
    const d = decompressor(compression, o);
    raw.on("error", (e) => d.destroy(e));
    d.once("close", () => raw.destroy());
    out = raw.pipe(d);
  }
  // A caller that stops early must release the source; the generator above may be parked in
  // src's iterator, where destroying `raw` cannot reach it, so destroy src directly.
  out.once("close", () => {
    if (!src.readableEnded && !src.destroyed) src.destroy();
  });
  return { compression, stream: out };
}
