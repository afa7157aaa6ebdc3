// `rkt run`, `rkt prepare` and `rkt run-prepared`: images resolved in the store (or fetched as
// `rkt fetch` would), a pod prepared from them, and the pod handed to a stage1.
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { ErrorCode, isRktError } from "@rkt/oci";
import type { AppRequest, NetMode, Stage1Kind } from "@rkt/runner";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";
import { formatFlag } from "../output.js";
import { parseRunArgs, podFlags, type RunArgs, type RunImageArg } from "./run-args.js";

function debugLog(ctx: CommandContext): (line: string) => void {
  return (line) => {
    if (ctx.globals.debug) ctx.stderr.write(`run: ${line}\n`);
  };
}

/**
 * The store ID of `arg`: the stored image it names (pull policy new/never), else what
 * `rkt fetch` stores for it (progress shown as by `rkt fetch`).
 */
async function imageFor(store: LocalStore, a: RunImageArg, r: RunArgs, ctx: CommandContext): Promise<string> {
  const { resolveImage } = await import("@rkt/store");
  if (r.pullPolicy !== "update") {
    try {
      return resolveImage(store, a.image);
    } catch (e) {
      if (!isRktError(e) || e.code !== ErrorCode.NotFound || r.pullPolicy === "never") throw e;
    }
  }
  const { fetchForCli } = await import("./fetch.js");
  const arg = { image: a.image, signature: a.signature };
  // The pod renders the image next: extract it while it is fetched (one pass).
  return (await fetchForCli(store, arg, ctx, { pullPolicy: r.pullPolicy, quiet: r.quiet }, { render: true }))
    .id;
}

/** The pod's stage1: asked for, or the first that works here (`--debug` says which and why). */
async function chooseStage1(r: RunArgs, apps: number, ctx: CommandContext): Promise<Stage1Kind> {
  const { parseStage1, selectStage1 } = await import("@rkt/runner");
  const wanted = parseStage1({ kind: r.stage1, name: r.stage1Name });
  const s = await selectStage1(
    wanted,
    { apps, net: r.net, hostnameSet: r.hostname !== undefined, interactive: r.interactive },
    debugLog(ctx),
  );
  return s.kind;
}

/** Prepares the pod `r` describes; its UUID (saved to `--uuid-file-save` when given). */
async function prepare(store: LocalStore, r: RunArgs, ctx: CommandContext): Promise<string> {
  const stage1 = await chooseStage1(r, r.images.length, ctx);
  const apps: AppRequest[] = [];
  for (const a of r.images) {
    apps.push({
      image: await imageFor(store, a, r, ctx),
      name: a.name,
      mounts: a.mounts,
      overrides: {
        exec: a.exec,
        args: a.args,
        user: a.user,
        group: a.group,
        workingDir: a.workingDir,
        env: [...r.setEnv, ...a.env],
      },
    });
  }
  const { preparePod } = await import("@rkt/runner");
  const uuid = await preparePod(store, ctx.globals.dir, apps, {
    volumes: r.volumes,
    mounts: r.mounts,
    stage1,
    overlay: r.noOverlay ? false : undefined,
    log: (line) => ctx.stderr.write(`run: ${line}\n`),
    signal: ctx.signal,
  });
  if (r.uuidFileSave !== undefined) await writeFile(resolve(ctx.cwd, r.uuidFileSave), `${uuid}\n`);
  return uuid;
}

async function runPrepared(
  store: LocalStore,
  uuid: string,
  o: {
    net: NetMode;
    hostname?: string | undefined;
    interactive: boolean;
    inheritEnv: boolean;
  },
  ctx: CommandContext,
): Promise<number> {
  const { runPreparedPod } = await import("@rkt/runner");
  const exit = await runPreparedPod(store, ctx.globals.dir, uuid, {
    net: o.net,
    hostname: o.hostname,
    interactive: o.interactive,
    inheritEnv: o.inheritEnv ? ctx.env : undefined,
    io: { stdin: ctx.stdin, stdout: ctx.stdout, stderr: ctx.stderr },
    signal: ctx.signal,
    log: debugLog(ctx),
  });
  return exit.status;
}

/** `rkt run`: prepare and run one pod; the exit status is the first failing app's (else 0). */
export async function runCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const r = parseRunArgs(argv);
  return withStore(ctx, async (store) => {
    const uuid = await prepare(store, r, ctx);
    return runPrepared(store, uuid, r, ctx);
  });
}

/** `rkt prepare`: prints the UUID of a pod ready for `rkt run-prepared`. */
export async function prepareCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const r = parseRunArgs(argv, { ...podFlags, format: formatFlag("json: {uuid}") });
  const uuid = await withStore(ctx, (store) => prepare(store, r, ctx));
  ctx.stdout.write(r.format === "json" ? `${JSON.stringify({ uuid })}\n` : `${uuid}\n`);
  return 0;
}

/** `rkt run-prepared [--net=…] [--hostname=…] [--interactive] [--inherit-env] UUID`. */
export async function runPreparedCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    net: ctx.args.string("net") ?? "default",
    hostname: ctx.args.string("hostname"),
    interactive: ctx.args.bool("interactive"),
    "inherit-env": ctx.args.bool("inherit-env"),
  };
  if (positionals.length !== 1) throw usageError("run-prepared takes one UUID");
  const net = values.net;
  if (net !== "host" && net !== "none" && net !== "default")
    throw usageError(`--net=${net}: only host, none and default are supported (no CNI networks)`);
  return withStore(ctx, (store) =>
    runPrepared(
      store,
      positionals[0] ?? "",
      { net, hostname: values.hostname, interactive: values.interactive, inheritEnv: values["inherit-env"] },
      ctx,
    ),
  );
}
