// `rkt image export` and `rkt image extract`: the stored bytes out to a file or a directory,
// published with a rename so a failure leaves no partial output behind.
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { pipeline as pipe, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  ErrorCode,
  MediaType,
  RktError,
  byteCounter,
  digestHex,
  parseDigest,
  type BlobProgress,
  type Digest,
} from "@rkt/oci";
import { touchImage } from "./images.js";
import type { LocalStore } from "./local-store.js";
import { fsyncDir, ioError } from "./internal/fs-util.js";
import { indexDb } from "./internal/index-db.js";
import { withOutsideTemp } from "./outside-temp.js";

interface ExportRow {
  kind: "aci" | "oci";
  manifest_digest: string;
}

function imageRow(store: LocalStore, id: string): ExportRow {
  const row = indexDb(store).prepare("SELECT kind, manifest_digest FROM images WHERE id = ?").get(id) as
    ExportRow | undefined;
  if (row === undefined) throw new RktError(ErrorCode.NotFound, `cannot find image with key: ${id}`);
  return row;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Options of {@link exportImage}. */
export interface ExportOptions {
  overwrite?: boolean | undefined;
  /** Each blob's bytes as it is written (an ACI: its archive). */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * Writes image `id` (a full ID) to `outPath`: for an ACI the stored uncompressed archive (its
 * sha512 is the ID); for an OCI image an OCI archive (`oci-layout`, `index.json` with the
 * manifest, `blobs/sha256/…`) that `oci-archive:` importers and skopeo read. The file appears
 * complete or not at all (temp file, fsync, rename), mode 0644. Updates last use. Errors:
 * RKT_ALREADY_EXISTS `output ACI file exists (try --overwrite)`, RKT_NOT_FOUND, RKT_IO.
 */
export async function exportImage(
  store: LocalStore,
  id: string,
  outPath: string,
  o: ExportOptions & { tag?: string | undefined } = {},
): Promise<void> {
  const row = imageRow(store, id);
  if (o.overwrite !== true && (await exists(outPath))) {
    throw new RktError(
      ErrorCode.AlreadyExists,
      `output ${row.kind === "aci" ? "ACI" : "image"} file exists (try --overwrite)`,
    );
  }
  const tmp = join(dirname(resolve(outPath)), `.${basename(outPath)}.rkt-${randomUUID()}`);
  await withOutsideTemp(store, tmp, async () => {
    try {
      const out = createWriteStream(tmp, { flags: "wx", mode: 0o644, highWaterMark: 1 << 20 });
      if (row.kind === "aci") {
        const d = parseDigest(row.manifest_digest);
        const on = o.onProgress;
        const total = (await store.info(d)).size;
        await pipeline(
          await store.open(d),
          byteCounter(on && ((bytes) => on({ digest: d, bytes, total }))),
          out,
        );
      } else {
        await pipeline(await ociArchive(store, parseDigest(row.manifest_digest), o.tag, o.onProgress), out);
      }
      // fsync through a second descriptor: it flushes the same inode.
      const fh = await open(tmp, "r");
      await fh.sync().finally(() => fh.close());
      await rename(tmp, outPath);
      await fsyncDir(dirname(resolve(outPath)));
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw ioError(`exporting image ${id} to ${outPath}`, e);
    }
  });
  touchImage(store, id);
}

async function ociArchive(
  store: LocalStore,
  manifestDigest: Digest,
  tag: string | undefined,
  onProgress: ((p: BlobProgress) => void) | undefined,
): Promise<Readable> {
  // tar-stream is loaded only by the commands that need it.
  const { pack: tarPack } = await import("tar-stream");
  const p = tarPack();
  void (async () => {
    const rows = indexDb(store)
      .prepare(
        "SELECT ib.digest, b.size, b.media_type FROM image_blobs ib JOIN blobs b ON b.digest = ib.digest WHERE ib.image_id = ? ORDER BY ib.role, ib.position",
      )
      .all(manifestDigest) as { digest: string; size: number; media_type: string | null }[];
    const manifest = rows.find((r) => r.digest === manifestDigest);
    const add = (name: string, body: string): Promise<void> =>
      new Promise((res, rej) =>
        p.entry({ name, mode: 0o644, mtime: new Date(0) }, body, (e) => (e ? rej(e) : res())),
      );
    await add("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const desc: Record<string, unknown> = {
      mediaType: manifest?.media_type ?? MediaType.OciManifest,
      digest: manifestDigest,
      size: manifest?.size ?? 0,
    };
    if (tag !== undefined) desc["annotations"] = { "org.opencontainers.image.ref.name": tag };
    await add(
      "index.json",
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [desc] }),
    );
    const seen = new Set<string>();
    for (const r of rows) {
      if (seen.has(r.digest)) continue;
      seen.add(r.digest);
      const d = parseDigest(r.digest);
      const entry = p.entry({
        name: `blobs/sha256/${digestHex(d)}`,
        size: r.size,
        mode: 0o444,
        mtime: new Date(0),
      });
      const total = r.size;
      await pipeline(
        await store.open(d),
        byteCounter(onProgress && ((bytes) => onProgress({ digest: d, bytes, total }))),
        entry,
      );
    }
    p.finalize();
  })().catch((e: unknown) => p.destroy(e instanceof Error ? e : new Error(String(e))));
  return p as unknown as Readable; // tar-stream v3 packs are streamx Readables; pipeline accepts them
}

/** Options of {@link extractImage}. */
export interface ExtractOptions {
  /** Put only the root filesystem in the directory (no `manifest`, no `rootfs/` level). */
  rootfsOnly?: boolean | undefined;
  /** Replace an existing directory. */
  overwrite?: boolean | undefined;
  /** The archive's (OCI: each layer's) bytes as they are extracted. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * Extracts ACI image `id` (only it, not its dependencies; rkt) into `dir`: `manifest` and
 * `rootfs/`, or with `rootfsOnly` the root filesystem itself. Extraction happens in a sibling
 * temp directory that is renamed into place, so `dir` is complete or absent. Entries escaping the
 * directory are refused. An OCI image is rendered by the tree store (layers applied in order,
 * whiteouts honoured) and copied flattened: `manifest` is then its OCI manifest. Errors: RKT_INVALID_ARGUMENT for `/`,
 * RKT_ALREADY_EXISTS `output directory exists (try --overwrite)`, RKT_NOT_FOUND, RKT_IO.
 */
export async function extractImage(
  store: LocalStore,
  id: string,
  dir: string,
  o: ExtractOptions = {},
): Promise<void> {
  const target = resolve(dir);
  if (target === "/")
    throw new RktError(ErrorCode.InvalidArgument, "this would delete your root filesystem. Refusing.");
  const row = imageRow(store, id);
  if (row.kind === "oci") {
    // Layers with whiteouts are the tree store's job: a flattened copy of the image's tree.
    const { renderImageTo } = await import("./tree/store-render.js");
    await renderImageTo(store, id, target, {
      flatten: true,
      rootfsOnly: o.rootfsOnly,
      overwrite: o.overwrite,
      onProgress: o.onProgress,
    });
    return;
  }
  const present = await exists(target);
  if (present && o.overwrite !== true) {
    throw new RktError(ErrorCode.AlreadyExists, "output directory exists (try --overwrite)");
  }
  const tmp = join(dirname(target), `.${basename(target)}.rkt-${randomUUID()}`);
  await withOutsideTemp(store, tmp, async () => {
    try {
      await mkdir(tmp, { recursive: true, mode: 0o755 });
      const { extractTar } = await import("./internal/untar.js");
      const d = parseDigest(row.manifest_digest);
      const on = o.onProgress;
      const total = (await store.info(d)).size;
      const src = byteCounter(on && ((bytes) => on({ digest: d, bytes, total })));
      // Errors of either end reach the other (extraction destroys its input on failure).
      pipe(await store.open(d), src, () => undefined);
      await extractTar(src, tmp, {
        only: o.rootfsOnly === true ? "rootfs" : undefined,
        what: `image ${id}`,
      });
      if (present) await rm(target, { recursive: true, force: true });
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw ioError(`extracting image ${id} to ${dir}`, e);
    }
  });
  touchImage(store, id);
}
