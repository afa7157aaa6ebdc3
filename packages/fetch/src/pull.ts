// Registry pulls into the store (`rkt fetch docker://…`): the pull policies decide whether the
// registry is asked at all; the registry client moves and verifies bytes; the store's generic
// OCI import records the image. Blobs the store already holds are never downloaded, so an
// unchanged tag costs one manifest HEAD and a changed one only its new blobs (rkt #3924, #3831).
import {
  ErrorCode,
  RktError,
  formatDockerReference,
  hostPlatform,
  isIndexType,
  isRktError,
  platformImage,
  type Abortable,
  type Descriptor,
  type Digest,
  type DockerRef,
  type Platform,
} from "@rkt/oci";
import { getImage, getRemote, imageContent, recordRemote, touchImage, type LocalStore } from "@rkt/store";
import type { DockerImageVerifier } from "./docker-policy.js";
import { copyImage } from "./image/copy.js";
import { registryImage } from "./image/registry.js";
import { storeSink } from "./image/store.js";
import { RegistryClient, type BlobProgress } from "./registry/client.js";
import type { CredentialsProvider } from "./registry/credentials.js";
import type { InsecureOptions } from "./registry/http.js";
import { pullSources, type PullSource, type RegistriesConf } from "./registries-conf.js";

/** rkt's pull policies: `new` (store first), `update` (ask the registry; fetch default), `never` (store only). */
export type PullPolicy = "new" | "update" | "never";

/** Options of {@link pullImage}. */
export interface PullImageOptions extends Abortable {
  /** Default `update`. */
  policy?: PullPolicy | undefined;
  /** Platform selected from an index; default the host's. */
  platform?: Platform | undefined;
  /** Blobs downloaded at once; default {@link defaultPullParallel}. */
  parallel?: number | undefined;
  /** `--insecure-options=http|tls`. */
  insecure?: InsecureOptions | undefined;
  /** Extra trusted CA certificates (PEM). */
  caPem?: string | readonly string[] | undefined;
  /** Where proxy variables, `RKT_CERTS_D` and `SSL_CERT_FILE` are read; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Where registry credentials come from; none means anonymous. */
  credentials?: CredentialsProvider | undefined;
  /** Per-blob progress of downloads (`bytes` counts from the blob's start, a resumed prefix included). */
  onProgress?: ((p: BlobProgress) => void) | undefined;
  /** Use this client instead of creating (and closing) one; its registry must be the ref's. */
  client?: RegistryClient | undefined;
  /** Mirrors, rewrites and blocked registries ({@link loadRegistriesConf}); none: the ref's registry only. */
  registriesConf?: RegistriesConf | undefined;
  /** Called when a mirror fails and the next source is tried. */
  onSourceFailed?: ((source: PullSource, error: RktError) => void) | undefined;
  /**
   * Admission check (e.g. {@link policyVerifier}) run once the manifest is fetched and verified
   * against its digest, before any blob is downloaded, and when `update` finds the image unchanged;
   * it throws to refuse. Store hits that ask no registry (`new`, `never`, stored digests) skip it.
   */
  verify?: DockerImageVerifier | undefined;
}

/** The outcome of {@link pullImage}. */
export interface PullResult {
  /** The image ID: the platform manifest's digest. */
  readonly id: Digest;
  /** `registry/repository` as recorded in the store. */
  readonly name: string;
  readonly tag: string | undefined;
  /** Manifest, config, then layers. */
  readonly digests: readonly Digest[];
  /** Stored bytes of the image (manifest + config + layers). */
  readonly size: number;
  /** Bytes received from the registry (manifest bodies and blobs); 0 when the store answered. */
  readonly bytesDownloaded: number;
  /** Image bytes that came from the store (blobs already present, resumed ingest prefixes). */
  readonly bytesReused: number;
  /** How the image was obtained: `store` (no network), `unchanged` (one HEAD), `pulled`. */
  readonly source: "store" | "unchanged" | "pulled";
  /** The remote key recorded: `docker://registry/repository:tag` (or `@digest`). */
  readonly remote: string;
}

/** Default number of blobs downloaded at once. */
export const defaultPullParallel = 4;

/**
 * The refusal of a registry image when no policy.json is found (`paths`, in the order looked
 * at). rkt said verification "is not supported"; here it is, by a policy, so the message says
 * where one goes and how to fetch without one. Pure.
 */
export function noSignaturePolicyMessage(paths: readonly string[]): string {
  return (
    `no signature policy for docker images: none of ${paths.join(", ")} exists; ` +
    "write a policy.json (containers-policy.json(5)) there or give --signature-policy FILE, " +
    "or fetch without verification with --insecure-options=image"
  );
}

/** The key of a registry ref in the store's remotes: `docker://registry/repository:tag` or `@digest`. */
export function dockerRemoteKey(ref: DockerRef): string {
  return `docker://${formatDockerReference(ref.digest !== undefined ? { ...ref, tag: undefined } : ref)}`;
}

/** rkt's message when neither the store nor the registry yielded the image (RKT_NOT_FOUND); `url` as typed. */
export function notFetchedError(url: string): RktError {
  return new RktError(
    ErrorCode.NotFound,
    `unable to fetch docker image from URL ${JSON.stringify(url)}: either image was not found in the store or store was disabled and fetching from remote yielded nothing or it was disabled`,
  );
}

interface Stored {
  readonly id: Digest;
  readonly manifestDigest: string | undefined;
  readonly os: string | undefined;
  readonly arch: string | undefined;
}

// The image a remote key (or, for a digest ref, the digest itself) points at, if still stored.
function storedFor(store: LocalStore, ref: DockerRef, key: string): Stored | undefined {
  const remote = getRemote(store, key);
  const id = remote?.imageId ?? ref.digest;
  if (id === undefined) return undefined;
  let rec;
  try {
    rec = getImage(store, id);
  } catch (e) {
    if (isRktError(e, ErrorCode.NotFound)) return undefined;
    throw e;
  }
  if (rec.kind !== "oci") return undefined;
  return {
    id: rec.id as Digest,
    manifestDigest: remote?.manifestDigest,
    os: rec.labels["os"],
    arch: rec.labels["arch"],
  };
}

function platformMatches(s: Stored, want: Platform): boolean {
  return (s.os === undefined || s.os === want.os) && (s.arch === undefined || s.arch === want.architecture);
}

/**
 * Pulls `ref` from its registry into `store` under the pull policy:
 * - `never`: the store only (the remote `docker://registry/repo:tag`, or the digest); RKT_NOT_FOUND
 *   with rkt's `unable to fetch docker image from URL …` line when absent. No network.
 * - `new`: the stored image when the ref is known, else a pull.
 * - `update`: one manifest `HEAD`; when its digest is the one recorded for the ref (and, for an
 *   index, the stored image is of the wanted platform) the stored image is used and nothing else
 *   is requested; otherwise the manifest (and index) is fetched and only blobs the store lacks are
 *   downloaded. A digest ref that is stored is never asked for again (digests are immutable).
 *
 * Blobs are downloaded `parallel` at a time, each streamed into the store's ingest and committed
 * against its digest; an ingest left by an interrupted pull is resumed with a Range request. The
 * image is recorded with ref `registry/repository:tag` (`latest` marked when the tag is) and the
 * remote (key, manifest digest the tag resolved to, download time) so the next `update` can
 * compare. Errors: the registry client's (RKT_UNAUTHORIZED, RKT_NOT_FOUND, RKT_REGISTRY,
 * RKT_NO_MATCHING_PLATFORM, RKT_DIGEST_MISMATCH, …) and the store's, each naming the reference;
 * nothing is recorded on failure.
 */
export async function pullImage(
  store: LocalStore,
  ref: DockerRef,
  o: PullImageOptions = {},
): Promise<PullResult> {
  const policy = o.policy ?? "update";
  const key = dockerRemoteKey(ref);
  const name = `${ref.registry}/${ref.repository}`;
  const tag = ref.tag;
  const want = o.platform ?? hostPlatform();
  const stored = storedFor(store, ref, key);
  const fromStore = (s: Stored, source: "store" | "unchanged", downloaded: number): PullResult => {
    touchImage(store, s.id);
    const { digests, size } = imageContent(store, s.id);
    return {
      id: s.id,
      name,
      tag,
      digests,
      size,
      bytesDownloaded: downloaded,
      bytesReused: size,
      source,
      remote: key,
    };
  };
  if (policy === "never") {
    // rkt quotes the image as typed (its functional tests match on it).
    if (stored === undefined)
      throw notFetchedError(/^docker:/.test(ref.raw) ? ref.raw : `docker://${ref.raw}`);
    return fromStore(stored, "store", 0);
  }
  if (
    stored !== undefined &&
    (policy === "new" || (ref.digest !== undefined && platformMatches(stored, want)))
  ) {
    return fromStore(stored, "store", 0);
  }

  const what = formatDockerReference(ref);
  const reference = ref.digest ?? ref.tag ?? "latest";
  const signal = o.signal;
  const asError = (e: unknown): RktError => {
    if (signal?.aborted === true && !isRktError(e, ErrorCode.Aborted)) {
      return new RktError(ErrorCode.Aborted, `${what}: pull aborted (its downloads resume next time)`, {
        cause: e,
      });
    }
    if (isRktError(e) && e.message.includes(what)) return e;
    if (isRktError(e)) return new RktError(e.code, `${what}: ${e.message}`, { cause: e });
    return new RktError(ErrorCode.Io, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  };
  // Mirrors from registries.conf first (in file order), the origin last; a failing source hands
  // over to the next (a blob it half-downloaded resumes there: same digest, same ingest).
  const sources = pullSources(o.registriesConf, ref);
  const failures: string[] = [];
  for (const [i, src] of sources.entries()) {
    const given =
      o.client !== undefined && !src.mirror && src.registry === ref.registry ? o.client : undefined;
    const client =
      given ??
      new RegistryClient(src.registry, {
        insecure: {
          http: src.insecure || o.insecure?.http === true,
          tls: src.insecure || o.insecure?.tls === true,
        },
        caPem: o.caPem,
        credentials: o.credentials,
        env: o.env,
        // A mirror gets one retry: when it is down, the next source is the better retry.
        ...(src.mirror ? { retry: { maxAttempts: 2, maxDelayMs: 1000 } } : {}),
      });
    const repository = src.repository;
    try {
      let top: Descriptor | undefined;
      if (stored?.manifestDigest !== undefined) {
        top = await client.resolve(repository, reference, { signal });
        const sameTop = top.digest === stored.manifestDigest;
        const sameImage = isIndexType(top.mediaType)
          ? platformMatches(stored, want)
          : top.digest === stored.id;
        if (sameTop && sameImage) {
          // The registry's current answer is re-admitted: a signature may have been withdrawn.
          await o.verify?.({ ref, client, topDigest: top.digest, manifestDigest: stored.id, signal });
          recordRemote(store, { url: key }, stored.id, top.digest, Date.now());
          return fromStore(stored, "unchanged", 0);
        }
      }
      // By digest once known, so the tag cannot move between the HEAD and the GET.
      const found = await registryImage(client, repository, top?.digest ?? reference, { signal });
      const image = await platformImage(found, want, what, { signal });
      const tagDigest = found.descriptor.digest;
      // Admission before any blob moves: a refused image leaves nothing behind.
      await o.verify?.({
        ref,
        client,
        topDigest: tagDigest,
        manifestDigest: image.descriptor.digest,
        signal,
      });
      // Blobs go through the store's writer under the sink's lease, with ingests kept on failure:
      // an interrupted pull (Ctrl-C, network loss, kill) resumes where it stopped on the next run.
      const sink = storeSink(store, { name, what });
      const c = await copyImage(image, sink, {
        tag: tag ?? "latest",
        parallel: o.parallel ?? defaultPullParallel,
        ranged: true,
        signal,
        onProgress: (e) => {
          if (e.kind === "blob") o.onProgress?.({ digest: e.digest, bytes: e.bytes, total: e.total });
        },
      });
      const id = image.descriptor.digest;
      recordRemote(store, { url: key }, id, tagDigest, Date.now());
      const { digests, size } = imageContent(store, id);
      const documents = image.rawManifest.length + (found.kind === "index" ? found.rawManifest.length : 0);
      return {
        id,
        name,
        tag,
        digests,
        size,
        bytesDownloaded: documents + c.bytes.written - sink.bytesResumed,
        bytesReused: c.bytes.exists + sink.bytesResumed,
        source: "pulled",
        remote: key,
      };
    } catch (e) {
      const err = asError(e);
      if (i < sources.length - 1 && err.code !== ErrorCode.Aborted) {
        failures.push(`${src.registry}: ${err.message.replace(`${what}: `, "")}`);
        o.onSourceFailed?.(src, err);
        continue;
      }
      if (failures.length === 0) throw err;
      throw new RktError(err.code, `${err.message} (after mirrors: ${failures.join("; ")})`, { cause: err });
    } finally {
      if (given === undefined) await client.close();
    }
  }
  throw new RktError(ErrorCode.Internal, `${what}: no source to pull from`);
}
