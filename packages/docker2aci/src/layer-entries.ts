// Reading a layer blob as a stream of tar entries, with names made safe and whiteouts recognised
// (OCI image-spec layer.md: `.wh.<name>` deletes <name>, `.wh..wh..opq` hides the lower contents
// of its directory). Nothing is extracted: each entry's body is handed on or skipped.
import { pipeline, type Readable } from "node:stream";
import { TarParser, cleanTarPath, decompressStream, tarErrorReason } from "@rkt/appc";
import {
  ErrorCode,
  RktError,
  byteCounter,
  isLayerType,
  isRktError,
  normalizeMediaType,
  parseDigest,
  type BlobProgress,
} from "@rkt/oci";
import type { Header } from "tar-stream";
import type { LayerInput } from "./input.js";

/** What an entry of a layer is. */
export type LayerEntryKind = "entry" | "whiteout" | "opaque";

/** One entry of a layer tar, named safely. */
export interface LayerEntry {
  /**
   * For `entry`: the path inside the root (`bin/sh`; no leading `/`, no `./`, no `..`).
   * For `whiteout`: the path it deletes. For `opaque`: the directory whose lower contents it hides.
   */
  readonly path: string;
  readonly kind: LayerEntryKind;
  /** The header as read; for hard links `linkname` is replaced by the cleaned target path. */
  readonly header: Header;
}

const opaqueMarker = ".wh..wh..opq";
const whiteoutPrefix = ".wh.";

/**
 * A tar path made safe: leading `/` and `./` dropped, `a/../b` resolved; undefined for the root
 * itself (`.`, `./`, `/`). RKT_INVALID_ARCHIVE for a path that climbs out of the root or has a
 * NUL byte. Pure.
 */
export function safeLayerPath(raw: string, what: string): string | undefined {
  if (raw.includes("\0")) {
    throw new RktError(ErrorCode.InvalidArchive, `${what}: entry ${JSON.stringify(raw)} has a NUL byte`);
  }
  const clean = cleanTarPath(raw.replace(/^\/+/, ""));
  if (clean === "..") {
    throw new RktError(
      ErrorCode.InvalidArchive,
      `${what}: entry ${JSON.stringify(raw)} escapes the root (..)`,
    );
  }
  if (clean.startsWith("../")) {
    throw new RktError(
      ErrorCode.InvalidArchive,
      `${what}: entry ${JSON.stringify(raw)} escapes the root (..)`,
    );
  }
  return clean === "." ? undefined : clean;
}

/** Classifies a safe path: a whiteout (of what), an opaque marker (of which directory), or an entry. Pure. */
export function classifyPath(path: string): { kind: LayerEntryKind; path: string } {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "" : path.slice(0, slash);
  const base = path.slice(slash + 1);
  if (base === opaqueMarker) return { kind: "opaque", path: dir };
  if (base.startsWith(whiteoutPrefix) && base.length > whiteoutPrefix.length) {
    const target = base.slice(whiteoutPrefix.length);
    return { kind: "whiteout", path: dir === "" ? target : `${dir}/${target}` };
  }
  return { kind: "entry", path };
}

function checkMediaType(layer: LayerInput, what: string): void {
  const m = normalizeMediaType(layer.mediaType);
  // Docker's "rootfs.diff.tar" types are layers too; anything else (encrypted, artifacts) is not.
  if (
    isLayerType(m) ||
    /^application\/vnd\.docker\.image\.rootfs\.(foreign\.)?diff\.tar(\.gzip|\.zstd)?$/.test(m)
  ) {
    return;
  }
  throw new RktError(
    ErrorCode.UnsupportedMediaType,
    `${what}: unsupported layer media type ${JSON.stringify(layer.mediaType)}`,
  );
}

// The layer blob as read, counted for progress when its size is known.
function counted(src: Readable, layer: LayerInput, on: ((p: BlobProgress) => void) | undefined): Readable {
  const total = layer.size;
  if (on === undefined || total === undefined) return src;
  const digest = parseDigest(layer.digest);
  const c = byteCounter((bytes) => on({ digest, bytes, total }));
  // Errors of either end reach the other (the reader destroys its input on failure).
  pipeline(src, c, () => undefined);
  return c;
}

/** Options of {@link forEachLayerEntry}. */
export interface LayerReadOptions {
  /** Awaited between chunks of input when it returns a promise: the consumer's backpressure. */
  readonly ready?: (() => Promise<void> | undefined) | undefined;
  /** The layer blob's bytes as they are read. */
  readonly onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * What to do with an entry's body: a function handed its bytes in order (slices of the
 * decompressed stream), or undefined to skip it.
 */
export type BodyConsumer = ((chunk: Buffer) => void) | undefined;

/**
 * Opens `layer`, decompresses it (gzip, zstd, bzip2, xz or plain, detected by magic number: media
 * types are not trusted, as docker2aci) and calls `onEntry` for each tar entry in order,
 * synchronously; the body goes to what `onEntry` returns. An empty blob is an empty layer.
 * Errors: RKT_UNSUPPORTED_MEDIA_TYPE (not a layer type), RKT_INVALID_ARCHIVE (not a tar, truncated,
 * an entry escaping the root, a hard link escaping it, a whiteout of the root); errors of the
 * source and of `onEntry` pass through. The source is always consumed or destroyed.
 */
export async function forEachLayerEntry(
  layer: LayerInput,
  what: string,
  onEntry: (e: LayerEntry) => BodyConsumer,
  o: LayerReadOptions = {},
): Promise<void> {
  checkMediaType(layer, what);
  const src = counted(await layer.open(), layer, o.onProgress);
  let stream: Readable;
  try {
    stream = (await decompressStream(src)).stream;
  } catch (e) {
    src.destroy();
    throw e;
  }
  // Errors of onEntry pass through as they are; errors of the tar parser are about the archive.
  let entryError: { e: unknown } | undefined;
  let consumer: BodyConsumer;
  const parser = new TarParser({
    entry(h: Header): boolean {
      try {
        consumer = undefined;
        const path = safeLayerPath(h.name, what);
        if (path === undefined) return false;
        const c = classifyPath(path);
        if (c.kind !== "entry" && c.path === "") {
          throw new RktError(
            ErrorCode.InvalidArchive,
            `${what}: whiteout ${JSON.stringify(h.name)} names the root`,
          );
        }
        if (h.type === "link") {
          const target = safeLayerPath(h.linkname ?? "", `${what}: hard link ${JSON.stringify(h.name)}`);
          if (target === undefined) {
            throw new RktError(
              ErrorCode.InvalidArchive,
              `${what}: hard link ${JSON.stringify(h.name)} to the root`,
            );
          }
          h.linkname = target;
        }
        consumer = onEntry({ path: c.path, kind: c.kind, header: h });
        return consumer !== undefined;
      } catch (e) {
        entryError = { e };
        throw e;
      }
    },
    body(chunk: Buffer): void {
      try {
        consumer!(chunk);
      } catch (e) {
        entryError = { e };
        throw e;
      }
    },
  });
  try {
    for await (const chunk of stream) {
      parser.push(chunk as Buffer);
      const wait = o.ready?.();
      if (wait !== undefined) {
        await wait.catch((e: unknown) => {
          entryError = { e };
          throw e;
        });
      }
    }
    parser.end();
  } catch (e) {
    stream.destroy();
    src.destroy();
    if (entryError !== undefined) throw entryError.e;
    if (isRktError(e) && e.code === ErrorCode.InvalidArchive) {
      throw new RktError(ErrorCode.InvalidArchive, `${what}: ${e.message}`, { cause: e });
    }
    if (isRktError(e) || (e instanceof Error && "syscall" in e)) throw e;
    throw new RktError(
      ErrorCode.InvalidArchive,
      `${what}: not a readable tar archive: ${tarErrorReason(e)}`,
      { cause: e },
    );
  }
}
