// rkt's stage1-fly: the app runs in the host's namespaces except its own mount namespace, chrooted
// into its root filesystem with the host's /proc, /dev and /sys bound in (no isolation, no cgroups:
// for system software that must see the host). One app per pod, host network only, as rkt's fly.
//
// The chain is exec-only (unshare → sh → nsenter → app), so the process rkt spawns *is* the app:
// its pid is recorded for `enter`, `stop` and `gc`. Mounts live in the private mount namespace and
// vanish with it, whatever happens to rkt.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isAlive, processStartTime } from "@rkt/store";
import { ensureDirInRoot } from "../in-root.js";
import type { LaunchApp, LaunchPod } from "../launch.js";
import { spawnWithIO, which } from "./spawn.js";
import {
  Stage1Kind,
  type AppExit,
  type LaunchIO,
  type PodNeeds,
  type PodRef,
  type Stage1,
} from "./stage1.js";

// $1 root, $2 working dir, $3 uid, $4 gid, $5 number of binds, then source/target/ro triples, then
// the app's argv. Host tools by absolute path: PATH is already the app's.
const script = [
  "root=$1 wd=$2 uid=$3 gid=$4 n=$5; shift 5",
  'for d in proc dev sys; do /usr/bin/mount --rbind /$d "$root/$d"; done',
  'while [ "$n" -gt 0 ]; do',
  '  /usr/bin/mount --rbind "$1" "$2"',
  '  if [ "$3" = ro ]; then /usr/bin/mount -o remount,bind,ro "$2"; fi',
  "  shift 3; n=$((n-1))",
  "done",
  'exec /usr/bin/nsenter --root="$root" --wd="$wd" -S "$uid" -G "$gid" -- "$@"',
].join("\n");

/** The pid file of an app: `<pid> <start time>`. */
function pidFile(dir: string, app: string): string {
  return join(dir, "appsinfo", app, "pid");
}

async function livePid(dir: string, app: string): Promise<number | undefined> {
  const [pid, start] = (await readFile(pidFile(dir, app), "utf8").catch(() => "")).split(" ").map(Number);
  return pid !== undefined && start !== undefined && pid > 0 && isAlive(pid, start) ? pid : undefined;
}

export class FlyStage1 implements Stage1 {
  readonly kind = Stage1Kind.Fly;

  async unavailable(): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return "fly needs root (chroot and mounts)";
    for (const tool of ["unshare", "nsenter", "mount"])
      if ((await which(tool)) === undefined) return `${tool} is not installed`;
    return undefined;
  }

  refuses(needs: PodNeeds): string | undefined {
    if (needs.apps > 1) return "fly runs one app per pod";
    if (needs.net === "none") return "fly shares the host's network: --net=none needs the runc stage1";
    if (needs.hostnameSet) return "fly shares the host's UTS namespace: --hostname needs the runc stage1";
    return undefined;
  }

  async run(pod: LaunchPod, io: LaunchIO, signal: AbortSignal): Promise<AppExit[]> {
    const app = pod.apps[0]!;
    const args = await flyArgs(app);
    let child: { kill(sig: NodeJS.Signals): boolean } | undefined;
    const stop = () => child?.kill("SIGTERM");
    signal.addEventListener("abort", stop, { once: true });
    try {
      const status = await spawnWithIO(
        "unshare",
        ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "fly", ...args],
        io,
        { stdin: pod.interactive, env: envObject(app.env), what: `app ${JSON.stringify(app.name)}` },
        (c) => {
          child = c;
          if (c.pid !== undefined)
            void writeFile(pidFile(pod.dir, app.name), `${c.pid} ${processStartTime(c.pid) ?? 0}`).catch(
              () => undefined,
            );
        },
      );
      return [{ app: app.name, status }];
    } finally {
      signal.removeEventListener("abort", stop);
    }
  }

  async enter(pod: PodRef, app: string, cmd: readonly string[], io: LaunchIO): Promise<number> {
    const pid = await livePid(pod.dir, app);
    if (pid === undefined) throw new Error(`app ${JSON.stringify(app)} of pod ${pod.uuid} is not running`);
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? "0";
    const gid = /^Gid:\s+(\d+)/m.exec(status)?.[1] ?? "0";
    return spawnWithIO(
      "nsenter",
      ["--target", String(pid), "--mount", "--root", "--wd", "-S", uid, "-G", gid, "--", ...cmd],
      io,
      { stdin: true, what: `enter ${pod.uuid}` },
    );
  }

  async kill(pod: PodRef, sig: "SIGTERM" | "SIGKILL"): Promise<void> {
    for (const app of pod.apps) {
      const pid = await livePid(pod.dir, app);
      if (pid !== undefined) process.kill(pid, sig);
    }
  }

  async cleanup(pod: PodRef): Promise<void> {
    await this.kill(pod, "SIGKILL");
  }
}

/** The script's arguments for `app`: mount points made inside the root first. */
async function flyArgs(app: LaunchApp): Promise<string[]> {
  for (const d of ["proc", "dev", "sys"]) await ensureDirInRoot(app.rootfs, d);
  const binds: string[] = [];
  for (const m of app.mounts)
    binds.push(m.source, await ensureDirInRoot(app.rootfs, m.target), m.readOnly ? "ro" : "rw");
  return [
    app.rootfs,
    app.cwd,
    String(app.uid),
    String(app.gid),
    String(app.mounts.length),
    ...binds,
    ...app.args,
  ];
}

function envObject(env: readonly string[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const kv of env) {
    const eq = kv.indexOf("=");
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}
