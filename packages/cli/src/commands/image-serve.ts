// `rkt image serve --listen HOST:PORT`: the store as a read-only registry until SIGINT/SIGTERM,
// so that neighbouring nodes list this one as a registries.conf mirror.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";

async function readPem(ctx: CommandContext, file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(resolve(ctx.cwd, file));
  } catch (e) {
    throw new RktError(ErrorCode.Io, `--${flag} ${file}: ${(e as Error).message}`, { cause: e });
  }
}

export async function imageServeCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    listen: ctx.args.string("listen"),
    "tls-cert": ctx.args.string("tls-cert"),
    "tls-key": ctx.args.string("tls-key"),
    quiet: ctx.args.bool("quiet"),
  };
  if (positionals.length > 0) throw usageError("image serve takes no arguments");
  if (values.listen === undefined) throw usageError("image serve needs --listen HOST:PORT");
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  if ((cert === undefined) !== (key === undefined)) throw usageError("--tls-cert and --tls-key go together");
  const tls =
    cert === undefined || key === undefined
      ? undefined
      : { cert: await readPem(ctx, cert, "tls-cert"), key: await readPem(ctx, key, "tls-key") };
  const { serveStore } = await import("@rkt/fetch");
  return await withStore(ctx, async (store) => {
    const server = await serveStore(store, {
      listen: values.listen!,
      tls,
      signal: ctx.signal,
      log: ctx.globals.debug ? (line) => ctx.stderr.write(`${line}\n`) : undefined,
    });
    if (ctx.args.string("format") === "json") ctx.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
    else if (!values.quiet) ctx.stdout.write(`listening on ${server.url}\n`);
    // Runs until the signal: the store stays open for as long as the server reads it.
    await new Promise<void>((done) => {
      if (ctx.signal.aborted) done();
      else ctx.signal.addEventListener("abort", () => done(), { once: true });
    });
    await server.close();
    return 0;
  });
}
