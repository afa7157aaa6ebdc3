// `rkt image load FILE`: a signed bundle, a plain OCI archive or a `docker save` archive into the
// store. A bundle's images are checked against the RECEIVING machine's trust before any of their
// blobs is read: an OCI image by its policy.json (transport docker, the image's name, the
// signatures the bundle carries) or, without a policy, by its keystore; an ACI by its keystore,
// over the exact bytes, before its import commits. Keys the bundle carries are never used on
// their own: they count only once imported into the keystore (`keys()`, after a review). The
// archive is read in place; a load run again skips what was committed (blobs the store has are
// not read; an ACI whose ID is stored is not read at all).
import type { Readable } from "node:stream";
import { Transform, type TransformCallback } from "node:stream";
import { join } from "node:path";
import {
  ErrorCode,
  RktError,
  digestOf,
  formatDockerReference,
  hostPlatform,
  isRktError,
  parseDockerReference,
  platformImage,
  verifyDigest,
  type Abortable,
  type BlobFetcher,
  type Digest,
  type DockerRef,
  type Image,
  type Platform,
} from "@rkt/oci";
import { getImage, importAci, type LocalStore } from "@rkt/store";
import type { KeyStore } from "@rkt/trust";
import { importSignedAci, verificationDisabledWarning } from "../aci-file.js";
import { admitLocal, type MachineTrust } from "../admission.js";
import { admitByPolicy } from "../docker-policy.js";
import { copyImage } from "../image/copy.js";
import { dockerArchiveImageCount } from "../image/docker-archive.js";
import { openArchiveLayout, type OpenedArchiveLayout } from "../image/oci-archive.js";
import { storeSink } from "../image/store.js";
import { archiveBase, importDockerArchive, nameAndTag, tempName } from "../local-import.js";
import { refNameAnnotation } from "../oci-layout.js";
import {
  blobDescriptor,
  bundleAnnotation,
  bundleDescriptionOf,
  type BundleAci,
  type BundleBlob,
  type BundleDescription,
  type BundleImage,
  type BundleOciImage,
} from "./description.js";

/** How one image of a load went. */
export interface LoadResult {
  /** The image as the archive names it (`REGISTRY/REPO:TAG`, an ACI's name, or `@N`). */
  readonly image: string;
  readonly kind: "oci" | "aci";
  /** `present`: the store already had it (nothing of it was read but its manifest). */
  readonly status: "loaded" | "present" | "refused";
  /** The image ID in the store. */
  readonly id?: string | undefined;
  /** Bytes read from the archive for it (not reported for docker archives). */
  readonly bytesRead?: number | undefined;
  /** Why it was refused: its error's code and message. */
  readonly error?: { readonly code: string; readonly message: string } | undefined;
}

/** Options of {@link LoadableArchive.load}. */
export interface LoadOptions extends Abortable {
  /** The receiving machine's trust (see {@link machineTrust}); null: nothing verified (warned). */
  readonly trust: MachineTrust | null;
  /** Platform taken from an index; default the host's. */
  readonly platform?: Platform | undefined;
  /** Blobs at once, per image (default 4). */
  readonly parallel?: number | undefined;
  /** `signature verified: …` lines. */
  readonly onInfo?: ((message: string) => void) | undefined;
  readonly onWarning?: ((message: string) => void) | undefined;
  /** Each image's outcome as it is decided. */
  readonly onResult?: ((r: LoadResult) => void) | undefined;
}

/** A key a bundle carries, to be reviewed before it is trusted. */
export interface BundleKeyCandidate {
  /** Lowercase fingerprint of the key as read from its blob. */
  readonly fingerprint: string;
  /** The key file's text (what the keystore would store). */
  readonly armored: string;
  /** Names the key in messages: `FILE@sha256:…`. */
  readonly location: string;
  /**
   * The names whose images the bundle says it signed (ACI names; `REGISTRY/REPOSITORY` of OCI
   * images): the prefixes to trust it for, each a narrow scope.
   */
  readonly prefixes: readonly string[];
  /** Set when the blob is not the key the description names (then it must not be trusted). */
  readonly problem?: string | undefined;
}

/** An archive opened for {@link LoadableArchive.load}. */
export interface LoadableArchive {
  readonly kind: "bundle" | "oci-archive" | "docker-archive";
  readonly file: string;
  /** A bundle's description. */
  readonly description?: BundleDescription | undefined;
  /** The keys a bundle carries, each read and checked against the description ([] otherwise). */
  keys(o?: Abortable): Promise<BundleKeyCandidate[]>;
  /** Loads every image: admitted ones into the store, the others reported as refused. */
  load(o: LoadOptions): Promise<LoadResult[]>;
  /** Removes the temporary copy a compressed archive needed. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens `file` for loading into `store`: an OCI archive (a bundle when its index.json carries the
 * bundle annotation) read in place, a compressed one unpacked under the store's `tmp/`, or a
 * `docker save` archive. RKT_INVALID_ARCHIVE for a bad description or an unreadable archive,
 * RKT_NOT_FOUND for a file that is neither kind.
 */
export async function openLoadableArchive(store: LocalStore, file: string): Promise<LoadableArchive> {
  let layout: OpenedArchiveLayout;
  try {
    layout = await openArchiveLayout(file, { unpackTo: join(store.paths.tmp, tempName("load")) });
  } catch (e) {
    if (!isRktError(e, ErrorCode.NotFound)) throw e;
    return dockerArchive(store, file);
  }
  try {
    const description = bundleDescriptionOf(layout.index.annotations, file);
    return description === undefined
      ? plainOciArchive(store, file, layout)
      : signedBundle(store, file, layout, description);
  } catch (e) {
    await layout.close();
    throw e;
  }
}

function refusal(e: unknown): { code: string; message: string } {
  return {
    code: isRktError(e) ? e.code : ErrorCode.Io,
    message: e instanceof Error ? e.message : String(e),
  };
}

// Counts the bytes read through `f`, charged to whichever image is being worked on.
function countingFetcher(f: BlobFetcher, charge: (n: number) => void): BlobFetcher {
  return {
    async readDocument(d, max, o) {
      const b = await f.readDocument(d, max, o);
      charge(b.length);
      return b;
    },
    async openBlob(d, o) {
      const s = await f.openBlob(d, o);
      const count = new Transform({
        highWaterMark: 1 << 20,
        transform(chunk: Buffer, _e, cb: TransformCallback) {
          charge(chunk.length);
          cb(null, chunk);
        },
      });
      s.on("error", (e) => count.destroy(e));
      return s.pipe(count);
    },
  };
}

// A small blob (signature, key) read whole and checked against its descriptor.
async function readSmall(f: BlobFetcher, b: BundleBlob, what: string, o: Abortable): Promise<Uint8Array> {
  const { maxSignatureBytes } = await import("@rkt/trust");
  const bytes = await f.readDocument(blobDescriptor(b), maxSignatureBytes, o);
  const alg = b.digest.startsWith("sha512:") ? "sha512" : "sha256";
  if (bytes.length !== b.size || digestOf(bytes, alg) !== b.digest) {
    throw new RktError(ErrorCode.DigestMismatch, `${what}: blob ${b.digest} does not match its digest`);
  }
  return bytes;
}

function splitName(name: string): { name: string; tag: string } {
  const colon = name.lastIndexOf(":");
  return colon > name.lastIndexOf("/")
    ? { name: name.slice(0, colon), tag: name.slice(colon + 1) }
    : { name, tag: "latest" };
}

function has(store: LocalStore, id: string): boolean {
  try {
    getImage(store, id);
    return true;
  } catch (e) {
    if (isRktError(e, ErrorCode.NotFound)) return false;
    throw e;
  }
}

// An OCI image admitted by the keystore (no policy.json on this machine): one of its signatures
// must be a simple-signing signature for its name and digest by a key trusted for
// REGISTRY/REPOSITORY (or a parent prefix, or a root key), under matchRepoDigestOrExact.
async function admitByKeystore(
  keystore: KeyStore,
  ref: DockerRef,
  digests: readonly Digest[],
  signatures: readonly Uint8Array[],
  onInfo: ((m: string) => void) | undefined,
): Promise<void> {
  const { verifySimpleSignature, formatFingerprint } = await import("@rkt/trust");
  const name = `${ref.registry}/${ref.repository}`;
  const shown = `docker://${formatDockerReference(ref)}`;
  const trusted = await keystore.keysFor(name);
  if (trusted.length === 0) {
    throw new RktError(
      ErrorCode.KeyUntrusted,
      `${shown}: no policy.json here and no key trusted for ${JSON.stringify(name)} (rkt trust --prefix ${JSON.stringify(name)}, or --trust-bundle-keys)`,
    );
  }
  if (signatures.length === 0)
    throw new RktError(ErrorCode.SignatureInvalid, `${shown}: the bundle carries no signature for it`);
  const keys = trusted.flatMap((t) => t.keys);
  const why: string[] = [];
  for (const digest of digests) {
    for (const sig of signatures) {
      try {
        const v = await verifySimpleSignature(sig, {
          keys,
          expectedReference: formatDockerReference(ref),
          manifestDigest: digest,
        });
        const who = v.identities.length > 0 ? ` ${v.identities.join(", ")}` : "";
        onInfo?.(
          `signature verified: ${v.dockerReference}@${v.manifestDigest} by key ${formatFingerprint(v.fingerprint)}${who}`,
        );
        return;
      } catch (e) {
        if (!isRktError(e)) throw e;
        why.push(e.message);
      }
    }
  }
  throw new RktError(
    why.every((w) => w.startsWith("signature made by unknown key"))
      ? ErrorCode.KeyUntrusted
      : ErrorCode.SignatureInvalid,
    `${shown}: no signature accepted by the keystore: ${[...new Set(why)].join("; ")}`,
  );
}

interface Prepared {
  readonly entry: BundleImage;
  readonly bytes: { n: number };
  /** Already stored (nothing to read). */
  readonly present?: string | undefined;
  run(): Promise<LoadResult>;
}

function signedBundle(
  store: LocalStore,
  file: string,
  layout: OpenedArchiveLayout,
  description: BundleDescription,
): LoadableArchive {
  let current: { n: number } = { n: 0 };
  const fetcher = countingFetcher(layout.fetcher, (n) => (current.n += n));
  const what = (img: BundleImage) => `${file}: ${img.name}`;

  const prepareOci = async (
    entry: BundleOciImage,
    o: LoadOptions,
    bytes: { n: number },
  ): Promise<Prepared> => {
    const w = what(entry);
    const listed = layout.index.manifests.find(
      (m) => m.digest === entry.descriptor.digest && m.annotations?.[refNameAnnotation] === entry.name,
    );
    if (listed === undefined) {
      throw new RktError(
        ErrorCode.InvalidArchive,
        `${w}: index.json lists no ${entry.descriptor.digest} under this name`,
      );
    }
    const { imageFromRaw, maxManifestBytes } = await import("@rkt/oci");
    const d = blobDescriptor(entry.descriptor);
    const top = imageFromRaw(await fetcher.readDocument(d, maxManifestBytes, o), d, fetcher, w);
    const img: Image = await platformImage(top, o.platform ?? hostPlatform(), w, o);
    const signatures: Uint8Array[] = [];
    for (const s of entry.signatures) signatures.push(await readSmall(fetcher, s.descriptor, w, o));
    const present = has(store, img.descriptor.digest) ? img.descriptor.digest : undefined;
    if (o.trust !== null) {
      let ref: DockerRef;
      try {
        ref = parseDockerReference(entry.name);
      } catch (e) {
        throw new RktError(
          ErrorCode.InvalidReference,
          `${w}: not a registry reference, so no policy or key can name it (${e instanceof Error ? e.message : String(e)})`,
          { cause: e },
        );
      }
      const digests = [top.descriptor.digest, ...(img === top ? [] : [img.descriptor.digest])];
      if (o.trust.policy !== undefined) {
        await admitByPolicy(
          { policy: o.trust.policy.policy, policySource: o.trust.policy.path, onInfo: o.onInfo },
          { ref, topDigest: top.descriptor.digest, manifestDigest: img.descriptor.digest },
          () => Promise.resolve(signatures),
        );
      } else await admitByKeystore(o.trust.keystore, ref, digests, signatures, o.onInfo);
    }
    const { name, tag } = splitName(entry.name);
    return {
      entry,
      bytes,
      present,
      async run() {
        const sink = storeSink(store, { name, what: w });
        const c = await copyImage(img, sink, { tag, parallel: o.parallel, ranged: true, signal: o.signal });
        const id = sink.imported[0]?.id ?? img.descriptor.digest;
        const status = present !== undefined && c.blobs.written === 0 ? "present" : "loaded";
        return { image: entry.name, kind: "oci", status, id, bytesRead: bytes.n };
      },
    };
  };

  const prepareAci = async (entry: BundleAci, o: LoadOptions, bytes: { n: number }): Promise<Prepared> => {
    const w = what(entry);
    const present = entry.id !== undefined && has(store, entry.id) ? entry.id : undefined;
    const sig = entry.signatures[0];
    let signature: Uint8Array | undefined;
    if (present === undefined && o.trust !== null) {
      if (sig === undefined)
        throw new RktError(ErrorCode.SignatureInvalid, `${w}: the bundle carries no signature for it`);
      signature = await readSmall(fetcher, sig.descriptor, w, o);
    }
    const d = blobDescriptor(entry.descriptor);
    const open = async (): Promise<Readable> => {
      const s = await fetcher.openBlob(d, { signal: o.signal });
      const v = verifyDigest(d.digest, d.size, `${w}: blob ${d.digest}`);
      s.on("error", (e) => v.destroy(e));
      return s.pipe(v);
    };
    return {
      entry,
      bytes,
      present,
      async run() {
        if (present !== undefined)
          return { image: entry.name, kind: "aci", status: "present", id: present, bytesRead: bytes.n };
        const r =
          o.trust === null || signature === undefined
            ? await importAci(store, await open(), { what: w, signal: o.signal })
            : await importSignedAci(store, {
                open,
                what: w,
                signature,
                keystore: o.trust.keystore,
                signal: o.signal,
                onInfo: o.onInfo,
              });
        return { image: entry.name, kind: "aci", status: "loaded", id: r.id, bytesRead: bytes.n };
      },
    };
  };

  return {
    kind: "bundle",
    file,
    description,
    async keys(o = {}) {
      const { parseArmoredKeyring } = await import("@rkt/trust");
      const out: BundleKeyCandidate[] = [];
      for (const k of description.keys) {
        const location = `${file}@${k.descriptor.digest}`;
        const prefixes = new Set<string>();
        for (const img of description.images) {
          if (!img.signatures.some((s) => s.fingerprint === k.fingerprint)) continue;
          if (img.kind === "aci") prefixes.add(img.name);
          else {
            try {
              const r = parseDockerReference(img.name);
              prefixes.add(`${r.registry}/${r.repository}`);
            } catch {
              // Not a registry name: nothing in a keystore can name it.
            }
          }
        }
        try {
          const bytes = await readSmall(layout.fetcher, k.descriptor, location, o);
          const parsed = await parseArmoredKeyring(bytes, location);
          const problem =
            parsed.fingerprint === k.fingerprint
              ? undefined
              : `the bundle names key ${k.fingerprint}, the blob holds ${parsed.fingerprint}`;
          out.push({
            fingerprint: parsed.fingerprint,
            armored: parsed.armored,
            location,
            prefixes: [...prefixes],
            problem,
          });
        } catch (e) {
          if (!isRktError(e)) throw e;
          out.push({
            fingerprint: k.fingerprint,
            armored: "",
            location,
            prefixes: [...prefixes],
            problem: e.message,
          });
        }
      }
      return out;
    },
    async load(o) {
      if (o.trust === null) o.onWarning?.(verificationDisabledWarning);
      const results: LoadResult[] = new Array<LoadResult>(description.images.length);
      const report = (i: number, r: LoadResult): void => {
        results[i] = r;
        o.onResult?.(r);
      };
      // Every image is admitted (manifest and signatures read, checked) before any is loaded.
      const prepared: (Prepared | undefined)[] = [];
      for (const [i, entry] of description.images.entries()) {
        current = { n: 0 };
        const bytes = current;
        try {
          prepared.push(
            entry.kind === "oci" ? await prepareOci(entry, o, bytes) : await prepareAci(entry, o, bytes),
          );
        } catch (e) {
          if (o.signal?.aborted === true) throw e;
          prepared.push(undefined);
          report(i, {
            image: entry.name,
            kind: entry.kind,
            status: "refused",
            bytesRead: bytes.n,
            error: refusal(e),
          });
        }
      }
      for (const [i, p] of prepared.entries()) {
        if (p === undefined) continue;
        current = p.bytes;
        try {
          report(i, await p.run());
        } catch (e) {
          if (o.signal?.aborted === true) throw e;
          report(i, {
            image: p.entry.name,
            kind: p.entry.kind,
            status: "refused",
            bytesRead: p.bytes.n,
            error: refusal(e),
          });
        }
      }
      return results;
    },
    close: () => layout.close(),
  };
}

function plainOciArchive(store: LocalStore, file: string, layout: OpenedArchiveLayout): LoadableArchive {
  let current = { n: 0 };
  const fetcher = countingFetcher(layout.fetcher, (n) => (current.n += n));
  return {
    kind: "oci-archive",
    file,
    keys: () => Promise.resolve([]),
    async load(o) {
      if (o.trust === null) o.onWarning?.(verificationDisabledWarning);
      const out: LoadResult[] = [];
      for (const [i, d] of layout.index.manifests.entries()) {
        current = { n: 0 };
        const ref = d.annotations?.[refNameAnnotation];
        const shown = ref ?? `@${i}`;
        const what = `oci-archive:${file}:${shown}`;
        let r: LoadResult;
        try {
          if (o.trust?.policy !== undefined)
            await admitLocal(o.trust.policy, { transport: "oci-archive", path: file, ref, what });
          const { imageFromRaw, maxManifestBytes } = await import("@rkt/oci");
          const top = imageFromRaw(await fetcher.readDocument(d, maxManifestBytes, o), d, fetcher, what);
          const img = await platformImage(top, o.platform ?? hostPlatform(), what, o);
          const { name, tag } = nameAndTag(ref, archiveBase(file));
          const present = has(store, img.descriptor.digest);
          const sink = storeSink(store, { name, what });
          const c = await copyImage(img, sink, { tag, parallel: o.parallel, ranged: true, signal: o.signal });
          r = {
            image: shown,
            kind: "oci",
            status: present && c.blobs.written === 0 ? "present" : "loaded",
            id: img.descriptor.digest,
            bytesRead: current.n,
          };
        } catch (e) {
          if (o.signal?.aborted === true) throw e;
          r = { image: shown, kind: "oci", status: "refused", bytesRead: current.n, error: refusal(e) };
        }
        out.push(r);
        o.onResult?.(r);
      }
      return out;
    },
    close: () => layout.close(),
  };
}

async function dockerArchive(store: LocalStore, file: string): Promise<LoadableArchive> {
  let count: number;
  try {
    count = await dockerArchiveImageCount(file);
  } catch (e) {
    throw new RktError(
      ErrorCode.InvalidArchive,
      `${file}: neither an OCI archive (no oci-layout and index.json) nor a docker archive (${e instanceof Error ? e.message : String(e)})`,
      { cause: e },
    );
  }
  return {
    kind: "docker-archive",
    file,
    keys: () => Promise.resolve([]),
    async load(o) {
      if (o.trust === null) o.onWarning?.(verificationDisabledWarning);
      const out: LoadResult[] = [];
      for (let i = 0; i < count; i++) {
        const what = `docker-archive:${file}:@${i}`;
        let r: LoadResult;
        try {
          if (o.trust?.policy !== undefined)
            await admitLocal(o.trust.policy, { transport: "docker-archive", path: file, what });
          const x = await importDockerArchive(store, file, { index: i, what, signal: o.signal });
          r = { image: x.name, kind: "oci", status: "loaded", id: x.id };
        } catch (e) {
          if (o.signal?.aborted === true) throw e;
          r = { image: `@${i}`, kind: "oci", status: "refused", error: refusal(e) };
        }
        out.push(r);
        o.onResult?.(r);
      }
      return out;
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The description of the bundle `file` (what `rkt image bundle inspect` prints). Reads only the
 * archive's headers and index.json (a compressed one is unpacked to a temporary directory).
 * RKT_INVALID_ARGUMENT for an OCI archive that is not a bundle, RKT_INVALID_ARCHIVE for a bad
 * description, the archive's own errors.
 */
export async function inspectBundle(file: string): Promise<BundleDescription> {
  const layout = await openArchiveLayout(file);
  try {
    const d = bundleDescriptionOf(layout.index.annotations, file);
    if (d === undefined) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `${file}: an OCI archive, not a bundle (its index.json has no ${bundleAnnotation} annotation)`,
      );
    }
    return d;
  } finally {
    await layout.close();
  }
}
