// Writing converted ACIs as files: each to a temporary name in the output directory, renamed into
// place once complete, so a failed conversion leaves no partial file behind.
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { ErrorCode, RktError } from "@rkt/oci";
import type { AciSink } from "./convert.js";

/**
 * A sink writing each ACI to `<dir>/<fileName>` (mode 0644; an existing file is replaced, as
 * docker2aci does). The temporary file `.docker2aci-<uuid>` is removed on failure.
 */
export function directorySink(dir: string): AciSink {
  return async (target, data) => {
    if (target.fileName.includes("/") || target.fileName.startsWith(".")) {
      data.destroy();
      throw new RktError(
        ErrorCode.InvalidArgument,
        `bad output file name ${JSON.stringify(target.fileName)}`,
      );
    }
    const final = join(dir, target.fileName);
    await mkdir(dirname(final), { recursive: true });
    const tmp = join(dir, `.docker2aci-${randomUUID()}`);
    try {
      await pipeline(data, createWriteStream(tmp, { flags: "wx", mode: 0o644, highWaterMark: 1 << 20 }));
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  };
}
