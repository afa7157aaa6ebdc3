// The store's inter-process locks (locks.ts) for other packages: by store, not by index handle.
import { indexDb } from "./internal/index-db.js";
import * as locks from "./locks.js";
import type { LocalStore } from "./local-store.js";

/** Tries once to take `key` in `store`. Returns the handle, or the live holder's pid when busy. */
export function tryLock(store: LocalStore, key: string): locks.LockHandle | { heldBy: number } {
  return locks.tryLock(indexDb(store), key);
}

/** Takes `key` in `store`, waiting when asked (see locks.ts `acquireLock`). */
export function acquireLock(
  store: LocalStore,
  key: string,
  o: locks.AcquireOptions,
): Promise<locks.LockHandle> {
  return locks.acquireLock(indexDb(store), key, o);
}

/** True when a live process holds `key` in `store`. */
export function isLocked(store: LocalStore, key: string): boolean {
  return locks.isLocked(indexDb(store), key);
}

/** Deletes lock rows of dead holders; returns how many. */
export function clearDeadLocks(store: LocalStore): number {
  return locks.clearDeadLocks(indexDb(store));
}
