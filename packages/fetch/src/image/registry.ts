// A registry repository as a source (pull) and as a sink (push), over one RegistryClient.
import {
  ErrorCode,
  RktError,
  isRktError,
  imageFromRaw,
  isIndexType,
  isManifestType,
  type Abortable,
  type BlobFetcher,
  type Descriptor,
  type Digest,
  type Digester,
  type ImageOrIndex,
  type BlobWriteOutcome,
  type ImageSink,
  type WriteBlobOptions,
} from "@rkt/oci";
import type { Readable } from "node:stream";
import type { RegistryClient } from "../registry/client.js";
import { readCapped } from "../read-capped.js";
import { byteCounter } from "./layout.js";

// A consumer that hashes every byte itself (a sink) needs no second SHA-256 pass in the client: on
// Node's single thread it doubled the CPU per byte (cold pulls were 2x skopeo with it). This
// stand-in holds no hash state and answers the expected digest; the client still enforces the size.
export function trustingDigester(bytes: number, digest: Digest): Digester {
  let n = bytes;
  return {
    update(chunk) {
      n += chunk.length;
    },
    digest: () => digest,
    get bytes() {
      return n;
    },
  };
}

/** Blobs and documents of one repository, read through `client` (which verifies as it reads). */
export function registryFetcher(client: RegistryClient, repository: string): BlobFetcher {
  return {
    verified: true,
    async readDocument(desc, max, o: Abortable = {}) {
      if (isManifestType(desc.mediaType) || isIndexType(desc.mediaType)) {
        return (await client.getManifest(repository, desc.digest, { expected: desc, signal: o.signal })).raw;
      }
      if (desc.size > max)
        throw new RktError(ErrorCode.TooLarge, `blob ${desc.digest} is ${desc.size} bytes`);
      return readCapped(
        await client.fetchBlob(repository, desc, { signal: o.signal }),
        max,
        `blob ${desc.digest}`,
      );
    },
    openBlob(desc, o = {}) {
      const start = o.start ?? 0;
      const trust = start > 0 || o.verify === false;
      return client.fetchBlob(repository, desc, {
        offset: start,
        digester: trust ? trustingDigester(start, desc.digest) : undefined,
        signal: o.signal,
      });
    },
  };
}

/**
 * The image or index `reference` (a tag or a digest) names in `repository`, its manifest fetched
 * and verified; everything else is read when asked.
 */
export async function registryImage(
  client: RegistryClient,
  repository: string,
  reference: string,
  o: Abortable = {},
): Promise<ImageOrIndex> {
  const m = await client.getManifest(repository, reference, { signal: o.signal });
  return imageFromRaw(
    m.raw,
    m.descriptor,
    registryFetcher(client, repository),
    `docker://${client.registry}/${repository}`,
  );
}

/** Options of {@link registrySink}. */
export interface RegistrySinkOptions {
  /** Upload blobs larger than this in `PATCH` chunks (default: one monolithic `PUT`). */
  chunkSize?: number | undefined;
  /**
   * Shared by the sinks of one registry (a sync's images): where each blob went, so that a blob
   * another repository already received (or is receiving) is mounted from there, not uploaded
   * again, as skopeo does from its blob-info cache.
   */
  pushed?: PushedBlobs | undefined;
  /**
   * Wraps the wait for a blob another sink of `pushed` is still sending (a sync gives its image
   * slot back meanwhile, so that other images go on); default: a plain wait.
   */
  park?: (<T>(p: Promise<T>) => Promise<T>) | undefined;
}

/** Digest → the repository of the registry that holds it (undefined once an upload failed). */
export type PushedBlobs = Map<string, Promise<string | undefined>>;

/**
 * Pushes to `repository` of `client`'s registry: a blob the registry has is skipped (one `HEAD`),
 * one on the same registry is mounted from the source repository, others are uploaded (the
 * registry checks the digest and refuses a mismatch); manifests go last, by tag or by digest. A
 * blob another sink of `pushed` sent (or is sending) is mounted from there once it is in, with
 * no `HEAD` first (a mount into a repository that has the blob succeeds as well).
 */
export function registrySink(
  client: RegistryClient,
  repository: string,
  o: RegistrySinkOptions = {},
): ImageSink {
  const what = `docker://${client.registry}/${repository}`;
  const push = async (
    desc: Descriptor,
    open: (start: number) => Promise<Readable>,
    wo: WriteBlobOptions,
    mountFrom: string | undefined,
    knownMissing: boolean,
  ): Promise<BlobWriteOutcome> => {
    const how = await client.pushBlob(
      repository,
      desc,
      async () => {
        const src = await open(0);
        // One stream stage less per chunk when nobody counts (a sync).
        if (wo.onProgress === undefined) return src;
        const c = byteCounter(wo.onProgress);
        src.on("error", (e) => c.destroy(e));
        return src.pipe(c);
      },
      { mountFrom, chunkSize: o.chunkSize, knownMissing, signal: wo.signal },
    );
    return how === "uploaded" ? "written" : how;
  };
  return {
    what,
    acceptsIndex: true,
    async has(desc: Descriptor, so: Abortable = {}) {
      if (o.pushed?.has(desc.digest) === true) return false;
      return (
        (await client.statBlob(repository, desc.digest, { forPush: true, signal: so.signal })) !== undefined
      );
    },
    async writeBlob(desc, open, wo = {}) {
      let mountFrom = wo.origin?.registry === client.registry ? wo.origin.repository : undefined;
      const prior = o.pushed?.get(desc.digest);
      let done: ((repo: string | undefined) => void) | undefined;
      // Unasked: `has` skipped the HEAD for a blob of `pushed`, so a failed earlier send asks.
      let knownMissing = true;
      if (prior !== undefined) {
        const from = await (o.park === undefined ? prior : o.park(prior));
        if (from === repository) return "exists";
        if (from === undefined) knownMissing = false;
        mountFrom ??= from;
      } else if (o.pushed !== undefined) o.pushed.set(desc.digest, new Promise((r) => (done = r)));
      try {
        const how = await push(desc, open, wo, mountFrom, knownMissing);
        done?.(repository);
        return how;
      } catch (e) {
        if (done !== undefined) {
          done(undefined);
          o.pushed?.delete(desc.digest);
        }
        throw e;
      }
    },
    async hasManifest(desc, tag, so: Abortable = {}) {
      try {
        return (await client.resolve(repository, tag ?? desc.digest, so)).digest === desc.digest;
      } catch (e) {
        // Only a shortcut: whatever stops the lookup (no such repository, no pull right for a
        // push-only account), the copy goes on and finds out blob by blob.
        if (isRktError(e, ErrorCode.Aborted)) throw e;
        return false;
      }
    },
    async writeManifest(x, mo = {}) {
      await client.pushManifest(
        repository,
        mo.tag ?? x.descriptor.digest,
        x.rawManifest,
        x.descriptor.mediaType,
        {
          signal: mo.signal,
        },
      );
    },
    commit: () => Promise.resolve(),
    abort: () => Promise.resolve(),
  };
}
