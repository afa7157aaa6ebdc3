// One pass from the wire to a snapshot: while a layer blob is ingested, the same bytes are
// decompressed, their diffID hashed and their tar entries extracted into a snapshot being built
// (tree hash from the stream). The snapshot stays in its temp dir (invisible, GC'd with its dead
// owner) until the image import checks its diffID against the config and publishes it.
import { PassThrough, Transform, type Readable, type TransformCallback, type Writable } from "node:stream";
import { ErrorCode, RktError, type Descriptor, type Digest } from "@rkt/oci";
import type { LocalStore } from "./local-store.js";
import { discardSnapshot, prepareExtracted, type PreparedSnapshot } from "./tree/snapshot.js";

/** A layer unpacked while its blob was ingested: its snapshot (not yet visible) and diffID. */
export interface UnpackedLayer {
  readonly prepared: PreparedSnapshot;
  readonly diffId: Digest;
}

/** What {@link LayerUnpack.begin} hands the blob writer: where to write the bytes, and the outcome. */
export interface UnpackTap {
  /** Every byte of the blob, from its first, in order; end it after the last. */
  readonly input: Writable;
  /** Settles when the layer is extracted (or failed: the writer must then discard the blob). */
  readonly done: Promise<UnpackedLayer>;
}

/**
 * The layers one import unpacks on the way in (see {@link createLayerUnpack}). Pass it to
 * `ingestBlob` (layer blobs are then unpacked as they are written) and to `importOciImage`
 * (which publishes the snapshots whose diffIDs match the config). Always end with `discard()`,
 * which removes what was not published.
 */
export interface LayerUnpack {
  /** Starts unpacking blob `desc` from the bytes written to the tap's input. @internal */
  begin(desc: Descriptor, o?: { signal?: AbortSignal | undefined }): UnpackTap;
  /** Records a layer the writer committed. @internal */
  add(blob: Digest, layer: UnpackedLayer): void;
  /** The unpacked layer of blob `digest`, handed over once (the caller publishes or discards it). */
  take(digest: Digest): UnpackedLayer | undefined;
  /** Removes every unpacked layer not taken. */
  discard(): Promise<void>;
}

/**
 * Starts extracting what is written to the tap's input (a layer, or with `aci` an ACI archive,
 * compressed or not) into a prepared snapshot under `layersDir`. @internal
 */
export function unpackTap(
  layersDir: string,
  what: string,
  format: "oci" | "aci",
  signal: AbortSignal | undefined,
): UnpackTap {
  // A PassThrough with a large buffer: the blob writer and the extractor run at the pace of the
  // slower one, without one chunk at a time between them.
  const input = new PassThrough({ highWaterMark: 1 << 20 });
  const done = prepareExtracted(layersDir, () => Promise.resolve(input as Readable), {
    what,
    format,
    signal,
  }).then((prepared) => ({ prepared, diffId: prepared.fill.diffId as Digest }));
  // The writer sees a failure through `done`; an unobserved rejection must not end the process.
  done.catch(() => undefined);
  return { input, done };
}

/** A {@link LayerUnpack} over `store`'s layers dir. */
export function createLayerUnpack(store: LocalStore): LayerUnpack {
  const layers = new Map<string, UnpackedLayer>();
  return {
    begin(desc, o = {}) {
      return unpackTap(store.paths.layers, `layer ${desc.digest}`, "oci", o.signal);
    },
    add(blob, layer) {
      const old = layers.get(blob);
      layers.set(blob, layer);
      if (old !== undefined) void discardSnapshot(old.prepared);
    },
    take(digest) {
      const l = layers.get(digest);
      layers.delete(digest);
      return l;
    },
    async discard() {
      const all = [...layers.values()];
      layers.clear();
      for (const l of all) await discardSnapshot(l.prepared);
    },
  };
}

/** Writes every chunk of `src` to `side`, waiting for it to drain; `side` stays open. @internal */
export async function writeSide(side: Writable, src: AsyncIterable<Buffer>): Promise<void> {
  for await (const c of src) {
    if (!side.write(c)) await drained(side);
  }
}

function drained(side: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (e?: unknown): void => {
      side.off("drain", onDrain);
      side.off("close", onClose);
      if (e === undefined) resolve();
      else reject(asError(e));
    };
    const onDrain = (): void => done();
    const onClose = (): void =>
      done(side.errored ?? new RktError(ErrorCode.Internal, "layer extraction stopped"));
    side.on("drain", onDrain);
    side.on("close", onClose);
  });
}

/**
 * A pass-through that also writes every chunk to `side`, at the pace of the slower of the two,
 * and ends `side` after the last chunk. Once `side` fails (`failed()` says why), with `stop` the
 * stream fails with that error; otherwise the chunks keep passing without it (so that the main
 * branch can still check what it received).
 */
export function sideTap(side: Writable, failed: () => unknown, o: { stop: boolean }): Transform {
  let off = false;
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      const f = failed();
      if (f !== undefined || off) {
        if (o.stop) return cb(asError(f));
        off = true;
        return cb(null, chunk);
      }
      if (side.write(chunk)) return cb(null, chunk);
      drained(side).then(
        () => cb(null, chunk),
        (e: unknown) => {
          if (o.stop) return cb(asError(failed() ?? e));
          off = true;
          cb(null, chunk);
        },
      );
    },
    flush(cb: TransformCallback) {
      if (!off && !side.destroyed) side.end();
      cb();
    },
  });
}

/** `e` as an Error to throw (extraction failures are Errors; anything else is wrapped). @internal */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new RktError(ErrorCode.Internal, "layer extraction failed", { cause: e });
}
