// Writing an ACI tar as a stream: entries go into a tar pack whose bytes cross a sha512 hasher
// (the image ID is the sha512 of the uncompressed archive) and then, if asked, gzip.
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants as zlib } from "node:zlib";
import { aciImageId, createSha512PassThrough, tarStream } from "@rkt/appc";
import type { Header, Pack } from "tar-stream";
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

/**
 * An ACI being written. Add entries in order (names are archive paths: `manifest`, `rootfs`,
 * `rootfs/…`), then {@link AciPacker.finish}. Read {@link AciPacker.output} concurrently: the
 * writer waits for the reader (backpressure), so memory stays bounded.
 */
export class AciPacker {
  /** The archive bytes (gzipped if asked). */
  readonly output: Readable;
  private readonly pack: Pack;
  private readonly sha = createSha512PassThrough();
  private readonly flowing: Promise<void>;

  constructor(compression: OutputCompression, gzipLevel?: number) {
    this.pack = tarStream().pack();
    // gzip level 6 (zlib's default, as Go's compress/gzip and pgzip), compressed in parallel blocks.
    const tail =
      compression === "gzip"
        ? createParallelGzip({ level: gzipLevel ?? zlib.Z_DEFAULT_COMPRESSION })
        : new PassThrough({ highWaterMark: 1 << 20 });
    this.output = tail;
    this.flowing = pipeline(this.pack as unknown as Readable, this.sha.stream, tail, { end: true });
    // The pipeline's failure reaches the reader through `tail`; this handler only keeps it from
    // being an unhandled rejection.
    this.flowing.catch(() => undefined);
  }

  /** Adds an entry with a small body held in memory. */
  addBytes(header: AciHeader, body: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => {
      const sink = this.pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
      // The callback reports the failure; the entry may emit 'error' again once the pack is destroyed.
      (sink as unknown as NodeJS.EventEmitter).on("error", () => undefined);
    });
  }

  /** Adds a directory/link/device entry (no body) with docker2aci's generic owner and time. */
  addGeneric(header: Partial<Header> & Pick<Header, "name" | "type">): Promise<void> {
    return this.addBytes({ ...generic, ...header }, "");
  }

  /** Adds an entry whose body is streamed (`header.size` bytes read from `body`). */
  async addStream(header: AciHeader, body: Readable): Promise<void> {
    const sink = this.pack.entry(header);
    // pipeline reports the failure; the entry may emit 'error' again once the pack is destroyed.
    (sink as unknown as NodeJS.EventEmitter).on("error", () => undefined);
    await pipeline(body, sink as unknown as NodeJS.WritableStream);
  }

  /** Ends the archive; resolves once every byte has been handed to the reader. */
  async finish(): Promise<PackedAci> {
    this.pack.finalize();
    await this.flowing;
    const sha512Hex = this.sha.sha512Hex();
    return { imageId: aciImageId(sha512Hex), sha512Hex, size: this.sha.bytes() };
  }

  /** Aborts: a reader still reading sees `err`. */
  destroy(err: Error): void {
    // The failure is reported through the writer's promises; a reader that already left must
    // not turn the 'error' event into an uncaught exception.
    const ignore = (): void => undefined;
    (this.pack as unknown as NodeJS.EventEmitter).on("error", ignore);
    this.output.on("error", ignore);
    this.pack.destroy(err);
    this.output.destroy(err);
  }
}
