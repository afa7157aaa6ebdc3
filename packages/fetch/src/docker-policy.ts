// policy.json admission of registry images (`rkt fetch docker://…` with a policy in place): the
// requirements of the image's scope are evaluated once its manifest is known and checked against
// its digest, before any blob is downloaded. Signatures come from lookaside storage (registries.d)
// and from the registry signatures extension, as containers/image reads them.
import { ErrorCode, RktError, formatDockerReference, type Digest, type DockerRef } from "@rkt/oci";
// @rkt/trust (and openpgp, yaml behind it) is loaded when an image is first checked, not by
// every importer of this package.
import type { Policy, PolicyDecision, RegistriesD } from "@rkt/trust";
import { readCapped } from "./registry/auth.js";
import type { RegistryClient } from "./registry/client.js";
import { networkError, resolveHttpOptions, send, type HttpOptions } from "./registry/http.js";

/** What {@link pullImage} knows when it asks a {@link DockerImageVerifier}. */
export interface DockerVerifyInput {
  /** The reference as requested (tag or digest). */
  readonly ref: DockerRef;
  /** The client that fetched the manifest (asked for the signatures extension). */
  readonly client: RegistryClient;
  /** What the reference resolved to: the index's digest when it was one, else the manifest's. */
  readonly topDigest: Digest;
  /** The platform manifest's digest (the image ID); equals `topDigest` without an index. */
  readonly manifestDigest: Digest;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Admits or refuses a registry image before any of its blobs is fetched: resolves to accept,
 * throws (RKT_SIGNATURE_INVALID, or an I/O error reading signatures) to refuse.
 */
export type DockerImageVerifier = (input: DockerVerifyInput) => Promise<void>;

/** Options of {@link policyVerifier}. */
export interface PolicyVerifierOptions {
  readonly policy: Policy;
  /** The policy file, named in refusals. */
  readonly policySource: string;
  /** Where lookaside signatures live (registries.d); an empty config uses `defaultLookaside`. */
  readonly registriesD?: RegistriesD | undefined;
  /** Lookaside base when registries.d names none for the image (containers' built-in sigstore dir). */
  readonly defaultLookaside?: string | undefined;
  /** TLS/HTTP options for `https://` lookaside bases (extra CAs, `insecure.tls`/`http`). */
  readonly http?: HttpOptions | undefined;
  /** One line per accepted signature: `signature verified: …`. */
  readonly onInfo?: ((line: string) => void) | undefined;
  /** Time keys and signatures must be valid at; default now. */
  readonly date?: Date | undefined;
}

/**
 * A {@link DockerImageVerifier} enforcing `policy` (containers-policy.json(5)) for transport
 * `docker`. The image is checked under the digest its reference resolved to (an index's, as
 * containers does); when that fails and the image came through an index, signatures over the
 * chosen platform manifest are accepted too (what `rkt image sign` writes for a stored image, and
 * just as binding: that digest names every byte stored). A refusal reads
 * `docker://<ref>: rejected by <policy file>: <reasons>` (RKT_SIGNATURE_INVALID).
 */
export function policyVerifier(o: PolicyVerifierOptions): DockerImageVerifier {
  return (input) => admitByPolicy(o, input, (digest) => readDockerSignatures(input, digest, o));
}

/**
 * The decision of {@link policyVerifier} for an image whose signatures come from `signatures`
 * (a registry's lookaside and extension, or the blobs a bundle carries): resolves to accept,
 * throws RKT_SIGNATURE_INVALID `docker://<ref>: rejected by <policy file>: <reasons>` to refuse.
 */
export async function admitByPolicy(
  o: PolicyVerifierOptions,
  input: Pick<DockerVerifyInput, "ref" | "topDigest" | "manifestDigest">,
  signatures: (digest: Digest) => Promise<readonly Uint8Array[]>,
): Promise<void> {
  const { evaluatePolicy, formatFingerprint } = await import("@rkt/trust");
  const decide = (digest: Digest): Promise<PolicyDecision> =>
    evaluatePolicy(o.policy, {
      transport: "docker",
      reference: input.ref,
      manifestDigest: digest,
      signatures: () => signatures(digest),
      date: o.date,
    });
  let d = await decide(input.topDigest);
  if (!d.accepted && input.manifestDigest !== input.topDigest) {
    const platform = await decide(input.manifestDigest);
    if (platform.accepted) d = platform;
  }
  if (!d.accepted) {
    throw new RktError(
      ErrorCode.SignatureInvalid,
      `docker://${formatDockerReference(input.ref)}: rejected by ${o.policySource}: ${d.reasons.join("; ")}`,
    );
  }
  for (const s of d.signatures) {
    const who = s.identities.length > 0 ? ` ${s.identities.join(", ")}` : "";
    o.onInfo?.(
      `signature verified: ${s.dockerReference}@${s.manifestDigest} by key ${formatFingerprint(s.fingerprint)}${who}`,
    );
  }
}

/**
 * The simple-signing signatures of one manifest: those in the image's lookaside storage
 * (`file://` read from disk, `http(s)://` fetched until the first 404), then, given a client,
 * those the registry serves through the signatures extension. Each blob is capped at 4 MiB.
 */
export async function readDockerSignatures(
  input: Pick<DockerVerifyInput, "ref" | "signal"> & { readonly client?: RegistryClient | undefined },
  digest: Digest,
  o: Pick<PolicyVerifierOptions, "registriesD" | "defaultLookaside" | "http">,
): Promise<Uint8Array[]> {
  const { lookasideFor, readLookasideSignatures } = await import("@rkt/trust");
  const base = lookasideFor(o.registriesD ?? { docker: {} }, input.ref, { fallback: o.defaultLookaside });
  const out: Uint8Array[] = [];
  if (base !== undefined) {
    if (base.startsWith("file://"))
      out.push(...(await readLookasideSignatures(base, input.ref.repository, digest)));
    else out.push(...(await fetchLookaside(base, input.ref.repository, digest, o.http, input.signal)));
  }
  if (input.client !== undefined) {
    out.push(
      ...((await input.client.getSignatures(input.ref.repository, digest, { signal: input.signal })) ?? []),
    );
  }
  return out;
}

async function fetchLookaside(
  base: string,
  repository: string,
  digest: Digest,
  http: HttpOptions | undefined,
  signal: AbortSignal | undefined,
): Promise<Uint8Array[]> {
  const { lookasideSignatureUrl, maxLookasideSignatures, maxSignatureBytes } = await import("@rkt/trust");
  const r = resolveHttpOptions(http ?? {});
  const out: Uint8Array[] = [];
  try {
    for (let i = 1; i <= maxLookasideSignatures; i++) {
      const url = new URL(lookasideSignatureUrl(base, repository, digest, i));
      const what = `GET ${url.href}`;
      let res;
      try {
        res = await send(r, { method: "GET", url, headers: {}, authOrigin: "", signal, what });
      } catch (e) {
        throw networkError(e, what, signal);
      }
      if (res.status === 404) {
        await res.body.dump();
        break;
      }
      if (res.status !== 200) {
        await res.body.dump();
        throw new RktError(ErrorCode.Registry, `${what}: lookaside answered ${res.status}`);
      }
      out.push(await readCapped(res.body, maxSignatureBytes, what));
    }
  } finally {
    await r.close();
  }
  return out;
}
