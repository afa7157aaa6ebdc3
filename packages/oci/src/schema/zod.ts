// zod takes ~50 ms to load, as long as `rkt image list` spends on everything else, and most
// commands never validate a document. So schemas are built on first use and zod is loaded then,
// synchronously, through its CommonJS build (an ESM import cannot be synchronous).
import { createRequire } from "node:module";
import type { z } from "zod";

/** The `z` namespace of zod. */
export type ZodApi = typeof z;

let api: ZodApi | undefined;

/** zod's `z`, loaded on the first call. */
export function zod(): ZodApi {
  api ??= (createRequire(import.meta.url)("zod") as { z: ZodApi }).z;
  return api;
}

/** Memoises `build(z)`: zod is loaded and the schemas built the first time they are asked for. */
export function onFirstUse<T>(build: (z: ZodApi) => T): () => T {
  let built: T | undefined;
  return () => {
    built ??= build(zod());
    return built;
  };
}
