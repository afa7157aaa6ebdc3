// `rkt image render [--rootfs-only] [--overwrite] [--flatten] IMAGE OUTPUT_DIR`.
import { resolve } from "node:path";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

/**
 * Renders IMAGE (an ACI with its dependencies from the store, or an OCI image) through the tree
 * store and gives OUTPUT_DIR its root filesystem, as `manifest` + `rootfs/` or, with
 * `--rootfs-only`, the root filesystem itself. As root with overlayfs the root filesystem is an
 * overlay mount of the tree (stderr says so: umount it when done); with `--flatten`, without
 * overlay or when not root, a flattened copy. Errors exit 254 with one line (rkt's
 * `output directory exists (try --overwrite)` for an existing directory).
 */
export async function imageRenderCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    "rootfs-only": ctx.args.bool("rootfs-only"),
    overwrite: ctx.args.bool("overwrite"),
    flatten: ctx.args.bool("flatten"),
  };
  if (positionals.length !== 2) throw usageError("render takes IMAGE and OUTPUT_DIR");
  const [arg = "", out = ""] = positionals;
  const r = await withStore(ctx, async (store) => {
    const { resolveImage, renderImageTo } = await import("@rkt/store");
    return renderImageTo(store, resolveImage(store, arg), resolve(ctx.cwd, out), {
      rootfsOnly: values["rootfs-only"],
      overwrite: values.overwrite,
      flatten: values.flatten,
      signal: ctx.signal,
      onFallback: (e) =>
        ctx.stderr.write(`warning: cannot mount the tree with overlayfs (${e.message}); writing a copy\n`),
    });
  });
  if (r.mode === "overlay")
    ctx.stderr.write(`image render: ${r.rootfs} is an overlay mount (umount it when done)\n`);
  return 0;
}

/**
 * Render on fetch, as rkt: when root with overlayfs, a freshly stored image is rendered into the
 * tree store so that its first run only mounts. A render failure does not undo the fetch (the
 * image is stored and verified): it is reported as a warning and `image render` can retry.
 */
export async function renderOnFetch(store: LocalStore, id: string, ctx: CommandContext): Promise<void> {
  const { overlaySupported, renderStoredImage } = await import("@rkt/store");
  if (!(await overlaySupported())) return;
  try {
    await renderStoredImage(store, id, { signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    ctx.stderr.write(`fetch: warning: image ${id} stored but not rendered: ${(e as Error).message}\n`);
  }
}
