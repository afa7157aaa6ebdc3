// `rkt image convert IMAGE [--squash|--no-squash] [-o DIR] [--compression=gzip|none]`.
import { resolve } from "node:path";
import type * as D2A from "@rkt/docker2aci";
import type * as Fetch from "@rkt/fetch";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";
import { progressFor } from "../progress.js";
import { usageError, withStore } from "./image-common.js";
import { registryClients } from "./registry-clients.js";

// A transport argument (`docker://`, `oci:`, `oci-archive:`, `docker-archive:`) rather than a stored image.
const transport = /^(?:docker:\/\/|oci:|oci-archive:|docker-archive:)/;

/**
 * The converter input for `arg`: a stored image, or any transport's image (read from there, not
 * stored), named as docker2aci names it.
 */
async function inputFor(
  store: LocalStore,
  arg: string,
  ctx: CommandContext,
): Promise<{ input: D2A.ImageInput; close: () => Promise<void> }> {
  const d2a = await import("@rkt/docker2aci");
  if (!transport.test(arg)) {
    const { resolveImage } = await import("@rkt/store");
    return {
      input: await d2a.storeImageInput(store, resolveImage(store, arg)),
      close: () => Promise.resolve(),
    };
  }
  const fetch = await import("@rkt/fetch");
  const { hostPlatform, platformImage } = await import("@rkt/oci");
  const clients: Fetch.RegistryClient[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(clients.map((c) => c.close()));
  };
  try {
    const src = await fetch.openImageSource(fetch.parseImageLocation(arg, ctx.cwd), {
      store,
      client: registryClients(fetch, ctx, {}, clients),
    });
    const img = await platformImage(src.image, hostPlatform(), arg, { signal: ctx.signal });
    const name = arg.startsWith("docker://")
      ? { ...d2a.parseDockerName(arg.slice(9)), originalName: arg.slice(9) }
      : d2a.storedImageName(src.name ?? "image", src.tag ?? "latest");
    const input = await d2a.imageInput(img, name, { signal: ctx.signal });
    return {
      input,
      close: async () => {
        await src.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Converts IMAGE (an OCI image in the store, by name or ID, or any transport's image:
 * `docker://`, `oci:`, `oci-archive:`, `docker-archive:`) to ACIs by docker2aci's rules: one
 * squashed ACI (default) or, with `--no-squash`, one per layer with dependencies. Into the
 * store (uncompressed, as it keeps archives): a transport's image is fetched first as `rkt fetch`
 * would (policy admission included), and an image converted before is not converted again (the
 * store remembers the ACIs of each manifest digest); the IDs are printed, base first (only the
 * top one from the cache). With `-o DIR` the ACIs are written there under docker2aci's file names
 * (streamed from the source, not stored; `--compression`, default gzip) and their paths printed.
 */
export async function imageConvertCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    squash: ctx.args.bool("squash"),
    "no-squash": ctx.args.bool("no-squash"),
    output: ctx.args.string("output"),
    compression: ctx.args.string("compression"),
  };
  if (positionals.length !== 1) throw usageError("convert takes one IMAGE");
  const compression = values.compression ?? "gzip";
  if (compression !== "gzip" && compression !== "none") {
    throw usageError(`unknown compression method: ${compression} (gzip or none)`);
  }
  const squash = values.squash && !values["no-squash"];
  const [arg = ""] = positionals;
  const lines = await withStore(ctx, async (store) => {
    const d2a = await import("@rkt/docker2aci");
    if (values.output === undefined) {
      // Into the store: a transport's image is fetched first (admitted by the policy as `rkt fetch`
      // would), then converted once per manifest digest.
      const { resolveImage } = await import("@rkt/store");
      const { fetchForCli } = await import("./fetch.js");
      const id = transport.test(arg)
        ? (await fetchForCli(store, { image: arg }, ctx, { pullPolicy: "new", quiet: outputOf(ctx).quiet }))
            .id
        : resolveImage(store, arg);
      const progress = progressFor(ctx, "Converting", { quiet: outputOf(ctx).quiet });
      try {
        return (
          await d2a.convertStoredImage(store, id, { squash, signal: ctx.signal, onProgress: progress.blob })
        ).ids;
      } finally {
        progress.end();
      }
    }
    const { input, close } = await inputFor(store, arg, ctx);
    try {
      const dir = resolve(ctx.cwd, values.output);
      const progress = progressFor(ctx, "Converting", { quiet: outputOf(ctx).quiet });
      const acis = await d2a
        .convertImage(input, d2a.directorySink(dir), {
          squash,
          compression,
          signal: ctx.signal,
          onProgress: progress.blob,
        })
        .finally(() => progress.end());
      return acis.map((a) => resolve(dir, a.fileName));
    } finally {
      await close();
      await input.close?.();
    }
  });
  const o = outputOf(ctx);
  if (o.json) o.writeJson(lines.map((l) => (values.output === undefined ? { id: l } : { path: l })));
  else for (const l of lines) ctx.stdout.write(`${l}\n`);
  return 0;
}
