// Access to an ingest's files and a remote's cache fields for transports that keep a download
// as it was served (appc ACIs): the bytes stay in a resumable ingest while the import re-reads
// them, and are never committed under their own digest.
import { join } from "node:path";
import { ingestDir } from "./internal/paths.js";
import type { LocalStore } from "./local-store.js";
import { indexDb } from "./internal/index-db.js";

/**
 * The directory of the ingest named `ref` and its `data` file (which may not exist yet). Only
 * the holder of the ingest's writer may read `data` or add files to `dir`; extra files there go
 * with the ingest when it is committed or aborted. Pure.
 */
export function ingestPaths(store: LocalStore, ref: string): { readonly dir: string; readonly data: string } {
  const dir = ingestDir(store.paths, ref);
  return { dir, data: join(dir, "data") };
}

/**
 * Records that the remote `url` was revalidated at `now` (an HTTP 304): its download time, and
 * its ETag and max-age when the answer carried them. Returns false when no row exists.
 */
export function refreshRemote(
  store: LocalStore,
  url: string,
  o: { etag?: string | undefined; maxAge?: number | undefined; now?: number | undefined },
): boolean {
  const r = indexDb(store)
    .prepare(
      "UPDATE remotes SET download_time = ?, etag = COALESCE(?, etag), max_age = COALESCE(?, max_age) WHERE url = ?",
    )
    .run(o.now ?? Date.now(), o.etag ?? null, o.maxAge ?? null, url);
  return r.changes > 0;
}
