// What an appc fetch asks for and what the fetched manifest must say (rkt/image/namefetcher.go
// validate, fetcher.go setAppDefaults), pure.
import type { ImageManifest } from "@rkt/appc";
import { ErrorCode, RktError } from "@rkt/oci";

/** An image asked for by name: the AC name and the labels it must carry. */
export interface AppcApp {
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
}

// Node's process.arch to appc's arch label values (appc types/labels.go).
const appcArch: Record<string, string> = {
  x64: "amd64",
  ia32: "i386",
  arm64: "aarch64",
  arm: "armv7l",
  ppc64: "ppc64le",
  s390x: "s390x",
};

/** The host's appc `os` and `arch` label values (`linux`, `amd64` on x86-64). Pure. */
export function hostOsArch(
  platform: string = process.platform,
  arch: string = process.arch,
): { os: string; arch: string } {
  return { os: platform, arch: appcArch[arch] ?? arch };
}

/**
 * rkt's setAppDefaults: `os` and `arch` labels default to the host's when the name does not give
 * them (also for dependencies). Pure.
 */
export function withOsArchDefaults(app: AppcApp, host: { os: string; arch: string }): AppcApp {
  const labels = new Map(app.labels);
  if (!labels.has("os")) labels.set("os", host.os);
  if (!labels.has("arch")) labels.set("arch", host.arch);
  return { name: app.name, labels };
}

/** A stable key for "the same image asked for": name plus sorted labels. Pure. */
export function appKey(app: AppcApp): string {
  const labels = [...app.labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [app.name, ...labels.map(([k, v]) => `${k}=${v}`)].join(",");
}

/** The app as rkt prints it: `name,k=v,…` (labels in the order given). Pure. */
export function formatApp(app: AppcApp): string {
  return [app.name, ...[...app.labels].map(([k, v]) => `${k}=${v}`)].join(",");
}

/**
 * Checks a fetched manifest against what was asked for, as rkt's validate: the name must be equal
 * (`error when reading the app name: "<want>" expected but "<got>" found`) and every asked label
 * present (`requested label "x" not provided by the image manifest`) with the same value
 * (`requested value for label "version": "2.0" differs from fetched aci label value: "1.2.0"`).
 * RKT_INVALID_MANIFEST. Pure.
 */
export function checkManifestIdentity(
  app: AppcApp,
  manifest: {
    readonly name: string;
    readonly labels?: readonly { readonly name: string; readonly value: string }[] | undefined;
  },
): void {
  if (manifest.name !== app.name) {
    throw new RktError(
      ErrorCode.InvalidManifest,
      `error when reading the app name: ${JSON.stringify(app.name)} expected but ${JSON.stringify(manifest.name)} found`,
    );
  }
  const have = new Map((manifest.labels ?? []).map((l) => [l.name, l.value]));
  for (const [k, v] of app.labels) {
    const got = have.get(k);
    if (got === undefined) {
      throw new RktError(
        ErrorCode.InvalidManifest,
        `requested label ${JSON.stringify(k)} not provided by the image manifest`,
      );
    }
    if (got !== v) {
      throw new RktError(
        ErrorCode.InvalidManifest,
        `requested value for label ${JSON.stringify(k)}: ${JSON.stringify(v)} differs from fetched aci label value: ${JSON.stringify(got)}`,
      );
    }
  }
}

/**
 * The signature URL beside an ACI URL, as rkt's ascURLFromImgURL: the path gets `.aci` replaced
 * by (or, without it, `.aci.asc` appended), query and fragment kept. Pure.
 */
export function ascUrlFromAciUrl(aciUrl: string): string {
  const u = new URL(aciUrl);
  u.pathname = `${u.pathname.endsWith(".aci") ? u.pathname.slice(0, -4) : u.pathname}.aci.asc`;
  return u.href;
}

/** The dependencies of a manifest as apps to fetch by name (rkt ignores their imageID). Pure. */
export function dependencyApps(manifest: ImageManifest): AppcApp[] {
  return (manifest.dependencies ?? []).map((d) => ({
    name: d.imageName,
    labels: new Map((d.labels ?? []).map((l) => [l.name, l.value])),
  }));
}
