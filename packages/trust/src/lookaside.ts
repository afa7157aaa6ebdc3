// Lookaside signature storage (containers-image docs/signature-protocols.md) and its
// registries.d configuration (containers-registries.d(5)).
import { open, readFile, readdir, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ErrorCode,
  RktError,
  digestAlgorithm,
  digestHex,
  formatJsonPath,
  parseDigest,
  type DockerRef,
} from "@rkt/oci";
import { createRequire } from "node:module";
import type * as Yaml from "yaml";
import { errorText } from "./key.js";

/**
 * `<base>/<repository>@<algorithm>=<hex>/signature-<index>`: the repository path without the
 * registry host, always the manifest digest (never the tag), `=` instead of `:`. `index` counts
 * from 1. Pure.
 */
export function lookasideSignatureUrl(
  base: string,
  repository: string,
  digest: string,
  index: number,
): string {
  if (!Number.isSafeInteger(index) || index < 1) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `lookaside signature index ${index} must be an integer >= 1`,
    );
  }
  const d = parseDigest(digest);
  return `${base.replace(/\/+$/, "")}/${repository}@${digestAlgorithm(d)}=${digestHex(d)}/signature-${index}`;
}

/**
 * The first `count` signature URLs for an image, in reading order. Readers fetch them in turn and
 * stop at the first missing one (there is no listing). Pure.
 */
export function lookasideSignatureUrls(
  base: string,
  repository: string,
  digest: string,
  count: number,
): string[] {
  return Array.from({ length: count }, (_, i) => lookasideSignatureUrl(base, repository, digest, i + 1));
}

/** The most signatures read from one lookaside directory; a guard against a runaway store. */
export const maxLookasideSignatures = 128;
/** The largest signature blob accepted (containers caps them at 4 MiB). */
export const maxSignatureBytes = 4 << 20;

/**
 * Reads `signature-1`, `signature-2`, … from a `file://` lookaside base until one is missing.
 * Returns the blobs in order ([] when there are none). Throws RKT_INVALID_ARGUMENT for a base that
 * is not a file URL, RKT_TOO_LARGE for an oversized blob, RKT_IO on read errors.
 */
export async function readLookasideSignatures(
  base: string,
  repository: string,
  digest: string,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 1; i <= maxLookasideSignatures; i++) {
    const path = filePath(lookasideSignatureUrl(base, repository, digest, i));
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") break;
      throw new RktError(ErrorCode.Io, `${path}: ${errorText(e)}`, { cause: e });
    }
    if (bytes.length > maxSignatureBytes) {
      throw new RktError(ErrorCode.TooLarge, `${path}: signature is larger than ${maxSignatureBytes} bytes`);
    }
    out.push(bytes);
  }
  return out;
}

/**
 * Stores a signature in a `file://` lookaside base at the first free index (created exclusively,
 * so concurrent writers never overwrite each other), 0644, and returns its path.
 */
export async function writeLookasideSignature(
  base: string,
  repository: string,
  digest: string,
  signature: Uint8Array,
): Promise<string> {
  for (let i = 1; i <= maxLookasideSignatures; i++) {
    const path = filePath(lookasideSignatureUrl(base, repository, digest, i));
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      const fh = await open(path, "wx", 0o644);
      try {
        await fh.writeFile(signature);
        await fh.sync();
      } catch (e) {
        await fh.close();
        await rm(path, { force: true });
        throw e;
      }
      await fh.close();
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw new RktError(ErrorCode.Io, `${path}: ${errorText(e)}`, { cause: e });
    }
  }
  throw new RktError(
    ErrorCode.TooLarge,
    `${base}: more than ${maxLookasideSignatures} signatures for ${repository}@${digest}`,
  );
}

/**
 * Stores each of `signatures` in a `file://` lookaside base unless an identical blob is already
 * there (a sync run again adds nothing). Returns how many were written. Errors as
 * {@link readLookasideSignatures} and {@link writeLookasideSignature}.
 */
export async function addLookasideSignatures(
  base: string,
  repository: string,
  digest: string,
  signatures: readonly Uint8Array[],
): Promise<number> {
  const have = await readLookasideSignatures(base, repository, digest);
  let written = 0;
  for (const s of signatures) {
    if (have.some((h) => Buffer.compare(h, s) === 0)) continue;
    await writeLookasideSignature(base, repository, digest, s);
    have.push(s);
    written++;
  }
  return written;
}

// yaml costs ~50 ms to import; load it (synchronously, through its CommonJS build) only when a
// registries.d file is parsed, so importing @rkt/trust stays cheap.
let yaml: typeof Yaml | undefined;
function loadYaml(): typeof Yaml {
  yaml ??= createRequire(import.meta.url)("yaml") as typeof Yaml;
  return yaml;
}

function filePath(url: string): string {
  if (!url.startsWith("file://")) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `lookaside ${JSON.stringify(url)}: only file:// bases are read here; https is read by the fetcher`,
    );
  }
  return fileURLToPath(url);
}

/** One scope of a registries.d file. */
export interface LookasideEntry {
  readonly lookaside?: string | undefined;
  readonly lookasideStaging?: string | undefined;
  readonly useSigstoreAttachments?: boolean | undefined;
}

/** A merged registries.d configuration. */
export interface RegistriesD {
  readonly defaultDocker?: LookasideEntry | undefined;
  /** Scope (`host`, `host/ns`, `host/ns/repo`, `host/ns/repo:tag`, `*.domain`) -> entry. */
  readonly docker: Readonly<Record<string, LookasideEntry>>;
}

const entryKeys: Record<string, keyof LookasideEntry> = {
  lookaside: "lookaside",
  sigstore: "lookaside",
  "lookaside-staging": "lookasideStaging",
  "sigstore-staging": "lookasideStaging",
  "use-sigstore-attachments": "useSigstoreAttachments",
};

/**
 * Parses one registries.d YAML file: `default-docker` and `docker: {scope: entry}`, entries with
 * `lookaside`/`lookaside-staging` (or their deprecated aliases `sigstore`/`sigstore-staging`, not
 * both) and `use-sigstore-attachments`. Unknown keys, wrong types, duplicate keys and non-URL
 * values are refused with RKT_INVALID_ARGUMENT `<source>: <path>: <problem>`. Pure.
 */
export function parseRegistriesD(text: string, source: string): RegistriesD {
  const doc = loadYaml().parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) fail(source, "$", doc.errors[0]!.message.split("\n")[0]!);
  const root: unknown = doc.toJS() ?? {};
  const top = mapping(root, source, []);
  let defaultDocker: LookasideEntry | undefined;
  const docker: Record<string, LookasideEntry> = {};
  for (const [k, v] of Object.entries(top)) {
    if (k === "default-docker") defaultDocker = parseEntry(v, source, [k]);
    else if (k === "docker") {
      for (const [scope, e] of Object.entries(mapping(v ?? {}, source, [k]))) {
        if (scope === "") fail(source, formatJsonPath([k, scope]), "empty scope; use default-docker");
        docker[scope] = parseEntry(e, source, [k, scope]);
      }
    } else fail(source, formatJsonPath([k]), "unknown field");
  }
  return { ...(defaultDocker === undefined ? {} : { defaultDocker }), docker };
}

/**
 * Merges the files of a registries.d directory; a scope (or `default-docker`) defined in two
 * files is an error, as in containers/image. Pure.
 */
export function mergeRegistriesD(files: readonly { source: string; config: RegistriesD }[]): RegistriesD {
  let defaultDocker: LookasideEntry | undefined;
  let defaultSource = "";
  const docker: Record<string, LookasideEntry> = {};
  const seen = new Map<string, string>();
  for (const { source, config } of files) {
    if (config.defaultDocker !== undefined) {
      if (defaultDocker !== undefined) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${source}: default-docker already defined in ${defaultSource}`,
        );
      }
      defaultDocker = config.defaultDocker;
      defaultSource = source;
    }
    for (const [scope, e] of Object.entries(config.docker)) {
      const prev = seen.get(scope);
      if (prev !== undefined) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${source}: docker scope ${JSON.stringify(scope)} already defined in ${prev}`,
        );
      }
      seen.set(scope, source);
      docker[scope] = e;
    }
  }
  return { ...(defaultDocker === undefined ? {} : { defaultDocker }), docker };
}

/**
 * Reads every `*.yaml` file of a registries.d directory (sorted by name) and merges them. A
 * missing directory is an empty configuration. Throws as `parseRegistriesD`/`mergeRegistriesD`,
 * RKT_IO on read errors.
 */
export async function readRegistriesD(dir: string): Promise<RegistriesD> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".yaml")).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { docker: {} };
    throw new RktError(ErrorCode.Io, `${dir}: ${errorText(e)}`, { cause: e });
  }
  const files = [];
  for (const n of names) {
    const source = join(dir, n);
    let text: string;
    try {
      text = await readFile(source, "utf8");
    } catch (e) {
      throw new RktError(ErrorCode.Io, `${source}: ${errorText(e)}`, { cause: e });
    }
    files.push({ source, config: parseRegistriesD(text, source) });
  }
  return mergeRegistriesD(files);
}

/**
 * The scopes a docker reference is looked up under, most specific first (containers/image
 * `PolicyConfigurationIdentity` then `PolicyConfigurationNamespaces`): `host/repo:tag` or
 * `host/repo@digest`, `host/repo`, each parent namespace, `host[:port]`, then `*.parent` wildcards
 * of the host without port. Shared by registries.d and policy.json. Pure.
 */
export function dockerScopes(ref: Pick<DockerRef, "registry" | "repository" | "tag" | "digest">): string[] {
  const name = `${ref.registry}/${ref.repository}`;
  const out: string[] = [];
  if (ref.digest !== undefined) out.push(`${name}@${ref.digest}`);
  else if (ref.tag !== undefined) out.push(`${name}:${ref.tag}`);
  const parts = name.split("/");
  for (let i = parts.length; i >= 1; i--) out.push(parts.slice(0, i).join("/"));
  const host = ref.registry.replace(/:\d+$/, "").split(".");
  for (let i = 1; i < host.length; i++) out.push(`*.${host.slice(i).join(".")}`);
  return out;
}

/** The default lookaside base when registries.d names none (containers' built-in). Pure. */
export function builtinLookaside(o: { uid: number; home: string }): string {
  return o.uid === 0
    ? "file:///var/lib/containers/sigstore"
    : `file://${o.home}/.local/share/containers/sigstore`;
}

/**
 * The lookaside base URL for `ref`: the most specific scope that names one wins, then
 * `default-docker`, then `fallback`. For `write`, a scope's staging URL is preferred over its
 * read URL (so signatures land where they are published from). Pure.
 */
export function lookasideFor(
  config: RegistriesD,
  ref: Pick<DockerRef, "registry" | "repository" | "tag" | "digest">,
  o: { write?: boolean | undefined; fallback?: string | undefined } = {},
): string | undefined {
  const pick = (e: LookasideEntry | undefined): string | undefined =>
    e === undefined ? undefined : ((o.write === true ? e.lookasideStaging : undefined) ?? e.lookaside);
  for (const scope of dockerScopes(ref)) {
    const url = pick(config.docker[scope]);
    if (url !== undefined) return url;
  }
  return pick(config.defaultDocker) ?? o.fallback;
}

function parseEntry(v: unknown, source: string, path: string[]): LookasideEntry {
  const m = mapping(v ?? {}, source, path);
  const out: Record<string, string | boolean> = {};
  for (const [k, val] of Object.entries(m)) {
    const field = entryKeys[k];
    const p = formatJsonPath([...path, k]);
    if (field === undefined) fail(source, p, "unknown field");
    if (field in out)
      fail(
        source,
        p,
        `duplicates ${field === "lookaside" ? "lookaside/sigstore" : "lookaside-staging/sigstore-staging"}`,
      );
    if (field === "useSigstoreAttachments") {
      if (typeof val !== "boolean") fail(source, p, "must be true or false");
      out[field] = val;
    } else {
      if (typeof val !== "string" || !/^(?:file|https?):\/\/./.test(val)) {
        fail(source, p, "must be a file://, http:// or https:// URL");
      }
      out[field] = val;
    }
  }
  return out;
}

function mapping(v: unknown, source: string, path: (string | number)[]): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Map) {
    fail(source, formatJsonPath(path), "must be a mapping");
  }
  return v as Record<string, unknown>;
}

function fail(source: string, path: string, why: string): never {
  throw new RktError(ErrorCode.InvalidArgument, `${source}: ${path}: ${why}`);
}
