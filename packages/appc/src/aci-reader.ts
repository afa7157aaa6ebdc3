// Reading ACI archives as a stream (appc spec/aci.md, aci/file.go ValidateArchive): decompress by
// magic number, walk the tar once, allow only `manifest` and `rootfs`/`rootfs/…`, refuse
// duplicates, cap the manifest. Nothing is buffered except the manifest.
import { Readable, Transform } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { Header } from "tar-stream";
import { tarStream } from "./tar.js";
import { compressionMagicLength, decompressor, detectCompression, type Compression } from "./compression.js";
import { aciImageId, createSha512PassThrough } from "./image-id.js";
import { parseImageManifestOrThrow } from "./manifest.js";
import type { ImageManifest } from "./schema/image-manifest.js";

/** The default cap on the `manifest` entry: manifests are small; 1 MiB is generous. */
export const defaultMaxManifestSize = 1 << 20;

/** A rootfs entry of an ACI, as given to the `onEntry` callback of {@link readAci}. */
export interface AciEntry {
  /** The cleaned path: `rootfs` or `rootfs/…` (no `./`, no trailing `/`, no `..`). */
  readonly name: string;
  /** The tar header as read (its `name` is the raw one). */
  readonly header: Header;
}

/** Options of {@link readAci}. */
export interface ReadAciOptions {
  /** Largest manifest accepted, in bytes (default 1 MiB); larger is RKT_TOO_LARGE. */
  maxManifestSize?: number | undefined;
  /** Compute the sha512 of the uncompressed archive (the image ID); needs the whole archive read. */
  hash?: boolean | undefined;
  /** Called with each uncompressed chunk, in order (e.g. to write the uncompressed archive). */
  onUncompressedChunk?: ((chunk: Buffer) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** What {@link readAci} found. */
export interface AciReadResult {
  readonly manifest: ImageManifest;
  /** The manifest exactly as stored in the archive. */
  readonly rawManifest: Uint8Array;
  readonly compression: Compression;
  /** With `hash`: the sha512 (128 hex) of the uncompressed archive and the image ID made of it. */
  readonly sha512Hex?: string | undefined;
  readonly imageId?: string | undefined;
  /** Bytes of uncompressed archive read. */
  readonly uncompressedSize: number;
}

/**
 * Go's filepath.Clean on a slash path: collapses `//`, drops `.`, resolves `..` lexically, strips
 * a trailing `/`. `..` that cannot be resolved stays at the front (or vanishes under `/`).
 */
export function cleanTarPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
    } else out.push(seg);
  }
  const joined = out.join("/");
  if (rooted) return `/${joined}`;
  return joined === "" ? "." : joined;
}

const allowedTypes = new Set([
  "file",
  "contiguous-file",
  "directory",
  "symlink",
  "link",
  "character-device",
  "block-device",
  "fifo",
]);

function invalid(message: string, cause?: unknown): RktError {
  return new RktError(
    ErrorCode.InvalidArchive,
    `ACI archive: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry);
}

// Thrown inside the entry loop to stop reading once the manifest is in hand.
class Stop extends Error {}

/**
 * Reads an ACI from `src` (gzip, bzip2, xz, zstd or plain tar, detected by magic), validating the
 * layout as it goes, and returns the parsed manifest. Each rootfs entry is handed to `onEntry`
 * with its body, in archive order; the body is drained after the callback resolves if the callback
 * did not read it. The manifest may be anywhere in the archive and is not passed to `onEntry`.
 *
 * Errors: RKT_INVALID_ARCHIVE (corrupt or truncated compression or tar, an entry other than
 * `manifest`/`rootfs/…` naming it, a duplicate entry, `rootfs` not a directory, a hard link out of
 * rootfs, an unsupported entry type, no manifest, no rootfs), RKT_TOO_LARGE (manifest over the cap),
 * RKT_INVALID_MANIFEST (manifest fails validation). Errors of `src` itself and of `onEntry` pass
 * through unchanged; RKT_ABORTED when `signal` fires. On failure `src` is destroyed.
 */
export async function readAci(
  src: Readable,
  onEntry?: (entry: AciEntry, body: Readable) => Promise<void>,
  o: ReadAciOptions = {},
): Promise<AciReadResult> {
  return run(src, onEntry, o, false);
}

/**
 * Reads an ACI only up to its manifest and returns it validated (stops there; the rest of the
 * archive is not read and `src` is destroyed). Entries met before the manifest are checked as in
 * {@link readAci}. Same errors, except that a missing rootfs is not detected.
 */
export async function readAciManifest(
  src: Readable,
  o: Pick<ReadAciOptions, "maxManifestSize" | "signal"> = {},
): Promise<Pick<AciReadResult, "manifest" | "rawManifest" | "compression">> {
  return run(src, undefined, o, true);
}

// A source in object or string mode may yield strings; everything else is bytes.
function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === "string") return Buffer.from(v);
  return Buffer.from(v as Uint8Array);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : typeof e === "string" ? e : "unknown error";
}

/**
 * The tar reader's complaint in our words (its own, such as "Maybe the tar is corrupted or it
 * needs to be gunzipped?", would read as advice from another tool); the original stays the cause.
 */
export function tarErrorReason(e: unknown): string {
  const m = messageOf(e);
  if (/invalid tar header/i.test(m)) return "invalid tar header";
  if (/unexpected end of data/i.test(m)) return "truncated tar data";
  return "unreadable tar data";
}

async function sniff(src: Readable): Promise<{ head: Buffer; rest: AsyncIterator<unknown>; done: boolean }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  const chunks: Buffer[] = [];
  let have = 0;
  while (have < compressionMagicLength) {
    const r = await it.next();
    if (r.done === true) return { head: Buffer.concat(chunks), rest: it, done: true };
    const chunk = toBuffer(r.value);
    chunks.push(chunk);
    have += chunk.length;
  }
  return { head: Buffer.concat(chunks), rest: it, done: false };
}

async function run(
  src: Readable,
  onEntry: ((entry: AciEntry, body: Readable) => Promise<void>) | undefined,
  o: ReadAciOptions,
  stopAtManifest: boolean,
): Promise<AciReadResult> {
  const max = o.maxManifestSize ?? defaultMaxManifestSize;
  const { head, rest, done } = await sniff(src);
  if (head.length === 0) throw invalid("archive is empty");
  const compression = detectCompression(head);

  // Errors are mapped by where they started: the source's and the callback's pass through, the
  // decompressor's and tar's become RKT_INVALID_ARCHIVE. Destroying a pipeline re-emits one error
  // on every stage, so provenance is recorded where each error first appears.
  let sourceError: unknown;
  let callbackError: unknown;
  const raw = Readable.from(
    (async function* () {
      yield head;
      if (done) return;
      for (;;) {
        let r: IteratorResult<unknown>;
        try {
          r = await rest.next();
        } catch (e) {
          sourceError = e;
          throw e;
        }
        if (r.done === true) return;
        yield toBuffer(r.value);
      }
    })(),
    { objectMode: false },
  );

  const stages: NodeJS.ReadWriteStream[] = [];
  let decompressError: unknown;
  if (compression !== "none") {
    const d = decompressor(compression);
    d.once("error", (e) => (decompressError = e));
    stages.push(d);
  }
  const hasher = o.hash === true ? createSha512PassThrough() : undefined;
  if (hasher !== undefined) stages.push(hasher.stream);
  let uncompressedSize = 0;
  const onChunk = o.onUncompressedChunk;
  stages.push(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        uncompressedSize += chunk.length;
        onChunk?.(chunk);
        cb(null, chunk);
      },
    }),
  );
  const extract = tarStream().extract();
  let tarError: unknown;
  extract.once("error", (e: unknown) => (tarError = e));

  let manifest: { value: ImageManifest; raw: Uint8Array } | undefined;
  let rootfsFound = false;
  const seen = new Set<string>();

  // streamx's Writable (tar-stream 3) is not typed as a Node stream, but node's pipeline drives it
  // (it has write/end/destroy and the events).
  const sink = extract as unknown as NodeJS.WritableStream;
  const feeding = pipeline([raw, ...stages, sink], o.signal === undefined ? {} : { signal: o.signal });

  const consuming = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const name = cleanTarPath(h.name);
      if (name === ".") {
        await drain(entry);
        continue;
      }
      if (seen.has(name)) throw invalid(`duplicate file entry in archive: ${name}`);
      seen.add(name);
      if (name === "manifest") {
        if (h.type !== "file" && h.type !== "contiguous-file")
          throw invalid("manifest is not a regular file");
        const size = h.size ?? 0;
        if (size > max) {
          throw new RktError(
            ErrorCode.TooLarge,
            `ACI archive: manifest is ${size} bytes, more than the ${max} allowed`,
          );
        }
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        manifest = parseImageManifestOrThrow(new Uint8Array(Buffer.concat(chunks)), "ACI manifest");
        if (stopAtManifest) throw new Stop();
        continue;
      }
      if (name !== "rootfs" && !name.startsWith("rootfs/")) {
        throw invalid(
          `unrecognized file path in layout: ${JSON.stringify(h.name)} (only manifest and rootfs/ are allowed)`,
        );
      }
      if (!allowedTypes.has(h.type)) {
        throw invalid(`entry ${name} has unsupported type ${String(h.type)}`);
      }
      if (name === "rootfs") {
        if (h.type !== "directory") throw invalid("rootfs is not a directory");
      }
      rootfsFound = true;
      if (h.type === "link") {
        const target = cleanTarPath(h.linkname ?? "");
        if (!target.startsWith("rootfs/")) {
          throw invalid(`hard link ${name} points outside rootfs: ${JSON.stringify(h.linkname ?? "")}`);
        }
      }
      if (onEntry === undefined) {
        await drain(entry);
        continue;
      }
      // A Node Readable over the entry (tar-stream's entries are streamx streams).
      const body = Readable.from(entry, { objectMode: false });
      try {
        await onEntry({ name, header: h }, body);
      } catch (e) {
        callbackError = e;
        throw e;
      }
      if (!body.readableEnded) {
        body.resume();
        await finished(body);
      }
    }
  })();

  const [fed, consumed] = await Promise.allSettled([feeding, consuming]);
  // Stopping early or failing leaves `src` unread: release it (the generator feeding `raw` may
  // be parked in src's iterator, where destroying `raw` cannot reach it).
  if (!src.readableEnded && !src.destroyed) src.destroy();
  const stopped = consumed.status === "rejected" && consumed.reason instanceof Stop;
  if (!stopped && o.signal?.aborted === true) {
    throw new RktError(ErrorCode.Aborted, "ACI archive: reading aborted", { cause: o.signal.reason });
  }
  if (consumed.status === "rejected" && !stopped) throw mapError(consumed.reason);
  if (fed.status === "rejected" && !stopped) throw mapError(fed.reason);
  if (manifest === undefined) throw invalid("no image manifest found in layout");
  if (stopped) return { manifest: manifest.value, rawManifest: manifest.raw, compression, uncompressedSize };
  if (!rootfsFound) throw invalid("no rootfs found in layout");
  const sha512Hex = hasher?.sha512Hex();
  return {
    manifest: manifest.value,
    rawManifest: manifest.raw,
    compression,
    uncompressedSize,
    sha512Hex,
    imageId: sha512Hex === undefined ? undefined : aciImageId(sha512Hex),
  };

  function mapError(e: unknown): unknown {
    if (isRktError(e)) return e;
    // A callback reading a body sees the tar parser's or the decoder's error through it: that is
    // still the archive's fault, not the callback's (found by test/fuzz: a truncated entry body).
    if (e !== undefined && e === sourceError) return e;
    const fromArchive = e === tarError || e === decompressError;
    if (!fromArchive && e !== undefined && e === callbackError) return e;
    if (e === decompressError || (decompressError !== undefined && e !== tarError)) {
      return invalid(
        `${compression} data is truncated or corrupt: ${messageOf(decompressError)}`,
        decompressError,
      );
    }
    if (tarError !== undefined && e === tarError) {
      const m = tarErrorReason(e);
      return compression === "none"
        ? invalid(`not a tar archive, nor gzip, bzip2, xz or zstd data: ${m}`, e)
        : invalid(`tar data is truncated or corrupt: ${m}`, e);
    }
    return e;
  }
}
