// `rkt image rm IMAGE...`: rkt's messages; unlike rkt, exit 254 when nothing could be removed.
import { isRktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
import { usageError, withStore } from "./image-common.js";
import { humanizeBytes } from "./image-list.js";

/**
 * Resolves each IMAGE (ID, unique ID prefix or name); unresolvable ones are reported on stderr
 * and skipped. Removes the rest (with their rendered trees), printing on stdout
 * `successfully removed aci for image: "<id>"` per image (OCI images: `successfully removed image:
 * "<id>"`) and on stderr
 * `rm: N image(s) successfully removed` / `rm: N image(s) cannot be removed`. Exit 254 when any
 * removal failed or when nothing was removed (rkt exits 0 when every argument failed to resolve).
 */
export async function imageRmCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const out = outputOf(ctx);
  if (positionals.length === 0) throw usageError("must provide at least one image ID");
  return withStore(
    ctx,
    async (store) => {
      const { resolveImage, removeImages, collectSnapshots, releaseStaleMounts } = await import("@rkt/store");
      const ids: string[] = [];
      const unresolved: { image: string; error: string }[] = [];
      for (const arg of positionals) {
        try {
          ids.push(resolveImage(store, arg));
        } catch (e) {
          if (!isRktError(e)) throw e;
          unresolved.push({ image: arg, error: e.message });
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
          if (!out.json) ctx.stdout.write(`${removedLine(r.id)}\n`);
        } else {
          failed++;
          ctx.stderr.write(
            `rm: error removing ${kindWord(r.id)} for image ${JSON.stringify(r.id)}: ${r.error?.message ?? "unknown error"}\n`,
          );
        }
      }
      if (out.json) {
        out.writeJson({
          removed: results.filter((r) => r.removed).map((r) => ({ id: r.id, kind: kindOf(r.id) })),
          failed: results
            .filter((r) => !r.removed)
            .map((r) => ({ id: r.id, error: r.error?.message ?? "unknown error" })),
          unresolved,
          freedBytes: results.reduce((n, r) => n + r.freedBytes, 0),
        });
      }
      if (done > 0) {
        out.info(`rm: ${done} image(s) successfully removed`);
        const freed = results.reduce((n, r) => n + r.freedBytes, 0);
        if (freed > 0) out.info(`rm: freed ${humanizeBytes(freed)}`);
      }
      if (failed > 0) ctx.stderr.write(`rm: ${failed} image(s) cannot be removed\n`);
      if (done === 0 && failed === 0 && unresolved.length > 0) ctx.stderr.write("rm: no image removed\n");
      return failed > 0 || done === 0 ? 254 : 0;
    },
    { cleanup: true },
  );
}

/** An image's kind from its ID: ACIs are `sha512-…`, OCI/Docker images `sha256:…`. */
export function kindOf(id: string): "aci" | "oci" {
  return id.startsWith("sha512-") ? "aci" : "oci";
}

// rkt's words for ACIs (its tests pin them); "image" for OCI/Docker images.
function kindWord(id: string): string {
  return kindOf(id) === "aci" ? "aci" : "image";
}

/** rkt's `successfully removed aci for image: "<id>"`; OCI images: `successfully removed image: "<id>"`. */
export function removedLine(id: string): string {
  return kindOf(id) === "aci"
    ? `successfully removed aci for image: ${JSON.stringify(id)}`
    : `successfully removed image: ${JSON.stringify(id)}`;
}
