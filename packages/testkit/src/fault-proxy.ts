// A fault-injecting HTTP proxy for the faults a real registry cannot make: it forwards every
// request to the registry behind it and, for the requests a rule matches, resets the connection,
// stalls, truncates, flips a byte, lies about Content-Length, or answers a status of its own
// (5xx, 429 with Retry-After). It also counts the body bytes it sends, per request.
import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** What a rule does to a response. Offsets count body bytes of that response. */
export type Fault =
  /** Sends `afterBytes` of the body, then resets the connection (RST). */
  | { readonly kind: "reset"; readonly afterBytes: number }
  /** Sends `afterBytes` of the body, then nothing more, holding the connection open. */
  | { readonly kind: "stall"; readonly afterBytes: number }
  /** Sends `afterBytes` of the body, then closes the connection cleanly (FIN) short of Content-Length. */
  | { readonly kind: "truncate"; readonly afterBytes: number }
  /** Sends the whole body with the byte at `atByte` changed. */
  | { readonly kind: "flip"; readonly atByte: number }
  /**
   * Declares a Content-Length off by `delta`: longer, the true body is sent and the connection
   * closed; shorter, the body is cut at the declared length (the response ends there).
   */
  | { readonly kind: "length"; readonly delta: number }
  /** Answers `status` (with `headers`, `body`) instead of forwarding the request. */
  | {
      readonly kind: "status";
      readonly status: number;
      readonly headers?: Readonly<Record<string, string>> | undefined;
      readonly body?: string | undefined;
    };

/** The part of a request a rule looks at. */
export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** A fault and the requests it applies to. */
export interface FaultRule {
  readonly match: (r: ProxiedRequest) => boolean;
  readonly fault: Fault;
  /** How many matching requests it hits before it stops applying (default: all). */
  readonly times?: number | undefined;
}

/** One request the proxy handled. */
export interface ProxyLogEntry {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly status: number;
  /** Body bytes sent to the client. */
  bytes: number;
  readonly fault: Fault["kind"] | undefined;
}

/** A running proxy. */
export interface FaultProxy {
  /** `127.0.0.1:PORT`, to use in place of the registry's host. */
  readonly host: string;
  /** Replaces the rules (each rule's `times` counts from now). */
  setRules(rules: readonly FaultRule[]): void;
  /** Every request so far, in order. */
  readonly log: readonly ProxyLogEntry[];
  /** Body bytes sent for blob GETs (`/v2/…/blobs/…`) since the start or the last reset. */
  blobBytes(): number;
  /** Clears the log. */
  resetLog(): void;
  /** Stops listening and drops every connection (stalled ones included). */
  close(): Promise<void>;
}

/** True for a GET of a blob (`/v2/<name>/blobs/<digest>`). */
export function isBlobGet(r: Pick<ProxiedRequest, "method" | "path">): boolean {
  return r.method === "GET" && /^\/v2\/.+\/blobs\/[a-z0-9]+:[a-f0-9]+$/.test(r.path);
}

/** Starts a proxy on a free loopback port in front of `upstream` (`host:port`, plain HTTP). */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [upHost, upPort] = upstream.split(":") as [string, string];
  let rules: { rule: FaultRule; left: number }[] = [];
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();

  const pick = (r: ProxiedRequest): Fault | undefined => {
    for (const x of rules) {
      if (x.left > 0 && x.rule.match(r)) {
        x.left--;
        return x.rule.fault;
      }
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const r: ProxiedRequest = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers };
    const fault = pick(r);
    const range = typeof req.headers.range === "string" ? req.headers.range : undefined;
    if (fault?.kind === "status") {
      const body = fault.body ?? "";
      const entry: ProxyLogEntry = { ...r, range, status: fault.status, bytes: 0, fault: fault.kind };
      log.push(entry);
      req.resume();
      res.writeHead(fault.status, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(body)),
        ...fault.headers,
      });
      res.end(r.method === "HEAD" ? undefined : body);
      if (r.method !== "HEAD") entry.bytes = Buffer.byteLength(body);
      return;
    }
    const up = httpRequest(
      { host: upHost, port: Number(upPort), method: r.method, path: r.path, headers: req.headers },
      (ures) => relay(ures, res, r, range, fault),
    );
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    req.pipe(up);
  };

  const relay = (
    ures: IncomingMessage,
    res: ServerResponse,
    r: ProxiedRequest,
    range: string | undefined,
    fault: Fault | undefined,
  ): void => {
    const entry: ProxyLogEntry = { ...r, range, status: ures.statusCode ?? 0, bytes: 0, fault: fault?.kind };
    log.push(entry);
    const headers = { ...ures.headers };
    const declared = Number(ures.headers["content-length"] ?? NaN);
    let cutAt = Infinity;
    if (fault?.kind === "length" && Number.isFinite(declared)) {
      const lie = Math.max(0, declared + fault.delta);
      headers["content-length"] = String(lie);
      if (lie < declared) cutAt = lie;
    }
    res.writeHead(ures.statusCode ?? 502, headers);
    const socket = res.socket;
    let sent = 0;
    let stopped = false;
    const stop = (how: "reset" | "stall" | "truncate" | "end"): void => {
      stopped = true;
      ures.destroy();
      if (how === "reset") socket?.resetAndDestroy();
      else if (how === "truncate") socket?.end();
      else if (how === "end") res.end();
      // stall: keep the connection open, send nothing; the client gives up or close() drops it.
    };
    ures.on("data", (chunk: Buffer) => {
      if (stopped) return;
      let c = chunk;
      const limit =
        fault?.kind === "reset" || fault?.kind === "stall" || fault?.kind === "truncate"
          ? fault.afterBytes
          : cutAt;
      if (sent + c.length >= limit && limit !== Infinity) {
        c = c.subarray(0, Math.max(0, limit - sent));
        if (c.length > 0) res.write(c);
        sent += c.length;
        entry.bytes = sent;
        const how =
          fault?.kind === "reset" || fault?.kind === "stall" || fault?.kind === "truncate"
            ? fault.kind
            : "end";
        // Let the prefix reach the socket before cutting it.
        setImmediate(() => stop(how));
        return;
      }
      if (fault?.kind === "flip" && fault.atByte >= sent && fault.atByte < sent + c.length) {
        c = Buffer.from(c);
        c[fault.atByte - sent] = c[fault.atByte - sent]! ^ 0xff;
      }
      sent += c.length;
      entry.bytes = sent;
      if (!res.write(c)) {
        ures.pause();
        res.once("drain", () => ures.resume());
      }
    });
    ures.on("end", () => {
      if (stopped) return;
      // A declared length longer than the body: what was sent is all there is; close the connection.
      if (fault?.kind === "length" && fault.delta > 0) socket?.end();
      else res.end();
    });
    ures.on("error", () => res.destroy());
  };

  const server = createServer(handle);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    setRules(next) {
      rules = next.map((rule) => ({ rule, left: rule.times ?? Infinity }));
    },
    log,
    blobBytes: () => log.filter(isBlobGet).reduce((n, e) => n + e.bytes, 0),
    resetLog: () => void log.splice(0),
    close: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}
