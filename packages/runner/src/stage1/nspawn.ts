// rkt's classic stage1 engine: systemd-nspawn. It needs systemd as PID 1 (nspawn registers with
// machined and its container scope lives in systemd's cgroup tree); elsewhere it is refused.
import { readFile } from "node:fs/promises";
import { PassThrough } from "node:stream";
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

/** The systemd-nspawn command line of a one-app pod. Pure. */
export function nspawnArgs(pod: LaunchPod, app: LaunchApp): string[] {
  return [
    "--quiet",
    "--register=no",
    "--keep-unit",
    "--as-pid2",
    `--machine=rkt-${pod.uuid}`,
    `--directory=${app.rootfs}`,
    `--chdir=${app.cwd}`,
    `--hostname=${pod.hostname}`,
    ...(app.uid === 0 ? [] : [`--user=${app.userName ?? ""}`]),
    ...(pod.net === "host" ? [] : ["--private-network"]),
    ...(pod.interactive ? ["--console=interactive"] : ["--console=pipe"]),
    `--capability=${app.capabilities.join(",")}`,
    ...app.env.map((e) => `--setenv=${e}`),
    ...app.mounts.map((m) => `--bind${m.readOnly ? "-ro" : ""}=${m.source}:${m.target}`),
    "--",
    ...app.args,
  ];
}

export class NspawnStage1 implements Stage1 {
  readonly kind = Stage1Kind.Nspawn;

  async unavailable(): Promise<string | undefined> {
    if ((await which("systemd-nspawn")) === undefined) return "systemd-nspawn is not installed";
    const init = (await readFile("/proc/1/comm", "utf8").catch(() => "?")).trim();
    if (init !== "systemd") return `systemd is not PID 1 here (PID 1 is ${JSON.stringify(init)})`;
    if (process.getuid?.() !== 0) return "systemd-nspawn needs root";
    return undefined;
  }

  refuses(needs: PodNeeds): string | undefined {
    return needs.apps > 1 ? "the nspawn stage1 runs one app per pod" : undefined;
  }

  async run(pod: LaunchPod, io: LaunchIO, signal: AbortSignal): Promise<AppExit[]> {
    const app = pod.apps[0]!;
    if (app.uid !== 0 && app.userName === undefined) {
      throw new Error(
        `app ${JSON.stringify(app.name)}: nspawn needs uid ${app.uid} to have a name in /etc/passwd`,
      );
    }
    let kill: (() => void) | undefined;
    signal.addEventListener("abort", () => kill?.(), { once: true });
    const status = await spawnWithIO(
      "systemd-nspawn",
      nspawnArgs(pod, app),
      io,
      {
        stdin: pod.interactive,
        what: `app ${JSON.stringify(app.name)}`,
      },
      (c) => (kill = () => c.kill("SIGTERM")),
    );
    return [{ app: app.name, status }];
  }

  enter(pod: PodRef, app: string, cmd: readonly string[], io: LaunchIO): Promise<number> {
    return spawnWithIO("machinectl", ["shell", `rkt-${pod.uuid}`, ...cmd], io, {
      stdin: true,
      what: `enter ${app}`,
    });
  }

  async kill(pod: PodRef, sig: "SIGTERM" | "SIGKILL"): Promise<void> {
    await spawnWithIO("machinectl", ["kill", `--signal=${sig}`, `rkt-${pod.uuid}`], nullIO, {
      what: "stop",
    }).catch(() => undefined);
  }

  async cleanup(pod: PodRef): Promise<void> {
    await this.kill(pod, "SIGKILL");
  }
}

const nullIO: LaunchIO = {
  stdin: new PassThrough(),
  stdout: new PassThrough().resume(),
  stderr: new PassThrough().resume(),
};
