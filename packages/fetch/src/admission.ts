// Whether a Docker/OCI image may enter the store: a policy.json found in rkt's configuration
// directories (or named explicitly) is enforced before any blob moves; without one, rkt's refusal
// of docker:// stands unless verification is turned off, and local OCI sources import unverified
// as rkt imported them.
import { realpathSync } from "node:fs";
import { ErrorCode, RktError } from "@rkt/oci";
import type { KeyStore, Policy, RegistriesD } from "@rkt/trust";
import { policyVerifier, type DockerImageVerifier } from "./docker-policy.js";
import { noSignaturePolicyMessage } from "./pull.js";
import type { HttpOptions } from "./registry/http.js";

/** rkt's configuration directories (`--system-config`, `--local-config`, `--user-config`). */
export interface RktConfigDirs {
  readonly system: string;
  readonly local: string;
  /** Empty or undefined: none. */
  readonly user?: string | undefined;
}

/** Where admission looks for its files. */
export interface AdmissionOptions {
  readonly configDirs: RktConfigDirs;
  /** For `~/.config/containers/policy.json` and the user lookaside. */
  readonly home: string;
  /** A policy.json that must exist (`--signature-policy`); else the first found in the config dirs. */
  readonly signaturePolicy?: string | undefined;
}

async function findPolicy(o: AdmissionOptions) {
  const trust = await import("@rkt/trust");
  const d = o.configDirs;
  const dirs = { userConfig: d.user ?? "", localConfig: d.local, systemConfig: d.system, home: o.home };
  const paths = trust.signaturePolicyPaths({ ...dirs, flag: o.signaturePolicy });
  const found = await trust.findSignaturePolicy(paths, { required: o.signaturePolicy !== undefined });
  return { trust, dirs, found, paths };
}

/**
 * Local imports (`oci:`, `oci-archive:`, `docker-archive:`) under the policy's transport of the
 * same name, as containers evaluates them: the identity is the resolved path and `:REF` for OCI
 * layouts and archives (scopes are the path and its parent directories), none for docker
 * archives (the transport's `""` scope, then `default`). They carry no simple-signing
 * signatures, so `signedBy` refuses them. Without a policy nothing is checked.
 * RKT_SIGNATURE_INVALID naming `what` and the policy file.
 */
export async function localAdmission(
  o: AdmissionOptions & {
    transport: "oci" | "oci-archive" | "docker-archive";
    path: string;
    ref?: string | undefined;
    what: string;
  },
): Promise<void> {
  const { found } = await findPolicy(o);
  if (found !== undefined) await admitLocal(found, o);
}

/**
 * {@link localAdmission} under a policy already found (a load evaluates it once per image).
 * RKT_SIGNATURE_INVALID naming `what` and the policy file.
 */
export async function admitLocal(
  found: { readonly path: string; readonly policy: Policy },
  o: {
    transport: "oci" | "oci-archive" | "docker-archive";
    path: string;
    ref?: string | undefined;
    what: string;
  },
): Promise<void> {
  const trust = await import("@rkt/trust");
  let identity = "";
  if (o.transport !== "docker-archive") {
    let dir = o.path;
    try {
      dir = realpathSync(o.path);
    } catch {
      // A missing path fails in the import with its own message.
    }
    identity = o.ref === undefined || o.ref === "" ? dir : `${dir}:${o.ref}`;
  }
  const d = await trust.evaluatePolicy(found.policy, {
    transport: o.transport,
    reference: identity,
    manifestDigest: "",
    signatures: () => Promise.resolve([]),
  });
  if (!d.accepted) {
    throw new RktError(
      ErrorCode.SignatureInvalid,
      `${o.what}: rejected by ${found.path}: ${d.reasons.join("; ")}`,
    );
  }
}

/**
 * The admission check of registry pulls: the policy and registries.d are read and parsed first,
 * so a bad file fails before any network or store access. No policy found:
 * RKT_INVALID_ARGUMENT {@link noSignaturePolicyMessage}.
 */
export async function dockerAdmission(
  o: AdmissionOptions & { http?: HttpOptions | undefined; onInfo?: ((line: string) => void) | undefined },
): Promise<DockerImageVerifier> {
  const { trust, dirs, found, paths } = await findPolicy(o);
  if (found === undefined) throw new RktError(ErrorCode.InvalidArgument, noSignaturePolicyMessage(paths));
  const { config } = await trust.findRegistriesD(trust.registriesDPaths(dirs));
  return policyVerifier({
    policy: found.policy,
    policySource: found.path,
    registriesD: config,
    defaultLookaside: trust.builtinLookaside({ uid: process.getuid?.() ?? 0, home: o.home }),
    http: o.http,
    onInfo: o.onInfo,
  });
}

/** This machine's trust, as `rkt fetch` finds it (what a bundle is saved or loaded with). */
export interface MachineTrust {
  /** rkt's keystore in the config dirs (ACIs; a bundle's OCI images when no policy is found). */
  readonly keystore: KeyStore;
  /** The policy.json found, if any. */
  readonly policy?: { readonly path: string; readonly policy: Policy } | undefined;
  /** Where lookaside signatures are (registries.d, else containers' built-in directory). */
  readonly registriesD: RegistriesD;
  readonly defaultLookaside: string;
}

/**
 * Reads this machine's trust: the keystore of the config dirs, the policy.json and registries.d
 * that admission uses (a bad file fails here, RKT_INVALID_ARGUMENT naming it). No network.
 */
export async function machineTrust(o: AdmissionOptions): Promise<MachineTrust> {
  const { trust, dirs, found } = await findPolicy(o);
  const { config } = await trust.findRegistriesD(trust.registriesDPaths(dirs));
  return {
    keystore: new trust.KeyStore({
      systemConfigDir: o.configDirs.system,
      localConfigDir: o.configDirs.local,
    }),
    policy: found,
    registriesD: config,
    defaultLookaside: trust.builtinLookaside({ uid: process.getuid?.() ?? 0, home: o.home }),
  };
}

/**
 * Where this machine keeps simple-signing signatures: the registries.d `rkt fetch` reads (first
 * existing directory; RKT_INVALID_ARGUMENT for a bad file) and containers' built-in lookaside.
 */
export async function signatureStorage(
  o: AdmissionOptions,
): Promise<{ readonly registriesD: RegistriesD; readonly defaultLookaside: string }> {
  const trust = await import("@rkt/trust");
  const d = o.configDirs;
  const dirs = { userConfig: d.user ?? "", localConfig: d.local, systemConfig: d.system, home: o.home };
  const { config } = await trust.findRegistriesD(trust.registriesDPaths(dirs));
  return {
    registriesD: config,
    defaultLookaside: trust.builtinLookaside({ uid: process.getuid?.() ?? 0, home: o.home }),
  };
}
