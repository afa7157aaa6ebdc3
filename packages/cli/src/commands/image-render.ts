// `rkt image render [--rootfs-only] [--overwrite] [--flatten] IMAGE OUTPUT_DIR`.
import { join, resolve } from "node:path";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
import { progressFor } from "../progress.js";
import { usageError, withStore } from "./image-common.js";

/**
 * Renders IMAGE (an ACI with its dependencies from the store, or an OCI image) through the tree
 * store and gives OUTPUT_DIR its root filesystem, as `manifest` + `rootfs/` or, with
 * `--rootfs-only`, the root filesystem itself. As root with overlayfs the root filesystem is an
 * overlay mount of the tree (stderr says so: umount it when done); with `--flatten`, without
 * overlay or when not root, a flattened copy. Prints the root filesystem's path on stdout (or,
 * with `--format json`, `{id,kind,path,rootfs,manifest,mode}`). Errors exit 254 with one line (rkt's
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
  const o = outputOf(ctx);
  const path = resolve(ctx.cwd, out);
  let id = "";
  const progress = progressFor(ctx, "Extracting", { quiet: o.quiet });
  const r = await withStore(ctx, async (store) => {
    const { resolveImage, renderImageTo } = await import("@rkt/store");
    id = resolveImage(store, arg);
    return renderImageTo(store, id, path, {
      onProgress: progress.blob,
      rootfsOnly: values["rootfs-only"],
      overwrite: values.overwrite,
      flatten: values.flatten,
      signal: ctx.signal,
      onFallback: (e) =>
        progress.println(`warning: cannot mount the tree with overlayfs (${e.message}); writing a copy`),
    });
  }).finally(() => progress.end());
  if (r.mode === "overlay") o.info(`image render: ${r.rootfs} is an overlay mount (umount it when done)`);
  const rootfsOnly = values["rootfs-only"];
  if (o.json) {
    o.writeJson({
      id,
      kind: id.startsWith("sha512-") ? "aci" : "oci",
      path,
      rootfs: r.rootfs,
      manifest: rootfsOnly ? null : join(path, "manifest"),
      mode: r.mode,
    });
  } else ctx.stdout.write(`${r.rootfs}\n`);
  return 0;
}

/**
 * Render on fetch, as rkt: when root with overlayfs, a freshly stored image is rendered into the
 * tree store so that its first run only mounts. A render failure does not undo the fetch (the
 * image is stored and verified): it is reported as a warning and `image render` can retry.
 */
export async function renderOnFetch(
  store: LocalStore,
  id: string,
  ctx: CommandContext,
  quiet?: boolean,
): Promise<void> {
  const { overlaySupported, renderStoredImage } = await import("@rkt/store");
  if (!(await overlaySupported())) return;
  const progress = progressFor(ctx, "Extracting", { quiet });
  try {
    await renderStoredImage(store, id, { signal: ctx.signal, onProgress: progress.blob });
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    progress.println(`fetch: warning: image ${id} stored but not rendered: ${(e as Error).message}`);
  } finally {
    progress.end();
  }
}
