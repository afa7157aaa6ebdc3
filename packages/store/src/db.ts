// The SQLite index: opened in WAL mode with a busy timeout, schema versioned by `user_version`
// and migrated in one IMMEDIATE transaction so concurrent openers serialise and run it once.
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import { diskFull } from "./free-space.js";
import { ioError } from "./internal/fs-util.js";

/** The better-sqlite3 handle type, re-exported for the package's modules. */
export type IndexDb = Database.Database;

// Migration 1: the whole schema. Times are integer milliseconds since the epoch.
const migration1 = `
CREATE TABLE images (
  id TEXT PRIMARY KEY,                  -- "sha512-<64 hex>" (ACI) or "sha256:<hex>" manifest digest (OCI)
  kind TEXT NOT NULL CHECK (kind IN ('aci', 'oci')),
  name TEXT NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',    -- JSON object; ACI manifest labels (version, os, arch, ...)
  manifest_digest TEXT NOT NULL,        -- ACI: sha512:<128 hex> of the archive blob; OCI: = id
  config_digest TEXT,                   -- OCI only
  manifest BLOB,                        -- ACI: the manifest bytes as found in the archive; OCI: NULL (it is a blob)
  size INTEGER NOT NULL,                -- ACI: archive bytes; OCI: manifest + config + layer bytes
  import_time INTEGER NOT NULL,
  last_used INTEGER NOT NULL,
  latest INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX images_name ON images (name, latest, import_time);
CREATE INDEX images_import_time ON images (import_time);
CREATE INDEX images_last_used ON images (last_used);
CREATE INDEX images_size ON images (size);

CREATE TABLE blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  media_type TEXT,
  created INTEGER NOT NULL
);

CREATE TABLE image_blobs (
  image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  digest TEXT NOT NULL REFERENCES blobs (digest),   -- RESTRICT: a needed blob row cannot be deleted
  role TEXT NOT NULL CHECK (role IN ('aci', 'manifest', 'config', 'layer')),
  position INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (image_id, role, position)
);
CREATE INDEX image_blobs_digest ON image_blobs (digest);

CREATE TABLE refs (
  name TEXT NOT NULL,
  tag TEXT NOT NULL,
  image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  updated INTEGER NOT NULL,
  PRIMARY KEY (name, tag)
);
CREATE INDEX refs_image ON refs (image_id);

CREATE TABLE remotes (
  url TEXT PRIMARY KEY,
  etag TEXT,
  max_age INTEGER,
  download_time INTEGER NOT NULL,
  manifest_digest TEXT,
  image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  sig_url TEXT
);
CREATE INDEX remotes_image ON remotes (image_id);

CREATE TABLE layers (
  digest TEXT PRIMARY KEY,              -- compressed blob digest
  diff_id TEXT NOT NULL                 -- sha256 of the uncompressed tar
);
CREATE INDEX layers_diff_id ON layers (diff_id);

CREATE TABLE trees (
  id TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  size INTEGER NOT NULL DEFAULT 0,      -- per tree, not per image (rkt #2968)
  created INTEGER NOT NULL,
  last_used INTEGER NOT NULL
);
CREATE INDEX trees_image ON trees (image_id);

-- GC roots and leases. A row with a pid belongs to a running process and dies with it; a row
-- without one (a pod, an explicit lease) lives until expires_at (NULL: until deleted).
CREATE TABLE leases (
  id TEXT PRIMARY KEY,
  pid INTEGER,
  start_time INTEGER,
  expires_at INTEGER,
  created INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE lease_refs (
  lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('image', 'blob', 'tree')),
  ref TEXT NOT NULL,
  PRIMARY KEY (lease_id, kind, ref)
);
CREATE INDEX lease_refs_ref ON lease_refs (kind, ref);

-- Inter-process locks (see locks.ts): the holder is (pid, start_time); a dead holder's row is taken over.
CREATE TABLE locks (
  key TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  pid INTEGER NOT NULL,
  start_time INTEGER NOT NULL,
  acquired INTEGER NOT NULL
);
`;

/** Schema migrations; migration i (1-based) brings user_version from i-1 to i. Append only. */
const migrations: readonly string[] = [migration1];

/** The schema version this code writes. */
export const schemaVersion = migrations.length;

/**
 * Opens (creating if needed) the index at `path` and migrates it. RKT_IO naming the path when it
 * cannot be opened or written; RKT_INTERNAL when the index is newer than this code.
 */
export function openIndex(path: string): IndexDb {
  let db: IndexDb | undefined;
  try {
    db = new Database(path, { timeout: 10_000 });
    // WAL lets readers proceed during a write; FULL makes each commit durable, which the crash
    // ordering needs: a row deletion must be on disk before the blob it named is unlinked.
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    const current = db.pragma("user_version", { simple: true }) as number;
    if (current > schemaVersion) {
      throw new RktError(
        ErrorCode.Internal,
        `store index ${path}: schema version ${current} is newer than this rkt supports (${schemaVersion})`,
      );
    }
    if (current < schemaVersion) migrate(db);
    return db;
  } catch (e) {
    db?.close();
    // SQLite reports a -shm file it cannot extend as an I/O error (SQLITE_IOERR_SHMSIZE).
    if (!isRktError(e) && diskFull(dirname(path))) {
      throw new RktError(ErrorCode.Io, `store index ${path}: no space left on device`, { cause: e });
    }
    throw ioError(`store index ${path}`, e);
  }
}

/**
 * Runs `fn` (one or more autocommit writes) without waiting for the disk: for rows that die with
 * this process anyway (locks, process leases), whose loss in a power failure changes nothing,
 * since their holder is then dead too. SQLite stays consistent (WAL, synchronous=NORMAL), and the
 * next FULL commit makes them durable with it. Inside a transaction `fn` just runs.
 */
export function relaxed<T>(db: IndexDb, fn: () => T): T {
  if (db.inTransaction) return fn();
  db.pragma("synchronous = NORMAL");
  try {
    return fn();
  } finally {
    db.pragma("synchronous = FULL");
  }
}

function migrate(db: IndexDb): void {
  const run = db.transaction(() => {
    // Re-read inside the write transaction: another process may have migrated meanwhile.
    const v = db.pragma("user_version", { simple: true }) as number;
    for (let i = v; i < migrations.length; i++) db.exec(migrations[i]!);
    if (v < migrations.length) db.pragma(`user_version = ${migrations.length}`);
  });
  run.immediate();
}
