// Public entry of @rkt/testkit: private helpers for the test suites and benchmarks.
export { startRegistry } from "./registry.js";
export type { Registry, RegistryMode, RegistryOptions } from "./registry.js";
export { useRegistry } from "./use-registry.js";
export { pushLayout, pullToLayout, inspectRaw, skopeoRegistryArgs } from "./skopeo.js";
export type { SkopeoOptions } from "./skopeo.js";
