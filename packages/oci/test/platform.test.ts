import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  MediaType,
  compatibleArches,
  formatPlatform,
  hostPlatform,
  isRktError,
  matchPlatform,
  normalizeArch,
  normalizePlatform,
  parseDigest,
  parsePlatform,
  selectPlatform,
  type Descriptor,
  type Platform,
} from "@rkt/oci";

let n = 0;
function desc(platform?: Platform): Descriptor {
  n++;
  return {
    mediaType: MediaType.OciManifest,
    digest: parseDigest(`sha256:${n.toString(16).padStart(64, "0")}`),
    size: 100 + n,
    ...(platform === undefined ? {} : { platform }),
  };
}
const p = (s: string, extra: Partial<Platform> = {}): Platform => {
  const [os = "", architecture = "", variant] = s.split("/");
  return { os, architecture, ...(variant === undefined ? {} : { variant }), ...extra };
};

describe("normalisation", () => {
  const cases: [string, string, string, string][] = [
    ["x86_64", "", "amd64", ""],
    ["x86-64", "", "amd64", ""],
    ["amd64", "v1", "amd64", ""],
    ["amd64", "v3", "amd64", "v3"],
    ["i386", "", "386", ""],
    ["386", "", "386", ""],
    ["aarch64", "", "arm64", ""],
    ["arm64", "v8", "arm64", ""],
    ["aarch64", "8", "arm64", ""],
    ["arm64", "v8.0", "arm64", ""],
    ["arm64", "9.0", "arm64", "v9"],
    ["arm64", "v8.2", "arm64", "v8.2"],
    ["armhf", "", "arm", "v7"],
    ["armel", "", "arm", "v6"],
    ["arm", "", "arm", "v7"],
    ["arm", "7", "arm", "v7"],
    ["arm", "6", "arm", "v6"],
    ["arm", "5", "arm", "v5"],
    ["ARM64", "V8", "arm64", ""],
    ["ppc64le", "", "ppc64le", ""],
  ];
  for (const [a, v, na, nv] of cases) {
    it(`${a}/${v || "-"} is ${na}/${nv || "-"}`, () => {
      expect(normalizeArch(a, v)).toEqual({ architecture: na, variant: nv });
    });
  }

  it("lowercases the OS and maps macos to darwin, keeping os.version", () => {
    expect(normalizePlatform({ os: "Linux", architecture: "x86_64" })).toEqual({
      os: "linux",
      architecture: "amd64",
      variant: "",
    });
    expect(normalizePlatform({ os: "MacOS", architecture: "arm64" }).os).toBe("darwin");
    expect(
      normalizePlatform({ os: "windows", architecture: "amd64", "os.version": "10.0.17763.1" })["os.version"],
    ).toBe("10.0.17763.1");
  });

  it("parses and formats os/arch/variant", () => {
    expect(parsePlatform("linux/arm/v7")).toMatchObject({ os: "linux", architecture: "arm", variant: "v7" });
    expect(parsePlatform("linux/aarch64")).toMatchObject({ os: "linux", architecture: "arm64", variant: "" });
    expect(formatPlatform(parsePlatform("linux/armhf"))).toBe("linux/arm/v7");
    expect(formatPlatform({ os: "linux", architecture: "amd64" })).toBe("linux/amd64");
    for (const bad of ["linux", "linux/", "a/b/c/d", "linux/amd 64", ""]) {
      expect(() => parsePlatform(bad)).toThrow(/expected os\/arch\[\/variant\]/);
    }
  });

  it("computes the host platform without reading the file system", () => {
    expect(hostPlatform({ platform: "linux", arch: "x64" })).toEqual({
      os: "linux",
      architecture: "amd64",
      variant: "",
    });
    expect(hostPlatform({ platform: "linux", arch: "arm" })).toEqual({
      os: "linux",
      architecture: "arm",
      variant: "v7",
    });
    expect(hostPlatform({ platform: "linux", arch: "arm", variant: "6" }).variant).toBe("v6");
    expect(hostPlatform({ platform: "linux", arch: "arm64" })).toEqual({
      os: "linux",
      architecture: "arm64",
      variant: "",
    });
    expect(
      hostPlatform({ platform: "win32", arch: "x64", osVersion: "10.0.20348.1", osFeatures: ["win32k"] }),
    ).toEqual({
      os: "windows",
      architecture: "amd64",
      variant: "",
      "os.version": "10.0.20348.1",
      "os.features": ["win32k"],
    });
    expect(hostPlatform({ platform: "linux", arch: "ia32" }).architecture).toBe("386");
    expect(hostPlatform({ platform: "linux", arch: "ppc64" }).architecture).toBe("ppc64le");
    expect(hostPlatform({ platform: "aix", arch: "ppc64" }).architecture).toBe("ppc64");
    expect(hostPlatform().os).toBe(process.platform === "win32" ? "windows" : process.platform);
  });
});

describe("compatibleArches", () => {
  const fmt = (want: string) =>
    compatibleArches(p(want)).map((x) => [x.architecture, x.variant].filter(Boolean).join("/"));
  it("follows containerd's preference vector", () => {
    expect(fmt("linux/amd64")).toEqual(["amd64", "386"]);
    expect(fmt("linux/amd64/v3")).toEqual(["amd64/v3", "amd64/v2", "amd64", "386"]);
    expect(fmt("linux/arm/v7")).toEqual(["arm/v7", "arm/v6", "arm/v5"]);
    expect(fmt("linux/arm/v5")).toEqual(["arm/v5"]);
    expect(fmt("linux/arm64")).toEqual(["arm64", "arm/v8", "arm/v7", "arm/v6", "arm/v5"]);
    expect(fmt("linux/arm64/v8.2")).toEqual([
      "arm64/v8.2",
      "arm64/v8.1",
      "arm64",
      "arm/v8",
      "arm/v7",
      "arm/v6",
      "arm/v5",
    ]);
    expect(fmt("linux/arm64/v9.1")).toEqual([
      "arm64/v9.1",
      "arm64/v9",
      ...[6, 5, 4, 3, 2, 1].map((i) => `arm64/v8.${i}`),
      "arm64",
      "arm/v8",
      "arm/v7",
      "arm/v6",
      "arm/v5",
    ]);
    expect(fmt("linux/riscv64")).toEqual(["riscv64"]);
  });
});

describe("matchPlatform", () => {
  const amd64 = desc(p("linux/amd64"));
  const arm64 = desc(p("linux/arm64/v8"));
  const armv7 = desc(p("linux/arm/v7"));
  const armv6 = desc(p("linux/arm/v6"));
  const i386 = desc(p("linux/386"));
  const win = desc(p("windows/amd64", { "os.version": "10.0.17763.5122" }));
  const attestation = desc(p("unknown/unknown"));
  const artifact = desc();

  it("picks the exact platform and explains every rejection", () => {
    const all = [attestation, artifact, win, armv6, armv7, arm64, amd64];
    const m = matchPlatform(all, p("linux/x86_64"));
    expect(m.best).toBe(amd64);
    const reasons = new Map(m.rejected.map((r) => [r.descriptor, r.reason]));
    expect(reasons.get(attestation)).toMatch(/attestation manifest/);
    expect(reasons.get(artifact)).toMatch(/no platform/);
    expect(reasons.get(win)).toBe("os windows is not linux");
    expect(reasons.get(arm64)).toBe("linux/arm64 cannot run on linux/amd64");
    expect(reasons.get(armv7)).toBe("linux/arm/v7 cannot run on linux/amd64");
    expect(m.rejected).toHaveLength(6);
  });

  it("prefers the exact variant over an earlier compatible one", () => {
    expect(matchPlatform([armv6, armv7], p("linux/arm/v7")).best).toBe(armv7);
    expect(matchPlatform([armv6], p("linux/armhf")).best).toBe(armv6);
    expect(matchPlatform([armv7], p("linux/arm/v6")).best).toBeUndefined();
    expect(matchPlatform([armv7, armv6], p("linux/aarch64")).best).toBe(armv7);
    expect(matchPlatform([armv7, arm64], p("linux/aarch64")).best).toBe(arm64);
    expect(matchPlatform([i386, amd64], p("linux/amd64")).best).toBe(amd64);
    expect(matchPlatform([i386], p("linux/amd64")).best).toBe(i386);
  });

  it("does not fall back in strict mode", () => {
    const m = matchPlatform([armv6, i386], p("linux/arm/v7"), { strict: true });
    expect(m.best).toBeUndefined();
    expect(matchPlatform([i386], p("linux/amd64"), { strict: true }).best).toBeUndefined();
  });

  it("takes the first of equal matches, then the one with more os.features", () => {
    const a = desc(p("linux/amd64"));
    const b = desc(p("linux/amd64"));
    expect(matchPlatform([a, b], p("linux/amd64")).best).toBe(a);
    const w1 = desc(p("windows/amd64"));
    const w2 = desc(p("windows/amd64", { "os.features": ["win32k"] }));
    expect(matchPlatform([w1, w2], p("windows/amd64", { "os.features": ["win32k"] })).best).toBe(w2);
    const m = matchPlatform([w2], p("windows/amd64"));
    expect(m.best).toBeUndefined();
    expect(m.rejected[0]?.reason).toBe("requires os.features the host lacks: win32k");
  });

  it("requires the Windows build number to match when both are known", () => {
    const ok = matchPlatform([win], p("windows/amd64", { "os.version": "10.0.17763.9999" }));
    expect(ok.best).toBe(win);
    const bad = matchPlatform([win], p("windows/amd64", { "os.version": "10.0.20348.1" }));
    expect(bad.rejected[0]?.reason).toBe("os.version 10.0.17763.5122 does not match the host's 10.0.20348.1");
    expect(matchPlatform([win], p("windows/amd64")).best).toBe(win);
  });

  it("selectPlatform throws RKT_NO_MATCHING_PLATFORM listing what is on offer", () => {
    expect(selectPlatform([amd64], p("linux/amd64"), "busybox")).toBe(amd64);
    try {
      selectPlatform([amd64, armv7, artifact], p("linux/s390x"), "docker.io/library/busybox:latest");
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.NoMatchingPlatform)).toBe(true);
      expect((e as Error).message).toBe(
        "docker.io/library/busybox:latest: no manifest for linux/s390x; available: linux/amd64, linux/arm/v7",
      );
    }
    expect(() => selectPlatform([], p("linux/amd64"), "x")).toThrow(/available: none$/);
  });
});
