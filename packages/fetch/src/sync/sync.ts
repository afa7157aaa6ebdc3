// `rkt image sync`: many images from source registries to one destination (a registry, an OCI
// layout, the local store), each a copyImage. Cheap when nothing changed: the destination's
// digest for a tag is compared with the source's before anything else (one HEAD per side), so an
// unchanged tag sends no blob and a changed one only what the destination lacks. A failing image
// is reported and the rest go on; an interrupted sync is resumed by running it again (committed
// images compare equal).
import {
  ErrorCode,
  RktError,
  hostPlatform,
  isIndexType,
  isRktError,
  parseDigest,
  parseDockerReference,
  platformImage,
  type Abortable,
  type BlobProgress,
  type Digest,
  type DockerRef,
  type Platform,
} from "@rkt/oci";
import type { RegistriesD } from "@rkt/trust";
import { readDockerSignatures } from "../docker-policy.js";
import type { HttpOptions } from "../registry/http.js";
import { copyImage, copyProgress } from "../image/copy.js";
import { layoutSink } from "../image/layout.js";
import { registryImage, registrySink, type PushedBlobs } from "../image/registry.js";
import { runLimited } from "../limit.js";
import { openOciLayout, refNameAnnotation } from "../oci-layout.js";
import type { RegistryClient } from "../registry/client.js";
import type { SourceRegistry, SyncConfig } from "./config.js";

/** One image to sync: a tag or digest of a source repository. */
export interface SyncItem {
  readonly registry: string;
  readonly repository: string;
  /** A tag, or a digest (`sha256:…`). */
  readonly ref: string;
}

/** `docker://registry/repository:tag` (or `@digest`). */
export function itemName(i: SyncItem): string {
  return `docker://${i.registry}/${i.repository}${i.ref.includes(":") ? "@" : ":"}${i.ref}`;
}

/** Where the images go, and how to tell what is already there. */
export interface SyncTarget {
  /** The destination of `item`, for messages and summaries. */
  name(item: SyncItem): string;
  /**
   * The digest the destination holds for `item`'s tag, or undefined. Absent: the target compares
   * by itself in `copy` (the store, whose pull policy does the same HEAD).
   */
  current?(item: SyncItem, o: Abortable): Promise<Digest | undefined>;
  /** Copies `item` there; the digest written, the blob bytes sent, and whether it was already there. */
  copy(item: SyncItem, o: SyncCopyOptions): Promise<SyncCopied>;
  /**
   * Stores the source's signatures of `digests` (the manifests the destination holds for
   * `item`) where the destination keeps signatures, if it is configured for it; `read` gives a
   * digest's signatures at the source. Returns how many were added (0 when they were there).
   */
  putSignatures?(
    item: SyncItem,
    digests: readonly Digest[],
    read: (digest: Digest) => Promise<readonly Uint8Array[]>,
    o: Abortable & { readonly signatures: SyncSignatureOptions },
  ): Promise<number>;
}

/** Where a sync finds signatures and puts them: containers' registries.d (both ends). */
export interface SyncSignatureOptions {
  readonly registriesD: RegistriesD;
  /** Containers' built-in lookaside: read for sources registries.d names none for. */
  readonly defaultLookaside?: string | undefined;
  /** TLS/HTTP for `https://` lookasides. */
  readonly http?: HttpOptions | undefined;
}

/** What a target's copy did. */
export interface SyncCopied {
  readonly digest: string;
  /** Every manifest written (an index and its images with `all`); default `[digest]`. */
  readonly digests?: readonly Digest[] | undefined;
  readonly bytes: number;
  /** The target found it unchanged (nothing sent). */
  readonly unchanged?: boolean | undefined;
}

/** What a target's copy gets. */
export interface SyncCopyOptions extends Abortable {
  readonly client: RegistryClient;
  readonly all: boolean;
  readonly platform: Platform;
  /** Blob progress of the copy (registry and layout targets). */
  readonly onProgress?: ((p: BlobProgress) => void) | undefined;
}

/** How one image went. */
export interface SyncResult {
  readonly source: string;
  readonly destination: string;
  /** `planned`: a dry run's "would copy". */
  readonly status: "copied" | "unchanged" | "failed" | "planned";
  readonly digest?: string | undefined;
  /** Blob bytes sent to the destination. */
  readonly bytes?: number | undefined;
  /** Signatures added at the destination (with {@link SyncOptions.signatures}). */
  readonly signatures?: number | undefined;
  readonly error?: { readonly code: string; readonly message: string } | undefined;
}

/** Options of {@link syncImages}. */
export interface SyncOptions extends Abortable {
  /** A client for a source registry (its credentials and TLS from the config entry); the caller closes it. */
  client(source: SourceRegistry | undefined, registry: string): RegistryClient;
  /** Images synced at once; default 4. */
  parallel?: number | undefined;
  /** Every platform of an index; default the host's (`platform`) only, as skopeo sync. */
  all?: boolean | undefined;
  platform?: Platform | undefined;
  /** Stop at the first failure (skopeo's default); default false: keep going. */
  failFast?: boolean | undefined;
  /** Compare only, copy nothing: `planned` for what would move. */
  dryRun?: boolean | undefined;
  /**
   * Carry simple-signing signatures (the source's lookaside and registry extension) to the
   * destination's, when the target is configured for them; a copied or unchanged image whose
   * signatures cannot be carried fails.
   */
  signatures?: SyncSignatureOptions | undefined;
  onResult?: ((r: SyncResult) => void) | undefined;
  /** Blob progress of every image being copied (blobs of images in parallel interleave). */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/**
 * The images `config` names, tag lists read from the registries for `images` entries without
 * tags and for `images-by-tag-regex`. A registry that cannot be listed fails here (before any
 * transfer) with its error.
 */
export async function planSync(
  config: SyncConfig,
  client: (source: SourceRegistry) => RegistryClient,
  o: Abortable = {},
): Promise<SyncItem[]> {
  const items: SyncItem[] = [];
  const seen = new Set<string>();
  const add = (i: SyncItem): void => {
    const k = itemName(i);
    if (seen.has(k)) return;
    seen.add(k);
    items.push(i);
  };
  for (const src of config.registries) {
    for (const sel of src.repositories) {
      let refs = sel.refs;
      if (refs.length === 0) {
        const tags = await client(src).listTags(sel.repository, o);
        refs = sel.tagRegex === undefined ? tags : tags.filter((t) => sel.tagRegex!.test(t));
      }
      for (const ref of refs) add({ registry: src.host, repository: sel.repository, ref });
    }
  }
  return items;
}

// The digest the source's tag names, as the destination would hold it: for an index copied
// without `all`, the host platform's manifest.
async function sourceDigest(item: SyncItem, o: SyncCopyOptions): Promise<Digest> {
  const desc = await o.client.resolve(item.repository, item.ref, o);
  if (o.all || !isIndexType(desc.mediaType)) return desc.digest;
  const top = await registryImage(o.client, item.repository, desc.digest);
  return (await platformImage(top, o.platform, itemName(item), o)).descriptor.digest;
}

/**
 * Syncs `items` to `target`, `parallel` images at a time. Each image: compared first (equal →
 * `unchanged`, nothing sent), then copied; a failure is a `failed` result with its error code
 * and message, and the others go on (unless `failFast`). Returns the results in item order.
 */
export async function syncImages(
  items: readonly SyncItem[],
  target: SyncTarget,
  sources: ReadonlyMap<string, SourceRegistry>,
  o: SyncOptions,
): Promise<SyncResult[]> {
  const results: SyncResult[] = new Array<SyncResult>(items.length);
  const indexed = items.map((item, i) => ({ item, i }));
  const platform = o.platform ?? hostPlatform();
  await runLimited(indexed, o.parallel ?? 4, o.signal, async ({ item, i }, signal) => {
    const base = { source: itemName(item), destination: target.name(item) };
    const copyOptions: SyncCopyOptions = {
      client: o.client(sources.get(item.registry), item.registry),
      all: o.all === true,
      platform,
      signal,
      onProgress: o.onProgress,
    };
    let r: SyncResult;
    try {
      const compare = target.current?.bind(target);
      const [want, have] = await Promise.all([
        compare === undefined && o.dryRun !== true ? undefined : sourceDigest(item, copyOptions),
        compare?.(item, { signal }),
      ]);
      let digests: Digest[] | undefined;
      if (want !== undefined && want === have) {
        r = { ...base, status: "unchanged", digest: want, bytes: 0 };
        digests = [want];
      } else if (o.dryRun === true) r = { ...base, status: "planned", digest: want };
      else {
        const c = await target.copy(item, copyOptions);
        r = {
          ...base,
          status: c.unchanged === true ? "unchanged" : "copied",
          digest: c.digest,
          bytes: c.bytes,
        };
        digests = [...(c.digests ?? [parseDigest(c.digest)])];
      }
      if (digests !== undefined && o.signatures !== undefined && target.putSignatures !== undefined) {
        r = { ...r, signatures: await carrySignatures(item, target, digests, copyOptions, o.signatures) };
      }
    } catch (e) {
      if (signal.aborted && !isRktError(e, ErrorCode.Aborted)) throw e;
      const code = isRktError(e) ? e.code : ErrorCode.Io;
      r = { ...base, status: "failed", error: { code, message: e instanceof Error ? e.message : String(e) } };
      if (o.failFast === true) {
        results[i] = r;
        o.onResult?.(r);
        throw new RktError(code, `${base.source}: ${r.error!.message}`, { cause: e });
      }
    }
    results[i] = r;
    o.onResult?.(r);
  });
  return results;
}

// The source's signatures of what the destination now holds, handed to the target (read once
// per digest, and only if the target asks). A target that does not compare by itself (the
// store, which resolves an index to a platform) also gets the tag's own digest: admission
// checks a signature over the index first.
async function carrySignatures(
  item: SyncItem,
  target: SyncTarget,
  digests: Digest[],
  o: SyncCopyOptions,
  signatures: SyncSignatureOptions,
): Promise<number> {
  const ref = parseDockerReference(
    `${item.registry}/${item.repository}${isDigestRef(item.ref) ? "@" : ":"}${item.ref}`,
  );
  const all = new Set(digests);
  if (target.current === undefined) all.add((await o.client.resolve(item.repository, item.ref, o)).digest);
  const cache = new Map<string, Promise<Uint8Array[]>>();
  const read = (digest: Digest): Promise<Uint8Array[]> => {
    let p = cache.get(digest);
    if (p === undefined) {
      p = readDockerSignatures({ ref, client: o.client, signal: o.signal }, digest, signatures);
      cache.set(digest, p);
    }
    return p;
  };
  return target.putSignatures!(item, [...all], read, { signatures, signal: o.signal });
}

/**
 * Stores signatures of `ref`'s `digests` where this machine keeps them for `ref`: registries.d's
 * write location for it (`lookaside-staging`, else `lookaside`), else `fallback` (containers'
 * built-in directory), when that is a `file://` directory; identical blobs already there are
 * skipped. What a `rkt:` sync destination does, so that this node's later admissions and
 * `save --bundle` find them. Returns how many were added.
 */
export async function storeLookasideSignatures(
  ref: DockerRef,
  digests: readonly Digest[],
  read: (digest: Digest) => Promise<readonly Uint8Array[]>,
  o: { readonly registriesD: RegistriesD; readonly fallback?: string | undefined },
): Promise<number> {
  const { addLookasideSignatures, lookasideFor } = await import("@rkt/trust");
  const base = lookasideFor(o.registriesD, ref, { write: true, fallback: o.fallback });
  if (base === undefined || !base.startsWith("file://")) return 0;
  let n = 0;
  for (const d of digests) n += await addLookasideSignatures(base, ref.repository, d, await read(d));
  return n;
}

async function copyFrom(
  item: SyncItem,
  o: SyncCopyOptions,
  sink: Parameters<typeof copyImage>[1],
  tag: string | undefined,
): Promise<SyncCopied> {
  const src = await registryImage(o.client, item.repository, item.ref);
  const c = await copyImage(src, sink, {
    tag,
    all: o.all,
    platform: o.platform,
    origin: { registry: item.registry, repository: item.repository },
    ranged: true,
    signal: o.signal,
    onProgress: copyProgress(o.onProgress),
  });
  const digests = [c.descriptor.digest];
  if (c.image === undefined && src.kind === "index")
    digests.push(...src.index.manifests.map((d) => d.digest));
  return { digest: c.descriptor.digest, digests, bytes: c.bytes.written };
}

const isDigestRef = (ref: string): boolean => ref.includes(":");

/**
 * A registry destination `registry[/prefix]`: `<prefix>/<repository>` (with `scoped`, the source
 * registry's host as first component, as skopeo's `--scoped`), the same tag. Blobs already there
 * are skipped by `HEAD`, blobs of the same registry mounted, and a blob this sync already sent to
 * another repository is mounted from there.
 */
export function registryTarget(
  client: RegistryClient,
  registry: string,
  prefix: string,
  scoped = false,
): SyncTarget {
  // Blobs sent to one repository are mounted into the next (images of a sync share base layers).
  const pushed: PushedBlobs = new Map();
  const repo = (i: SyncItem): string =>
    [prefix, scoped ? i.registry.replace(/:/g, "_") : "", i.repository].filter((p) => p !== "").join("/");
  return {
    name: (i) => `docker://${registry}/${repo(i)}${isDigestRef(i.ref) ? "@" : ":"}${i.ref}`,
    async current(i, o) {
      try {
        return (await client.resolve(repo(i), i.ref, o)).digest;
      } catch (e) {
        if (isRktError(e, ErrorCode.NotFound)) return undefined;
        throw e;
      }
    },
    copy: (i, o) =>
      copyFrom(i, o, registrySink(client, repo(i), { pushed }), isDigestRef(i.ref) ? undefined : i.ref),
    // The destination's lookaside as registries.d names it (a file:// one is written; http(s) is
    // read-only), and its signatures extension when /v2/ announces it.
    async putSignatures(i, digests, read, o) {
      const dest = parseDockerReference(`${registry}/${repo(i)}${isDigestRef(i.ref) ? "@" : ":"}${i.ref}`);
      const { lookasideFor } = await import("@rkt/trust");
      const configured = lookasideFor(o.signatures.registriesD, dest, { write: true }) !== undefined;
      const extension = await client.signaturesSupported(o);
      if (!configured && !extension) return 0;
      const onlyConfigured = { registriesD: o.signatures.registriesD };
      let n = configured ? await storeLookasideSignatures(dest, digests, read, onlyConfigured) : 0;
      if (extension) {
        for (const d of digests) {
          const have = (await client.getSignatures(repo(i), d, o)) ?? [];
          for (const s of await read(d)) {
            if (have.some((h) => Buffer.compare(h, s) === 0)) continue;
            await client.putSignature(repo(i), d, s, o);
            n++;
          }
        }
      }
      return n;
    },
  };
}

/**
 * An OCI layout destination: one layout holding every image, each under the ref name
 * `<registry>/<repository>:<tag>` (blobs shared between images on the transfer medium). A Docker
 * image is converted to OCI types on the way (a layout holds OCI documents), so its digest there
 * differs from the source's and the comparison cannot say "unchanged": it is copied again, but
 * every blob is found present and only its manifest is written.
 */
export function layoutTarget(dir: string): SyncTarget {
  const refName = (i: SyncItem): string =>
    `${i.registry}/${i.repository}${isDigestRef(i.ref) ? "@" : ":"}${i.ref}`;
  return {
    name: (i) => `oci:${dir}:${refName(i)}`,
    async current(i) {
      try {
        const layout = await openOciLayout(dir);
        return layout.index.manifests.find((m) => m.annotations?.[refNameAnnotation] === refName(i))?.digest;
      } catch (e) {
        if (isRktError(e, ErrorCode.NotFound)) return undefined;
        throw e;
      }
    },
    copy: (i, o) => copyFrom(i, o, layoutSink(dir), refName(i)),
  };
}
