// The HTTP layer under the registry client: keep-alive connection pools (node:http for small
// requests, an undici Agent, loaded on first use, for blob bodies and stream uploads; undici for
// everything when a proxy is set), the TLS settings (tls-config.ts), manual redirects with the
// credential rules, bounded retries with backoff, and the stall timeout.
// Internal to the package.
import type { Readable } from "node:stream";
import { BlockList, isIP } from "node:net";
import type { Dispatcher } from "undici";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import { undici } from "../undici.js";
import { RegistryError, maxErrorBodyBytes, parseRegistryErrors, parseRetryAfter } from "./errors.js";
import { InFlight, hostGate, throttlePause } from "./host-gate.js";
import { proxyDispatcher, proxyFromEnv } from "./proxy.js";
import { SmallHttp, bodyTimeoutCode, headersTimeoutCode, type ResponseBody } from "./small-http.js";
import { loadTlsConfig } from "./tls-config.js";

/** rkt's `--insecure-options=http|tls` for one registry. Both default to false. */
export interface InsecureOptions {
  /** Allow plain HTTP (the registry, its token realm, redirects). Credentials are still never sent over it. */
  readonly http?: boolean | undefined;
  /** Accept any TLS certificate (self-signed, wrong host, expired). */
  readonly tls?: boolean | undefined;
}

/** Bounds of the retry loop around each idempotent request (and each blob body). */
export interface RetryOptions {
  /** Attempts in total, the first included; default 5. 1 disables retries. */
  readonly maxAttempts?: number | undefined;
  /** First backoff delay; doubles each time, with jitter; default 250 ms. */
  readonly baseDelayMs?: number | undefined;
  /** Cap on one backoff delay (and on an honoured `Retry-After`); default 10 s. */
  readonly maxDelayMs?: number | undefined;
  /** Give up when retrying would end after this long since the first attempt; default 120 s. */
  readonly maxElapsedMs?: number | undefined;
}

/** Connection-level options shared by every request of a client. */
export interface HttpOptions {
  readonly insecure?: InsecureOptions | undefined;
  /**
   * Extra trusted CA certificates (PEM), added to the machine's CA bundle (or Node's bundled
   * roots where the machine has none) and to the registry's certs.d CAs.
   */
  readonly caPem?: string | readonly string[] | undefined;
  /**
   * skopeo's `--cert-dir`: a directory of `*.crt` CAs and `*.cert`/`*.key` client certificate
   * pairs for this registry, used instead of the certs.d lookup; it must exist.
   */
  readonly certDir?: string | undefined;
  /**
   * Roots holding one `<host[:port]>/` directory per registry (containers-certs.d(5)); the first
   * with the registry's directory applies. Default: `RKT_CERTS_D` (`:`-separated) if set, else
   * `~/.config/containers/certs.d`, `/etc/containers/certs.d`, `/etc/docker/certs.d`.
   */
  readonly certsDirs?: readonly string[] | undefined;
  /**
   * Where `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` (either case), `RKT_CERTS_D` and
   * `SSL_CERT_FILE` are read; default `process.env`.
   */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * Bring your own dispatcher (tests); then TLS, certs.d and proxies are the dispatcher's
   * business.
   */
  readonly dispatcher?: Dispatcher | undefined;
  readonly retry?: RetryOptions | undefined;
  /**
   * Abort (and retry) a response whose headers or next body bytes take longer than this; default
   * 30 s. undici checks these timers on a coarse tick, so expect up to ~1 s more.
   */
  readonly stallTimeoutMs?: number | undefined;
  /** Sent as `User-Agent`; default `rkt`. */
  readonly userAgent?: string | undefined;
}

/** The most redirects one request follows (as rkt's and Go's HTTP clients). */
export const maxRedirects = 10;

/**
 * Keep-alive connections a client opens to one host (each pool: node:http and undici); more
 * requests at once queue for them. Callers that fan out (a sync's comparisons) bound themselves
 * by it rather than queue thousands of requests.
 */
export const connectionsPerHost = 8;

/** The connection pools of one client. */
export interface Pools {
  /**
   * The undici dispatcher (undici is loaded on the first call) for blob bodies and uploads; for
   * every request when `small` is undefined.
   */
  dispatcher(): Dispatcher;
  /** Whether {@link dispatcher} was made (undici is loaded and connected). */
  dispatching(): boolean;
  /** node:http pools for the other requests; undefined with a proxy or a caller's dispatcher. */
  readonly small: SmallHttp | undefined;
}

export interface Resolved {
  readonly retry: Required<{ [K in keyof RetryOptions]-?: number }>;
  readonly stallTimeoutMs: number;
  readonly insecureHttp: boolean;
  /**
   * The pools, made on first use: that reads certs.d and the CA bundle and the proxy variables,
   * and fails (RKT_INVALID_ARGUMENT, RKT_IO) when they are wrong. The same answer every time.
   */
  pools(): Promise<Pools>;
  readonly userAgent: string;
  /** The turns of this client's requests to `origin` (as many as its pools have connections). */
  inFlight(origin: string): InFlight;
  /** Closes the pools this client created (not a dispatcher the caller gave). */
  close(): Promise<void>;
}

/** `tlsHost`: the registry (`host[:port]`) whose certs.d directory applies; none: no certs.d. */
export function resolveHttpOptions(o: HttpOptions, tlsHost?: string): Resolved {
  const env = o.env ?? process.env;
  let made: Promise<Pools & { close(): Promise<void> }> | undefined;
  const make = async (): Promise<Pools & { close(): Promise<void> }> => {
    if (o.dispatcher !== undefined) {
      const given = o.dispatcher;
      return {
        small: undefined,
        dispatcher: () => given,
        dispatching: () => true,
        close: () => Promise.resolve(),
      };
    }
    const proxy = proxyFromEnv(env);
    const tls = await loadTlsConfig({
      host: tlsHost,
      caPem: o.caPem === undefined ? undefined : typeof o.caPem === "string" ? [o.caPem] : o.caPem,
      insecure: o.insecure?.tls === true,
      certDir: o.certDir,
      certsDirs: o.certsDirs,
      env,
    });
    const agent = { connections: connectionsPerHost, keepAliveTimeout: 30_000 };
    let own: Dispatcher | undefined;
    // node:http has no proxy support: with a proxy, every request goes through undici.
    const small = proxy === undefined ? new SmallHttp(tls, connectionsPerHost) : undefined;
    return {
      small,
      dispatcher: () =>
        (own ??=
          proxy !== undefined
            ? proxyDispatcher(proxy, tls, agent)
            : new (undici().Agent)({
                ...agent,
                connect: {
                  rejectUnauthorized: tls.rejectUnauthorized,
                  ...(tls.secureContext === undefined ? {} : { secureContext: tls.secureContext }),
                },
              })),
      dispatching: () => own !== undefined,
      close: async () => {
        small?.close();
        await own?.close();
      },
    };
  };
  const pools = () => (made ??= make());
  const turns = new Map<string, InFlight>();
  return {
    inFlight: (origin) => {
      let t = turns.get(origin);
      if (t === undefined) turns.set(origin, (t = new InFlight(connectionsPerHost)));
      return t;
    },
    retry: {
      maxAttempts: Math.max(1, o.retry?.maxAttempts ?? 5),
      baseDelayMs: o.retry?.baseDelayMs ?? 250,
      maxDelayMs: o.retry?.maxDelayMs ?? 10_000,
      maxElapsedMs: o.retry?.maxElapsedMs ?? 120_000,
    },
    stallTimeoutMs: o.stallTimeoutMs ?? 30_000,
    insecureHttp: o.insecure?.http === true,
    pools,
    userAgent: o.userAgent ?? "rkt",
    close: async () => {
      // Pools that never got made (or failed to) hold nothing.
      if (made === undefined) return;
      const p = await made.catch(() => undefined);
      await p?.close();
    },
  };
}

export interface Response {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: ResponseBody;
  /** The URL that answered, after redirects. */
  readonly url: URL;
}

export interface SendOptions {
  readonly method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH";
  readonly url: URL;
  readonly headers: Record<string, string>;
  /** Sent only to `authOrigin` (the registry's), never to a redirect target elsewhere. */
  readonly authorization?: string | undefined;
  readonly authOrigin: string;
  /** A stream body can be sent once: a redirect that would resend it fails instead. */
  readonly body?: string | Uint8Array | Readable | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Names the request in errors (`GET 127.0.0.1:5000/v2/x/manifests/latest`). */
  readonly what: string;
  /**
   * Content a pull goes on to download blobs for (a manifest) or a blob: read through undici,
   * which the blobs need anyway. Measured: with manifests over node:http too, a cold pull's peak
   * RSS was ~25 MiB higher (~152 vs ~128 MiB) for a reason not pinned down.
   */
  readonly bulk?: boolean | undefined;
}

export function header(h: Response["headers"], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * One request, following up to {@link maxRedirects} redirects (301/302/303/307/308). The
 * `Authorization` header goes only to `authOrigin`; a redirect from https to http is refused
 * unless insecure HTTP is allowed. Redirect bodies are dumped. The caller owns the final body.
 */
export async function send(r: Resolved, o: SendOptions): Promise<Response> {
  let url = o.url;
  let method = o.method;
  let body = o.body;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { "user-agent": r.userAgent, ...o.headers };
    if (o.authorization !== undefined && url.origin === o.authOrigin)
      headers["authorization"] = o.authorization;
    // Pings, HEADs, token and signature GETs go over node:http (unless a proxy is set), so that a
    // run which sends only those (a warm fetch of an unchanged tag) never loads undici; manifests,
    // blobs and uploads use it, and so does everything once it is loaded: one pool per host, whose
    // connections the small requests reuse instead of opening their own.
    const pools = await r.pools();
    // A host that asked any request of this process to slow down is not asked again before then;
    // nor is it sent more requests at once than the pools have connections (see host-gate.ts).
    const gate = hostGate(url.origin);
    const leave = await r.inFlight(url.origin).enter(gate, o.signal);
    const small =
      pools.small !== undefined && body === undefined && !o.bulk && !pools.dispatching()
        ? pools.small
        : undefined;
    let res;
    try {
      res =
        small !== undefined && (method === "GET" || method === "HEAD")
          ? await small.request({
              url,
              method,
              headers,
              signal: o.signal,
              stallTimeoutMs: r.stallTimeoutMs,
            })
          : await pools.dispatcher().request({
              origin: url.origin,
              path: `${url.pathname}${url.search}`,
              method,
              headers,
              ...(body === undefined ? {} : { body }),
              // undici closes the connection after a HEAD by default (for servers that send a body
              // anyway); registries answer HEADs properly, and a sync's blob HEADs would otherwise
              // each open a connection (a TLS handshake each on a real registry).
              ...(method === "HEAD" ? { reset: false } : {}),
              signal: o.signal,
              headersTimeout: r.stallTimeoutMs,
              bodyTimeout: r.stallTimeoutMs,
            });
    } catch (e) {
      leave();
      throw e;
    }
    // A body read to its end, dumped or destroyed frees its connection (an error closes it too).
    if (res.body.readableEnded || res.body.destroyed) leave();
    else res.body.once("end", leave).once("close", leave);
    const status = res.statusCode;
    const pause = throttlePause(
      status,
      parseRetryAfter(header(res.headers, "retry-after")),
      Math.min(r.retry.maxDelayMs, 1000),
    );
    if (pause !== undefined) gate.pause(Math.min(pause, r.retry.maxDelayMs));
    if (![301, 302, 303, 307, 308].includes(status)) {
      return { status, headers: res.headers, body: res.body, url };
    }
    await res.body.dump();
    const location = header(res.headers, "location");
    if (location === undefined) {
      throw new RktError(ErrorCode.Registry, `${o.what}: HTTP ${status} redirect without a Location header`);
    }
    if (hop + 1 > maxRedirects) {
      throw new RktError(
        ErrorCode.Registry,
        `${o.what}: more than ${maxRedirects} redirects (last to ${redact(new URL(location, url))})`,
      );
    }
    const next = new URL(location, url);
    if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array) && status !== 303) {
      throw new RktError(ErrorCode.Registry, `${o.what}: HTTP ${status} redirect of an upload stream`);
    }
    if (next.protocol !== "https:" && next.protocol !== "http:") {
      throw new RktError(ErrorCode.Registry, `${o.what}: redirect to unsupported scheme ${next.protocol}`);
    }
    if (next.protocol === "http:" && !r.insecureHttp) {
      throw new RktError(
        ErrorCode.Registry,
        `${o.what}: refusing redirect to plain http ${redact(next)} (allow with --insecure-options=http)`,
      );
    }
    // A public registry must not send us to our own network (ggcr checkRedirectSSRF); a registry
    // that is itself on a private address (tests, an in-house mirror) may.
    if (isPrivateHost(next.hostname) && !isPrivateHost(o.url.hostname)) {
      throw new RktError(ErrorCode.Registry, `${o.what}: refusing redirect to private address ${next.host}`);
    }
    // 303, and 301/302 after POST, turn into GET (RFC 9110 §15.4).
    if (status === 303 || ((status === 301 || status === 302) && method === "POST")) {
      method = "GET";
      body = undefined;
    }
    url = next;
  }
}

/**
 * Drops a body we will not read: destroying an undici body emits an AbortError, which nobody
 * listens for once we gave up on the response, so swallow it here.
 */
export function discard(body: Readable): void {
  body.on("error", () => undefined);
  body.destroy();
}

const privateNets = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
] as const) {
  privateNets.addSubnet(net, bits, "ipv4");
}
privateNets.addAddress("::", "ipv6");
privateNets.addAddress("::1", "ipv6");
privateNets.addSubnet("fc00::", 7, "ipv6");
privateNets.addSubnet("fe80::", 10, "ipv6");

/**
 * True for loopback, private, link-local and unspecified IP literals and for `localhost`. Host
 * names are not resolved: this stops the literal-address redirects an attacker controls. Pure.
 */
export function isPrivateHost(hostname: string): boolean {
  const h = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const kind = isIP(h);
  if (kind === 4) return privateNets.check(h, "ipv4");
  if (kind === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(h)?.[1];
    return mapped !== undefined ? privateNets.check(mapped, "ipv4") : privateNets.check(h, "ipv6");
  }
  return false;
}

/** The URL without its query (storage redirects carry signatures there). */
export function redact(u: URL): string {
  return `${u.origin}${u.pathname}${u.search === "" ? "" : "?…"}`;
}

/**
 * Reads an error body (at most {@link maxErrorBodyBytes}, the rest is discarded) into a
 * {@link RegistryError}. Always consumes or destroys the body.
 */
export async function errorFrom(res: Response, what: string): Promise<RegistryError> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body as AsyncIterable<Buffer>) {
      const room = maxErrorBodyBytes - n;
      chunks.push(c.length > room ? c.subarray(0, room) : c);
      n += Math.min(c.length, room);
      if (n >= maxErrorBodyBytes) {
        discard(res.body);
        break;
      }
    }
  } catch {
    // A broken error body still leaves the status to report.
  }
  const retryAfterMs = parseRetryAfter(header(res.headers, "retry-after"));
  return new RegistryError(what, res.status, parseRegistryErrors(Buffer.concat(chunks)), { retryAfterMs });
}

const retryableNetworkCodes = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  headersTimeoutCode,
  bodyTimeoutCode,
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_CLOSED",
]);

/** True for failures where the same request may succeed later. */
export function isRetryable(e: unknown): boolean {
  if (isRktError(e)) return e.temporary;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && retryableNetworkCodes.has(code);
}

/** Turns a network-level failure into an RktError naming the request; RktErrors pass through. */
export function networkError(e: unknown, what: string, signal: AbortSignal | undefined): RktError {
  if (isRktError(e)) return e;
  if (signal?.aborted === true) return new RktError(ErrorCode.Aborted, `${what}: aborted`, { cause: e });
  const code = (e as { code?: unknown } | null)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  if (code === bodyTimeoutCode || code === headersTimeoutCode) {
    return new RktError(ErrorCode.Registry, `${what}: stalled: no data for the stall timeout (${msg})`, {
      cause: e,
      temporary: true,
    });
  }
  // undici's words for a proxy that refused a CONNECT or wants credentials.
  const proxyStatus = /^Proxy response \((\d+)\)|^Proxy Authentication Required \((\d+)\)/.exec(msg);
  if (proxyStatus !== null) {
    const status = Number(proxyStatus[1] ?? proxyStatus[2]);
    return new RktError(
      ErrorCode.Registry,
      `${what}: the proxy answered HTTP ${status} (check HTTP(S)_PROXY, the credentials in its URL, or NO_PROXY)`,
      { cause: e, temporary: status >= 500 },
    );
  }
  const h = hint(code);
  // OpenSSL's own text (library, function, source line) says nothing the code does not; drop it.
  const text = h !== "" && typeof code === "string" && /^ERR_SSL_/.test(code) ? "" : `: ${msg}`;
  return new RktError(
    ErrorCode.Registry,
    `${what}: ${typeof code === "string" ? code : "error"}${text}${h}`,
    { cause: e, temporary: isRetryable(e) },
  );
}

const certificateCodes =
  /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * True when `e` (or an error it wraps) is a certificate the client would not accept: the server
 * speaks TLS, so falling back to plain http would only meet a TLS port ("HTTP 400").
 */
export function isCertificateFailure(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x !== undefined && x !== null && depth < 5; depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string" && certificateCodes.test(code)) return true;
    x = (x as { cause?: unknown }).cause;
  }
  return false;
}

// What the user can do about common TLS failures, in rkt's terms.
function hint(code: unknown): string {
  if (typeof code !== "string") return "";
  if (certificateCodes.test(code)) {
    return " (trust its CA, e.g. in /etc/containers/certs.d/<host:port>/ca.crt, or allow with --insecure-options=tls)";
  }
  if (/WRONG_VERSION_NUMBER|^EPROTO$|HTTP_REQUEST/.test(code)) {
    return " (does it speak plain http? allow with --insecure-options=http)";
  }
  // What the network codes mean, for a reader who does not know them.
  if (code === "ECONNRESET") return " (the connection was reset)";
  if (code === "UND_ERR_SOCKET") return " (the server closed the connection in the middle of the response)";
  return "";
}

/** Tracks one operation's retry budget: attempts made and the deadline. */
export class RetryBudget {
  private attempts = 0;
  private readonly start = Date.now();
  private readonly r: Resolved;
  private readonly signal: AbortSignal | undefined;
  constructor(r: Resolved, signal: AbortSignal | undefined) {
    this.r = r;
    this.signal = signal;
  }

  /**
   * Called after a failure: resolves after the backoff when another attempt is allowed, or
   * returns false when the error is permanent or the budget is spent (count or time).
   */
  async next(e: unknown): Promise<boolean> {
    this.attempts++;
    if (!isRetryable(e) || this.signal?.aborted === true) return false;
    if (this.attempts >= this.r.retry.maxAttempts) return false;
    const { baseDelayMs, maxDelayMs, maxElapsedMs } = this.r.retry;
    const retryAfter = e instanceof RegistryError ? e.retryAfterMs : undefined;
    // Full backoff doubles per attempt; jitter in [50%, 100%] spreads clients that failed together.
    const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (this.attempts - 1)) * (0.5 + Math.random() / 2);
    const delay = retryAfter !== undefined ? Math.max(retryAfter, 0) : backoff;
    if (delay > maxDelayMs && retryAfter !== undefined) return false; // the server asks for longer than we wait
    if (Date.now() - this.start + delay > maxElapsedMs) return false;
    await sleep(delay, this.signal);
    return true;
  }

  get count(): number {
    return this.attempts;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
