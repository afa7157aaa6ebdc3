// `rkt image verify IMAGE...`: rkt's messages (rkt.md §1.4), repair included.
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
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
  const o = outputOf(ctx);
  if (positionals.length === 0) throw usageError("must provide at least one image");
  const results: { image: string; id: string; status: string; problem: string | null }[] = [];
  const say = (line: string, quiet: boolean): void => {
    if (!o.json && !quiet) ctx.stdout.write(`${line}\n`);
  };
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
        say(`image ${JSON.stringify(arg)} not rendered; no verification needed`, o.quiet);
      else if (r.status === "ok")
        say(
          `successfully verified checksum for image: ${JSON.stringify(arg)} (${JSON.stringify(id)})`,
          o.quiet,
        );
      else
        say(`tree cache verification failed for image ${arg}: ${r.problem.message};  rebuilding...`, false);
      results.push({
        image: arg,
        id,
        status: r.status,
        problem: r.status === "repaired" ? r.problem.message : null,
      });
    }
  });
  if (o.json) o.writeJson(results);
  return 0;
}
