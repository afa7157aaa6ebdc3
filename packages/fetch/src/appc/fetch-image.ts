// `rkt fetch` for appc images: by name (discovery) or by http(s) URL, under rkt's pull policies,
// with the signature downloaded first (and the 202 "defer" protocol), HTTP caching recorded in
// the store's remotes, resumable downloads, and dependencies fetched breadth-first.
// (rkt/image/{fetcher,namefetcher,httpfetcher,asc,httpops}.go)
import { createReadStream } from "node:fs";
import { PassThrough, Readable } from "node:stream";
import { parseAppString, parseImageManifestOrThrow, type ImageManifest } from "@rkt/appc";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import {
  catManifest,
  findImageByName,
  getImage,
  getRemote,
  importAci,
  refreshRemote,
  type ImageRecord,
  type ImportResult,
  type LocalStore,
} from "@rkt/store";
import type { TrustedKeySource } from "@rkt/trust";
import type { PullPolicy } from "../pull.js";
import { readCapped } from "../registry/auth.js";
import { discard } from "../registry/http.js";
import type { AppcAuthMap } from "./auth.js";
import { isFresh } from "./cache-control.js";
import { discoverAci } from "./discover.js";
import { downloadAci, type AciDownloaded } from "./download.js";
import { AppcHttpClient, transportError } from "./http.js";
import {
  appKey,
  ascUrlFromAciUrl,
  checkManifestIdentity,
  dependencyApps,
  formatApp,
  hostOsArch,
  withOsArchDefaults,
  type AppcApp,
} from "./identity.js";
import { checkSignerEarly, verifyAciSignature } from "./verify.js";

/** What to fetch: an ACI URL (`https://host/x.aci`) or an appc app string (`example.com/app:v1,os=linux`). */
export type AppcTarget = { readonly url: string } | { readonly app: string };

/** Options of {@link fetchAppcImage}. */
export interface FetchAppcOptions {
  /** rkt's pull policy; default `update` (rkt fetch's). */
  readonly policy?: PullPolicy | undefined;
  /** Keys to verify with; `null` is `--insecure-options=image`: nothing verified, a warning. */
  readonly keystore: TrustedKeySource | null;
  /** `--insecure-options=http|tls`. */
  readonly insecure?: { readonly http?: boolean | undefined; readonly tls?: boolean | undefined } | undefined;
  /** `Authorization` per host from `auth.d` (see `readAppcAuth`). */
  readonly auth?: AppcAuthMap | undefined;
  /** Environment for the CA bundle (`SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Discovery servers' port (appc's test hook); default 443 / 80. */
  readonly discoveryPort?: number | undefined;
  /** No byte for this long fails a request (a stalled server); default 60 s. */
  readonly stallTimeoutMs?: number | undefined;
  /**
   * rkt's `--signature FILE`: the detached signature of the image asked for (not of its
   * dependencies), used instead of downloading one.
   */
  readonly signature?: Uint8Array | undefined;
  /** Fetch the dependencies of the image too (default true). */
  readonly dependencies?: boolean | undefined;
  /** `os`/`arch` defaults for names; default the host's. */
  readonly host?: { readonly os: string; readonly arch: string } | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Informational lines (rkt's `image: ` logger), without the prefix. */
  readonly onInfo?: ((message: string) => void) | undefined;
  /** Warnings (rkt's `image: ` logger), without the prefix. */
  readonly onWarning?: ((message: string) => void) | undefined;
  /** Bytes of the ACI received so far for `url`. */
  readonly onProgress?: ((p: { url: string; bytes: number; total?: number | undefined }) => void) | undefined;
  /** Extract the image asked for into its snapshot (and tree) while it is imported (`importAci`'s `render`). */
  readonly render?: boolean | undefined;
}

/** How an image was obtained. */
export type AppcSource =
  /** Found in the store without asking any server (policy, or a fresh max-age). */
  | "store"
  /** The server said the stored copy is current (304). */
  | "unchanged"
  /** Downloaded (maybe partly, when resumed) and imported. */
  | "downloaded";

/** One image fetched. */
export interface AppcImageResult {
  readonly id: string;
  readonly name: string;
  readonly source: AppcSource;
  /** The ACI URL used, when a server was asked. */
  readonly url?: string | undefined;
  /** ACI bytes received from the network. */
  readonly bytesDownloaded: number;
}

/** The image asked for, then its dependencies in the order fetched (breadth-first, each once). */
export interface AppcFetchResult extends AppcImageResult {
  readonly dependencies: readonly AppcImageResult[];
}

/** rkt's message when neither the store nor the remote yielded the image (RKT_NOT_FOUND). */
export function appcNotFetchedError(what: { url: string } | { name: string }): RktError {
  const subject =
    "url" in what ? `URL ${JSON.stringify(what.url)}` : `image name ${JSON.stringify(what.name)}`;
  return new RktError(
    ErrorCode.NotFound,
    `unable to fetch image from ${subject}: either image was not found in the store or store was disabled and fetching from remote yielded nothing or it was disabled`,
  );
}

/** What rkt prints when `--insecure-options=image` is given (rkt itself printed nothing). */
const verificationDisabled = "warning: image signature verification has been disabled";

/**
 * Fetches an appc image into `store` and, unless `dependencies: false`, its dependencies:
 * breadth-first over `manifest.dependencies`, each (name + labels) once, by name through the
 * same discovery and policy (rkt ignores a dependency's imageID when fetching, and so do we).
 *
 * Per image, under `policy`: `never` uses only the store (RKT_NOT_FOUND otherwise); `new` uses
 * the store when it has the image (by name and labels, or by the remote URL); `update` asks the
 * server unless the recorded max-age is still fresh, sending the recorded ETag, so an unchanged
 * ACI downloads nothing. Names default their `os`/`arch` labels to the host's and go through
 * discovery; every discovered endpoint is tried in order until one succeeds. With a keystore the
 * signature is downloaded first (a 202 defers it until after the ACI; a second 202 fails), the
 * manifest's name and labels are checked against the name asked for (RKT_INVALID_MANIFEST), and
 * the signature is verified, all before the image becomes visible: on any refusal nothing is
 * stored. Errors: rkt's wording (`error downloading the signature file: …`, `bad HTTP status
 * code: N`, `discovery failed for …`, `image "<name>" verification failed: …`).
 */
export async function fetchAppcImage(
  store: LocalStore,
  target: AppcTarget,
  o: FetchAppcOptions,
): Promise<AppcFetchResult> {
  const http = new AppcHttpClient({
    insecureHttp: o.insecure?.http,
    insecureTls: o.insecure?.tls,
    auth: o.auth,
    env: o.env,
    stallTimeoutMs: o.stallTimeoutMs,
  });
  const host = o.host ?? hostOsArch();
  try {
    const f = new Fetcher(store, http, o);
    let top: AppcImageResult;
    const render = o.render;
    if ("url" in target) top = await f.fromUrl(target.url, { latest: false, signature: o.signature, render });
    else {
      const parsed = parseAppString(target.app);
      const app = withOsArchDefaults({ name: parsed.name, labels: parsed.labels }, host);
      // rkt marks an image fetched without a version as "latest".
      top = await f.byName(app, target.app, !parsed.labels.has("version"), o.signature, render);
    }
    const dependencies: AppcImageResult[] = [];
    if (o.dependencies !== false) {
      const seen = new Set<string>();
      const queue: AppcApp[] = dependencyApps(await storedManifest(store, top.id));
      while (queue.length > 0) {
        const dep = withOsArchDefaults(queue.shift()!, host);
        const key = appKey(dep);
        if (seen.has(key)) continue;
        seen.add(key);
        let r: AppcImageResult;
        try {
          r = await f.byName(dep, formatApp(dep), !dep.labels.has("version"));
        } catch (e) {
          if (!isRktError(e) || e.code === ErrorCode.Aborted) throw e;
          throw new RktError(e.code, `dependency ${formatApp(dep)} of ${top.name}: ${e.message}`, {
            cause: e,
          });
        }
        dependencies.push(r);
        queue.push(...dependencyApps(await storedManifest(store, r.id)));
      }
    }
    return { ...top, dependencies };
  } finally {
    await http.close();
  }
}

// The first `from` bytes of `data` (what an earlier attempt downloaded), then what `rest` brings.
async function* prefixThen(data: string, from: number, rest: Readable): AsyncGenerator<Buffer> {
  for await (const c of createReadStream(data, { highWaterMark: 1 << 20, end: from - 1 })) yield c as Buffer;
  for await (const c of rest) yield c as Buffer;
}

async function storedManifest(store: LocalStore, id: string): Promise<ImageManifest> {
  return parseImageManifestOrThrow(await catManifest(store, id), `image ${id}`).value;
}

class Fetcher {
  private readonly store: LocalStore;
  private readonly http: AppcHttpClient;
  private readonly o: FetchAppcOptions;
  private readonly policy: PullPolicy;

  constructor(store: LocalStore, http: AppcHttpClient, o: FetchAppcOptions) {
    this.store = store;
    this.http = http;
    this.o = o;
    this.policy = o.policy ?? "update";
  }

  /** An image by name: the store (policy), else discovery and each endpoint in turn. */
  async byName(
    app: AppcApp,
    typed: string,
    latest: boolean,
    signature?: Uint8Array,
    render?: boolean,
  ): Promise<AppcImageResult> {
    if (this.policy !== "update") {
      try {
        const id = findImageByName(this.store, { name: app.name, labels: Object.fromEntries(app.labels) });
        return { id, name: app.name, source: "store", bytesDownloaded: 0 };
      } catch (e) {
        if (!isRktError(e, ErrorCode.NotFound)) throw e;
        if (this.policy === "never") throw appcNotFetchedError({ name: typed });
      }
    }
    const endpoints = await discoverAci(this.http, app, {
      port: this.o.discoveryPort,
      signal: this.o.signal,
    });
    const failures: { url: string; error: unknown }[] = [];
    for (const ep of endpoints) {
      try {
        return await this.fromUrl(ep.aci, { asc: ep.asc, expect: app, latest, signature, render });
      } catch (e) {
        if (isRktError(e, ErrorCode.Aborted)) throw e;
        failures.push({ url: ep.aci, error: e });
      }
    }
    if (failures.length === 1) throw failures[0]!.error;
    const last = failures[failures.length - 1]?.error;
    throw new RktError(
      isRktError(last) ? last.code : ErrorCode.Io,
      `${typed}: every discovered endpoint failed: ${failures.map((f) => `${f.url}: ${message(f.error)}`).join("; ")}`,
      { cause: last },
    );
  }

  /** An ACI URL: the store (policy, max-age), else a conditional download, verified, imported. */
  async fromUrl(
    url: string,
    t: {
      asc?: string | undefined;
      expect?: AppcApp | undefined;
      latest: boolean;
      signature?: Uint8Array | undefined;
      render?: boolean | undefined;
    },
  ): Promise<AppcImageResult> {
    const { store, o } = this;
    let remote = getRemote(store, url);
    let stored = remote === undefined ? undefined : storedImage(store, remote.imageId);
    const fromStore = (source: AppcSource): AppcImageResult => {
      // One URL can serve several names or labels (a template without {version}): what is
      // stored for it must be what this fetch asks for, as a download would have to be.
      if (t.expect !== undefined) {
        const labels = Object.entries(stored!.labels).map(([name, value]) => ({ name, value }));
        checkManifestIdentity(t.expect, { name: stored!.name, labels });
      }
      return {
        id: remote!.imageId,
        name: stored!.name,
        source,
        url: source === "store" ? undefined : url,
        bytesDownloaded: 0,
      };
    };
    if (this.policy === "never") {
      if (stored === undefined) throw appcNotFetchedError({ url });
      return fromStore("store");
    }
    if (stored !== undefined && (this.policy === "new" || isFresh(remote!, Date.now()))) {
      if (this.policy === "update") o.onInfo?.(`image for ${url} isn't expired, not fetching.`);
      return fromStore("store");
    }
    const asc = t.asc ?? ascUrlFromAciUrl(url);
    const keystore = o.keystore;
    if (keystore === null) o.onWarning?.(verificationDisabled);
    const signature = keystore === null ? undefined : (t.signature ?? (await this.signature(asc)));
    if (signature === "deferred") o.onWarning?.("server requested deferring the signature download");
    else if (signature !== undefined && keystore !== null && t.expect !== undefined) {
      // A name fetch knows the name before the download: an untrusted signer fails before it.
      await checkSignerEarly({
        name: t.expect.name,
        signature,
        keystore,
        signal: o.signal,
        onInfo: o.onInfo,
      });
    }
    // The ACI is imported while it downloads (one pass: decompressed, hashed, stored and, with
    // render, extracted as the bytes arrive); the download's ingest keeps the bytes as served for
    // a resume and for the signature, checked once the download is complete and before the
    // import commits. The remote's ETag and max-age are known when the response starts.
    let downloaded!: (d: AciDownloaded | undefined) => void;
    const complete = new Promise<AciDownloaded | undefined>((r) => (downloaded = r));
    let importing: Promise<ImportResult> | undefined;
    let importError: unknown;
    let dl: Awaited<ReturnType<typeof downloadAci>>;
    try {
      dl = await downloadAci(store, this.http, url, {
        // Read once the download's ingest is ours: a concurrent fetch of this URL that held it
        // may have just stored the image, and then this one costs a 304.
        ifNoneMatch: () => {
          remote = getRemote(store, url);
          stored = remote === undefined ? undefined : storedImage(store, remote.imageId);
          return stored === undefined ? undefined : remote?.etag;
        },
        signal: o.signal,
        onProgress: o.onProgress === undefined ? undefined : (p) => o.onProgress!({ url, ...p }),
        tee: (from, data, entity) => {
          const side = new PassThrough({ highWaterMark: 1 << 20 });
          const src = from === 0 ? side : Readable.from(prefixThen(data, from, side), { objectMode: false });
          importing = this.importDownload(store, src, url, entity, t, asc, signature, complete);
          importing.catch((e: unknown) => {
            importError ??= e;
          });
          return { side, failed: () => importError };
        },
      });
    } catch (e) {
      downloaded(undefined);
      // A concurrent fetch of the URL stored the image meanwhile: the import used it, unread.
      const r = await importing?.catch(() => undefined);
      if (r?.cached === true)
        return { id: r.id, name: r.name, source: "downloaded", url, bytesDownloaded: 0 };
      throw importError !== undefined && isRktError(importError) ? importError : e;
    }
    if (dl.kind === "not-modified") {
      refreshRemote(store, url, { etag: dl.etag, maxAge: dl.maxAge });
      return fromStore("unchanged");
    }
    try {
      downloaded(dl);
      const r = await importing!;
      return { id: r.id, name: r.name, source: "downloaded", url, bytesDownloaded: dl.received };
    } finally {
      await dl.discard();
    }
  }

  // The import half of a download: reads `src` as it arrives; before committing, waits for the
  // download to complete (its ingest then holds the signed bytes) and admits the image.
  private importDownload(
    store: LocalStore,
    src: Readable,
    url: string,
    entity: { etag?: string | undefined; maxAge: number },
    t: {
      expect?: AppcApp | undefined;
      latest: boolean;
      signature?: Uint8Array | undefined;
      render?: boolean | undefined;
    },
    asc: string,
    first: Uint8Array | "deferred" | undefined,
    complete: Promise<AciDownloaded | undefined>,
  ): Promise<ImportResult> {
    const o = this.o;
    const keystore = o.keystore;
    let dl: AciDownloaded | undefined;
    return importAci(store, src, {
      what: url,
      latest: t.latest,
      signal: o.signal,
      render: t.render,
      remote: {
        url,
        etag: entity.etag,
        maxAge: entity.maxAge,
        sigUrl: keystore === null || t.signature !== undefined ? undefined : asc,
      },
      beforeCommit: async (info) => {
        dl = await complete;
        if (dl === undefined) throw new RktError(ErrorCode.Aborted, `${url}: the download did not complete`);
        if (t.expect !== undefined) checkManifestIdentity(t.expect, info.manifest);
        if (keystore === null) return;
        let sig = first;
        if (sig === "deferred") {
          sig = await this.signature(asc);
          if (sig === "deferred") {
            throw new RktError(
              ErrorCode.Io,
              "error downloading the signature file: server asked to defer the download again",
            );
          }
        }
        if (sig === undefined) return;
        const data = dl.data;
        // The signed bytes are the ACI as served, which the held ingest keeps unchanged.
        await verifyAciSignature({
          name: t.expect?.name ?? info.manifest.name,
          open: () => Promise.resolve(createReadStream(data, { highWaterMark: 1 << 20 })),
          signature: sig,
          keystore,
          signal: o.signal,
          onInfo: o.onInfo,
        });
      },
    });
  }

  // The detached signature, or "deferred" when the server answers 202 (rkt's Quay protocol).
  private async signature(asc: string): Promise<Uint8Array | "deferred"> {
    const what = "error downloading the signature file";
    let res;
    try {
      res = await this.http.request(asc, { signal: this.o.signal });
    } catch (e) {
      if (isRktError(e, ErrorCode.Aborted)) throw e;
      throw new RktError(ErrorCode.Io, `${what}: ${message(e)}`, { cause: e });
    }
    if (res.status === 202) {
      discard(res.body);
      return "deferred";
    }
    if (res.status !== 200) {
      discard(res.body);
      throw new RktError(ErrorCode.Io, `${what}: ${asc}: bad HTTP status code: ${res.status}`);
    }
    try {
      return await readCapped(res.body, (await import("@rkt/trust")).maxSignatureBytes, asc);
    } catch (e) {
      const t = transportError(e, res.url, this.o.signal);
      throw t.code === ErrorCode.Aborted ? t : new RktError(t.code, `${what}: ${t.message}`, { cause: e });
    }
  }
}

// The stored image, or undefined when the remote's image is gone.
function storedImage(store: LocalStore, id: string): ImageRecord | undefined {
  try {
    return getImage(store, id);
  } catch (e) {
    if (isRktError(e, ErrorCode.NotFound)) return undefined;
    throw e;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
