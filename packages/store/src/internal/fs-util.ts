// Small file-system helpers shared by the store: directory fsync, error translation, polling.
import { open, rm } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";

/** fsync a directory so that a rename or unlink in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a file's data and metadata. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const reasons: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EIO: "input/output error",
};

/** The errno code of a Node system error, if any. */
export function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Turns an fs (or SQLite) failure into one clear RktError naming `what`; RktErrors pass through.
 * SQLite reports a full disk or read-only database with its own codes, mapped the same way.
 */
export function ioError(what: string, e: unknown): RktError {
  if (isRktError(e)) return e;
  const code = errnoOf(e);
  const sqlite: Record<string, string> = {
    SQLITE_FULL: "no space left on device",
    SQLITE_READONLY: "read-only file system",
    SQLITE_IOERR: "input/output error",
    SQLITE_CANTOPEN: "cannot open the index database",
  };
  let reason: string | undefined;
  if (code !== undefined) {
    reason =
      reasons[code] ?? sqlite[code] ?? (code.startsWith("SQLITE_IOERR") ? sqlite["SQLITE_IOERR"] : undefined);
    if (reason === undefined && code.startsWith("SQLITE_READONLY")) reason = sqlite["SQLITE_READONLY"];
  }
  const detail = reason ?? (e instanceof Error ? e.message : String(e));
  return new RktError(ErrorCode.Io, `${what}: ${detail}`, { cause: e });
}

/** Removes a path if present; never throws for a missing path. */
export async function removeQuiet(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Polls `attempt` until it returns a value, sleeping between tries with a doubling, jittered delay
 * (containerd's OpenWriter: 16 ms up to 2 s here capped at 250 ms so waiters notice quickly).
 * Never blocks the event loop between tries. RKT_ABORTED when `signal` fires.
 */
export async function pollUntil<T>(
  attempt: () => T | undefined,
  o: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined; what: string },
): Promise<T> {
  let wait = 5;
  const deadline = o.timeoutMs === undefined ? Infinity : Date.now() + o.timeoutMs;
  for (;;) {
    if (o.signal?.aborted === true) throw new RktError(ErrorCode.Aborted, `${o.what}: aborted`);
    const v = attempt();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      throw new RktError(ErrorCode.Unavailable, `${o.what}: still locked after ${o.timeoutMs}ms`, {
        temporary: true,
      });
    }
    try {
      await delay(wait / 2 + Math.random() * wait, undefined, { signal: o.signal });
    } catch {
      throw new RktError(ErrorCode.Aborted, `${o.what}: aborted`);
    }
    wait = Math.min(wait * 2, 250);
  }
}
