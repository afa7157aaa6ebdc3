import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile, copyFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { ErrorCode, RktError } from "@rkt/oci";
import { makeServerPki, makeSigningCert } from "./internal/pki.js";
import { freePort, tail } from "./internal/proc.js";
import { startTokenServer, type TokenServer } from "./internal/token-server.js";

/**
 * How the registry authenticates clients:
 * - `plain`: HTTP, anonymous push and pull.
 * - `basic`: HTTP basic auth against an htpasswd file (bcrypt).
 * - `tls`: HTTPS with a throwaway CA, anonymous.
 * - `token`: docker token auth; a token server of ours on loopback issues JWTs after basic auth.
 */
export type RegistryMode = "plain" | "basic" | "tls" | "token";

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** Default `plain`. */
  mode?: RegistryMode | undefined;
  /** Serve HTTPS also in `basic` and `token` mode (always on in `tls` mode). */
  tls?: boolean | undefined;
  /** Credentials for `basic` and `token` mode. Default user `rkt`, a random password. */
  username?: string | undefined;
  password?: string | undefined;
  /**
   * Keep the registry's storage here instead of a temporary dir; it is created if missing and
   * NOT removed by stop() (benchmark fixtures survive restarts this way).
   */
  storageDir?: string | undefined;
  /** How long to wait for `GET /v2/` to answer. Default 20 s. */
  readyTimeoutMs?: number | undefined;
  /**
   * Listen on this port instead of a free one: with the same `storageDir`, a registry stopped
   * earlier comes back at the same address with its content (an origin that goes down and up).
   */
  port?: number | undefined;
  /** Turn the registry's access log on: {@link Registry.requests} lists what it served. */
  accessLog?: boolean | undefined;
}

/** One line of the registry's access log. */
export interface RegistryRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Body bytes the registry wrote (for a response cut short: what it got out). */
  readonly bytes: number;
}

/** A running registry. */
export interface Registry {
  readonly mode: RegistryMode;
  /** `127.0.0.1:PORT`: the registry part of image references. */
  readonly host: string;
  /** `http://127.0.0.1:PORT` or `https://…`, no trailing slash. */
  readonly url: string;
  /** Whether the registry speaks HTTPS. */
  readonly tls: boolean;
  /** PEM of the CA that signed the server certificate (TLS only). */
  readonly caPem?: string | undefined;
  /** Path of that CA certificate file (TLS only). */
  readonly caFile?: string | undefined;
  /** A directory holding only `ca.crt`, for skopeo `--cert-dir`/`--dest-cert-dir` (TLS only). */
  readonly certDir?: string | undefined;
  /** Credentials (basic and token mode). */
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** Token endpoint, `http://127.0.0.1:PORT/token` (token mode). */
  readonly tokenRealm?: string | undefined;
  /** Token requests served so far, each the list of requested scopes (token mode; else empty). */
  readonly tokenRequests: readonly (readonly string[])[];
  /** Storage root of the registry (filesystem driver). */
  readonly storageDir: string;
  /** The registry's log output so far (last 256 KiB). */
  logs(): string;
  /** Every request served so far, in order (empty unless started with `accessLog`). */
  requests(): readonly RegistryRequest[];
  /** Kills the registry and removes its temporary files. Idempotent; never throws. */
  stop(): Promise<void>;
}

const registryBin = "/usr/bin/docker-registry";
const logCap = 256 * 1024;

interface Live {
  child: ChildProcess;
  dirs: string[];
}
// Everything still running, so that a test process that exits without afterAll (crash, process.exit)
// still kills its registries and removes their files.
const live = new Set<Live>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const l of live) {
      killGroup(l.child, "SIGKILL");
      for (const d of l.dirs) rmSync(d, { recursive: true, force: true });
    }
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  // The group outlives the shell while the watchdog's `cat` runs, so signal it even after exit.
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

// The registry runs under a shell that also kills it when our end of its stdin closes: if this
// process dies by SIGKILL (vitest timeouts, OOM) no exit hook runs, but the kernel closes the pipe;
// the watchdog then also removes the temporary dir ($2). (A background job's stdin is /dev/null
// unless redirected, hence fd 3.)
const watchdog = [
  "exec 3<&0",
  '"$0" serve "$1" </dev/null &',
  "p=$!",
  '{ cat <&3 >/dev/null; kill -TERM "$p" 2>/dev/null; sleep 1; rm -rf "$2"; } &',
  'wait "$p"',
].join("\n");

/**
 * Starts Debian's distribution registry (`docker-registry serve`, v2.8) on a free 127.0.0.1 port
 * with a generated config and temporary storage, and resolves once `GET /v2/` answers 200 or 401.
 * Throws RKT_UNAVAILABLE with the tail of the registry's log if it exits or never becomes ready.
 * Always call stop(); an exit hook and a stdin watchdog kill it if the caller cannot.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const mode = opts.mode ?? "plain";
  const useTls = mode === "tls" || opts.tls === true;
  const work = await mkdtemp(join(tmpdir(), "rkt-registry-"));
  const dirs = [work];
  installExitHook();
  let token: TokenServer | undefined;
  try {
    const storageDir = opts.storageDir ?? join(work, "storage");
    await mkdir(storageDir, { recursive: true });
    const username = opts.username ?? "rkt";
    const password = opts.password ?? randomBytes(12).toString("base64url");
    const lines: string[] = [
      "version: 0.1",
      "log:",
      "  level: info",
      "  accesslog:",
      `    disabled: ${opts.accessLog === true ? "false" : "true"}`,
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${JSON.stringify(storageDir)}`,
      "  delete:",
      "    enabled: true",
      "  maintenance:",
      "    uploadpurging:",
      "      enabled: false",
      "http:",
      "  addr: 127.0.0.1:__PORT__",
      `  secret: ${randomBytes(16).toString("hex")}`,
    ];
    let caPem: string | undefined;
    let caFile: string | undefined;
    let certDir: string | undefined;
    let pki: Awaited<ReturnType<typeof makeServerPki>> | undefined;
    if (useTls) {
      pki = await makeServerPki(work);
      caFile = pki.caCert;
      caPem = await readFile(pki.caCert, "utf8");
      certDir = join(work, "certs.d");
      await mkdir(certDir);
      await copyFile(pki.caCert, join(certDir, "ca.crt"));
      lines.push(
        "  tls:",
        `    certificate: ${JSON.stringify(pki.serverCert)}`,
        `    key: ${JSON.stringify(pki.serverKey)}`,
      );
    }
    if (mode === "basic") {
      const htpasswd = join(work, "htpasswd");
      // Cost 5: bcrypt is deliberately slow and the registry checks it on every request.
      await writeFile(htpasswd, `${username}:${bcrypt.hashSync(password, 5)}\n`);
      lines.push("auth:", "  htpasswd:", "    realm: rkt-testkit", `    path: ${JSON.stringify(htpasswd)}`);
    }
    if (mode === "token") {
      const signer = await makeSigningCert(work);
      const service = "rkt-testkit-registry";
      const issuer = "rkt-testkit";
      token = await startTokenServer(
        {
          certFile: signer.cert,
          keyFile: signer.key,
          issuer,
          service,
          username,
          password,
          // With TLS the token server shares the registry's certificate (same CA, 127.0.0.1).
          ...(pki === undefined ? {} : { tls: { cert: pki.serverCert, key: pki.serverKey } }),
        },
        await freePort(),
      );
      lines.push(
        "auth:",
        "  token:",
        `    realm: ${JSON.stringify(token.realm)}`,
        `    service: ${service}`,
        `    issuer: ${issuer}`,
        `    rootcertbundle: ${JSON.stringify(signer.cert)}`,
      );
    }
    const template = lines.join("\n") + "\n";

    // The free port can be taken between our probe and the registry's bind: retry a few times.
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort());
      const config = join(work, "config.yml");
      await writeFile(config, template.replace("__PORT__", String(port)));
      const started = await launch(config, port, useTls, caPem, opts.readyTimeoutMs ?? 20_000, dirs);
      if (started.ok) {
        const { child, logs, requests, entry } = started;
        const tokenServer = token;
        let stopping: Promise<void> | undefined;
        const host = `127.0.0.1:${port}`;
        return {
          mode,
          host,
          url: `${useTls ? "https" : "http"}://${host}`,
          tls: useTls,
          caPem,
          caFile,
          certDir,
          username: mode === "basic" || mode === "token" ? username : undefined,
          password: mode === "basic" || mode === "token" ? password : undefined,
          tokenRealm: tokenServer?.realm,
          tokenRequests: tokenServer?.issued ?? [],
          storageDir,
          logs,
          requests: () => requests,
          stop: () =>
            (stopping ??= (async () => {
              await terminate(child);
              live.delete(entry);
              await tokenServer?.close();
              await rm(work, { recursive: true, force: true });
            })()),
        };
      }
      if (!/address already in use/.test(started.log) || attempt >= 5) {
        throw new RktError(
          ErrorCode.Unavailable,
          `docker-registry (${mode}) on 127.0.0.1:${port} did not start: ${started.reason}; log: ${tail(started.log, 3000)}`,
        );
      }
    }
  } catch (e) {
    await token?.close();
    await rm(work, { recursive: true, force: true });
    throw e;
  }
}

type Launch =
  | { ok: true; child: ChildProcess; logs: () => string; requests: RegistryRequest[]; entry: Live }
  | { ok: false; reason: string; log: string };

// `127.0.0.1 - - [date] "GET /v2/x/blobs/sha256:… HTTP/1.1" 200 157 "" "agent"` (combined log format).
const accessLine = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)/;

async function launch(
  config: string,
  port: number,
  tls: boolean,
  caPem: string | undefined,
  timeoutMs: number,
  dirs: string[],
): Promise<Launch> {
  let log = "";
  // Access log lines are parsed as they arrive (the kept log text is capped; they are not).
  const requests: RegistryRequest[] = [];
  let partial = "";
  const append = (b: Buffer): void => {
    const text = b.toString("utf8");
    log += text;
    if (log.length > logCap) log = log.slice(-logCap);
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) {
      const m = accessLine.exec(l);
      if (m !== null)
        requests.push({ method: m[1]!, path: m[2]!, status: Number(m[3]), bytes: Number(m[4]) || 0 });
    }
  };
  // detached: its own process group, so stop() kills the shell, the registry and the watchdog.
  const child = spawn("sh", ["-c", watchdog, registryBin, config, dirs[0] ?? ""], {
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const entry: Live = { child, dirs };
  live.add(entry);
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  // Do not keep the test process alive for the registry's sake; the exit hook kills it.
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) {
    (s as unknown as { unref?: () => void } | null)?.unref?.();
  }
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = signal === null ? `exited with status ${code}` : `killed by ${signal}`;
  });
  child.once("error", (e) => {
    exited = `cannot run: ${e.message}`;
  });

  const deadline = Date.now() + timeoutMs;
  let lastError = "no answer";
  while (Date.now() < deadline) {
    if (exited !== undefined) break;
    const status = await probe(port, tls, caPem).catch((e: Error) => {
      lastError = e.message;
      return 0;
    });
    if (status === 200 || status === 401) return { ok: true, child, logs: () => log, requests, entry };
    if (status !== 0) lastError = `GET /v2/ answered ${status}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  await terminate(child);
  live.delete(entry);
  return { ok: false, reason: exited ?? `not ready after ${timeoutMs} ms (${lastError})`, log };
}

function probe(port: number, tls: boolean, caPem: string | undefined): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const o = { host: "127.0.0.1", port, path: "/v2/", method: "GET", agent: false, timeout: 2000 } as const;
    const req = tls
      ? httpsRequest({ ...o, ...(caPem === undefined ? {} : { ca: caPem }), servername: "localhost" })
      : httpRequest(o);
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child, "SIGKILL");
    return;
  }
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  killGroup(child, "SIGTERM");
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
  await gone;
  clearTimeout(timer);
  killGroup(child, "SIGKILL");
}
