// docker2aci's output file names (lib/docker2aci.go getSquashedFilename, internal.go
// generateACIPath). Pure.

/** Which of docker2aci's per-layer naming schemes to use. */
export type LayerFileNames = "docker-save" | "oci";

function flat(repository: string): string {
  return repository.replace(/\//g, "-");
}

/** The squashed ACI's file: `<repository with / as ->[-<tag>].aci`, e.g. `library-busybox-latest.aci`. */
export function squashedFileName(repository: string, tag: string | undefined): string {
  return `${flat(repository)}${tag === undefined || tag === "" ? "" : `-${tag}`}.aci`;
}

/**
 * A layer ACI's file. `docker-save` (docker2aci on `docker save` archives):
 * `<repository>-<tag>-<os>-<arch>-<index>.aci`, index 0 being the top layer. `oci` (OCI layouts):
 * `<repository>-<layer hex>-<tag>-<os>-<arch>.aci`. os/arch are the image's Go values; the tag is
 * left out when there is none.
 */
export function layerFileName(
  style: LayerFileNames,
  o: {
    repository: string;
    tag?: string | undefined;
    os: string;
    arch: string;
    indexFromTop: number;
    layerDigest: string;
  },
): string {
  const tag = o.tag === undefined || o.tag === "" ? [] : [o.tag];
  const parts =
    style === "docker-save"
      ? [flat(o.repository), ...tag, o.os, o.arch, String(o.indexFromTop)]
      : [flat(o.repository), o.layerDigest.slice(o.layerDigest.indexOf(":") + 1), ...tag, o.os, o.arch];
  return `${parts.join("-")}.aci`;
}
