// Public entry of @rkt/fetch: transports and their helpers.

// Registry v2 / OCI distribution client (src/registry/).
export { RegistryClient, defaultMaxManifestBytes } from "./registry/client.js";
export type {
  RegistryClientOptions,
  PingResult,
  FetchedManifest,
  RegistryImage,
  GetManifestOptions,
  GetImageOptions,
  BlobProgress,
  FetchBlobOptions,
  PushBlobOptions,
} from "./registry/client.js";
export { maxRedirects, isPrivateHost } from "./registry/http.js";
export type { InsecureOptions, RetryOptions, HttpOptions } from "./registry/http.js";
export { RegistryError, parseRegistryErrors, parseRetryAfter, maxErrorBodyBytes } from "./registry/errors.js";
export type { RegistryDiagnostic } from "./registry/errors.js";
export { zstdDecompressor, decompressLayer } from "./registry/layer-decompress.js";
export type { ZstdBackend } from "./registry/layer-decompress.js";
export { parseWwwAuthenticate, pullScope, pushScope } from "./registry/challenge.js";
export type { Challenge } from "./registry/challenge.js";
export {
  isIdentityToken,
  staticCredentials,
  chainCredentials,
  lookupAuthFile,
  runCredentialHelper,
  dockerConfigPath,
  dockerConfigCredentials,
  containersAuthPaths,
  containersAuthCredentials,
  parseRktDockerAuth,
  rktDockerAuthCredentials,
  defaultCredentials,
} from "./registry/credentials.js";
export type {
  BasicCredentials,
  IdentityTokenCredentials,
  Credentials,
  CredentialsProvider,
  AuthFile,
  CredentialHelperOptions,
  FileCredentialsOptions,
  RktDockerAuth,
} from "./registry/credentials.js";

// OCI image layouts and archives, docker-archives, and `rkt image validate` (validation I/O).
export {
  OciLayoutReader,
  openOciLayout,
  blobRelativePath,
  readFileLimited,
  maxDocumentBytes,
  refNameAnnotation,
} from "./oci-layout.js";
export {
  listArchiveEntries,
  withExtractedArchive,
  scanDockerArchive,
  forEachArchiveFile,
  validateDockerArchiveFile,
} from "./docker-archive.js";
export type { EntryHeader } from "./docker-archive.js";
export {
  validateTypes,
  validateFile,
  validateLayout,
  validateAci,
  validateDocument,
  validateDockerArchive,
  detectInputType,
} from "./validate.js";
export type {
  ValidateType,
  ValidationIssue,
  ValidationResult,
  ValidateOptions,
  DetectedType,
} from "./validate.js";

// Local imports into the store: `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, and `docker save`
// archives (`docker-archive:FILE[:NAME:TAG|:@DIGEST|:@N]`, current, legacy and Docker 25 forms).
export { importOciLayout, importOciArchive, importDockerArchive } from "./local-import.js";
export type {
  ImportOciLayoutOptions,
  ImportOciArchiveOptions,
  ImportDockerArchiveOptions,
  LocalImportResult,
} from "./local-import.js";
export {
  planDockerArchive,
  selectArchiveImage,
  archiveManifest,
  legacyConfig,
  isArchiveDocument,
  resolveEntry,
} from "./docker-archive-plan.js";
export type {
  ArchiveEntry,
  ArchiveIndex,
  ArchiveIssue,
  ArchivePlan,
  ArchiveSelector,
  PlannedImage,
  PlannedLayer,
  ManifestLayer,
} from "./docker-archive-plan.js";

// Local ACI files, verified against the rkt keystore before they are stored.
export {
  importAciFile,
  ascPathFromImgPath,
  readSignatureFile,
  unknownSignerHint,
  verificationDisabledWarning,
} from "./aci-file.js";
export type { ImportAciFileOptions, ImportAciFileResult } from "./aci-file.js";

// Public keys for `rkt trust`: files, https URLs, appc pubkey discovery.
export {
  readPubkey,
  discoverPubkeys,
  pubkeyLocationKind,
  machineCaCertificates,
  pubkeyTimeoutMs,
  maxPubkeyBytes,
} from "./pubkey.js";
export type { PubkeyFetchOptions, FetchedPubkey, PubkeyLocationKind } from "./pubkey.js";

// Registry pulls into the store (`rkt fetch docker://…`) under rkt's pull policies.
export {
  pullImage,
  dockerRemoteKey,
  notFetchedError,
  defaultPullParallel,
  dockerSignatureUnsupported,
  PullProgress,
} from "./pull.js";
export type { PullPolicy, PullImageOptions, PullResult } from "./pull.js";

// policy.json admission of registry images, with lookaside and registry-extension signatures.
export { policyVerifier, readDockerSignatures } from "./docker-policy.js";
export type { DockerImageVerifier, DockerVerifyInput, PolicyVerifierOptions } from "./docker-policy.js";

// registries.conf (v2) mirrors, rewrites and blocked registries for pulls.
export {
  parseRegistriesConf,
  loadRegistriesConf,
  registriesConfPaths,
  findRegistry,
  pullSources,
} from "./registries-conf.js";
export type {
  RegistriesConf,
  RegistryEntry,
  RegistryMirror,
  PullFromMirror,
  PullSource,
} from "./registries-conf.js";

// appc images over http(s): by name (discovery) or URL, verified before they become visible.
export { fetchAppcImage, appcNotFetchedError } from "./appc/fetch-image.js";
export type {
  AppcTarget,
  FetchAppcOptions,
  AppcSource,
  AppcImageResult,
  AppcFetchResult,
} from "./appc/fetch-image.js";
export { AppcHttpClient } from "./appc/http.js";
export type { AppcHttpOptions, AppcResponse } from "./appc/http.js";
export { discoverAci, maxDiscoveryBytes } from "./appc/discover.js";
export type { DiscoverAciOptions } from "./appc/discover.js";
export { downloadAci, downloadRef } from "./appc/download.js";
export type { AciDownloaded, AciNotModified, DownloadAciOptions } from "./appc/download.js";
export { parseAppcAuth, mergeAppcAuth, authorizationFor } from "./appc/auth.js";
export type { AppcAuthConfig, AppcAuthMap } from "./appc/auth.js";
export { readAppcAuth } from "./appc/auth-files.js";
export { parseMaxAge, isFresh, rangeValidator, contentRangeStart } from "./appc/cache-control.js";
export {
  hostOsArch,
  withOsArchDefaults,
  appKey,
  formatApp,
  checkManifestIdentity,
  ascUrlFromAciUrl,
  dependencyApps,
} from "./appc/identity.js";
export type { AppcApp } from "./appc/identity.js";
export { verifyAciSignature, checkSignerEarly } from "./appc/verify.js";
export { trustDiscoveredKeys } from "./appc/pubkeys.js";
export type { TrustedDiscoveredKey } from "./appc/pubkeys.js";

// The front door: what `rkt fetch IMAGE` does, for any reference.
export { fetchImage } from "./fetch-image.js";
export type { FetchImageOptions, FetchedImage, FetchProgress } from "./fetch-image.js";
export { localAdmission, dockerAdmission } from "./admission.js";
export type { RktConfigDirs, AdmissionOptions } from "./admission.js";

// The image model's sources and sinks, and copyImage between any pair.
export { copyImage } from "./image/copy.js";
export type { CopyImageOptions, CopyResult, CopyEvent } from "./image/copy.js";
export { registryImage, registrySink } from "./image/registry.js";
export type { RegistrySinkOptions } from "./image/registry.js";
export { layoutImage, layoutSink } from "./image/layout.js";
export type { LayoutSelector, LayoutSinkOptions } from "./image/layout.js";
export { openOciArchive, ociArchiveSink } from "./image/oci-archive.js";
export type { OpenedImage, OpenOciArchiveOptions, ArchiveSinkOptions } from "./image/oci-archive.js";
export { openDockerArchive, dockerArchiveSink, familiarRepoTag } from "./image/docker-archive.js";
export type {
  OpenDockerArchiveOptions,
  OpenedDockerArchive,
  DockerArchiveSinkOptions,
} from "./image/docker-archive.js";
export { storeImage, storeSink } from "./image/store.js";
export type { StoreSink, StoreSinkOptions } from "./image/store.js";
export { indexTarFile } from "./tar-index.js";
export type { SeekableArchiveIndex, TarSpan } from "./tar-index.js";
export { parseImageLocation, openImageSource, openImageSink } from "./image/transports.js";
export type {
  ImageLocation,
  TransportContext,
  OpenedSource,
  OpenedSink,
  OpenSinkOptions,
} from "./image/transports.js";
