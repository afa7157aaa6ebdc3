// Reading a layer blob as a stream of tar entries, with names made safe and whiteouts recognised
// (OCI image-spec layer.md: `.wh.<name>` deletes <name>, `.wh..wh..opq` hides the lower contents
// of its directory). Nothing is extracted: each entry's body is handed on or drained.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { cleanTarPath, decompressStream, tarErrorReason, tarStream } from "@rkt/appc";
import { pipeline as pipe } from "node:stream";
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
  /** The body (regular files); read it to the end or leave it (it is drained afterwards). */
  readonly body: Readable;
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
  pipe(src, c, () => undefined);
  return c;
}

/**
 * Opens `layer`, decompresses it (gzip, zstd, bzip2, xz or plain, detected by magic number: media
 * types are not trusted, as docker2aci) and calls `onEntry` for each tar entry in order. An empty
 * blob is an empty layer. Errors: RKT_UNSUPPORTED_MEDIA_TYPE (not a layer type), RKT_INVALID_ARCHIVE
 * (not a tar, truncated, an entry escaping the root, a hard link escaping it, a whiteout of
 * nothing); errors of the source and of `onEntry` pass through. The source is always consumed or
 * destroyed.
 */
export async function forEachLayerEntry(
  layer: LayerInput,
  what: string,
  onEntry: (e: LayerEntry) => Promise<void>,
  onProgress?: (p: BlobProgress) => void,
): Promise<void> {
  checkMediaType(layer, what);
  const src = counted(await layer.open(), layer, onProgress);
  let stream: Readable;
  try {
    stream = (await decompressStream(src)).stream;
  } catch (e) {
    src.destroy();
    throw e;
  }
  const extract = tarStream().extract();
  const feeding = pipeline(stream, extract as unknown as NodeJS.WritableStream);
  // Errors of onEntry pass through as they are; errors of the tar parser are about the archive.
  let entryError: { e: unknown } | undefined;
  const consuming = (async () => {
    try {
      for await (const entry of extract) {
        const h = entry.header;
        const body = entry as unknown as Readable;
        const path = safeLayerPath(h.name, what);
        if (path !== undefined) {
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
          try {
            await onEntry({ path: c.path, kind: c.kind, header: h, body });
          } catch (e) {
            entryError = { e };
            throw e;
          }
        }
        entry.resume();
      }
    } catch (e) {
      extract.destroy(e as Error);
      throw e;
    }
  })();
  const [fed, consumed] = await Promise.allSettled([feeding, consuming]);
  if (consumed.status === "rejected") stream.destroy();
  if (entryError !== undefined) throw entryError.e;
  const failed = consumed.status === "rejected" ? consumed : fed.status === "rejected" ? fed : undefined;
  if (failed !== undefined) {
    const e: unknown = failed.reason;
    if (isRktError(e) || (e instanceof Error && "syscall" in e)) throw e;
    throw new RktError(
      ErrorCode.InvalidArchive,
      `${what}: not a readable tar archive: ${tarErrorReason(e)}`,
      { cause: e },
    );
  }
}
