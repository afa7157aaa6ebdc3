// A full disk is survivable: the store keeps a small reserve file that cleanups (image gc, image
// rm, fsck --repair) release before they open the index, so SQLite can open (its -shm file) and
// log the row deletions (its -wal file) that must precede every unlink; and a fetch that runs out
// of space drops the partial downloads it cannot finish instead of keeping them for a resume.
import { randomBytes } from "node:crypto";
import { renameSync, rmSync, statSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StorePaths } from "./internal/paths.js";
import { errnoOf } from "./internal/fs-util.js";
import { ownedTempName } from "./internal/proc.js";

/**
 * Bytes held back for cleanups. Opening the index needs 32 KiB (-shm); removing images needs a
 * few write-ahead log frames (4 KiB each) per transaction before the first file is unlinked, and
 * removals sweep files after every batch of rows, so 1 MiB covers a store of any size.
 */
export const reserveBytes = 1 << 20;

const reserveName = "reserve";

/** True when `e` (or an error in its `cause` chain) says the disk or quota is full. */
export function isNoSpace(e: unknown): boolean {
  for (let c = e, depth = 0; c !== undefined && c !== null && depth < 8; depth++) {
    const code = errnoOf(c);
    if (code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL") return true;
    c = (c as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * True when the file system holding `dir` has less room than SQLite needs to open an index
 * (its 32 KiB -shm file) for an unprivileged writer.
 */
export function diskFull(dir: string): boolean {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize < 64 << 10;
  } catch {
    return false;
  }
}

/**
 * Puts the reserve file in place if it is missing or short. Written under a temporary name and
 * renamed, so a reserve is whole or absent; random bytes, so a compressing file system cannot
 * store it in less than its size. Best effort: on a full or read-only disk nothing is left behind.
 */
export function keepReserve(p: StorePaths): void {
  const file = join(p.cas, reserveName);
  try {
    if (statSync(file).size >= reserveBytes) return;
  } catch {
    // missing: write it
  }
  const tmp = join(p.tmp, ownedTempName("reserve"));
  try {
    writeFileSync(tmp, randomBytes(reserveBytes));
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

/** Deletes the reserve file; returns the bytes it held (0 when there was none). */
export function releaseReserve(p: StorePaths): number {
  const file = join(p.cas, reserveName);
  try {
    const size = statSync(file).size;
    rmSync(file, { force: true });
    return size;
  } catch {
    return 0;
  }
}
