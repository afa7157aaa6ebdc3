// The pod lifecycle commands: `rkt list`, `status`, `enter`, `stop`, `rm`, `gc`, `cat-manifest`.
import type { PodInfo } from "@rkt/runner";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { usageError, withStore } from "./image-common.js";
import { parseGoDuration } from "./image-gc.js";

function shortUuid(uuid: string, full: boolean): string {
  return full ? uuid : uuid.slice(0, 8);
}

function when(ms: number | undefined, full: boolean): string {
  if (ms === undefined) return "";
  if (full) return new Date(ms).toISOString();
  const ago = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (ago < 60) return `${ago} seconds ago`;
  if (ago < 3600) return `${Math.round(ago / 60)} minutes ago`;
  if (ago < 86_400) return `${Math.round(ago / 3600)} hours ago`;
  return `${Math.round(ago / 86_400)} days ago`;
}

/** The JSON shape of a pod in `list --format json` and `status --format json` (times in ms). */
function podJson(p: PodInfo): object {
  return {
    name: p.uuid,
    state: p.state,
    stage1: p.stage1,
    created_at: p.created,
    started_at: p.started,
    app_names: p.apps.map((a) => a.name),
    apps: p.apps.map((a) => ({
      name: a.name,
      image_id: a.imageId,
      image_name: a.imageName,
      exit_code: a.exitStatus,
    })),
  };
}

/** Columns joined by tabs are padded to the widest cell (rkt's tabwriter). */
function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) => `${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("\t")}\n`)
    .join("");
}

/** `rkt list [--no-legend] [--full] [--format=json]`: one line per app of every pod. */
export async function listCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    "no-legend": ctx.args.bool("no-legend"),
    full: ctx.args.bool("full"),
    format: ctx.args.string("format") ?? "",
  };
  if (positionals.length > 0) throw usageError("list takes no arguments");
  const { listPods } = await import("@rkt/runner");
  const pods = await withStore(ctx, (store) => listPods(store, ctx.globals.dir));
  if (values.format === "json") {
    ctx.stdout.write(`${JSON.stringify(pods.map(podJson))}\n`);
    return 0;
  }
  const full = values.full;
  if (ctx.args.bool("quiet")) {
    for (const p of pods) ctx.stdout.write(`${shortUuid(p.uuid, full)}\n`);
    return 0;
  }
  const rows: string[][] = values["no-legend"]
    ? []
    : [["UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"]];
  for (const p of pods) {
    const apps = p.apps.length > 0 ? p.apps : [{ name: "-", imageName: "-", imageId: "" }];
    apps.forEach((a, i) =>
      rows.push([
        i === 0 ? shortUuid(p.uuid, full) : "",
        a.name,
        full ? `${a.imageName} (${a.imageId})` : a.imageName,
        i === 0 ? p.state : "",
        i === 0 ? when(p.created, full) : "",
        i === 0 ? when(p.started, full) : "",
        "",
      ]),
    );
  }
  ctx.stdout.write(table(rows));
  return 0;
}

/** `rkt status [--wait[=DURATION]] [--format=json] UUID`. */
export async function statusCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = { wait: ctx.args.string("wait"), format: ctx.args.string("format") ?? "" };
  if (positionals.length !== 1) throw usageError("status takes one UUID");
  const uuid = positionals[0] ?? "";
  const { podInfo, waitPod } = await import("@rkt/runner");
  const info = await withStore(ctx, (store) => {
    if (values.wait === undefined) return podInfo(store, ctx.globals.dir, uuid);
    const ms = values.wait === "" || values.wait === "true" ? Infinity : parseGoDuration(values.wait);
    return waitPod(store, ctx.globals.dir, uuid, ctx.signal, ms);
  });
  if (values.format === "json") {
    ctx.stdout.write(`${JSON.stringify(podJson(info))}\n`);
    return 0;
  }
  const lines = [`state=${info.state}`, `created=${new Date(info.created).toISOString()}`];
  if (info.started !== undefined) lines.push(`started=${new Date(info.started).toISOString()}`);
  for (const a of info.apps) if (a.exitStatus !== undefined) lines.push(`app-${a.name}=${a.exitStatus}`);
  ctx.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

/** `rkt enter [--app=NAME] UUID [CMD [ARGS...]]` (default command: /bin/sh). */
export async function enterCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  // Flags only before the UUID (the tree says `interspersed: false`): what follows it is the
  // command, flags and all.
  const [uuid, ...cmd] = ctx.args.positionals;
  if (uuid === undefined) throw usageError("enter takes a UUID");
  const { enterPod } = await import("@rkt/runner");
  return withStore(ctx, (store) =>
    enterPod(store, ctx.globals.dir, uuid, {
      app: ctx.args.string("app"),
      cmd: cmd.length > 0 ? cmd : ["/bin/sh"],
      io: { stdin: ctx.stdin, stdout: ctx.stdout, stderr: ctx.stderr },
    }),
  );
}

/** `rkt stop [--force] UUID...`: prints each UUID stopped. */
export async function stopCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = { force: ctx.args.bool("force") };
  if (positionals.length === 0) throw usageError("stop takes at least one UUID");
  const { stopPod } = await import("@rkt/runner");
  return perPod(positionals, ctx, "stop", (store, u) => stopPod(store, ctx.globals.dir, u, values.force));
}

/** `rkt rm UUID...`: prints each UUID removed. */
export async function rmCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  if (positionals.length === 0) throw usageError("rm takes at least one UUID");
  const { removePod } = await import("@rkt/runner");
  return perPod(positionals, ctx, "rm", (store, u) => removePod(store, ctx.globals.dir, u));
}

/**
 * Runs `fn` for each pod, reporting failures as they happen; 254 when any failed (rkt). With
 * `--format json`, one `[{uuid,ok,error}]` list instead of the UUID lines.
 */
async function perPod(
  uuids: readonly string[],
  ctx: CommandContext,
  verb: string,
  fn: (store: LocalStore, uuid: string) => Promise<string>,
): Promise<number> {
  let failed = 0;
  const json = ctx.args.string("format") === "json";
  const results: { uuid: string; ok: boolean; error: string | null }[] = [];
  await withStore(ctx, async (store) => {
    for (const u of uuids) {
      try {
        const done = await fn(store, u);
        results.push({ uuid: done, ok: true, error: null });
        if (!json) ctx.stdout.write(`${done}\n`);
      } catch (e) {
        failed++;
        results.push({ uuid: u, ok: false, error: (e as Error).message });
        ctx.stderr.write(`${verb}: ${(e as Error).message}\n`);
      }
    }
  });
  if (json) ctx.stdout.write(`${JSON.stringify(results)}\n`);
  return failed > 0 ? 254 : 0;
}

/** `rkt gc [--grace-period=DURATION] [--expire-prepared=DURATION] [--mark-only]`. */
export async function gcCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = {
    "grace-period": ctx.args.string("grace-period") ?? "30m0s",
    "expire-prepared": ctx.args.string("expire-prepared") ?? "24h0m0s",
    "mark-only": ctx.args.bool("mark-only"),
  };
  if (positionals.length > 0) throw usageError("gc takes no arguments");
  const { gcPods } = await import("@rkt/runner");
  const report = await withStore(ctx, (store) =>
    gcPods(store, ctx.globals.dir, {
      gracePeriodMs: parseGoDuration(values["grace-period"]),
      expirePreparedMs: parseGoDuration(values["expire-prepared"]),
      markOnly: values["mark-only"],
    }),
  );
  const quiet = ctx.args.bool("quiet");
  if (ctx.args.string("format") === "json") {
    ctx.stdout.write(
      `${JSON.stringify({
        marked: report.marked,
        removed: report.removed,
        failed: report.failed.map((f) => ({ uuid: f.uuid, error: f.error.message })),
      })}\n`,
    );
  } else {
    for (const u of report.marked)
      if (!quiet) ctx.stderr.write(`gc: moving pod ${JSON.stringify(u)} to garbage\n`);
    for (const u of report.removed) ctx.stdout.write(`gc: garbage collected pod ${JSON.stringify(u)}\n`);
  }
  for (const f of report.failed) ctx.stderr.write(`gc: pod ${f.uuid}: ${f.error.message}\n`);
  return report.failed.length > 0 ? 254 : 0;
}

/** `rkt cat-manifest [--pretty-print=true|false] UUID`. */
export async function catManifestCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = { "pretty-print": ctx.args.bool("pretty-print") };
  if (positionals.length !== 1) throw usageError("cat-manifest takes one UUID");
  const { catPodManifest } = await import("@rkt/runner");
  const raw = await catPodManifest(ctx.globals.dir, positionals[0] ?? "");
  ctx.stdout.write(
    values["pretty-print"] ? `${JSON.stringify(JSON.parse(raw.toString("utf8")), null, "\t")}\n` : raw,
  );
  return 0;
}
