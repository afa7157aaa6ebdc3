// `rkt image export IMAGE OUTPUT_FILE [--overwrite]`.
import { resolve } from "node:path";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
import { progressFor } from "../progress.js";
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
  const path = resolve(ctx.cwd, out);
  const o = outputOf(ctx);
  const progress = progressFor(ctx, "Exporting", { quiet: o.quiet });
  const id = await withStore(ctx, async (store) => {
    const { resolveImage, exportImage } = await import("@rkt/store");
    const id = resolveImage(store, arg);
    await exportImage(store, id, path, { overwrite: ctx.args.bool("overwrite"), onProgress: progress.blob });
    return id;
  }).finally(() => progress.end());
  if (o.json) o.writeJson({ id, kind: id.startsWith("sha512-") ? "aci" : "oci", path });
  return 0;
}
