// Public keys for `rkt trust` (rkt/pubkey/pubkey.go): from a local file, an https (or, when
// allowed, http) URL, or found by appc pubkey discovery (`ac-discovery-pubkeys` meta tags served
// at `https://<prefix>?ac-discovery=1`). Only fetching lives here; parsing and storing keys is
// @rkt/trust's job, prompting the CLI's.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { readCapped } from "./read-capped.js";
import { rootCertificates } from "node:tls";
import { discoverEndpoints, discoveryPrefixes, discoveryUrl } from "@rkt/appc";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import type { Dispatcher } from "undici";
import { undici } from "./undici.js";
import { caBundlePaths } from "./registry/tls-config.js";

/** How a key location is read. */
export type PubkeyLocationKind = "file" | "https" | "http";

/** Options of {@link readPubkey} and {@link discoverPubkeys}. */
export interface PubkeyFetchOptions {
  /** rkt's `--insecure-allow-http`: allow `http://` key URLs and the plain-HTTP discovery retry. */
  readonly insecureAllowHttp?: boolean | undefined;
  /** Environment for `SSL_CERT_FILE` and `NODE_EXTRA_CA_CERTS` (see {@link machineCaCertificates}). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Directory relative key paths are resolved against; default `process.cwd()`. */
  readonly cwd?: string | undefined;
  /** Bring your own dispatcher (tests, proxies); default an Agent trusting the machine's CAs. */
  readonly dispatcher?: Dispatcher | undefined;
  /** Whole-request budget; default rkt's 2 minutes. */
  readonly timeoutMs?: number | undefined;
  /** Discovery only: the port of the discovery server (appc's test hook); default 443/80. */
  readonly port?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** A key as read from its location, not yet parsed. */
export interface FetchedPubkey {
  readonly location: string;
  readonly kind: PubkeyLocationKind;
  readonly bytes: Uint8Array;
}

/** rkt's pubkey client: 2 minutes for the whole request. */
export const pubkeyTimeoutMs = 120_000;
/** Largest key file or discovery document read (keys are a few KiB; this bounds a hostile server). */
export const maxPubkeyBytes = 1 << 20;
const connectTimeoutMs = 30_000;
const maxRedirects = 10;

/**
 * The CA certificates an https key download trusts: the machine's store as Go finds it
 * (`SSL_CERT_FILE`, else the first system bundle that exists), Node's bundled roots, and the
 * certificates in `NODE_EXTRA_CA_CERTS`. rkt (Go) trusted the machine's store; Node by default
 * trusts only its own bundle, so an administrator's private CA would otherwise be ignored. Reads
 * files; missing ones are skipped.
 */
export function machineCaCertificates(env: Readonly<Record<string, string | undefined>>): string[] {
  const out: string[] = [...rootCertificates];
  const read = (p: string): string | undefined => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return undefined;
    }
  };
  const machine = caBundlePaths(env)
    .map(read)
    .find((t) => t !== undefined);
  if (machine !== undefined) out.push(machine);
  const extra = env["NODE_EXTRA_CA_CERTS"];
  if (extra !== undefined && extra !== "") {
    const t = read(extra);
    if (t !== undefined) out.push(t);
  }
  return out;
}

/**
 * Classifies a `rkt trust` PUBKEY argument as rkt does (`url.Parse`): no scheme is a local file,
 * `https` a download, `http` a download only with `insecureAllowHttp`. Pure. Throws
 * RKT_INVALID_ARGUMENT `--insecure-allow-http required for http URLs` or
 * `only local files and http or https URLs supported`.
 */
export function pubkeyLocationKind(location: string, insecureAllowHttp = false): PubkeyLocationKind {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(location);
  // As Go's url.Parse: a scheme is letters, digits, + - . before the first colon; a path has none.
  const scheme = m === null ? "" : m[1]!.toLowerCase();
  if (scheme === "") return "file";
  if (scheme === "https") return "https";
  if (scheme === "http") {
    if (!insecureAllowHttp) {
      throw new RktError(ErrorCode.InvalidArgument, "--insecure-allow-http required for http URLs");
    }
    return "http";
  }
  throw new RktError(ErrorCode.InvalidArgument, "only local files and http or https URLs supported");
}

/**
 * Reads one public key from `location` (a path, or an http(s) URL; see {@link pubkeyLocationKind})
 * without parsing it. Downloads send no credentials, follow up to 10 redirects (never from https
 * to http unless allowed), must answer 200 (else RKT_IO `bad HTTP status code: N`), are capped at
 * {@link maxPubkeyBytes} (RKT_TOO_LARGE) and at 2 minutes (RKT_IO). Local files: RKT_IO naming
 * the path. Touches the network for URLs only.
 */
export async function readPubkey(location: string, o: PubkeyFetchOptions = {}): Promise<FetchedPubkey> {
  const kind = pubkeyLocationKind(location, o.insecureAllowHttp === true);
  if (kind === "file") {
    const path = isAbsolute(location) ? location : resolve(o.cwd ?? process.cwd(), location);
    try {
      const bytes = await readFile(path);
      if (bytes.length > maxPubkeyBytes) {
        throw new RktError(ErrorCode.TooLarge, `${location}: larger than ${maxPubkeyBytes} bytes`);
      }
      return { location, kind, bytes };
    } catch (e) {
      if (isRktError(e)) throw e;
      const code = (e as NodeJS.ErrnoException | null)?.code;
      const why =
        code === "ENOENT"
          ? "no such file or directory"
          : code === "EACCES"
            ? "permission denied"
            : code === "EISDIR"
              ? "is a directory"
              : message(e);
      throw new RktError(ErrorCode.Io, `error opening key file ${location}: ${why}`, { cause: e });
    }
  }
  const bytes = await withClient(o, (get) => get(location));
  return { location, kind, bytes };
}

/**
 * appc pubkey discovery for `prefix` (rkt `GetPubKeyLocations`): walks the prefixes longest first
 * (`example.com/a/b`, `example.com/a`, `example.com`), GETs `https://<p>?ac-discovery=1` (and, on
 * failure, `http://…` when `insecureAllowHttp`), and returns the `ac-discovery-pubkeys` URLs of
 * the first level that has any, in document order. Throws RKT_INVALID_ARGUMENT `empty prefix`;
 * RKT_NOT_FOUND `discovery failed` when no level yields a key, with each attempt in the cause.
 */
export async function discoverPubkeys(prefix: string, o: PubkeyFetchOptions = {}): Promise<string[]> {
  if (prefix === "") throw new RktError(ErrorCode.InvalidArgument, "empty prefix");
  return withClient(o, async (get) => {
    const attempts: string[] = [];
    for (const p of discoveryPrefixes(prefix)) {
      const schemes = o.insecureAllowHttp === true ? [false, true] : [false];
      for (const insecureHttp of schemes) {
        let url: string;
        try {
          url = discoveryUrl(p, { insecureHttp, port: o.port });
        } catch (e) {
          attempts.push(`${p}: ${message(e)}`);
          break;
        }
        let html: string;
        try {
          html = Buffer.from(await get(url)).toString("utf8");
        } catch (e) {
          if (isRktError(e) && e.code === ErrorCode.Aborted) throw e;
          attempts.push(`meta tag 'ac-discovery-pubkeys' not found on ${p}: ${message(e)}`);
          continue;
        }
        const keys = discoverEndpoints(html, { name: prefix }).publicKeys;
        if (keys.length > 0) return keys;
        attempts.push(`meta tag 'ac-discovery-pubkeys' not found on ${p}`);
        break;
      }
    }
    throw new RktError(ErrorCode.NotFound, "discovery failed", { cause: new Error(attempts.join("; ")) });
  });
}

type Getter = (url: string) => Promise<Uint8Array>;

async function withClient<T>(o: PubkeyFetchOptions, use: (get: Getter) => Promise<T>): Promise<T> {
  const own =
    o.dispatcher === undefined
      ? new (undici().Agent)({
          connect: { ca: machineCaCertificates(o.env ?? process.env), timeout: connectTimeoutMs },
        })
      : undefined;
  const dispatcher = o.dispatcher ?? own!;
  const timeoutMs = o.timeoutMs ?? pubkeyTimeoutMs;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = o.signal === undefined ? timeout : AbortSignal.any([o.signal, timeout]);
  try {
    return await use((url) => get(dispatcher, url, o.insecureAllowHttp === true, signal, timeoutMs));
  } finally {
    await own?.close();
  }
}

async function get(
  dispatcher: Dispatcher,
  start: string,
  allowHttp: boolean,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Uint8Array> {
  let url = new URL(start);
  for (let hop = 0; ; hop++) {
    let res: Dispatcher.ResponseData;
    try {
      res = await dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: "GET",
        // No Authorization, no cookies: keys are public, and rkt sends no auth headers here.
        headers: { "user-agent": "rkt", accept: "*/*" },
        signal,
      });
    } catch (e) {
      throw transportError(url, e, signal, timeoutMs);
    }
    const status = res.statusCode;
    if (status >= 300 && status < 400 && status !== 304) {
      res.body.resume();
      const loc = res.headers["location"];
      const location = Array.isArray(loc) ? loc[0] : loc;
      if (location === undefined) throw new RktError(ErrorCode.Io, `bad HTTP status code: ${status}`);
      if (hop + 1 >= maxRedirects) throw new RktError(ErrorCode.Io, `${start}: too many redirects`);
      const next = new URL(location, url);
      if (next.protocol === "http:" && !allowHttp) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${start}: redirected to ${next.href}: --insecure-allow-http required for http URLs`,
        );
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") {
        throw new RktError(ErrorCode.InvalidArgument, `${start}: redirected to unsupported URL ${next.href}`);
      }
      url = next;
      continue;
    }
    if (status !== 200) {
      res.body.resume();
      throw new RktError(ErrorCode.Io, `bad HTTP status code: ${status}`);
    }
    try {
      return await readCapped(res.body, maxPubkeyBytes, url.href);
    } catch (e) {
      if (isRktError(e)) throw e;
      throw transportError(url, e, signal, timeoutMs);
    }
  }
}

function transportError(url: URL, e: unknown, signal: AbortSignal, timeoutMs: number): RktError {
  if (isRktError(e)) return e;
  if (signal.aborted) {
    const r: unknown = signal.reason;
    const timedOut = r instanceof Error && r.name === "TimeoutError";
    return timedOut
      ? new RktError(ErrorCode.Io, `${url.href}: no answer within ${timeoutMs / 1000} s`, { cause: e })
      : new RktError(ErrorCode.Aborted, `${url.href}: aborted`, { cause: e });
  }
  return new RktError(ErrorCode.Io, `${url.href}: ${message(e)}`, { cause: e });
}

function message(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : "";
    return `${e.message}${cause}`;
  }
  return String(e);
}
