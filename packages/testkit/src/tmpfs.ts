// A real small file system for full-disk tests: a tmpfs of a given size (needs root and mount(8)),
// and a filler that takes every block left on it.
import { execFileSync } from "node:child_process";
import { closeSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A mounted tmpfs. */
export interface Tmpfs {
  /** The mount point (an empty temporary directory). */
  readonly dir: string;
  /** Bytes an unprivileged writer can still allocate on it. */
  free(): number;
  /** `mount -o remount,OPTIONS` (e.g. `ro`). */
  remount(options: string): void;
  /** Unmounts (lazily if busy) and removes the mount point. Idempotent. */
  unmount(): Promise<void>;
}

/**
 * Mounts a tmpfs of `size` (mount's syntax: `32m`) on a new temporary directory. Resolves
 * `{ skip }` with the reason when that is not possible here (not root, mount refused), so a
 * test can skip saying why.
 */
export async function mountTmpfs(size: string): Promise<Tmpfs | { skip: string }> {
  if (process.getuid?.() !== 0) return { skip: "mounting a tmpfs needs root" };
  const dir = await mkdtemp(join(tmpdir(), "rkt-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e);
    return { skip: `mount -t tmpfs refused: ${why}` };
  }
  let mounted = true;
  return {
    dir,
    free: () => {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    },
    remount: (options) => {
      execFileSync("mount", ["-o", `remount,${options}`, dir], { stdio: "pipe" });
    },
    unmount: async () => {
      if (mounted) {
        mounted = false;
        try {
          execFileSync("umount", [dir], { stdio: "pipe" });
        } catch {
          execFileSync("umount", ["-l", dir], { stdio: "pipe" });
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Writes `file` until the file system holding it has only `leave` bytes free (default 0: until
 * it refuses another byte, ENOSPC), then returns the bytes written and a function that deletes
 * the file.
 */
export function fillDisk(
  file: string,
  o: { leave?: number | undefined } = {},
): { bytes: number; remove: () => void } {
  const free = (): number => {
    const s = statfsSync(file);
    return s.bavail * s.bsize;
  };
  const fd = openSync(file, "w");
  let bytes = 0;
  try {
    // Large writes first, then single pages and bytes, so nothing is left over.
    for (const size of [1 << 20, 4096, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        const room = free() - (o.leave ?? 0);
        if (room <= 0) break;
        try {
          bytes += writeSync(fd, chunk, 0, Math.min(size, room));
        } catch (e) {
          if ((e as { code?: string }).code === "ENOSPC") break;
          throw e;
        }
        if (room < size) break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { bytes, remove: () => rmSync(file, { force: true }) };
}
