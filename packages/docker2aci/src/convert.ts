// The conversion: an image (manifest, config, layer streams) → one squashed ACI or one ACI per
// layer, each written as a stream to a sink (a directory, the store, …) while its sha512 (the
// image ID) is computed.
import type { Readable } from "node:stream";
import type { ImageManifest } from "@rkt/appc";
import type { Header } from "tar-stream";
import { ErrorCode, RktError, isRktError, type BlobProgress } from "@rkt/oci";
import { AciPacker, aciHeader, type AciHeader, type OutputCompression, type PackedAci } from "./aci-pack.js";
import { layerFileName, squashedFileName, type LayerFileNames } from "./file-names.js";
import type { ImageInput, LayerInput } from "./input.js";
import { forEachLayerEntry, type BodyConsumer } from "./layer-entries.js";
import {
  encodeManifest,
  lowerLayerManifest,
  squashedManifest,
  topLayerManifest,
  type ManifestJson,
  type TopManifestInput,
} from "./manifest.js";
import { NeedsPlanError, emptyPlan, type LayerPlan } from "./plan.js";
import { Occurrences, SquashLayer, SquashState, checkDev, stdioSymlinks } from "./squash.js";

/** Options of {@link convertImage}. */
export interface ConvertOptions {
  /** One ACI for the whole image (default, as docker2aci) or one per layer with dependencies. */
  squash?: boolean | undefined;
  /** Output compression; default gzip (docker2aci's default). */
  compression?: OutputCompression | undefined;
  /** gzip level (1-9); default zlib's 6. */
  gzipLevel?: number | undefined;
  /** Per-layer file names: docker2aci's for `docker save` archives or for OCI layouts (default). */
  layerFileNames?: LayerFileNames | undefined;
  signal?: AbortSignal | undefined;
  /** Each layer's bytes as it is read to write the ACIs (a planning pass reports nothing). */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/** Where an ACI goes: its file name and ACI name, known before any byte is written. */
export interface AciTarget {
  /** docker2aci's file name, e.g. `library-busybox-latest.aci` (relative; may contain no `/`). */
  readonly fileName: string;
  /** The ACI's image name. */
  readonly name: string;
}

/**
 * Receives one ACI as a stream. It must read `data` to its end and resolve after storing it, or
 * reject; if `data` fails (the conversion failed or must start over), the sink must reject and
 * leave nothing behind (write to a temporary name, import into an ingest).
 */
export type AciSink = (target: AciTarget, data: Readable) => Promise<void>;

/** One ACI written. */
export interface ConvertedAci extends AciTarget, PackedAci {
  readonly manifest: ImageManifest;
  /** The manifest bytes as written in the archive. */
  readonly rawManifest: Uint8Array;
}

function whatLayer(input: ImageInput, layer: LayerInput, index: number): string {
  return `layer ${index} (${layer.digest}) of ${input.name.repository}`;
}

function check(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new RktError(ErrorCode.Aborted, "conversion aborted");
}

// Runs `write` into a fresh packer whose output goes to `sink`. A sink failure stops the writer
// (the packer is destroyed, so pending writes fail instead of waiting for a reader that left).
async function produce<R>(
  sink: AciSink,
  target: AciTarget,
  compression: OutputCompression,
  write: (p: AciPacker) => Promise<R>,
  gzipLevel?: number,
): Promise<{ packed: PackedAci; result: R }> {
  const packer = new AciPacker(compression, gzipLevel);
  let sinkError: unknown;
  const consumed = sink(target, packer.output).catch((e: unknown) => {
    sinkError = e;
    packer.destroy(e instanceof Error ? e : new Error(String(e)));
    throw e;
  });
  // Awaited below; a handler now keeps an early sink failure from counting as unhandled.
  consumed.catch(() => undefined);
  try {
    const result = await write(packer);
    const packed = await packer.finish();
    await consumed;
    return { packed, result };
  } catch (e) {
    packer.destroy(e instanceof Error ? e : new Error(String(e)));
    await consumed.catch(() => undefined);
    // The sink's own failure explains the writer's (which only saw a destroyed stream).
    throw sinkError !== undefined && !(e instanceof NeedsPlanError) && !isRktError(e) ? sinkError : e;
  }
}

// ---- squashed ----------------------------------------------------------------------------------

const manifestHeader = {
  name: "manifest",
  type: "file",
  mode: 0o644,
  uid: 0,
  gid: 0,
  uname: "0",
  gname: "0",
  mtime: new Date(0),
} as const;

// Writes an entry's header; a regular file's body then goes to the packer as it is read.
function packEntry(packer: AciPacker, h: AciHeader): BodyConsumer {
  packer.begin(h);
  return h.type === "file" && (h.size ?? 0) > 0 ? packer.body : undefined;
}

async function writeSquashed(
  input: ImageInput,
  manifestBytes: Uint8Array,
  packer: AciPacker,
  plans: ReadonlyMap<number, LayerPlan>,
  signal: AbortSignal | undefined,
  onProgress?: (p: BlobProgress) => void,
): Promise<void> {
  packer.add(manifestHeader, manifestBytes);
  packer.addGeneric({ name: "rootfs", type: "directory", mode: 0o755 });
  const state = new SquashState();
  const n = input.layers.length;
  for (let level = 0; level < n; level++) {
    check(signal);
    const index = n - 1 - level;
    const layer = input.layers[index]!;
    const what = whatLayer(input, layer, index);
    const pass = new SquashLayer(state, level, plans.get(level) ?? emptyPlan(), "write", what);
    await forEachLayerEntry(
      layer,
      what,
      (e) => {
        const d = pass.decide(e);
        if (d.do === "skip") return undefined;
        const link = d.linkname === undefined ? undefined : `rootfs/${d.linkname}`;
        return packEntry(packer, aciHeader(e.header, `rootfs/${d.path}`, link));
      },
      { ready: packer.ready, onProgress },
    );
    if (level === 0) {
      for (const [p, target] of pass.stdioToAdd()) {
        state.written.set(p, false);
        packer.addGeneric({ name: `rootfs/${p}`, type: "symlink", linkname: target, mode: 0o777 });
      }
    }
  }
}

// The planning pass for squashing: each layer's headers are read (bodies skipped) and kept for
// that layer only, so that duplicates are known before deciding, then decided as the writer will.
async function scanSquashPlans(
  input: ImageInput,
  signal: AbortSignal | undefined,
): Promise<Map<number, LayerPlan>> {
  const plans = new Map<number, LayerPlan>();
  const state = new SquashState();
  const n = input.layers.length;
  for (let level = 0; level < n; level++) {
    check(signal);
    const index = n - 1 - level;
    const layer = input.layers[index]!;
    const what = whatLayer(input, layer, index);
    const entries: {
      path: string;
      kind: "entry" | "whiteout" | "opaque";
      header: Header;
    }[] = [];
    const counts = new Map<string, number>();
    await forEachLayerEntry(layer, what, (e) => {
      entries.push({ path: e.path, kind: e.kind, header: { ...e.header } });
      if (e.kind === "entry") counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
      return undefined;
    });
    const plan = emptyPlan();
    for (const [p, c] of counts) if (c > 1) plan.duplicates.set(p, c);
    const pass = new SquashLayer(state, level, plan, "scan", what);
    for (const e of entries) pass.decide(e);
    if (level === 0) for (const [p] of pass.stdioToAdd()) state.written.set(p, false);
    if (plan.duplicates.size > 0 || plan.linkFixes.size > 0) plans.set(level, plan);
  }
  return plans;
}

// ---- per layer ---------------------------------------------------------------------------------

// The cumulative path whitelist after a layer: the lower one minus what this layer deletes (a
// whiteout's path and everything below it; everything below an opaque directory), plus every
// path this layer writes.
function nextWhitelist(
  lower: Set<string>,
  own: ReadonlySet<string>,
  whiteouts: ReadonlySet<string>,
  opaques: ReadonlySet<string>,
): Set<string> {
  const out = new Set<string>();
  const deleted = (p: string): boolean => {
    if (whiteouts.has(p)) return true;
    for (let i = p.lastIndexOf("/"); i > 0; i = p.lastIndexOf("/", i - 1)) {
      const a = p.slice(0, i);
      if (whiteouts.has(a) || opaques.has(a)) return true;
    }
    return false;
  };
  if (whiteouts.size === 0 && opaques.size === 0) for (const p of lower) out.add(p);
  else for (const p of lower) if (!deleted(p)) out.add(p);
  for (const p of own) out.add(p);
  return out;
}

interface LayerWritten {
  readonly own: Set<string>;
  readonly whiteouts: Set<string>;
  readonly opaques: Set<string>;
}

// One layer ACI: `rootfs`, the layer's entries, the stdio symlinks it lacks, then the manifest
// (last, as docker2aci: its path whitelist is known only once the layer was read).
async function writeLayerAci(
  layer: LayerInput,
  level: number,
  what: string,
  plan: LayerPlan,
  packer: AciPacker,
  manifestFor: (w: LayerWritten) => Uint8Array,
  onProgress?: (p: BlobProgress) => void,
): Promise<void> {
  packer.addGeneric({ name: "rootfs", type: "directory", mode: 0o755 });
  const w: LayerWritten = { own: new Set(), whiteouts: new Set(), opaques: new Set() };
  const occurrences = new Occurrences(plan, level);
  await forEachLayerEntry(
    layer,
    what,
    (e) => {
      if (e.kind === "whiteout") return void w.whiteouts.add(`/${e.path}`);
      if (e.kind === "opaque") return void w.opaques.add(`/${e.path}`);
      if (!occurrences.isLast(e.path)) return undefined;
      checkDev(e.path, e.header, what);
      const link = e.header.type === "link" ? `rootfs/${e.header.linkname ?? ""}` : undefined;
      w.own.add(`/${e.path}`);
      return packEntry(
        packer,
        aciHeader(
          e.header,
          `rootfs/${e.path}`,
          link ?? (e.header.type === "symlink" ? (e.header.linkname ?? "") : undefined),
        ),
      );
    },
    { ready: packer.ready, onProgress },
  );
  for (const [p, target] of stdioSymlinks) {
    if (w.own.has(`/${p}`)) continue;
    w.own.add(`/${p}`);
    packer.addGeneric({ name: `rootfs/${p}`, type: "symlink", linkname: target, mode: 0o777 });
  }
  packer.add(manifestHeader, manifestFor(w));
}

async function scanDuplicates(layer: LayerInput, what: string): Promise<LayerPlan> {
  const counts = new Map<string, number>();
  await forEachLayerEntry(layer, what, (e) => {
    if (e.kind === "entry") counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
    return undefined;
  });
  const plan = emptyPlan();
  for (const [p, c] of counts) if (c > 1) plan.duplicates.set(p, c);
  return plan;
}

// ---- entry point ---------------------------------------------------------------------------------

/**
 * Converts `input` to ACIs by docker2aci's rules, streaming: each layer blob is opened, read
 * entry by entry and rewritten under `rootfs/` into the ACI tar handed to `sink`; nothing is
 * extracted and no blob is held in memory. Squashed (default): one ACI, upper layers winning and
 * whiteouts (opaque ones too) applied. Otherwise one ACI per layer, base first, the top one
 * depending on all the others (by name, labels and image ID) and each carrying the cumulative
 * path whitelist that makes deletions take effect when rkt renders them.
 *
 * Returns the ACIs written (base first). A layer with a duplicated path or (squashing) a hard link
 * to a hidden file is read twice: once to plan, once to write. Errors: RKT_INVALID_MANIFEST (the
 * config cannot be expressed in appc: bad Env name, non-numeric port, relative WorkingDir),
 * RKT_INVALID_ARCHIVE (bad layer tar, `..`, a hard link outside its layer), RKT_UNSUPPORTED_MEDIA_TYPE,
 * RKT_INVALID_ARGUMENT (no layers), RKT_ABORTED; errors of the sink and of layer streams pass through.
 * On failure the sink has been told (its stream failed), so nothing half-written remains.
 */
export async function convertImage(
  input: ImageInput,
  sink: AciSink,
  o: ConvertOptions = {},
): Promise<ConvertedAci[]> {
  const compression = o.compression ?? "gzip";
  if (input.layers.length === 0) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${input.name.repository}: image has no layers: not creating an ACI`,
    );
  }
  const top = input.layers[input.layers.length - 1]!;
  const topInput: TopManifestInput = {
    name: input.name,
    config: input.config,
    topLayerDigest: top.digest,
    manifestHash: input.manifestHash,
  };
  if (o.squash ?? true) {
    const { bytes, manifest } = encodeManifest(squashedManifest(topInput));
    const target: AciTarget = {
      fileName: squashedFileName(input.name.repository, input.name.tag),
      name: manifest.name,
    };
    let plans = new Map<number, LayerPlan>();
    for (let attempt = 0; ; attempt++) {
      try {
        const { packed } = await produce(
          sink,
          target,
          compression,
          (p) => writeSquashed(input, bytes, p, plans, o.signal, o.onProgress),
          o.gzipLevel,
        );
        return [{ ...target, ...packed, manifest, rawManifest: bytes }];
      } catch (e) {
        if (!(e instanceof NeedsPlanError) || attempt > 0) throw e;
        plans = await scanSquashPlans(input, o.signal);
      }
    }
  }
  return convertPerLayer(input, topInput, sink, compression, o);
}

async function convertPerLayer(
  input: ImageInput,
  topInput: TopManifestInput,
  sink: AciSink,
  compression: OutputCompression,
  o: ConvertOptions,
): Promise<ConvertedAci[]> {
  const out: ConvertedAci[] = [];
  const lower: { manifest: ManifestJson; imageId: string }[] = [];
  let whitelist = new Set<string>();
  const n = input.layers.length;
  for (const [index, layer] of input.layers.entries()) {
    check(o.signal);
    const level = n - 1 - index;
    const what = whatLayer(input, layer, index);
    const isTop = level === 0;
    const manifestOf = (pwl: readonly string[]): ManifestJson =>
      isTop
        ? topLayerManifest(topInput, lower, pwl)
        : lowerLayerManifest(input.name, input.config, layer.digest, pwl);
    const probe = manifestOf([]);
    const target: AciTarget = {
      fileName: layerFileName(o.layerFileNames ?? "oci", {
        repository: input.name.repository,
        tag: input.name.tag,
        os: input.config.os,
        arch: input.config.architecture,
        indexFromTop: level,
        layerDigest: layer.digest,
      }),
      name: probe.name,
    };
    let plan = emptyPlan();
    for (let attempt = 0; ; attempt++) {
      let written:
        { json: ManifestJson; bytes: Uint8Array; manifest: ImageManifest; pwl: Set<string> } | undefined;
      try {
        const { packed } = await produce(
          sink,
          target,
          compression,
          (p) =>
            writeLayerAci(
              layer,
              level,
              what,
              plan,
              p,
              (w) => {
                const pwl = nextWhitelist(whitelist, w.own, w.whiteouts, w.opaques);
                const json = manifestOf([...pwl].sort());
                const enc = encodeManifest(json);
                written = { json, ...enc, pwl };
                return enc.bytes;
              },
              o.onProgress,
            ),
          o.gzipLevel,
        );
        const wr = written!;
        whitelist = wr.pwl;
        lower.push({ manifest: wr.json, imageId: packed.imageId });
        out.push({ ...target, ...packed, manifest: wr.manifest, rawManifest: wr.bytes });
        break;
      } catch (e) {
        if (!(e instanceof NeedsPlanError) || attempt > 0) throw e;
        plan = await scanDuplicates(layer, what);
      }
    }
  }
  return out;
}
