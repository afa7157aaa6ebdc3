// Public entry of @rkt/store: explicit named re-exports only.
export { LocalStore } from "./local-store.js";
export type { LocalWriterOptions, LeaseOptions, LeaseKind } from "./local-store.js";
export { openIndex, schemaVersion } from "./db.js";
export type { IndexDb } from "./db.js";
export { acquireLock, tryLock, isLocked, clearDeadLocks } from "./locks.js";
export type { LockHandle, AcquireOptions } from "./locks.js";
