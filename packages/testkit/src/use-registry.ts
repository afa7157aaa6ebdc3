import { afterAll, beforeAll } from "vitest";
import { startRegistry, type Registry, type RegistryOptions } from "./registry.js";

/**
 * Starts a registry in `beforeAll` and stops it in `afterAll` of the enclosing vitest suite. Call
 * at suite level; read the result inside tests (`reg()` throws if called before beforeAll ran).
 */
export function useRegistry(opts: RegistryOptions = {}): () => Registry {
  let reg: Registry | undefined;
  beforeAll(async () => {
    reg = await startRegistry(opts);
  });
  afterAll(async () => {
    await reg?.stop();
  });
  return () => {
    if (reg === undefined) throw new Error("useRegistry: the registry is not started (use it inside a test)");
    return reg;
  };
}
