// Reading OCI image layouts on disk (image-spec image-layout.md): `oci-layout`, `index.json` and
// `blobs/<alg>/<hex>`. Blobs are streamed through a digest and size check; only documents
// (index, manifests, configs) are buffered, with a cap.
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline, type Readable } from "node:stream";
import {
  ErrorCode,
  RktError,
  digestAlgorithm,
  digestHex,
  parseIndexOrThrow,
  parseOciLayoutOrThrow,
  verifyDigest,
  type Descriptor,
  type Digest,
  type Index,
} from "@rkt/oci";

/** Largest manifest, index or config read into memory (4 MiB, the distribution registry's cap). */
export const maxDocumentBytes = 4 << 20;

/** The annotation naming a manifest in a layout's index.json (`oci:DIR:REF`). */
export const refNameAnnotation = "org.opencontainers.image.ref.name";

function errnoOf(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String(e.code) : undefined;
}

/** Where a blob lives in a layout: `blobs/<alg>/<hex>`, relative to the layout root. */
export function blobRelativePath(digest: Digest): string {
  return `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

/**
 * Reads a file of at most `max` bytes. Throws RKT_NOT_FOUND when it does not exist, RKT_TOO_LARGE
 * when it is bigger than `max`, RKT_IO for other failures. `what` starts each message.
 */
export async function readFileLimited(file: string, max: number, what: string): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(file, "r");
  } catch (e) {
    if (errnoOf(e) === "ENOENT")
      throw new RktError(ErrorCode.NotFound, `${what}: no such file`, { cause: e });
    throw new RktError(ErrorCode.Io, `${what}: cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new RktError(ErrorCode.InvalidArgument, `${what}: not a regular file`);
    if (st.size > max) {
      throw new RktError(ErrorCode.TooLarge, `${what}: ${st.size} bytes, more than the ${max} allowed`);
    }
    // Read at most max+1 bytes: the file may grow between stat and read.
    const buf = Buffer.alloc(Math.min(st.size, max) + 1);
    let n = 0;
    for (;;) {
      const r = await fh.read(buf, n, buf.length - n, n);
      if (r.bytesRead === 0) break;
      n += r.bytesRead;
      if (n === buf.length) break;
    }
    if (n > max) throw new RktError(ErrorCode.TooLarge, `${what}: more than the ${max} bytes allowed`);
    return new Uint8Array(buf.buffer, buf.byteOffset, n);
  } finally {
    await fh.close();
  }
}

/**
 * A read-only view of an OCI image layout directory (ggcr `layout.Path`). Open it with
 * {@link openOciLayout}. The transports reuse it to import `oci:DIR[:REF]`.
 */
export class OciLayoutReader {
  /** Absolute or caller-given path of the layout root. */
  readonly dir: string;
  /** The parsed `index.json`. */
  readonly index: Index;
  /** `index.json` exactly as stored. */
  readonly rawIndex: Uint8Array;

  constructor(dir: string, index: Index, rawIndex: Uint8Array) {
    this.dir = dir;
    this.index = index;
    this.rawIndex = rawIndex;
  }

  /** The path of the blob named by `digest` (it may not exist). */
  blobPath(digest: Digest): string {
    return join(this.dir, blobRelativePath(digest));
  }

  /** Whether the blob file exists (as a regular file); its size on disk, or undefined. */
  async blobSize(digest: Digest): Promise<number | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return st.isFile() ? st.size : undefined;
    } catch (e) {
      if (errnoOf(e) === "ENOENT" || errnoOf(e) === "ENOTDIR") return undefined;
      throw new RktError(ErrorCode.Io, `${this.blobPath(digest)}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Finds the manifest (or index) descriptor in index.json whose `org.opencontainers.image.ref.name`
   * annotation is `ref`. Without `ref`, the only entry of index.json. Throws RKT_NOT_FOUND when no
   * entry matches and RKT_AMBIGUOUS when `ref` is absent and there are several entries. Pure.
   */
  resolve(ref?: string): Descriptor {
    const entries = this.index.manifests;
    if (ref === undefined || ref === "") {
      if (entries.length === 1 && entries[0] !== undefined) return entries[0];
      if (entries.length === 0)
        throw new RktError(ErrorCode.NotFound, `${this.dir}: index.json lists no images`);
      throw new RktError(
        ErrorCode.Ambiguous,
        `${this.dir}: index.json lists ${entries.length} images; name one (${this.refNames().join(", ") || "none is named"})`,
      );
    }
    const found = entries.find((d) => d.annotations?.[refNameAnnotation] === ref);
    if (found === undefined) {
      throw new RktError(
        ErrorCode.NotFound,
        `${this.dir}: no image named ${JSON.stringify(ref)} in index.json`,
      );
    }
    return found;
  }

  /** The ref names of index.json's entries, in order (entries without a name are skipped). */
  refNames(): string[] {
    return this.index.manifests.flatMap((d) => {
      const n = d.annotations?.[refNameAnnotation];
      return n === undefined ? [] : [n];
    });
  }

  /**
   * Opens the blob `desc` names, as a stream that fails (RKT_DIGEST_MISMATCH, RKT_SIZE_MISMATCH)
   * at its end when the bytes do not match the descriptor. The caller must consume or destroy it
   * and must not trust the bytes before the stream ended without error. Throws RKT_NOT_FOUND when
   * the blob is absent.
   */
  async openBlob(
    desc: Pick<Descriptor, "digest" | "size">,
    o: { signal?: AbortSignal | undefined } = {},
  ): Promise<Readable> {
    const p = this.blobPath(desc.digest);
    const size = await this.blobSize(desc.digest);
    if (size === undefined) {
      throw new RktError(
        ErrorCode.NotFound,
        `blob ${desc.digest} is missing (${blobRelativePath(desc.digest)})`,
      );
    }
    // 1 MiB reads: hashing in large chunks is what keeps a layer check near the sha256 floor.
    const file = createReadStream(p, {
      highWaterMark: 1 << 20,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    // The callback form of pipeline returns the last stream; errors reach it through destroy().
    return pipeline(file, verifyDigest(desc.digest, desc.size, `blob ${desc.digest}`), () => {});
  }

  /**
   * Reads a small blob (manifest, index, config) whole, checking size and digest. Throws
   * RKT_NOT_FOUND, RKT_TOO_LARGE (over `max`), RKT_SIZE_MISMATCH, RKT_DIGEST_MISMATCH.
   */
  async readBlob(desc: Pick<Descriptor, "digest" | "size">, max = maxDocumentBytes): Promise<Uint8Array> {
    const what = `blob ${desc.digest}`;
    if (desc.size > max) {
      throw new RktError(
        ErrorCode.TooLarge,
        `${what}: descriptor says ${desc.size} bytes, more than the ${max} allowed`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = await readFileLimited(this.blobPath(desc.digest), max, what);
    } catch (e) {
      if (e instanceof RktError && e.code === ErrorCode.NotFound) {
        throw new RktError(ErrorCode.NotFound, `${what} is missing (${blobRelativePath(desc.digest)})`);
      }
      throw e;
    }
    // Same checks as the streaming path, on bytes already in memory.
    const v = verifyDigest(desc.digest, desc.size, what);
    await new Promise<void>((resolve, reject) => {
      v.on("error", reject);
      v.on("finish", resolve);
      v.resume();
      v.end(bytes);
    });
    return bytes;
  }
}

/**
 * Opens an OCI image layout: checks `oci-layout` (imageLayoutVersion "1.0.0") and parses
 * `index.json`. Throws RKT_NOT_FOUND (no such directory, or no `oci-layout`/`index.json`),
 * RKT_INVALID_ARCHIVE (bad `oci-layout`), RKT_INVALID_MANIFEST (bad index.json), RKT_TOO_LARGE.
 */
export async function openOciLayout(dir: string): Promise<OciLayoutReader> {
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    throw new RktError(ErrorCode.NotFound, `${dir}: no such directory`, { cause: e });
  }
  if (!st.isDirectory()) throw new RktError(ErrorCode.InvalidArgument, `${dir}: not a directory`);
  const layoutFile = join(dir, "oci-layout");
  let rawLayout: Uint8Array;
  try {
    rawLayout = await readFileLimited(layoutFile, 64 << 10, `${dir}: oci-layout`);
  } catch (e) {
    if (e instanceof RktError && e.code === ErrorCode.NotFound) {
      throw new RktError(ErrorCode.NotFound, `${dir}: not an OCI image layout (no oci-layout file)`);
    }
    throw e;
  }
  parseOciLayoutOrThrow(rawLayout, `${dir}: oci-layout`);
  const raw = await readFileLimited(join(dir, "index.json"), maxDocumentBytes, `${dir}: index.json`);
  const { value } = parseIndexOrThrow(raw, undefined, `${dir}: index.json`);
  return new OciLayoutReader(dir, value, raw);
}
