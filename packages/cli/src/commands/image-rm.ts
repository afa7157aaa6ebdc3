// `rkt image rm IMAGE...`: rkt's messages; unlike rkt, exit 254 when nothing could be removed.
import { isRktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";
import { parseFlags, usageError, withStore } from "./image-common.js";
import { humanizeBytes } from "./image-list.js";

/**
 * Resolves each IMAGE (ID, unique ID prefix or name); unresolvable ones are reported on stderr
 * and skipped. Removes the rest (with their rendered trees), printing on stdout
 * `successfully removed aci for image: "<id>"` per image and on stderr
 * `rm: N image(s) successfully removed` / `rm: N image(s) cannot be removed`. Exit 254 when any
 * removal failed or when nothing was removed (rkt exits 0 when every argument failed to resolve).
 */
export async function imageRmCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = parseFlags(argv, {});
  if (positionals.length === 0) throw usageError("must provide at least one image ID");
  return withStore(
    ctx,
    async (store) => {
      const { resolveImage, removeImages, collectSnapshots, releaseStaleMounts } = await import("@rkt/store");
      const ids: string[] = [];
      let unresolved = 0;
      for (const arg of positionals) {
        try {
          ids.push(resolveImage(store, arg));
        } catch (e) {
          if (!isRktError(e)) throw e;
          unresolved++;
          ctx.stderr.write(`rm: cannot resolve image ${JSON.stringify(arg)}: ${e.message}\n`);
        }
      }
      // `image render` mounts the user has since unmounted no longer hold their image.
      await releaseStaleMounts(store);
      const results = await removeImages(store, ids);
      // Their trees went with them; the layer snapshots only those trees used go too.
      if (results.some((r) => r.removed)) await collectSnapshots(store);
      let done = 0;
      let failed = 0;
      for (const r of results) {
        if (r.removed) {
          done++;
          ctx.stdout.write(`successfully removed aci for image: ${JSON.stringify(r.id)}\n`);
        } else {
          failed++;
          ctx.stderr.write(
            `rm: error removing aci for image ${JSON.stringify(r.id)}: ${r.error?.message ?? "unknown error"}\n`,
          );
        }
      }
      if (done > 0) {
        ctx.stderr.write(`rm: ${done} image(s) successfully removed\n`);
        const freed = results.reduce((n, r) => n + r.freedBytes, 0);
        if (freed > 0) ctx.stderr.write(`rm: freed ${humanizeBytes(freed)}\n`);
      }
      if (failed > 0) ctx.stderr.write(`rm: ${failed} image(s) cannot be removed\n`);
      if (done === 0 && failed === 0 && unresolved > 0) ctx.stderr.write("rm: no image removed\n");
      return failed > 0 || done === 0 ? 254 : 0;
    },
    { cleanup: true },
  );
}
