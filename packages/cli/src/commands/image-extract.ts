// `rkt image extract IMAGE OUTPUT_DIR [--rootfs-only] [--overwrite]`.
import { resolve } from "node:path";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

/**
 * Extracts IMAGE alone (no dependencies) into OUTPUT_DIR as `manifest` + `rootfs/`, or only the
 * root filesystem with `--rootfs-only`. Existing directory without `--overwrite`: `output
 * directory exists (try --overwrite)`; `/` is refused. Exit 254 on error.
 */
export async function imageExtractCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  if (positionals.length !== 2) throw usageError("extract takes IMAGE and OUTPUT_DIR");
  const [arg = "", out = ""] = positionals;
  await withStore(ctx, async (store) => {
    const { resolveImage, extractImage } = await import("@rkt/store");
    await extractImage(store, resolveImage(store, arg), resolve(ctx.cwd, out), {
      rootfsOnly: ctx.args.bool("rootfs-only"),
      overwrite: ctx.args.bool("overwrite"),
    });
  });
  return 0;
}
