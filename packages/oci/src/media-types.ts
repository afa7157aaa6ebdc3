import { ErrorCode, RktError } from "./errors.js";

/**
 * Every media type this project names: OCI image-spec (media-types.md), Docker distribution
 * (manifest-v2-2.md, containerd `core/images/mediatypes.go`) and the legacy schema1 types that are
 * recognised only to be refused. `as const` object rather than an enum (erasableSyntaxOnly).
 */
export const MediaType = {
  OciDescriptor: "application/vnd.oci.descriptor.v1+json",
  OciLayoutHeader: "application/vnd.oci.layout.header.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNonDistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciLayerNonDistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciLayerNonDistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  OciEmpty: "application/vnd.oci.empty.v1+json",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  DockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  DockerPluginConfig: "application/vnd.docker.plugin.v1+json",
  DockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  DockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  /** Media type distribution assigned to schema1 `fsLayers` blobs. */
  DockerSchema1Layer: "application/vnd.docker.container.image.rootfs.diff+x-gtar",
  AppcAci: "application/vnd.appc.image.aci",
} as const;
/** One of the media types in {@link MediaType}. Descriptors may carry any other string too. */
export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

/** The `Accept` list for manifest requests: every type we parse, never schema1 (it would invite a down-conversion). */
export const manifestAcceptTypes: readonly string[] = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
];

/**
 * Removes parameters and case differences from a media type as HTTP sends it
 * (`Application/JSON; charset=utf-8` -> `application/json`); distribution says clients SHOULD
 * ignore Content-Type parameters.
 */
export function normalizeMediaType(mediaType: string): string {
  const semi = mediaType.indexOf(";");
  return (semi === -1 ? mediaType : mediaType.slice(0, semi)).trim().toLowerCase();
}

/** True for the OCI image manifest and the Docker schema2 manifest (not schema1: see {@link isSchema1}). */
export function isManifestType(mediaType: string): boolean {
  const m = normalizeMediaType(mediaType);
  return m === MediaType.OciManifest || m === MediaType.DockerManifest;
}

/** True for the OCI image index and the Docker manifest list. */
export function isIndexType(mediaType: string): boolean {
  const m = normalizeMediaType(mediaType);
  return m === MediaType.OciIndex || m === MediaType.DockerManifestList;
}

/** True for the image config types we parse (OCI and Docker); other config types are opaque. */
export function isConfigType(mediaType: string): boolean {
  const m = normalizeMediaType(mediaType);
  return m === MediaType.OciConfig || m === MediaType.DockerConfig;
}

const layerTypes: ReadonlyMap<string, LayerCompression> = new Map<string, LayerCompression>([
  [MediaType.OciLayer, "none"],
  [MediaType.OciLayerGzip, "gzip"],
  [MediaType.OciLayerZstd, "zstd"],
  [MediaType.OciLayerNonDistributable, "none"],
  [MediaType.OciLayerNonDistributableGzip, "gzip"],
  [MediaType.OciLayerNonDistributableZstd, "zstd"],
  // containerd reports Docker's ".tar" types as "unknown": some producers gzipped them anyway, so
  // the reader must sniff the magic bytes (gzip 1f 8b, zstd 28 b5 2f fd) before untarring.
  [MediaType.DockerLayer, "unknown"],
  [MediaType.DockerForeignLayer, "unknown"],
  [MediaType.DockerLayerGzip, "gzip"],
  [MediaType.DockerForeignLayerGzip, "gzip"],
  [MediaType.DockerLayerZstd, "zstd"],
  [MediaType.DockerSchema1Layer, "gzip"],
]);

/** How a layer blob is compressed; "unknown" means: sniff the first bytes. */
export type LayerCompression = "none" | "gzip" | "zstd" | "unknown";

/** True for every OCI and Docker filesystem layer type (including non-distributable and foreign). */
export function isLayerType(mediaType: string): boolean {
  return layerTypes.has(normalizeMediaType(mediaType));
}

/** True for OCI non-distributable and Docker foreign layers (pulled from `urls`, never pushed). */
export function isForeignLayerType(mediaType: string): boolean {
  const m = normalizeMediaType(mediaType);
  return m.startsWith("application/vnd.oci.image.layer.nondistributable.") || m.includes(".foreign.");
}

/**
 * The compression of a layer media type. Layer types we do not list (encrypted, in-toto, artifacts)
 * give "unknown"; so do Docker's uncompressed ".tar" types (see the comment in the table).
 */
export function layerCompression(mediaType: string): LayerCompression {
  return layerTypes.get(normalizeMediaType(mediaType)) ?? "unknown";
}

/** True for the two Docker schema1 manifest types (signed `+prettyjws` and unsigned `+json`). */
export function isSchema1(mediaType: string): boolean {
  const m = normalizeMediaType(mediaType);
  return m === MediaType.DockerSchema1Signed || m === MediaType.DockerSchema1;
}

/** The message every refusal of schema1 content uses, so that users see one wording. */
export const schema1Message =
  "schema1 manifests are not supported (deprecated Docker format since 2016); push the image again with a current client";

/**
 * Throws RKT_UNSUPPORTED_MEDIA_TYPE with the schema1 explanation when `mediaType` is a schema1 type.
 * `what` names the input (a reference or a digest) at the start of the message.
 */
export function refuseSchema1(mediaType: string, what: string): void {
  if (isSchema1(mediaType)) {
    throw new RktError(ErrorCode.UnsupportedMediaType, `${what}: ${schema1Message}`);
  }
}
