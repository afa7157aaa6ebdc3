// An OCI archive (a tar of an image layout, `oci-archive:FILE`) as a source and as a sink. An
// uncompressed archive is read in place: its headers are indexed and blobs read at their offsets.
// A compressed one is unpacked to a temporary layout first (a gzip stream cannot seek).
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, open, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tarStream, { type Pack } from "tar-stream";
import {
  ErrorCode,
  MediaType,
  RktError,
  imageFromRaw,
  maxManifestBytes,
  parseIndexOrThrow,
  parseOciLayoutOrThrow,
  verifyDigest,
  type BlobFetcher,
  type Descriptor,
  type ImageOrIndex,
  type ImageSink,
  type Index,
} from "@rkt/oci";
import { listArchiveEntries } from "../docker-archive.js";
import { OciLayoutReader, blobRelativePath, openOciLayout, refNameAnnotation } from "../oci-layout.js";
import { indexTarFile, type SeekableArchiveIndex } from "../tar-index.js";
import { byteCounter, layoutEntry, layoutFetcher, type LayoutSelector } from "./layout.js";

/** An image read from a file that may hold resources until closed. */
export interface OpenedImage {
  readonly image: ImageOrIndex;
  /** Releases what reading needed (a temporary unpacked layout). Safe to call twice. */
  close(): Promise<void>;
}

function spanFetcher(file: string, idx: SeekableArchiveIndex, what: string): BlobFetcher {
  const span = (d: Descriptor) => {
    const s = idx.spans.get(blobRelativePath(d.digest));
    if (s === undefined)
      throw new RktError(ErrorCode.NotFound, `${what}: blob ${d.digest} is not in the archive`);
    if (s.size !== d.size) {
      throw new RktError(
        ErrorCode.SizeMismatch,
        `${what}: blob ${d.digest}: descriptor says ${d.size} bytes, the archive holds ${s.size}`,
      );
    }
    return s;
  };
  return {
    async readDocument(d, max) {
      const s = span(d);
      if (s.size > max)
        throw new RktError(ErrorCode.TooLarge, `${what}: blob ${d.digest} is ${s.size} bytes`);
      const fh = await open(file, "r");
      try {
        const b = Buffer.alloc(s.size);
        await fh.read(b, 0, s.size, s.offset);
        return b;
      } finally {
        await fh.close();
      }
    },
    openBlob(d, o = {}) {
      const s = span(d);
      const start = o.start ?? 0;
      if (s.size === 0 || start >= s.size) return Promise.resolve(Readable.from([]));
      return Promise.resolve(
        createReadStream(file, {
          start: s.offset + start,
          end: s.offset + s.size - 1,
          highWaterMark: 1 << 20,
          ...(o.signal === undefined ? {} : { signal: o.signal }),
        }),
      );
    },
  };
}

// Only the layout's own files are unpacked, so a hostile archive cannot write elsewhere.
const layoutFile = /^(?:oci-layout|index\.json|blobs\/[a-z0-9]+\/[a-f0-9]{32,128})$/;

async function unpackLayout(file: string, dir: string): Promise<void> {
  await listArchiveEntries(file, async (name, body, type) => {
    if ((type !== "file" && type !== "contiguous-file") || !layoutFile.test(name)) return false;
    const dest = join(dir, name);
    await mkdir(dirname(dest), { recursive: true });
    await pipeline(body, createWriteStream(dest, { highWaterMark: 1 << 20 }));
    return false;
  });
}

/** Options of {@link openOciArchive}. */
export interface OpenOciArchiveOptions extends LayoutSelector {
  /**
   * The directory (created, removed on close) a compressed archive is unpacked into; on the
   * destination's file system is best. Default: a new one under the OS's temporary directory.
   */
  unpackTo?: string | undefined;
}

/** An OCI archive opened for reading: its index.json, and its blobs by descriptor. */
export interface OpenedArchiveLayout {
  readonly index: Index;
  /** index.json exactly as stored. */
  readonly rawIndex: Uint8Array;
  /** Reads blobs (streams unverified: the image model or a sink checks them). */
  readonly fetcher: BlobFetcher;
  /** True when blobs are read in place from the archive; false: from a temporary unpacked copy. */
  readonly inPlace: boolean;
  /** The index.json entries as a layout reader sees them (selection by ref or `@N`). */
  readonly reader: OciLayoutReader;
  /** The image or index `desc` names, its bytes checked against it. */
  image(desc: Descriptor): Promise<ImageOrIndex>;
  /** Releases what reading needed (the unpacked copy). Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens the OCI archive `file`: an uncompressed one is indexed by its tar headers and read in
 * place (nothing is copied, whatever its size); a compressed one is unpacked into `unpackTo`.
 * RKT_NOT_FOUND (no layout in the archive), RKT_INVALID_ARCHIVE, errors naming `oci-archive:FILE`.
 */
export async function openArchiveLayout(
  file: string,
  o: Pick<OpenOciArchiveOptions, "unpackTo"> = {},
): Promise<OpenedArchiveLayout> {
  const what = `oci-archive:${file}`;
  const fail = (e: unknown): never => {
    const m = e instanceof Error ? e.message : String(e);
    throw new RktError(
      e instanceof RktError ? e.code : ErrorCode.Io,
      `${what}: ${m.replace(`${file}: `, "")}`,
      {
        cause: e,
      },
    );
  };
  const opened = (
    reader: OciLayoutReader,
    fetcher: BlobFetcher,
    inPlace: boolean,
    close: () => Promise<void>,
  ) => ({
    index: reader.index,
    rawIndex: reader.rawIndex,
    fetcher,
    inPlace,
    reader,
    async image(desc: Descriptor): Promise<ImageOrIndex> {
      const raw = await fetcher.readDocument(desc, maxManifestBytes);
      return imageFromRaw(raw, desc, fetcher, what);
    },
    close,
  });
  const idx = await indexTarFile(file, (n) => n === "index.json" || n === "oci-layout").catch(fail);
  if (idx !== undefined) {
    const layout = idx.docs.get("oci-layout");
    const rawIndex = idx.docs.get("index.json");
    if (layout === undefined || rawIndex === undefined) {
      throw new RktError(ErrorCode.NotFound, `${what}: not an OCI archive (no oci-layout or index.json)`);
    }
    parseOciLayoutOrThrow(layout, `${what}: oci-layout`);
    const index = parseIndexOrThrow(rawIndex, undefined, `${what}: index.json`).value;
    const reader = new OciLayoutReader(file, index, rawIndex);
    return opened(reader, spanFetcher(file, idx, what), true, () => Promise.resolve());
  }
  let dir: string;
  if (o.unpackTo === undefined) dir = await mkdtemp(join(tmpdir(), ".rkt-oci-archive-"));
  else await mkdir((dir = o.unpackTo), { recursive: true });
  const close = () => rm(dir, { recursive: true, force: true });
  try {
    await unpackLayout(file, dir).catch(fail);
    const reader = await openOciLayout(dir).catch((e: unknown) => {
      throw new RktError(
        e instanceof RktError ? e.code : ErrorCode.Io,
        `${what}: not an OCI archive (${e instanceof Error ? e.message.replace(`${dir}: `, "") : String(e)})`,
      );
    });
    return opened(reader, layoutFetcher(reader), false, close);
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The image or index an entry of the OCI archive `file` names (`ref`, `@index`, or the only
 * one). RKT_NOT_FOUND (no layout in the archive, no such ref), RKT_AMBIGUOUS, RKT_INVALID_ARCHIVE.
 */
export async function openOciArchive(file: string, o: OpenOciArchiveOptions = {}): Promise<OpenedImage> {
  const a = await openArchiveLayout(file, o);
  try {
    return { image: await a.image(layoutEntry(a.reader, o)), close: () => a.close() };
  } catch (e) {
    await a.close();
    throw e;
  }
}

/** Options of {@link ociArchiveSink}. */
export interface ArchiveSinkOptions {
  /** Replace an existing file (default: refuse with RKT_ALREADY_EXISTS). */
  overwrite?: boolean | undefined;
  what?: string | undefined;
  /**
   * Keep Docker manifests and lists byte for byte (a bundle: signatures name those exact bytes)
   * instead of converting them to OCI types as skopeo does. OCI archives only.
   */
  keepManifests?: boolean | undefined;
  /** index.json's own annotations, asked for when the archive is committed (an OCI archive only). */
  annotations?: (() => Readonly<Record<string, string>>) | undefined;
}

/**
 * A tar writer for archive sinks: entries are written one after another in call order into a
 * temporary file beside `file`, which becomes `file` only at `finish` (fsynced, renamed); on
 * `discard` the temporary is removed, so a failed or interrupted save leaves no partial archive.
 */
export class ArchiveWriter {
  private pack: Pack | undefined;
  private out: Promise<void> | undefined;
  private readonly tmp: string;
  private queue: Promise<void> = Promise.resolve();
  private readonly file: string;
  private readonly o: ArchiveSinkOptions;

  constructor(file: string, o: ArchiveSinkOptions) {
    this.file = file;
    this.o = o;
    this.tmp = join(dirname(file), `.${basename(file)}.tmp-${randomBytes(6).toString("hex")}`);
  }

  private async start(): Promise<Pack> {
    if (this.pack !== undefined) return this.pack;
    const exists = await stat(this.file).then(
      () => true,
      () => false,
    );
    if (exists && this.o.overwrite !== true) {
      throw new RktError(
        ErrorCode.AlreadyExists,
        `${this.file}: already exists (use --overwrite to replace it)`,
      );
    }
    const pack = tarStream.pack();
    this.pack = pack;
    this.out = pipeline(pack as unknown as Readable, createWriteStream(this.tmp, { highWaterMark: 1 << 20 }));
    this.out.catch(() => undefined);
    return pack;
  }

  /** Adds an entry of `size` bytes streamed from `body()`, after every entry added before. */
  add(name: string, size: number, body: () => Promise<Readable>, through: Writable[] = []): Promise<void> {
    const run = async (): Promise<void> => {
      const pack = await this.start();
      const src = await body();
      const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) });
      (entry as unknown as NodeJS.EventEmitter).on("error", () => undefined);
      await pipeline([src, ...through, entry as unknown as Writable]);
    };
    const p = this.queue.then(run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Ends the archive and moves it into place. */
  async finish(): Promise<void> {
    await this.queue;
    const pack = await this.start();
    pack.finalize();
    await this.out;
    const fh = await open(this.tmp, "r+");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.file);
  }

  /** Removes the partial archive. */
  async discard(): Promise<void> {
    if (this.pack !== undefined) {
      (this.pack as unknown as NodeJS.EventEmitter).on("error", () => undefined);
      this.pack.destroy();
      await this.out?.catch(() => undefined);
    }
    await rm(this.tmp, { force: true });
  }
}

/** An OCI archive sink that also carries blobs no manifest names. */
export interface OciArchiveSink extends ImageSink {
  /**
   * Adds a blob under `blobs/<alg>/<hex>` that no manifest names (a signature, a key, an ACI),
   * once per digest, checked against `d` on the way in.
   */
  addBlob(d: Descriptor, body: () => Promise<Readable>): Promise<void>;
}

/**
 * Writes an OCI archive: the layout's blobs, `oci-layout` and `index.json` (one entry per image
 * saved, named by its tag) in one tar, as skopeo's `oci-archive:` and `umoci` read it. Blobs are
 * checked against their descriptors on the way in.
 */
export function ociArchiveSink(file: string, o: ArchiveSinkOptions = {}): OciArchiveSink {
  const what = o.what ?? `oci-archive:${file}`;
  const w = new ArchiveWriter(file, o);
  const written = new Set<string>();
  const manifests: Descriptor[] = [];
  const put = (
    d: Descriptor,
    body: () => Promise<Readable>,
    onBytes?: (n: number) => void,
  ): Promise<void> => {
    written.add(d.digest);
    return w.add(blobRelativePath(d.digest), d.size, body, [
      verifyDigest(d.digest, d.size, `${what}: blob ${d.digest}`),
      byteCounter(onBytes),
    ]);
  };
  return {
    what,
    acceptsIndex: true,
    ociOnly: o.keepManifests !== true,
    has: (d) => Promise.resolve(written.has(d.digest)),
    async addBlob(d, body) {
      if (!written.has(d.digest)) await put(d, body);
    },
    async writeBlob(d, openBlob, wo = {}) {
      await put(d, () => openBlob(0), wo.onProgress);
      return "written";
    },
    async writeManifest(x, mo = {}) {
      if (!written.has(x.descriptor.digest)) {
        await put(x.descriptor, () => Promise.resolve(Readable.from([Buffer.from(x.rawManifest)])));
      }
      if (mo.top === true) {
        const { mediaType, digest, size } = x.descriptor;
        manifests.push({
          mediaType,
          digest,
          size,
          ...(mo.tag === undefined ? {} : { annotations: { [refNameAnnotation]: mo.tag } }),
        });
      }
    },
    async commit() {
      const doc = (v: unknown) => {
        const b = Buffer.from(JSON.stringify(v));
        return [b.length, () => Promise.resolve(Readable.from([b]))] as const;
      };
      await w.add("oci-layout", ...doc({ imageLayoutVersion: "1.0.0" }));
      const annotations = o.annotations?.();
      await w.add(
        "index.json",
        ...doc({
          schemaVersion: 2,
          mediaType: MediaType.OciIndex,
          manifests,
          ...(annotations === undefined ? {} : { annotations }),
        }),
      );
      await w.finish();
    },
    abort: () => w.discard(),
  };
}
