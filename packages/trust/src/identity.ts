// containers-policy.json(5) `signedIdentity`: how the `docker-reference` a signature claims is
// compared with the reference of the image being checked (containers/image
// signature/policy_reference_match.go), over docker-normalised names (`busybox` ==
// `docker.io/library/busybox`).
import { ErrorCode, RktError, isRktError, parseDockerReference, type DockerRef } from "@rkt/oci";

/** The `signedIdentity` kinds of policy.json. */
export type SignedIdentity =
  | { readonly type: "matchExact" }
  | { readonly type: "matchRepoDigestOrExact" }
  | { readonly type: "matchRepository" }
  | { readonly type: "exactReference"; readonly dockerReference: string }
  | { readonly type: "exactRepository"; readonly dockerRepository: string }
  | { readonly type: "remapIdentity"; readonly prefix: string; readonly signedPrefix: string };

/** A docker reference reduced to what identity matching compares. */
export interface NamedRef {
  /** `host/path`, fully expanded (`docker.io/library/busybox`). */
  readonly name: string;
  /** Only when written explicitly: a signature for `busybox` is not one for `busybox:latest`. */
  readonly tag?: string | undefined;
  readonly digest?: string | undefined;
}

/**
 * Parses a docker reference for identity matching, keeping whether a tag was written (our
 * `parseDockerReference` adds `latest`). Throws RKT_INVALID_REFERENCE. Pure.
 */
export function parseNamedRef(s: string): NamedRef {
  const r = parseDockerReference(s);
  const beforeDigest = s.split("@")[0]!;
  const lastSegment = beforeDigest.slice(beforeDigest.lastIndexOf("/") + 1);
  const explicitTag = lastSegment.includes(":");
  return {
    name: `${r.registry}/${r.repository}`,
    ...(explicitTag && r.tag !== undefined ? { tag: r.tag } : {}),
    ...(r.digest === undefined ? {} : { digest: r.digest }),
  };
}

/**
 * The identity of an image being pulled: a digest wins over a tag (a pull by digest is what the
 * docker transport checks). Pure.
 */
export function namedFromDockerRef(r: DockerRef): NamedRef {
  const name = `${r.registry}/${r.repository}`;
  if (r.digest !== undefined) return { name, digest: r.digest };
  return r.tag === undefined ? { name } : { name, tag: r.tag };
}

/** `name[:tag][@digest]`. Pure. */
export function formatNamedRef(r: NamedRef): string {
  return r.name + (r.tag === undefined ? "" : `:${r.tag}`) + (r.digest === undefined ? "" : `@${r.digest}`);
}

/**
 * True when a signature claiming `signed` is acceptable for image `image` under `rule`.
 * `image` is undefined for transports without a docker identity (oci:, docker-archive:), where
 * only `exactReference` and `exactRepository` can match. An unparsable `signed` never matches.
 * Pure.
 */
export function matchSignedIdentity(
  rule: SignedIdentity,
  image: NamedRef | undefined,
  signed: string,
): boolean {
  let sig: NamedRef;
  try {
    sig = parseNamedRef(signed);
  } catch (e) {
    if (isRktError(e)) return false;
    throw e;
  }
  switch (rule.type) {
    case "matchExact":
      return (
        image !== undefined && (image.tag !== undefined || image.digest !== undefined) && same(image, sig)
      );
    case "matchRepoDigestOrExact":
      return image !== undefined && repoDigestOrExact(image, sig);
    case "matchRepository":
      return image !== undefined && image.name === sig.name;
    case "exactReference":
      return same(parseNamedRef(rule.dockerReference), sig);
    case "exactRepository":
      return parseNamedRef(rule.dockerRepository).name === sig.name;
    case "remapIdentity": {
      if (image === undefined) return false;
      const s = formatNamedRef(image);
      const rest = s.slice(rule.prefix.length);
      if (!s.startsWith(rule.prefix) || !/^(?:$|[/:@])/.test(rest)) return repoDigestOrExact(image, sig);
      let remapped: NamedRef;
      try {
        remapped = parseNamedRef(rule.signedPrefix + rest);
      } catch (e) {
        if (isRktError(e)) return false;
        throw e;
      }
      return repoDigestOrExact(remapped, sig);
    }
  }
}

function repoDigestOrExact(image: NamedRef, sig: NamedRef): boolean {
  if (image.digest !== undefined) return image.name === sig.name;
  if (image.tag !== undefined) return same(image, sig);
  return false;
}

function same(a: NamedRef, b: NamedRef): boolean {
  return formatNamedRef(a) === formatNamedRef(b);
}

/**
 * Checks a `signedIdentity` rule's own fields (references parse, `exactReference` names a tag or
 * digest, `exactRepository` and remap prefixes name no tag or digest). Returns a problem or
 * undefined. Pure.
 */
export function checkSignedIdentity(rule: SignedIdentity): string | undefined {
  try {
    switch (rule.type) {
      case "exactReference": {
        const r = parseNamedRef(rule.dockerReference);
        if (r.tag === undefined && r.digest === undefined) {
          return `dockerReference ${JSON.stringify(rule.dockerReference)} must include a tag or digest`;
        }
        return undefined;
      }
      case "exactRepository": {
        const r = parseNamedRef(rule.dockerRepository);
        if (r.tag !== undefined || r.digest !== undefined) {
          return `dockerRepository ${JSON.stringify(rule.dockerRepository)} must not include a tag or digest`;
        }
        return undefined;
      }
      case "remapIdentity":
        for (const p of [rule.prefix, rule.signedPrefix]) {
          if (!/^[a-z0-9.-]+(?::[0-9]+)?(?:\/[a-z0-9._-]+)*$/.test(p) || p.includes("@")) {
            return `invalid remapIdentity prefix ${JSON.stringify(p)}: must be host[:port][/namespace…] without tag or digest`;
          }
        }
        return undefined;
      case "matchExact":
      case "matchRepoDigestOrExact":
      case "matchRepository":
        return undefined;
    }
  } catch (e) {
    if (isRktError(e)) return e.message;
    throw e;
  }
}

/** Throws RKT_INVALID_REFERENCE for a reference that does not parse; used by callers validating input. */
export function requireNamedRef(s: string, what: string): NamedRef {
  try {
    return parseNamedRef(s);
  } catch (e) {
    throw new RktError(ErrorCode.InvalidReference, `${what}: ${(e as Error).message}`, { cause: e });
  }
}
