// Where pods live, as rkt keeps them: `<dir>/pods/<state dir>/<uuid>`. A pod moves between state
// directories by rename (atomic); who holds it is the store lock `pod:<uuid>`, held by the rkt
// process preparing or running it and gone the instant that process dies.
import { mkdir, readdir, rename, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";

/** rkt's pod state directories. */
export const PodDir = {
  Embryo: "embryo",
  Prepare: "prepare",
  Prepared: "prepared",
  Run: "run",
  ExitedGarbage: "exited-garbage",
  Garbage: "garbage",
} as const;
export type PodDir = (typeof PodDir)[keyof typeof PodDir];

export const podDirs: readonly PodDir[] = Object.values(PodDir);

/** `<dir>/pods`. */
export function podsRoot(dataDir: string): string {
  return join(dataDir, "pods");
}

/** `<dir>/pods/<state>/<uuid>`. */
export function podPath(dataDir: string, state: PodDir, uuid: string): string {
  return join(podsRoot(dataDir), state, uuid);
}

/** The lock a pod's preparer or runner holds. */
export function podLockKey(uuid: string): string {
  return `pod:${uuid}`;
}

/** One pod directory found on disk. */
export interface PodLocation {
  readonly uuid: string;
  readonly dir: PodDir;
  readonly path: string;
  /** When it entered this state directory (its mtime: rename keeps it, so set on each move). */
  readonly since: number;
}

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every pod on disk, in `dirs` (default all). */
export async function listPodDirs(
  dataDir: string,
  dirs: readonly PodDir[] = podDirs,
): Promise<PodLocation[]> {
  const out: PodLocation[] = [];
  for (const d of dirs) {
    for (const uuid of await readdir(join(podsRoot(dataDir), d)).catch(() => [] as string[])) {
      if (!uuidRe.test(uuid)) continue;
      const path = podPath(dataDir, d, uuid);
      const st = await stat(path).catch(() => undefined);
      if (st !== undefined) out.push({ uuid, dir: d, path, since: st.mtimeMs });
    }
  }
  return out;
}

/**
 * Resolves a UUID or a unique prefix of one (rkt: any prefix, the dashes optional) to a pod.
 * RKT_NOT_FOUND `no matches found for "<p>"`, RKT_AMBIGUOUS `ambiguous uuid, N matches`.
 */
export async function findPod(dataDir: string, prefix: string): Promise<PodLocation> {
  const want = prefix.toLowerCase().replace(/-/g, "");
  if (want === "" || !/^[0-9a-f]+$/.test(want))
    throw new RktError(ErrorCode.InvalidArgument, `invalid UUID ${JSON.stringify(prefix)}`);
  const all = await listPodDirs(dataDir);
  const hits = new Map<string, PodLocation>();
  for (const p of all) if (p.uuid.replace(/-/g, "").startsWith(want)) hits.set(p.uuid, p);
  if (hits.size === 0)
    throw new RktError(ErrorCode.NotFound, `no matches found for ${JSON.stringify(prefix)}`);
  if (hits.size > 1) throw new RktError(ErrorCode.Ambiguous, `ambiguous uuid, ${hits.size} matches`);
  return [...hits.values()][0]!;
}

/** Moves a pod to another state directory (its mtime becomes now: the time it entered it). */
export async function movePod(dataDir: string, from: PodLocation, to: PodDir): Promise<PodLocation> {
  const path = podPath(dataDir, to, from.uuid);
  await mkdir(join(podsRoot(dataDir), to), { recursive: true, mode: 0o750 });
  await rename(from.path, path);
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
  return { uuid: from.uuid, dir: to, path, since: now.getTime() };
}
