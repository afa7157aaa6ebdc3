// An ACI download into the store's ingest, as served (compressed or not), resumable: a broken
// download keeps its bytes and the validator (strong ETag or Last-Modified) of the response they
// came from, and the next attempt asks for the rest with `Range` + `If-Range`. The ingest is
// never committed under its own digest: the import re-reads it, then it is discarded.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { BlobWriter } from "@rkt/oci";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import { ingestPaths, sideTap, type LocalStore } from "@rkt/store";
import { discard } from "../registry/http.js";
import { parseContentRange } from "../content-range.js";
import { parseMaxAge, rangeValidator } from "./cache-control.js";
import { transportError, type AppcHttpClient, type AppcResponse } from "./http.js";

/** The server said the copy we have is current (HTTP 304). */
export interface AciNotModified {
  readonly kind: "not-modified";
  readonly etag?: string | undefined;
  readonly maxAge: number;
}

/** A complete download, held in an ingest until {@link AciDownloaded.discard}. */
export interface AciDownloaded {
  readonly kind: "downloaded";
  /** The file holding every byte as served; stable while the download is held. */
  readonly data: string;
  readonly size: number;
  /** Bytes received in this attempt (less than `size` when resumed). */
  readonly received: number;
  /** Where a resumed download started (0 when it was not resumed). */
  readonly resumedFrom: number;
  readonly etag?: string | undefined;
  readonly maxAge: number;
  /** Drops the ingest and releases it. Always call once done with `data`. */
  discard(): Promise<void>;
}

/** Options of {@link downloadAci}. */
export interface DownloadAciOptions {
  /**
   * The stored copy's ETag, sent as `If-None-Match` so an unchanged ACI costs no body; a function
   * is asked once the ingest is held (after any concurrent download of the URL finished).
   */
  readonly ifNoneMatch?: string | (() => string | undefined) | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Bytes received so far in this attempt, and the total when the server said it. */
  readonly onProgress?: ((p: { bytes: number; total?: number | undefined }) => void) | undefined;
  /**
   * Also hands the body to a consumer as it arrives (the import, so that the ACI is read once):
   * called when the body starts, with the bytes the ingest `data` already holds from an earlier
   * attempt (`from`) and the response's ETag and max-age; returns where the rest goes. A consumer that fails stops the download with
   * its error (what arrived is kept for a resume).
   */
  readonly tee?:
    | ((
        from: number,
        data: string,
        entity: { etag?: string | undefined; maxAge: number },
      ) => { side: Writable; failed: () => unknown })
    | undefined;
}

/** The ingest ref of a download of `url`. */
export function downloadRef(url: string): string {
  // Not "aci-…": GC treats those as non-resumable imports and drops them at once.
  return `appc-download:${url}`;
}

/**
 * Downloads the ACI at `url` into the store's ingest `appc-download:<url>`, resuming a partial
 * one left by an earlier attempt when the server still serves the same entity. A 304 (with
 * `ifNoneMatch`) gives `not-modified` and drops any partial; a 416 or a 200 to a range request
 * restarts from 0. Other statuses: RKT_IO `<url>: bad HTTP status code: N`. A broken body: RKT_IO naming
 * the URL, the bytes kept for the next attempt. Concurrent downloads of one URL wait for each
 * other (the ingest lock).
 */
export async function downloadAci(
  store: LocalStore,
  http: AppcHttpClient,
  url: string,
  o: DownloadAciOptions = {},
): Promise<AciNotModified | AciDownloaded> {
  const ref = downloadRef(url);
  const { dir, data } = ingestPaths(store, ref);
  const validatorFile = join(dir, "validator");
  // The ingest is never committed, so its running digest is unused: sha256 is the cheapest.
  const open = (fresh: boolean) =>
    store.writer({ ref, algorithm: "sha256", wait: true, fresh, signal: o.signal });
  let w: BlobWriter = await open(false);
  try {
    const ifNoneMatch = typeof o.ifNoneMatch === "function" ? o.ifNoneMatch() : o.ifNoneMatch;
    for (let attempt = 0; ; attempt++) {
      let kept = w.status().offset;
      const validator = kept > 0 ? await readFile(validatorFile, "utf8").catch(() => undefined) : undefined;
      if (kept > 0 && validator === undefined) {
        // Bytes of an unknown entity cannot be continued safely.
        await w.abort();
        w = await open(true);
        kept = 0;
      }
      const headers: Record<string, string> = {};
      if (ifNoneMatch !== undefined) headers["if-none-match"] = ifNoneMatch;
      if (kept > 0 && validator !== undefined) {
        headers["range"] = `bytes=${kept}-`;
        headers["if-range"] = validator;
      }
      const res = await http.request(url, { headers, signal: o.signal });
      if (res.status === 304) {
        discard(res.body);
        await w.abort();
        return {
          kind: "not-modified",
          etag: res.header("etag"),
          maxAge: parseMaxAge(res.header("cache-control")),
        };
      }
      if (res.status === 206 && kept > 0 && parseContentRange(res.header("content-range"))?.start === kept) {
        return await receive(res, w, kept, validatorFile, data, o);
      }
      if (res.status === 200) {
        // The whole entity (also the answer to a range request whose If-Range did not match).
        if (kept > 0) {
          await w.abort();
          w = await open(true);
        }
        return await receive(res, w, 0, validatorFile, data, o);
      }
      discard(res.body);
      if ((res.status === 416 || res.status === 206) && kept > 0 && attempt === 0) {
        // The server cannot continue these bytes: start over from byte 0, once.
        await w.abort();
        w = await open(true);
        continue;
      }
      throw new RktError(ErrorCode.Io, `${url}: bad HTTP status code: ${res.status}`);
    }
  } catch (e) {
    // Keep what arrived for a resume; an empty ingest is not worth keeping.
    if (w.status().offset > 0) await w.close();
    else await w.abort();
    throw isRktError(e) ? e : transportError(e, new URL(url), o.signal);
  }
}

// Streams the body into the writer, after recording the validator the bytes belong to.
async function receive(
  res: AppcResponse,
  w: BlobWriter,
  from: number,
  validatorFile: string,
  data: string,
  o: DownloadAciOptions,
): Promise<AciDownloaded> {
  const etag = res.header("etag");
  const v = rangeValidator({ etag, lastModified: res.header("last-modified") });
  if (v !== undefined) await writeFile(validatorFile, v);
  else await rm(validatorFile, { force: true });
  const length = Number(res.header("content-length") ?? NaN);
  const total = Number.isFinite(length) ? from + length : undefined;
  let received = 0;
  async function* counted(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      received += c.length;
      o.onProgress?.({ bytes: from + received, total });
      yield c;
    }
  }
  const tee = o.tee?.(from, data, { etag, maxAge: parseMaxAge(res.header("cache-control")) });
  try {
    // The writer joins network chunks itself (writev): no copy into larger buffers here.
    if (tee === undefined) await pipeline(res.body, counted, w.stream);
    else await pipeline(res.body, counted, sideTap(tee.side, tee.failed, { stop: true }), w.stream);
  } catch (e) {
    tee?.side.destroy();
    throw transportError(e, res.url, o.signal);
  }
  return {
    kind: "downloaded",
    data,
    size: w.status().offset,
    received,
    resumedFrom: from,
    etag,
    maxAge: parseMaxAge(res.header("cache-control")),
    discard: () => w.abort(),
  };
}
