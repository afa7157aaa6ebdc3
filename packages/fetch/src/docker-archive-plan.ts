// What a `docker save` archive holds, worked out from its entry list and small JSON documents
// (no layer byte is read here): the images of `manifest.json` (the current form) or of the legacy
// `repositories` + `<id>/json` chain, each with its config and the archive entries of its layers.
// Shared by `rkt image validate --type docker-archive` and `rkt fetch docker-archive:`, so both
// accept and refuse the same archives with the same words. Pure.
import { posix } from "node:path";
import {
  ErrorCode,
  MediaType,
  RktError,
  digestOf,
  parseDockerReference,
  parseImageConfig,
  parseJsonStrict,
  type Digest,
  type DockerRef,
} from "@rkt/oci";

/** One tar entry as the first pass saw it. Link targets are archive paths, already resolved. */
export interface ArchiveEntry {
  readonly type: "file" | "link" | "other";
  readonly size: number;
  readonly target?: string | undefined;
  /** How many regular-file entries carry this name (tar extraction keeps the last). */
  readonly occurrences?: number | undefined;
}

/** The first pass's result: every entry, and the bodies of the small documents. */
export interface ArchiveIndex {
  readonly entries: ReadonlyMap<string, ArchiveEntry>;
  readonly docs: ReadonlyMap<string, Uint8Array>;
}

/** A problem found in the archive; `path` is a JSONPath into manifest.json (or repositories). */
export interface ArchiveIssue {
  readonly path: string;
  readonly message: string;
}

/** One layer of a planned image. */
export interface PlannedLayer {
  /** The regular-file entry holding it (links followed). */
  readonly entry: string;
  /** As written in the archive (for messages). */
  readonly name: string;
  readonly size: number;
  /** From the config; absent for legacy images (computed while reading). */
  readonly diffId?: Digest | undefined;
  /** JSONPath for issues about this layer. */
  readonly path: string;
}

/** One image of the archive. */
export interface PlannedImage {
  /** Position: `@N` selects it. */
  readonly index: number;
  readonly repoTags: readonly string[];
  /** manifest.json form: the config as stored, and its digest (Docker's image ID). */
  readonly config?: { readonly bytes: Uint8Array; readonly digest: Digest } | undefined;
  /** Legacy form: the v1 image JSON documents, base first; the config is made from them. */
  readonly legacy?: readonly Record<string, unknown>[] | undefined;
  readonly layers: readonly PlannedLayer[];
  /** The issues that concern this image (it cannot be imported while there are any). */
  readonly issues: readonly ArchiveIssue[];
}

/** {@link planDockerArchive}'s result. */
export interface ArchivePlan {
  readonly form: "manifest" | "legacy";
  readonly images: readonly PlannedImage[];
  readonly issues: readonly ArchiveIssue[];
}

/** Which small entries the first pass keeps in memory (configs and the index documents). */
export function isArchiveDocument(name: string): boolean {
  return (
    name === "manifest.json" ||
    name === "repositories" ||
    /^[^/]+\.json$/.test(name) ||
    /^[0-9a-f]{64}\/json$/.test(name) ||
    /^blobs\/sha256\/[0-9a-f]{64}$/.test(name)
  );
}

const maxLinkHops = 8;

// Follows symlinks and hard links (skopeo links `<id>/layer.tar` to `../<diffid>.tar`) to a
// regular file; undefined when the chain ends nowhere, loops or leaves the archive.
export function resolveEntry(
  index: ArchiveIndex,
  name: string,
): { name: string; entry: ArchiveEntry } | undefined {
  let n = cleanName(name);
  for (let hop = 0; hop <= maxLinkHops && n !== undefined; hop++) {
    const e = index.entries.get(n);
    if (e === undefined) return undefined;
    if (e.type === "file") return { name: n, entry: e };
    if (e.type !== "link" || e.target === undefined) return undefined;
    n = cleanName(e.target);
  }
  return undefined;
}

// Archive-relative, normalised; undefined for names leaving the archive.
function cleanName(name: string): string | undefined {
  const n = posix.normalize(name).replace(/^\.\/+/, "");
  if (n === "." || n === ".." || n.startsWith("../") || n.startsWith("/")) return undefined;
  return n;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// A config named after its digest (`<hex>.json`, or `blobs/sha256/<hex>` in Docker 25+ archives)
// is checked against it.
function digestFromName(name: string): Digest | undefined {
  const m = /^(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(name);
  return m === null ? undefined : (`sha256:${m[1]}` as Digest);
}

function readDoc(index: ArchiveIndex, name: string): Uint8Array | "missing" | "large" {
  const r = resolveEntry(index, name);
  if (r === undefined) return "missing";
  return index.docs.get(r.name) ?? "large";
}

/**
 * Works out the images of an archive from its first-pass index. The current form: `manifest.json`,
 * an array of `{Config, RepoTags, Layers}`; each config must parse as an image config (and match
 * the digest its name carries), list as many diff_ids as there are layers, and each layer must
 * be a file of the archive. Without manifest.json, the legacy form: `repositories`
 * (`{repo: {tag: id}}`), each id's `<id>/json` chain through `parent` and `<id>/layer.tar`.
 * Every issue is reported, with JSONPaths rooted at the document it concerns.
 */
export function planDockerArchive(index: ArchiveIndex): ArchivePlan {
  if (index.entries.has("manifest.json")) return planManifest(index);
  if (index.entries.has("repositories")) return planLegacy(index);
  return {
    form: "manifest",
    images: [],
    issues: [{ path: "$", message: "manifest.json is missing (and there is no legacy repositories file)" }],
  };
}

function planManifest(index: ArchiveIndex): ArchivePlan {
  const none = (message: string, path = "$"): ArchivePlan => ({
    form: "manifest",
    images: [],
    issues: [{ path, message }],
  });
  const raw = readDoc(index, "manifest.json");
  if (raw === "missing") return none("manifest.json is missing");
  if (raw === "large") return none("manifest.json is too large");
  const j = parseJsonStrict(raw);
  if (!j.ok)
    return {
      form: "manifest",
      images: [],
      issues: j.issues.map((i) => ({ ...i, message: `manifest.json: ${i.message}` })),
    };
  if (!Array.isArray(j.value)) return none("manifest.json must be a JSON array");
  if (j.value.length === 0) return none("manifest.json lists no images");
  const issues: ArchiveIssue[] = [];
  const images: PlannedImage[] = [];
  for (const [i, entry] of (j.value as unknown[]).entries()) {
    const p = `$[${i}]`;
    const before = issues.length;
    if (!isObject(entry)) {
      issues.push({ path: p, message: "must be an object" });
      images.push({ index: i, repoTags: [], layers: [], issues: issues.slice(before) });
      continue;
    }
    const tags = entry["RepoTags"];
    let repoTags: string[] = [];
    if (Array.isArray(tags) && tags.every((t) => typeof t === "string")) repoTags = tags;
    else if (tags !== undefined && tags !== null)
      issues.push({ path: `${p}.RepoTags`, message: "must be an array of strings" });
    const layerNames = entry["Layers"];
    if (!Array.isArray(layerNames) || !layerNames.every((l) => typeof l === "string"))
      issues.push({ path: `${p}.Layers`, message: "must be an array of file names" });
    const config = planConfig(index, entry["Config"], `${p}.Config`, issues);
    const diffIds = config?.diffIds;
    const layers: PlannedLayer[] = [];
    if (Array.isArray(layerNames)) {
      if (diffIds !== undefined && diffIds.length !== layerNames.length) {
        issues.push({
          path: `${p}.Layers`,
          message: `${layerNames.length} layers but the config lists ${diffIds.length} diff_ids`,
        });
      }
      for (const [k, l] of layerNames.entries()) {
        if (typeof l !== "string") continue;
        const lp = `${p}.Layers[${k}]`;
        const r = resolveEntry(index, l);
        if (r === undefined) {
          issues.push({
            path: lp,
            message:
              cleanName(l) === undefined
                ? `${JSON.stringify(l)} is outside the archive`
                : `layer ${l} is missing`,
          });
          continue;
        }
        layers.push({ entry: r.name, name: l, size: r.entry.size, diffId: diffIds?.[k], path: lp });
      }
    }
    images.push({
      index: i,
      repoTags,
      config: config === undefined ? undefined : { bytes: config.bytes, digest: config.digest },
      layers,
      issues: issues.slice(before),
    });
  }
  return { form: "manifest", images, issues };
}

function planConfig(
  index: ArchiveIndex,
  name: unknown,
  path: string,
  issues: ArchiveIssue[],
): { bytes: Uint8Array; digest: Digest; diffIds: readonly Digest[] } | undefined {
  if (typeof name !== "string" || name === "") {
    issues.push({ path, message: "must name the config file" });
    return undefined;
  }
  if (cleanName(name) === undefined) {
    issues.push({ path, message: `${JSON.stringify(name)} is outside the archive` });
    return undefined;
  }
  const bytes = readDoc(index, name);
  if (bytes === "missing") {
    issues.push({ path, message: `config ${name} is missing` });
    return undefined;
  }
  if (bytes === "large") {
    issues.push({ path, message: `config ${name} is too large` });
    return undefined;
  }
  const digest = digestOf(bytes);
  const want = digestFromName(cleanName(name) ?? name);
  if (want !== undefined && digest !== want)
    issues.push({ path, message: `config ${name}: digest mismatch: expected ${want}, got ${digest}` });
  const r = parseImageConfig(bytes);
  if (!r.ok) {
    for (const x of r.issues)
      issues.push({ path: path + x.path.slice(1), message: `config ${name}: ${x.message}` });
    return undefined;
  }
  return { bytes, digest, diffIds: r.value.rootfs.diff_ids };
}

// Legacy archives chain layers through `parent`; bound the walk so a cycle cannot loop.
const maxLegacyLayers = 1000;

function planLegacy(index: ArchiveIndex): ArchivePlan {
  const none = (message: string): ArchivePlan => ({
    form: "legacy",
    images: [],
    issues: [{ path: "$", message }],
  });
  const raw = readDoc(index, "repositories");
  if (raw === "missing" || raw === "large")
    return none(`repositories is ${raw === "missing" ? "missing" : "too large"}`);
  const j = parseJsonStrict(raw);
  if (!j.ok)
    return {
      form: "legacy",
      images: [],
      issues: j.issues.map((i) => ({ ...i, message: `repositories: ${i.message}` })),
    };
  if (!isObject(j.value)) return none("repositories must be a JSON object");
  const issues: ArchiveIssue[] = [];
  // Images in order of first mention; each top layer id is one image with all its tags.
  const tops = new Map<string, { tags: string[]; path: string }>();
  for (const [repo, tagMap] of Object.entries(j.value)) {
    const rp = `$[${JSON.stringify(repo)}]`;
    if (!isObject(tagMap)) {
      issues.push({ path: rp, message: "must map tags to layer ids" });
      continue;
    }
    for (const [tag, id] of Object.entries(tagMap)) {
      const tp = `${rp}[${JSON.stringify(tag)}]`;
      if (typeof id !== "string" || !/^[0-9a-f]{64}$/.test(id)) {
        issues.push({ path: tp, message: "must be a 64-hex layer id" });
        continue;
      }
      const t = tops.get(id) ?? { tags: [], path: tp };
      t.tags.push(`${repo}:${tag}`);
      tops.set(id, t);
    }
  }
  if (tops.size === 0 && issues.length === 0) return none("repositories lists no images");
  const images: PlannedImage[] = [];
  for (const [top, { tags, path }] of tops) {
    const before = issues.length;
    const chain: { id: string; json: Record<string, unknown> }[] = [];
    for (let id: unknown = top; id !== undefined && id !== null && id !== "";) {
      if (typeof id !== "string" || !/^[0-9a-f]{64}$/.test(id)) {
        issues.push({
          path,
          message: `layer ${chain[chain.length - 1]?.id ?? top}: parent must be a 64-hex layer id`,
        });
        break;
      }
      if (chain.length >= maxLegacyLayers || chain.some((c) => c.id === id)) {
        issues.push({
          path,
          message: `layer ${id}: parent chain loops or is longer than ${maxLegacyLayers}`,
        });
        break;
      }
      const doc = readDoc(index, `${id}/json`);
      const parsed = doc instanceof Uint8Array ? parseJsonStrict(doc) : undefined;
      if (parsed === undefined || !parsed.ok || !isObject(parsed.value)) {
        issues.push({
          path,
          message: `layer ${id}: ${doc === "missing" ? `${id}/json is missing` : `${id}/json is not a JSON object`}`,
        });
        break;
      }
      chain.push({ id, json: parsed.value });
      id = parsed.value["parent"];
    }
    chain.reverse();
    const layers: PlannedLayer[] = [];
    for (const c of chain) {
      const name = `${c.id}/layer.tar`;
      const r = resolveEntry(index, name);
      if (r === undefined) issues.push({ path, message: `layer ${name} is missing` });
      else layers.push({ entry: r.name, name, size: r.entry.size, path });
    }
    images.push({
      index: images.length,
      repoTags: tags,
      legacy: chain.map((c) => c.json),
      layers,
      issues: issues.slice(before),
    });
  }
  return { form: "legacy", images, issues };
}

/** How `docker-archive:FILE[:REF]` picks an image. */
export interface ArchiveSelector {
  readonly ref?: DockerRef | undefined;
  readonly digest?: Digest | undefined;
  readonly index?: number | undefined;
}

function sameRef(tag: string, want: DockerRef): boolean {
  try {
    const r = parseDockerReference(tag);
    return r.registry === want.registry && r.repository === want.repository && r.tag === want.tag;
  } catch {
    return false;
  }
}

function describeImage(img: PlannedImage): string {
  return `@${img.index} (${img.repoTags.length > 0 ? img.repoTags.join(", ") : "untagged"})`;
}

/**
 * Picks the image a selector names: `NAME:TAG` among RepoTags (normalised as registry
 * references, so `busybox:1` matches `docker.io/library/busybox:1`), `@DIGEST` as the config
 * digest (Docker's image ID; manifest.json form only), `@N` by position; no selector needs an
 * archive of one image. RKT_NOT_FOUND / RKT_AMBIGUOUS, the message listing what the archive holds.
 */
export function selectArchiveImage(plan: ArchivePlan, sel: ArchiveSelector): PlannedImage {
  const holds = `the archive holds ${plan.images.map(describeImage).join("; ")}`;
  let found: PlannedImage | undefined;
  if (sel.index !== undefined) {
    found = plan.images[sel.index];
    if (found === undefined) throw new RktError(ErrorCode.NotFound, `no image @${sel.index}: ${holds}`);
    return found;
  }
  if (sel.digest !== undefined) {
    if (plan.form === "legacy")
      throw new RktError(
        ErrorCode.InvalidArgument,
        `a legacy archive (repositories, no manifest.json) selects by NAME:TAG or @N, not @DIGEST`,
      );
    found = plan.images.find((i) => i.config?.digest === sel.digest);
    if (found === undefined)
      throw new RktError(ErrorCode.NotFound, `no image with config ${sel.digest}: ${holds}`);
    return found;
  }
  if (sel.ref !== undefined) {
    const want = sel.ref;
    found = plan.images.find((i) => i.repoTags.some((t) => sameRef(t, want)));
    if (found === undefined) throw new RktError(ErrorCode.NotFound, `no image tagged ${want.raw}: ${holds}`);
    return found;
  }
  if (plan.images.length === 1) return plan.images[0]!;
  throw new RktError(
    ErrorCode.Ambiguous,
    `the archive holds ${plan.images.length} images, name one with :NAME:TAG or :@N: ${plan.images.map(describeImage).join("; ")}`,
  );
}

function pick(src: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (src[k] !== undefined && src[k] !== null) out[k] = src[k];
  return out;
}

function createdBy(v1: Record<string, unknown>): string | undefined {
  const cc = v1["container_config"];
  const cmd = isObject(cc) ? cc["Cmd"] : undefined;
  return Array.isArray(cmd) && cmd.every((c) => typeof c === "string") ? cmd.join(" ") : undefined;
}

/**
 * The image config of a legacy image, as `docker load` derives it: the top layer's v1 JSON
 * (architecture, os, config, …) with `rootfs.diff_ids` from the layers read and one history entry
 * per layer. Key order is fixed, so the same archive always gives the same bytes (and image ID).
 */
export function legacyConfig(
  chain: readonly Record<string, unknown>[],
  diffIds: readonly Digest[],
): Uint8Array {
  const top = chain[chain.length - 1] ?? {};
  const config = {
    ...pick(top, [
      "architecture",
      "os",
      "created",
      "author",
      "config",
      "container",
      "container_config",
      "docker_version",
    ]),
    os: typeof top["os"] === "string" ? top["os"] : "linux",
    architecture: typeof top["architecture"] === "string" ? top["architecture"] : "amd64",
    rootfs: { type: "layers", diff_ids: diffIds },
    history: chain.map((v1) => ({
      ...pick(v1, ["created", "author", "comment"]),
      ...(createdBy(v1) === undefined ? {} : { created_by: createdBy(v1) }),
    })),
  };
  return Buffer.from(JSON.stringify(config));
}

/** A layer as the synthesized manifest describes it. */
export interface ManifestLayer {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
}

/**
 * The Docker schema2 manifest recorded for an archive image: the config as stored (Docker's
 * config type) and the layers as stored (uncompressed `rootfs.diff.tar`, or the compressed type
 * of a layer the archive held compressed). Compact JSON in a fixed key order: the same archive
 * always yields the same manifest digest, so a re-import gives the same image ID.
 */
export function archiveManifest(
  config: { digest: Digest; size: number },
  layers: readonly ManifestLayer[],
): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, size: config.size, digest: config.digest },
      layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
    }),
  );
}
