// Go/OCI os and architecture values to appc label values (appc schema/types/labels.go
// ToAppcOSArch, as docker2aci uses it). Pure.

const linuxArch: Readonly<Record<string, string>> = {
  amd64: "amd64",
  "386": "i386",
  arm64: "aarch64",
  ppc64: "ppc64",
  ppc64le: "ppc64le",
  s390x: "s390x",
};

/**
 * The appc `os` and `arch` labels for an image's Go-style `os`/`architecture` (and OCI `variant`),
 * or undefined when appc has no value for the pair (docker2aci then sets no os/arch labels).
 * linux: amd64, 386→i386, arm64→aarch64, arm→armv6l (variant v7→armv7l), ppc64, ppc64le, s390x;
 * freebsd: amd64, 386→i386, arm; darwin: amd64→x86_64, 386→i386.
 */
export function toAppcOsArch(
  os: string,
  arch: string,
  variant?: string,
): { os: string; arch: string } | undefined {
  switch (os) {
    case "linux": {
      if (arch === "arm") return { os, arch: variant === "v7" ? "armv7l" : "armv6l" };
      const a = Object.hasOwn(linuxArch, arch) ? linuxArch[arch] : undefined;
      return a === undefined ? undefined : { os, arch: a };
    }
    case "freebsd":
      if (arch === "amd64" || arch === "arm") return { os, arch };
      return arch === "386" ? { os, arch: "i386" } : undefined;
    case "darwin":
      if (arch === "amd64") return { os, arch: "x86_64" };
      return arch === "386" ? { os, arch: "i386" } : undefined;
    default:
      return undefined;
  }
}
