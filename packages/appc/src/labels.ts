// Image labels (appc spec schema/types/labels.go): names are AC Identifiers, unique, never `name`;
// `os` and `arch` come from a whitelist. The whitelist is the code's, which is longer than the
// table in the spec text.
import { ErrorCode, RktError } from "@rkt/oci";
import { acIdentifierProblem } from "./names.js";

/** One label as it appears in a manifest. */
export interface Label {
  readonly name: string;
  readonly value: string;
}

/** The well-known label names (spec: "version", "os", "arch"). */
export const WellKnownLabel = { Version: "version", Os: "os", Arch: "arch" } as const;

/** The label value that discovery substitutes for `{version}` when none was asked for. */
export const defaultVersion = "latest";

/** appc's ValidOSArch: for each OS, the architectures it may be labelled with. */
export const validOSArch: Readonly<Record<string, readonly string[]>> = {
  linux: [
    "amd64",
    "i386",
    "aarch64",
    "aarch64_be",
    "armv6l",
    "armv7l",
    "armv7b",
    "ppc64",
    "ppc64le",
    "s390x",
  ],
  freebsd: ["amd64", "i386", "arm"],
  darwin: ["x86_64", "i386"],
};

/**
 * Why the `os`/`arch` pair in `labels` is not valid, in appc's words, or undefined. As appc, an
 * `arch` without `os` is not checked (arch only makes sense for a known OS).
 */
export function osArchProblem(labels: ReadonlyMap<string, string>): string | undefined {
  const os = labels.get("os");
  if (os === undefined) return undefined;
  const arches = Object.hasOwn(validOSArch, os) ? validOSArch[os] : undefined;
  if (arches === undefined) {
    const oses = Object.keys(validOSArch).sort();
    return `bad os ${JSON.stringify(os)} (must be one of: [${oses.join(" ")}])`;
  }
  const arch = labels.get("arch");
  if (arch !== undefined && !arches.includes(arch)) {
    return `bad arch ${JSON.stringify(arch)} for ${os} (must be one of: [${arches.join(" ")}])`;
  }
  return undefined;
}

/** True when `os` (and `arch`, if given) are in appc's whitelist. */
export function isValidOSArch(os: string, arch?: string): boolean {
  const m = new Map([["os", os]]);
  if (arch !== undefined) m.set("arch", arch);
  return osArchProblem(m) === undefined;
}

/**
 * Every problem with a label list, each with the index of the offending label (or undefined for
 * the os/arch pair): invalid name, the reserved name `name`, duplicates, os/arch.
 */
export function labelProblems(labels: readonly Label[]): { index?: number | undefined; message: string }[] {
  const out: { index?: number | undefined; message: string }[] = [];
  const seen = new Map<string, string>();
  labels.forEach((l, index) => {
    const why = acIdentifierProblem(l.name);
    if (why !== undefined)
      out.push({ index, message: `invalid label name ${JSON.stringify(l.name)}: ${why}` });
    else if (l.name === "name") out.push({ index, message: 'invalid label name: "name"' });
    else if (seen.has(l.name))
      out.push({ index, message: `duplicate labels of name ${JSON.stringify(l.name)}` });
    seen.set(l.name, l.value);
  });
  if (out.length === 0) {
    const why = osArchProblem(seen);
    if (why !== undefined) out.push({ message: why });
  }
  return out;
}

/**
 * Validates a label list and returns it as a map (insertion order kept). Throws RKT_INVALID_NAME
 * with the first problem.
 */
export function parseLabels(labels: readonly Label[]): Map<string, string> {
  const [first] = labelProblems(labels);
  if (first !== undefined) throw new RktError(ErrorCode.InvalidName, `invalid labels: ${first.message}`);
  return new Map(labels.map((l) => [l.name, l.value]));
}

/** A label map as a manifest label list. */
export function labelsToList(labels: ReadonlyMap<string, string>): Label[] {
  return [...labels].map(([name, value]) => ({ name, value }));
}

/** The `version` label of an image, if any. */
export function versionOf(labels: readonly Label[] | ReadonlyMap<string, string>): string | undefined {
  if (labels instanceof Map) return (labels as ReadonlyMap<string, string>).get("version");
  return (labels as readonly Label[]).find((l) => l.name === "version")?.value;
}
