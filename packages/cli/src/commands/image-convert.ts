// `rkt image convert IMAGE [--squash|--no-squash] [-o DIR] [--compression=gzip|none]`.
import { resolve } from "node:path";
import type { Readable } from "node:stream";
import type { CommandContext } from "../context.js";
import { parseFlags, usageError, withStore } from "./image-common.js";

/**
 * Converts IMAGE (an OCI image in the store, by name or ID) to ACIs by docker2aci's rules: one
 * squashed ACI (default) or, with `--no-squash`, one per layer with dependencies. The ACIs are
 * imported into the store and their IDs printed (base first), or with `-o DIR` written there
 * under docker2aci's file names and their paths printed. Compression: `none` by default for the
 * store (it keeps archives uncompressed), `gzip` for files (docker2aci's default).
 */
export async function imageConvertCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    squash: { type: "boolean", default: true },
    "no-squash": { type: "boolean", default: false },
    output: { type: "string", short: "o" },
    compression: { type: "string" },
  });
  if (positionals.length !== 1) throw usageError("convert takes one IMAGE");
  const compression = values.compression ?? (values.output === undefined ? "none" : "gzip");
  if (compression !== "gzip" && compression !== "none") {
    throw usageError(`unknown compression method: ${compression} (gzip or none)`);
  }
  const squash = values.squash && !values["no-squash"];
  const [arg = ""] = positionals;
  const lines = await withStore(ctx, async (store) => {
    const { resolveImage, importAci } = await import("@rkt/store");
    const { convertImage, directorySink, storeImageInput } = await import("@rkt/docker2aci");
    const input = await storeImageInput(store, resolveImage(store, arg));
    const o = { squash, compression, signal: ctx.signal } as const;
    if (values.output !== undefined) {
      const dir = resolve(ctx.cwd, values.output);
      const acis = await convertImage(input, directorySink(dir), o);
      return acis.map((a) => resolve(dir, a.fileName));
    }
    const ids: string[] = [];
    await convertImage(
      input,
      async (t, data: Readable) => {
        ids.push((await importAci(store, data, { what: t.fileName, signal: ctx.signal })).id);
      },
      o,
    );
    return ids;
  });
  for (const l of lines) ctx.stdout.write(`${l}\n`);
  return 0;
}
