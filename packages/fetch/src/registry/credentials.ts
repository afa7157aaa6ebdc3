// Where registry credentials come from: docker's config.json (inline `auth`, `credHelpers`,
// `credsStore`), containers' auth.json, and rkt's `dockerAuth` files in `<config>/auth.d`.
// Providers only look credentials up; the client decides where they may be sent (only to the
// registry they are for, only over TLS).
import { spawn } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ErrorCode, RktError, dockerHubApiHost, dockerHubRegistry } from "@rkt/oci";
import { parseJsonConfig } from "../json-file.js";

/** A user name and password (or a registry-issued token used as the password). */
export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * An OAuth2 refresh ("identity") token, as docker stores it after `docker login` to some
 * registries (`identitytoken`, or a helper answering with user `<token>`); exchanged at the token
 * realm with `grant_type=refresh_token`.
 */
export interface IdentityTokenCredentials {
  readonly identityToken: string;
}

export type Credentials = BasicCredentials | IdentityTokenCredentials;

/**
 * Looks up credentials for a registry. `registry` is the host as users write it (`docker.io`,
 * `quay.io`, `127.0.0.1:5000`); `repository` lets file formats with per-repository keys pick the
 * most specific entry. Resolves undefined when nothing is configured; rejects only on a broken
 * configuration (unreadable JSON, a failing helper), with RKT_INVALID_ARGUMENT or RKT_IO.
 */
export interface CredentialsProvider {
  credentialsFor(registry: string, repository?: string): Promise<Credentials | undefined>;
}

/** True for {@link IdentityTokenCredentials}. */
export function isIdentityToken(c: Credentials): c is IdentityTokenCredentials {
  return "identityToken" in c;
}

/** A provider with fixed credentials per registry host (CLI flags, tests). */
export function staticCredentials(byRegistry: Readonly<Record<string, Credentials>>): CredentialsProvider {
  return {
    credentialsFor: (registry) =>
      Promise.resolve(byRegistry[registry] ?? byRegistry[canonicalHost(registry)]),
  };
}

/** The first provider that knows the registry wins (order: most specific configuration first). */
export function chainCredentials(providers: readonly CredentialsProvider[]): CredentialsProvider {
  return {
    async credentialsFor(registry, repository) {
      for (const p of providers) {
        const c = await p.credentialsFor(registry, repository);
        if (c !== undefined) return c;
      }
      return undefined;
    },
  };
}

// Docker Hub is keyed in config files under several historical names.
const dockerHubKeys = ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"];

function canonicalHost(registry: string): string {
  return dockerHubKeys.includes(registry) ? dockerHubRegistry : registry;
}

// Keys to try, most specific first (containers-image auth.json lookup): host/ns/repo, host/ns, host.
function lookupKeys(registry: string, repository: string | undefined): string[] {
  const host = canonicalHost(registry);
  const hosts = host === dockerHubRegistry ? dockerHubKeys : [host];
  const out: string[] = [];
  if (repository !== undefined && repository !== "") {
    const parts = repository.split("/");
    for (let n = parts.length; n >= 1; n--) {
      for (const h of hosts) if (!h.includes("://")) out.push(`${h}/${parts.slice(0, n).join("/")}`);
    }
  }
  return [...out, ...hosts];
}

// A key may be written with a scheme or a trailing path ("https://host/v1/"); compare it by host.
function normaliseKey(key: string): string {
  const m = /^[a-z]+:\/\/([^/]+)(\/.*)?$/.exec(key);
  if (m === null) return key.replace(/\/+$/, "");
  const path = (m[2] ?? "").replace(/^\/v[12]\/?$/, "").replace(/\/+$/, "");
  return `${m[1]}${path}`;
}

/** docker config.json / containers auth.json, the fields we read. */
export interface AuthFile {
  readonly auths?: Readonly<
    Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string }>
  >;
  readonly credHelpers?: Readonly<Record<string, string>>;
  readonly credsStore?: string;
}

/**
 * Finds the entry for `registry`/`repository` in an auth file (most specific key first) and
 * decodes it: `auth` is base64 of `user:password` (the password may contain `:`), `identitytoken`
 * wins when present. Returns `{ helper }` when a credential helper is configured for the host.
 * Throws RKT_INVALID_ARGUMENT for an undecodable `auth`. Pure.
 */
export function lookupAuthFile(
  file: AuthFile,
  registry: string,
  repository: string | undefined,
  what: string,
): Credentials | { helper: string } | undefined {
  const keys = lookupKeys(registry, repository);
  const auths = new Map<string, NonNullable<AuthFile["auths"]>[string]>();
  for (const [k, v] of Object.entries(file.auths ?? {})) auths.set(normaliseKey(k), v);
  const helpers = new Map<string, string>();
  for (const [k, v] of Object.entries(file.credHelpers ?? {})) helpers.set(normaliseKey(k), v);
  for (const key of keys) {
    const helper = helpers.get(key);
    if (helper !== undefined) return { helper };
    const entry = auths.get(key);
    if (entry === undefined) continue;
    if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") {
      return { identityToken: entry.identitytoken };
    }
    if (typeof entry.auth === "string" && entry.auth !== "") {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon <= 0) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${what}: "auth" for ${key} is not base64 of user:password`,
        );
      }
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (typeof entry.username === "string" && typeof entry.password === "string") {
      return { username: entry.username, password: entry.password };
    }
  }
  if (typeof file.credsStore === "string" && file.credsStore !== "") return { helper: file.credsStore };
  return undefined;
}

async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RktError(ErrorCode.Io, `${path}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  return parseJsonConfig(text, path);
}

/** Options of {@link runCredentialHelper}. */
export interface CredentialHelperOptions {
  /** Directories searched for `docker-credential-<name>`; default `$PATH`. */
  readonly path?: string | undefined;
  /** Kill the helper after this long (ms); default 30 s (helpers may prompt a keyring). */
  readonly timeoutMs?: number | undefined;
}

/**
 * Runs `docker-credential-<helper> get` with the registry host on stdin (the docker credential
 * helper protocol) and decodes `{"Username","Secret"}`; user `<token>` means an identity token.
 * Resolves undefined when the helper says it has no credentials for the host. Rejects RKT_IO
 * when the helper cannot run or fails otherwise.
 */
export async function runCredentialHelper(
  helper: string,
  registry: string,
  o: CredentialHelperOptions = {},
): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `credential helper name ${JSON.stringify(helper)} is not a plain name`,
    );
  }
  const exe = `docker-credential-${helper}`;
  const env = o.path === undefined ? process.env : { ...process.env, PATH: o.path };
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(exe, ["get"], {
        env,
        stdio: ["pipe", "pipe", "pipe"],
        timeout: o.timeoutMs ?? 30_000,
      });
      let out = "";
      let err = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        if (out.length < 1 << 20) out += d;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        if (err.length < 1 << 16) err += d;
      });
      child.on("error", (e) =>
        reject(new RktError(ErrorCode.Io, `${exe}: cannot run: ${e.message}`, { cause: e })),
      );
      child.on("close", (c) => resolve({ code: c, stdout: out, stderr: err }));
      child.stdin.on("error", () => undefined); // a helper that exits without reading stdin
      child.stdin.end(registry);
    },
  );
  if (code !== 0) {
    const msg = (stdout.trim() || stderr.trim()).split("\n")[0] ?? "";
    // The protocol's "not found" answer is this exact text on stdout with a non-zero exit.
    if (/credentials not found/i.test(msg)) return undefined;
    throw new RktError(ErrorCode.Io, `${exe} get ${registry}: exit ${String(code)}: ${msg}`);
  }
  let j: { Username?: unknown; Secret?: unknown };
  try {
    j = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
  } catch {
    throw new RktError(ErrorCode.Io, `${exe} get ${registry}: output is not JSON`);
  }
  if (typeof j.Secret !== "string" || j.Secret === "") return undefined;
  if (j.Username === "<token>") return { identityToken: j.Secret };
  return { username: typeof j.Username === "string" ? j.Username : "", password: j.Secret };
}

/** Options of the file-based providers. */
export interface FileCredentialsOptions extends CredentialHelperOptions {
  /** Environment to read (`DOCKER_CONFIG`, `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `HOME`); default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
}

async function fromAuthFiles(
  paths: readonly string[],
  registry: string,
  repository: string | undefined,
  o: FileCredentialsOptions,
): Promise<Credentials | undefined> {
  for (const path of paths) {
    const j = await readJsonFile(path);
    if (j === undefined) continue;
    if (typeof j !== "object" || j === null) {
      throw new RktError(ErrorCode.InvalidArgument, `${path}: expected a JSON object`);
    }
    const found = lookupAuthFile(j, registry, repository, path);
    if (found === undefined) continue;
    if ("helper" in found) {
      const host = registry === dockerHubRegistry ? "https://index.docker.io/v1/" : registry;
      const c = await runCredentialHelper(found.helper, host, o);
      if (c !== undefined) return c;
      continue;
    }
    return found;
  }
  return undefined;
}

/** The docker client configuration file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const dir = env["DOCKER_CONFIG"];
  return dir !== undefined && dir !== ""
    ? join(dir, "config.json")
    : join(env["HOME"] ?? homedir(), ".docker", "config.json");
}

/**
 * Credentials from docker's `config.json` ({@link dockerConfigPath}): `auths` (base64 `auth`,
 * `identitytoken`), `credHelpers` per host, then `credsStore`. A missing file means none.
 */
export function dockerConfigCredentials(o: FileCredentialsOptions = {}): CredentialsProvider {
  return {
    credentialsFor: (registry, repository) =>
      fromAuthFiles([dockerConfigPath(o.env)], registry, repository, o),
  };
}

/**
 * The containers `auth.json` files in their lookup order (containers-auth.json(5)):
 * `$REGISTRY_AUTH_FILE` alone when set, else `${XDG_RUNTIME_DIR}/containers/auth.json`, then
 * `~/.config/containers/auth.json`.
 */
export function containersAuthPaths(
  env: Readonly<Record<string, string | undefined>> = process.env,
): string[] {
  const explicit = env["REGISTRY_AUTH_FILE"];
  if (explicit !== undefined && explicit !== "") return [explicit];
  const out: string[] = [];
  const runtime = env["XDG_RUNTIME_DIR"];
  if (runtime !== undefined && runtime !== "") out.push(join(runtime, "containers", "auth.json"));
  const config = env["XDG_CONFIG_HOME"];
  out.push(
    config !== undefined && config !== ""
      ? join(config, "containers", "auth.json")
      : join(env["HOME"] ?? homedir(), ".config", "containers", "auth.json"),
  );
  return out;
}

/** Credentials from containers `auth.json` files ({@link containersAuthPaths}); same entry format as docker's. */
export function containersAuthCredentials(o: FileCredentialsOptions = {}): CredentialsProvider {
  return {
    credentialsFor: (registry, repository) =>
      fromAuthFiles(containersAuthPaths(o.env), registry, repository, o),
  };
}

/** One rkt `dockerAuth` file (`<config>/auth.d/*.json`). */
export interface RktDockerAuth {
  readonly rktKind: "dockerAuth";
  readonly rktVersion: string;
  readonly registries: readonly string[];
  readonly credentials: { readonly user: string; readonly password: string };
}

/**
 * Parses an rkt `auth.d` file. Returns undefined for the other kinds that share the directory
 * (`rktKind: "auth"`, used for appc HTTP), throws RKT_INVALID_ARGUMENT for a malformed
 * `dockerAuth`. Pure.
 */
export function parseRktDockerAuth(json: unknown, what: string): RktDockerAuth | undefined {
  if (typeof json !== "object" || json === null) {
    throw new RktError(ErrorCode.InvalidArgument, `${what}: expected a JSON object`);
  }
  const j = json as Record<string, unknown>;
  if (j["rktKind"] !== "dockerAuth") return undefined;
  if (j["rktVersion"] !== "v1") {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${what}: unsupported rktVersion ${JSON.stringify(j["rktVersion"])} (want "v1")`,
    );
  }
  const regs = j["registries"];
  if (!Array.isArray(regs) || regs.length === 0 || !regs.every((r) => typeof r === "string" && r !== "")) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${what}: "registries" must be a non-empty list of host names`,
    );
  }
  const c = j["credentials"] as Record<string, unknown> | undefined;
  if (
    typeof c !== "object" ||
    c === null ||
    typeof c["user"] !== "string" ||
    typeof c["password"] !== "string"
  ) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${what}: "credentials" must have string "user" and "password"`,
    );
  }
  return {
    rktKind: "dockerAuth",
    rktVersion: "v1",
    registries: regs as string[],
    credentials: { user: c["user"], password: c["password"] },
  };
}

/**
 * Credentials from rkt's `dockerAuth` configuration: every `<dir>/auth.d/*.json` with
 * `rktKind: "dockerAuth"`, for each directory in `configDirs` (rkt's order: system
 * `/usr/lib/rkt`, then local `/etc/rkt`, then the user's; later directories override earlier
 * ones, as rkt's config merging does). Matching is by exact host; Docker Hub's aliases match each
 * other.
 */
export function rktDockerAuthCredentials(configDirs: readonly string[]): CredentialsProvider {
  let loaded: Promise<Map<string, BasicCredentials>> | undefined;
  const load = async () => {
    const byHost = new Map<string, BasicCredentials>();
    for (const dir of configDirs) {
      const authDir = join(dir, "auth.d");
      let names: string[];
      try {
        names = (await readdir(authDir)).filter((n) => n.endsWith(".json")).sort();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw new RktError(ErrorCode.Io, `${authDir}: cannot list: ${(e as Error).message}`, { cause: e });
      }
      for (const name of names) {
        const path = join(authDir, name);
        const cfg = parseRktDockerAuth(await readJsonFile(path), path);
        if (cfg === undefined) continue;
        for (const r of cfg.registries) {
          byHost.set(canonicalHost(r), {
            username: cfg.credentials.user,
            password: cfg.credentials.password,
          });
        }
      }
    }
    return byHost;
  };
  return {
    async credentialsFor(registry) {
      loaded ??= load();
      const m = await loaded;
      return (
        m.get(canonicalHost(registry)) ??
        (registry === dockerHubApiHost ? m.get(dockerHubRegistry) : undefined)
      );
    },
  };
}

/**
 * The usual lookup order for `rkt fetch docker://...`: rkt's own `dockerAuth` files (most
 * specific to rkt), then containers `auth.json`, then docker's `config.json`.
 */
export function defaultCredentials(
  o: FileCredentialsOptions & { rktConfigDirs?: readonly string[] | undefined } = {},
): CredentialsProvider {
  return chainCredentials([
    rktDockerAuthCredentials(o.rktConfigDirs ?? []),
    containersAuthCredentials(o),
    dockerConfigCredentials(o),
  ]);
}
