// Whether a Docker/OCI image may enter the store: a policy.json found in rkt's configuration
// directories (or named explicitly) is enforced before any blob moves; without one, rkt's refusal
// of docker:// stands unless verification is turned off, and local OCI sources import unverified
// as rkt imported them.
import { realpathSync } from "node:fs";
import { ErrorCode, RktError } from "@rkt/oci";
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
  const { trust, found } = await findPolicy(o);
  if (found === undefined) return;
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
