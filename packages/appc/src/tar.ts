// tar-stream and streamx are CommonJS and take ~15 ms to load: every command that imports the
// store would pay it, while most (list, gc, rm, a warm fetch) read no tar. Required on first use.
import { createRequire } from "node:module";
import type * as TarStream from "tar-stream";

const require = createRequire(import.meta.url);

/** The `tar-stream` module, loaded on the first call. */
export function tarStream(): typeof TarStream {
  return require("tar-stream") as typeof TarStream;
}
