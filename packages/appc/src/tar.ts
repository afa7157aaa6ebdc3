// tar-stream and streamx are CommonJS and take ~15 ms to load: every command that imports the
// store would pay it, while most (list, gc, rm, a warm fetch) read no tar. Required on first use.
import { createRequire } from "node:module";
import type * as TarStream from "tar-stream";

const require = createRequire(import.meta.url);

let patched: typeof TarStream | undefined;

/**
 * The `tar-stream` module, loaded on the first call, whose `extract()` gives a directory entry
 * no body whatever its header's size says (POSIX: a directory has no data blocks, which
 * tar-stream follows when reading, but the entry stream it hands out for a directory declaring a
 * size never ends, so a consumer draining it waited forever; found by test/fuzz).
 */
export function tarStream(): typeof TarStream {
  if (patched !== undefined) return patched;
  const mod = require("tar-stream") as typeof TarStream;
  const extract = (opts?: Parameters<typeof mod.extract>[0]) => {
    const ex = mod.extract(opts);
    ex.on("entry", (header, stream) => {
      if (header.type === "directory" && (header.size ?? 0) > 0) {
        header.size = 0;
        stream.push(null);
      }
    });
    return ex;
  };
  patched = { ...mod, extract };
  return patched;
}
