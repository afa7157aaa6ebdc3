import { afterAll, beforeAll } from "vitest";
import { ErrorCode, RktError } from "@rkt/oci";
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
    if (reg === undefined)
      throw new RktError(
        ErrorCode.Internal,
        "useRegistry: the registry is not started yet (read it inside a test)",
      );
    return reg;
  };
}
