// The pod lifecycle after `run`: what state each pod is in (`rkt list`, `rkt status`), entering
// and stopping a running pod, removing pods and collecting garbage (`rkt rm`, `rkt gc`).
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, RktError } from "@rkt/oci";
import { isLocked, tryLock, type LocalStore } from "@rkt/store";
import { unmountUnder } from "./mounts.js";
import { findPod, listPodDirs, movePod, PodDir, podLockKey, type PodLocation } from "./pod-dirs.js";
import { podFiles, podLeaseId } from "./pod-files.js";
import { appImage, readPod } from "./run.js";
import { stage1Of, type LaunchIO, type PodRef } from "./stage1/index.js";

/** rkt's pod state names. */
export const PodState = {
  Embryo: "embryo",
  Preparing: "preparing",
  AbortedPrepare: "aborted prepare",
  Prepared: "prepared",
  Running: "running",
  Exited: "exited",
  ExitedGarbage: "exited garbage",
  Garbage: "garbage",
} as const;
export type PodState = (typeof PodState)[keyof typeof PodState];

/** One app of a listed pod. */
export interface PodAppInfo {
  readonly name: string;
  readonly imageName: string;
  readonly imageId: string;
  /** Exit status, once it ended under a live rkt. */
  readonly exitStatus?: number | undefined;
}

/** What `rkt list` / `rkt status` show of a pod. */
export interface PodInfo {
  readonly uuid: string;
  readonly state: PodState;
  readonly path: string;
  readonly apps: readonly PodAppInfo[];
  /** ms since the epoch. */
  readonly created: number;
  readonly started?: number | undefined;
  readonly stage1?: string | undefined;
}

function stateOf(store: LocalStore, loc: PodLocation): PodState {
  const held = isLocked(store, podLockKey(loc.uuid));
  switch (loc.dir) {
    case PodDir.Embryo:
      return PodState.Embryo;
    case PodDir.Prepare:
      return held ? PodState.Preparing : PodState.AbortedPrepare;
    case PodDir.Prepared:
      return PodState.Prepared;
    case PodDir.Run:
      return held ? PodState.Running : PodState.Exited;
    case PodDir.ExitedGarbage:
      return PodState.ExitedGarbage;
    case PodDir.Garbage:
      return PodState.Garbage;
  }
}

async function infoOf(store: LocalStore, loc: PodLocation): Promise<PodInfo> {
  const state = stateOf(store, loc);
  const created =
    (await stat(join(loc.path, podFiles.manifest)).catch(() => undefined))?.mtimeMs ?? loc.since;
  const startedText = await readFile(join(loc.path, podFiles.started), "utf8").catch(() => undefined);
  let apps: PodAppInfo[] = [];
  let stage1: string | undefined;
  try {
    const pod = await readPod(loc.path);
    stage1 = pod.stage1;
    apps = await Promise.all(
      pod.manifest.apps.map(async (a) => {
        const img = appImage(a);
        const status = await readFile(join(loc.path, podFiles.status, a.name), "utf8").catch(() => undefined);
        return {
          name: a.name,
          imageId: img.id,
          imageName: img.name,
          exitStatus: status === undefined ? undefined : Number(status),
        };
      }),
    );
  } catch {
    // An embryo or aborted pod may have no manifest yet: listed without apps.
  }
  return {
    uuid: loc.uuid,
    state,
    path: loc.path,
    apps,
    created,
    started: startedText === undefined ? undefined : Number(startedText),
    stage1,
  };
}

/** Every pod, oldest first. */
export async function listPods(store: LocalStore, dataDir: string): Promise<PodInfo[]> {
  const all = await Promise.all((await listPodDirs(dataDir)).map((l) => infoOf(store, l)));
  return all.sort((a, b) => a.created - b.created);
}

/** One pod by UUID or unique prefix. */
export async function podInfo(store: LocalStore, dataDir: string, uuid: string): Promise<PodInfo> {
  return infoOf(store, await findPod(dataDir, uuid));
}

/** `rkt status --wait`: polls until the pod is no longer running (or preparing). */
export async function waitPod(
  store: LocalStore,
  dataDir: string,
  uuid: string,
  signal: AbortSignal,
  timeoutMs = Infinity,
): Promise<PodInfo> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = await podInfo(store, dataDir, uuid);
    if (
      info.state !== PodState.Running &&
      info.state !== PodState.Preparing &&
      info.state !== PodState.Prepared
    )
      return info;
    if (Date.now() > end)
      throw new RktError(ErrorCode.Unavailable, `pod ${info.uuid} is still ${info.state}`, {
        temporary: true,
      });
    await sleep(50, undefined, { signal });
  }
}

function refOf(info: PodInfo): PodRef {
  return { uuid: info.uuid, dir: info.path, apps: info.apps.map((a) => a.name) };
}

async function running(store: LocalStore, dataDir: string, uuid: string): Promise<PodInfo> {
  const info = await podInfo(store, dataDir, uuid);
  if (info.state !== PodState.Running)
    throw new RktError(ErrorCode.InvalidArgument, `pod ${info.uuid} is not running (it is ${info.state})`);
  return info;
}

/** `rkt stop`: SIGTERM (SIGKILL with `force`) to every app of a running pod. */
export async function stopPod(
  store: LocalStore,
  dataDir: string,
  uuid: string,
  force = false,
): Promise<string> {
  const info = await running(store, dataDir, uuid);
  await stage1Of(info.stage1 as never).kill(refOf(info), force ? "SIGKILL" : "SIGTERM");
  return info.uuid;
}

/** `rkt enter`: runs `cmd` in an app of a running pod (the only one unless `app` names one). */
export async function enterPod(
  store: LocalStore,
  dataDir: string,
  uuid: string,
  o: { app?: string | undefined; cmd: readonly string[]; io: LaunchIO },
): Promise<number> {
  const info = await running(store, dataDir, uuid);
  const names = info.apps.map((a) => a.name);
  const app = o.app ?? (names.length === 1 ? names[0] : undefined);
  if (app === undefined)
    throw new RktError(
      ErrorCode.InvalidArgument,
      `pod ${info.uuid} has several apps (${names.join(", ")}): choose one with --app`,
    );
  if (!names.includes(app))
    throw new RktError(ErrorCode.NotFound, `pod ${info.uuid} has no app ${JSON.stringify(app)}`);
  return stage1Of(info.stage1 as never).enter(refOf(info), app, o.cmd, o.io);
}

/** `rkt cat-manifest`: the pod manifest bytes. */
export async function catPodManifest(dataDir: string, uuid: string): Promise<Buffer> {
  const loc = await findPod(dataDir, uuid);
  return readFile(join(loc.path, podFiles.manifest)).catch(() => {
    throw new RktError(ErrorCode.NotFound, `pod ${loc.uuid} has no manifest (it is in ${loc.dir})`);
  });
}

/**
 * Makes a pod whose processes are gone harmless: leftovers of a killed rkt stopped and the stage1's
 * runtime state removed, every mount under it unmounted.
 */
async function quiesce(loc: PodLocation): Promise<void> {
  const kind = await readFile(join(loc.path, podFiles.stage1), "utf8").catch(() => undefined);
  if (kind !== undefined) {
    const names = await readPod(loc.path).then(
      (p) => p.manifest.apps.map((a) => a.name),
      () => [] as string[],
    );
    await stage1Of(kind.trim() as never).cleanup({ uuid: loc.uuid, dir: loc.path, apps: names });
  }
  await unmountUnder(loc.path);
}

/** Deletes a garbage pod's directory and its GC root (nothing may be mounted under it). */
async function destroy(store: LocalStore, loc: PodLocation): Promise<void> {
  await quiesce(loc);
  await rm(loc.path, { recursive: true, force: true });
  store.deleteLease(podLeaseId(loc.uuid));
}

/** `rkt rm`: removes a pod that is not running or being prepared. Returns its UUID. */
export async function removePod(store: LocalStore, dataDir: string, uuid: string): Promise<string> {
  const loc = await findPod(dataDir, uuid);
  const lock = tryLock(store, podLockKey(loc.uuid));
  if ("heldBy" in lock)
    throw new RktError(
      ErrorCode.Unavailable,
      `pod ${loc.uuid} is in use by process ${lock.heldBy} (running or being prepared); stop it first`,
    );
  try {
    await destroy(store, loc.dir === PodDir.Garbage ? loc : await movePod(dataDir, loc, PodDir.Garbage));
    return loc.uuid;
  } finally {
    lock.release();
  }
}

/** Options of {@link gcPods}. */
export interface GcPodsOptions {
  /** How long an exited pod stays before it is removed (rkt: 30 minutes). */
  readonly gracePeriodMs?: number | undefined;
  /** How long a prepared, never-run pod is kept (rkt: 24 hours). */
  readonly expirePreparedMs?: number | undefined;
  /** Only move pods to the garbage directories; remove nothing. */
  readonly markOnly?: boolean | undefined;
  readonly now?: number | undefined;
}

/** What {@link gcPods} did. */
export interface GcPodsReport {
  readonly marked: string[];
  readonly removed: string[];
  readonly failed: { uuid: string; error: Error }[];
}

export const defaultPodGracePeriodMs = 30 * 60_000;
export const defaultExpirePreparedMs = 24 * 3_600_000;

/**
 * `rkt gc`: exited pods (in `run`, lock free) are made harmless and moved to `exited-garbage`;
 * aborted preparations and expired prepared pods to `garbage`; exited garbage past the grace
 * period to `garbage`; garbage is removed with its GC root. Each pod is handled under its lock, so
 * two collectors (or a collector and `run-prepared`) never handle the same pod at once.
 */
export async function gcPods(
  store: LocalStore,
  dataDir: string,
  o: GcPodsOptions = {},
): Promise<GcPodsReport> {
  const now = o.now ?? Date.now();
  const grace = o.gracePeriodMs ?? defaultPodGracePeriodMs;
  const expire = o.expirePreparedMs ?? defaultExpirePreparedMs;
  const report: GcPodsReport = { marked: [], removed: [], failed: [] };
  for (const found of await listPodDirs(dataDir)) {
    const lock = tryLock(store, podLockKey(found.uuid));
    if ("heldBy" in lock) continue;
    try {
      // Another collector may have moved it since the listing.
      let loc = await findPod(dataDir, found.uuid).catch(() => undefined);
      if (loc === undefined) continue;
      if (loc.dir === PodDir.Run) {
        await quiesce(loc);
        loc = await movePod(dataDir, loc, PodDir.ExitedGarbage);
        report.marked.push(loc.uuid);
      }
      // A pod just moved to exited-garbage goes on at once when the grace period is zero.
      if (
        loc.dir === PodDir.Embryo ||
        loc.dir === PodDir.Prepare ||
        (loc.dir === PodDir.Prepared && now - loc.since > expire) ||
        (loc.dir === PodDir.ExitedGarbage && (grace === 0 || now - loc.since > grace))
      ) {
        loc = await movePod(dataDir, loc, PodDir.Garbage);
        store.deleteLease(podLeaseId(loc.uuid));
        if (!report.marked.includes(loc.uuid)) report.marked.push(loc.uuid);
      }
      if (loc.dir === PodDir.Garbage && o.markOnly !== true) {
        await destroy(store, loc);
        report.removed.push(loc.uuid);
      }
    } catch (e) {
      report.failed.push({ uuid: found.uuid, error: e as Error });
    } finally {
      lock.release();
    }
  }
  // GC roots whose pod directory is gone (a prepare killed between the two, a directory removed by hand).
  const present = new Set((await listPodDirs(dataDir)).map((l) => l.uuid));
  for (const id of store.liveLeaseIds(now)) {
    if (id.startsWith("pod-") && !present.has(id.slice(4))) store.deleteLease(id);
  }
  return report;
}
