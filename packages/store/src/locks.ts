// Inter-process locks that a killed process never leaves behind (design choice (a)).
//
// Node has no flock(2). A lock is a row in the index's `locks` table naming its holder as
// (pid, process start time from /proc/<pid>/stat). Taking a lock is one short IMMEDIATE
// transaction: free, or held by a process that no longer exists (or whose pid was reused: the
// start time differs) -> the row is (re)written for us; held by a live process -> busy. Waiters
// poll with a jittered, doubling delay (5 ms .. 250 ms) on timers, so the event loop is never
// blocked for longer than one SQLite transaction. Chosen over per-key lock databases (b) because
// it needs no extra files, GC can list holders with one query, and a lock survives nothing but
// its holder. Limitation: all users of a store must share a pid namespace (true for rkt on a node).
import { randomUUID } from "node:crypto";
import { ErrorCode, RktError } from "@rkt/oci";
import { relaxed, type IndexDb } from "./db.js";
import { pollUntil } from "./internal/fs-util.js";
import { isAlive, selfProcess } from "./internal/proc.js";

/** A held lock; release it exactly once (later calls are no-ops). */
export interface LockHandle {
  readonly key: string;
  release(): void;
}

interface LockRow {
  owner: string;
  pid: number;
  start_time: number;
}

/** Tries once. Returns the handle, or the live holder's pid when busy. */
export function tryLock(db: IndexDb, key: string): LockHandle | { heldBy: number } {
  const me = selfProcess();
  const owner = randomUUID();
  const take = db.transaction((): number | undefined => {
    const row = db.prepare("SELECT owner, pid, start_time FROM locks WHERE key = ?").get(key) as
      LockRow | undefined;
    if (row !== undefined && isAlive(row.pid, row.start_time)) return row.pid;
    db.prepare(
      "INSERT OR REPLACE INTO locks (key, owner, pid, start_time, acquired) VALUES (?, ?, ?, ?, ?)",
    ).run(key, owner, me.pid, me.start, Date.now());
    return undefined;
  });
  // A lock row dies with its holder: no fsync for it (see relaxed).
  const heldBy = relaxed(db, () => take.immediate());
  if (heldBy !== undefined) return { heldBy };
  let released = false;
  return {
    key,
    release() {
      if (released) return;
      released = true;
      try {
        relaxed(db, () => db.prepare("DELETE FROM locks WHERE key = ? AND owner = ?").run(key, owner));
      } catch {
        // A lock row we cannot delete (read-only, full disk) dies with this process anyway.
      }
    },
  };
}

/** Options of {@link acquireLock}. */
export interface AcquireOptions {
  /** Wait while a live process holds the lock (default: fail at once with RKT_UNAVAILABLE). */
  wait?: boolean | undefined;
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
  /** Names the locked thing in errors, e.g. `ingest "blob-sha256:…"`. */
  what: string;
}

/**
 * Takes the lock `key`. RKT_UNAVAILABLE (temporary) when a live process holds it and `wait` is
 * false or the timeout passes; RKT_ABORTED on abort.
 */
export async function acquireLock(db: IndexDb, key: string, o: AcquireOptions): Promise<LockHandle> {
  const first = tryLock(db, key);
  if (!("heldBy" in first)) return first;
  if (o.wait !== true) {
    throw new RktError(ErrorCode.Unavailable, `${o.what} is locked by process ${first.heldBy}`, {
      temporary: true,
    });
  }
  return pollUntil(
    () => {
      const r = tryLock(db, key);
      return "heldBy" in r ? undefined : r;
    },
    { signal: o.signal, timeoutMs: o.timeoutMs, what: o.what },
  );
}

/** True when a live process holds `key`. */
export function isLocked(db: IndexDb, key: string): boolean {
  const row = db.prepare("SELECT pid, start_time FROM locks WHERE key = ?").get(key) as LockRow | undefined;
  return row !== undefined && isAlive(row.pid, row.start_time);
}

/**
 * Deletes lock rows whose holders are dead; returns how many. Rows recording temporaries beside
 * user paths (`temp:…`, outside-temp.ts) stay: their sweep removes the path first.
 */
export function clearDeadLocks(db: IndexDb): number {
  const rows = db
    .prepare("SELECT key, owner, pid, start_time FROM locks WHERE key NOT LIKE 'temp:%'")
    .all() as (LockRow & {
    key: string;
  })[];
  const del = db.prepare("DELETE FROM locks WHERE key = ? AND owner = ?");
  let n = 0;
  db.transaction(() => {
    for (const r of rows) {
      if (!isAlive(r.pid, r.start_time)) n += del.run(r.key, r.owner).changes;
    }
  }).immediate();
  return n;
}
