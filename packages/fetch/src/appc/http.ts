// The HTTP client of appc fetches (discovery pages, ACIs, signatures), as rkt's httpops.go:
// TLS verified against the machine's CAs unless `--insecure-options=tls`, at most 10 redirects,
// never from https to http unless `--insecure-options=http`, and `auth.d` headers only over
// https to the very host they are configured for (re-decided on every hop, so a redirect to
// another host or to http carries none).
import type { Readable } from "node:stream";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { Agent, Dispatcher } from "undici";
import { undici } from "../undici.js";
import { machineCaCertificates } from "../pubkey.js";
import { discard, maxRedirects, networkError } from "../registry/http.js";
import { authorizationFor, type AppcAuthMap } from "./auth.js";

/** Options of {@link AppcHttpClient}. */
export interface AppcHttpOptions {
  /** `--insecure-options=http`: plain-HTTP discovery and redirects from https to http. */
  readonly insecureHttp?: boolean | undefined;
  /** `--insecure-options=tls`: accept any certificate. */
  readonly insecureTls?: boolean | undefined;
  /** `Authorization` per host, from `auth.d` ({@link readAppcAuth}). */
  readonly auth?: AppcAuthMap | undefined;
  /** Environment for `SSL_CERT_FILE` / `NODE_EXTRA_CA_CERTS` (see `machineCaCertificates`). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Bring your own dispatcher; default an Agent trusting the machine's CAs. */
  readonly dispatcher?: Dispatcher | undefined;
  /** No byte for this long fails a request (a stalled server); default 60 s. */
  readonly stallTimeoutMs?: number | undefined;
}

/** A response after redirects; the caller must consume the body or pass it to {@link discard}. */
export interface AppcResponse {
  /** The URL that answered (after redirects). */
  readonly url: URL;
  readonly status: number;
  header(name: string): string | undefined;
  readonly body: Readable;
}

const connectTimeoutMs = 20_000; // rkt's dial timeout

/** One client per fetch command: connections are reused across discovery, signature and ACI. */
export class AppcHttpClient {
  private readonly o: AppcHttpOptions;
  private readonly dispatcher: Dispatcher;
  private readonly own: Agent | undefined;

  constructor(o: AppcHttpOptions = {}) {
    this.o = o;
    const stall = o.stallTimeoutMs ?? 60_000;
    this.own =
      o.dispatcher === undefined
        ? new (undici().Agent)({
            connect: {
              ca: machineCaCertificates(o.env ?? process.env),
              rejectUnauthorized: o.insecureTls !== true,
              timeout: connectTimeoutMs,
            },
            headersTimeout: stall,
            bodyTimeout: stall,
          })
        : undefined;
    this.dispatcher = o.dispatcher ?? this.own!;
  }

  /** True when plain-HTTP discovery is allowed. */
  get insecureHttp(): boolean {
    return this.o.insecureHttp === true;
  }

  /**
   * Sends `method` to `url` with `headers`, following up to 10 redirects (RKT_IO `<url>: too many
   * redirects`; a redirect from https to http without `insecureHttp`: RKT_INVALID_ARGUMENT).
   * Any status is returned; transport failures are RKT_IO naming the URL (RKT_ABORTED on
   * `signal`).
   */
  async request(
    url: string,
    o: {
      method?: "GET" | "HEAD" | undefined;
      headers?: Readonly<Record<string, string>> | undefined;
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<AppcResponse> {
    let u = new URL(url);
    for (let hop = 0; ; hop++) {
      if (u.protocol !== "https:" && u.protocol !== "http:") {
        throw new RktError(ErrorCode.InvalidArgument, `${url}: unsupported URL ${u.href}`);
      }
      const headers: Record<string, string> = { "user-agent": "rkt", accept: "*/*", ...o.headers };
      const authorization = authorizationFor(this.o.auth ?? new Map(), u);
      if (authorization !== undefined) headers["authorization"] = authorization;
      let res: Dispatcher.ResponseData;
      try {
        res = await this.dispatcher.request({
          origin: u.origin,
          path: `${u.pathname}${u.search}`,
          method: o.method ?? "GET",
          headers,
          signal: o.signal,
        });
      } catch (e) {
        throw transportError(e, u, o.signal);
      }
      const status = res.statusCode;
      const location = first(res.headers["location"]);
      if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
        discard(res.body);
        if (hop >= maxRedirects) throw new RktError(ErrorCode.Io, `${url}: too many redirects`);
        const next = new URL(location, u);
        if (u.protocol === "https:" && next.protocol === "http:" && !this.insecureHttp) {
          throw new RktError(
            ErrorCode.InvalidArgument,
            `${url}: redirected to ${next.href}: plain http needs --insecure-options=http`,
          );
        }
        u = next;
        continue;
      }
      const h = res.headers;
      return { url: u, status, header: (name) => first(h[name.toLowerCase()]), body: res.body };
    }
  }

  /** Closes the connections this client opened (not a dispatcher it was given). */
  async close(): Promise<void> {
    await this.own?.close();
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A transport failure as RKT_IO (RKT_ABORTED on abort) naming the URL; RktErrors pass. */
export function transportError(e: unknown, u: URL, signal: AbortSignal | undefined): RktError {
  if (isRktError(e)) return e;
  const r = networkError(e, u.href, signal);
  return r.code === ErrorCode.Aborted
    ? r
    : new RktError(ErrorCode.Io, r.message, { cause: e, temporary: r.temporary });
}
