// How `rkt fetch docker://…` decides whether a registry image may enter the store: a policy.json
// found in rkt's configuration directories (or given with --signature-policy) is enforced before
// any blob is downloaded; without one, rkt's refusal stands unless --insecure-options=image.
import { homedir } from "node:os";
import { resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type { CommandContext } from "../context.js";

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
  const trust = await import("@rkt/trust");
  const home = ctx.env["HOME"] ?? homedir();
  const dirs = { userConfig: g.userConfig, localConfig: g.localConfig, systemConfig: g.systemConfig, home };
  const flag = o.signaturePolicy === undefined ? undefined : resolve(ctx.cwd, o.signaturePolicy);
  const found = await trust.findSignaturePolicy(trust.signaturePolicyPaths({ ...dirs, flag }), {
    required: flag !== undefined,
  });
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
