export { ErrorCode, RktError, isRktError, DigestMismatchError, SizeMismatchError } from "./errors.js";
export type { RktErrorOptions } from "./errors.js";
export {
  parseDigest,
  parseVerifiableDigest,
  isDigest,
  isVerifiableDigest,
  digestAlgorithm,
  verifiableAlgorithm,
  digestHex,
  digestOf,
  createDigester,
  verifyDigest,
} from "./digest.js";
export type { Digest, Algorithm, Digester } from "./digest.js";
export {
  MediaType,
  manifestAcceptTypes,
  normalizeMediaType,
  isManifestType,
  isIndexType,
  isConfigType,
  isLayerType,
  isForeignLayerType,
  layerCompression,
  isSchema1,
  schema1Message,
  refuseSchema1,
} from "./media-types.js";
export type { KnownMediaType, LayerCompression } from "./media-types.js";
export { formatJsonPath } from "./result.js";
export type { ParseIssue, ParseResult } from "./result.js";
export { parseJsonStrict } from "./json.js";
export { zod, onFirstUse } from "./schema/zod.js";
export type { ZodApi } from "./schema/zod.js";
export type { Descriptor, Platform } from "./schema/descriptor.js";
export type { Manifest, Index } from "./schema/manifest.js";
export type { ImageConfig, ContainerConfig, HistoryEntry } from "./schema/config.js";
export type { OciLayout } from "./schema/layout.js";
export {
  detectDocumentType,
  documentKind,
  parseManifest,
  parseIndex,
  parseImageConfig,
  parseDescriptor,
  parseOciLayout,
  parseManifestOrThrow,
  parseIndexOrThrow,
  parseImageConfigOrThrow,
  parseDescriptorOrThrow,
  parseOciLayoutOrThrow,
  parseManifestOrIndex,
  parseManifestOrIndexOrThrow,
} from "./parse.js";
export type { DocumentType, ImageDocument } from "./parse.js";
export { descriptorOf, artifactTypeOf, chainIds } from "./descriptors.js";
export {
  normalizeOs,
  normalizeArch,
  normalizePlatform,
  formatPlatform,
  parsePlatform,
  hostPlatform,
  compatibleArches,
  matchPlatform,
  selectPlatform,
} from "./platform.js";
export type {
  NormalizedPlatform,
  HostPlatformInput,
  RejectedDescriptor,
  PlatformMatch,
  MatchPlatformOptions,
} from "./platform.js";
export {
  dockerHubRegistry,
  dockerHubApiHost,
  parseDockerReference,
  parseImageRef,
  formatImageRef,
  formatDockerReference,
  registryApiHost,
} from "./reference.js";
export type {
  DockerRef,
  OciLayoutRef,
  DockerArchiveRef,
  AppcNameRef,
  FileRef,
  HttpRef,
  ImageRef,
  ParseImageRefOptions,
} from "./reference.js";
export type {
  Abortable,
  BlobProgress,
  BlobInfo,
  BlobWriter,
  ContentStore,
  IngestStatus,
  WriterOptions,
} from "./content.js";
export { imageFromRaw, platformImage, imageBlobs, maxManifestBytes, maxConfigBytes } from "./image.js";
export { toOciImage, isDockerDocument } from "./convert.js";
export type {
  Image,
  ImageIndex,
  ImageOrIndex,
  Layer,
  BlobFetcher,
  OpenBlobOptions,
  ImageSink,
  BlobWriteOutcome,
  WriteBlobOptions,
  WriteManifestOptions,
} from "./image.js";
export { byteCounter } from "./byte-counter.js";
