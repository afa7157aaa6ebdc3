// `rkt image verify IMAGE...`: rkt's messages (rkt.md §1.4), repair included.
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

/**
 * For each IMAGE: resolves it (failure: `unable to resolve store key for image X: …`, exit 254,
 * the rest not checked, as rkt), recomputes its tree hash and compares it with the saved one
 * (never reading device contents). Prints on stdout `image "X" not rendered; no verification
 * needed`, `successfully verified checksum for image: "X" ("<id>")`, or for a bad tree
 * `tree cache verification failed for image X: <why>;  rebuilding...` and repairs it.
 */
export async function imageVerifyCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  if (positionals.length === 0) throw usageError("must provide at least one image");
  await withStore(ctx, async (store) => {
    const { resolveImage, verifyStoredImage } = await import("@rkt/store");
    for (const arg of positionals) {
      let id: string;
      try {
        id = resolveImage(store, arg);
      } catch (e) {
        if (!isRktError(e)) throw e;
        throw new RktError(
          e.code === ErrorCode.Ambiguous ? e.code : ErrorCode.NotFound,
          `unable to resolve store key for image ${arg}: ${e.message}`,
          { cause: e },
        );
      }
      const r = await verifyStoredImage(store, id, { signal: ctx.signal });
      if (r.status === "not-rendered")
        ctx.stdout.write(`image ${JSON.stringify(arg)} not rendered; no verification needed\n`);
      else if (r.status === "ok")
        ctx.stdout.write(
          `successfully verified checksum for image: ${JSON.stringify(arg)} (${JSON.stringify(id)})\n`,
        );
      else
        ctx.stdout.write(
          `tree cache verification failed for image ${arg}: ${r.problem.message};  rebuilding...\n`,
        );
    }
  });
  return 0;
}
