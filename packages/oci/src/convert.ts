// Docker schema2 → OCI manifest conversion for destinations that hold OCI documents only (image
// layouts and OCI archives: skopeo's and umoci's readers look for OCI media types). Only the
// manifest (or index) is rewritten: config and layer blobs are the same bytes under OCI media
// types, as containers/image converts them. The image therefore gets a new manifest digest.
import type { Abortable } from "./content.js";
import { digestOf } from "./digest.js";
import { ErrorCode, RktError } from "./errors.js";
import { imageFromRaw, type BlobFetcher, type Image, type ImageOrIndex } from "./image.js";
import { MediaType, normalizeMediaType } from "./media-types.js";
import type { Descriptor } from "./schema/descriptor.js";

const ociType: ReadonlyMap<string, string> = new Map<string, string>([
  [MediaType.DockerManifest, MediaType.OciManifest],
  [MediaType.DockerManifestList, MediaType.OciIndex],
  [MediaType.DockerConfig, MediaType.OciConfig],
  [MediaType.DockerLayer, MediaType.OciLayer],
  [MediaType.DockerLayerGzip, MediaType.OciLayerGzip],
  [MediaType.DockerLayerZstd, MediaType.OciLayerZstd],
  [MediaType.DockerForeignLayer, MediaType.OciLayerNonDistributable],
  [MediaType.DockerForeignLayerGzip, MediaType.OciLayerNonDistributableGzip],
]);

/** True when `x` is a Docker schema2 manifest or manifest list (an OCI-only sink converts it). */
export function isDockerDocument(x: ImageOrIndex): boolean {
  const m = normalizeMediaType(x.descriptor.mediaType);
  return m === MediaType.DockerManifest || m === MediaType.DockerManifestList;
}

function retype(d: Descriptor): Descriptor {
  const t = ociType.get(normalizeMediaType(d.mediaType));
  return t === undefined ? d : { ...d, mediaType: t };
}

// The source's blobs under their new names: the same digests, so reads go to the original image.
function imageFetcher(img: Image): BlobFetcher {
  return {
    verified: true,
    async readDocument(d, max, o) {
      if (d.digest !== img.manifest.config.digest)
        throw new RktError(
          ErrorCode.NotFound,
          `blob ${d.digest} is not a document of ${img.descriptor.digest}`,
        );
      const raw = await img.rawConfig(o);
      if (raw.length > max)
        throw new RktError(ErrorCode.TooLarge, `config ${d.digest} is ${raw.length} bytes`);
      return raw;
    },
    openBlob: (d, o) => img.blob(d, o),
  };
}

function convertImage(img: Image, what: string): Image {
  const m = img.manifest;
  const doc = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: retype(m.config),
    layers: m.layers.map(retype),
    ...(m.annotations === undefined ? {} : { annotations: m.annotations }),
  };
  const raw = Buffer.from(JSON.stringify(doc));
  const desc = {
    ...img.descriptor,
    mediaType: MediaType.OciManifest,
    digest: digestOf(raw),
    size: raw.length,
  };
  const x = imageFromRaw(raw, desc, imageFetcher(img), what);
  if (x.kind !== "image") throw new RktError(ErrorCode.Internal, `${what}: converted an image into an index`);
  return x;
}

/**
 * `x` with OCI media types: a Docker schema2 manifest rewritten (same config and layer blobs), a
 * Docker manifest list rewritten with each child converted (children are read: the new index
 * names their new digests); OCI documents are returned as they are.
 */
export async function toOciImage(x: ImageOrIndex, what: string, o: Abortable = {}): Promise<ImageOrIndex> {
  if (x.kind === "image") return isDockerDocument(x) ? convertImage(x, what) : x;
  if (!isDockerDocument(x)) return x;
  const children = new Map<string, ImageOrIndex>();
  const manifests: Descriptor[] = [];
  for (const d of x.index.manifests) {
    const c = await toOciImage(await x.child(d, o), what, o);
    children.set(c.descriptor.digest, c);
    manifests.push({
      ...d,
      mediaType: c.descriptor.mediaType,
      digest: c.descriptor.digest,
      size: c.descriptor.size,
    });
  }
  const doc = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests,
    ...(x.index.annotations === undefined ? {} : { annotations: x.index.annotations }),
  };
  const raw = Buffer.from(JSON.stringify(doc));
  const desc = { ...x.descriptor, mediaType: MediaType.OciIndex, digest: digestOf(raw), size: raw.length };
  const fetcher: BlobFetcher = {
    readDocument: () =>
      Promise.reject(new RktError(ErrorCode.Internal, `${what}: converted index read directly`)),
    openBlob: () => Promise.reject(new RktError(ErrorCode.Internal, `${what}: converted index has no blobs`)),
  };
  const idx = imageFromRaw(raw, desc, fetcher, what);
  if (idx.kind !== "index")
    throw new RktError(ErrorCode.Internal, `${what}: converted an index into an image`);
  return {
    ...idx,
    child(d: Descriptor): Promise<ImageOrIndex> {
      const c = children.get(d.digest);
      if (c === undefined)
        return Promise.reject(new RktError(ErrorCode.NotFound, `${what}: no child ${d.digest}`));
      return Promise.resolve(c);
    },
  };
}
