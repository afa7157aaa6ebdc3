// Public entry of @rkt/docker2aci: Docker/OCI images to ACIs, by docker2aci's rules, streaming.
export { convertImage } from "./convert.js";
export type { ConvertOptions, AciSink, AciTarget, ConvertedAci } from "./convert.js";
export type { ImageInput, LayerInput, ImageNameInput } from "./input.js";
export type { OutputCompression, PackedAci } from "./aci-pack.js";
export { squashedFileName, layerFileName } from "./file-names.js";
export type { LayerFileNames } from "./file-names.js";
export { toAppcOsArch } from "./os-arch.js";
export {
  DockerAnnotation,
  convertedAcVersion,
  convertApp,
  convertEnv,
  convertPorts,
  convertVolumes,
  parseDockerUser,
  dockerAnnotations,
  squashedManifest,
  squashedName,
  topLayerName,
  lowerLayerName,
} from "./manifest.js";
export type { ManifestJson, AppJson, TopManifestInput } from "./manifest.js";
export { safeLayerPath, classifyPath } from "./layer-entries.js";
export { imageInput, registryInput, storeImageInput, ociLayoutInput, dockerArchiveInput } from "./sources.js";
export type { DockerArchiveInputOptions, RegistryInputOptions } from "./sources.js";
export { directorySink } from "./sinks.js";
export { parseDockerName, storedImageName, dockerHubIndex } from "./names.js";
export { docker2aciMain, parseGoFlags, docker2aciVersion } from "./cli.js";
export type { Docker2aciIO } from "./cli.js";
export { convertStoredImage } from "./store-convert.js";
export type { ConvertStoredOptions, StoredConversion } from "./store-convert.js";
