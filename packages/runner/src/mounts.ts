// Mounts a pod left on the host: found in /proc/self/mountinfo, never remembered (a killed rkt
// cannot have written down what it mounted last).
import { readFile, stat } from "node:fs/promises";
import { ErrorCode, RktError } from "@rkt/oci";
import { mountPointsOf, runTool } from "@rkt/store";

/** Mount points at or under `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const all = mountPointsOf(await readFile("/proc/self/mountinfo", "utf8").catch(() => ""));
  return [...all].filter((m) => m === dir || m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or under `dir` (a busy mount is detached lazily: its users keep it, the
 * host loses it). RKT_IO naming the mount when one cannot be removed at all.
 */
export async function unmountUnder(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) {
    await runTool("umount", [m], undefined, `unmount ${m}`).catch(() =>
      runTool("umount", ["-l", m], undefined, `unmount ${m}`),
    );
  }
  const left = await mountsUnder(dir);
  if (left.length > 0) throw new RktError(ErrorCode.Io, `cannot unmount ${left[0]}`);
}

/** RKT_NOT_FOUND unless the host source of volume `name` exists (checked at prepare and at run). */
export async function requireHostSource(name: string, source: string): Promise<void> {
  if ((await stat(source).catch(() => undefined)) === undefined)
    throw new RktError(
      ErrorCode.NotFound,
      `volume ${JSON.stringify(name)}: host source ${source} does not exist`,
    );
}
