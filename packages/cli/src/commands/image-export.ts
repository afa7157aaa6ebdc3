// `rkt image export IMAGE OUTPUT_FILE [--overwrite]`.
import { resolve } from "node:path";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

/**
 * Writes IMAGE to OUTPUT_FILE: an ACI as its stored uncompressed archive (sha512 = the ID), an
 * OCI image as an OCI archive. Existing file without `--overwrite`: `output ACI file exists (try
 * --overwrite)`, exit 254.
 */
export async function imageExportCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  if (positionals.length !== 2) throw usageError("export takes IMAGE and OUTPUT_ACI_FILE");
  const [arg = "", out = ""] = positionals;
  await withStore(ctx, async (store) => {
    const { resolveImage, exportImage } = await import("@rkt/store");
    await exportImage(store, resolveImage(store, arg), resolve(ctx.cwd, out), {
      overwrite: ctx.args.bool("overwrite"),
    });
  });
  return 0;
}
