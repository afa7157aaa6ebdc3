// A `docker save` archive (`docker-archive:FILE`, current, legacy and Docker 25 forms) as a
// source. An archive holds no manifest, so one is synthesized: a layer kept as a plain tar is
// named by its diff_id (its digest), so reading the archive costs no pass over the layers; only a
// layer stored compressed, or a legacy layer without a diff_id, is hashed once up front. An
// uncompressed archive is read in place at tar offsets; a compressed one has its layers unpacked
// to a temporary directory (a gzip stream cannot seek). And as a sink, in skopeo's form.
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { compressionMagicLength, decompressStream, detectCompression, type Compression } from "@rkt/appc";
import {
  DigestMismatchError,
  ErrorCode,
  MediaType,
  RktError,
  createDigester,
  digestOf,
  imageFromRaw,
  isLayerType,
  layerCompression,
  verifyDigest,
  type BlobFetcher,
  type Descriptor,
  type Digest,
  type Image,
  type ImageSink,
} from "@rkt/oci";
import {
  diffIdMismatchMessage,
  digestSink,
  forEachArchiveFile,
  scanDockerArchive,
  storableCompression,
  unstorableCompressionMessage,
} from "../docker-archive.js";
import {
  archiveManifest,
  legacyConfig,
  planDockerArchive,
  selectArchiveImage,
  type ArchiveIndex,
  type ArchiveSelector,
  type ManifestLayer,
  type PlannedImage,
  type PlannedLayer,
} from "../docker-archive-plan.js";
import { runLimited } from "../limit.js";
import { decompressLayer } from "../registry/layer-decompress.js";
import { indexTarFile } from "../tar-index.js";
import { byteCounter } from "./layout.js";
import { ArchiveWriter, type ArchiveSinkOptions, type OpenedImage } from "./oci-archive.js";

/** Options of {@link openDockerArchive}. */
export interface OpenDockerArchiveOptions extends ArchiveSelector {
  /** Where a compressed archive's layers are unpacked (created, removed on close); default under the OS's tmp. */
  unpackTo?: string | undefined;
  /** Names the input in errors; default `docker-archive:FILE`. */
  what?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** An opened docker-archive image and the names the archive gives it. */
export interface OpenedDockerArchive extends OpenedImage {
  readonly image: Image;
  /** The selected image's `RepoTags` (`busybox:1.36`), as written. */
  readonly repoTags: readonly string[];
  /**
   * A sink's digest mismatch on a plain layer (named by its diff_id) restated as the diff_id
   * mismatch it is, naming the archive entry; any other error as it is.
   */
  explain(e: unknown): unknown;
}

/** Where the bytes of one layer entry lie: a file, and a byte range of it. */
interface EntrySpan {
  readonly file: string;
  readonly offset: number;
  readonly size: number;
}

const layerType: Record<"none" | "gzip" | "zstd", string> = {
  none: MediaType.DockerLayer,
  gzip: MediaType.DockerLayerGzip,
  zstd: MediaType.DockerLayerZstd,
};

function readSpan(s: EntrySpan, start = 0, signal?: AbortSignal): Readable {
  if (s.size === 0 || start >= s.size) return Readable.from([]);
  return createReadStream(s.file, {
    start: s.offset + start,
    end: s.offset + s.size - 1,
    highWaterMark: 1 << 20,
    ...(signal === undefined ? {} : { signal }),
  });
}

async function sniff(s: EntrySpan): Promise<Compression> {
  const fh = await open(s.file, "r");
  try {
    const b = Buffer.alloc(Math.min(compressionMagicLength, s.size));
    await fh.read(b, 0, b.length, s.offset);
    return detectCompression(b);
  } finally {
    await fh.close();
  }
}

// The blob digest and diff_id of a layer that is not a plain tar named by its diff_id: one read,
// the compressed bytes hashed beside a decompressor feeding the diff_id hash.
async function hashLayer(s: EntrySpan, compressed: boolean, signal?: AbortSignal) {
  const blob = createDigester("sha256");
  const body = readSpan(s, 0, signal);
  if (!compressed) {
    await pipeline(body, digestSink(blob));
    const digest = blob.digest();
    return { digest, diffId: digest };
  }
  const diff = createDigester("sha256");
  const tap = new Transform({
    transform(c: Buffer, _e, cb) {
      blob.update(c);
      cb(null, c);
    },
  });
  body.on("error", (e) => tap.destroy(e));
  const { stream } = await decompressStream(body.pipe(tap));
  await pipeline(stream, digestSink(diff));
  return { digest: blob.digest(), diffId: diff.digest() };
}

interface ResolvedLayer extends ManifestLayer {
  readonly diffId: Digest;
}

async function resolveLayer(layer: PlannedLayer, s: EntrySpan, signal?: AbortSignal): Promise<ResolvedLayer> {
  const compression = await sniff(s);
  if (!storableCompression(compression))
    throw new RktError(ErrorCode.UnsupportedMediaType, unstorableCompressionMessage(layer.name, compression));
  const mediaType = layerType[compression as keyof typeof layerType];
  const want = layer.diffId?.startsWith("sha256:") === true ? layer.diffId : undefined;
  // A plain tar with a known diff_id: the sink that receives it checks every byte against it.
  if (compression === "none" && want !== undefined)
    return { mediaType, digest: want, size: s.size, diffId: want };
  const h = await hashLayer(s, compression !== "none", signal);
  if (layer.diffId !== undefined && layer.diffId !== h.diffId)
    throw new RktError(ErrorCode.DigestMismatch, diffIdMismatchMessage(layer.name, layer.diffId, h.diffId));
  return { mediaType, digest: h.digest, size: s.size, diffId: h.diffId };
}

function selectImage(index: ArchiveIndex, sel: ArchiveSelector): PlannedImage {
  const plan = planDockerArchive(index);
  if (plan.images.length === 0) {
    const i = plan.issues[0];
    throw new RktError(ErrorCode.InvalidArchive, i === undefined ? "no images" : `${i.path}: ${i.message}`);
  }
  const img = selectArchiveImage(plan, sel);
  const own = img.issues[0];
  if (own !== undefined) throw new RktError(ErrorCode.InvalidArchive, `${own.path}: ${own.message}`);
  return img;
}

// The layer entries of a compressed archive, written out one file each in a single pass.
async function unpackLayers(
  file: string,
  index: ArchiveIndex,
  entries: ReadonlySet<string>,
  dir: string,
): Promise<Map<string, EntrySpan>> {
  await mkdir(dir, { recursive: true });
  const spans = new Map<string, EntrySpan>();
  const missing = await forEachArchiveFile(file, index, entries, async (name, body) => {
    const dest = join(dir, String(spans.size));
    await pipeline(body, createWriteStream(dest, { highWaterMark: 1 << 20 }));
    spans.set(name, { file: dest, offset: 0, size: index.entries.get(name)?.size ?? 0 });
  });
  if (missing.size > 0)
    throw new RktError(
      ErrorCode.InvalidArchive,
      `layer ${[...missing][0]} vanished between two reads of the archive`,
    );
  return spans;
}

/**
 * The image of a `docker save` archive that `o` selects (`NAME:TAG`, `@DIGEST` of the config,
 * `@N`, or the only one), with a synthesized Docker schema2 manifest whose digest is the same on
 * every open of the same archive (so a re-import gives the same image ID). Everything the plan
 * finds wrong is refused before a byte is copied. Errors name `o.what`: RKT_INVALID_ARCHIVE,
 * RKT_AMBIGUOUS, RKT_NOT_FOUND, RKT_DIGEST_MISMATCH (a layer that is not what the config says),
 * RKT_UNSUPPORTED_MEDIA_TYPE.
 */
export async function openDockerArchive(
  file: string,
  o: OpenDockerArchiveOptions = {},
): Promise<OpenedDockerArchive> {
  const what = o.what ?? `docker-archive:${file}`;
  let dir: string | undefined;
  const close = () => (dir === undefined ? Promise.resolve() : rm(dir, { recursive: true, force: true }));
  try {
    const seekable = await indexTarFile(file);
    const index = seekable ?? (await scanDockerArchive(file));
    const img = selectImage(index, o);
    const entries = new Set(img.layers.map((l) => l.entry));
    let spans: Map<string, EntrySpan>;
    if (seekable !== undefined) {
      spans = new Map([...entries].map((n) => [n, { file, ...seekable.spans.get(n)! }]));
    } else {
      dir = o.unpackTo ?? (await mkdtemp(join(tmpdir(), ".rkt-docker-archive-")));
      spans = await unpackLayers(file, index, entries, dir);
    }
    const resolved = new Map<string, ResolvedLayer>();
    const unique = img.layers.filter((l, i) => img.layers.findIndex((x) => x.entry === l.entry) === i);
    await runLimited(unique, 2, o.signal, async (l, signal) => {
      resolved.set(l.entry, await resolveLayer(l, spans.get(l.entry)!, signal));
    });
    const layers = img.layers.map((l) => resolved.get(l.entry)!);
    const configBytes =
      img.config?.bytes ??
      legacyConfig(
        img.legacy ?? [],
        layers.map((l) => l.diffId),
      );
    const config = { digest: digestOf(configBytes), size: configBytes.length };
    const raw = archiveManifest(config, layers);
    const byDigest = new Map(layers.map((l, i) => [l.digest, spans.get(img.layers[i]!.entry)!]));
    const fetcher: BlobFetcher = {
      readDocument(d) {
        if (d.digest !== config.digest)
          return Promise.reject(new RktError(ErrorCode.NotFound, `${what}: no document ${d.digest}`));
        return Promise.resolve(configBytes);
      },
      openBlob(d, bo = {}) {
        if (d.digest === config.digest) return Promise.resolve(Readable.from([Buffer.from(configBytes)]));
        const s = byDigest.get(d.digest);
        if (s === undefined)
          return Promise.reject(
            new RktError(ErrorCode.NotFound, `${what}: blob ${d.digest} is not in the archive`),
          );
        return Promise.resolve(readSpan(s, bo.start, bo.signal));
      },
    };
    const desc = { mediaType: MediaType.DockerManifest, digest: digestOf(raw), size: raw.length };
    const image = imageFromRaw(raw, desc, fetcher, what);
    if (image.kind !== "image") throw new RktError(ErrorCode.Internal, `${what}: synthesized an index`);
    const plainLayers = new Map(
      img.layers.map((l, i) => [layers[i]!.digest, l] as const).filter(([d, l]) => d === l.diffId),
    );
    const explain = (e: unknown): unknown => {
      const l = e instanceof DigestMismatchError ? plainLayers.get(e.expected as Digest) : undefined;
      if (l === undefined || !(e instanceof DigestMismatchError)) return e;
      return new RktError(
        ErrorCode.DigestMismatch,
        `${what}: ${diffIdMismatchMessage(l.name, l.diffId!, e.actual)}`,
        {
          cause: e,
        },
      );
    };
    return { image, repoTags: img.repoTags, close, explain };
  } catch (e) {
    await close();
    if (e instanceof RktError && e.message.startsWith(what)) throw e;
    const m = e instanceof Error ? e.message.replace(`${file}: `, "") : String(e);
    throw new RktError(e instanceof RktError ? e.code : ErrorCode.Io, `${what}: ${m}`, { cause: e });
  }
}

/** Options of {@link dockerArchiveSink}. */
export type DockerArchiveSinkOptions = ArchiveSinkOptions;

/**
 * `docker save`'s familiar name for a reference: Docker Hub's `docker.io/library/` dropped, as
 * `docker load` prints and `docker run` accepts it.
 */
export function familiarRepoTag(name: string, tag: string): string {
  const short = name.replace(/^docker\.io\/(?:library\/)?/, "");
  return `${short}:${tag}`;
}

interface WrittenLayer {
  readonly diffId: Digest;
  readonly entry: string;
}

/**
 * Writes a `docker save` archive in the form skopeo writes and `docker load` reads:
 * `manifest.json` (one entry per image, its RepoTags from the tag given), configs as
 * `<digest>.json`, layers uncompressed as `<diff_id>.tar`. An uncompressed layer streams
 * straight into the archive; a compressed one is decompressed first into a temporary file beside
 * the archive (a tar entry needs its size up front), its diff_id computed on the way and checked
 * against the config. Single-platform images only. As {@link ociArchiveSink}: nothing appears at
 * `file` until commit, an existing file is refused unless `overwrite`.
 */
export function dockerArchiveSink(file: string, o: DockerArchiveSinkOptions = {}): ImageSink {
  const what = o.what ?? `docker-archive:${file}`;
  const w = new ArchiveWriter(file, o);
  const layers = new Map<string, Promise<WrittenLayer>>();
  const configs = new Set<string>();
  const temps = new Set<string>();
  const entries: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const check = (d: Descriptor) => verifyDigest(d.digest, d.size, `${what}: blob ${d.digest}`);

  async function writeLayer(
    d: Descriptor,
    openBlob: (start: number) => Promise<Readable>,
    onProgress?: (n: number) => void,
  ): Promise<WrittenLayer> {
    if (layerCompression(d.mediaType) === "none") {
      const entry = `${d.digest.slice(d.digest.indexOf(":") + 1)}.tar`;
      await w.add(entry, d.size, () => openBlob(0), [check(d), byteCounter(onProgress)]);
      return { diffId: d.digest, entry };
    }
    const tmp = join(dirname(file), `.${basename(file)}.layer-${randomBytes(6).toString("hex")}`);
    temps.add(tmp);
    try {
      const diff = createDigester("sha256");
      let size = 0;
      const counted = byteCounter(onProgress);
      const feeding = pipeline(await openBlob(0), check(d), counted);
      const plain = await decompressLayer(counted, d.mediaType);
      const tap = new Transform({
        transform(c: Buffer, _e, cb) {
          diff.update(c);
          size += c.length;
          cb(null, c);
        },
      });
      await Promise.all([feeding, pipeline(plain, tap, createWriteStream(tmp, { highWaterMark: 1 << 20 }))]);
      const diffId = diff.digest();
      const entry = `${diffId.slice(7)}.tar`;
      await w.add(entry, size, () => Promise.resolve(createReadStream(tmp, { highWaterMark: 1 << 20 })));
      return { diffId, entry };
    } finally {
      await rm(tmp, { force: true });
      temps.delete(tmp);
    }
  }

  return {
    what,
    acceptsIndex: false,
    has: (d) => Promise.resolve(layers.has(d.digest) || configs.has(d.digest)),
    async writeBlob(d, openBlob, wo = {}) {
      if (isLayerType(d.mediaType)) {
        const p = writeLayer(d, openBlob, wo.onProgress);
        layers.set(d.digest, p);
        await p;
      } else {
        configs.add(d.digest);
        const entry = `${d.digest.slice(d.digest.indexOf(":") + 1)}.json`;
        await w.add(entry, d.size, () => openBlob(0), [check(d), byteCounter(wo.onProgress)]);
      }
      return "written";
    },
    async writeManifest(x, mo = {}) {
      if (x.kind !== "image") throw new RktError(ErrorCode.Internal, `${what}: holds images, not indexes`);
      const diffIds = (await x.config(mo))?.rootfs.diff_ids ?? [];
      const names: string[] = [];
      for (const [i, d] of x.manifest.layers.entries()) {
        const l = await layers.get(d.digest);
        if (l === undefined)
          throw new RktError(ErrorCode.Internal, `${what}: layer ${d.digest} was not written`);
        const want = diffIds[i];
        if (want !== undefined && want !== l.diffId) {
          throw new RktError(
            ErrorCode.DigestMismatch,
            `${what}: layer ${d.digest}: diff_id mismatch: config says ${want}, content is ${l.diffId}`,
          );
        }
        names.push(l.entry);
      }
      const c = x.manifest.config.digest;
      entries.push({
        Config: `${c.slice(c.indexOf(":") + 1)}.json`,
        RepoTags: mo.tag === undefined ? [] : [mo.tag],
        Layers: names,
      });
    },
    async commit() {
      const b = Buffer.from(JSON.stringify(entries));
      await w.add("manifest.json", b.length, () => Promise.resolve(Readable.from([b])));
      await w.finish();
    },
    async abort() {
      await w.discard();
      await Promise.all([...temps].map((t) => rm(t, { force: true })));
    },
  };
}

/**
 * How many images a `docker save` archive holds (what `:@N` can select); RKT_INVALID_ARCHIVE
 * when none (naming the first problem found). Errors as {@link openDockerArchive}.
 */
export async function dockerArchiveImageCount(file: string): Promise<number> {
  const index = (await indexTarFile(file)) ?? (await scanDockerArchive(file));
  const plan = planDockerArchive(index);
  if (plan.images.length === 0) {
    const i = plan.issues[0];
    throw new RktError(ErrorCode.InvalidArchive, i === undefined ? "no images" : `${i.path}: ${i.message}`);
  }
  return plan.images.length;
}
