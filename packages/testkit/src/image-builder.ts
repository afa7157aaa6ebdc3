import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { pack as tarPack } from "tar-stream";
import { MediaType, chainIds, descriptorOf, digestHex, type Descriptor, type Digest } from "@rkt/oci";
import {
  packEntry,
  writeLayer,
  type BuiltLayer,
  type Compression,
  type FileEntry,
  type LayerSpec,
} from "./layer.js";

/** `oci` (OCI media types) or `docker` (Docker schema2 manifest / manifest list). */
export type ImageFormat = "oci" | "docker";

/** A layer given as a plain entry list (gzip) or a full {@link LayerSpec}. */
export type LayerInput = readonly FileEntry[] | LayerSpec;

/** An image to build. Defaults: linux/amd64, OCI format, no config fields, created 2000-01-01. */
export interface ImageSpec {
  /** Base layer first. */
  layers: readonly LayerInput[];
  format?: ImageFormat | undefined;
  os?: string | undefined;
  architecture?: string | undefined;
  variant?: string | undefined;
  /** The `config` object of the image config (Env, Cmd, Entrypoint, WorkingDir, User, Labels, …). */
  config?: Record<string, unknown> | undefined;
  /** Extra top-level image config fields (merged last; may override anything). */
  extraConfig?: Record<string, unknown> | undefined;
  /** Manifest annotations (OCI format). */
  annotations?: Record<string, string> | undefined;
  created?: string | undefined;
}

/** A built image: every blob is in the layout (or archive) it was built for. */
export interface BuiltImage {
  /** Manifest descriptor, with `platform` set (as it appears in an index). */
  descriptor: Descriptor;
  manifestBytes: Buffer;
  config: Descriptor;
  configBytes: Buffer;
  layers: BuiltLayer[];
  diffIds: Digest[];
}

/** A built index (manifest list in docker format). */
export interface BuiltIndex {
  descriptor: Descriptor;
  indexBytes: Buffer;
  images: BuiltImage[];
}

const refNameKey = "org.opencontainers.image.ref.name";

function layerMediaType(format: ImageFormat, c: Compression): string {
  if (format === "oci") {
    return c === "gzip" ? MediaType.OciLayerGzip : c === "zstd" ? MediaType.OciLayerZstd : MediaType.OciLayer;
  }
  return c === "gzip"
    ? MediaType.DockerLayerGzip
    : c === "zstd"
      ? MediaType.DockerLayerZstd
      : MediaType.DockerLayer;
}

function asSpec(l: LayerInput): LayerSpec {
  return Array.isArray(l) ? { entries: l as readonly FileEntry[] } : (l as LayerSpec);
}

/** The image config JSON of a spec given its layers' diffIDs. Pure. */
export function imageConfigOf(spec: ImageSpec, diffIds: readonly Digest[]): Record<string, unknown> {
  const created = spec.created ?? "2000-01-01T00:00:00Z";
  return {
    created,
    architecture: spec.architecture ?? "amd64",
    ...(spec.variant === undefined ? {} : { variant: spec.variant }),
    os: spec.os ?? "linux",
    config: spec.config ?? {},
    rootfs: { type: "layers", diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created, created_by: `rkt testkit layer ${i}` })),
    ...spec.extraConfig,
  };
}

/**
 * Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) incrementally: add
 * blobs, images and indexes, tag them, then {@link OciLayoutWriter.finish} writes `index.json`.
 */
export class OciLayoutWriter {
  readonly dir: string;
  private readonly refs: Descriptor[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates (or adds to) a layout directory. Existing blobs are kept; index.json is rewritten by finish(). */
  static async create(dir: string): Promise<OciLayoutWriter> {
    await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    return new OciLayoutWriter(dir);
  }

  /** Path of a blob in this layout. */
  blobPath(digest: Digest): string {
    return join(this.dir, "blobs", "sha256", digestHex(digest));
  }

  /** Stores bytes held in memory (manifests, configs) and returns their descriptor. */
  async writeBlob(bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
    const d = descriptorOf(bytes, mediaType);
    await writeFile(this.blobPath(d.digest), bytes);
    return d;
  }

  /** Builds a layer straight into the layout's blobs (streamed; any size). */
  async addLayer(layer: LayerInput): Promise<BuiltLayer> {
    const tmp = join(
      this.dir,
      "blobs",
      `layer-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    );
    const built = await writeLayer(asSpec(layer), tmp);
    await rename(tmp, this.blobPath(built.digest));
    return built;
  }

  /** Builds layers, config and manifest into the layout. Not tagged: see {@link tag}. */
  async addImage(spec: ImageSpec): Promise<BuiltImage> {
    const layers: BuiltLayer[] = [];
    for (const l of spec.layers) layers.push(await this.addLayer(l));
    return await this.addImageOf(spec, layers);
  }

  /** Config and manifest over layers already in this layout (shared between images). */
  async addImageOf(spec: ImageSpec, layers: readonly BuiltLayer[]): Promise<BuiltImage> {
    const format = spec.format ?? "oci";
    const diffIds = layers.map((l) => l.diffId);
    const configBytes = Buffer.from(JSON.stringify(imageConfigOf(spec, diffIds)));
    const config = await this.writeBlob(
      configBytes,
      format === "oci" ? MediaType.OciConfig : MediaType.DockerConfig,
    );
    const manifest = {
      schemaVersion: 2,
      mediaType: format === "oci" ? MediaType.OciManifest : MediaType.DockerManifest,
      config,
      layers: layers.map((l) => ({
        mediaType: layerMediaType(format, l.compression),
        digest: l.digest,
        size: l.size,
      })),
      ...(spec.annotations === undefined || format !== "oci" ? {} : { annotations: spec.annotations }),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const d = await this.writeBlob(manifestBytes, manifest.mediaType);
    const platform = {
      architecture: spec.architecture ?? "amd64",
      os: spec.os ?? "linux",
      ...(spec.variant === undefined ? {} : { variant: spec.variant }),
    };
    return {
      descriptor: { ...d, platform },
      manifestBytes,
      config,
      configBytes,
      layers: [...layers],
      diffIds,
    };
  }

  /** Builds each image and an index (or docker manifest list) over them. */
  async addIndex(
    specs: readonly ImageSpec[],
    o: { format?: ImageFormat | undefined } = {},
  ): Promise<BuiltIndex> {
    const images: BuiltImage[] = [];
    for (const s of specs) images.push(await this.addImage({ ...s, format: s.format ?? o.format }));
    const format = o.format ?? "oci";
    const mediaType = format === "oci" ? MediaType.OciIndex : MediaType.DockerManifestList;
    const indexBytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType, manifests: images.map((i) => i.descriptor) }),
    );
    return { descriptor: await this.writeBlob(indexBytes, mediaType), indexBytes, images };
  }

  /** Lists `desc` in index.json under `org.opencontainers.image.ref.name` = `ref` (if given). */
  tag(desc: Descriptor, ref?: string): void {
    const { platform: _p, ...plain } = desc;
    this.refs.push(ref === undefined ? plain : { ...plain, annotations: { [refNameKey]: ref } });
  }

  /** Writes index.json listing everything tagged. */
  async finish(): Promise<void> {
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: this.refs };
    await writeFile(join(this.dir, "index.json"), JSON.stringify(index));
  }
}

/** Builds one image into a new OCI layout at `dir`, tagged `ref` (default `latest`). */
export async function writeOciLayout(
  dir: string,
  spec: ImageSpec,
  o: { ref?: string | undefined } = {},
): Promise<BuiltImage> {
  const w = await OciLayoutWriter.create(dir);
  const img = await w.addImage(spec);
  w.tag(img.descriptor, o.ref ?? "latest");
  await w.finish();
  return img;
}

/** Builds a multi-platform image (an index over `specs`) into a new OCI layout at `dir`, tagged `ref`. */
export async function writeOciLayoutIndex(
  dir: string,
  specs: readonly ImageSpec[],
  o: { ref?: string | undefined; format?: ImageFormat | undefined } = {},
): Promise<BuiltIndex> {
  const w = await OciLayoutWriter.create(dir);
  const idx = await w.addIndex(specs, { format: o.format });
  w.tag(idx.descriptor, o.ref ?? "latest");
  await w.finish();
  return idx;
}

/** What {@link writeDockerArchive} wrote. */
export interface BuiltDockerArchive {
  /** The config digest: what `docker load` reports as the image ID. */
  imageId: Digest;
  configBytes: Buffer;
  diffIds: Digest[];
}

/**
 * Writes a `docker save` archive at `file`: `manifest.json` (`Config`, `RepoTags`, `Layers`), the
 * config as `<hex>.json`, each layer uncompressed at `<id>/layer.tar` with legacy `VERSION` and
 * `json`, and the legacy `repositories` file. Layer IDs are the layers' chain IDs (hex).
 * `repoTags` like `["example.com/app:1"]`. Layers are built to a temp dir, then streamed in.
 */
export async function writeDockerArchive(
  file: string,
  spec: ImageSpec,
  o: { repoTags?: readonly string[] | undefined } = {},
): Promise<BuiltDockerArchive> {
  const work = await mkdtemp(join(tmpdir(), "rkt-docker-archive-"));
  try {
    const layers: BuiltLayer[] = [];
    const paths: string[] = [];
    for (const [i, l] of spec.layers.entries()) {
      const p = join(work, `layer-${i}.tar`);
      layers.push(await writeLayer({ ...asSpec(l), compression: "none" }, p));
      paths.push(p);
    }
    const diffIds = layers.map((l) => l.diffId);
    const configBytes = Buffer.from(JSON.stringify(imageConfigOf(spec, diffIds)));
    const imageId = descriptorOf(configBytes, MediaType.DockerConfig).digest;
    const ids = chainIds(diffIds).map(digestHex);
    const repoTags = [...(o.repoTags ?? [])];
    const manifest = [
      {
        Config: `${digestHex(imageId)}.json`,
        RepoTags: repoTags,
        Layers: ids.map((id) => `${id}/layer.tar`),
      },
    ];
    const repositories: Record<string, Record<string, string>> = {};
    const top = ids[ids.length - 1];
    for (const t of repoTags) {
      const colon = t.lastIndexOf(":");
      const [repo, tag] =
        colon > t.lastIndexOf("/") ? [t.slice(0, colon), t.slice(colon + 1)] : [t, "latest"];
      if (top !== undefined) (repositories[repo] ??= {})[tag] = top;
    }

    const pack = tarPack();
    const mtime = new Date(0);
    const add = (name: string, body: string | Buffer): Promise<void> =>
      packEntry(pack, { name, mode: 0o644, mtime }, body);
    await mkdir(dirname(file), { recursive: true });
    const written = pipeline(pack, createWriteStream(file));
    const feed = async (): Promise<void> => {
      for (const [i, id] of ids.entries()) {
        await packEntry(pack, { name: `${id}/`, type: "directory", mode: 0o755, mtime }, undefined);
        await add(`${id}/VERSION`, "1.0");
        await add(`${id}/json`, JSON.stringify({ id, ...(i > 0 ? { parent: ids[i - 1] } : {}) }));
        const p = paths[i]!;
        const size = (await stat(p)).size;
        await packEntry(pack, { name: `${id}/layer.tar`, size, mode: 0o644, mtime }, createReadStream(p));
      }
      await add(`${digestHex(imageId)}.json`, configBytes);
      await add("manifest.json", JSON.stringify(manifest));
      await add("repositories", JSON.stringify(repositories));
      pack.finalize();
    };
    await Promise.all([written, feed().catch((e: unknown) => pack.destroy(e as Error))]);
    return { imageId, configBytes, diffIds };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
