// Helpers over the ContentStore interface (containerd content.WriteBlob / ReadBlob), usable with
// any implementation.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  ErrorCode,
  RktError,
  isRktError,
  type Abortable,
  type ContentStore,
  type Descriptor,
  type Digest,
} from "@rkt/oci";

/**
 * Writes a blob unless it is already stored: returns at once when present (the source is not
 * opened, or is destroyed if given as a stream); otherwise takes the ingest `blob-<digest>`
 * (waiting while another process writes the same blob, then finding it committed), streams the
 * source into it and commits against `desc`. RKT_DIGEST_MISMATCH / RKT_SIZE_MISMATCH when the
 * bytes are not what `desc` says; nothing becomes visible then.
 */
export async function writeBlob(
  store: ContentStore,
  src: Readable | (() => Promise<Readable>),
  desc: Pick<Descriptor, "digest" | "size" | "mediaType">,
  o: Abortable = {},
): Promise<Pick<Descriptor, "digest" | "size" | "mediaType">> {
  const dispose = (): void => {
    if (typeof src !== "function") src.destroy();
  };
  const present = await store.info(desc.digest).then(
    () => true,
    () => false,
  );
  if (present) {
    dispose();
    return desc;
  }
  let w;
  try {
    w = await store.writer({ ref: `blob-${desc.digest}`, expected: desc, wait: true, signal: o.signal });
  } catch (e) {
    dispose();
    if (isRktError(e, ErrorCode.AlreadyExists)) return desc;
    throw e;
  }
  try {
    const stream = typeof src === "function" ? await src() : src;
    await pipeline(stream, w.stream, { signal: o.signal ?? new AbortController().signal });
    await w.commit(desc);
    return desc;
  } catch (e) {
    await w.abort();
    throw e;
  }
}

/** Reads a whole blob into memory if it is at most `max` bytes (manifests, configs). RKT_TOO_LARGE otherwise. */
export async function readBlobLimited(store: ContentStore, digest: Digest, max: number): Promise<Buffer> {
  const info = await store.info(digest);
  if (info.size > max) {
    throw new RktError(
      ErrorCode.TooLarge,
      `blob ${digest} is ${info.size} bytes, more than the ${max} allowed`,
    );
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of await store.open(digest)) {
    const b = c as Buffer;
    n += b.length;
    if (n > max)
      throw new RktError(ErrorCode.TooLarge, `blob ${digest} is more than the ${max} bytes allowed`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
