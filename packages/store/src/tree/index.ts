// The tree store: layer snapshots, trees (overlay or flattened), ACI rendering. Re-exported whole by ../index.ts.
export { extractLayer, cleanEntryName } from "./extract.js";
export type { ExtractLayerOptions, ExtractLayerResult, WhiteoutMode } from "./extract.js";
export {
  extractSnapshot,
  extractLayers,
  buildSnapshot,
  getSnapshot,
  listSnapshots,
  removeSnapshot,
  removeStaleSnapshotTemps,
  layerSnapshotKey,
  snapshotDir,
  readSnapshotManifest,
} from "./snapshot.js";
export type { Snapshot, SnapshotInfo, ExtractSnapshotOptions, LayerSource } from "./snapshot.js";
export { treeHash, layeredTreeHash } from "./hash.js";
export type { TreeHashOptions } from "./hash.js";
export {
  ociTreeId,
  treeLowerDirs,
  escapeOverlayPath,
  mountOptionLimit,
  mountTree,
  unmountTree,
  flattenDirs,
  flattenTree,
  getTree,
  saveTree,
  checkTree,
  removeTree,
  renderOciImage,
  recordTree,
} from "./tree.js";
export type { Tree, MountTreeOptions, FlattenOptions, TreeStorePaths, RenderOciOptions } from "./tree.js";
export { createDepList, aciTreeId, whitelistPaths, upperPathWhitelist, renderAci } from "./aci.js";
export type { AciImage, AciResolver, DepEntry, RenderAciOptions } from "./aci.js";
export {
  storeTreePaths,
  storedTreeId,
  renderStoredImage,
  verifyStoredImage,
  overlaySupported,
  mountPointsOf,
  mountStoredTree,
  releaseStaleMounts,
  collectSnapshots,
  renderImageTo,
} from "./store-render.js";
export type { RenderStoredOptions, VerifyResult, RenderToOptions, RenderToResult } from "./store-render.js";
