// Public entry of @rkt/testkit: private helpers for the test suites and benchmarks.
export { startRegistry } from "./registry.js";
export type { Registry, RegistryMode, RegistryOptions, RegistryRequest } from "./registry.js";
export { useRegistry } from "./use-registry.js";
export { startAppcServer } from "./appc-server.js";
export { gnupgHome } from "./gnupg.js";
export type { GnupgHome } from "./gnupg.js";
export type { AppcServer, AppcServerOptions, AppcRoute, AppcRequest } from "./appc-server.js";
export { pushLayout, pullToLayout, inspectRaw, skopeoRegistryArgs } from "./skopeo.js";
export type { SkopeoOptions } from "./skopeo.js";
export { writeLayer, tarStream, randomLayer, randomStream, directoryEntries } from "./layer.js";
export type { EntryType, FileEntry, StreamContent, Compression, LayerSpec, BuiltLayer } from "./layer.js";
export {
  OciLayoutWriter,
  writeOciLayout,
  writeOciLayoutIndex,
  writeDockerArchive,
  imageConfigOf,
} from "./image-builder.js";
export type {
  ImageFormat,
  LayerInput,
  ImageSpec,
  BuiltImage,
  BuiltIndex,
  BuiltDockerArchive,
} from "./image-builder.js";
export { rawTar, entryBlocks, endOfArchive } from "./raw-tar.js";
export type { RawEntry } from "./raw-tar.js";
export { runNode } from "./child.js";
export type { ChildRun, RunNodeOptions } from "./child.js";
export { mountTmpfs, fillDisk } from "./tmpfs.js";
export type { Tmpfs } from "./tmpfs.js";
export { seededRandom, chaosSeed } from "./prng.js";
export { startFaultProxy, isBlobGet } from "./fault-proxy.js";
export type { Fault, FaultRule, FaultProxy, ProxiedRequest, ProxyLogEntry } from "./fault-proxy.js";
