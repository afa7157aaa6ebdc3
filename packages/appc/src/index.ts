// Public entry of @rkt/appc: appc formats, pure.
export {
  acIdentifierProblem,
  acNameProblem,
  isACIdentifier,
  isACName,
  parseACIdentifier,
  parseACName,
  sanitizeACIdentifier,
  sanitizeACName,
} from "./names.js";
export type { ACIdentifier, ACName } from "./names.js";
export {
  WellKnownLabel,
  defaultVersion,
  validOSArch,
  osArchProblem,
  isValidOSArch,
  labelProblems,
  parseLabels,
  labelsToList,
  versionOf,
} from "./labels.js";
export type { Label } from "./labels.js";
export type { ImageManifest, App, Dependency, Annotation, Isolator } from "./schema/image-manifest.js";
export type { PodManifest, RuntimeApp, Volume } from "./schema/pod-manifest.js";
export {
  parseImageManifest,
  parsePodManifest,
  parseImageManifestOrThrow,
  parsePodManifestOrThrow,
} from "./manifest.js";
export { detectCompression, decompressor, decompressStream, compressionMagicLength } from "./compression.js";
export type { Compression, DecompressOptions } from "./compression.js";
export { tarStream } from "./tar.js";
export {
  TarParser,
  decodePaxRecords,
  decodeTarHeader,
  encodeTarHeader,
  tarEnd,
  tarPadding,
} from "./tar-codec.js";
export type { TarHeaderInit, TarVisitor } from "./tar-codec.js";
export {
  aciImageId,
  isAciImageId,
  shortAciId,
  normalizeAciIdPrefix,
  createSha512PassThrough,
  aciIdHexLength,
  minAciIdPrefixLength,
} from "./image-id.js";
export type { Sha512PassThrough } from "./image-id.js";
export {
  readAci,
  readAciManifest,
  cleanTarPath,
  defaultMaxManifestSize,
  tarErrorReason,
} from "./aci-reader.js";
export type { AciEntry, ReadAciOptions, AciReadResult } from "./aci-reader.js";
export { writeAci } from "./aci-writer.js";
export type { AciWriteEntry, WriteAciOptions } from "./aci-writer.js";
export { parseAppString, formatAppString } from "./app-string.js";
export type { AppString } from "./app-string.js";
export {
  discoveryPrefixes,
  discoveryUrl,
  parseDiscoveryMeta,
  renderTemplate,
  discoverEndpoints,
} from "./discovery.js";
export type { AcMeta, AciEndpoint, DiscoveryResult } from "./discovery.js";
