// skopeo sync's YAML (`skopeo sync --src yaml`), accepted as it is: per source registry,
// `images` (repository → tags or digests; an empty list means every tag),
// `images-by-tag-regex` (repository → regex over its tags), `tls-verify`, `credentials`,
// `cert-dir`. Parsed strictly: an unknown key, a bad regex or a bad reference is refused before
// anything moves. Pure (the YAML text in, a plan out).
import { ErrorCode, RktError, parseDockerReference } from "@rkt/oci";

/** What to sync from one repository. */
export interface RepositorySelection {
  readonly repository: string;
  /** Tags and digests named; empty with no `tagRegex`: every tag. */
  readonly refs: readonly string[];
  /** `images-by-tag-regex`: the tags matching it (anchored as skopeo's Go regexp is not: a search). */
  readonly tagRegex?: RegExp | undefined;
}

/** One source registry of the config. */
export interface SourceRegistry {
  /** As written: `registry.example.com[:port]`. */
  readonly host: string;
  readonly repositories: readonly RepositorySelection[];
  /** Default true. False: plain HTTP or unverified TLS, as skopeo's `tls-verify: false`. */
  readonly tlsVerify: boolean;
  readonly credentials?: { readonly username: string; readonly password: string } | undefined;
  readonly certDir?: string | undefined;
}

/** A parsed sync config. */
export interface SyncConfig {
  readonly registries: readonly SourceRegistry[];
}

const registryKeys = new Set([
  "images",
  "images-by-tag-regex",
  "images-by-semver",
  "tls-verify",
  "credentials",
  "cert-dir",
]);

function fail(what: string, path: string, message: string): never {
  throw new RktError(ErrorCode.InvalidArgument, `${what}: ${path}: ${message}`);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkRepository(host: string, repo: string, what: string, path: string): void {
  if (repo.includes(":") || repo.includes("@")) fail(what, path, "a repository, without tag or digest");
  try {
    parseDockerReference(`${host}/${repo}`);
  } catch (e) {
    fail(what, path, `not a repository name (${e instanceof Error ? e.message : String(e)})`);
  }
}

function checkRef(host: string, repo: string, ref: string, what: string, path: string): void {
  const sep = ref.includes(":") ? "@" : ":";
  try {
    parseDockerReference(`${host}/${repo}${sep}${ref}`);
  } catch (e) {
    fail(what, path, `not a tag or digest (${e instanceof Error ? e.message : String(e)})`);
  }
}

/**
 * Parses `yamlText` (the config named `what` in errors). RKT_INVALID_ARGUMENT naming the key:
 * `sync.yaml: $["registry.example.com"].images-by-tag-regex.app: bad regex …`. `images-by-semver`
 * is refused (not supported).
 */
export function parseSyncConfig(doc: unknown, what: string): SyncConfig {
  if (!isMap(doc)) fail(what, "$", "a map of registries");
  const registries: SourceRegistry[] = [];
  for (const [host, v] of Object.entries(doc)) {
    const at = `$[${JSON.stringify(host)}]`;
    if (!isMap(v)) fail(what, at, "a map");
    for (const k of Object.keys(v)) if (!registryKeys.has(k)) fail(what, `${at}.${k}`, "unknown key");
    if (v["images-by-semver"] !== undefined)
      fail(what, `${at}.images-by-semver`, "not supported; use images-by-tag-regex");
    const repositories: RepositorySelection[] = [];
    const images = v["images"] ?? {};
    if (!isMap(images)) fail(what, `${at}.images`, "a map of repository to tags");
    for (const [repo, refs] of Object.entries(images)) {
      const p = `${at}.images.${repo}`;
      checkRepository(host, repo, what, p);
      const list = refs ?? [];
      if (!Array.isArray(list) || !list.every((t) => typeof t === "string"))
        fail(what, p, "a list of tags or digests");
      list.forEach((t, i) => checkRef(host, repo, t, what, `${p}[${i}]`));
      repositories.push({ repository: repo, refs: list });
    }
    const byRegex = v["images-by-tag-regex"] ?? {};
    if (!isMap(byRegex)) fail(what, `${at}.images-by-tag-regex`, "a map of repository to regex");
    for (const [repo, re] of Object.entries(byRegex)) {
      const p = `${at}.images-by-tag-regex.${repo}`;
      checkRepository(host, repo, what, p);
      if (typeof re !== "string") fail(what, p, "a regex string");
      let tagRegex: RegExp;
      try {
        tagRegex = new RegExp(re, "u");
      } catch (e) {
        fail(what, p, `bad regex: ${e instanceof Error ? e.message : String(e)}`);
      }
      repositories.push({ repository: repo, refs: [], tagRegex });
    }
    if (repositories.length === 0) fail(what, at, "names no images (images or images-by-tag-regex)");
    const tls = v["tls-verify"] ?? true;
    if (typeof tls !== "boolean") fail(what, `${at}.tls-verify`, "true or false");
    const c = v["credentials"];
    let credentials: SourceRegistry["credentials"];
    if (c !== undefined) {
      if (!isMap(c) || typeof c["username"] !== "string" || typeof c["password"] !== "string")
        fail(what, `${at}.credentials`, "username and password strings");
      for (const k of Object.keys(c))
        if (k !== "username" && k !== "password") fail(what, `${at}.credentials.${k}`, "unknown key");
      credentials = { username: c["username"], password: c["password"] };
    }
    const certDir = v["cert-dir"];
    if (certDir !== undefined && typeof certDir !== "string")
      fail(what, `${at}.cert-dir`, "a directory path");
    registries.push({ host, repositories, tlsVerify: tls, credentials, certDir });
  }
  if (registries.length === 0) fail(what, "$", "names no registry");
  return { registries };
}
