// The local store as a source (push, copy, save of stored images) and as a sink (every fetch of
// an OCI or Docker image): one path in, through the store's blob writer and its image import.
import {
  ErrorCode,
  MediaType,
  RktError,
  imageFromRaw,
  isRktError,
  maxManifestBytes,
  parseDigest,
  type BlobFetcher,
  type Image,
  type ImageSink,
} from "@rkt/oci";
import {
  createLayerUnpack,
  getImage,
  importOciImage,
  ingestBlob,
  readBlobLimited,
  type ImportResult,
  type LocalStore,
  type RemoteInfo,
} from "@rkt/store";

/** Blobs of the store: committed content, checked against its digest when it was written. */
export function storeFetcher(store: LocalStore): BlobFetcher {
  return {
    verified: true,
    readDocument: (d, max) => readBlobLimited(store, d.digest, max),
    openBlob: (d, o = {}) => store.open(d.digest, { start: o.start, signal: o.signal }),
  };
}

/**
 * The stored OCI image `id` (a full image ID). RKT_NOT_FOUND; RKT_INVALID_ARGUMENT for an ACI
 * (an ACI has no OCI manifest: convert or export it instead).
 */
export async function storeImage(store: LocalStore, id: string): Promise<Image> {
  const rec = getImage(store, id);
  if (rec.kind !== "oci") {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `image ${id} is an ACI; only OCI and Docker images can be copied`,
    );
  }
  const digest = parseDigest(rec.manifestDigest);
  const raw = await readBlobLimited(store, digest, maxManifestBytes);
  const mediaType = (await store.info(digest)).labels["mediaType"] ?? MediaType.OciManifest;
  const x = imageFromRaw(
    raw,
    { mediaType, digest, size: raw.length },
    storeFetcher(store),
    rec.name === "" ? id : rec.name,
  );
  if (x.kind !== "image") throw new RktError(ErrorCode.Internal, `image ${id}: stored manifest is an index`);
  return x;
}

/** Options of {@link storeSink}. */
export interface StoreSinkOptions {
  /** Repository name recorded for the image (shown by `image list`, resolved by name). */
  name?: string | undefined;
  /** Where it came from: the store's remote row (pull policies and `image list` use it). */
  remote?: RemoteInfo | undefined;
  /** Names the source in errors. */
  what?: string | undefined;
  /**
   * Render each image into the tree store in the same pass (what `rkt fetch` does as root, and
   * `rkt run`): every layer blob written is also decompressed and extracted into its snapshot as
   * it streams in, and the image is recorded with its tree. Default false.
   */
  render?: boolean | undefined;
}

/** The store sink, with what it recorded. */
export interface StoreSink extends ImageSink {
  /** The images recorded, in order. */
  readonly imported: readonly ImportResult[];
  /** Bytes that partial ingests of earlier attempts already held (resumed, not received). */
  readonly bytesResumed: number;
  /** Partial blobs dropped because the disk filled up (kept, they would leave no room). */
  readonly dropped: readonly { readonly digest: string; readonly bytes: number }[];
}

/**
 * Writes into `store`: blobs through the store's one writer (`ingestBlob`: hashed, committed
 * against the digest, resumed from a partial ingest when the source reads from an offset) under
 * a lease, so GC cannot sweep them before the image row names them; each manifest then becomes an
 * image row with its name and tag in one transaction. Indexes are not stored (the image ID is the
 * platform manifest's digest), so a copy resolves them first.
 */
export function storeSink(store: LocalStore, o: StoreSinkOptions = {}): StoreSink {
  let lease: string | undefined;
  const leased = (): string =>
    (lease ??= store.createLease({ labels: { purpose: `import ${o.what ?? "image"}` } }));
  const imported: ImportResult[] = [];
  const dropped: { digest: string; bytes: number }[] = [];
  const release = (): Promise<void> => {
    if (lease !== undefined) store.deleteLease(lease);
    lease = undefined;
    return Promise.resolve();
  };
  let bytesResumed = 0;
  const unpack = o.render === true ? createLayerUnpack(store) : undefined;
  const end = async (): Promise<void> => {
    await unpack?.discard();
    await release();
  };
  return {
    what: "the store",
    acceptsIndex: false,
    imported,
    dropped,
    get bytesResumed() {
      return bytesResumed;
    },
    async has(d) {
      // Leased before looking, so what is found stays until it is recorded.
      store.leaseAdd(leased(), "blob", d.digest);
      return store.exists(d.digest);
    },
    async writeBlob(d, openBlob, wo = {}) {
      const r = await ingestBlob(store, d, openBlob, {
        lease: leased(),
        ranged: wo.ranged,
        signal: wo.signal,
        onProgress: wo.onProgress,
        onDropped: (bytes) => dropped.push({ digest: d.digest, bytes }),
        unpack,
      });
      bytesResumed += r.resumed;
      return r.how;
    },
    async writeManifest(x, mo = {}) {
      if (x.kind !== "image") throw new RktError(ErrorCode.Internal, "the store records images, not indexes");
      const tag = mo.tag ?? (o.name === undefined ? undefined : "latest");
      imported.push(
        await importOciImage(store, {
          rawManifest: x.rawManifest,
          mediaType: x.descriptor.mediaType,
          // Every blob is stored and leased by now; the source serves only one that vanished.
          source: { blob: (d, so) => x.blob(d, { verify: false, signal: so?.signal }) },
          name: o.name,
          tag,
          latest: tag === "latest",
          remote: o.remote,
          what: o.what,
          signal: mo.signal,
          render: o.render,
          unpack,
        }),
      );
    },
    commit: end,
    // Every blob write has settled when a copy aborts, so the list of dropped blobs is complete.
    async abort(failure) {
      await end();
      if (dropped.length === 0 || !isRktError(failure)) return undefined;
      const bytes = dropped.reduce((n, x) => n + x.bytes, 0);
      const what =
        dropped.length === 1
          ? `the partial download of ${dropped[0]!.digest}`
          : `the partial downloads of ${dropped.length} blobs`;
      return new RktError(
        failure.code,
        `${failure.message} (dropped ${what}, ${mib(bytes)}, to leave room; \`rkt image gc\` frees unused images)`,
        { cause: failure },
      );
    },
  };
}

/** `12.3 MiB`. */
export function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}
