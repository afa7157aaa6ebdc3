// `rkt image fsck [--repair] [--format=json]` (beyond rkt): check the store against its blobs.
import type { FsckFinding, FsckReport } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

function line(kind: "problem" | "garbage", f: FsckFinding): string {
  return `${kind}: ${f.kind} ${f.subject}: ${f.message}${f.repaired ? " (repaired)" : ""}\n`;
}

/**
 * Checks the store (every blob re-hashed, index ↔ disk, leftovers) and prints one line per
 * finding (`problem: <kind> <subject>: <message>`, `garbage: …`), then a summary on stderr. With
 * `--repair` fixes what it can and checks again. `--format json` prints
 * `{clean, ok, blobsChecked, imagesChecked, problems, garbage, rebuiltImages}` (after repair:
 * the repair's report plus `after`, the re-check). Exit 0 when the store is consistent (after
 * repair: when the re-check is), whatever reclaimable garbage it holds (what killed processes
 * leave: stale ingests, dead locks and leases, unreferenced blobs); 254 only for problems.
 */
export async function imageFsckCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const values = {
    repair: ctx.args.bool("repair"),
    format: ctx.args.string("format") ?? "text",
    quiet: ctx.args.bool("quiet"),
  };
  const { first, after } = await withStore(
    ctx,
    async (store) => {
      const { fsck } = await import("@rkt/store");
      const first = await fsck(store, { repair: values.repair });
      const after: FsckReport | undefined = values.repair ? await fsck(store) : undefined;
      return { first, after };
    },
    { cleanup: values.repair },
  );
  const final = after ?? first;
  if (values.format === "json") {
    ctx.stdout.write(`${JSON.stringify(after === undefined ? first : { ...first, after })}\n`);
  } else {
    for (const f of first.problems) ctx.stdout.write(line("problem", f));
    for (const f of first.garbage) ctx.stdout.write(line("garbage", f));
    if (first.rebuiltImages.length > 0) ctx.stdout.write(`rebuilt: ${first.rebuiltImages.join(" ")}\n`);
    if (!values.quiet)
      ctx.stderr.write(
        `fsck: checked ${first.blobsChecked} blob(s), ${first.imagesChecked} image(s): ` +
          `${first.problems.length} problem(s), ${first.garbage.length} garbage item(s)` +
          (after === undefined
            ? ""
            : `; after repair: ${after.clean ? "clean" : `${after.problems.length} problem(s), ${after.garbage.length} garbage item(s)`}`) +
          (final.garbage.length > 0 && final.problems.length === 0
            ? "; the garbage is reclaimable: `rkt image gc` (or `rkt image fsck --repair`) removes it"
            : "") +
          "\n",
      );
  }
  return final.ok ? 0 : 254;
}
