// Choosing the stage1: by `--stage1=KIND` or rkt's `--stage1-name`, else the first that works here.
import { readFile, stat } from "node:fs/promises";
import { ErrorCode, RktError } from "@rkt/oci";
import { FlyStage1 } from "./fly.js";
import { NspawnStage1 } from "./nspawn.js";
import { OciRuntimeStage1 } from "./runc.js";
import { Stage1Kind, type PodNeeds, type Stage1 } from "./stage1.js";

/** rkt's stage1 image names and ours, by kind. */
export const stage1Names: Readonly<Record<string, Stage1Kind>> = {
  "coreos.com/rkt/stage1-fly": Stage1Kind.Fly,
  "coreos.com/rkt/stage1-coreos": Stage1Kind.Nspawn,
  "coreos.com/rkt/stage1-src": Stage1Kind.Nspawn,
  "coreos.com/rkt/stage1-host": Stage1Kind.Nspawn,
  "coreos.com/rkt/stage1-runc": Stage1Kind.Runc,
  "coreos.com/rkt/stage1-crun": Stage1Kind.Crun,
};

/** The order the default is looked for in. */
export const stage1Preference: readonly Stage1Kind[] = [
  Stage1Kind.Runc,
  Stage1Kind.Crun,
  Stage1Kind.Nspawn,
  Stage1Kind.Fly,
];

async function cgroupV2(): Promise<string | undefined> {
  const unified = await stat("/sys/fs/cgroup/cgroup.controllers").then(
    () => true,
    () => false,
  );
  if (unified) return undefined;
  const fs = (await readFile("/proc/self/mountinfo", "utf8").catch(() => "")).includes(" /sys/fs/cgroup ");
  return `crun needs the unified cgroup v2 hierarchy at /sys/fs/cgroup (${fs ? "it is cgroup v1 here" : "none is mounted"})`;
}

/** The stage1 of a kind. */
export function stage1Of(kind: Stage1Kind): Stage1 {
  switch (kind) {
    case Stage1Kind.Runc:
      return new OciRuntimeStage1(Stage1Kind.Runc);
    case Stage1Kind.Crun:
      return new OciRuntimeStage1(Stage1Kind.Crun, cgroupV2);
    case Stage1Kind.Nspawn:
      return new NspawnStage1();
    case Stage1Kind.Fly:
      return new FlyStage1();
  }
}

/** `--stage1` / `--stage1-name` to a kind; RKT_INVALID_ARGUMENT for anything else. Pure. */
export function parseStage1(o: {
  kind?: string | undefined;
  name?: string | undefined;
}): Stage1Kind | undefined {
  if (o.kind !== undefined) {
    if ((Object.values(Stage1Kind) as string[]).includes(o.kind)) return o.kind as Stage1Kind;
    throw new RktError(
      ErrorCode.InvalidArgument,
      `unknown stage1 ${JSON.stringify(o.kind)} (known: ${Object.values(Stage1Kind).join(", ")})`,
    );
  }
  if (o.name !== undefined) {
    const base = o.name.split(":")[0] ?? "";
    const kind = stage1Names[base];
    if (kind === undefined) {
      const why = base === "coreos.com/rkt/stage1-kvm" ? " (virtual machine pods are not supported)" : "";
      throw new RktError(
        ErrorCode.InvalidArgument,
        `unknown stage1 image name ${JSON.stringify(o.name)}${why}`,
      );
    }
    return kind;
  }
  return undefined;
}

/**
 * The stage1 for a pod: the one asked for (RKT_UNAVAILABLE with the reason when it cannot run this
 * pod here), else the first of {@link stage1Preference} that can. `log` hears every decision.
 */
export async function selectStage1(
  wanted: Stage1Kind | undefined,
  needs: PodNeeds,
  log: (line: string) => void = () => undefined,
): Promise<Stage1> {
  const reasons: string[] = [];
  for (const kind of wanted === undefined ? stage1Preference : [wanted]) {
    const s = stage1Of(kind);
    const why = (await s.unavailable()) ?? s.refuses(needs);
    if (why === undefined) {
      log(
        `stage1: ${kind}${wanted === undefined ? " (the first that can run this pod here)" : " (as asked)"}`,
      );
      return s;
    }
    log(`stage1: not ${kind}: ${why}`);
    reasons.push(`${kind}: ${why}`);
  }
  throw new RktError(
    ErrorCode.Unavailable,
    wanted === undefined ? `no stage1 can run this pod here (${reasons.join("; ")})` : `stage1 ${reasons[0]}`,
  );
}

export { Stage1Kind } from "./stage1.js";
export type { Stage1, AppExit, LaunchIO, PodNeeds, PodRef } from "./stage1.js";
export { nspawnArgs } from "./nspawn.js";
export { containerId } from "./runc.js";
