// `rkt image cat-manifest [--pretty-print=true|false] IMAGE`.
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

/**
 * Prints the manifest of IMAGE. ACI: the stored image manifest, tab-indented when pretty (default,
 * Go's MarshalIndent) or compact JSON with `--pretty-print=false`, then a newline. OCI image: with
 * `--pretty-print=false` the exact manifest bytes (their sha256 is the image ID, so no newline is
 * added); pretty re-indents them for display only.
 */
export async function imageCatManifestCommand(
  _argv: readonly string[],
  ctx: CommandContext,
): Promise<number> {
  const { positionals } = ctx.args;
  const pretty = ctx.args.bool("pretty-print");
  if (positionals.length !== 1) throw usageError("cat-manifest takes exactly one IMAGE");
  const arg = positionals[0] ?? "";
  const { bytes, kind } = await withStore(ctx, async (store) => {
    const { resolveImage, catManifest, getImage } = await import("@rkt/store");
    const id = resolveImage(store, arg);
    return { bytes: await catManifest(store, id), kind: getImage(store, id).kind };
  });
  if (kind === "oci" && !pretty) {
    ctx.stdout.write(bytes);
    return 0;
  }
  const doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
  ctx.stdout.write(`${pretty ? JSON.stringify(doc, null, "\t") : JSON.stringify(doc)}\n`);
  return 0;
}
