// Image names as docker2aci derives them (lib/common ParseDockerURL, SplitReposName). Pure.
import { ErrorCode, RktError, parseDockerReference } from "@rkt/oci";
import type { ImageNameInput } from "./input.js";

/** docker2aci's name for Docker Hub (ours folds it into `docker.io`). */
export const dockerHubIndex = "registry-1.docker.io";

/**
 * A Docker reference (`busybox`, `example.com/a/b:1`, `alpine@sha256:…`) as docker2aci's
 * ParsedDockerURL: registry (`registry-1.docker.io` for Docker Hub), repository (`library/` added
 * for Hub names without a slash), tag (`latest` by default; none when pinned by digest).
 * RKT_INVALID_REFERENCE for a bad reference.
 */
export function parseDockerName(ref: string): Required<Pick<ImageNameInput, "registry" | "repository">> & {
  tag: string | undefined;
  digest: string | undefined;
} {
  const r = parseDockerReference(ref);
  return {
    registry: r.registry === "docker.io" ? dockerHubIndex : r.registry,
    repository: r.repository,
    tag: r.digest !== undefined ? undefined : (r.tag ?? "latest"),
    digest: r.digest,
  };
}

/**
 * The name of an image stored under a repository name (`docker.io/library/busybox`) and tag. A
 * name that does not parse as a reference (an OCI layout's directory name) is kept as the
 * repository with no registry.
 */
export function storedImageName(name: string, tag: string | undefined): ImageNameInput {
  if (name === "") throw new RktError(ErrorCode.InvalidArgument, "the image has no name to convert it under");
  try {
    const p = parseDockerName(name);
    return {
      registry: p.registry,
      repository: p.repository,
      tag,
      originalName: tag === undefined ? name : `${name}:${tag}`,
    };
  } catch {
    return { repository: name, tag };
  }
}
