// copyImage: moves an image or an index from any source to any sink (ggcr's remote.Write and
// layout.Write, one function for every pair). Blobs first, in parallel, skipped when the sink has
// them; manifests last, children before their index, so a destination never names a blob it lacks.
import {
  ErrorCode,
  RktError,
  hostPlatform,
  imageBlobs,
  isRktError,
  platformImage,
  toOciImage,
  type Abortable,
  type BlobProgress,
  type BlobWriteOutcome,
  type Descriptor,
  type Digest,
  type Image,
  type ImageOrIndex,
  type ImageSink,
  type Platform,
} from "@rkt/oci";
import { runLimited } from "../limit.js";

/** One event of {@link CopyImageOptions.onProgress}. */
export type CopyEvent =
  | { readonly kind: "blob"; readonly digest: Digest; readonly bytes: number; readonly total: number }
  | {
      readonly kind: "blob-done";
      readonly digest: Digest;
      readonly size: number;
      readonly how: BlobWriteOutcome;
    }
  | { readonly kind: "manifest"; readonly digest: Digest; readonly tag?: string | undefined };

/**
 * A copy's events as {@link BlobProgress}, the one progress type every operation reports: bytes
 * of each blob as they move, and the whole blob when it is done (also when it was skipped or
 * mounted, so totals add up). Undefined in, undefined out.
 */
export function copyProgress(
  onBlob: ((p: BlobProgress) => void) | undefined,
): ((e: CopyEvent) => void) | undefined {
  if (onBlob === undefined) return undefined;
  return (e) => {
    if (e.kind === "blob") onBlob({ digest: e.digest, bytes: e.bytes, total: e.total });
    else if (e.kind === "blob-done") onBlob({ digest: e.digest, bytes: e.size, total: e.size });
  };
}

/** Options of {@link copyImage}. */
export interface CopyImageOptions extends Abortable {
  /** The name at the destination (a tag or a layout/archive ref name); none: by digest only. */
  tag?: string | undefined;
  /** Copy an index with every image it lists; default: only the image for `platform`. */
  all?: boolean | undefined;
  /** The platform chosen from an index without `all`; default the host's. */
  platform?: Platform | undefined;
  /** Blobs moved at once; default 4. */
  parallel?: number | undefined;
  /** Where the source is, when a registry: lets a registry sink on the same host mount blobs. */
  origin?: { registry: string; repository: string } | undefined;
  /** The source can serve a blob from an offset, so a sink may resume a partial blob. */
  ranged?: boolean | undefined;
  /**
   * The caller has just compared what the destination holds under `tag` with this very document
   * and found it absent or different (a sync): the sink is not asked again.
   */
  compared?: boolean | undefined;
  onProgress?: ((e: CopyEvent) => void) | undefined;
}

/** What {@link copyImage} did. */
export interface CopyResult {
  /** The descriptor written last: the image's manifest, or the index with `all`. */
  readonly descriptor: Descriptor;
  /** The platform image copied (without `all`), or undefined for an index. */
  readonly image: Image | undefined;
  /** Blobs by outcome: how many, and their bytes (`written` includes a resumed prefix). */
  readonly blobs: Readonly<Record<BlobWriteOutcome, number>>;
  /** The destination already held this manifest under this name: nothing was sent. */
  readonly unchanged: boolean;
  readonly bytes: Readonly<Record<BlobWriteOutcome, number>>;
}

/**
 * Copies `src` to `sink` and commits the sink; on failure aborts it (a blob the sink committed
 * may stay, as content, but no manifest names a missing blob and no tag moves). Errors name the
 * source or the sink: RKT_DIGEST_MISMATCH / RKT_SIZE_MISMATCH for a corrupt source blob,
 * RKT_NO_MATCHING_PLATFORM, and the sink's own errors.
 */
export async function copyImage(
  src: ImageOrIndex,
  sink: ImageSink,
  o: CopyImageOptions = {},
): Promise<CopyResult> {
  const counts: Record<BlobWriteOutcome, number> = { exists: 0, mounted: 0, written: 0 };
  const bytes: Record<BlobWriteOutcome, number> = { exists: 0, mounted: 0, written: 0 };
  const signal = o.signal;
  const parallel = Math.max(1, o.parallel ?? 4);
  // One blob at a time per digest, even when two images of an index share it.
  const done = new Map<string, Promise<void>>();
  const sendBlob = (img: Image, d: Descriptor, signal: AbortSignal): Promise<void> => {
    let p = done.get(d.digest);
    if (p === undefined) {
      p = (async () => {
        let how: BlobWriteOutcome;
        if (await sink.has(d, { signal })) how = "exists";
        else {
          how = await sink.writeBlob(d, (start) => img.blob(d, { start, verify: false, signal }), {
            signal,
            ranged: o.ranged,
            origin: o.origin,
            onProgress:
              o.onProgress === undefined
                ? undefined
                : (n) => o.onProgress?.({ kind: "blob", digest: d.digest, bytes: n, total: d.size }),
          });
        }
        counts[how]++;
        bytes[how] += d.size;
        o.onProgress?.({ kind: "blob-done", digest: d.digest, size: d.size, how });
      })();
      done.set(d.digest, p);
    }
    return p;
  };
  const copyAll = async (x: ImageOrIndex, tag: string | undefined, top: boolean): Promise<void> => {
    if (x.kind === "image") await runLimited(imageBlobs(x), parallel, signal, (d, s) => sendBlob(x, d, s));
    else for (const d of x.index.manifests) await copyAll(await x.child(d, { signal }), undefined, false);
    await sink.writeManifest(x, { tag, top, signal });
    o.onProgress?.({ kind: "manifest", digest: x.descriptor.digest, tag });
  };
  try {
    let image: Image | undefined;
    let top: ImageOrIndex = src;
    if (src.kind === "index" && (o.all !== true || !sink.acceptsIndex)) {
      if (o.all === true) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${sink.what}: keeps single-platform images only; drop --all`,
        );
      }
      top = await platformImage(src, o.platform ?? hostPlatform(), `index ${src.descriptor.digest}`, {
        signal,
      });
    }
    if (sink.ociOnly === true)
      top = await toOciImage(top, `${sink.what}: ${top.descriptor.digest}`, { signal });
    if (top.kind === "image") image = top;
    // The destination may hold this very manifest under this name already (a re-run, a mirror):
    // then nothing needs to move (skopeo's manifest comparison; one HEAD, not one per blob).
    const unchanged =
      o.compared !== true && (await sink.hasManifest?.(top.descriptor, o.tag, { signal })) === true;
    if (!unchanged) await copyAll(top, o.tag, true);
    await sink.commit({ signal });
    return { descriptor: top.descriptor, image, blobs: counts, bytes, unchanged };
  } catch (e) {
    const reported = (await sink.abort(e)) ?? e;
    if (signal?.aborted === true && !isRktError(e, ErrorCode.Aborted)) {
      throw new RktError(ErrorCode.Aborted, `copy to ${sink.what} aborted`, { cause: e });
    }
    throw reported;
  }
}
