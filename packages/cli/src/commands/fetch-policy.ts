// How `rkt fetch` decides whether a Docker/OCI image may enter the store: a policy.json found in
// rkt's configuration directories (or given with --signature-policy) is enforced before any blob
// is downloaded; without one, rkt's refusal of docker:// stands unless --insecure-options=image,
// and local OCI sources import unverified as before.
import { realpathSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type { CommandContext } from "../context.js";

// The policy file in force (see @rkt/trust signaturePolicyPaths), with what finding it needed.
async function findPolicy(ctx: CommandContext, signaturePolicy: string | undefined) {
  const g = ctx.globals;
  const trust = await import("@rkt/trust");
  const home = ctx.env["HOME"] ?? homedir();
  const dirs = { userConfig: g.userConfig, localConfig: g.localConfig, systemConfig: g.systemConfig, home };
  const flag = signaturePolicy === undefined ? undefined : resolve(ctx.cwd, signaturePolicy);
  const found = await trust.findSignaturePolicy(trust.signaturePolicyPaths({ ...dirs, flag }), {
    required: flag !== undefined,
  });
  return { trust, home, dirs, found };
}

/**
 * Local imports (`oci:`, `oci-archive:`, `docker-archive:`) under the policy's transport of the
 * same name, as containers evaluates them: the identity is the resolved path and `:REF` for OCI
 * layouts and archives (scopes are the path and its parent directories), none for docker
 * archives (the transport's `""` scope, then `default`). They carry no simple-signing
 * signatures, so `signedBy` refuses them. Without a policy, or with `--insecure-options=image`,
 * nothing is checked and nothing printed (rkt imported local OCI images unverified).
 */
export async function localAdmission(
  ctx: CommandContext,
  o: {
    signaturePolicy?: string | undefined;
    transport: "oci" | "oci-archive" | "docker-archive";
    path: string;
    ref?: string | undefined;
    what: string;
  },
): Promise<void> {
  if (ctx.globals.insecure.image) return;
  const { trust, found } = await findPolicy(ctx, o.signaturePolicy);
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
 * The admission check for registry pulls, or undefined when `--insecure-options=image` turns it
 * off (the warning is printed here). The policy and registries.d are read and parsed first, so a
 * bad file fails before any network or store access. No policy found: rkt's
 * `signature verification for docker images is not supported (try --insecure-options=image)`.
 */
export async function dockerAdmission(
  fetch: typeof Fetch,
  ctx: CommandContext,
  o: { signaturePolicy?: string | undefined; quiet?: boolean | undefined },
): Promise<Fetch.DockerImageVerifier | undefined> {
  const g = ctx.globals;
  if (g.insecure.image) {
    ctx.stderr.write(`image: ${fetch.verificationDisabledWarning}\n`);
    return undefined;
  }
  const { trust, home, dirs, found } = await findPolicy(ctx, o.signaturePolicy);
  if (found === undefined) throw new RktError(ErrorCode.InvalidArgument, fetch.dockerSignatureUnsupported);
  const { config } = await trust.findRegistriesD(trust.registriesDPaths(dirs));
  return fetch.policyVerifier({
    policy: found.policy,
    policySource: found.path,
    registriesD: config,
    defaultLookaside: trust.builtinLookaside({ uid: process.getuid?.() ?? 0, home }),
    http: { insecure: { http: g.insecure.http, tls: g.insecure.tls } },
    onInfo: o.quiet === true ? undefined : (line) => void ctx.stderr.write(`image: ${line}\n`),
  });
}
