// The OCI runtime stage1 (runc, or crun with the same bundle): one container per app, runtime state
// under the pod directory (`<pod>/runc`) so that `rkt gc` finds and removes what a killed rkt left.
// Several apps share the pod's network, IPC and UTS namespaces (appc): a holder process owns them
// and each container joins them; each app keeps its own PID and mount namespaces.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runTool } from "@rkt/store";
import type { LaunchApp, LaunchPod } from "../launch.js";
import { runtimeConfig, type JoinNamespaces } from "../oci-runtime.js";
import { spawnWithIO, which } from "./spawn.js";
import type { Stage1Kind } from "./stage1.js";
import { type AppExit, type LaunchIO, type PodNeeds, type PodRef, type Stage1 } from "./stage1.js";

/** runc's container ID of an app: `<pod uuid>-<app>` (runc allows [A-Za-z0-9_+.-]). */
export function containerId(uuid: string, app: string): string {
  return `${uuid}-${app}`;
}

/** A stage1 driving an OCI runtime binary. */
export class OciRuntimeStage1 implements Stage1 {
  readonly kind: typeof Stage1Kind.Runc | typeof Stage1Kind.Crun;
  private readonly requirement: () => Promise<string | undefined>;

  constructor(
    kind: typeof Stage1Kind.Runc | typeof Stage1Kind.Crun,
    requirement: () => Promise<string | undefined> = () => Promise.resolve(undefined),
  ) {
    this.kind = kind;
    this.requirement = requirement;
  }

  private binary: string | undefined;

  async unavailable(): Promise<string | undefined> {
    this.binary ??= await which(this.kind);
    if (this.binary === undefined) return `${this.kind} is not installed`;
    if (process.getuid?.() !== 0) return `${this.kind} needs root here (rootless containers are not set up)`;
    return this.requirement();
  }

  refuses(needs: PodNeeds): string | undefined {
    if (needs.interactive && needs.apps > 1) return "--interactive takes a pod of one app";
    return undefined;
  }

  private stateRoot(dir: string): string {
    return join(dir, "runc");
  }

  private cli(dir: string, ...args: string[]): string[] {
    return ["--root", this.stateRoot(dir), ...args];
  }

  async run(pod: LaunchPod, io: LaunchIO, signal: AbortSignal): Promise<AppExit[]> {
    const bin = this.binary ?? this.kind;
    let holder: ChildProcess | undefined;
    let shared: JoinNamespaces = {};
    if (pod.apps.length > 1) {
      holder = await startHolder(pod);
      const ns = (t: string) => `/proc/${holder!.pid}/ns/${t}`;
      shared = { ipc: ns("ipc"), uts: ns("uts"), network: pod.net === "host" ? undefined : ns("net") };
    }
    const ids = pod.apps.map((a) => containerId(pod.uuid, a.name));
    const stop = () => {
      for (const id of ids)
        void runTool(bin, this.cli(pod.dir, "kill", id, "TERM"), undefined, "stop").catch(() => undefined);
    };
    signal.addEventListener("abort", stop, { once: true });
    try {
      const bundles = await Promise.all(pod.apps.map((a) => this.writeBundle(pod, a, shared)));
      const exits = await Promise.all(
        pod.apps.map((a, i) =>
          spawnWithIO(bin, this.cli(pod.dir, "run", "--bundle", bundles[i]!, ids[i]!), io, {
            stdin: pod.interactive,
            what: `app ${JSON.stringify(a.name)}`,
          }),
        ),
      );
      return pod.apps.map((a, i) => ({ app: a.name, status: exits[i]! }));
    } finally {
      signal.removeEventListener("abort", stop);
      holder?.kill("SIGKILL");
    }
  }

  private async writeBundle(pod: LaunchPod, app: LaunchApp, shared: JoinNamespaces): Promise<string> {
    const dir = join(pod.dir, "bundles", app.name);
    await mkdir(dir, { recursive: true, mode: 0o750 });
    const config = runtimeConfig(pod, app, shared, await hardOpenFilesLimit());
    await writeFile(join(dir, "config.json"), JSON.stringify(config));
    return dir;
  }

  async enter(pod: PodRef, app: string, cmd: readonly string[], io: LaunchIO): Promise<number> {
    const tty = (io.stdin as { isTTY?: boolean }).isTTY === true;
    return spawnWithIO(
      this.binary ?? this.kind,
      this.cli(pod.dir, "exec", ...(tty ? ["-t"] : []), containerId(pod.uuid, app), ...cmd),
      io,
      { stdin: true, what: `enter ${pod.uuid}` },
    );
  }

  async kill(pod: PodRef, sig: "SIGTERM" | "SIGKILL"): Promise<void> {
    for (const id of await this.containers(pod)) {
      await runTool(
        this.binary ?? this.kind,
        this.cli(pod.dir, "kill", id, sig.slice(3)),
        undefined,
        `stop ${id}`,
      ).catch(() => undefined);
    }
  }

  async cleanup(pod: PodRef): Promise<void> {
    for (const id of await this.containers(pod)) {
      await runTool(
        this.binary ?? this.kind,
        this.cli(pod.dir, "delete", "--force", id),
        undefined,
        `delete ${id}`,
      );
    }
  }

  /** The containers the runtime still has state for (none when the state root is gone). */
  private async containers(pod: PodRef): Promise<string[]> {
    if ((await stat(this.stateRoot(pod.dir)).catch(() => undefined)) === undefined) return [];
    this.binary ??= await which(this.kind);
    if (this.binary === undefined) return [];
    const out = await runTool(
      this.binary,
      this.cli(pod.dir, "list", "-q"),
      undefined,
      "list containers",
    ).catch(() => Buffer.alloc(0));
    return out
      .toString("utf8")
      .split("\n")
      .filter((l) => l !== "");
  }
}

/**
 * The process owning a multi-app pod's shared namespaces: `unshare` into new IPC, UTS and (unless
 * host) network namespaces, loopback up and the hostname set, then it sleeps until killed.
 */
async function startHolder(pod: LaunchPod): Promise<ChildProcess> {
  const flags = ["--ipc", "--uts", ...(pod.net === "host" ? [] : ["--net"])];
  const script = 'ip link set lo up 2>/dev/null || true; hostname "$1"; echo ready; exec sleep infinity';
  const child = spawn("unshare", [...flags, "--", "/bin/sh", "-c", script, "holder", pod.hostname], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`pod namespaces: unshare exited ${code}`)));
  });
  return child;
}

/** This process's hard RLIMIT_NOFILE (`/proc/self/limits`), capped at 1048576. */
async function hardOpenFilesLimit(): Promise<number> {
  const text = await readFile("/proc/self/limits", "utf8").catch(() => "");
  const hard = /^Max open files\s+\S+\s+(\d+)/m.exec(text)?.[1];
  return Math.min(hard === undefined ? 1024 : Number(hard), 1048576);
}
