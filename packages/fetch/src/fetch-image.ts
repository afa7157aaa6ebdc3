// The library's front door: `fetchImage(store, "docker://…" | "oci:…" | "file.aci" | "example.com/app:1", o)`
// does what `rkt fetch` does for one image: classify the reference as rkt does, admit it (the
// keystore for ACIs, policy.json for Docker/OCI images), read credentials, auth.d headers and
// registries.conf from rkt's configuration directories, and import it into the store under the
// pull policy. The CLI only parses flags and prints.
import { statSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { ErrorCode, RktError, parseImageRef, type Abortable, type ImageRef, type Platform } from "@rkt/oci";
import { getImage, type LocalStore } from "@rkt/store";
import { dockerAdmission, localAdmission, type AdmissionOptions, type RktConfigDirs } from "./admission.js";
import { importAciFile, readSignatureFile, verificationDisabledWarning } from "./aci-file.js";
import { readAppcAuth } from "./appc/auth-files.js";
import { fetchAppcImage } from "./appc/fetch-image.js";
import { trustDiscoveredKeys, type TrustedDiscoveredKey } from "./appc/pubkeys.js";
import {
  importDockerArchive,
  importOciArchive,
  importOciLayout,
  type LocalImportResult,
} from "./local-import.js";
import { openOciLayout } from "./oci-layout.js";
import { pullImage, type PullPolicy } from "./pull.js";
import { chainCredentials, defaultCredentials, type CredentialsProvider } from "./registry/credentials.js";
import type { BlobProgress } from "./registry/client.js";
import { loadRegistriesConf, registriesConfPaths, type PullSource } from "./registries-conf.js";

/** Progress of a fetch: the blobs of a registry pull or a local import, or an ACI read or downloaded (`url`: its URL or path). */
export type FetchProgress =
  | ({ readonly kind: "blob" } & BlobProgress)
  | {
      readonly kind: "aci";
      readonly url: string;
      readonly bytes: number;
      readonly total?: number | undefined;
    };

/** Options of {@link fetchImage}. */
export interface FetchImageOptions extends Abortable {
  /** rkt's configuration directories; default `/usr/lib/rkt` and `/etc/rkt`, no user directory. */
  configDirs?: RktConfigDirs | undefined;
  /** Default `process.env` (credentials, registries.conf, `RKT_DISCOVERY_PORT`-style overrides). */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Relative paths resolve against it; default `process.cwd()`. */
  cwd?: string | undefined;
  /** rkt's `--insecure-options`: `image` skips signature checks (warned), `http`, `tls`. */
  insecure?: { image?: boolean; http?: boolean; tls?: boolean } | undefined;
  /** Default `new` (`rkt fetch` passes `update`). Local sources always import. */
  pullPolicy?: PullPolicy | undefined;
  /** Platform picked from an index; default the host's. */
  platform?: Platform | undefined;
  /** Registry blobs at once. */
  parallel?: number | undefined;
  /** An ACI's detached signature file (else downloaded beside it, or `<file>.asc`). */
  signature?: string | undefined;
  /** A policy.json that must exist; else the first found in the config dirs. */
  signaturePolicy?: string | undefined;
  /** rkt's `--trust-keys-from-https`: an appc name with no trusted key trusts its discovered keys. */
  trustKeysFromHttps?: boolean | undefined;
  /** appc discovery port (rkt's `RKT_DISCOVERY_PORT` test hook). */
  discoveryPort?: number | undefined;
  /** rkt's `image: …` informational lines (signature verified, cache hits). */
  onInfo?: ((message: string) => void) | undefined;
  /** Warnings (verification disabled, deferred signatures). */
  onWarning?: ((message: string) => void) | undefined;
  onProgress?: ((p: FetchProgress) => void) | undefined;
  /** A registry mirror failed and the next source is tried. */
  onSourceFailed?: ((source: PullSource, error: RktError) => void) | undefined;
  /** Registry credentials tried before rkt's and docker's usual files (a sync config's entry). */
  credentials?: CredentialsProvider | undefined;
  /** A key trusted through `trustKeysFromHttps` (its fingerprint lines are for the user). */
  onKeyTrusted?: ((key: TrustedDiscoveredKey) => void) | undefined;
  /**
   * Render what is stored into the tree store in the same pass (rkt's render on fetch as root,
   * and `rkt run`): layers and ACIs are extracted into their snapshots while they are written.
   * An image found already stored is not rendered here. Default false.
   */
  render?: boolean | undefined;
}

/** What {@link fetchImage} stored. */
export interface FetchedImage {
  /** The image ID: an ACI's `sha512-…`, an OCI image's manifest digest. */
  readonly id: string;
  readonly kind: "aci" | "oci";
  readonly name: string;
  /** An ACI's archive digest; an OCI image's manifest, config and layer digests. */
  readonly digests: readonly string[];
  /** Stored bytes. */
  readonly bytes: number;
  /** Bytes received (registry, URL) or written from a local source. */
  readonly bytesDownloaded?: number | undefined;
  /** Image bytes the store already had. */
  readonly bytesReused?: number | undefined;
}

const defaultDirs: RktConfigDirs = { system: "/usr/lib/rkt", local: "/etc/rkt" };

function configDirList(d: RktConfigDirs): string[] {
  return [d.system, d.local, ...(d.user === undefined || d.user === "" ? [] : [d.user])];
}

function isRegularFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * How `rkt fetch` reads `image`: rkt's classification, where a path naming an existing regular
 * file (relative to `cwd`) is an ACI file. RKT_INVALID_REFERENCE for what parses as nothing.
 */
export function fetchImageRef(image: string, cwd = process.cwd()): ImageRef {
  return parseImageRef(image, { isFile: (p) => isRegularFile(resolve(cwd, p)) });
}

function noSignature(ref: ImageRef, image: string, o: FetchImageOptions): void {
  if (o.signature === undefined) return;
  const what =
    ref.transport === "docker"
      ? "docker images"
      : ref.transport === "docker-archive"
        ? "docker archives"
        : "OCI images";
  throw new RktError(
    ErrorCode.InvalidArgument,
    `${image}: --signature applies to ACIs; ${what} carry no detached signature`,
  );
}

function localSummary(r: LocalImportResult): FetchedImage {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    digests: r.digests,
    bytes: r.size,
    bytesDownloaded: r.bytesWritten,
    bytesReused: r.bytesReused,
  };
}

async function keystoreFor(o: FetchImageOptions, dirs: RktConfigDirs) {
  if (o.insecure?.image === true) return null;
  const { KeyStore } = await import("@rkt/trust");
  return new KeyStore({ systemConfigDir: dirs.system, localConfigDir: dirs.local });
}

/**
 * Fetches `image` into `store` as `rkt fetch IMAGE` does: a file path (an ACI, verified against
 * the keystore), `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME:TAG]`
 * (admitted by policy.json when one is found), `docker://REF` (pulled under the pull policy
 * through registries.conf mirrors, admitted by policy.json before any blob moves), an https URL
 * or an appc name (discovery). Errors name `image`; RKT_INVALID_REFERENCE for an unparsable one.
 */
export async function fetchImage(
  store: LocalStore,
  image: string,
  o: FetchImageOptions = {},
): Promise<FetchedImage> {
  const cwd = o.cwd ?? process.cwd();
  const env = o.env ?? process.env;
  const dirs = o.configDirs ?? defaultDirs;
  const insecure = { http: o.insecure?.http === true, tls: o.insecure?.tls === true };
  const ref = fetchImageRef(image, cwd);
  const admission: AdmissionOptions = {
    configDirs: dirs,
    home: env["HOME"] ?? homedir(),
    signaturePolicy: o.signaturePolicy === undefined ? undefined : resolve(cwd, o.signaturePolicy),
  };
  const verifying = o.insecure?.image !== true;
  switch (ref.transport) {
    case "file": {
      const path = resolve(cwd, ref.path);
      const r = await importAciFile(store, {
        path,
        signaturePath: o.signature === undefined ? undefined : resolve(cwd, o.signature),
        keystore: await keystoreFor(o, dirs),
        signal: o.signal,
        onInfo: o.onInfo,
        onWarning: o.onWarning,
        onProgress:
          o.onProgress === undefined ? undefined : (p) => o.onProgress!({ kind: "aci", url: path, ...p }),
        render: o.render,
      });
      return {
        id: r.id,
        kind: r.kind,
        name: r.name,
        digests: [getImage(store, r.id).manifestDigest],
        bytes: r.size,
      };
    }
    case "oci":
    case "oci-archive":
    case "docker-archive": {
      noSignature(ref, image, o);
      const path = resolve(cwd, ref.path);
      const selector = ref.transport === "docker-archive" ? undefined : ref.ref;
      if (verifying)
        await localAdmission({ ...admission, transport: ref.transport, path, ref: selector, what: image });
      const common = {
        what: image,
        signal: o.signal,
        platform: o.platform,
        render: o.render,
        onProgress:
          o.onProgress === undefined ? undefined : (p: BlobProgress) => o.onProgress!({ kind: "blob", ...p }),
      };
      if (ref.transport === "docker-archive") {
        const { ref: named, digest, index } = ref;
        return localSummary(await importDockerArchive(store, path, { ...common, ref: named, digest, index }));
      }
      const sel = { ...common, ref: ref.ref, index: ref.index };
      if (ref.transport === "oci-archive") return localSummary(await importOciArchive(store, path, sel));
      const reader = await openOciLayout(path).catch((e: unknown) => {
        if (!(e instanceof RktError)) throw e;
        throw new RktError(e.code, `${image}: ${e.message.replace(`${path}: `, "")}`, { cause: e });
      });
      return localSummary(await importOciLayout(store, reader, sel));
    }
    case "docker": {
      let verify;
      if (verifying) {
        verify = await dockerAdmission({ ...admission, http: { insecure }, onInfo: o.onInfo });
      } else o.onWarning?.(verificationDisabledWarning);
      noSignature(ref, image, o);
      const registriesConf = await loadRegistriesConf(
        registriesConfPaths({ env, localConfig: dirs.local, systemConfig: dirs.system }),
      );
      const r = await pullImage(store, ref, {
        policy: o.pullPolicy ?? "new",
        parallel: o.parallel,
        platform: o.platform,
        registriesConf,
        verify,
        render: o.render,
        onSourceFailed: o.onSourceFailed,
        insecure,
        env,
        credentials: chainCredentials([
          ...(o.credentials === undefined ? [] : [o.credentials]),
          defaultCredentials({ env, rktConfigDirs: configDirList(dirs) }),
        ]),
        signal: o.signal,
        onProgress: o.onProgress === undefined ? undefined : (p) => o.onProgress!({ kind: "blob", ...p }),
      });
      return {
        id: r.id,
        kind: "oci",
        name: r.name,
        digests: r.digests,
        bytes: r.size,
        bytesDownloaded: r.bytesDownloaded,
        bytesReused: r.bytesReused,
      };
    }
    case "http":
    case "appc-name":
      return fetchAppc(store, ref, o, { dirs, env, insecure, cwd });
  }
}

async function fetchAppc(
  store: LocalStore,
  ref: Extract<ImageRef, { transport: "http" | "appc-name" }>,
  o: FetchImageOptions,
  c: {
    dirs: RktConfigDirs;
    env: Readonly<Record<string, string | undefined>>;
    insecure: { http: boolean; tls: boolean };
    cwd: string;
  },
): Promise<FetchedImage> {
  // rkt's localAscFetcher: a signature file replaces the download for the image (not its deps).
  const signature =
    o.signature === undefined || o.insecure?.image === true
      ? undefined
      : await readSignatureFile(resolve(c.cwd, o.signature));
  const keystore = await keystoreFor(o, c.dirs);
  if (keystore !== null && ref.transport === "appc-name" && o.trustKeysFromHttps === true) {
    // rkt's maybeFetchPubKeys: failures are only reported; verification then decides.
    try {
      const keys = await trustDiscoveredKeys(keystore, ref.raw, {
        env: c.env,
        port: o.discoveryPort,
        signal: o.signal,
      });
      for (const k of keys) o.onKeyTrusted?.(k);
    } catch (e) {
      if (e instanceof RktError && e.code === ErrorCode.Aborted) throw e;
      o.onInfo?.(`error determining key location: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const r = await fetchAppcImage(store, ref.transport === "http" ? { url: ref.url } : { app: ref.raw }, {
    policy: o.pullPolicy ?? "new",
    keystore,
    signature,
    discoveryPort: o.discoveryPort,
    insecure: c.insecure,
    auth: await readAppcAuth(configDirList(c.dirs)),
    env: c.env,
    signal: o.signal,
    onInfo: o.onInfo,
    onWarning: o.onWarning,
    onProgress: o.onProgress === undefined ? undefined : (p) => o.onProgress!({ kind: "aci", ...p }),
    render: o.render,
  });
  const stored = getImage(store, r.id);
  return {
    id: r.id,
    kind: "aci",
    name: r.name,
    digests: [stored.manifestDigest],
    bytes: stored.size,
    bytesDownloaded: r.bytesDownloaded + r.dependencies.reduce((n, d) => n + d.bytesDownloaded, 0),
  };
}
