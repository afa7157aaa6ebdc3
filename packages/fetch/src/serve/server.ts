// `rkt image serve`: the local store over the read-only OCI distribution API (node:http or
// node:https), so that neighbouring nodes can list this one as a registries.conf mirror.
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { open, type FileHandle } from "node:fs/promises";
import {
  ErrorCode,
  MediaType,
  RktError,
  isRktError,
  maxManifestBytes,
  parseDigest,
  type Digest,
} from "@rkt/oci";
import { readBlobLimited, type ImageRecord, type LocalStore } from "@rkt/store";
import { StoreRepositories, pageOf } from "./repositories.js";
import { maxPage, parseRange, parseRoute, type RegistryErrorCode, type Route } from "./routes.js";

/** Where to listen: `HOST:PORT` (`[::1]:PORT` for IPv6; port 0 picks a free one). */
export type ListenAddress = string | { readonly host: string; readonly port: number };

/** Options of {@link serveStore}. */
export interface ServeOptions {
  listen: ListenAddress;
  /** PEM certificate chain and key: serve HTTPS instead of plain HTTP. */
  tls?: { readonly cert: string | Buffer; readonly key: string | Buffer } | undefined;
  /** Closes the server when it fires. */
  signal?: AbortSignal | undefined;
  /** Called with one access-log line per finished request. */
  log?: ((line: string) => void) | undefined;
}

/** A running server. */
export interface StoreServer {
  /** `HOST:PORT` as bound (the actual port when 0 was asked for); the registry part of refs. */
  readonly address: string;
  /** `http://HOST:PORT` or `https://…`. */
  readonly url: string;
  /** Stops accepting, ends every open connection (streams in flight are cut). Idempotent. */
  close(): Promise<void>;
}

/** Parses `HOST:PORT` / `[V6]:PORT`. RKT_INVALID_ARGUMENT otherwise. Pure. */
export function parseListenAddress(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(s);
  const port = Number(m?.[3]);
  if (m === null || port > 65535)
    throw new RktError(
      ErrorCode.InvalidArgument,
      `invalid listen address ${JSON.stringify(s)}: want HOST:PORT`,
    );
  return { host: m[1] ?? m[2] ?? "", port };
}

const octetStream = "application/octet-stream";
const json = "application/json; charset=utf-8";

function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body?: string,
): void {
  const bytes = body === undefined ? undefined : Buffer.from(body);
  res.writeHead(status, {
    "Docker-Distribution-API-Version": "registry/2.0",
    ...(bytes === undefined ? {} : { "Content-Length": bytes.length }),
    ...headers,
  });
  // A HEAD response carries the GET's headers and no body (node drops a body written to one).
  res.end(res.req.method === "HEAD" ? undefined : bytes);
}

function sendError(res: ServerResponse, status: number, code: RegistryErrorCode, message: string): void {
  send(res, status, { "Content-Type": json }, JSON.stringify({ errors: [{ code, message }] }));
}

/**
 * Serves the OCI images of `store` read-only: `GET /v2/`, `GET|HEAD` manifests by tag or digest
 * (the stored bytes exactly), blobs with single `Range`s, tags lists with `n`/`last`, and
 * `/v2/_catalog`. Names map to stored names as {@link StoreRepositories} says (`app` finds
 * `ORIGIN/app`); a blob is served only under a name one of whose images references it. Every
 * other method is 405 `UNSUPPORTED`. Blobs stream from the store with backpressure (a reader of
 * 1 MiB per response); no lease is taken: an open blob survives GC's unlink, and a blob removed
 * between lookup and open is a 404. RKT_INVALID_ARGUMENT for a bad address; the listen error
 * (EADDRINUSE, EACCES) as RKT_IO.
 */
export async function serveStore(store: LocalStore, o: ServeOptions): Promise<StoreServer> {
  const addr = typeof o.listen === "string" ? parseListenAddress(o.listen) : o.listen;
  const repos = new StoreRepositories(store);
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const started = Date.now();
    if (o.log !== undefined) {
      const log = o.log;
      res.on("finish", () =>
        log(
          `${req.socket.remoteAddress ?? "-"} ${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`,
        ),
      );
    }
    handle(repos, store, req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, 500, "UNKNOWN", e instanceof Error ? e.message : String(e));
      else res.destroy();
    });
  };
  const server: Server =
    o.tls === undefined
      ? createHttpServer(handler)
      : createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handler);
  // Requests carry no body we read; a slow or idle client is cut instead of holding a socket.
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // a multi-GiB blob to a slow neighbour may take long
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(
        new RktError(ErrorCode.Io, `cannot listen on ${addr.host}:${addr.port}: ${e.message}`, { cause: e }),
      ),
    );
    server.listen(addr.port, addr.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  const address = `${host}:${bound.port}`;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
  o.signal?.addEventListener("abort", () => void close(), { once: true });
  if (o.signal?.aborted === true) await close();
  return { address, url: `${o.tls === undefined ? "http" : "https"}://${address}`, close };
}

async function handle(
  repos: StoreRepositories,
  store: LocalStore,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return sendError(res, 405, "UNSUPPORTED", `${req.method} is not supported: this registry is read-only`);
  }
  const route: Route = parseRoute(req.url ?? "");
  switch (route.kind) {
    case "error":
      return sendError(res, route.status, route.code, route.message);
    case "base":
      return send(res, 200, { "Content-Type": json }, "{}");
    case "catalog": {
      const page = pageOf(repos.catalog(), route, maxPage);
      return sendList(res, "/v2/_catalog", route.n, page, { repositories: page.items });
    }
    case "tags": {
      const tags = repos.tags(route.name);
      if (tags === undefined)
        return sendError(res, 404, "NAME_UNKNOWN", `repository ${route.name} not known`);
      const page = pageOf(tags, route, maxPage);
      return sendList(res, `/v2/${route.name}/tags/list`, route.n, page, {
        name: route.name,
        tags: page.items,
      });
    }
    case "manifest": {
      const img =
        route.tag !== undefined
          ? repos.byTag(route.name, route.tag)
          : repos.byDigest(route.name, route.digest!);
      if (img === undefined) return unknownManifest(repos, res, route.name, route.tag ?? route.digest!);
      return await sendManifest(store, res, img);
    }
    case "blob": {
      if (!repos.ownsBlob(route.name, route.digest))
        return sendError(
          res,
          404,
          "BLOB_UNKNOWN",
          `blob ${route.digest} unknown to repository ${route.name}`,
        );
      return await sendBlob(store, req, res, route.digest);
    }
  }
}

function unknownManifest(repos: StoreRepositories, res: ServerResponse, name: string, ref: string): void {
  if (repos.storedNames(name).length === 0)
    return sendError(res, 404, "NAME_UNKNOWN", `repository ${name} not known`);
  return sendError(res, 404, "MANIFEST_UNKNOWN", `manifest ${name}:${ref} unknown`);
}

function sendList(
  res: ServerResponse,
  path: string,
  n: number | undefined,
  page: { items: string[]; more: boolean },
  body: object,
): void {
  const headers: Record<string, string> = { "Content-Type": json };
  const last = page.items.at(-1);
  if (page.more && last !== undefined) {
    const q = new URLSearchParams({ ...(n === undefined ? {} : { n: String(n) }), last });
    headers["Link"] = `<${path}?${q.toString()}>; rel="next"`;
  }
  send(res, 200, headers, JSON.stringify(body));
}

async function sendManifest(store: LocalStore, res: ServerResponse, img: ImageRecord): Promise<void> {
  const digest = parseDigest(img.manifestDigest);
  let raw: Uint8Array;
  let mediaType: string | undefined;
  try {
    raw = await readBlobLimited(store, digest, maxManifestBytes);
    mediaType = (await store.info(digest)).labels["mediaType"];
  } catch (e) {
    // Removed (rkt image rm, gc) since the index was read.
    if (isRktError(e, ErrorCode.NotFound))
      return sendError(res, 404, "MANIFEST_UNKNOWN", `manifest ${digest} unknown`);
    throw e;
  }
  mediaType ??= mediaTypeOf(raw);
  res.writeHead(200, {
    "Docker-Distribution-API-Version": "registry/2.0",
    "Content-Type": mediaType,
    "Content-Length": raw.length,
    "Docker-Content-Digest": digest,
    ETag: `"${digest}"`,
  });
  res.end(res.req.method === "HEAD" ? undefined : raw);
}

// A store written before media types were recorded: the manifest's own field, else OCI's.
function mediaTypeOf(raw: Uint8Array): string {
  try {
    const m = (JSON.parse(Buffer.from(raw).toString("utf8")) as { mediaType?: unknown }).mediaType;
    if (typeof m === "string") return m;
  } catch {
    // fall through: not JSON, served as OCI as it was stored
  }
  return MediaType.OciManifest;
}

async function sendBlob(
  store: LocalStore,
  req: IncomingMessage,
  res: ServerResponse,
  digest: Digest,
): Promise<void> {
  // The blob's own file, opened once: its size and bytes then come from one inode, and an open
  // handle keeps the content even if GC unlinks the name meanwhile (as store.open does).
  let fh: FileHandle;
  try {
    fh = await open(store.blobFile(digest), "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      return sendError(res, 404, "BLOB_UNKNOWN", `blob ${digest} unknown`);
    throw new RktError(ErrorCode.Io, `blob ${digest}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    const range = parseRange(req.headers.range, size);
    const common = {
      "Docker-Distribution-API-Version": "registry/2.0",
      "Docker-Content-Digest": digest,
      ETag: `"${digest}"`,
      "Accept-Ranges": "bytes",
    };
    if (range.kind === "unsatisfiable") {
      res.writeHead(416, { ...common, "Content-Range": `bytes */${size}`, "Content-Type": json });
      return void res.end(
        req.method === "HEAD"
          ? undefined
          : JSON.stringify({
              errors: [{ code: "BLOB_UNKNOWN", message: `range not satisfiable for ${size} bytes` }],
            }),
      );
    }
    const start = range.kind === "partial" ? range.start : 0;
    const length = range.kind === "partial" ? range.end - range.start + 1 : size;
    const headers: Record<string, string | number> = {
      ...common,
      "Content-Type": octetStream,
      "Content-Length": length,
    };
    if (range.kind === "partial") headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
    res.writeHead(range.kind === "partial" ? 206 : 200, headers);
    if (req.method === "HEAD" || length === 0) return void res.end();
    try {
      await pump(fh, start, length, res);
      res.end();
    } catch {
      // The client went away, or the read failed mid-body: the response is cut (its length then
      // disagrees with Content-Length, which every client notices). Nothing to tell the client.
      res.destroy();
    }
  } finally {
    await fh.close();
  }
}

const chunkBytes = 1 << 20;

/**
 * Writes `length` bytes of `fh` from `start` to `res` through two reused buffers: one is read
 * while the other is being written, and a buffer is read into again only once its write has
 * drained. Memory per response is 2 MiB whatever the client's speed, and no buffer is allocated
 * per chunk (a stream's fresh 1 MiB buffers cost a third more CPU under 8 concurrent pulls).
 */
async function pump(fh: FileHandle, start: number, length: number, res: ServerResponse): Promise<void> {
  const gone = new Promise<never>((_, reject) =>
    res.once("close", () => reject(new RktError(ErrorCode.Aborted, "client went away"))),
  );
  gone.catch(() => undefined);
  const bufs = [
    Buffer.allocUnsafeSlow(Math.min(chunkBytes, length)),
    Buffer.allocUnsafeSlow(Math.min(chunkBytes, length)),
  ];
  const writes: (Promise<void> | undefined)[] = [undefined, undefined];
  let pos = start;
  let left = length;
  for (let i = 0; left > 0; i ^= 1) {
    await Promise.race([writes[i], gone]);
    const buf = bufs[i]!;
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), pos);
    if (bytesRead === 0) throw new RktError(ErrorCode.SizeMismatch, `blob ended ${left} bytes early`);
    pos += bytesRead;
    left -= bytesRead;
    writes[i] = new Promise<void>((resolve, reject) =>
      res.write(buf.subarray(0, bytesRead), (e) => (e == null ? resolve() : reject(e))),
    );
    writes[i]!.catch(() => undefined);
  }
  await Promise.race([Promise.all(writes.filter((w) => w !== undefined)), gone]);
}
