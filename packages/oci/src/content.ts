// The content store contract (containerd core/content): small interfaces implemented by
// @rkt/store's LocalStore and consumed by transports, converters and tests. Pure types only.
import type { Readable, Writable } from "node:stream";
import type { Algorithm, Digest } from "./digest.js";
import type { Descriptor } from "./schema/descriptor.js";

/** Lets a caller cancel a long operation; honoured between chunks and while waiting for locks. */
export interface Abortable {
  signal?: AbortSignal | undefined;
}

/**
 * Progress of one blob (a layer, a config, an ACI archive) being moved, read or extracted: every
 * long operation reports with it (pulls, pushes, copies, local imports, renders, exports,
 * converts), so that one renderer can show any of them. `bytes` counts from the start of the blob
 * (a resumed prefix included) and reaches `total` when the blob is done, also when nothing had to
 * move (a blob the destination had, a snapshot already extracted).
 */
export interface BlobProgress {
  readonly digest: Digest;
  readonly bytes: number;
  readonly total: number;
}

/** What the store knows about one committed blob. */
export interface BlobInfo {
  readonly digest: Digest;
  /** Bytes of the content as stored (for layers: compressed). */
  readonly size: number;
  /** When the blob was committed (the file's modification time). */
  readonly createdAt: Date;
  /** Free-form metadata; the media type, when known, is under `mediaType`. */
  readonly labels: Readonly<Record<string, string>>;
}

/** Where an ingest stands: bytes already written (and hashed), and the expected total if known. */
export interface IngestStatus {
  readonly ref: string;
  readonly offset: number;
  readonly total?: number | undefined;
}

/** Options of {@link ContentStore.writer}. */
export interface WriterOptions extends Abortable {
  /**
   * Names the ingest. The same ref resumes the same partial data, even after a restart; use a
   * stable ref (e.g. `blob-<digest>`) so that concurrent writers of one blob serialise on it.
   */
  ref: string;
  /** What the content must turn out to be; checked again at commit. */
  expected?: Pick<Descriptor, "digest" | "size"> | undefined;
  /** Hash to compute while writing when `expected` is absent; default sha256. */
  algorithm?: Algorithm | undefined;
  /** Wait (polling, without blocking the event loop) while another writer holds `ref`, instead of failing. */
  wait?: boolean | undefined;
}

/**
 * An ingest in progress. Bytes written to `stream` are hashed as they are written and stay
 * invisible to readers until {@link BlobWriter.commit} succeeds.
 */
export interface BlobWriter {
  /** Hashes every byte; ends when the caller (or `pipeline`) ends it. */
  readonly stream: Writable;
  status(): IngestStatus;
  /**
   * Makes the content visible under its digest after checking the size and digest against
   * `expected` (or the writer's own expected descriptor). Durable when it returns: file fsynced,
   * renamed into place, directory fsynced, made read-only. Committing content that is already
   * stored is not an error: the descriptor is returned and the ingest discarded. On
   * RKT_SIZE_MISMATCH / RKT_DIGEST_MISMATCH the ingest is discarded and nothing becomes visible.
   * Always closes the writer and releases its ref, even on error.
   */
  commit(expected?: Pick<Descriptor, "digest" | "size">): Promise<Descriptor>;
  /** Discards the ingest and releases the ref. Safe to call after commit or twice. */
  abort(): Promise<void>;
  /** Releases the ref but keeps the partial data, so a later writer with the same ref resumes it. */
  close(): Promise<void>;
}

/** A content-addressed blob store (containerd's Provider + Ingester + Manager). */
export interface ContentStore {
  /** RKT_NOT_FOUND when the blob is not committed. */
  info(digest: Digest): Promise<BlobInfo>;
  /** Streams a committed blob from byte `start` (default 0). RKT_NOT_FOUND when absent. Caller must consume or destroy it. */
  open(digest: Digest, o?: Abortable & { start?: number | undefined }): Promise<Readable>;
  /**
   * Starts or resumes the ingest named `o.ref`. RKT_UNAVAILABLE while another writer (in any
   * process) holds it, unless `o.wait`. RKT_ALREADY_EXISTS when `o.expected` is already stored,
   * which callers treat as success (containerd's rule: nothing to write).
   */
  writer(o: WriterOptions): Promise<BlobWriter>;
  /** Removes a committed blob. RKT_NOT_FOUND when absent. */
  delete(digest: Digest): Promise<void>;
  /** Every committed blob, in no particular order, optionally filtered. */
  walk(filter?: (i: BlobInfo) => boolean): AsyncIterable<BlobInfo>;
}
