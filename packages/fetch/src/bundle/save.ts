// `rkt image save --bundle`: images, their signatures and their signers' public keys in one OCI
// archive for an air gap. Images go through copyImage into the OCI archive sink (one tar, written
// as it streams, renamed into place when complete); manifests are kept byte for byte, since a
// signature names those exact bytes. Signatures come from this machine's lookaside (and the
// registry's extension for registry sources); keys from its keystore and policy.json. What is in
// the bundle is described by the index.json annotation (description.ts).
import { createReadStream, statSync } from "node:fs";
import { resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  ErrorCode,
  RktError,
  formatDockerReference,
  hostPlatform,
  isRktError,
  parseDigest,
  parseDockerReference,
  type Abortable,
  type Descriptor,
  type Digest,
  type DockerRef,
  type ImageSink,
  type Platform,
} from "@rkt/oci";
import { getImage, resolveImage, type LocalStore } from "@rkt/store";
import type { TrustedKey } from "@rkt/trust";
import { ascPathFromImgPath, readSignatureFile } from "../aci-file.js";
import type { MachineTrust } from "../admission.js";
import { readDockerSignatures } from "../docker-policy.js";
import { copyImage, type CopyEvent } from "../image/copy.js";
import { ociArchiveSink } from "../image/oci-archive.js";
import { openImageSource, parseImageLocation, type TransportContext } from "../image/transports.js";
import type { HttpOptions } from "../registry/http.js";
import {
  BundleMediaType,
  bundleAnnotation,
  formatBundleDescription,
  type BundleBlob,
  type BundleDescription,
  type BundleImage,
  type BundleKey,
  type BundleSignature,
} from "./description.js";

type Key = TrustedKey["keys"][number];

/** One image to save: a location (`docker://…`, `oci:…`, a stored image, an ACI file). */
export interface BundleImageSpec {
  readonly image: string;
  /** An ACI's detached signature (else `<file>.asc` beside an ACI file; a stored ACI needs one). */
  readonly signature?: string | undefined;
}

/** Options of {@link saveBundle}. */
export interface SaveBundleOptions extends Abortable {
  /** Registry clients for `docker://` images (the caller closes them); the store for stored ones. */
  readonly transport: TransportContext;
  /** The saving machine's trust: where signatures are, and the keys that may have made them. */
  readonly trust: MachineTrust;
  /** A lookaside directory to read signatures from instead of registries.d's. */
  readonly lookaside?: string | undefined;
  /** HTTP settings for `https://` lookasides. */
  readonly http?: HttpOptions | undefined;
  /** Every platform of an index (default: the one for `platform`, the host's). */
  readonly all?: boolean | undefined;
  readonly platform?: Platform | undefined;
  readonly parallel?: number | undefined;
  /** Replace an existing file. */
  readonly overwrite?: boolean | undefined;
  /** Relative paths resolve against it. */
  readonly cwd?: string | undefined;
  /** Recorded as `creator` (e.g. `rkt 1.0.0`). */
  readonly creator?: string | undefined;
  /** A signature that is not carried, or one carried without its key. */
  readonly onWarning?: ((message: string) => void) | undefined;
  readonly onProgress?: ((e: CopyEvent) => void) | undefined;
  /** Each image once it is in the archive. */
  readonly onImage?: ((image: BundleImage) => void) | undefined;
}

/** What {@link saveBundle} wrote. */
export interface SaveBundleResult {
  readonly file: string;
  readonly description: BundleDescription;
}

interface KnownKey {
  readonly key: Key;
  readonly fingerprint: string;
  readonly identities: readonly string[];
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

const transportPrefix = /^(?:docker:\/\/|oci:|oci-archive:|docker-archive:|rkt:)/;

/**
 * Writes `specs` into one OCI archive at `file` (appearing only when complete), with every
 * signature found for them and the public keys that made those signatures. For an OCI image:
 * the signatures of this machine's lookaside (`o.lookaside`, else registries.d's, else
 * containers' built-in directory) and, for `docker://` sources, the registry's extension, over
 * the manifest copied (and, with `all`, over the index and each of its manifests); a signature
 * made by a known key (keystore or policy.json) that does not verify for the image is left out,
 * with a warning. For an ACI: the ACI exactly as signed and its `.asc`. RKT_NOT_FOUND for an
 * unknown image, RKT_INVALID_ARGUMENT for a stored ACI without a signature, the sources' and the
 * sink's errors; nothing is left behind on failure.
 */
export async function saveBundle(
  file: string,
  specs: readonly BundleImageSpec[],
  o: SaveBundleOptions,
): Promise<SaveBundleResult> {
  const cwd = o.cwd ?? process.cwd();
  const images: BundleImage[] = [];
  const used = new Map<string, KnownKey>();
  let description: BundleDescription | undefined;
  const sink = ociArchiveSink(file, {
    overwrite: o.overwrite,
    what: `bundle ${file}`,
    keepManifests: true,
    annotations: () => ({ [bundleAnnotation]: formatBundleDescription(description!) }),
  });
  let known: Promise<KnownKey[]> | undefined;
  const keys = (): Promise<KnownKey[]> => (known ??= knownKeys(o.trust));
  const signer = async (keyId: string): Promise<KnownKey | undefined> => {
    const { keyHasKeyId } = await import("@rkt/trust");
    return (await keys()).find((k) => keyHasKeyId(k.key, keyId));
  };
  const addBlob = async (mediaType: string, bytes: Uint8Array): Promise<BundleBlob> => {
    const { digestOf } = await import("@rkt/oci");
    const d = { mediaType, digest: digestOf(bytes), size: bytes.length };
    await sink.addBlob(d, () => Promise.resolve(Readable.from([Buffer.from(bytes)])));
    return d;
  };
  // Copies into the shared archive; only the end of the whole save commits it.
  const shared: ImageSink = { ...sink, commit: () => Promise.resolve(), abort: () => Promise.resolve() };
  try {
    for (const spec of specs) {
      const at = resolve(cwd, spec.image);
      let img: BundleImage;
      if (!transportPrefix.test(spec.image) && isFile(at)) {
        img = await aciFile(at, spec, o, cwd, sink, signer, used, addBlob);
      } else {
        const storeAci = storedAci(o.transport.store, spec.image);
        img =
          storeAci !== undefined
            ? await aciStored(storeAci, spec, o, cwd, sink, signer, used, addBlob)
            : await ociImage(spec, o, shared, signer, used, addBlob);
      }
      images.push(img);
      o.onImage?.(img);
    }
    const { armoredPublicKey } = await import("@rkt/trust");
    const keyEntries: BundleKey[] = [];
    for (const k of used.values()) {
      const d = await addBlob(BundleMediaType.PublicKey, Buffer.from(armoredPublicKey(k.key)));
      keyEntries.push({ descriptor: d, fingerprint: k.fingerprint, identities: k.identities });
    }
    description = {
      version: 1,
      created: new Date().toISOString(),
      creator: o.creator ?? "rkt",
      images,
      keys: keyEntries,
    };
    await sink.commit({ signal: o.signal });
    return { file, description };
  } catch (e) {
    await sink.abort();
    throw e;
  }
}

type Signer = (keyId: string) => Promise<KnownKey | undefined>;
type AddBlob = (mediaType: string, bytes: Uint8Array) => Promise<BundleBlob>;

// Every key this machine trusts for anything: its keystore's and those its policy.json names.
async function knownKeys(trust: MachineTrust): Promise<KnownKey[]> {
  const { describeKey, policyKeys } = await import("@rkt/trust");
  const all: Key[] = [...(await trust.keystore.list()).flatMap((t) => t.keys)];
  if (trust.policy !== undefined) all.push(...(await policyKeys(trust.policy.policy)));
  return all.map((key) => {
    const d = describeKey(key);
    return { key, fingerprint: d.fingerprint, identities: d.identities };
  });
}

// A stored ACI named by `image` (an ID or name that resolves to one), else undefined.
function storedAci(store: LocalStore | undefined, image: string): string | undefined {
  if (store === undefined || transportPrefix.test(image)) return undefined;
  try {
    const id = resolveImage(store, image);
    return getImage(store, id).kind === "aci" ? id : undefined;
  } catch (e) {
    if (isRktError(e, ErrorCode.NotFound)) return undefined;
    throw e;
  }
}

async function ociImage(
  spec: BundleImageSpec,
  o: SaveBundleOptions,
  sink: ImageSink,
  signer: Signer,
  used: Map<string, KnownKey>,
  addBlob: AddBlob,
): Promise<BundleImage> {
  if (spec.signature !== undefined) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${spec.image}: --signature applies to ACIs; OCI images carry simple-signing signatures`,
    );
  }
  const raw = transportPrefix.test(spec.image) ? spec.image : `rkt:${spec.image}`;
  const loc = parseImageLocation(raw, o.cwd ?? process.cwd());
  const src = await openImageSource(loc, o.transport);
  try {
    if (src.name === undefined) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `${spec.image}: has no repository name to carry into the bundle; copy it under one first`,
      );
    }
    const name = `${src.name}:${src.tag ?? "latest"}`;
    const c = await copyImage(src.image, sink, {
      tag: name,
      all: o.all,
      platform: o.platform ?? hostPlatform(),
      origin: src.origin,
      ranged: src.ranged,
      parallel: o.parallel,
      signal: o.signal,
      onProgress: o.onProgress,
    });
    const top = c.descriptor;
    const digests: Digest[] = [top.digest];
    let platforms: string[] | undefined;
    if (c.image === undefined && src.image.kind === "index") {
      const children = src.image.index.manifests;
      digests.push(...children.map((d) => d.digest));
      platforms = children.map((d) =>
        [d.platform?.os, d.platform?.architecture, d.platform?.variant]
          .filter((x) => x !== undefined)
          .join("/"),
      );
    }
    const ref = parseDockerReference(name);
    const client = loc.kind === "docker" ? o.transport.client(loc.ref.registry) : undefined;
    const signatures: BundleSignature[] = [];
    for (const digest of digests) {
      const blobs = await readDockerSignatures({ ref, client, signal: o.signal }, digest, {
        registriesD: o.lookaside === undefined ? o.trust.registriesD : { docker: {} },
        defaultLookaside:
          o.lookaside === undefined
            ? o.trust.defaultLookaside
            : `file://${resolve(o.cwd ?? ".", o.lookaside)}`,
        http: o.http,
      });
      for (const blob of blobs) {
        const s = await simpleSignature(blob, ref, digest, name, signer, o);
        if (s === undefined) continue;
        if (s.key !== undefined) used.set(s.key.fingerprint, s.key);
        signatures.push({ ...s.entry, descriptor: await addBlob(BundleMediaType.SimpleSigning, blob) });
      }
    }
    if (signatures.length === 0) o.onWarning?.(`${name}: no signature found; it travels unsigned`);
    const size = top.size + c.bytes.written + c.bytes.exists + c.bytes.mounted;
    return { kind: "oci", name, descriptor: plain(top), platforms, size, signatures };
  } finally {
    await src.close();
  }
}

function plain(d: Descriptor): BundleBlob {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

// A simple-signing signature worth carrying: made by a known key and valid for this image and
// digest, or made by a key this machine does not have (the receiver may trust it).
async function simpleSignature(
  blob: Uint8Array,
  ref: DockerRef,
  digest: Digest,
  name: string,
  signer: Signer,
  o: SaveBundleOptions,
): Promise<{ entry: Omit<BundleSignature, "descriptor">; key?: KnownKey | undefined } | undefined> {
  const { simpleSignatureKeyId, verifySimpleSignature } = await import("@rkt/trust");
  let keyId: string;
  try {
    keyId = await simpleSignatureKeyId(blob);
  } catch (e) {
    if (!isRktError(e)) throw e;
    o.onWarning?.(`${name}: a signature of ${digest} is not carried: ${e.message}`);
    return undefined;
  }
  const key = await signer(keyId);
  if (key === undefined) {
    o.onWarning?.(
      `${name}: signature of ${digest} by key ID ${keyId.toUpperCase()}: no such key here; it travels without its key`,
    );
    return { entry: { keyId } };
  }
  try {
    const v = await verifySimpleSignature(blob, {
      keys: [key.key],
      expectedReference: formatDockerReference(ref),
      manifestDigest: digest,
      signedIdentity: { type: "matchRepository" },
    });
    return {
      entry: { keyId, fingerprint: key.fingerprint, signs: v.manifestDigest, reference: v.dockerReference },
      key,
    };
  } catch (e) {
    if (!isRktError(e)) throw e;
    o.onWarning?.(`${name}: a signature of ${digest} is not carried: ${e.message}`);
    return undefined;
  }
}

// The signature of an ACI, and its key when this machine has it.
async function aciSignature(
  sigPath: string,
  name: string,
  signer: Signer,
  used: Map<string, KnownKey>,
  addBlob: AddBlob,
  o: SaveBundleOptions,
): Promise<BundleSignature> {
  const { detachedSignatureKeyIds } = await import("@rkt/trust");
  const bytes = await readSignatureFile(sigPath);
  const ids = await detachedSignatureKeyIds(bytes);
  let key: KnownKey | undefined;
  for (const id of ids) key ??= await signer(id);
  const keyId = ids[0] ?? "0000000000000000";
  if (key === undefined) {
    o.onWarning?.(
      `${name}: signed by key ID ${keyId.toUpperCase()}: no such key here; it travels without its key`,
    );
  } else used.set(key.fingerprint, key);
  const descriptor = await addBlob(BundleMediaType.AciSignature, bytes);
  return { descriptor, keyId, ...(key === undefined ? {} : { fingerprint: key.fingerprint }) };
}

async function aciFile(
  path: string,
  spec: BundleImageSpec,
  o: SaveBundleOptions,
  cwd: string,
  sink: ReturnType<typeof ociArchiveSink>,
  signer: Signer,
  used: Map<string, KnownKey>,
  addBlob: AddBlob,
): Promise<BundleImage> {
  // One pass before the copy: the tar entry is named by the digest, and the manifest gives the
  // name and labels, the uncompressed hash the image ID.
  const { createSha512PassThrough, readAci } = await import("@rkt/appc");
  // The file's sha512 is the digest the blob is stored under.
  const tap = createSha512PassThrough();
  const read = readAci(tap.stream, undefined, { hash: true, signal: o.signal });
  await Promise.all([pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), tap.stream), read]);
  const r = await read;
  const size = statSync(path).size;
  const descriptor: BundleBlob = {
    mediaType: BundleMediaType.Aci,
    digest: parseDigest(`sha512:${tap.sha512Hex()}`),
    size,
  };
  const name = r.manifest.name;
  const sig = await aciSignature(
    spec.signature === undefined ? ascPathFromImgPath(path) : resolve(cwd, spec.signature),
    name,
    signer,
    used,
    addBlob,
    o,
  );
  await sink.addBlob(descriptor, () => Promise.resolve(createReadStream(path, { highWaterMark: 1 << 20 })));
  return {
    kind: "aci",
    name,
    labels: Object.fromEntries((r.manifest.labels ?? []).map((l) => [l.name, l.value])),
    id: r.imageId,
    descriptor,
    signatures: [sig],
  };
}

async function aciStored(
  id: string,
  spec: BundleImageSpec,
  o: SaveBundleOptions,
  cwd: string,
  sink: ReturnType<typeof ociArchiveSink>,
  signer: Signer,
  used: Map<string, KnownKey>,
  addBlob: AddBlob,
): Promise<BundleImage> {
  const store = o.transport.store!;
  const rec = getImage(store, id);
  if (spec.signature === undefined) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${spec.image}: a stored ACI needs --signature FILE after it (the store keeps no signatures; rkt image sign makes one)`,
    );
  }
  const digest = parseDigest(rec.manifestDigest);
  const size = (await store.info(digest)).size;
  const descriptor: BundleBlob = { mediaType: BundleMediaType.Aci, digest, size };
  const sig = await aciSignature(resolve(cwd, spec.signature), rec.name, signer, used, addBlob, o);
  await sink.addBlob(descriptor, () => store.open(digest, { signal: o.signal }));
  return { kind: "aci", name: rec.name, labels: rec.labels, id: rec.id, descriptor, signatures: [sig] };
}
