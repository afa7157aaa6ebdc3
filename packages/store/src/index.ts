// Public entry of @rkt/store: explicit named re-exports only.
export { LocalStore } from "./local-store.js";
export type { LocalWriterOptions, LeaseOptions, LeaseKind, OpenOptions } from "./local-store.js";
export { reserveBytes } from "./free-space.js";
export { openIndex, schemaVersion } from "./db.js";
export type { IndexDb } from "./db.js";
export { acquireLock, tryLock, isLocked, clearDeadLocks } from "./store-locks.js";
export type { LockHandle, AcquireOptions } from "./locks.js";
export {
  aciImageId,
  getImage,
  isImageIdSyntax,
  resolveImageKey,
  parseImageName,
  findImageByName,
  resolveImage,
  listImages,
  listRefs,
  touchImage,
  imageContent,
  removeImages,
  catManifest,
} from "./images.js";
export type {
  ImageKind,
  ImageRecord,
  ImageRef,
  ImageNameQuery,
  ImageSortField,
  ListImagesOptions,
  RemoveResult,
} from "./images.js";
export { gc, defaultGracePeriodMs } from "./gc.js";
export type { GcOptions, GcReport } from "./gc.js";
export { importAci, getRemote, recordRemote } from "./import-aci.js";
export { ingestPaths, refreshRemote } from "./ingest-files.js";
export type {
  ImportAciOptions,
  ImportResult,
  RemoteInfo,
  RemoteRecord,
  BeforeCommitInfo,
} from "./import-aci.js";
export { importOciImage, ingestBlob, batchChunks, diffIdOf } from "./import-oci.js";
export type { ImageSource, ImportOciOptions, IngestBlobOptions, IngestOutcome } from "./import-oci.js";
export { createLayerUnpack, sideTap } from "./unpack.js";
export type { LayerUnpack, UnpackedLayer, UnpackTap } from "./unpack.js";
export { exportImage, extractImage } from "./export.js";
export type { ExportOptions, ExtractOptions } from "./export.js";
export { writeBlob, readBlobLimited } from "./content-helpers.js";
export { fsck } from "./fsck.js";
// Process helpers the runner shares: a tool run with its output captured, process identity.
export { runTool } from "./tree/tools.js";
export { processStartTime, isAlive } from "./internal/proc.js";
export type { FsckFinding, FsckFindingKind, FsckOptions, FsckReport } from "./fsck.js";

// The tree store; its one list of names is tree/index.ts.
export * from "./tree/index.js";
