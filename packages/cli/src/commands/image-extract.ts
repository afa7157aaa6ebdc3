// `rkt image extract IMAGE OUTPUT_DIR [--rootfs-only] [--overwrite]`.
import { join, resolve } from "node:path";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
import { progressFor } from "../progress.js";
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
  const path = resolve(ctx.cwd, out);
  const rootfsOnly = ctx.args.bool("rootfs-only");
  const o = outputOf(ctx);
  const progress = progressFor(ctx, "Extracting", { quiet: o.quiet });
  const id = await withStore(ctx, async (store) => {
    const { resolveImage, extractImage } = await import("@rkt/store");
    const id = resolveImage(store, arg);
    await extractImage(store, id, path, {
      rootfsOnly,
      overwrite: ctx.args.bool("overwrite"),
      onProgress: progress.blob,
    });
    return id;
  }).finally(() => progress.end());
  const rootfs = rootfsOnly ? path : join(path, "rootfs");
  if (o.json) o.writeJson({ id, kind: id.startsWith("sha512-") ? "aci" : "oci", path, rootfs });
  return 0;
}
