// `rkt image gc [--grace-period=DUR] [--trees-only|--images-only]`.
import { ErrorCode, RktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
import { usageError, withStore } from "./image-common.js";
import { humanizeBytes } from "./image-list.js";
import { removedLine } from "./image-rm.js";

const units: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration (`time.ParseDuration`): `24h0m0s`, `30m`, `1.5h`, `-1s`, `0`; units ns, us,
 * µs, ms, s, m, h. Returns milliseconds. RKT_INVALID_ARGUMENT `time: invalid duration "x"`. Pure.
 */
export function parseGoDuration(s: string): number {
  const bad = (): never => {
    throw new RktError(ErrorCode.InvalidArgument, `time: invalid duration ${JSON.stringify(s)}`);
  };
  let rest = s;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest.startsWith("-")) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") bad();
  let total = 0;
  while (rest !== "") {
    // µ (U+00B5) and μ (U+03BC) escaped: the bundle stays ASCII, which node reads ~4× faster.
    const m = /^(\d*\.?\d*)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/.exec(rest);
    if (m === null || m[1] === "" || m[1] === ".") return bad();
    total += Number(m[1]) * (units[m[2] ?? ""] ?? 0);
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

/**
 * Removes rendered trees no pod, lease or `image render` mount uses (stderr `gc: removed treestore
 * "<id>"`) and the layer snapshots no tree needs any more, then images
 * not used within the grace period (oldest first, stopping at the first recent one; rkt) with
 * `image rm`'s messages, then blobs, ingests and temp files nothing needs.
 */
export async function imageGcCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    "grace-period": ctx.args.string("grace-period") ?? "24h0m0s",
    "trees-only": ctx.args.bool("trees-only"),
    "images-only": ctx.args.bool("images-only"),
  };
  if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values["trees-only"] && values["images-only"])
    throw usageError("--trees-only and --images-only are mutually exclusive");
  let grace: number;
  try {
    grace = parseGoDuration(values["grace-period"]);
  } catch (e) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `invalid argument ${JSON.stringify(values["grace-period"])} for "--grace-period" flag: ${(e as Error).message}`,
    );
  }
  const report = await withStore(
    ctx,
    async (store) => {
      const { gc } = await import("@rkt/store");
      return gc(store, {
        gracePeriodMs: grace,
        treesOnly: values["trees-only"],
        imagesOnly: values["images-only"],
      });
    },
    { cleanup: true },
  );
  const out = outputOf(ctx);
  if (out.json) {
    out.writeJson({
      removedTrees: report.removedTrees,
      removedSnapshots: report.removedSnapshots.length,
      removedImages: report.removedImages,
      removedBlobs: report.removedBlobs.length,
      removedIngests: report.removedIngests.length,
      freedBytes: report.freedBytes,
    });
  }
  for (const t of report.removedTrees) out.info(`gc: removed treestore ${JSON.stringify(t)}`);
  const snaps = report.removedSnapshots.length;
  if (snaps > 0) out.info(`gc: removed ${snaps} unreferenced layer snapshot(s)`);
  if (!out.json) for (const id of report.removedImages) ctx.stdout.write(`${removedLine(id)}\n`);
  if (report.removedImages.length > 0)
    out.info(`gc: ${report.removedImages.length} image(s) successfully removed`);
  if (report.removedBlobs.length + report.removedIngests.length > 0) {
    out.info(
      `gc: removed ${report.removedBlobs.length} unreferenced blob(s) and ${report.removedIngests.length} stale ingest(s)`,
    );
  }
  if (report.freedBytes > 0) out.info(`gc: freed ${humanizeBytes(report.freedBytes)}`);
  return 0;
}
