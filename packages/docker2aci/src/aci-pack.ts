// Writing an ACI tar as a stream: entries are encoded into bytes that cross a sha512 hasher
// (the image ID is the sha512 of the uncompressed archive) and then, if asked, gzip.
import { Readable, type Writable } from "node:stream";
import { constants as zlib } from "node:zlib";
import { aciImageId, encodeTarHeader, tarEnd, tarPadding } from "@rkt/appc";
import type { Header } from "tar-stream";
import { createOffThreadHash } from "./offthread-hash.js";
import { createParallelGzip } from "./parallel-gzip.js";

/** How the ACI files are compressed: docker2aci writes gzip (default) or none. */
export type OutputCompression = "gzip" | "none";

/** The identity of a written archive. */
export interface PackedAci {
  /** `sha512-<64 hex>`: rkt's image ID. */
  readonly imageId: string;
  /** Full 128 hex digits of the sha512 of the uncompressed archive. */
  readonly sha512Hex: string;
  /** Bytes of the uncompressed archive. */
  readonly size: number;
}

// Headers as docker2aci writes them for the entries it adds (getGenericTarHeader): root, epoch.
const generic = { uid: 0, gid: 0, uname: "0", gname: "0", mtime: new Date(0) } as const;

/** A tar header to write: only `name` is required. */
export type AciHeader = Partial<Header> & Pick<Header, "name">;

/** The tar header fields kept from a layer entry (docker2aci keeps xattrs, drops other PAX records). */
export function aciHeader(h: Header, name: string, linkname?: string): AciHeader {
  const type = h.type === "contiguous-file" ? "file" : h.type;
  const out: AciHeader = {
    name,
    type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    mtime: h.mtime,
    size: type === "file" ? h.size : 0,
  };
  const link = linkname ?? (type === "symlink" ? h.linkname : undefined);
  if (link !== undefined && link !== null) out.linkname = link;
  if (type === "character-device" || type === "block-device") {
    out.devmajor = h.devmajor;
    out.devminor = h.devminor;
  }
  if (h.pax !== undefined && h.pax !== null) {
    const xattrs = Object.entries(h.pax).filter(([k]) => k.startsWith("SCHILY.xattr."));
    if (xattrs.length > 0) out.pax = Object.fromEntries(xattrs);
  }
  return out;
}

// Headers and small bodies are gathered into one buffer of this size before they are hashed and
// handed on; larger body slices go through as they are (no copy).
const stageSize = 1 << 20;

/**
 * An ACI being written, synchronously: {@link AciPacker.add} whole entries, or
 * {@link AciPacker.begin} one and {@link AciPacker.body} its bytes; await
 * {@link AciPacker.ready} between chunks of input (backpressure: the reader of
 * {@link AciPacker.output} is slower); then {@link AciPacker.finish}.
 */
export class AciPacker {
  /** The archive bytes (gzipped if asked). */
  readonly output: Readable;
  private readonly gzip: Writable | undefined;
  // The sha512 is most of the CPU a conversion needs: it runs beside the tar rewriting.
  private readonly hash = createOffThreadHash("sha512");
  private written = 0;
  private stage = Buffer.allocUnsafe(stageSize);
  private staged = 0;
  /** Body bytes of the current entry still expected, and its padding. */
  private bodyLeft = 0;
  private bodyPad = 0;
  private current = "";
  private full = false;
  private wake: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(compression: OutputCompression, gzipLevel?: number) {
    if (compression === "gzip") {
      // gzip level 6 (zlib's default, as Go's compress/gzip and pgzip), compressed in parallel blocks.
      const gz = createParallelGzip({ level: gzipLevel ?? zlib.Z_DEFAULT_COMPRESSION });
      gz.on("drain", () => this.resume());
      gz.on("error", (e) => this.fail(e));
      this.gzip = gz;
      this.output = gz;
    } else {
      this.output = new Readable({ highWaterMark: stageSize, read: () => this.resume() });
    }
    this.output.on("close", () => {
      if (!this.output.readableEnded) this.fail(new Error("the ACI's reader stopped"));
    });
  }

  /** Adds an entry with its whole body (small: a manifest, a link). */
  add(header: AciHeader, body: Uint8Array | string = ""): void {
    const bytes = typeof body === "string" ? Buffer.from(body) : body;
    this.begin({ ...header, size: bytes.length });
    if (bytes.length > 0) this.body(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  /** Adds a directory/link/device entry (no body) with docker2aci's generic owner and time. */
  addGeneric(header: Partial<Header> & Pick<Header, "name" | "type">): void {
    this.add({ ...generic, ...header });
  }

  /** Starts an entry whose `header.size` body bytes follow through {@link AciPacker.body}. */
  begin(header: AciHeader): void {
    if (this.bodyLeft > 0) throw new Error(`${this.current}: body incomplete`);
    const size = header.type === "file" || header.type === undefined ? (header.size ?? 0) : 0;
    this.put(encodeTarHeader({ ...header, size }));
    this.current = header.name;
    this.bodyLeft = size;
    this.bodyPad = tarPadding(size);
  }

  /** Bytes of the current entry's body. */
  readonly body = (chunk: Buffer): void => {
    if (chunk.length > this.bodyLeft) throw new Error(`${this.current}: body longer than its header says`);
    this.bodyLeft -= chunk.length;
    if (chunk.length >= stageSize / 4) {
      this.flush();
      this.emit(chunk);
    } else {
      this.put(chunk);
    }
    if (this.bodyLeft === 0 && this.bodyPad > 0) {
      this.put(Buffer.alloc(this.bodyPad));
      this.bodyPad = 0;
    }
  };

  /** Undefined when more may be written now; else resolves once the reader took enough. */
  readonly ready = (): Promise<void> | undefined => {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (!this.full) return undefined;
    return new Promise((resolve, reject) => (this.wake = { resolve, reject }));
  };

  /** Ends the archive and hands its last bytes to the reader. */
  async finish(): Promise<PackedAci> {
    if (this.bodyLeft > 0) throw new Error(`${this.current}: body incomplete`);
    this.put(tarEnd());
    this.flush();
    if (this.failure !== undefined) throw this.failure;
    if (this.gzip !== undefined) this.gzip.end();
    else this.output.push(null);
    const sha512Hex = await this.hash.digest();
    return { imageId: aciImageId(sha512Hex), sha512Hex, size: this.written };
  }

  /** Aborts: a reader still reading sees `err`; writing afterwards throws it. */
  destroy(err: Error): void {
    this.fail(err);
    this.hash.abort();
    // A reader that already left must not turn the 'error' event into an uncaught exception.
    this.output.on("error", () => undefined);
    this.output.destroy(err);
  }

  private put(b: Buffer): void {
    if (this.staged + b.length > stageSize) this.flush();
    if (b.length > stageSize) return this.emit(b);
    b.copy(this.stage, this.staged);
    this.staged += b.length;
  }

  private flush(): void {
    if (this.staged === 0) return;
    const out = this.stage.subarray(0, this.staged);
    // The reader may hold the slice: the next bytes go to a new buffer.
    this.stage = Buffer.allocUnsafe(stageSize);
    this.staged = 0;
    this.emit(out);
  }

  private emit(b: Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    this.hash.update(b);
    this.written += b.length;
    const more = this.gzip !== undefined ? this.gzip.write(b) : this.output.push(b);
    if (!more) this.full = true;
  }

  private resume(): void {
    this.full = false;
    const w = this.wake;
    this.wake = undefined;
    w?.resolve();
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const w = this.wake;
    this.wake = undefined;
    w?.reject(this.failure);
  }
}
