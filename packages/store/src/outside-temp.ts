// Temporaries beside user paths (`image render` / `extract` / `export` write `.<name>.rkt-<uuid>`
// next to the target, so the final rename stays within one file system). A SIGKILL between
// creating one and renaming it would leave it where nothing looks, so each is recorded in the
// store first, as a lock row `temp:<path>` held by this process: the row disappears with a
// normal end, and the next `image gc` removes the path of a row whose holder is dead.
import { rm } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type { IndexDb } from "./db.js";
import { indexDb } from "./internal/index-db.js";
import { isAlive } from "./internal/proc.js";
import type { LocalStore } from "./local-store.js";
import { tryLock } from "./locks.js";

/** The lock-key prefix of recorded temporaries (clearDeadLocks leaves these to the sweep). */
export const outsideTempPrefix = "temp:";

// Only names of our own making are ever removed by the sweep, whatever a row says.
const ourName = /^\..+\.rkt-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Runs `fn` with the temporary `path` (absolute, named `.<name>.rkt-<uuid>`) recorded in the
 * store; `fn` creates it and renames or removes it. The record goes when `fn` settles.
 */
export async function withOutsideTemp<T>(store: LocalStore, path: string, fn: () => Promise<T>): Promise<T> {
  if (!ourName.test(basename(path))) {
    throw new RktError(ErrorCode.Internal, `${path}: not a temporary name of ours`);
  }
  const lock = tryLock(indexDb(store), `${outsideTempPrefix}${resolve(path)}`);
  if ("heldBy" in lock)
    throw new RktError(ErrorCode.Internal, `${path}: already recorded by process ${lock.heldBy}`);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** Removes the recorded temporaries of dead processes (and their rows); returns their paths. */
export async function sweepOutsideTemps(db: IndexDb): Promise<string[]> {
  const rows = db.prepare("SELECT key, owner, pid, start_time FROM locks WHERE key LIKE 'temp:%'").all() as {
    key: string;
    owner: string;
    pid: number;
    start_time: number;
  }[];
  const removed: string[] = [];
  for (const r of rows) {
    if (isAlive(r.pid, r.start_time)) continue;
    const path = r.key.slice(outsideTempPrefix.length);
    if (ourName.test(basename(path))) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
    db.prepare("DELETE FROM locks WHERE key = ? AND owner = ?").run(r.key, r.owner);
  }
  return removed;
}
