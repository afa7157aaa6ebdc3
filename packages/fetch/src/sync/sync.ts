// `rkt image sync`: many images from source registries to one destination (a registry, an OCI
// layout, the local store), each a copyImage. Cheap when nothing changed: the destination's
// digest for a tag is compared with the source's before anything else (one HEAD per side), so an
// unchanged tag sends no blob and a changed one only what the destination lacks. A failing image
// is reported and the rest go on; an interrupted sync is resumed by running it again (committed
// images compare equal).
import { setMaxListeners } from "node:events";
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
  type ImageOrIndex,
  type Platform,
} from "@rkt/oci";
import type { RegistriesD } from "@rkt/trust";
import { readDockerSignatures } from "../docker-policy.js";
import { copyImage, copyProgress } from "../image/copy.js";
import { layoutSink } from "../image/layout.js";
import { registryImage, registrySink, type PushedBlobs } from "../image/registry.js";
import { runLimited } from "../limit.js";
import { openOciLayout, refNameAnnotation } from "../oci-layout.js";
import type { RegistryClient } from "../registry/client.js";
import { connectionsPerHost, type HttpOptions } from "../registry/http.js";
import type { SourceRegistry, SyncConfig } from "./config.js";
import { Slots } from "./slots.js";

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
  /**
   * What the comparison found at the source (the digest the destination should hold, and the
   * document when it had to be read): the copy moves exactly that, and does not compare again.
   * Absent for a target that compares by itself.
   */
  readonly source?: { readonly digest: Digest; readonly image?: ImageOrIndex | undefined } | undefined;
  /**
   * Waits for `p` (a blob another image of this sync is sending) without holding this image's
   * place among the `parallel` images moving bytes.
   */
  readonly park?: (<T>(p: Promise<T>) => Promise<T>) | undefined;
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
  /**
   * Images moving bytes at once; default 4. Comparisons run ahead of the copies (as many as a
   * host's connections), and an image waiting for a blob another image sends does not count.
   */
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
  const selections = config.registries.flatMap((src) => src.repositories.map((sel) => ({ src, sel })));
  // Tag lists are read at once (as many as a host's connections), then items made in config order.
  const listed = new Array<readonly string[]>(selections.length);
  const toList = selections.map((s, i) => ({ ...s, i })).filter(({ sel }) => sel.refs.length === 0);
  await runLimited(toList, connectionsPerHost, o.signal, async ({ src, sel, i }, signal) => {
    const tags = await client(src).listTags(sel.repository, { signal });
    listed[i] = sel.tagRegex === undefined ? tags : tags.filter((t) => sel.tagRegex!.test(t));
  });
  selections.forEach(({ src, sel }, i) => {
    for (const ref of listed[i] ?? sel.refs) add({ registry: src.host, repository: sel.repository, ref });
  });
  return items;
}

// What the source's tag names, as the destination would hold it: one HEAD; for an index copied
// without `all`, the platform's manifest (the index and that manifest read, and kept for the copy).
async function sourceManifest(
  item: SyncItem,
  o: SyncCopyOptions,
): Promise<{ digest: Digest; image?: ImageOrIndex | undefined }> {
  const desc = await o.client.resolve(item.repository, item.ref, o);
  if (o.all || !isIndexType(desc.mediaType)) return { digest: desc.digest };
  const top = await registryImage(o.client, item.repository, desc.digest, o);
  const image = await platformImage(top, o.platform, itemName(item), o);
  return { digest: image.descriptor.digest, image };
}

/**
 * Syncs `items` to `target`. Each image is compared first (one HEAD per side; equal →
 * `unchanged`, nothing sent), every image's comparison at once as far as a host's connections
 * go; the images that differ are then copied, `parallel` at a time (an image that waits for a
 * blob another one is sending gives its place to the next meanwhile). A failure is a `failed`
 * result with its error code and message, and the others go on (unless `failFast`). Returns the
 * results in item order.
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
  // Every image at once; the slots bound the work. The caller's signal, or the first failure
  // with failFast, aborts them all through `signal`, which every request in flight listens to
  // (as many as the slots allow, more than node's default warning threshold of 10).
  const stop = new AbortController();
  const signal = stop.signal;
  setMaxListeners(0, signal);
  const forward = (): void => stop.abort(o.signal?.reason);
  if (o.signal?.aborted === true) forward();
  o.signal?.addEventListener("abort", forward, { once: true });
  const comparing = new Slots(connectionsPerHost, signal);
  const copying = new Slots(o.parallel ?? 4, signal);
  const one = async ({ item, i }: { item: SyncItem; i: number }): Promise<void> => {
    const base = { source: itemName(item), destination: target.name(item) };
    const copyOptions: SyncCopyOptions = {
      client: o.client(sources.get(item.registry), item.registry),
      all: o.all === true,
      platform,
      signal,
      onProgress: o.onProgress,
    };
    let r: SyncResult;
    // An image aborted before it got a slot never started: no result of its own.
    let started = false;
    // Signatures of what the destination holds after this image, carried in the same slot.
    const withSignatures = async (x: SyncResult, digests: Digest[]): Promise<SyncResult> =>
      o.signatures === undefined || target.putSignatures === undefined
        ? x
        : { ...x, signatures: await carrySignatures(item, target, digests, copyOptions, o.signatures) };
    try {
      const compare = target.current?.bind(target);
      let want: { digest: Digest; image?: ImageOrIndex | undefined } | undefined;
      let done: SyncResult | undefined;
      if (compare !== undefined || o.dryRun === true) {
        const slot = await comparing.take();
        started = true;
        try {
          let have: Digest | undefined;
          [want, have] = await Promise.all([sourceManifest(item, copyOptions), compare?.(item, { signal })]);
          if (want.digest === have) {
            done = await withSignatures({ ...base, status: "unchanged", digest: want.digest, bytes: 0 }, [
              want.digest,
            ]);
          } else if (o.dryRun === true) done = { ...base, status: "planned", digest: want.digest };
        } finally {
          slot.release();
        }
      }
      if (done === undefined) {
        const slot = await copying.take();
        started = true;
        try {
          const c = await target.copy(item, { ...copyOptions, source: want, park: (p) => slot.park(p) });
          done = await withSignatures(
            {
              ...base,
              status: c.unchanged === true ? "unchanged" : "copied",
              digest: c.digest,
              bytes: c.bytes,
            },
            [...(c.digests ?? [parseDigest(c.digest)])],
          );
        } finally {
          slot.release();
        }
      }
      r = done;
    } catch (e) {
      if (signal.aborted && (!started || !isRktError(e, ErrorCode.Aborted))) throw e;
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
  };
  let failure: { e: unknown } | undefined;
  try {
    await Promise.all(
      indexed.map((x) =>
        one(x).catch((e: unknown) => {
          if (failure !== undefined) return;
          failure = { e };
          stop.abort(e);
        }),
      ),
    );
  } finally {
    o.signal?.removeEventListener("abort", forward);
  }
  if (failure !== undefined) throw failure.e;
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

// Copies what the comparison found (by digest: a tag moved since is synced next time), else
// what the tag names now. `compared`: the sink's own manifest check would repeat the target's.
async function copyFrom(
  item: SyncItem,
  o: SyncCopyOptions,
  sink: Parameters<typeof copyImage>[1],
  tag: string | undefined,
  compared: boolean,
): Promise<SyncCopied> {
  const src =
    o.source?.image ?? (await registryImage(o.client, item.repository, o.source?.digest ?? item.ref, o));
  const c = await copyImage(src, sink, {
    tag,
    all: o.all,
    platform: o.platform,
    origin: { registry: item.registry, repository: item.repository },
    ranged: true,
    compared: compared && o.source !== undefined,
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
    // `current` asked exactly what the sink's manifest check would.
    copy: (i, o) =>
      copyFrom(
        i,
        o,
        registrySink(client, repo(i), { pushed, park: o.park }),
        isDigestRef(i.ref) ? undefined : i.ref,
        true,
      ),
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
    // The layout's own check compares the converted manifest, which `current` cannot.
    copy: (i, o) => copyFrom(i, o, layoutSink(dir), refName(i), false),
  };
}
