// Public entry of @rkt/fetch: what a program that fetches, imports or copies images needs. The
// plumbing behind it (tar walking, appc discovery steps, HTTP details) stays in its modules.

// The front door: what `rkt fetch IMAGE` does, for any reference.
export { fetchImage, fetchImageRef } from "./fetch-image.js";
export type { FetchImageOptions, FetchedImage, FetchProgress } from "./fetch-image.js";
export { localAdmission, dockerAdmission, machineTrust, signatureStorage } from "./admission.js";
export type { RktConfigDirs, AdmissionOptions, MachineTrust } from "./admission.js";
export { verificationDisabledWarning } from "./aci-file.js";
export { noSignaturePolicyMessage } from "./pull.js";

// The image model's sources and sinks, and copyImage between any pair.
export { copyImage } from "./image/copy.js";
export type { CopyImageOptions, CopyResult, CopyEvent } from "./image/copy.js";
export { copyProgress } from "./image/copy.js";
export { parseImageLocation, openImageSource, openImageSink } from "./image/transports.js";
export type {
  ImageLocation,
  TransportContext,
  OpenedSource,
  OpenedSink,
  OpenSinkOptions,
} from "./image/transports.js";
export { registryImage, registrySink } from "./image/registry.js";
export type { RegistrySinkOptions, PushedBlobs } from "./image/registry.js";
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
export { openOciLayout, OciLayoutReader } from "./oci-layout.js";

// Imports into the store, one per kind of source (each is what fetchImage runs for it).
export { importOciLayout, importOciArchive, importDockerArchive } from "./local-import.js";
export type {
  ImportOciLayoutOptions,
  ImportOciArchiveOptions,
  ImportDockerArchiveOptions,
  LocalImportResult,
} from "./local-import.js";
export { importAciFile } from "./aci-file.js";
export type { ImportAciFileOptions, ImportAciFileResult } from "./aci-file.js";
export { pullImage } from "./pull.js";
export type { PullPolicy, PullImageOptions, PullResult } from "./pull.js";
export { fetchAppcImage } from "./appc/fetch-image.js";
export type { AppcTarget, FetchAppcOptions, AppcFetchResult } from "./appc/fetch-image.js";

// The registry client and where its credentials come from.
export { RegistryClient } from "./registry/client.js";
export type { RegistryClientOptions, BlobProgress } from "./registry/client.js";
export type { InsecureOptions } from "./registry/http.js";
export { RegistryError } from "./registry/errors.js";
export { parseWwwAuthenticate } from "./registry/challenge.js";
export type { Challenge } from "./registry/challenge.js";
export {
  staticCredentials,
  chainCredentials,
  containersAuthCredentials,
  dockerConfigCredentials,
  defaultCredentials,
} from "./registry/credentials.js";
export type { BasicCredentials, Credentials, CredentialsProvider } from "./registry/credentials.js";

// Admission and registries.conf.
export { policyVerifier } from "./docker-policy.js";
export type { DockerImageVerifier, PolicyVerifierOptions } from "./docker-policy.js";
export {
  loadRegistriesConf,
  parseRegistriesConf,
  registriesConfPaths,
  pullSources,
} from "./registries-conf.js";
export type { RegistriesConf, PullSource } from "./registries-conf.js";

// `rkt image validate` and `rkt trust`'s key fetching.
export { validateFile, validateTypes, validateAci } from "./validate.js";
export type { ValidateType, ValidationIssue, ValidationResult } from "./validate.js";
export { readAppcAuth } from "./appc/auth-files.js";
export { readPubkey, discoverPubkeys } from "./pubkey.js";
export type { PubkeyFetchOptions, FetchedPubkey } from "./pubkey.js";
export { hostOsArch } from "./appc/identity.js";

// `rkt image sync`: skopeo sync's YAML, many images to a registry, a layout or the store.
export { parseSyncConfig } from "./sync/config.js";
export type { SyncConfig, SourceRegistry, RepositorySelection } from "./sync/config.js";
export {
  planSync,
  syncImages,
  registryTarget,
  layoutTarget,
  itemName,
  storeLookasideSignatures,
} from "./sync/sync.js";
export type {
  SyncItem,
  SyncTarget,
  SyncCopied,
  SyncCopyOptions,
  SyncResult,
  SyncOptions,
  SyncSignatureOptions,
} from "./sync/sync.js";

// `rkt image serve`: the store as a read-only registry (a node as a mirror).
export { serveStore, parseListenAddress } from "./serve/server.js";
export type { ServeOptions, StoreServer, ListenAddress } from "./serve/server.js";
export { parseRoute, parseRange } from "./serve/routes.js";
export { parseContentRange } from "./content-range.js";
export type { ContentRange } from "./content-range.js";
export type { Route, ByteRange, RegistryErrorCode } from "./serve/routes.js";

// Signed bundles for air gaps: `rkt image save --bundle`, `rkt image load`, `rkt image bundle inspect`.
export { saveBundle } from "./bundle/save.js";
export type { BundleImageSpec, SaveBundleOptions, SaveBundleResult } from "./bundle/save.js";
export { openLoadableArchive, inspectBundle } from "./bundle/load.js";
export type { LoadableArchive, LoadOptions, LoadResult, BundleKeyCandidate } from "./bundle/load.js";
export {
  bundleAnnotation,
  BundleMediaType,
  parseBundleDescription,
  formatBundleDescription,
  bundleText,
} from "./bundle/description.js";
export type {
  BundleDescription,
  BundleImage,
  BundleOciImage,
  BundleAci,
  BundleKey,
  BundleSignature,
  BundleBlob,
} from "./bundle/description.js";
