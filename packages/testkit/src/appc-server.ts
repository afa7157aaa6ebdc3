// A small appc HTTP(S) server on loopback for fetch tests: discovery pages, ACIs and signatures,
// with the behaviours rkt's own aci-server had (ETag + max-age, 304, the 202 "defer" protocol,
// basic/bearer auth) plus Range/If-Range, redirects and one-off truncated bodies. Every request
// is logged so tests can assert what went over the wire.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeServerPki } from "./internal/pki.js";

/** How one path answers. */
export interface AppcRoute {
  /** The body of a 200 (or of a 206 slice). */
  readonly body?: Uint8Array | string | undefined;
  /** Status when there is no body to serve (e.g. 404, 500); default 200. */
  readonly status?: number | undefined;
  /** ETag sent (and matched against If-None-Match / If-Range); default a quoted sha256 of the body; false: none. */
  readonly etag?: string | false | undefined;
  /** Sends `Cache-Control: max-age=N`. */
  readonly maxAge?: number | undefined;
  /** Honour `Range` (with `If-Range`); default true. */
  readonly ranges?: boolean | undefined;
  /** The first full GET sends only this many bytes of the body, then cuts the connection. */
  readonly truncateOnce?: number | undefined;
  /** The first full GET sends only this many bytes of the body, then sends nothing more (a stall). */
  readonly stallOnce?: number | undefined;
  /** Answer 202 until this other path was served with a 200/206 once (rkt's "Quay mode"). */
  readonly deferUntil?: string | undefined;
  /** Answer 302 to this location (absolute, or a path on this server). */
  readonly redirect?: string | undefined;
  /** The exact `Authorization` value required; 401 otherwise. */
  readonly authorization?: string | undefined;
}

/** One request as the server saw it. */
export interface AppcRequest {
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly status: number;
  /** Body bytes written. */
  readonly bytes: number;
}

/** A running server. */
export interface AppcServer {
  /** `https://127.0.0.1:<port>` (or `http://…`). */
  readonly origin: string;
  readonly port: number;
  /** The test CA's certificate (PEM path) for https servers, for `NODE_EXTRA_CA_CERTS`. */
  readonly caCert: string | undefined;
  readonly requests: AppcRequest[];
  /** Sets the route of a path (`/x.aci`), or of a path with its query (`/app?ac-discovery=1`). */
  route(path: string, r: AppcRoute): void;
  /**
   * A discovery page whose `ac-discovery` meta tags map `prefix` to each template, and whose
   * `ac-discovery-pubkeys` tags (if any) give `pubkeys` for it.
   */
  discovery(path: string, prefix: string, templates: readonly string[], pubkeys?: readonly string[]): void;
  close(): Promise<void>;
}

/** Options of {@link startAppcServer}. */
export interface AppcServerOptions {
  /** https with a fresh test CA (default) or plain http. */
  readonly tls?: boolean | undefined;
  /** Reuse the CA and certificate of another server (its `caCert` stays valid). */
  readonly pkiFrom?: AppcServer | undefined;
}

const pkiDirs = new Map<string, string>();

/**
 * Starts the server on a free port of 127.0.0.1. For https, a throwaway CA and a certificate for
 * 127.0.0.1/localhost are made with openssl; trust it with `caCert`, never by disabling checks.
 */
export async function startAppcServer(o: AppcServerOptions = {}): Promise<AppcServer> {
  const tls = o.tls !== false;
  const routes = new Map<string, AppcRoute>();
  const served = new Set<string>();
  const truncated = new Set<string>();
  const requests: AppcRequest[] = [];
  let pkiDir: string | undefined;
  let caCert: string | undefined;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? "/";
    const pathname = path.split("?")[0] ?? "/";
    const r = routes.get(path) ?? routes.get(pathname);
    let bytes = 0;
    const log = (status: number): void => {
      requests.push({ method: req.method ?? "GET", path, headers: req.headers, status, bytes });
    };
    const end = (status: number, headers: Record<string, string> = {}, body?: Buffer): void => {
      res.writeHead(
        status,
        body === undefined ? headers : { ...headers, "content-length": String(body.length) },
      );
      bytes = body?.length ?? 0;
      log(status);
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (r === undefined) return end(404);
    if (r.authorization !== undefined && req.headers["authorization"] !== r.authorization) return end(401);
    if (r.redirect !== undefined) return end(302, { location: r.redirect });
    if (r.deferUntil !== undefined && !served.has(r.deferUntil)) return end(202);
    if (r.body === undefined) return end(r.status ?? 200);
    const body = Buffer.from(r.body);
    const etag =
      r.etag === false
        ? undefined
        : (r.etag ?? `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`);
    const headers: Record<string, string> = {};
    if (etag !== undefined) headers["etag"] = etag;
    if (r.maxAge !== undefined) headers["cache-control"] = `max-age=${r.maxAge}`;
    if (r.ranges !== false) headers["accept-ranges"] = "bytes";
    if (etag !== undefined && req.headers["if-none-match"] === etag) return end(304, headers);
    const range = /^bytes=(\d+)-$/.exec(String(req.headers["range"] ?? ""));
    const ifRange = req.headers["if-range"];
    if (r.ranges !== false && range !== null && (ifRange === undefined || ifRange === etag)) {
      const start = Number(range[1]);
      if (start >= body.length) return end(416, { "content-range": `bytes */${body.length}` });
      served.add(pathname);
      return end(
        206,
        { ...headers, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` },
        body.subarray(start),
      );
    }
    const partial = r.truncateOnce ?? r.stallOnce;
    if (partial !== undefined && !truncated.has(pathname) && req.method !== "HEAD") {
      truncated.add(pathname);
      res.writeHead(200, { ...headers, "content-length": String(body.length) });
      bytes = partial;
      log(200);
      // Send part of the promised body, then cut the connection once it is on the wire (or,
      // for a stall, keep it open and silent until the client gives up or the server closes).
      res.write(body.subarray(0, partial), () => {
        if (r.truncateOnce !== undefined) setTimeout(() => req.socket.destroy(), 50);
      });
      return;
    }
    served.add(pathname);
    end(200, headers, body);
  };

  const server = tls
    ? await (async () => {
        const from = o.pkiFrom?.caCert;
        pkiDir = from === undefined ? await mkdtemp(join(tmpdir(), "rkt-appc-pki-")) : pkiDirs.get(from);
        if (pkiDir === undefined) throw new Error("pkiFrom: not a testkit https server");
        const pki =
          from === undefined
            ? await makeServerPki(pkiDir)
            : {
                caCert: from,
                serverCert: join(pkiDir, "server.crt"),
                serverKey: join(pkiDir, "server.key"),
              };
        caCert = pki.caCert;
        pkiDirs.set(caCert, pkiDir);
        return createHttpsServer(
          { cert: await readFile(pki.serverCert), key: await readFile(pki.serverKey) },
          handle,
        );
      })()
    : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const ownsPki = tls && o.pkiFrom === undefined;
  return {
    origin: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    caCert,
    requests,
    route: (path, r) => void routes.set(path, r),
    discovery(path, prefix, templates, pubkeys = []) {
      const metas = [
        ...templates.map((t) => `<meta name="ac-discovery" content="${prefix} ${t}">`),
        ...pubkeys.map((k) => `<meta name="ac-discovery-pubkeys" content="${prefix} ${k}">`),
      ].join("\n    ");
      routes.set(`${path}?ac-discovery=1`, {
        body: `<!DOCTYPE html>\n<html>\n  <head>\n    ${metas}\n  </head>\n</html>\n`,
        etag: false,
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownsPki && pkiDir !== undefined) {
        pkiDirs.delete(caCert!);
        await rm(pkiDir, { recursive: true, force: true });
      }
    },
  };
}
