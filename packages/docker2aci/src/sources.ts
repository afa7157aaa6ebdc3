// Inputs for the converter from the places images live: the store, an OCI image layout
// directory, a `docker save` archive. Every layer is opened lazily, once per pass, as a stream.
import { basename } from "node:path";
import { createReadStream } from "node:fs";
import { PassThrough, Readable } from "node:stream";
import {
  forEachArchiveFile,
  indexTarFile,
  legacyConfig,
  openOciLayout,
  planDockerArchive,
  scanDockerArchive,
  selectArchiveImage,
  type ArchiveIndex,
  type PlannedImage,
} from "@rkt/fetch";
import {
  ErrorCode,
  MediaType,
  RktError,
  descriptorOf,
  hostPlatform,
  parseDockerReference,
  parseImageConfigOrThrow,
  parseManifestOrIndexOrThrow,
  parseManifestOrThrow,
  parseDigest,
  selectPlatform,
  type Descriptor,
  type ImageConfig,
  type Manifest,
} from "@rkt/oci";
import type { LocalStore } from "@rkt/store";
import type { ImageInput, ImageNameInput, LayerInput } from "./input.js";
import { dockerHubIndex, parseDockerName, storedImageName } from "./names.js";

const maxDocument = 4 << 20;

/**
 * The OCI image `id` (a full ID, `sha256:…`) of `store` as converter input; its layers are read
 * from the store (verified blobs). RKT_NOT_FOUND; RKT_INVALID_ARGUMENT for an ACI.
 */
export async function storeImageInput(store: LocalStore, id: string): Promise<ImageInput> {
  const { getImage, readBlobLimited } = await import("@rkt/store");
  const rec = getImage(store, id);
  if (rec.kind !== "oci") {
    throw new RktError(ErrorCode.InvalidArgument, `image ${id} is already an ACI: nothing to convert`);
  }
  const manifestDigest = parseDigest(rec.manifestDigest);
  const manifest = parseManifestOrThrow(
    await readBlobLimited(store, manifestDigest, maxDocument),
    `manifest of ${id}`,
  ).value;
  const config = parseImageConfigOrThrow(
    await readBlobLimited(store, manifest.config.digest, maxDocument),
    `config of ${id}`,
  ).value;
  const layers: LayerInput[] = manifest.layers.map((d) => ({
    mediaType: d.mediaType,
    digest: d.digest,
    open: () => store.open(d.digest),
  }));
  const name = storedImageName(rec.name, rec.labels["version"]);
  return { manifest, config, layers, name, manifestHash: manifestDigest };
}

/**
 * An image of an OCI layout directory: `ref` names it (its `org.opencontainers.image.ref.name`),
 * or the layout's only image; an index resolves to the host platform. Named like docker2aci names
 * OCI layouts: the directory's base name as repository, the ref as tag (default `latest`).
 */
export async function ociLayoutInput(dir: string, ref?: string): Promise<ImageInput> {
  const reader = await openOciLayout(dir);
  let desc: Descriptor = reader.resolve(ref);
  let raw = await reader.readBlob(desc);
  const doc = parseManifestOrIndexOrThrow(raw, `${dir}: ${desc.digest}`).value;
  if (doc.kind === "index") {
    desc = selectPlatform(doc.index.manifests, hostPlatform(), `${dir}: index ${desc.digest}`);
    raw = await reader.readBlob(desc);
  }
  const manifest = parseManifestOrThrow(raw, `${dir}: manifest ${desc.digest}`).value;
  const config = parseImageConfigOrThrow(await reader.readBlob(manifest.config), `${dir}: config`).value;
  const layers: LayerInput[] = manifest.layers.map((d) => ({
    mediaType: d.mediaType,
    digest: d.digest,
    open: () => reader.openBlob(d),
  }));
  const tag =
    ref === undefined || ref === "" ? (reader.index.manifests.length === 1 ? "latest" : undefined) : ref;
  const name: ImageNameInput = {
    repository: basename(dir.replace(/\/+$/, "")).split(".")[0] ?? "image",
    tag: tag ?? "latest",
  };
  return { manifest, config, layers, name, manifestHash: desc.digest };
}

// Streams one regular-file entry of the archive (a pass over the tar up to it).
function archiveEntryStream(file: string, index: ArchiveIndex, entry: string): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  forEachArchiveFile(file, index, new Set([entry]), async (_name, body) => {
    const { pipeline } = await import("node:stream/promises");
    await pipeline(body, out);
  })
    .then((missing) => {
      if (missing.size > 0) out.destroy(new RktError(ErrorCode.NotFound, `${file}: entry ${entry} vanished`));
    })
    .catch((e: unknown) => out.destroy(e instanceof Error ? e : new Error(String(e))));
  return out;
}

function repoTagName(tag: string): { repository: string; tag: string | undefined; registry: string } {
  const r = parseDockerReference(tag);
  return {
    repository: r.repository,
    tag: r.digest !== undefined ? undefined : (r.tag ?? "latest"),
    registry: r.registry === "docker.io" ? dockerHubIndex : r.registry,
  };
}

/** Options of {@link dockerArchiveInput}. */
export interface DockerArchiveInputOptions {
  /** docker2aci's `--image NAME[:TAG]`: which image of the archive (needed when it holds several). */
  image?: string | undefined;
}

/**
 * An image of a `docker save` archive (current `manifest.json` form, or the legacy
 * `repositories` form), named as docker2aci names them: the repository of its tag (`busybox` →
 * `library/busybox`) without registry, the tag; with `image`, that reference's registry and the
 * reference as original name. The archive is read once to index it, and once more per layer
 * opened. RKT_NOT_FOUND / RKT_AMBIGUOUS (with the images it holds), RKT_INVALID_ARCHIVE.
 */
export async function dockerArchiveInput(
  file: string,
  o: DockerArchiveInputOptions = {},
): Promise<ImageInput> {
  // An uncompressed archive (what `docker save` writes) is indexed by its headers and its layers
  // are read at their offsets; a compressed one is scanned as a stream, and walked once per layer.
  const seekable = await indexTarFile(file);
  const index = seekable ?? (await scanDockerArchive(file));
  const plan = planDockerArchive(index);
  const want = o.image === undefined || o.image === "" ? undefined : parseDockerReference(o.image);
  const img: PlannedImage = selectArchiveImage(plan, want === undefined ? {} : { ref: want });
  if (img.issues.length > 0) {
    const i = img.issues[0]!;
    throw new RktError(ErrorCode.InvalidArchive, `${file}: ${i.path}: ${i.message}`);
  }
  let config: ImageConfig;
  let configDigest: string;
  if (img.config !== undefined) {
    config = parseImageConfigOrThrow(img.config.bytes, `${file}: config`).value;
    configDigest = img.config.digest;
  } else {
    // Legacy archives carry no diff_ids; the conversion does not need them.
    const bytes = legacyConfig(img.legacy ?? [], []);
    config = JSON.parse(Buffer.from(bytes).toString("utf8")) as ImageConfig;
    configDigest = descriptorOf(bytes, MediaType.DockerConfig).digest;
  }
  const layers: LayerInput[] = img.layers.map((l) => ({
    mediaType: MediaType.DockerLayer,
    // The diffID when the config names it; a legacy layer is named by its v1 layer ID.
    digest: l.diffId ?? l.entry.split("/")[0] ?? l.entry,
    open: () => {
      const span = seekable?.spans.get(l.entry);
      if (span === undefined) return Promise.resolve(archiveEntryStream(file, index, l.entry));
      if (span.size === 0) return Promise.resolve(Readable.from([]));
      return Promise.resolve(
        createReadStream(file, {
          start: span.offset,
          end: span.offset + span.size - 1,
          highWaterMark: 1 << 20,
        }),
      );
    },
  }));
  let name: ImageNameInput;
  const tagged = want !== undefined ? undefined : img.repoTags[0];
  if (want !== undefined) {
    const p = parseDockerName(o.image ?? "");
    // docker2aci: the requested tag, or the image's only tag when it has no such tag.
    name = { registry: p.registry, repository: p.repository, tag: p.tag, originalName: o.image };
  } else if (tagged !== undefined) {
    const t = repoTagName(tagged);
    name = { repository: t.repository, tag: t.tag };
  } else {
    name = { repository: basename(file).split(".")[0] ?? "image", tag: "latest" };
  }
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: MediaType.DockerConfig, digest: parseDigest(configDigest), size: 0 },
    layers: [],
  };
  return { manifest, config, layers, name, manifestHash: configDigest };
}
