// A `registries.conf` (containers-registries.conf(5), TOML v2) subset for pulls: `[[registry]]`
// prefix / location / insecure / blocked, `[[registry.mirror]]` location / insecure /
// pull-from-mirror, and the sources a pull tries (mirrors in file order, then the origin).
// Parsing and source planning are pure; `loadRegistriesConf` reads the first file found.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { ErrorCode, RktError, type DockerRef } from "@rkt/oci";
import type * as Toml from "smol-toml";

/** When a mirror is used: `all` (default), `digest-only` (digest refs), `tag-only` (tag refs). */
export type PullFromMirror = "all" | "digest-only" | "tag-only";

/** One `[[registry.mirror]]`. */
export interface RegistryMirror {
  /** `host[:port][/path]`: the mirror's repository namespace for the prefix. */
  readonly location: string;
  readonly insecure: boolean;
  readonly pullFromMirror: PullFromMirror;
}

/** One `[[registry]]`. */
export interface RegistryEntry {
  /** `host[:port][/path]` or `*.domain`; matched against `registry/repository`. */
  readonly prefix: string;
  /** Where the prefix really lives (default: the prefix itself). */
  readonly location: string;
  readonly insecure: boolean;
  readonly blocked: boolean;
  readonly mirrors: readonly RegistryMirror[];
}

/** A parsed registries.conf. */
export interface RegistriesConf {
  /** The file it came from (for messages). */
  readonly path: string;
  readonly registries: readonly RegistryEntry[];
}

/** One place a pull may try: a registry host and the repository there. */
export interface PullSource {
  readonly registry: string;
  readonly repository: string;
  /** Plain HTTP and unverified TLS allowed for this host. */
  readonly insecure: boolean;
  readonly mirror: boolean;
}

function bad(path: string, message: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, `${path}: ${message}`);
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// `host[:port]` followed by an optional path, no scheme.
const locationRe = /^[A-Za-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._/-]*[a-z0-9])?$/;

function location(path: string, where: string, v: unknown): string {
  if (typeof v !== "string" || !locationRe.test(v))
    throw bad(
      path,
      `${where}: location must be host[:port][/path] without a scheme, not ${JSON.stringify(v)}`,
    );
  return v;
}

function bool(path: string, where: string, key: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw bad(path, `${where}: ${key} must be true or false`);
  return v;
}

/**
 * Parses a registries.conf (TOML). Keys outside the subset (`unqualified-search-registries`,
 * `short-name-mode`, `[aliases]`, `credential-helpers`, …) are ignored; `mirror-by-digest-only`
 * on a registry sets `digest-only` for its mirrors that set nothing. RKT_INVALID_ARGUMENT naming
 * `path` for bad TOML or a bad value; `v1` files (`[registries.search]`) are refused.
 */
// Async in its public shape (it once awaited the TOML module); failures still arrive as rejections.
// eslint-disable-next-line @typescript-eslint/require-await
export async function parseRegistriesConf(text: string, path: string): Promise<RegistriesConf> {
  // smol-toml's CommonJS build is one file; its ES build is nine modules to resolve and link, on
  // every `rkt fetch docker://…` of a machine that has a registries.conf.
  const { parse } = createRequire(import.meta.url)("smol-toml") as typeof Toml;
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (e) {
    throw bad(path, `not valid TOML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (isTable(doc["registries"]))
    throw bad(path, "version 1 format ([registries.*]) is not supported; use [[registry]] tables");
  const list = doc["registry"] ?? [];
  if (!Array.isArray(list)) throw bad(path, "registry must be an array of tables ([[registry]])");
  const registries: RegistryEntry[] = [];
  for (const [i, r] of (list as unknown[]).entries()) {
    const where = `registry[${i}]`;
    if (!isTable(r)) throw bad(path, `${where} must be a table`);
    const loc = r["location"] === undefined ? undefined : location(path, where, r["location"]);
    const prefix = r["prefix"] ?? loc;
    if (typeof prefix !== "string" || !(locationRe.test(prefix) || /^\*\.[A-Za-z0-9.-]+$/.test(prefix)))
      throw bad(
        path,
        `${where}: prefix must be host[:port][/path] or *.domain, not ${JSON.stringify(prefix)}`,
      );
    if (prefix.startsWith("*.") && loc !== undefined)
      throw bad(path, `${where}: a wildcard prefix cannot have a location`);
    const byDigest = bool(path, where, "mirror-by-digest-only", r["mirror-by-digest-only"]);
    const mirrorList = r["mirror"] ?? [];
    if (!Array.isArray(mirrorList)) throw bad(path, `${where}: mirror must be an array of tables`);
    const mirrors = (mirrorList as unknown[]).map((m, k): RegistryMirror => {
      const mw = `${where}.mirror[${k}]`;
      if (!isTable(m)) throw bad(path, `${mw} must be a table`);
      const p = m["pull-from-mirror"];
      if (p !== undefined && p !== "all" && p !== "digest-only" && p !== "tag-only")
        throw bad(path, `${mw}: pull-from-mirror must be all, digest-only or tag-only`);
      if (p !== undefined && byDigest)
        throw bad(
          path,
          `${mw}: pull-from-mirror and the registry's mirror-by-digest-only exclude each other`,
        );
      return {
        location: location(path, mw, m["location"]),
        insecure: bool(path, mw, "insecure", m["insecure"]),
        pullFromMirror: p ?? (byDigest ? "digest-only" : "all"),
      };
    });
    registries.push({
      prefix,
      location: loc ?? prefix,
      insecure: bool(path, where, "insecure", r["insecure"]),
      blocked: bool(path, where, "blocked", r["blocked"]),
      mirrors,
    });
  }
  return { path, registries };
}

// Does `prefix` cover `name` (`registry/repository`)? Whole path components only; `*.domain`
// covers hosts ending in `.domain`.
function covers(prefix: string, name: string): boolean {
  if (prefix.startsWith("*.")) {
    const host = name.split("/")[0] ?? "";
    return host.endsWith(prefix.slice(1));
  }
  return name === prefix || name.startsWith(`${prefix}/`);
}

/** The `[[registry]]` entry for `ref`: the longest matching prefix (exact prefixes before wildcards). */
export function findRegistry(
  conf: RegistriesConf,
  ref: Pick<DockerRef, "registry" | "repository">,
): RegistryEntry | undefined {
  const name = `${ref.registry}/${ref.repository}`;
  let best: RegistryEntry | undefined;
  const rank = (e: RegistryEntry): number => (e.prefix.startsWith("*.") ? 0 : 1e6) + e.prefix.length;
  for (const e of conf.registries)
    if (covers(e.prefix, name) && (best === undefined || rank(e) > rank(best))) best = e;
  return best;
}

function rewrite(
  loc: string,
  prefix: string,
  name: string,
  mirror: boolean,
): { registry: string; repository: string } {
  // A wildcard prefix keeps the name; otherwise the prefix part is replaced by the location.
  const rest = prefix.startsWith("*.") ? name.slice(name.indexOf("/")) : name.slice(prefix.length);
  const full = prefix.startsWith("*.") && !mirror ? name : `${loc}${rest}`;
  const slash = full.indexOf("/");
  return { registry: full.slice(0, slash), repository: full.slice(slash + 1) };
}

/**
 * The sources a pull of `ref` tries, in order: the entry's mirrors that serve this kind of
 * reference (`pull-from-mirror`), then the origin (the entry's `location` rewrite, or the ref
 * itself). No entry: the ref alone. A blocked entry: RKT_INVALID_ARGUMENT naming the file.
 */
export function pullSources(conf: RegistriesConf | undefined, ref: DockerRef): PullSource[] {
  const name = `${ref.registry}/${ref.repository}`;
  const e = conf === undefined ? undefined : findRegistry(conf, ref);
  if (e === undefined)
    return [{ registry: ref.registry, repository: ref.repository, insecure: false, mirror: false }];
  if (e.blocked)
    throw new RktError(
      ErrorCode.InvalidArgument,
      `registry ${e.prefix} is blocked by ${conf?.path ?? "registries.conf"}; refusing to pull ${name}`,
    );
  const byDigest = ref.digest !== undefined;
  const mirrors = e.mirrors
    .filter((m) => m.pullFromMirror === "all" || (m.pullFromMirror === "digest-only") === byDigest)
    .map((m) => ({ ...rewrite(m.location, e.prefix, name, true), insecure: m.insecure, mirror: true }));
  return [...mirrors, { ...rewrite(e.location, e.prefix, name, false), insecure: e.insecure, mirror: false }];
}

/**
 * Where rkt reads registries.conf, first found wins (no merging, no drop-ins):
 * `$CONTAINERS_REGISTRIES_CONF` alone when set, else `<local-config>/registries.conf`,
 * `<system-config>/registries.conf`, `/etc/containers/registries.conf`.
 */
export function registriesConfPaths(o: {
  env?: Record<string, string | undefined> | undefined;
  localConfig?: string | undefined;
  systemConfig?: string | undefined;
}): string[] {
  const fromEnv = o.env?.["CONTAINERS_REGISTRIES_CONF"];
  if (fromEnv !== undefined && fromEnv !== "") return [fromEnv];
  return [
    ...(o.localConfig === undefined ? [] : [join(o.localConfig, "registries.conf")]),
    ...(o.systemConfig === undefined ? [] : [join(o.systemConfig, "registries.conf")]),
    "/etc/containers/registries.conf",
  ];
}

/** Reads and parses the first of `paths` that exists; undefined when none does. */
export async function loadRegistriesConf(paths: readonly string[]): Promise<RegistriesConf | undefined> {
  for (const p of paths) {
    let text: string;
    try {
      text = await readFile(p, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR")
        continue;
      throw new RktError(ErrorCode.Io, `${p}: ${(e as Error).message}`, { cause: e });
    }
    return parseRegistriesConf(text, p);
  }
  return undefined;
}
