// Small body-less registry requests (ping, manifest and blob HEADs, token GETs, signatures)
// over node:http and node:https, which are cheap to load: a warm `rkt fetch` of an unchanged tag
// then never loads undici (~0.1 s of CommonJS compilation). Blob bodies and every request with a
// body still go through undici, and every request at all when a proxy is set (see http.ts).
// Internal to the package.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import type { SecureContext } from "node:tls";

/** Error codes of our own stall timers (undici's names, so that both transports read alike). */
export const headersTimeoutCode = "UND_ERR_HEADERS_TIMEOUT";
export const bodyTimeoutCode = "UND_ERR_BODY_TIMEOUT";

// A redirect or ignored body is read at most this far before the connection is dropped (as undici's dump).
const dumpLimitBytes = 128 * 1024;

/** A response body: a stream, plus undici's `dump()` (read and drop what is left). */
export type ResponseBody = Readable & { dump(): Promise<void> };

export interface SmallRequest {
  readonly url: URL;
  readonly method: "GET" | "HEAD";
  readonly headers: Record<string, string>;
  readonly signal?: AbortSignal | undefined;
  /** Headers, then each body chunk, must come within this long (undici's headers/body timeouts). */
  readonly stallTimeoutMs: number;
}

export interface SmallResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: ResponseBody;
}

function codeError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Keep-alive connection pools for one client, with the client's TLS settings. */
export class SmallHttp {
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;

  /**
   * `secureContext`: roots and client certificates (tls-config.ts), shared with the undici agent;
   * `maxSockets`: connections per host.
   */
  constructor(
    o: { secureContext?: SecureContext | undefined; rejectUnauthorized: boolean },
    maxSockets: number,
  ) {
    this.http = new HttpAgent({ keepAlive: true, maxSockets });
    this.https = new HttpsAgent({
      keepAlive: true,
      maxSockets,
      ...(o.secureContext === undefined ? {} : { secureContext: o.secureContext }),
      rejectUnauthorized: o.rejectUnauthorized,
    });
  }

  request(o: SmallRequest): Promise<SmallResponse> {
    return new Promise((resolve, reject) => {
      const https = o.url.protocol === "https:";
      const req = (https ? httpsRequest : httpRequest)(o.url, {
        method: o.method,
        headers: o.headers,
        agent: https ? this.https : this.http,
        signal: o.signal,
        // The socket's idle timeout, from before it connects and re-armed by every byte: a
        // connect, headers or body that stalls this long fails (undici's three timers in one).
        timeout: o.stallTimeoutMs,
      });
      let res: IncomingMessage | undefined;
      req.on("timeout", () => {
        if (res === undefined) req.destroy(codeError("Headers Timeout Error", headersTimeoutCode));
        else res.destroy(codeError("Body Timeout Error", bodyTimeoutCode));
      });
      req.once("error", (e) => reject(withSslCode(e)));
      req.once("response", (r) => {
        res = r;
        resolve({ statusCode: r.statusCode ?? 0, headers: flatHeaders(r), body: withDump(r) });
      });
      req.end();
    });
  }

  /** Drops every connection. */
  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

/**
 * A TLS failure seen on a write reaches node:https as `EPROTO` with OpenSSL's text, where undici
 * (reading) gets node's `ERR_SSL_<REASON>` code: give it that code, so that both transports
 * report (and hint at) the same thing, e.g. `ERR_SSL_WRONG_VERSION_NUMBER` from a plain-http port.
 */
function withSslCode(e: Error): Error {
  const reason = /:SSL routines:[^:]*:([a-z0-9 ]+):/.exec(e.message)?.[1];
  if ((e as { code?: unknown }).code !== "EPROTO" || reason === undefined) return e;
  return Object.assign(e, { code: `ERR_SSL_${reason.toUpperCase().replaceAll(" ", "_")}` });
}

// undici's shape: one value as a string, repeated headers as an array (node would join them).
function flatHeaders(r: IncomingMessage): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(r.headersDistinct)) out[k] = v?.length === 1 ? v[0] : v;
  return out;
}

function withDump(r: IncomingMessage): ResponseBody {
  return Object.assign(r, {
    dump: () =>
      new Promise<void>((resolve) => {
        // A complete body (every HEAD) must still be read to its end: only then does node give
        // the socket back to the pool; left unread, 8 HEADs took every socket and the 9th request
        // waited for an idle timeout (30 s).
        if (r.readableEnded || r.destroyed) return resolve();
        let n = 0;
        r.on("data", (c: Buffer) => {
          n += c.length;
          if (n > dumpLimitBytes) r.destroy();
        });
        r.once("error", () => undefined);
        r.once("end", resolve);
        r.once("close", resolve);
        r.resume();
      }),
  });
}
