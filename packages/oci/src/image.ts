// The image model (go-containerregistry's pkg/v1 and its `partial` package): small, lazy,
// read-only views of an image or an index that every transport provides and every sink consumes.
// A source implements only a BlobFetcher; the helpers here derive the rest. Pure: streams and
// hashing only, no fs, no network.
import type { Readable } from "node:stream";
import type { Abortable } from "./content.js";
import { digestOf, verifyDigest, type Digest } from "./digest.js";
import { ErrorCode, RktError } from "./errors.js";
import { isConfigType, isIndexType } from "./media-types.js";
import { parseImageConfigOrThrow, parseManifestOrIndexOrThrow } from "./parse.js";
import { selectPlatform } from "./platform.js";
import type { ImageConfig } from "./schema/config.js";
import type { Descriptor, Platform } from "./schema/descriptor.js";
import type { Index, Manifest } from "./schema/manifest.js";

/** Options of a blob read: `start` > 0 asks for the bytes from that offset on (a resume). */
export interface OpenBlobOptions extends Abortable {
  start?: number | undefined;
  /**
   * Default true: the stream checks digest and size. A consumer that hashes every byte itself
   * (every {@link ImageSink}) passes false, so the bytes are hashed once, not twice.
   */
  verify?: boolean | undefined;
}

/** One layer of an image. */
export interface Layer {
  /** As the manifest names it: digest and size of the blob (compressed, for compressed layers). */
  readonly descriptor: Descriptor;
  /** The uncompressed digest, from the image config; undefined when the config does not say. */
  readonly diffId: Digest | undefined;
  /**
   * The blob's bytes. From offset 0 the stream fails at its end (RKT_DIGEST_MISMATCH,
   * RKT_SIZE_MISMATCH) when they are not what the descriptor says; from a later `start` the
   * caller verifies (it holds the prefix). The caller consumes or destroys the stream.
   */
  open(o?: OpenBlobOptions): Promise<Readable>;
}

/** An image manifest for one platform and everything it references. */
export interface Image {
  readonly kind: "image";
  /** The manifest's descriptor: the image ID is its digest. */
  readonly descriptor: Descriptor;
  /** The manifest exactly as the source holds it (its digest is `descriptor.digest`). */
  readonly rawManifest: Uint8Array;
  readonly manifest: Manifest;
  /** The config blob's bytes, read once (capped at {@link maxConfigBytes}) and kept. */
  rawConfig(o?: Abortable): Promise<Uint8Array>;
  /** The parsed config; undefined for an artifact whose config is not an image config. */
  config(o?: Abortable): Promise<ImageConfig | undefined>;
  /** Base layer first, each with its diffID when the config names it. */
  layers(o?: Abortable): Promise<readonly Layer[]>;
  /** Any blob the manifest references (config or layer), as {@link Layer.open}. */
  blob(desc: Descriptor, o?: OpenBlobOptions): Promise<Readable>;
}

/** An index (or Docker manifest list) and the way to its children. */
export interface ImageIndex {
  readonly kind: "index";
  readonly descriptor: Descriptor;
  readonly rawManifest: Uint8Array;
  readonly index: Index;
  /** The image or nested index an entry of `index.manifests` names, fetched and verified. */
  child(desc: Descriptor, o?: Abortable): Promise<Image | ImageIndex>;
}

/** What a transport resolves a reference to. */
export type ImageOrIndex = Image | ImageIndex;

/**
 * The minimum a source implements (ggcr's partial): raw documents by descriptor and blob
 * streams. `verified` says the source already checks every byte against the descriptor (a
 * registry client, the store), so the helpers need not hash again.
 */
export interface BlobFetcher {
  /** Manifests, indexes and configs: whole, at most `max` bytes (RKT_TOO_LARGE beyond). */
  readDocument(desc: Descriptor, max: number, o?: Abortable): Promise<Uint8Array>;
  /** A blob's bytes from `o.start` (default 0); RKT_NOT_FOUND when the source lacks it. */
  openBlob(desc: Descriptor, o?: OpenBlobOptions): Promise<Readable>;
  /** True when {@link openBlob} streams already fail on a digest or size mismatch. */
  readonly verified?: boolean | undefined;
}

/** Largest manifest or index accepted from any source. */
export const maxManifestBytes = 4 << 20;
/** Largest config accepted from any source. */
export const maxConfigBytes = 16 << 20;

function checkRaw(raw: Uint8Array, desc: Descriptor, what: string): void {
  const actual = digestOf(raw, desc.digest.startsWith("sha512:") ? "sha512" : "sha256");
  if (actual !== desc.digest || raw.length !== desc.size) {
    throw new RktError(
      ErrorCode.DigestMismatch,
      `${what}: ${raw.length} bytes hashing to ${actual}, expected ${desc.size} bytes of ${desc.digest}`,
    );
  }
}

function verifiedOpen(f: BlobFetcher, desc: Descriptor, what: string) {
  return async (o: OpenBlobOptions = {}): Promise<Readable> => {
    const s = await f.openBlob(desc, o);
    if (f.verified === true || o.verify === false || (o.start ?? 0) > 0) return s;
    const v = verifyDigest(desc.digest, desc.size, `${what}: blob ${desc.digest}`);
    s.on("error", (e) => v.destroy(e));
    return s.pipe(v);
  };
}

/**
 * Builds the image or index that `raw` (the bytes `desc` names) is, reading everything else
 * through `fetcher` when asked. Checks `raw` against `desc`; parses it (schema1 refused).
 * `what` names the source in errors. RKT_DIGEST_MISMATCH, RKT_INVALID_MANIFEST.
 */
export function imageFromRaw(
  raw: Uint8Array,
  desc: Descriptor,
  fetcher: BlobFetcher,
  what: string,
): ImageOrIndex {
  checkRaw(raw, desc, what);
  const doc = parseManifestOrIndexOrThrow(raw, desc.mediaType, `${what}: manifest ${desc.digest}`).value;
  if (doc.kind === "index") {
    const index = doc.index;
    return {
      kind: "index",
      descriptor: { ...desc, mediaType: index.mediaType ?? desc.mediaType },
      rawManifest: raw,
      index,
      async child(d: Descriptor, o: Abortable = {}): Promise<ImageOrIndex> {
        const bytes = await fetcher.readDocument(d, maxManifestBytes, o);
        return imageFromRaw(bytes, d, fetcher, what);
      },
    };
  }
  const manifest = doc.manifest;
  let rawConfig: Promise<Uint8Array> | undefined;
  const readConfig = (o: Abortable = {}): Promise<Uint8Array> => {
    rawConfig ??= (async () => {
      const c = manifest.config;
      if (c.size > maxConfigBytes) {
        throw new RktError(ErrorCode.TooLarge, `${what}: config ${c.digest} is ${c.size} bytes`);
      }
      const bytes = await fetcher.readDocument(c, maxConfigBytes, o);
      checkRaw(bytes, c, `${what}: config`);
      return bytes;
    })();
    return rawConfig;
  };
  const config = async (o: Abortable = {}): Promise<ImageConfig | undefined> => {
    if (!isConfigType(manifest.config.mediaType)) return undefined;
    return parseImageConfigOrThrow(await readConfig(o), `${what}: config ${manifest.config.digest}`).value;
  };
  return {
    kind: "image",
    descriptor: { ...desc, mediaType: manifest.mediaType ?? desc.mediaType },
    rawManifest: raw,
    manifest,
    rawConfig: readConfig,
    config,
    async layers(o: Abortable = {}): Promise<readonly Layer[]> {
      const diffIds = (await config(o))?.rootfs.diff_ids ?? [];
      if (diffIds.length > 0 && diffIds.length !== manifest.layers.length) {
        throw new RktError(
          ErrorCode.InvalidManifest,
          `${what}: config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`,
        );
      }
      return manifest.layers.map((d, i) => ({
        descriptor: d,
        diffId: diffIds[i],
        open: verifiedOpen(fetcher, d, what),
      }));
    },
    blob: (d: Descriptor, o?: OpenBlobOptions) => verifiedOpen(fetcher, d, what)(o),
  };
}

/**
 * The image for `platform` (an image is returned as is; an index is resolved, nested indexes
 * too). RKT_NO_MATCHING_PLATFORM naming `what` and what is on offer.
 */
export async function platformImage(
  x: ImageOrIndex,
  platform: Platform,
  what: string,
  o: Abortable = {},
): Promise<Image> {
  let cur = x;
  for (let depth = 0; cur.kind === "index"; depth++) {
    if (depth > 4) throw new RktError(ErrorCode.InvalidManifest, `${what}: indexes nested too deeply`);
    const images = cur.index.manifests.filter((d) => !isIndexType(d.mediaType) || d.platform !== undefined);
    cur = await cur.child(selectPlatform(images, platform, `${what}: index ${cur.descriptor.digest}`), o);
  }
  return cur;
}

/** Every blob an image references, config first, each digest once. */
export function imageBlobs(img: Image): Descriptor[] {
  const seen = new Set<string>();
  return [img.manifest.config, ...img.manifest.layers].filter((d) => {
    if (seen.has(d.digest)) return false;
    seen.add(d.digest);
    return true;
  });
}

/** How a sink got a blob. */
export type BlobWriteOutcome = "exists" | "mounted" | "written";

/** Options of {@link ImageSink.writeBlob}. */
export interface WriteBlobOptions extends Abortable {
  /** The opener serves from an offset: a partial blob of an earlier attempt may be resumed. */
  ranged?: boolean | undefined;
  /** Where the image is read from, when a registry: a sink on the same registry mounts instead of uploading. */
  origin?: { registry: string; repository: string } | undefined;
  /** Bytes of this blob received so far (from the blob's start, a resumed prefix included). */
  onProgress?: ((bytes: number) => void) | undefined;
}

/** Options of {@link ImageSink.writeManifest}. */
export interface WriteManifestOptions extends Abortable {
  /** The name to give it (a tag; for archives and layouts a ref name); none: by digest only. */
  tag?: string | undefined;
  /** The document the copy was asked for (not a child of an index): layouts list it in index.json. */
  top?: boolean | undefined;
}

/**
 * Where images are copied to (a registry, a layout, an archive, the store). `copyImage` calls
 * `has`/`writeBlob` for every blob, then `writeManifest` for each image (children of an index
 * first), then `commit` once; on any failure `abort`. A sink checks the digest and size of every
 * blob it receives and makes nothing visible that failed the check: sources hand it unverified
 * streams so bytes are hashed once.
 */
export interface ImageSink {
  /** Names the destination in messages (`docker://host/repo`, `oci:/dir`). */
  readonly what: string;
  /** False when the sink records single-platform images only (the store): an index is resolved first. */
  readonly acceptsIndex: boolean;
  /**
   * True when the destination holds OCI documents only (layouts, OCI archives): a Docker
   * manifest or list is converted first (same blobs, a new manifest digest).
   */
  readonly ociOnly?: boolean | undefined;
  /** Whether the blob is already there (it is then not sent). */
  has(desc: Descriptor, o?: Abortable): Promise<boolean>;
  /**
   * Whether `tag` (or, without one, the digest) already names exactly `desc` there: the copy is
   * then complete before it starts (one request instead of one per blob). Optional.
   */
  hasManifest?(desc: Descriptor, tag: string | undefined, o?: Abortable): Promise<boolean>;
  /** Stores one blob from `open(start)` (bytes from `start` on). */
  writeBlob(
    desc: Descriptor,
    open: (start: number) => Promise<Readable>,
    o?: WriteBlobOptions,
  ): Promise<BlobWriteOutcome>;
  /** Stores an image's manifest (every blob it names is written) or an index (every child is). */
  writeManifest(x: ImageOrIndex, o?: WriteManifestOptions): Promise<void>;
  /** Ends a successful copy: an archive is finished and moved into place. */
  commit(o?: Abortable): Promise<void>;
  /**
   * Ends a failed copy: nothing it wrote stays visible but blobs it committed. Safe after commit.
   * Given the failure, a sink may return the error to report instead (the store's says which
   * partial blobs it dropped to leave room on a full disk).
   */
  abort(failure?: unknown): Promise<unknown>;
}
