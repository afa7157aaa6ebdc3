// Platform normalisation and selection, following containerd/platforms (database.go, compare.go,
// platforms.go), the de-facto standard: the image spec only says "first match wins".
import { ErrorCode, RktError } from "./errors.js";
import type { Descriptor, Platform } from "./schema/descriptor.js";

/** A platform after {@link normalizePlatform}: lowercase Go names, canonical variants. */
export type NormalizedPlatform = Platform & { readonly variant: string };

/** Normalises an OS name as containerd does: lowercase, `macos` -> `darwin`. */
export function normalizeOs(os: string): string {
  const o = os.toLowerCase();
  return o === "macos" ? "darwin" : o;
}

/**
 * Normalises an architecture and variant as containerd does: `x86_64`/`x86-64` -> `amd64` (v1 ->
 * no variant), `i386` -> `386`, `aarch64` -> `arm64` (8/v8/v8.0 -> no variant, since v8 is the
 * default; 9/9.0/v9.0 -> v9), `armhf` -> `arm/v7`, `armel` -> `arm/v6`, `arm` with no variant or
 * 7 -> `v7`, 5/6/8 -> v5/v6/v8.
 */
export function normalizeArch(arch: string, variant = ""): { architecture: string; variant: string } {
  const a = arch.toLowerCase();
  const v = variant.toLowerCase();
  switch (a) {
    case "i386":
    case "386":
      return { architecture: "386", variant: "" };
    case "x86_64":
    case "x86-64":
    case "amd64":
      return { architecture: "amd64", variant: v === "v1" ? "" : v };
    case "aarch64":
    case "arm64":
      if (v === "8" || v === "v8" || v === "v8.0") return { architecture: "arm64", variant: "" };
      if (v === "9" || v === "9.0" || v === "v9.0") return { architecture: "arm64", variant: "v9" };
      return { architecture: "arm64", variant: v };
    case "armhf":
      return { architecture: "arm", variant: "v7" };
    case "armel":
      return { architecture: "arm", variant: "v6" };
    case "arm":
      if (v === "" || v === "7") return { architecture: "arm", variant: "v7" };
      if (v === "5" || v === "6" || v === "8") return { architecture: "arm", variant: `v${v}` };
      return { architecture: "arm", variant: v };
    default:
      return { architecture: a, variant: v };
  }
}

/** Normalises a platform's os, architecture and variant; keeps os.version and os.features. Pure. */
export function normalizePlatform(p: Platform): NormalizedPlatform {
  const { architecture, variant } = normalizeArch(p.architecture, p.variant);
  return {
    ...p,
    os: normalizeOs(p.os),
    architecture,
    variant,
  };
}

/** `os/arch[/variant]`, e.g. `linux/arm/v7`; the form of `--platform` and of error messages. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== "").join("/");
}

/**
 * Parses `os/arch[/variant]` (the `--platform` syntax of docker, skopeo and containerd) and
 * normalises it. Throws RKT_INVALID_ARGUMENT on any other shape.
 */
export function parsePlatform(s: string): NormalizedPlatform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => !/^[A-Za-z0-9._-]+$/.test(x))) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`,
    );
  }
  const [os = "", architecture = "", variant] = parts;
  return normalizePlatform({ os, architecture, variant });
}

// Node's process.platform / process.arch names -> Go GOOS / GOARCH.
const goos: Readonly<Record<string, string>> = {
  win32: "windows",
  sunos: "solaris",
  android: "android",
};
const goarch: Readonly<Record<string, string>> = {
  x64: "amd64",
  ia32: "386",
  arm: "arm",
  arm64: "arm64",
  // Node builds ppc64 little-endian on Linux and big-endian only on AIX.
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips: "mips",
  mipsel: "mipsle",
};

/** What {@link hostPlatform} needs to know; each field defaults to the running process. */
export interface HostPlatformInput {
  /** Node's `process.platform` name (`linux`, `win32`, ...). */
  platform?: string | undefined;
  /** Node's `process.arch` name (`x64`, `arm64`, ...). */
  arch?: string | undefined;
  /** CPU variant, if the caller knows it (e.g. from /proc/cpuinfo); arm defaults to v7. */
  variant?: string | undefined;
  /** Host OS version; used for Windows image selection. */
  osVersion?: string | undefined;
  /** OS features the host has (e.g. `win32k`). */
  osFeatures?: readonly string[] | undefined;
}

/**
 * The platform of this host, in Go names and normalised. Pure: reads only `process.platform` and
 * `process.arch` (no /proc); a caller that knows the CPU variant or the Windows build passes it.
 */
export function hostPlatform(input: HostPlatformInput = {}): NormalizedPlatform {
  const nodeOs = input.platform ?? process.platform;
  const nodeArch = input.arch ?? process.arch;
  const os = nodeOs === "aix" ? "aix" : (goos[nodeOs] ?? nodeOs);
  const arch = nodeOs === "aix" && nodeArch === "ppc64" ? "ppc64" : (goarch[nodeArch] ?? nodeArch);
  const p: Platform = {
    os,
    architecture: arch,
    variant: input.variant,
    "os.version": input.osVersion,
    "os.features": input.osFeatures,
  };
  const n = normalizePlatform(p);
  // Keep the object free of undefined members so that it prints and compares cleanly.
  return Object.fromEntries(Object.entries(n).filter(([, v]) => v !== undefined)) as NormalizedPlatform;
}

/**
 * The (architecture, variant) pairs a host can run, most preferred first (containerd
 * `platformVector`): amd64/vN down to v1 then 386; arm/vN down to v5; arm64/v8.x down to v8 then
 * arm/v8..v5; arm64/v9.x down to v9 then v8.(x+5) (at most v8.9) down to v8, then arm.
 */
export function compatibleArches(want: Platform): { architecture: string; variant: string }[] {
  const { architecture, variant } = normalizeArch(want.architecture, want.variant);
  const out: { architecture: string; variant: string }[] = [{ architecture, variant }];
  const push = (a: string, v: string) => {
    const n = normalizeArch(a, v);
    if (!out.some((x) => x.architecture === n.architecture && x.variant === n.variant)) out.push(n);
  };
  if (architecture === "amd64") {
    const n = /^v(\d+)$/.exec(variant)?.[1];
    for (let i = n === undefined ? 1 : Number(n); i >= 1; i--) push("amd64", `v${i}`);
    push("386", "");
  } else if (architecture === "arm") {
    const n = /^v(\d+)$/.exec(variant)?.[1];
    if (n !== undefined) for (let i = Number(n); i >= 5; i--) push("arm", `v${i}`);
  } else if (architecture === "arm64") {
    const m = /^v(\d+)(?:\.(\d+))?$/.exec(variant === "" ? "v8" : variant);
    if (m !== null) {
      const major = Number(m[1]);
      const minor = m[2] === undefined ? 0 : Number(m[2]);
      if (major === 9) {
        for (let i = minor; i >= 1; i--) push("arm64", `v9.${i}`);
        push("arm64", "v9");
        for (let i = Math.min(minor + 5, 9); i >= 1; i--) push("arm64", `v8.${i}`);
        push("arm64", "v8");
      } else if (major === 8) {
        for (let i = minor; i >= 1; i--) push("arm64", `v8.${i}`);
        push("arm64", "v8");
      }
      if (major === 8 || major === 9) for (let i = 8; i >= 5; i--) push("arm", `v${i}`);
    }
  }
  return out;
}

/** A candidate that {@link matchPlatform} did not pick, and why. */
export interface RejectedDescriptor {
  readonly descriptor: Descriptor;
  readonly reason: string;
}

/** The outcome of {@link matchPlatform}. */
export interface PlatformMatch {
  /** The best candidate, absent when none can run on `want`. */
  readonly best?: Descriptor | undefined;
  /** Every candidate that cannot run on `want`, with the reason (for the error message). */
  readonly rejected: readonly RejectedDescriptor[];
}

/** Options of {@link matchPlatform}. */
export interface MatchPlatformOptions {
  /** Only the exact normalised architecture and variant; no older variants, no 32-bit fallback. */
  strict?: boolean | undefined;
}

// The Windows build (major.minor.build) must match the host's (containerd matchOSVersion).
function windowsBuild(v: string): string {
  return v.split(".").slice(0, 3).join(".");
}

/**
 * Picks the index entry to pull for `want` (normalised first), following containerd's matcher:
 * the OS must be equal; the (architecture, variant) must be one `want` can run, preferring the
 * exact variant, then older compatible ones (see {@link compatibleArches}); every `os.features`
 * of the candidate must be among `want`'s; on Windows a candidate's `os.version` must have the
 * host's build number when both are known. Among equally preferred matches the one with more
 * os.features wins, then the earlier entry (image-index.md: first match). Entries without a
 * platform (artifacts, nested indexes) and `unknown/unknown` attestation manifests never match.
 * Pure; never throws.
 */
export function matchPlatform(
  candidates: readonly Descriptor[],
  want: Platform,
  o: MatchPlatformOptions = {},
): PlatformMatch {
  const w = normalizePlatform(want);
  const vector =
    o.strict === true ? [{ architecture: w.architecture, variant: w.variant }] : compatibleArches(w);
  const hostFeatures = new Set(w["os.features"] ?? []);
  const rejected: RejectedDescriptor[] = [];
  let best: { d: Descriptor; rank: number; features: number } | undefined;
  for (const d of candidates) {
    const reason = rejectReason(d, w, vector, hostFeatures);
    if (typeof reason === "string") {
      rejected.push({ descriptor: d, reason });
      continue;
    }
    const features = d.platform?.["os.features"]?.length ?? 0;
    if (best === undefined || reason < best.rank || (reason === best.rank && features > best.features)) {
      best = { d, rank: reason, features };
    }
  }
  return { best: best?.d, rejected };
}

// The rank of `d` in the preference vector, or why it cannot run.
function rejectReason(
  d: Descriptor,
  w: NormalizedPlatform,
  vector: readonly { architecture: string; variant: string }[],
  hostFeatures: ReadonlySet<string>,
): number | string {
  if (d.platform === undefined) return "no platform (an artifact or a nested index)";
  if (d.platform.os === "unknown" && d.platform.architecture === "unknown") {
    return "platform unknown/unknown (an attestation manifest, not an image)";
  }
  const p = normalizePlatform(d.platform);
  if (p.os !== w.os) return `os ${p.os} is not ${w.os}`;
  const rank = vector.findIndex((x) => x.architecture === p.architecture && x.variant === p.variant);
  if (rank === -1) return `${formatPlatform(p)} cannot run on ${formatPlatform(w)}`;
  const missing = (p["os.features"] ?? []).filter((f) => !hostFeatures.has(f));
  if (missing.length > 0) return `requires os.features the host lacks: ${missing.join(", ")}`;
  const hv = w["os.version"];
  const cv = p["os.version"];
  if (w.os === "windows" && hv !== undefined && cv !== undefined && windowsBuild(hv) !== windowsBuild(cv)) {
    return `os.version ${cv} does not match the host's ${hv}`;
  }
  return rank;
}

/**
 * {@link matchPlatform}, throwing RKT_NO_MATCHING_PLATFORM (naming `what`, the wanted platform and
 * the platforms on offer) when nothing matches.
 */
export function selectPlatform(
  candidates: readonly Descriptor[],
  want: Platform,
  what: string,
  o: MatchPlatformOptions = {},
): Descriptor {
  const m = matchPlatform(candidates, want, o);
  if (m.best !== undefined) return m.best;
  const offered = candidates.flatMap((d) => (d.platform === undefined ? [] : [formatPlatform(d.platform)]));
  throw new RktError(
    ErrorCode.NoMatchingPlatform,
    `${what}: no manifest for ${formatPlatform(normalizePlatform(want))}; available: ${offered.length > 0 ? offered.join(", ") : "none"}`,
  );
}
